//! The wgpu device every accelerator shares, and the pieces of a submission that the
//! hasher ([`super::gpu`]) and the aggregator ([`super::aggregate`]) both need, written
//! once: the [`GpuContext`] (device, queue, limits, error scopes, lost-device state,
//! counters, the pipeline cache), [`Program`] (a WGSL module linked from sources, its
//! bind-group layout and its pipelines), [`BufferPool`] (buffers reused across calls by
//! kind and size class), [`request_read`] / [`finish_read`] (map a submission's results
//! as soon as it is done, wait for it without a sleep loop, re-map an upload buffer for
//! the next call; [`read_back`] is both), [`grid`] and the per-dispatch parameter block
//! ([`pack_params`]).
//!
//! Errors never panic: every step runs inside error scopes (out-of-memory, validation,
//! internal), map results and poll results are checked, and any failure or a device-lost
//! callback marks the [`GpuContext`] lost; later calls then fail fast with
//! [`GpuError::Lost`] so the caller falls back to the CPU.

use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long one submission may run before the device is declared hung.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes of one per-dispatch parameter block (8 words) in every kernel.
pub const PARAMS_SIZE: u64 = 32;
/// Free buffers a pool keeps per (kind, size class).
const POOL_PER_CLASS: usize = 2;
/// Most bytes of free buffers a pool keeps.
const POOL_MAX_BYTES: u64 = 2 << 30;

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

    /// Largest buffer one storage binding may cover (and one buffer may have).
    pub fn binding_limit(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
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
        self.mark_failed("device destroyed");
    }

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

    /// Marks the context lost after a failure; every later call fails fast.
    pub fn mark_failed(&self, why: &str) {
        mark_lost(&self.lost, &self.lost_reason, why);
    }

    /// Counts one submission and the bytes it wrote to the device.
    pub fn count_submission(&self, uploaded: u64) {
        self.submissions.fetch_add(1, Ordering::Relaxed);
        self.bytes_uploaded.fetch_add(uploaded, Ordering::Relaxed);
    }

    /// Counts bytes read back from the device.
    pub fn count_download(&self, downloaded: u64) {
        self.bytes_downloaded
            .fetch_add(downloaded, Ordering::Relaxed);
    }

    /// Counts one submission with its uploaded and downloaded bytes.
    pub fn record_submission(&self, uploaded: u64, downloaded: u64) {
        self.count_submission(uploaded);
        self.count_download(downloaded);
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes; any captured
    /// error marks the context lost and becomes `wrap(message)`.
    pub fn error_scoped<T>(
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
            self.mark_failed(&why);
            return Err(wrap(why));
        }
        Ok(out)
    }
}

// ---- programs: modules, layouts, pipelines ----

/// A storage-buffer entry of a bind-group layout (compute stage).
pub fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A uniform-buffer entry of `size` bytes, with a dynamic offset when `dynamic`.
pub fn uniform_entry(binding: u32, dynamic: bool, size: u64) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: dynamic,
            min_binding_size: NonZeroU64::new(size),
        },
        count: None,
    }
}

/// A WGSL module linked from its sources, with one bind-group layout; pipelines are built
/// per entry point.
#[derive(Clone)]
pub struct Program {
    label: String,
    module: wgpu::ShaderModule,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    /// Whether workgroup memory is zeroed before each workgroup runs (off when every
    /// kernel writes its tiles before reading them).
    zero_workgroup_memory: bool,
}

impl Program {
    /// Compiles `sources` (concatenated in order) with a layout of `entries`.
    pub fn new(
        ctx: &GpuContext,
        label: &str,
        sources: &[&str],
        entries: &[wgpu::BindGroupLayoutEntry],
        zero_workgroup_memory: bool,
    ) -> Result<Program, GpuError> {
        let device = ctx.device();
        let source: String = sources.concat();
        let (module, layout, pipeline_layout) = ctx.error_scoped(
            &format!("building the {label} module"),
            GpuError::Device,
            || {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(label),
                    source: wgpu::ShaderSource::Wgsl(Cow::Owned(source)),
                });
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(label),
                    entries,
                });
                let pipeline_layout =
                    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(label),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                (module, layout, pipeline_layout)
            },
        )?;
        Ok(Program {
            label: label.to_string(),
            module,
            layout,
            pipeline_layout,
            zero_workgroup_memory,
        })
    }

    /// The bind-group layout every pipeline of this program uses.
    pub fn layout(&self) -> &wgpu::BindGroupLayout {
        &self.layout
    }

    /// The pipeline of one entry point.
    pub fn pipeline(
        &self,
        ctx: &GpuContext,
        entry: &str,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        let mut built = self.pipelines(ctx, &[entry])?;
        built
            .pop()
            .ok_or_else(|| GpuError::Device(format!("no pipeline for {entry}")))
    }

    /// The pipelines of `entries`, in order, built inside one error scope.
    pub fn pipelines(
        &self,
        ctx: &GpuContext,
        entries: &[&str],
    ) -> Result<Vec<wgpu::ComputePipeline>, GpuError> {
        let device = ctx.device();
        ctx.error_scoped(
            &format!("building the {} pipelines", self.label),
            GpuError::Device,
            || {
                entries
                    .iter()
                    .map(|entry| {
                        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(entry),
                            layout: Some(&self.pipeline_layout),
                            module: &self.module,
                            entry_point: Some(entry),
                            compilation_options: wgpu::PipelineCompilationOptions {
                                constants: &[],
                                zero_initialize_workgroup_memory: self.zero_workgroup_memory,
                            },
                            cache: None,
                        })
                    })
                    .collect()
            },
        )
    }
}

/// A 2D grid of `groups` workgroups (at least one): x up to the device's per-dimension
/// limit, y the rest.
pub fn grid(ctx: &GpuContext, groups: u64) -> Result<(u32, u32), GpuError> {
    let groups = groups.max(1);
    let max_dim = u64::from(ctx.limits().max_compute_workgroups_per_dimension);
    let x = groups.min(max_dim);
    let y = groups.div_ceil(x);
    if y > max_dim {
        return Err(GpuError::TooLarge(format!(
            "{groups} workgroups in one dispatch"
        )));
    }
    Ok((x as u32, y as u32))
}

/// Stride between per-dispatch parameter blocks in one uniform buffer (dynamic offsets).
pub fn params_stride(ctx: &GpuContext) -> u64 {
    u64::from(ctx.limits().min_uniform_buffer_offset_alignment).max(PARAMS_SIZE)
}

/// The parameter blocks of a submission's dispatches, one per `stride` bytes.
pub fn pack_params(stride: u64, params: &[[u32; 8]]) -> Vec<u8> {
    let mut out = vec![0u8; params.len() * stride as usize];
    for (i, words) in params.iter().enumerate() {
        let at = i * stride as usize;
        out[at..at + PARAMS_SIZE as usize].copy_from_slice(bytemuck::cast_slice(words));
    }
    out
}

// ---- buffers reused across calls ----

/// What a pooled buffer is for: its label and usage. Upload buffers (`MAP_WRITE`) are
/// created mapped and go back to the pool only once mapped again ([`read_back`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferKind {
    pub label: &'static str,
    pub usage: wgpu::BufferUsages,
}

impl BufferKind {
    pub const fn new(label: &'static str, usage: wgpu::BufferUsages) -> Self {
        BufferKind { label, usage }
    }

    fn mapped_at_creation(self) -> bool {
        self.usage.contains(wgpu::BufferUsages::MAP_WRITE)
    }
}

/// Free buffers by (kind, capacity). Buffers are taken out for a call and put back after
/// it, so concurrent calls never share one.
#[derive(Default)]
struct PoolInner {
    free: HashMap<(BufferKind, u64), Vec<wgpu::Buffer>>,
    free_bytes: u64,
    /// Class -> tick of its last take or give, for least-recently-used eviction.
    last_used: HashMap<(BufferKind, u64), u64>,
    tick: u64,
    created: u64,
    reused: u64,
}

/// Counters of a buffer pool (for tests and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers created since the pool was made.
    pub created: u64,
    /// Buffer requests served from the pool.
    pub reused: u64,
    /// Buffers currently free in the pool.
    pub free: u64,
    /// Bytes of the free buffers.
    pub free_bytes: u64,
}

/// Buffers reused across calls: size classes in quarter steps between powers of two, at
/// most [`POOL_PER_CLASS`] free per class and [`POOL_MAX_BYTES`] free in all (the least
/// recently used classes go first).
#[derive(Default)]
pub struct BufferPool {
    inner: Mutex<PoolInner>,
}

impl BufferPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Size class of a buffer holding `bytes`: quarter steps between powers of two
    /// (at most 25% slack), at least 256 bytes, never above the device's limit.
    pub fn class_size(ctx: &GpuContext, bytes: u64) -> u64 {
        let bytes = bytes.max(256);
        let pow2 = bytes.next_power_of_two();
        let step = (pow2 / 8).max(64);
        let class = bytes.div_ceil(step) * step;
        if class <= ctx.limits().max_buffer_size {
            class
        } else {
            bytes.div_ceil(4) * 4
        }
    }

    /// A buffer of at least `bytes` of `kind`, from the pool or new. New upload buffers
    /// are mapped at creation; pooled ones were re-mapped after their last use.
    pub fn take(&self, ctx: &GpuContext, kind: BufferKind, bytes: u64) -> wgpu::Buffer {
        let size = Self::class_size(ctx, bytes);
        let mut pool = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        pool.tick += 1;
        let tick = pool.tick;
        pool.last_used.insert((kind, size), tick);
        if let Some(buffer) = pool.free.get_mut(&(kind, size)).and_then(Vec::pop) {
            pool.reused += 1;
            pool.free_bytes -= size;
            return buffer;
        }
        pool.created += 1;
        drop(pool);
        ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(kind.label),
            size,
            usage: kind.usage,
            mapped_at_creation: kind.mapped_at_creation(),
        })
    }

    /// Returns a buffer to the pool. A full class drops it; when the pool would exceed
    /// [`POOL_MAX_BYTES`], free buffers of other classes are evicted first (the most
    /// recently used classes stay), and a buffer larger than the whole budget is dropped.
    pub fn give(&self, kind: BufferKind, buffer: wgpu::Buffer) {
        let size = buffer.size();
        if size > POOL_MAX_BYTES {
            return;
        }
        let mut pool = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if pool
            .free
            .get(&(kind, size))
            .is_some_and(|v| v.len() >= POOL_PER_CLASS)
        {
            return;
        }
        while pool.free_bytes + size > POOL_MAX_BYTES {
            let Some(key) = pool
                .free
                .iter()
                .filter(|(k, v)| **k != (kind, size) && !v.is_empty())
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
        pool.last_used.insert((kind, size), tick);
        pool.free.entry((kind, size)).or_default().push(buffer);
        pool.free_bytes += size;
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        let pool = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        PoolStats {
            created: pool.created,
            reused: pool.reused,
            free: pool.free.values().map(|v| v.len() as u64).sum(),
            free_bytes: pool.free_bytes,
        }
    }
}

// ---- results back to the host ----

/// One map callback's report: whether it was the readback (else the upload buffer being
/// re-mapped for writing) and how the map went.
type MapReport = (bool, Result<(), wgpu::BufferAsyncError>);

/// The map requests of one submission's readback (and, optionally, of an upload buffer to
/// re-map for writing), made right after the submission so that whichever poll finds the
/// submission finished — this thread's, another user's of the device, a later submission's
/// wait for a free slot — maps them at once. Finish it with [`finish_read`]; dropped
/// unfinished, the callbacks report into nothing and the buffers must not be reused.
pub struct ReadbackRequest {
    rx: mpsc::Receiver<MapReport>,
    read: Option<Result<(), wgpu::BufferAsyncError>>,
    /// `None`: no upload buffer; `Some(None)`: its callback has not come yet.
    upload: Option<Option<Result<(), wgpu::BufferAsyncError>>>,
}

impl ReadbackRequest {
    /// Takes the reports already delivered, without blocking; true once all are in.
    fn drain(&mut self) -> bool {
        while let Ok((is_read, r)) = self.rx.try_recv() {
            self.store(is_read, r);
        }
        self.complete()
    }

    fn store(&mut self, is_read: bool, r: Result<(), wgpu::BufferAsyncError>) {
        if is_read {
            self.read = Some(r);
        } else if self.upload.is_some() {
            self.upload = Some(Some(r));
        }
    }

    fn complete(&self) -> bool {
        self.read.is_some() && !matches!(self.upload, Some(None))
    }

    /// Whether the readback's map has completed (the submission is done), without polling.
    pub fn is_ready(&mut self) -> bool {
        self.drain()
    }
}

/// Requests the map of `readback[..bytes]` (and the re-map for writing of `remap`, an
/// upload buffer of the same submission); call it right after the submission.
pub fn request_read(
    readback: &wgpu::Buffer,
    bytes: u64,
    remap: Option<&wgpu::Buffer>,
) -> ReadbackRequest {
    let (tx, rx) = mpsc::channel();
    let read_tx = tx.clone();
    readback.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
        let _ = read_tx.send((true, r));
    });
    if let Some(upload) = remap {
        upload.map_async(wgpu::MapMode::Write, .., move |r| {
            let _ = tx.send((false, r));
        });
    }
    ReadbackRequest {
        rx,
        read: None,
        upload: remap.map(|_| None),
    }
}

/// Waits for submission `index` and returns `readback[..bytes]` as mapped by `request`;
/// the flag says whether the upload buffer given to [`request_read`] is mapped again (then
/// it may go back to its pool). `what` names the work in errors ("merkle",
/// "aggregation", …). Every failure marks the context lost.
///
/// The common path blocks once and never sleeps: when the map callbacks already came (an
/// earlier poll ran them), nothing waits; else one `poll(Wait)` for the submission, whose
/// own maintenance runs the callbacks. When several threads share the device, another
/// thread's poll can have taken our callbacks a moment before ours and run them a moment
/// after ours returned: only then does it wait on the channel, polling now and then.
pub fn finish_read(
    ctx: &GpuContext,
    what: &str,
    index: wgpu::SubmissionIndex,
    readback: &wgpu::Buffer,
    bytes: u64,
    mut request: ReadbackRequest,
) -> Result<(Vec<u8>, bool), GpuError> {
    let device = ctx.device();
    if !request.drain() {
        let polled = device.poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(POLL_TIMEOUT),
        });
        if let Err(e) = polled {
            let why = format!("waiting for the {what} submission: {e}");
            ctx.mark_failed(&why);
            return Err(GpuError::Lost(why));
        }
        if !request.drain() {
            // The rare path: another thread's poll is delivering our callbacks.
            let started = Instant::now();
            while !request.complete() {
                match request.rx.recv_timeout(Duration::from_millis(2)) {
                    Ok((is_read, r)) => request.store(is_read, r),
                    Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < POLL_TIMEOUT => {
                        let _ = device.poll(wgpu::PollType::Poll);
                    }
                    Err(_) => break,
                }
            }
        }
    }
    match request.read.take() {
        Some(Ok(())) => {}
        other => {
            let why = match other {
                Some(Err(e)) => format!("mapping the {what} readback: {e}"),
                _ => format!("the {what} readback was never mapped"),
            };
            let error = if ctx.is_lost() {
                GpuError::Lost(why.clone())
            } else {
                GpuError::Submission(why.clone())
            };
            ctx.mark_failed(&why);
            return Err(error);
        }
    }
    let out = {
        let view = readback.get_mapped_range(0..bytes).map_err(|e| {
            let why = format!("reading the {what} readback: {e}");
            ctx.mark_failed(&why);
            GpuError::Submission(why)
        })?;
        view.to_vec()
    };
    readback.unmap();
    Ok((out, matches!(request.upload, Some(Some(Ok(()))))))
}

/// Waits for submission `index`, maps `readback[..bytes]` and returns its contents; when
/// `remap` is given (an upload buffer of that submission) it is mapped again for writing
/// meanwhile, and the flag says whether it is (then it may go back to its pool).
/// [`request_read`] then [`finish_read`], for callers with nothing to do in between.
pub fn read_back(
    ctx: &GpuContext,
    what: &str,
    index: wgpu::SubmissionIndex,
    readback: &wgpu::Buffer,
    bytes: u64,
    remap: Option<&wgpu::Buffer>,
) -> Result<(Vec<u8>, bool), GpuError> {
    let request = request_read(readback, bytes, remap);
    finish_read(ctx, what, index, readback, bytes, request)
}

#[cfg(test)]
mod tests {
    use super::pack_params;

    #[test]
    fn params_are_packed_at_the_stride() {
        let packed = pack_params(256, &[[1; 8], [2; 8]]);
        assert_eq!(packed.len(), 512);
        assert_eq!(&packed[..4], &1u32.to_le_bytes());
        assert_eq!(&packed[256..260], &2u32.to_le_bytes());
        assert!(packed[32..256].iter().all(|&b| b == 0));
    }
}
