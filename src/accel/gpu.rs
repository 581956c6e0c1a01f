//! The wgpu side of the accelerator: device and queue set up once, the SHA-256 merkle
//! pipelines compiled once, buffers pooled across calls.
//!
//! The kernels are in `shaders/sha256.wgsl` (their CPU twin is `quasar-kernels`, through
//! [`super::hash::CpuHasher`]). A pair is a 64-byte block (left chunk || right chunk) and its
//! digest is SHA-256 of those 64 bytes. A tree is reduced level by level on the GPU in
//! ONE queue submission: the leaves (and the per-dispatch parameters) go up through a
//! pooled, persistently mapped staging buffer, each compute dispatch reduces up to
//! [`FUSE_MAX`] levels in workgroup memory (`merkle_fused`, 512 nodes in, one node
//! out per workgroup), and only the root, plus the levels a caller asks to keep, come
//! back through a pooled readback buffer. Levels above the last level with more than
//! one real node are finished on the host with the zero hashes (at most `depth` hashes).
//!
//! Trees too large for one storage binding are split into aligned power-of-two
//! subtrees, one submission each, whose roots are then reduced as a smaller tree.
//!
//! Errors never panic: every submission runs inside error scopes (out-of-memory,
//! validation, internal), map results and poll results are checked, and any failure
//! or a device-lost callback marks the [`GpuContext`] lost; later calls then fail fast
//! with [`GpuError::Lost`] so the caller falls back to the CPU.

use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// WGSL source of the merkle kernels.
const SHADER: &str = include_str!("../../shaders/sha256.wgsl");
/// Invocations per workgroup (both kernels).
const WG_SIZE: u64 = 256;
/// Input nodes one `merkle_fused` workgroup reads.
const FUSED_SPAN: u64 = 2 * WG_SIZE;
/// Most levels one fused dispatch reduces: log2(WG_SIZE) + 1 (512 nodes -> 1).
pub const FUSE_MAX: u32 = 9;
/// Deepest tree `merkleize` accepts.
pub const MAX_DEPTH: u32 = 40;
/// Bytes per node.
const NODE: u64 = 32;
/// Bytes of one `Params` struct in the shader.
const PARAMS_SIZE: u64 = 32;
/// Most dispatches in one submission (a tree of depth 40 unfused needs 40).
const MAX_STEPS: u64 = 64;
/// Zero hashes uploaded for the shader (levels 0..ZERO_LEVELS).
const ZERO_LEVELS: usize = 64;
/// Largest storage binding the kernels address: u32 word indices (`node * 8`).
const MAX_ADDRESSABLE: u64 = 1 << 32;
/// How long one submission may run before the device is declared hung.
const POLL_TIMEOUT: Duration = Duration::from_secs(300);
/// Free buffers kept per (role, size class).
const POOL_PER_CLASS: usize = 2;
/// Most bytes of free buffers the pool keeps.
const POOL_MAX_BYTES: u64 = 2 << 30;

/// A root and the kept levels, in the order asked for.
pub type RootAndLevels = ([u8; 32], Vec<Vec<[u8; 32]>>);

/// Errors of the GPU path. Every one of them means "use the CPU for this batch".
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No usable adapter on this host.
    #[error("no GPU adapter found (install mesa-vulkan-drivers for a CPU Vulkan device): {0}")]
    NoAdapter(String),
    /// The adapter refused to create a device, or a pipeline failed to build.
    #[error("GPU device setup failed: {0}")]
    Device(String),
    /// The device was lost (driver reset, hang, or an earlier failure on this context).
    #[error("GPU device lost: {0}")]
    Lost(String),
    /// A submission failed validation, ran out of memory, or its results could not be read.
    #[error("GPU submission failed: {0}")]
    Submission(String),
    /// The request is outside what the GPU path accepts (depth, leaf count, buffer limits).
    #[error("too large for the GPU path: {0}")]
    TooLarge(String),
}

/// Cumulative counters of one [`GpuContext`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Queue submissions.
    pub submissions: u64,
    /// Bytes written to the device (leaves or blocks, plus dispatch parameters).
    pub bytes_uploaded: u64,
    /// Bytes read back from the device.
    pub bytes_downloaded: u64,
}

/// Which compiled pipelines a [`GpuContext`] keeps: a kernel family and its variant
/// (e.g. the aggregation kernels linked with one Fp multiplication).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub kernel: &'static str,
    pub variant: &'static str,
}

/// Compiled pipelines by key, each a value of its user's own type.
type PipelineSlots = HashMap<PipelineKey, Arc<dyn std::any::Any + Send + Sync>>;

/// The wgpu device and queue, created once and passed to every user (each holds an
/// `Arc`), with the pipelines compiled on it (see [`GpuContext::pipelines`]).
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    lost: Arc<AtomicBool>,
    lost_reason: Arc<Mutex<Option<String>>>,
    submissions: AtomicU64,
    bytes_uploaded: AtomicU64,
    bytes_downloaded: AtomicU64,
    /// Pipelines compiled on this device, shared by all its users (a build takes seconds
    /// on lavapipe); they live and die with the context.
    pipelines: Mutex<PipelineSlots>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.adapter_name())
            .field("lost", &self.is_lost())
            .field("stats", &self.stats())
            .finish()
    }
}

fn mark_lost(flag: &AtomicBool, slot: &Mutex<Option<String>>, why: &str) {
    flag.store(true, Ordering::SeqCst);
    let mut reason = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if reason.is_none() {
        *reason = Some(why.to_string());
    }
}

impl GpuContext {
    /// Finds a high-performance adapter and opens a device on it (blocking).
    ///
    /// The device gets the adapter's own `max_buffer_size` and
    /// `max_storage_buffer_binding_size`, so large trees fit in one binding.
    pub fn new() -> Result<Arc<GpuContext>, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let supported = adapter.limits();
        let mut limits = wgpu::Limits::default().or_worse_values_from(&supported);
        limits.max_buffer_size = supported.max_buffer_size;
        limits.max_storage_buffer_binding_size = supported.max_storage_buffer_binding_size;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("quasar"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(format!("{} ({:?}): {e}", info.name, info.backend)))?;

        let lost = Arc::new(AtomicBool::new(false));
        let lost_reason = Arc::new(Mutex::new(None));
        {
            let (flag, slot) = (lost.clone(), lost_reason.clone());
            device.set_device_lost_callback(move |reason, message| {
                let why = format!("{reason:?}: {message}");
                tracing::error!(target: "quasar::accel::gpu", "GPU device lost: {why}");
                mark_lost(&flag, &slot, &why);
            });
        }
        {
            let (flag, slot) = (lost.clone(), lost_reason.clone());
            device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
                let why = format!("uncaptured GPU error: {error}");
                tracing::error!(target: "quasar::accel::gpu", "{why}");
                mark_lost(&flag, &slot, &why);
            }));
        }
        let ctx = GpuContext {
            device,
            queue,
            info,
            limits,
            lost,
            lost_reason,
            submissions: AtomicU64::new(0),
            bytes_uploaded: AtomicU64::new(0),
            bytes_downloaded: AtomicU64::new(0),
            pipelines: Mutex::new(HashMap::new()),
        };
        tracing::info!(
            target: "quasar::accel::gpu",
            adapter = %ctx.adapter_name(),
            max_buffer = ctx.limits.max_buffer_size,
            max_storage_binding = ctx.limits.max_storage_buffer_binding_size,
            "GPU device ready"
        );
        Ok(Arc::new(ctx))
    }

    /// Adapter name with backend and device type, e.g.
    /// `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn adapter_name(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Whether the adapter is a software rasterizer on the CPU (lavapipe, WARP, …).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether the device was lost or a submission failed; the context is then unusable.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Cumulative submissions and bytes moved.
    pub fn stats(&self) -> GpuStats {
        GpuStats {
            submissions: self.submissions.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
            bytes_downloaded: self.bytes_downloaded.load(Ordering::Relaxed),
        }
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The pipelines kept under `key` on this context, built by `build` on first use (the
    /// lock is held while building, so concurrent users build once). Every user of the
    /// context shares them; another context never sees them.
    pub fn pipelines<T: Clone + Send + Sync + 'static>(
        &self,
        key: PipelineKey,
        build: impl FnOnce(&GpuContext) -> Result<T, GpuError>,
    ) -> Result<T, GpuError> {
        let mut slots = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = slots.get(&key).and_then(|p| p.downcast_ref::<T>()) {
            return Ok(found.clone());
        }
        let built = build(self)?;
        slots.insert(key, Arc::new(built.clone()));
        Ok(built)
    }

    /// How many pipeline sets this context keeps (tests).
    pub fn cached_pipelines(&self) -> usize {
        self.pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Destroy the device, as a driver reset or a removed card would: every later call
    /// fails with `GpuError::Lost`, and `auto` falls back to the CPU. Tests use it to run
    /// that path on a real device.
    pub fn destroy(&self) {
        self.device.destroy();
        self.mark_lost("device destroyed");
    }

    fn mark_lost(&self, why: &str) {
        mark_lost(&self.lost, &self.lost_reason, why);
    }

    fn check_alive(&self) -> Result<(), GpuError> {
        if !self.is_lost() {
            return Ok(());
        }
        let reason = self
            .lost_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Err(GpuError::Lost(
            reason.unwrap_or_else(|| "device lost".into()),
        ))
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes; any captured
    /// error marks the context lost and becomes `wrap(message)`.
    fn scoped<T>(
        &self,
        what: &str,
        wrap: fn(String) -> GpuError,
        f: impl FnOnce() -> T,
    ) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        let errors = [
            pollster::block_on(internal.pop()),
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        if let Some(error) = errors.into_iter().flatten().next() {
            let why = format!("{what}: {error}");
            tracing::error!(target: "quasar::accel::gpu", "{why}");
            self.mark_lost(&why);
            return Err(wrap(why));
        }
        Ok(out)
    }

    // Access for the other accelerators on this device (`accel::aggregate`).

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// `Err(GpuError::Lost)` once the device was lost or a submission failed.
    pub fn ensure_alive(&self) -> Result<(), GpuError> {
        self.check_alive()
    }

    /// Marks the context lost after a failure outside this module.
    pub fn mark_failed(&self, why: &str) {
        self.mark_lost(why);
    }

    /// Counts one submission made outside this module in [`GpuContext::stats`].
    pub fn record_submission(&self, uploaded: u64, downloaded: u64) {
        self.submissions.fetch_add(1, Ordering::Relaxed);
        self.bytes_uploaded.fetch_add(uploaded, Ordering::Relaxed);
        self.bytes_downloaded
            .fetch_add(downloaded, Ordering::Relaxed);
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes, as this
    /// module's submissions do; a captured error marks the context lost.
    pub fn error_scoped<T>(
        &self,
        what: &str,
        wrap: fn(String) -> GpuError,
        f: impl FnOnce() -> T,
    ) -> Result<T, GpuError> {
        self.scoped(what, wrap, f)
    }
}

/// Which entry point a dispatch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// One level, one hash per invocation.
    Level,
    /// Up to [`FUSE_MAX`] levels in workgroup memory.
    Fused,
}

/// One dispatch: reduce `fuse` levels from `m_in` nodes at `src` into `dst`.
#[derive(Clone, Copy, Debug)]
struct Step {
    kernel: Kernel,
    src: u64,
    dst: u64,
    m_in: u64,
    level: u32,
    fuse: u32,
}

impl Step {
    fn m_out(&self) -> u64 {
        self.m_in.div_ceil(1 << self.fuse)
    }
    fn workgroups(&self) -> u64 {
        match self.kernel {
            Kernel::Level => self.m_out().div_ceil(WG_SIZE),
            Kernel::Fused => self.m_in.div_ceil(FUSED_SPAN),
        }
    }
}

/// One submission's worth of work.
struct Job<'a> {
    /// Bytes placed at node 0 of the node buffer.
    input: &'a [u8],
    /// Nodes the node buffer must hold (input and every written level).
    total_nodes: u64,
    steps: Vec<Step>,
    /// (node offset, node count) ranges read back, concatenated.
    downloads: Vec<(u64, u64)>,
}

/// Where each materialized level of a planned tree lives in the node buffer.
struct TreePlan {
    steps: Vec<Step>,
    total_nodes: u64,
    /// level -> (node offset, node count) for levels 0..=height that are written.
    levels: HashMap<u32, (u64, u64)>,
    /// ceil(log2(n)): the level where one node is left.
    height: u32,
}

fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// Plans the reduction of `n >= 1` nodes at absolute level `base` down to one node,
/// stopping at every level in `keep` (relative) so it is written out.
fn plan_tree(n: u64, base: u32, keep: &[u32], fused: bool) -> TreePlan {
    let height = ceil_log2(n);
    let mut steps = Vec::new();
    let mut levels = HashMap::new();
    levels.insert(0, (0, n));
    let (mut level, mut off, mut m, mut next) = (0u32, 0u64, n, n);
    while level < height {
        let mut fuse = if fused {
            FUSE_MAX.min(height - level)
        } else {
            1
        };
        if let Some(k) = keep
            .iter()
            .copied()
            .filter(|&k| k > level && k < height)
            .min()
        {
            fuse = fuse.min(k - level);
        }
        let step = Step {
            kernel: if fused { Kernel::Fused } else { Kernel::Level },
            src: off,
            dst: next,
            m_in: m,
            level: base + level,
            fuse,
        };
        let m_out = step.m_out();
        steps.push(step);
        off = next;
        next += m_out;
        m = m_out;
        level += fuse;
        levels.insert(level, (off, m));
    }
    TreePlan {
        steps,
        total_nodes: next,
        levels,
        height,
    }
}

/// Buffer roles in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    /// STORAGE | COPY_DST | COPY_SRC: input and every level of a tree.
    Nodes,
    /// MAP_WRITE | COPY_SRC, kept mapped while pooled.
    Upload,
    /// MAP_READ | COPY_DST.
    Readback,
    /// UNIFORM | COPY_DST: per-dispatch parameters.
    Params,
}

impl Role {
    fn usage(self) -> wgpu::BufferUsages {
        use wgpu::BufferUsages as U;
        match self {
            Role::Nodes => U::STORAGE | U::COPY_DST | U::COPY_SRC,
            Role::Upload => U::MAP_WRITE | U::COPY_SRC,
            Role::Readback => U::MAP_READ | U::COPY_DST,
            Role::Params => U::UNIFORM | U::COPY_DST,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Role::Nodes => "quasar merkle nodes",
            Role::Upload => "quasar merkle upload",
            Role::Readback => "quasar merkle readback",
            Role::Params => "quasar merkle params",
        }
    }
}

/// Free buffers by (role, capacity). Buffers are taken out for a call and put back
/// after it, so concurrent calls never share one.
#[derive(Default)]
struct Pool {
    free: HashMap<(Role, u64), Vec<wgpu::Buffer>>,
    free_bytes: u64,
    /// Class -> tick of its last take or give, for least-recently-used eviction.
    last_used: HashMap<(Role, u64), u64>,
    tick: u64,
    created: u64,
    reused: u64,
}

/// Counters of the buffer pool (for tests and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers created since the hasher was built.
    pub created: u64,
    /// Buffer requests served from the pool.
    pub reused: u64,
    /// Buffers currently free in the pool.
    pub free: u64,
    /// Bytes of the free buffers.
    pub free_bytes: u64,
}

/// SHA-256 pair hashing and merkleization on the GPU.
pub struct GpuHasher {
    ctx: Arc<GpuContext>,
    level_pipeline: wgpu::ComputePipeline,
    fused_pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    zeros_buffer: wgpu::Buffer,
    zero_hashes: Vec<[u8; 32]>,
    pool: Mutex<Pool>,
    fused: bool,
    /// log2 of the most leaves one submission takes.
    subtree_log2: u32,
    /// Most 64-byte blocks one `hash_pairs` submission takes.
    max_pairs: u64,
}

impl std::fmt::Debug for GpuHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuHasher")
            .field("ctx", &self.ctx)
            .field("fused", &self.fused)
            .field("subtree_log2", &self.subtree_log2)
            .finish()
    }
}

/// One pair hashed on the host (the few levels above a subtree root).
fn hash_pair_cpu(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    crate::accel::hash::hash_pair(quasar_kernels::sha256::Kernel::detect(), left, right)
}

impl GpuHasher {
    /// Compiles the pipelines (once) and uploads the zero-hash table.
    pub fn new(ctx: Arc<GpuContext>) -> Result<GpuHasher, GpuError> {
        ctx.check_alive()?;
        let zero_hashes = crate::merkle::zero_hashes()[..ZERO_LEVELS].to_vec();
        let device = &ctx.device;
        let (level_pipeline, fused_pipeline, layout, zeros_buffer) =
            ctx.scoped("building the merkle pipelines", GpuError::Device, || {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("quasar sha256.wgsl"),
                    source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(SHADER)),
                });
                let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                };
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("quasar merkle layout"),
                    entries: &[
                        storage(0, false),
                        storage(1, true),
                        wgpu::BindGroupLayoutEntry {
                            binding: 2,
                            visibility: wgpu::ShaderStages::COMPUTE,
                            ty: wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Uniform,
                                has_dynamic_offset: true,
                                min_binding_size: NonZeroU64::new(PARAMS_SIZE),
                            },
                            count: None,
                        },
                    ],
                });
                let pipeline_layout =
                    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some("quasar merkle pipeline layout"),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                let pipeline = |entry: &str| {
                    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(entry),
                        layout: Some(&pipeline_layout),
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &[],
                            // The tile is always written before it is read.
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    })
                };
                let level = pipeline("merkle_level");
                let fused = pipeline("merkle_fused");
                let zeros = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("quasar zero hashes"),
                    size: (ZERO_LEVELS as u64) * NODE,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                ctx.queue
                    .write_buffer(&zeros, 0, zero_hashes.as_flattened());
                (level, fused, layout, zeros)
            })?;

        let limit = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size)
            .min(MAX_ADDRESSABLE);
        // A tree of S leaves needs < 2 S nodes (unfused worst case); a hash_pairs
        // batch of n blocks needs 3 n nodes.
        let subtree_log2 = (63 - (limit / (2 * NODE)).max(1).leading_zeros()).min(MAX_DEPTH);
        let max_pairs = (limit / (3 * NODE)).max(1);
        let fused = !ctx.is_software();
        Ok(GpuHasher {
            ctx,
            level_pipeline,
            fused_pipeline,
            layout,
            zeros_buffer,
            zero_hashes,
            pool: Mutex::new(Pool::default()),
            // Measured: on lavapipe the barrier-heavy fused kernel is 7-40x slower than
            // one dispatch per level; on H100/H200 it is 8-30% faster up to 2^18 leaves
            // (fewer dispatches and global-memory round trips) and equal above.
            fused,
            subtree_log2,
            max_pairs,
        })
    }

    /// Chooses the fused kernel (up to 9 levels per dispatch in workgroup memory) or one
    /// dispatch per level; both give the same results. The default is fused on hardware
    /// adapters and per-level on software ones (lavapipe), whichever measured faster.
    pub fn with_fusion(mut self, fused: bool) -> Self {
        self.fused = fused;
        self
    }

    /// Whether this hasher uses the fused kernel.
    pub fn is_fused(&self) -> bool {
        self.fused
    }

    /// Caps the leaves one submission takes (rounded down to a power of two, at least 2);
    /// larger trees are split into subtrees of that size. The default comes from the
    /// device's buffer limits; a smaller cap bounds GPU memory per call.
    pub fn with_max_subtree_leaves(mut self, leaves: u64) -> Self {
        let leaves = leaves.max(2);
        self.subtree_log2 = self.subtree_log2.min(63 - leaves.leading_zeros());
        self.max_pairs = self.max_pairs.min(leaves);
        self
    }

    /// The shared device context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// `zero_hashes[i]`: the root of a subtree of height `i` with all-zero leaves.
    pub fn zero_hash(&self, level: u32) -> Option<[u8; 32]> {
        self.zero_hashes.get(level as usize).copied()
    }

    /// Buffer pool counters.
    pub fn pool_stats(&self) -> PoolStats {
        let pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        PoolStats {
            created: pool.created,
            reused: pool.reused,
            free: pool.free.values().map(|v| v.len() as u64).sum(),
            free_bytes: pool.free_bytes,
        }
    }

    /// `out[i] = SHA-256(blocks[i])`; any length, including 0.
    pub fn hash_pairs(&self, blocks: &[[u8; 64]], out: &mut [[u8; 32]]) -> Result<(), GpuError> {
        if blocks.len() != out.len() {
            return Err(GpuError::Submission(format!(
                "hash_pairs: {} blocks but room for {} digests",
                blocks.len(),
                out.len()
            )));
        }
        self.ctx.check_alive()?;
        let per_call = usize::try_from(self.max_pairs).unwrap_or(usize::MAX);
        for (blocks, out) in blocks.chunks(per_call).zip(out.chunks_mut(per_call)) {
            let n = blocks.len() as u64;
            let job = Job {
                input: blocks.as_flattened(),
                total_nodes: 3 * n,
                steps: vec![Step {
                    kernel: Kernel::Level,
                    src: 0,
                    dst: 2 * n,
                    m_in: 2 * n,
                    level: 0,
                    fuse: 1,
                }],
                downloads: vec![(2 * n, n)],
            };
            let bytes = self.run(&job)?;
            for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact(32)) {
                o.copy_from_slice(chunk);
            }
            tracing::debug!(target: "quasar::accel::gpu", blocks = n, "gpu hash_pairs");
        }
        Ok(())
    }

    /// Root of the subtree of height `depth` whose first `leaves.len()` leaves are
    /// `leaves` and the rest zero chunks (`leaves.len() <= 2^depth`, `depth <= 40`).
    /// One submission for trees that fit the device's buffers; only the root comes back.
    pub fn merkleize(&self, leaves: &[[u8; 32]], depth: u32) -> Result<[u8; 32], GpuError> {
        Ok(self.merkleize_levels(leaves, depth, &[])?.0)
    }

    /// Like [`merkleize`](Self::merkleize), also returning the levels in `keep` (level 0 =
    /// the leaves, level k has ceil(n / 2^k) nodes, `k <= depth`), in `keep`'s order,
    /// read back in the same submission as the root.
    pub fn merkleize_levels(
        &self,
        leaves: &[[u8; 32]],
        depth: u32,
        keep: &[u32],
    ) -> Result<RootAndLevels, GpuError> {
        if depth > MAX_DEPTH {
            return Err(GpuError::TooLarge(format!(
                "depth {depth} exceeds the maximum {MAX_DEPTH}"
            )));
        }
        if leaves.len() as u64 > 1u64 << depth {
            return Err(GpuError::TooLarge(format!(
                "{} leaves do not fit a tree of depth {depth}",
                leaves.len()
            )));
        }
        if let Some(&k) = keep.iter().find(|&&k| k > depth) {
            return Err(GpuError::TooLarge(format!(
                "level {k} is above the tree's depth {depth}"
            )));
        }
        self.ctx.check_alive()?;
        self.reduce(leaves, 0, depth, keep)
    }

    /// Reduces `leaves` (at absolute level `base`) to the node `height` levels up,
    /// splitting into subtrees when the tree does not fit one submission.
    fn reduce(
        &self,
        leaves: &[[u8; 32]],
        base: u32,
        height: u32,
        keep: &[u32],
    ) -> Result<RootAndLevels, GpuError> {
        let n = leaves.len() as u64;
        if n == 0 {
            return Ok((
                self.zero_hashes[(base + height) as usize],
                vec![Vec::new(); keep.len()],
            ));
        }
        let s = self.subtree_log2;
        if n <= 1 << s || height <= s {
            return self.reduce_one(leaves, base, height, keep);
        }
        // Aligned subtrees of 2^s leaves, one submission each, then their roots.
        let low: Vec<u32> = keep.iter().copied().filter(|&k| k <= s).collect();
        let high: Vec<u32> = keep
            .iter()
            .copied()
            .filter(|&k| k > s)
            .map(|k| k - s)
            .collect();
        let mut roots = Vec::with_capacity(n.div_ceil(1 << s) as usize);
        let mut low_levels: Vec<Vec<[u8; 32]>> = vec![Vec::new(); low.len()];
        tracing::debug!(
            target: "quasar::accel::gpu",
            leaves = n,
            subtree_leaves = 1u64 << s,
            subtrees = n.div_ceil(1 << s),
            "gpu merkle tree split into subtrees"
        );
        for chunk in leaves.chunks(1 << s) {
            let (root, levels) = self.reduce_one(chunk, base, s, &low)?;
            roots.push(root);
            for (all, part) in low_levels.iter_mut().zip(levels) {
                all.extend(part);
            }
        }
        let (root, high_levels) = self.reduce(&roots, base + s, height - s, &high)?;
        let (mut low_it, mut high_it) = (low_levels.into_iter(), high_levels.into_iter());
        let levels = keep
            .iter()
            .map(|&k| {
                if k <= s {
                    low_it.next()
                } else {
                    high_it.next()
                }
                .unwrap_or_default()
            })
            .collect();
        Ok((root, levels))
    }

    /// One submission: `1 <= leaves.len() <= 2^height`.
    fn reduce_one(
        &self,
        leaves: &[[u8; 32]],
        base: u32,
        height: u32,
        keep: &[u32],
    ) -> Result<RootAndLevels, GpuError> {
        let n = leaves.len() as u64;
        let plan = plan_tree(n, base, keep, self.fused);
        let h = plan.height;
        // Levels read back: the root at h, and kept levels strictly between 0 and h.
        let mut wanted: Vec<u32> = keep.iter().copied().filter(|&k| k > 0 && k < h).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut downloads = Vec::new();
        let mut at = HashMap::new();
        let mut cursor = 0usize;
        for &k in wanted.iter().chain(std::iter::once(&h)) {
            let Some(&(off, count)) = plan.levels.get(&k) else {
                return Err(GpuError::Submission(format!(
                    "internal: level {k} was not planned"
                )));
            };
            downloads.push((off, count));
            at.insert(k, (cursor, count as usize));
            cursor += count as usize;
        }
        let started = Instant::now();
        let (mut node, bytes) = if plan.steps.is_empty() {
            (leaves[0], Vec::new())
        } else {
            let job = Job {
                input: leaves.as_flattened(),
                total_nodes: plan.total_nodes,
                steps: plan.steps.clone(),
                downloads,
            };
            let bytes = self.run(&job)?;
            let root_at = at.get(&h).map_or(0, |&(c, _)| c) * 32;
            let mut root = [0u8; 32];
            root.copy_from_slice(&bytes[root_at..root_at + 32]);
            (root, bytes)
        };
        tracing::debug!(
            target: "quasar::accel::gpu",
            leaves = n,
            levels = h,
            dispatches = plan.steps.len(),
            fused = self.fused,
            uploaded = n * NODE,
            nodes_bytes = plan.total_nodes * NODE,
            downloaded = bytes.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "gpu merkle tree"
        );
        // Finish above the last level with more than one real node on the host.
        let mut upper = vec![node];
        for k in h..height {
            node = hash_pair_cpu(&node, &self.zero_hashes[(base + k) as usize]);
            upper.push(node);
        }
        let levels = keep
            .iter()
            .map(|&k| {
                if k == 0 {
                    leaves.to_vec()
                } else if k >= h {
                    vec![upper[(k - h) as usize]]
                } else {
                    let (c, count) = at[&k];
                    bytes[c * 32..(c + count) * 32]
                        .chunks_exact(32)
                        .map(|b| {
                            let mut x = [0u8; 32];
                            x.copy_from_slice(b);
                            x
                        })
                        .collect()
                }
            })
            .collect();
        Ok((node, levels))
    }

    /// Size class of a buffer holding `bytes`: quarter steps between powers of two
    /// (at most 25% slack), at least 256 bytes, never above the device's limit.
    fn class_size(&self, bytes: u64) -> u64 {
        let bytes = bytes.max(256);
        let pow2 = bytes.next_power_of_two();
        let step = (pow2 / 8).max(64);
        let class = bytes.div_ceil(step) * step;
        if class <= self.ctx.limits.max_buffer_size {
            class
        } else {
            bytes.div_ceil(4) * 4
        }
    }

    /// A buffer of at least `bytes` for `role`, from the pool or new. New upload
    /// buffers are mapped at creation; pooled ones were re-mapped after their last use.
    fn take(&self, role: Role, bytes: u64) -> wgpu::Buffer {
        let size = self.class_size(bytes);
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.tick += 1;
        let tick = pool.tick;
        pool.last_used.insert((role, size), tick);
        if let Some(buffer) = pool.free.get_mut(&(role, size)).and_then(Vec::pop) {
            pool.reused += 1;
            pool.free_bytes -= size;
            return buffer;
        }
        pool.created += 1;
        drop(pool);
        self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(role.label()),
            size,
            usage: role.usage(),
            mapped_at_creation: role == Role::Upload,
        })
    }

    /// Returns a buffer to the pool. A full class drops it; when the pool would exceed
    /// [`POOL_MAX_BYTES`], free buffers of other classes are evicted first (the most
    /// recently used classes stay), and a buffer larger than the whole budget is dropped.
    fn give(&self, role: Role, buffer: wgpu::Buffer) {
        let size = buffer.size();
        if size > POOL_MAX_BYTES {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool
            .free
            .get(&(role, size))
            .is_some_and(|v| v.len() >= POOL_PER_CLASS)
        {
            return;
        }
        while pool.free_bytes + size > POOL_MAX_BYTES {
            let Some(key) = pool
                .free
                .iter()
                .filter(|(k, v)| **k != (role, size) && !v.is_empty())
                .map(|(k, _)| *k)
                .min_by_key(|k| pool.last_used.get(k).copied().unwrap_or(0))
            else {
                return;
            };
            if let Some(evicted) = pool.free.get_mut(&key).and_then(Vec::pop) {
                pool.free_bytes -= evicted.size();
            }
            pool.free.retain(|_, v| !v.is_empty());
        }
        pool.tick += 1;
        let tick = pool.tick;
        pool.last_used.insert((role, size), tick);
        pool.free.entry((role, size)).or_default().push(buffer);
        pool.free_bytes += size;
    }

    /// Runs one job in one submission and returns the downloaded bytes.
    fn run(&self, job: &Job<'_>) -> Result<Vec<u8>, GpuError> {
        let ctx = &self.ctx;
        ctx.check_alive()?;
        let device = &ctx.device;
        let align = u64::from(ctx.limits.min_uniform_buffer_offset_alignment).max(PARAMS_SIZE);
        let steps = job.steps.len() as u64;
        if steps == 0 || steps > MAX_STEPS {
            return Err(GpuError::Submission(format!(
                "internal: {steps} dispatches in one job"
            )));
        }
        let in_bytes = job.input.len() as u64;
        let params_bytes = steps * align;
        let up_bytes = in_bytes + params_bytes;
        let nodes_bytes = job.total_nodes * NODE;
        let down_bytes: u64 = job.downloads.iter().map(|&(_, c)| c * NODE).sum();
        let binding_limit = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(MAX_ADDRESSABLE);
        if nodes_bytes > binding_limit || up_bytes > ctx.limits.max_buffer_size {
            return Err(GpuError::TooLarge(format!(
                "{nodes_bytes} bytes of nodes exceed the device's storage binding limit of {binding_limit}"
            )));
        }
        let max_dim = u64::from(ctx.limits.max_compute_workgroups_per_dimension);
        let mut grids = Vec::with_capacity(job.steps.len());
        for step in &job.steps {
            let groups = step.workgroups();
            let x = groups.clamp(1, max_dim);
            let y = groups.div_ceil(x);
            if y > max_dim {
                return Err(GpuError::TooLarge(format!(
                    "{groups} workgroups in one dispatch"
                )));
            }
            grids.push((x as u32, y as u32));
        }
        let mut params = vec![0u8; params_bytes as usize];
        for (i, step) in job.steps.iter().enumerate() {
            let words = [
                step.src as u32,
                step.dst as u32,
                step.m_in as u32,
                step.level,
                step.fuse,
                0,
                0,
                0,
            ];
            let at = i * align as usize;
            params[at..at + PARAMS_SIZE as usize].copy_from_slice(bytemuck::cast_slice(&words));
        }

        let upload = self.take(Role::Upload, up_bytes);
        let nodes = self.take(Role::Nodes, nodes_bytes);
        let uniforms = self.take(Role::Params, MAX_STEPS * align);
        let readback = self.take(Role::Readback, down_bytes);

        let submitted = ctx.scoped("merkle submission", GpuError::Submission, || {
            {
                let mut view = upload
                    .get_mapped_range_mut(0..up_bytes)
                    .map_err(|e| GpuError::Submission(format!("mapping the upload buffer: {e}")))?;
                view.slice(..in_bytes as usize).copy_from_slice(job.input);
                view.slice(in_bytes as usize..).copy_from_slice(&params);
            }
            upload.unmap();
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("quasar merkle bind group"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &nodes,
                            offset: 0,
                            size: NonZeroU64::new(nodes_bytes),
                        }),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: self.zeros_buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &uniforms,
                            offset: 0,
                            size: NonZeroU64::new(PARAMS_SIZE),
                        }),
                    },
                ],
            });
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("quasar merkle"),
            });
            encoder.copy_buffer_to_buffer(&upload, 0, &nodes, 0, in_bytes);
            encoder.copy_buffer_to_buffer(&upload, in_bytes, &uniforms, 0, params_bytes);
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("quasar merkle levels"),
                    timestamp_writes: None,
                });
                for (i, (step, &(x, y))) in job.steps.iter().zip(&grids).enumerate() {
                    pass.set_pipeline(match step.kernel {
                        Kernel::Level => &self.level_pipeline,
                        Kernel::Fused => &self.fused_pipeline,
                    });
                    pass.set_bind_group(0, &bind_group, &[(i as u64 * align) as u32]);
                    pass.dispatch_workgroups(x, y, 1);
                }
            }
            let mut cursor = 0;
            for &(off, count) in &job.downloads {
                encoder.copy_buffer_to_buffer(&nodes, off * NODE, &readback, cursor, count * NODE);
                cursor += count * NODE;
            }
            Ok(ctx.queue.submit([encoder.finish()]))
        });
        let index = match submitted {
            Ok(Ok(index)) => index,
            Ok(Err(e)) | Err(e) => {
                ctx.mark_lost(&e.to_string());
                return Err(e);
            }
        };
        ctx.submissions.fetch_add(1, Ordering::Relaxed);
        ctx.bytes_uploaded.fetch_add(up_bytes, Ordering::Relaxed);
        tracing::trace!(
            target: "quasar::accel::gpu",
            dispatches = steps,
            uploaded = up_bytes,
            downloaded = down_bytes,
            nodes_bytes,
            "gpu submission"
        );

        let (tx, rx) = mpsc::channel();
        let read_tx = tx.clone();
        readback.map_async(wgpu::MapMode::Read, 0..down_bytes, move |r| {
            let _ = read_tx.send((Role::Readback, r));
        });
        upload.map_async(wgpu::MapMode::Write, .., move |r| {
            let _ = tx.send((Role::Upload, r));
        });
        let polled = device.poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(POLL_TIMEOUT),
        });
        if let Err(e) = polled {
            let why = format!("waiting for the merkle submission: {e}");
            ctx.mark_lost(&why);
            return Err(GpuError::Lost(why));
        }
        // Wait for both map callbacks. When several threads share the device, another
        // thread's poll can be the one that runs our callbacks, a moment after our own
        // poll returned: keep polling until both arrive (or the timeout passes).
        let (mut read_ok, mut upload_ok) = (None, None);
        let started = std::time::Instant::now();
        while read_ok.is_none() || upload_ok.is_none() {
            match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                Ok((Role::Readback, r)) => read_ok = Some(r),
                Ok((_, r)) => upload_ok = Some(r),
                Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < POLL_TIMEOUT => {
                    let _ = device.poll(wgpu::PollType::Poll);
                }
                Err(_) => break,
            }
        }
        match read_ok {
            Some(Ok(())) => {}
            other => {
                let why = match other {
                    Some(Err(e)) => format!("mapping the readback buffer: {e}"),
                    _ => "the readback buffer was never mapped".to_string(),
                };
                let error = if ctx.is_lost() {
                    GpuError::Lost(why.clone())
                } else {
                    GpuError::Submission(why.clone())
                };
                ctx.mark_lost(&why);
                return Err(error);
            }
        }
        let out = {
            let view = readback.get_mapped_range(0..down_bytes).map_err(|e| {
                let why = format!("reading the readback buffer: {e}");
                ctx.mark_lost(&why);
                GpuError::Submission(why)
            })?;
            view.to_vec()
        };
        readback.unmap();
        ctx.bytes_downloaded
            .fetch_add(down_bytes, Ordering::Relaxed);

        self.give(Role::Nodes, nodes);
        self.give(Role::Params, uniforms);
        self.give(Role::Readback, readback);
        if matches!(upload_ok, Some(Ok(()))) {
            self.give(Role::Upload, upload);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fuses_nine_levels_and_stops_at_kept_levels() {
        let plan = plan_tree(1000, 0, &[], true);
        assert_eq!(plan.height, 10);
        let fuses: Vec<u32> = plan.steps.iter().map(|s| s.fuse).collect();
        assert_eq!(fuses, vec![9, 1]);
        assert_eq!(plan.levels[&9], (1000, 2));
        assert_eq!(plan.levels[&10], (1002, 1));

        let plan = plan_tree(1000, 0, &[3, 9], true);
        let fuses: Vec<u32> = plan.steps.iter().map(|s| s.fuse).collect();
        assert_eq!(fuses, vec![3, 6, 1]);
        assert_eq!(plan.levels[&3].1, 125);

        let plan = plan_tree(5, 0, &[], false);
        assert_eq!(plan.steps.len(), 3);
        assert_eq!(plan.total_nodes, 5 + 3 + 2 + 1);
        assert!(plan_tree(1, 0, &[], true).steps.is_empty());
    }

    #[test]
    fn ceil_log2_matches_definition() {
        for (n, h) in [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (512, 9), (513, 10)] {
            assert_eq!(ceil_log2(n), h, "n = {n}");
        }
    }
}
