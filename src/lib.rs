//! quasar: an Ethereum consensus-layer verification node whose hot loops run on the GPU.
//!
//! See `DESIGN.md` in the shared folder for the map. This crate holds the node; the
//! CPU SIMD kernels live in the `quasar-kernels` crate (the only place with `unsafe`).

pub mod accel;
pub mod api;
pub mod bench;
pub mod bls;
pub mod cache;
pub mod chain;
pub mod dev;
pub mod devnet;
pub mod light_client;
pub mod merkle;
pub mod net;
pub mod node;
pub mod pool;
pub mod store;
pub mod sync;
pub mod transition;
pub mod types;
