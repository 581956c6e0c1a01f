//! The one backend choice (`--backend auto|gpu|cpu`) for both engines — hashing and
//! pubkey aggregation — and the device probe they share.
//!
//! * `cpu`: the fastest SIMD SHA-256 kernel this CPU has, and blst's batch-affine sums.
//! * `gpu`: the WGSL kernels on the adapter wgpu finds; no adapter is an error. The
//!   state-root trees are kept resident on it ([`Accel::resident_device`]).
//! * `auto`: the CPU for small workloads; the first workload that could be big enough for
//!   the GPU (a tree of 2^14 leaves, a batch of 2^14 keys) probes for an adapter once for
//!   both engines, and each engine then calibrates itself on it (CPU vs GPU at a few sizes,
//!   [`super::calibrate`]) and uses the GPU from its measured crossover on. No adapter, a
//!   lost device or a failed submission falls back to the CPU, logged once.

use std::sync::{Arc, OnceLock};

use super::aggregate::PubkeyAggregator;
use super::aggregate::{AggregateError, AutoAggregator, CpuAggregator, GpuAggregator};
use super::device::{GpuContext, GpuError};
use super::gpu::GpuHasher;
use super::hash::{AutoHasher, BatchHasher, CpuHasher, GpuBatchHasher};

/// A backend, as chosen on the command line (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The GPU for workloads above the size where calibration found it faster, else the CPU.
    Auto,
    /// The GPU (wgpu); an error if there is no adapter.
    Gpu,
    /// The CPU: the fastest SIMD SHA-256 kernel, blst for aggregation.
    Cpu,
}

impl Backend {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
        }
    }
}

/// One probe for a GPU adapter, made on first use and shared by every engine given a clone.
#[derive(Clone, Default)]
pub struct DeviceProbe(Arc<OnceLock<Option<Arc<GpuContext>>>>);

impl std::fmt::Debug for DeviceProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DeviceProbe").field(&self.0.get()).finish()
    }
}

impl DeviceProbe {
    /// A probe not made yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A probe that found `ctx`.
    pub fn with_context(ctx: Arc<GpuContext>) -> Self {
        let probe = Self::new();
        let _ = probe.0.set(Some(ctx));
        probe
    }

    /// The device, probing on the first call (no adapter: `None`, logged once).
    pub fn context(&self) -> Option<Arc<GpuContext>> {
        self.0
            .get_or_init(|| match GpuContext::new() {
                Ok(ctx) => Some(ctx),
                Err(e) => {
                    tracing::info!("backend auto: no GPU ({e}); the CPU does everything");
                    None
                }
            })
            .clone()
    }

    /// Whether the probe was made.
    pub fn probed(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The engines of one `--backend` choice, sharing one device.
#[derive(Debug)]
pub struct Accel {
    backend: Backend,
    probe: DeviceProbe,
}

impl Accel {
    /// `gpu` opens the device now (an error without an adapter); `auto` probes on first use.
    pub fn new(backend: Backend) -> Result<Self, GpuError> {
        let probe = match backend {
            Backend::Gpu => DeviceProbe::with_context(GpuContext::new()?),
            Backend::Auto | Backend::Cpu => DeviceProbe::new(),
        };
        Ok(Accel { backend, probe })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The device probe the engines share.
    pub fn probe(&self) -> &DeviceProbe {
        &self.probe
    }

    fn device(&self) -> Result<Arc<GpuContext>, GpuError> {
        self.probe
            .context()
            .ok_or_else(|| GpuError::NoAdapter("the probe found none".into()))
    }

    /// The hasher: `auto` calibrates on first use of a big tree.
    pub fn hasher(&self) -> Result<Arc<dyn BatchHasher>, GpuError> {
        Ok(match self.backend {
            Backend::Cpu => Arc::new(CpuHasher::simd()),
            Backend::Gpu => Arc::new(GpuBatchHasher::from_hasher(GpuHasher::new(self.device()?)?)),
            Backend::Auto => Arc::new(AutoHasher::with_probe(self.probe.clone())),
        })
    }

    /// The device that keeps the state-root trees resident (`accel::resident`): `gpu`'s.
    /// `auto` keeps them on the host: a resident update costs a submission's latency per
    /// block, and whether that beats the host's rehash has not been calibrated yet.
    pub fn resident_device(&self) -> Option<Arc<GpuContext>> {
        match self.backend {
            Backend::Gpu => self.probe.context(),
            Backend::Auto | Backend::Cpu => None,
        }
    }

    /// The pubkey aggregator: `auto` calibrates on first use of a big batch.
    pub fn aggregator(&self) -> Result<Box<dyn PubkeyAggregator>, AggregateError> {
        Ok(match self.backend {
            Backend::Cpu => Box::new(CpuAggregator),
            Backend::Gpu => Box::new(GpuAggregator::new(self.device()?)?),
            Backend::Auto => Box::new(AutoAggregator::with_probe(self.probe.clone())),
        })
    }
}
