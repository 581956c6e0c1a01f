//! Accelerated hot loops and the one backend choice for them (`--backend auto|gpu|cpu`).
//!
//! - `device`: the wgpu device shared by every engine, buffer pools, readback, pipelines
//! - `gpu`: SHA-256 merkleization on the GPU; `hash`: the `BatchHasher` backends
//! - `resident`: merkle trees kept in device memory, updated by their dirty paths
//! - `aggregate`: pubkey aggregation (`cpu`, `gpu`, test kernels, `auto`)
//! - `calibrate`: CPU vs GPU at start-up for `auto`; `backend`: the choice and the probe

pub mod aggregate;
pub mod backend;
pub mod calibrate;
pub mod device;
pub mod gpu;
pub mod hash;
pub mod resident;

pub use backend::{Accel, Backend, DeviceProbe};
pub use hash::{AutoHasher, BatchHasher, CpuHasher, GpuBatchHasher, HashError};
