//! `BatchHasher`: hash n 64-byte blocks into n SHA-256 digests, and reduce a subtree of
//! 32-byte chunks to its root. Backends: `scalar` and `simd` (the `quasar-kernels` crate),
//! `gpu` (the WGSL kernels in `shaders/`, through [`super::gpu`]) and `auto`, which uses the
//! GPU only for trees above the size where start-up calibration found it faster, and falls
//! back to the CPU when there is no adapter or the device is lost.
//!
//! Every backend gives bit-identical results; `tests/it/merkle.rs` holds them equal.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use quasar_kernels::sha256::{self, Kernel};

use super::backend::DeviceProbe;
use super::calibrate::{self, Calibration};
use super::gpu::{GpuContext, GpuError, GpuHasher};
use crate::merkle::zero_hashes;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("subtree of {leaves} leaves does not fit depth {depth}")]
    Shape { leaves: usize, depth: u32 },
}

/// The accelerator contract for hashing.
pub trait BatchHasher: Send + Sync {
    /// Short name of the path that runs (e.g. `simd(sha-ni)`, `gpu(llvmpipe …)`).
    fn name(&self) -> String;
    /// `out[i] = SHA-256(input[i])`.
    fn hash_pairs(&self, input: &[[u8; 64]], out: &mut [[u8; 32]]) -> Result<(), HashError>;
    /// Root of the subtree of height `depth` whose first leaves are `leaves` and the rest
    /// zero chunks; `1 <= leaves.len() <= 2^depth`.
    fn merkleize_subtree(&self, leaves: &[[u8; 32]], depth: u32) -> Result<[u8; 32], HashError>;
}

/// Number of levels of a tree with `n` leaves: ceil(log2(n)), 0 for n <= 1.
pub fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

fn check_shape(leaves: &[[u8; 32]], depth: u32) -> Result<(), HashError> {
    let fits = depth >= 64 || (leaves.len() as u64) <= (1u64 << depth);
    if leaves.is_empty() || !fits {
        return Err(HashError::Shape {
            leaves: leaves.len(),
            depth,
        });
    }
    Ok(())
}

/// Hash one pair on the host (used for the few hashes above a subtree's root).
pub fn hash_pair(kernel: Kernel, left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(left);
    block[32..].copy_from_slice(right);
    let mut out = [[0u8; 32]; 1];
    sha256::hash_blocks(kernel, &[block], &mut out);
    out[0]
}

/// Raise a subtree root from height `from` to height `to` by hashing with zero subtrees.
pub fn pad_root(kernel: Kernel, mut root: [u8; 32], from: u32, to: u32) -> [u8; 32] {
    let zeros = zero_hashes();
    for level in from..to {
        root = hash_pair(kernel, &root, &zeros[level as usize]);
    }
    root
}

/// CPU batch hasher over one `quasar-kernels` kernel, with rayon across subtrees.
#[derive(Clone, Debug)]
pub struct CpuHasher {
    kernel: Kernel,
}

/// Height of the subtrees that one thread reduces level by level; 2^13 leaves = 256 KiB,
/// so a subtree's levels stay in L2 after its leaves are read once.
const CHUNK_HEIGHT: u32 = 13;
/// Below this many blocks, `hash_pairs` runs on the calling thread.
const PAR_BLOCKS: usize = 1 << 14;

thread_local! {
    /// Pooled scratch levels for [`CpuHasher::reduce_small`], reused across calls.
    static SCRATCH: RefCell<[Vec<[u8; 32]>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

impl CpuHasher {
    /// The fastest SIMD kernel this CPU has.
    pub fn simd() -> Self {
        Self {
            kernel: Kernel::detect(),
        }
    }
    pub fn scalar() -> Self {
        Self {
            kernel: Kernel::Scalar,
        }
    }
    /// A given kernel; `None` if this CPU lacks it.
    pub fn with_kernel(kernel: Kernel) -> Option<Self> {
        kernel.is_available().then_some(Self { kernel })
    }
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// One level up: `dst[i] = H(src[2i] || src[2i+1])`, an odd last node paired with the
    /// zero subtree of `height`.
    fn hash_level(&self, src: &[[u8; 32]], height: u32, dst: &mut Vec<[u8; 32]>) {
        let pairs = src.len() / 2;
        dst.clear();
        dst.resize(src.len().div_ceil(2), [0u8; 32]);
        let whole: &[[u8; 64]] = bytemuck::cast_slice(&src[..pairs * 2]);
        sha256::hash_blocks(self.kernel, whole, &mut dst[..pairs]);
        if src.len() % 2 == 1 {
            dst[pairs] = hash_pair(
                self.kernel,
                &src[src.len() - 1],
                &zero_hashes()[height as usize],
            );
        }
    }

    /// Root of a tree with `leaves` (n >= 1) of height `h` >= ceil(log2 n), level by level
    /// in pooled per-thread scratch buffers.
    fn reduce_small(&self, leaves: &[[u8; 32]], h: u32) -> [u8; 32] {
        if leaves.len() == 1 {
            return pad_root(self.kernel, leaves[0], 0, h);
        }
        SCRATCH.with(|cell| {
            let [a, b] = &mut *cell.borrow_mut();
            self.hash_level(leaves, 0, a);
            let mut height = 1;
            while a.len() > 1 {
                self.hash_level(a, height, b);
                std::mem::swap(a, b);
                height += 1;
            }
            pad_root(self.kernel, a[0], height, h)
        })
    }

    /// Root of a tree of height `h` whose left part is `leaves` (1 <= n <= 2^h); the left
    /// half of every split is full, the right half partial or absent.
    fn reduce(&self, leaves: &[[u8; 32]], h: u32) -> [u8; 32] {
        let n = leaves.len() as u64;
        let natural = ceil_log2(n);
        if natural < h {
            let root = self.reduce(leaves, natural);
            return pad_root(self.kernel, root, natural, h);
        }
        if h <= CHUNK_HEIGHT {
            return self.reduce_small(leaves, h);
        }
        let half = 1usize << (h - 1);
        let (left, right) = leaves.split_at(half);
        let (l, r) = rayon::join(|| self.reduce(left, h - 1), || self.reduce(right, h - 1));
        hash_pair(self.kernel, &l, &r)
    }
}

impl BatchHasher for CpuHasher {
    fn name(&self) -> String {
        match self.kernel {
            Kernel::Scalar => "scalar".into(),
            k => format!("simd({})", k.name()),
        }
    }

    fn hash_pairs(&self, input: &[[u8; 64]], out: &mut [[u8; 32]]) -> Result<(), HashError> {
        assert_eq!(
            input.len(),
            out.len(),
            "hash_pairs: input and output lengths differ"
        );
        if input.len() < PAR_BLOCKS {
            sha256::hash_blocks(self.kernel, input, out);
        } else {
            use rayon::prelude::*;
            input
                .par_chunks(PAR_BLOCKS)
                .zip(out.par_chunks_mut(PAR_BLOCKS))
                .for_each(|(i, o)| sha256::hash_blocks(self.kernel, i, o));
        }
        Ok(())
    }

    fn merkleize_subtree(&self, leaves: &[[u8; 32]], depth: u32) -> Result<[u8; 32], HashError> {
        check_shape(leaves, depth)?;
        Ok(self.reduce(leaves, depth))
    }
}

/// The GPU backend: every call goes to the device; errors are returned, not hidden.
pub struct GpuBatchHasher {
    gpu: GpuHasher,
}

impl GpuBatchHasher {
    /// Probe for an adapter and build the pipelines.
    pub fn new() -> Result<Self, HashError> {
        let ctx = GpuContext::new()?;
        Ok(Self {
            gpu: GpuHasher::new(ctx)?,
        })
    }
    pub fn from_hasher(gpu: GpuHasher) -> Self {
        Self { gpu }
    }
    pub fn gpu(&self) -> &GpuHasher {
        &self.gpu
    }
}

impl BatchHasher for GpuBatchHasher {
    fn name(&self) -> String {
        format!("gpu({})", self.gpu.context().adapter_name())
    }
    fn hash_pairs(&self, input: &[[u8; 64]], out: &mut [[u8; 32]]) -> Result<(), HashError> {
        Ok(self.gpu.hash_pairs(input, out)?)
    }
    fn merkleize_subtree(&self, leaves: &[[u8; 32]], depth: u32) -> Result<[u8; 32], HashError> {
        check_shape(leaves, depth)?;
        Ok(self.gpu.merkleize(leaves, depth)?)
    }
}

/// `auto`: the CPU below the calibrated crossover, the GPU above it; any GPU failure
/// (no adapter, lost device, failed submission) falls back to the CPU, logged once.
pub struct AutoHasher {
    cpu: CpuHasher,
    /// The device, shared with the other engines of the same backend choice.
    probe: DeviceProbe,
    /// Probed and calibrated on first use by a tree big enough to possibly go to the GPU.
    gpu: OnceLock<Option<(GpuHasher, Calibration)>>,
    disabled: AtomicBool,
}

impl Default for AutoHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl AutoHasher {
    /// Probes for its own device on first use.
    pub fn new() -> Self {
        Self::with_probe(DeviceProbe::new())
    }

    /// Uses the device `probe` finds (shared with other engines).
    pub fn with_probe(probe: DeviceProbe) -> Self {
        Self {
            cpu: CpuHasher::simd(),
            probe,
            gpu: OnceLock::new(),
            disabled: AtomicBool::new(false),
        }
    }

    /// With a GPU (and calibration) already in hand, e.g. shared with other components.
    pub fn with_gpu(gpu: GpuHasher, calibration: Calibration) -> Self {
        let this = Self::with_probe(DeviceProbe::with_context(gpu.context().clone()));
        let _ = this.gpu.set(Some((gpu, calibration)));
        this
    }

    /// The GPU and its calibration, probing and calibrating once on first call.
    pub fn gpu(&self) -> Option<&(GpuHasher, Calibration)> {
        self.gpu
            .get_or_init(|| {
                let gpu = match GpuHasher::new(self.probe.context()?) {
                    Ok(gpu) => gpu,
                    Err(e) => {
                        tracing::warn!(
                            "hashing auto: no GPU hasher ({e}); using the CPU ({})",
                            self.cpu.name()
                        );
                        return None;
                    }
                };
                let cal = calibrate::calibrate(&self.cpu, &gpu);
                tracing::info!(
                    "hashing auto: {} — {} ({:?})",
                    gpu.context().adapter_name(),
                    cal.describe("leaves"),
                    cal.points
                );
                Some((gpu, cal))
            })
            .as_ref()
    }

    fn gpu_for(&self, leaves: usize) -> Option<&GpuHasher> {
        // Small trees never start the probe; once probed, the calibration decides.
        let unprobed = self.gpu.get().is_none();
        if (unprobed && leaves < calibrate::MIN_GPU_LEAVES) || self.disabled.load(Ordering::Relaxed)
        {
            return None;
        }
        let (gpu, cal) = self.gpu()?;
        cal.gpu_for(leaves).then_some(gpu)
    }

    fn fall_back(&self, e: &GpuError) {
        if !self.disabled.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "backend auto: GPU failed ({e}); falling back to the CPU ({}) from now on",
                self.cpu.name()
            );
        }
    }

    /// Whether a GPU failure has switched this hasher to the CPU for good.
    pub fn fell_back(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }
}

impl BatchHasher for AutoHasher {
    fn name(&self) -> String {
        match self.gpu.get() {
            Some(Some((gpu, _))) if !self.fell_back() => {
                format!(
                    "auto({} | gpu({}))",
                    self.cpu.name(),
                    gpu.context().adapter_name()
                )
            }
            _ => format!("auto({})", self.cpu.name()),
        }
    }

    fn hash_pairs(&self, input: &[[u8; 64]], out: &mut [[u8; 32]]) -> Result<(), HashError> {
        if let Some(gpu) = self.gpu_for(input.len()) {
            match gpu.hash_pairs(input, out) {
                Ok(()) => return Ok(()),
                Err(e) => self.fall_back(&e),
            }
        }
        self.cpu.hash_pairs(input, out)
    }

    fn merkleize_subtree(&self, leaves: &[[u8; 32]], depth: u32) -> Result<[u8; 32], HashError> {
        check_shape(leaves, depth)?;
        if let Some(gpu) = self.gpu_for(leaves.len()) {
            match gpu.merkleize(leaves, depth) {
                Ok(root) => return Ok(root),
                Err(e) => self.fall_back(&e),
            }
        }
        self.cpu.merkleize_subtree(leaves, depth)
    }
}
