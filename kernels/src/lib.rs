//! CPU SIMD kernels for quasar. The only crate of the workspace allowed `unsafe`; every
//! unsafe block states the invariant it relies on in a `// SAFETY:` comment.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bls;
pub mod sha256;
