//! Accelerated hot loops and the choice of backend (gpu | simd | scalar | auto).

pub mod aggregate;
pub mod calibrate;
pub mod gpu;
pub mod hash;

pub use hash::{AutoHasher, Backend, BatchHasher, CpuHasher, GpuBatchHasher, HashError};
