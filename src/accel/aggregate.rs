//! `PubkeyAggregator`: for each signature set, the sum of the G1 pubkeys at its validator
//! indices (Ethereum's `eth_aggregate_pubkeys` before a BLS batch verification).
//!
//! * [`CpuAggregator`]: blst's batch-affine addition over pointers into the table
//!   ([`quasar_kernels::bls::sum_by_indices`]), rayon across sets, very large sets split
//!   across threads and the partial sums added.
//! * [`GpuAggregator`]: the WGSL kernels in `shaders/bls12_381.wgsl` (Fp, G1 with complete
//!   projective formulas), `shaders/bls_fp_mul13.wgsl` (the Montgomery multiplication)
//!   and `shaders/bls_aggregate.wgsl` (the segmented reduction). The pubkey table stays
//!   resident on the device: it is uploaded once, and when the table grew only the new
//!   points go up. Per call only the CSR index lists (and a small plan derived from the
//!   set sizes) go up, in ONE submission: level 0 sums chunks of each set into
//!   projective partials, a tree of reduce levels sums each set's partials, and one
//!   Jacobian point per set comes back.
//!
//! Both give the same group elements (as points; Jacobian representatives differ, so
//! compare with `p1_is_equal` or compressed encodings), including duplicates, P + (−P)
//! and sums at infinity (callers must reject an aggregate at infinity). Errors never
//! panic: an index outside the table or an empty set is an [`AggregateError`] before any
//! work starts; a GPU failure is [`AggregateError::Gpu`] and marks the context lost, so
//! the caller falls back to the CPU.
//!
//! Measured (`benches/aggregate.rs`), both multiplications straight-line: the 13-bit
//! lazy-carry one ([`FpMul::Limb13`]) beat the 16-bit CIOS one ([`FpMul::Limb16`]) on
//! lavapipe (llvmpipe, 2 cores: 92-104 vs 149 ns per multiplication, 0.78 vs 0.47 M
//! point additions/s aggregating 16 sets of 4096 keys) and on an H200 (1.19 vs 0.71 G
//! multiplications/s; 149 vs 105 M additions/s on 512 sets of 1024 keys, where the CPU
//! twin on 16 cores does 44 M/s). Both stay selectable. On hardware a call costs about
//! 3.5 ms however small (the serial chain of one invocation's additions), so small
//! batches belong on the CPU.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use blst::{blst_fp, blst_p1, blst_p1_affine};
use quasar_kernels::bls as kbls;
use rayon::prelude::*;

use super::gpu::{GpuContext, GpuError, PipelineKey};

/// Fp and G1 arithmetic (linked first).
const SHADER_FP_G1: &str = include_str!("../../shaders/bls12_381.wgsl");
/// Montgomery multiplication, 16-bit half products (CIOS), R = 2^384.
const SHADER_MUL16: &str = include_str!("../../shaders/bls_fp_mul16.wgsl");
/// Montgomery multiplication, 13-bit limbs with lazy carries, R = 2^390.
const SHADER_MUL13: &str = include_str!("../../shaders/bls_fp_mul13.wgsl");
/// The segmented-reduction kernels.
const SHADER_AGGREGATE: &str = include_str!("../../shaders/bls_aggregate.wgsl");
/// Unit-test and measurement kernels.
const SHADER_TEST: &str = include_str!("../../shaders/bls_test.wgsl");

/// Invocations per workgroup of every kernel.
const WG_SIZE: u64 = 64;
/// Bytes of one affine table point (x, y: 12 words each).
const POINT_BYTES: u64 = 96;
/// Bytes of one projective partial or Jacobian result (X, Y, Z).
const PARTIAL_BYTES: u64 = 144;
/// Bytes of the `AggParams` uniform.
const PARAMS_SIZE: u64 = 32;
/// How long one submission may run before the device is declared hung.
const POLL_TIMEOUT: Duration = Duration::from_secs(300);
/// Sets larger than this are split across threads by the CPU aggregator.
const CPU_SPLIT: usize = 2048;

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// The validator pubkey table: validated affine G1 points, indexed by validator index.
/// Append-only, so a device copy stays valid and only new points are uploaded; each
/// table (and each clone) has its own identity for that cache.
pub struct PubkeyTable {
    id: u64,
    points: Vec<blst_p1_affine>,
}

impl std::fmt::Debug for PubkeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubkeyTable")
            .field("id", &self.id)
            .field("len", &self.points.len())
            .finish()
    }
}

impl Clone for PubkeyTable {
    fn clone(&self) -> Self {
        PubkeyTable::new(self.points.clone())
    }
}

impl Default for PubkeyTable {
    fn default() -> Self {
        PubkeyTable::new(Vec::new())
    }
}

impl PubkeyTable {
    /// A table of already validated points (on the curve, in G1, not infinity).
    pub fn new(points: Vec<blst_p1_affine>) -> Self {
        PubkeyTable {
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            points,
        }
    }

    /// A table from blst public keys (validated when they were decoded).
    pub fn from_public_keys(keys: &[blst::min_pk::PublicKey]) -> Self {
        PubkeyTable::new(keys.iter().map(|k| blst_p1_affine::from(*k)).collect())
    }

    /// Appends a validated point (a new validator).
    pub fn push(&mut self, p: blst_p1_affine) {
        self.points.push(p);
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn points(&self) -> &[blst_p1_affine] {
        &self.points
    }

    /// Identity of this table for device caches (a clone gets a new one).
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Errors of pubkey aggregation.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// A validator index outside the table (the input's fault).
    #[error("set {set}: validator index {index} (position {position}) is outside the pubkey table of {table_len} keys")]
    IndexOutOfRange {
        set: usize,
        position: usize,
        index: u32,
        table_len: usize,
    },
    /// A set without indices (the input's fault: Ethereum has no empty signature sets).
    #[error("set {set} has no validator indices")]
    EmptySet { set: usize },
    /// The GPU failed or cannot take the request (ours; fall back to the CPU).
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl AggregateError {
    /// Whether the input was bad (an out-of-range index, an empty set), as opposed to a
    /// failure of this node (the GPU).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, AggregateError::Gpu(_))
    }
}

/// The accelerator contract for pubkey aggregation.
pub trait PubkeyAggregator: Send + Sync {
    /// Short name of the path that runs (e.g. `cpu(blst)`, `gpu(llvmpipe …)`).
    fn name(&self) -> String;
    /// For each set, the sum of the table's points at its indices (duplicates count
    /// twice), as a blst_p1 (callers check infinity: Ethereum rejects an aggregate at
    /// infinity).
    fn aggregate(
        &self,
        table: &PubkeyTable,
        sets: &[&[u32]],
    ) -> Result<Vec<blst_p1>, AggregateError>;
}

/// Checks every set (non-empty, indices in the table) in order; the first problem wins.
pub fn check_sets(table_len: usize, sets: &[&[u32]]) -> Result<(), AggregateError> {
    for (set, indices) in sets.iter().enumerate() {
        if indices.is_empty() {
            return Err(AggregateError::EmptySet { set });
        }
        if let Some(position) = indices.iter().position(|&i| i as usize >= table_len) {
            return Err(AggregateError::IndexOutOfRange {
                set,
                position,
                index: indices[position],
                table_len,
            });
        }
    }
    Ok(())
}

/// The CPU twin: blst batch-affine sums, rayon across sets and within very large sets.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuAggregator;

impl CpuAggregator {
    fn sum_set(
        table: &[blst_p1_affine],
        set: usize,
        indices: &[u32],
    ) -> Result<blst_p1, AggregateError> {
        let map = |e: kbls::IndexOutOfRange, base: usize| AggregateError::IndexOutOfRange {
            set,
            position: base + e.position,
            index: e.index,
            table_len: e.table_len,
        };
        if indices.len() <= CPU_SPLIT {
            return kbls::sum_by_indices(table, indices).map_err(|e| map(e, 0));
        }
        let parts: Vec<blst_p1> = indices
            .par_chunks(CPU_SPLIT)
            .enumerate()
            .map(|(k, chunk)| kbls::sum_by_indices(table, chunk).map_err(|e| map(e, k * CPU_SPLIT)))
            .collect::<Result<_, _>>()?;
        Ok(parts
            .iter()
            .fold(kbls::p1_infinity(), |acc, p| kbls::p1_add(&acc, p)))
    }
}

impl PubkeyAggregator for CpuAggregator {
    fn name(&self) -> String {
        "cpu(blst)".into()
    }

    fn aggregate(
        &self,
        table: &PubkeyTable,
        sets: &[&[u32]],
    ) -> Result<Vec<blst_p1>, AggregateError> {
        check_sets(table.len(), sets)?;
        let points = table.points();
        sets.par_iter()
            .enumerate()
            .map(|(s, indices)| Self::sum_set(points, s, indices))
            .collect()
    }
}

/// Which Montgomery multiplication the shaders link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FpMul {
    /// `bls_fp_mul13.wgsl`: 30 limbs of 13 bits, product scanning with lazy carries;
    /// R = 2^390 (the host converts). The default: 1.6x faster on lavapipe.
    Limb13,
    /// `bls_fp_mul16.wgsl`: 24 limbs of 16 bits, CIOS; R = 2^384 (blst's own form).
    Limb16,
}

impl FpMul {
    fn source(self) -> &'static str {
        match self {
            FpMul::Limb16 => SHADER_MUL16,
            FpMul::Limb13 => SHADER_MUL13,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FpMul::Limb16 => "fp16-cios",
            FpMul::Limb13 => "fp13-lazy",
        }
    }
}

/// Converts field elements between blst's Montgomery form (x·2^384) and a shader's.
#[derive(Clone, Copy)]
struct Radix {
    /// Multiplier into the shader's form (None: the same form).
    into: Option<blst_fp>,
    /// Multiplier back into blst's form.
    back: Option<blst_fp>,
}

impl Radix {
    fn new(fp: FpMul) -> Radix {
        match fp {
            FpMul::Limb16 => Radix {
                into: None,
                back: None,
            },
            FpMul::Limb13 => {
                // blst_fp_mul(w, c) = w·c·2^-384 on words: with c the form of 2^6 the
                // words become x·2^390; with the form of 2^-6 they come back.
                let c = kbls::fp_from_u64(64);
                Radix {
                    into: Some(c),
                    back: Some(kbls::fp_inverse(&c)),
                }
            }
        }
    }

    fn words_of(&self, a: &blst_fp) -> [u32; 12] {
        match &self.into {
            None => kbls::fp_to_words(a),
            Some(c) => kbls::fp_to_words(&kbls::fp_mul(a, c)),
        }
    }

    fn fp_of(&self, w: &[u32; 12]) -> blst_fp {
        let a = kbls::fp_from_words(w);
        match &self.back {
            None => a,
            Some(c) => kbls::fp_mul(&a, c),
        }
    }

    fn point_words(&self, p: &blst_p1_affine, out: &mut Vec<u32>) {
        out.extend_from_slice(&self.words_of(&p.x));
        out.extend_from_slice(&self.words_of(&p.y));
    }
}

/// Tunables of the GPU aggregator.
#[derive(Clone, Copy, Debug)]
pub struct GpuAggregatorOptions {
    /// The Montgomery multiplication.
    pub fp_mul: FpMul,
    /// Indices one level-0 invocation sums (>= 1).
    pub chunk: u32,
    /// Partials one reduce invocation sums (>= 2).
    pub fan_in: u32,
}

impl Default for GpuAggregatorOptions {
    /// The 13-bit multiplication, chunks of 32 indices, fan-in 8 (best on lavapipe).
    fn default() -> Self {
        GpuAggregatorOptions {
            fp_mul: FpMul::Limb13,
            chunk: 32,
            fan_in: 8,
        }
    }
}

impl GpuAggregatorOptions {
    /// The measured best for this adapter: chunks of 32 on software adapters (lavapipe
    /// is compute-bound, fewer partial sums win), chunks of 8 on hardware GPUs (more
    /// invocations, a shorter serial chain: H200, 512 sets of 1024 keys: 149 M
    /// additions/s with chunks of 8, 121 M with 32).
    pub fn for_context(ctx: &GpuContext) -> Self {
        let chunk = if ctx.is_software() { 32 } else { 8 };
        GpuAggregatorOptions {
            chunk,
            ..Default::default()
        }
    }
}

/// The device copy of a [`PubkeyTable`].
struct ResidentTable {
    buffer: wgpu::Buffer,
    /// Points the buffer holds room for.
    capacity: u64,
    /// Points uploaded (a prefix of the table).
    len: u64,
    table_id: u64,
}

/// A storage buffer reused across calls, grown on demand.
#[derive(Default)]
struct Pooled {
    buffer: Option<wgpu::Buffer>,
}

impl Pooled {
    /// A buffer of at least `bytes` (powers of two, at least 256 bytes).
    fn get(
        &mut self,
        device: &wgpu::Device,
        label: &str,
        usage: wgpu::BufferUsages,
        bytes: u64,
    ) -> wgpu::Buffer {
        if let Some(b) = &self.buffer {
            if b.size() >= bytes {
                return b.clone();
            }
        }
        let size = bytes.max(256).next_power_of_two();
        let b = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        });
        self.buffer = Some(b.clone());
        b
    }
}

#[derive(Default)]
struct GpuState {
    table: Option<ResidentTable>,
    indices: Pooled,
    plan: Pooled,
    partials: Pooled,
    sums: Pooled,
    params: Pooled,
    readback: Pooled,
    stats: AggregateStats,
}

/// One dispatch of a batch.
#[derive(Clone, Copy, Debug)]
struct Dispatch {
    kernel: AggKernel,
    params: [u32; 8],
    threads: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AggKernel {
    Chunks,
    Reduce,
    Finish,
}

/// Host-side plan of one batch: the CSR arrays and every level's prefix sums.
#[derive(Debug)]
struct BatchPlan {
    /// offsets, then prefix_0, prefix_1, … (each n_sets + 1 words).
    plan: Vec<u32>,
    dispatches: Vec<Dispatch>,
    /// Partials of all levels.
    partials: u64,
}

/// Plans the levels for sets of these sizes (each >= 1).
fn plan_batch(
    lens: &[usize],
    chunk: u32,
    fan_in: u32,
    table_len: u32,
) -> Result<BatchPlan, GpuError> {
    let n = lens.len();
    let too_large =
        |what: &str| GpuError::TooLarge(format!("{what} does not fit the GPU's u32 addressing"));
    let n32 = u32::try_from(n).map_err(|_| too_large("the number of sets"))?;
    let mut plan = Vec::with_capacity(4 * (n + 1));
    plan.push(0u32);
    let mut total: u64 = 0;
    for &len in lens {
        total += len as u64;
        plan.push(u32::try_from(total).map_err(|_| too_large("the total number of indices"))?);
    }
    let chunk64 = u64::from(chunk.max(1));
    let fan = u64::from(fan_in.max(2));
    let mut counts: Vec<u64> = lens.iter().map(|&l| (l as u64).div_ceil(chunk64)).collect();
    let mut dispatches = Vec::new();
    let mut prefix_in = 0u32; // offsets
    let mut in_base = 0u64;
    let mut out_base = 0u64;
    let mut level = 0u32;
    loop {
        let prefix_out = u32::try_from(plan.len()).map_err(|_| too_large("the plan"))?;
        plan.push(0);
        let mut acc = 0u64;
        for &c in &counts {
            acc += c;
            plan.push(u32::try_from(acc).map_err(|_| too_large("the number of partials"))?);
        }
        let threads = acc;
        let base = |b: u64| u32::try_from(b).map_err(|_| too_large("the partials buffer"));
        dispatches.push(Dispatch {
            kernel: if level == 0 {
                AggKernel::Chunks
            } else {
                AggKernel::Reduce
            },
            params: [
                u32::try_from(threads).map_err(|_| too_large("a level"))?,
                n32,
                base(in_base)?,
                base(out_base)?,
                prefix_in,
                prefix_out,
                if level == 0 {
                    chunk.max(1)
                } else {
                    fan_in.max(2)
                },
                table_len,
            ],
            threads,
        });
        in_base = out_base;
        out_base += threads;
        prefix_in = prefix_out;
        level += 1;
        if counts.iter().all(|&c| c <= 1) {
            break;
        }
        for c in &mut counts {
            *c = c.div_ceil(fan);
        }
    }
    dispatches.push(Dispatch {
        kernel: AggKernel::Finish,
        params: [
            n32,
            n32,
            u32::try_from(in_base).map_err(|_| too_large("the partials buffer"))?,
            0,
            0,
            0,
            0,
            table_len,
        ],
        threads: n as u64,
    });
    Ok(BatchPlan {
        plan,
        dispatches,
        partials: out_base,
    })
}

/// The GPU aggregator: resident table, cached pipelines, pooled buffers.
pub struct GpuAggregator {
    ctx: Arc<GpuContext>,
    options: GpuAggregatorOptions,
    radix: Radix,
    pipelines: AggPipelines,
    /// Uniform dynamic-offset stride.
    align: u64,
    state: Mutex<GpuState>,
}

/// Counters of one [`GpuAggregator`] (the context's [`GpuContext::stats`] count these
/// submissions and bytes too, with those of every other user of the device).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregateStats {
    /// Queue submissions (one per `aggregate` call with at least one set).
    pub submissions: u64,
    /// Sets aggregated.
    pub sets: u64,
    /// Indices summed.
    pub indices: u64,
    /// Bytes written to the device: table points, indices, plans and parameters.
    pub bytes_uploaded: u64,
    /// The part of `bytes_uploaded` that was table points.
    pub table_bytes_uploaded: u64,
    /// Bytes read back (144 per set).
    pub bytes_downloaded: u64,
}

/// The compiled aggregation pipelines of one (context, multiplication).
#[derive(Clone)]
struct AggPipelines {
    layout: wgpu::BindGroupLayout,
    chunks: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    finish: wgpu::ComputePipeline,
}

/// The aggregation pipelines of `ctx` for `fp_mul`, kept in the context's pipeline cache so
/// that every aggregator on a context shares them (a build takes seconds on lavapipe).
fn agg_pipelines(ctx: &GpuContext, fp_mul: FpMul) -> Result<AggPipelines, GpuError> {
    let key = PipelineKey {
        kernel: "bls aggregate",
        variant: fp_mul.name(),
    };
    ctx.pipelines(key, |ctx| build_agg_pipelines(ctx, fp_mul))
}

fn build_agg_pipelines(ctx: &GpuContext, fp_mul: FpMul) -> Result<AggPipelines, GpuError> {
    let entries = [
        storage_entry(0, true),
        storage_entry(1, true),
        storage_entry(2, true),
        storage_entry(3, false),
        storage_entry(4, false),
        uniform_entry(5, true, PARAMS_SIZE),
    ];
    let (layout, mut pipelines) = build_pipelines(
        ctx,
        "quasar bls aggregate",
        &[SHADER_FP_G1, fp_mul.source(), SHADER_AGGREGATE],
        &entries,
        &["agg_chunks", "agg_reduce", "agg_finish"],
    )?;
    let (Some(finish), Some(reduce), Some(chunks)) =
        (pipelines.pop(), pipelines.pop(), pipelines.pop())
    else {
        return Err(GpuError::Device("missing aggregation pipelines".into()));
    };
    Ok(AggPipelines {
        layout,
        chunks,
        reduce,
        finish,
    })
}

impl std::fmt::Debug for GpuAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuAggregator")
            .field("ctx", &self.ctx)
            .field("options", &self.options)
            .finish()
    }
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
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

fn uniform_entry(binding: u32, dynamic: bool, size: u64) -> wgpu::BindGroupLayoutEntry {
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

/// Builds a module from the linked sources and one pipeline per entry point.
fn build_pipelines(
    ctx: &GpuContext,
    label: &str,
    sources: &[&str],
    entries: &[wgpu::BindGroupLayoutEntry],
    entry_points: &[&str],
) -> Result<(wgpu::BindGroupLayout, Vec<wgpu::ComputePipeline>), GpuError> {
    let device = ctx.device();
    let source: String = sources.concat();
    ctx.error_scoped(
        &format!("building the {label} pipelines"),
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
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipelines = entry_points
                .iter()
                .map(|entry| {
                    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(entry),
                        layout: Some(&pipeline_layout),
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: wgpu::PipelineCompilationOptions::default(),
                        cache: None,
                    })
                })
                .collect();
            (layout, pipelines)
        },
    )
}

/// A 2D grid of workgroups covering `threads` invocations.
fn grid(ctx: &GpuContext, threads: u64) -> Result<(u32, u32), GpuError> {
    let groups = threads.div_ceil(WG_SIZE).max(1);
    let max_dim = u64::from(ctx.limits().max_compute_workgroups_per_dimension);
    let x = groups.min(max_dim);
    let y = groups.div_ceil(x);
    if y > max_dim {
        return Err(GpuError::TooLarge(format!(
            "{threads} invocations in one dispatch"
        )));
    }
    Ok((x as u32, y as u32))
}

/// Waits for `index`, maps `readback[..bytes]` and returns its contents.
fn read_back(
    ctx: &GpuContext,
    readback: &wgpu::Buffer,
    bytes: u64,
    index: wgpu::SubmissionIndex,
) -> Result<Vec<u8>, GpuError> {
    let (tx, rx) = mpsc::channel();
    readback.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
        let _ = tx.send(r);
    });
    let polled = ctx.device().poll(wgpu::PollType::Wait {
        submission_index: Some(index),
        timeout: Some(POLL_TIMEOUT),
    });
    if let Err(e) = polled {
        let why = format!("waiting for the aggregation submission: {e}");
        ctx.mark_failed(&why);
        return Err(GpuError::Lost(why));
    }
    // Another thread sharing the device may be the one whose poll runs our callback, a
    // moment after our own poll returned: keep polling until it arrives or time runs out.
    let started = std::time::Instant::now();
    let mapped = loop {
        match rx.recv_timeout(std::time::Duration::from_millis(5)) {
            Ok(r) => break Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < POLL_TIMEOUT => {
                let _ = ctx.device().poll(wgpu::PollType::Poll);
            }
            Err(_) => break None,
        }
    };
    match mapped {
        Some(Ok(())) => {}
        other => {
            let why = match other {
                Some(Err(e)) => format!("mapping the aggregation readback: {e}"),
                _ => "the aggregation readback was never mapped".to_string(),
            };
            let lost = ctx.is_lost();
            ctx.mark_failed(&why);
            return Err(if lost {
                GpuError::Lost(why)
            } else {
                GpuError::Submission(why)
            });
        }
    }
    let out = {
        let view = readback.get_mapped_range(0..bytes).map_err(|e| {
            let why = format!("reading the aggregation readback: {e}");
            ctx.mark_failed(&why);
            GpuError::Submission(why)
        })?;
        view.to_vec()
    };
    readback.unmap();
    Ok(out)
}

impl GpuAggregator {
    /// Compiles the pipelines (or takes them from the context's cache) with the options
    /// measured best for this adapter ([`GpuAggregatorOptions::for_context`]).
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, AggregateError> {
        let options = GpuAggregatorOptions::for_context(&ctx);
        Self::with_options(ctx, options)
    }

    /// Compiles the pipelines with these options.
    pub fn with_options(
        ctx: Arc<GpuContext>,
        options: GpuAggregatorOptions,
    ) -> Result<Self, AggregateError> {
        ctx.ensure_alive()?;
        let pipelines = agg_pipelines(&ctx, options.fp_mul)?;
        let align = u64::from(ctx.limits().min_uniform_buffer_offset_alignment).max(PARAMS_SIZE);
        Ok(GpuAggregator {
            radix: Radix::new(options.fp_mul),
            ctx,
            options,
            pipelines,
            align,
            state: Mutex::new(GpuState::default()),
        })
    }

    /// The shared device context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn options(&self) -> GpuAggregatorOptions {
        self.options
    }

    /// This aggregator's counters.
    pub fn stats(&self) -> AggregateStats {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats
    }

    /// Points of `table` currently resident on the device (0 if another table is).
    pub fn resident_len(&self, table: &PubkeyTable) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &state.table {
            Some(t) if t.table_id == table.id() => t.len as usize,
            _ => 0,
        }
    }

    /// Makes the device table hold all of `table`: the whole table if it is another
    /// table (or shrank), else only the points appended since the last call, into a
    /// larger buffer (copied on the device) when the old one is full. Returns the
    /// bytes written; the encoder gets the copy, if any.
    fn sync_table(
        &self,
        state: &mut GpuState,
        table: &PubkeyTable,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<u64, GpuError> {
        let device = self.ctx.device();
        let len = table.len() as u64;
        let limits = self.ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let reuse = matches!(&state.table, Some(t) if t.table_id == table.id() && t.len <= len);
        if !reuse {
            state.table = None;
        }
        let from = state.table.as_ref().map_or(0, |t| t.len);
        if from == len && state.table.is_some() {
            return Ok(0);
        }
        let needs = len.max(1) * POINT_BYTES;
        if needs > limit {
            return Err(GpuError::TooLarge(format!(
                "a table of {len} keys ({needs} bytes) exceeds the device's storage binding limit of {limit} bytes"
            )));
        }
        let capacity = state.table.as_ref().map_or(0, |t| t.capacity);
        if len > capacity || state.table.is_none() {
            // Room for growth: 1/8 more and at least 1024 points, within the limit.
            let cap = (len + len / 8).max(1024).min(limit / POINT_BYTES);
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("quasar pubkey table"),
                size: cap * POINT_BYTES,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            if let Some(old) = &state.table {
                if old.len > 0 {
                    encoder.copy_buffer_to_buffer(
                        &old.buffer,
                        0,
                        &buffer,
                        0,
                        old.len * POINT_BYTES,
                    );
                }
            }
            state.table = Some(ResidentTable {
                buffer,
                capacity: cap,
                len: from,
                table_id: table.id(),
            });
        }
        let Some(resident) = state.table.as_mut() else {
            return Err(GpuError::Submission("internal: no resident table".into()));
        };
        let new = &table.points()[from as usize..];
        let mut words = Vec::with_capacity(new.len() * 24);
        for p in new {
            self.radix.point_words(p, &mut words);
        }
        if !words.is_empty() {
            self.ctx.queue().write_buffer(
                &resident.buffer,
                from * POINT_BYTES,
                bytemuck::cast_slice(&words),
            );
        }
        resident.len = len;
        Ok(new.len() as u64 * POINT_BYTES)
    }

    fn run(&self, table: &PubkeyTable, sets: &[&[u32]]) -> Result<Vec<blst_p1>, GpuError> {
        let ctx = &self.ctx;
        ctx.ensure_alive()?;
        let device = ctx.device();
        let started = Instant::now();
        let lens: Vec<usize> = sets.iter().map(|s| s.len()).collect();
        let table_len = u32::try_from(table.len())
            .map_err(|_| GpuError::TooLarge(format!("a table of {} keys", table.len())))?;
        let plan = plan_batch(&lens, self.options.chunk, self.options.fan_in, table_len)?;
        let n = sets.len() as u64;
        let total: u64 = lens.iter().map(|&l| l as u64).sum();
        let index_bytes = total * 4;
        let plan_bytes = plan.plan.len() as u64 * 4;
        let partial_bytes = plan.partials.max(1) * PARTIAL_BYTES;
        let sums_bytes = n * PARTIAL_BYTES;
        let params_bytes = plan.dispatches.len() as u64 * self.align;
        let limits = ctx.limits();
        let binding_limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        for (what, bytes) in [
            ("indices", index_bytes),
            ("partial sums", partial_bytes),
            ("plan", plan_bytes),
            ("results", sums_bytes),
        ] {
            // Pooled buffers round up to a power of two.
            if bytes.max(256).next_power_of_two() > binding_limit {
                return Err(GpuError::TooLarge(format!(
                    "{bytes} bytes of {what} exceed the device's storage binding limit of {binding_limit}"
                )));
            }
        }
        let table_bytes = table.len().max(1) as u64 * POINT_BYTES;
        if table_bytes > binding_limit {
            return Err(GpuError::TooLarge(format!(
                "a table of {} keys ({table_bytes} bytes) exceeds the device's storage binding limit of {binding_limit}",
                table.len()
            )));
        }
        let mut grids = Vec::with_capacity(plan.dispatches.len());
        for d in &plan.dispatches {
            grids.push(grid(ctx, d.threads)?);
        }
        let mut params = vec![0u8; params_bytes as usize];
        for (i, d) in plan.dispatches.iter().enumerate() {
            let at = i * self.align as usize;
            params[at..at + PARAMS_SIZE as usize].copy_from_slice(bytemuck::cast_slice(&d.params));
        }
        let mut indices: Vec<u32> = Vec::with_capacity(total as usize);
        for s in sets {
            indices.extend_from_slice(s);
        }

        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let submitted = ctx.error_scoped("aggregation submission", GpuError::Submission, || {
            use wgpu::BufferUsages as U;
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("quasar bls aggregate"),
            });
            let table_bytes = self.sync_table(&mut state, table, &mut encoder)?;
            let Some(table_buffer) = state.table.as_ref().map(|t| t.buffer.clone()) else {
                return Err(GpuError::Submission("internal: no resident table".into()));
            };
            let st = &mut *state;
            let index_buf = st.indices.get(
                device,
                "quasar bls indices",
                U::STORAGE | U::COPY_DST,
                index_bytes,
            );
            let plan_buf = st.plan.get(
                device,
                "quasar bls plan",
                U::STORAGE | U::COPY_DST,
                plan_bytes,
            );
            let partial_buf =
                st.partials
                    .get(device, "quasar bls partials", U::STORAGE, partial_bytes);
            let sums_buf = st.sums.get(
                device,
                "quasar bls sums",
                U::STORAGE | U::COPY_SRC,
                sums_bytes,
            );
            let params_buf = st.params.get(
                device,
                "quasar bls params",
                U::UNIFORM | U::COPY_DST,
                params_bytes,
            );
            let readback = st.readback.get(
                device,
                "quasar bls readback",
                U::MAP_READ | U::COPY_DST,
                sums_bytes,
            );
            let queue = ctx.queue();
            queue.write_buffer(&index_buf, 0, bytemuck::cast_slice(&indices));
            queue.write_buffer(&plan_buf, 0, bytemuck::cast_slice(&plan.plan));
            queue.write_buffer(&params_buf, 0, &params);
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("quasar bls aggregate"),
                layout: &self.pipelines.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: table_buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: index_buf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: plan_buf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: partial_buf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: sums_buf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 5,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &params_buf,
                            offset: 0,
                            size: NonZeroU64::new(PARAMS_SIZE),
                        }),
                    },
                ],
            });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("quasar bls aggregate"),
                    timestamp_writes: None,
                });
                for (i, (d, &(x, y))) in plan.dispatches.iter().zip(&grids).enumerate() {
                    pass.set_pipeline(match d.kernel {
                        AggKernel::Chunks => &self.pipelines.chunks,
                        AggKernel::Reduce => &self.pipelines.reduce,
                        AggKernel::Finish => &self.pipelines.finish,
                    });
                    pass.set_bind_group(0, &bind_group, &[(i as u64 * self.align) as u32]);
                    pass.dispatch_workgroups(x, y, 1);
                }
            }
            encoder.copy_buffer_to_buffer(&sums_buf, 0, &readback, 0, sums_bytes);
            let index = queue.submit([encoder.finish()]);
            Ok((index, readback, table_bytes))
        });
        let (index, readback, table_bytes) = match submitted {
            Ok(Ok(v)) => v,
            // A captured device error already marked the context lost; an internal
            // error (checked above, so not expected) does too, to be safe.
            Ok(Err(e)) | Err(e) => {
                state.table = None;
                ctx.mark_failed(&e.to_string());
                return Err(e);
            }
        };
        let uploaded = table_bytes + index_bytes + plan_bytes + params_bytes;
        // The pooled buffers stay locked until the readback is unmapped.
        let bytes = read_back(ctx, &readback, sums_bytes, index)?;
        let stats = &mut state.stats;
        stats.submissions += 1;
        stats.sets += n;
        stats.indices += total;
        stats.bytes_uploaded += uploaded;
        stats.table_bytes_uploaded += table_bytes;
        stats.bytes_downloaded += sums_bytes;
        drop(state);
        ctx.record_submission(uploaded, sums_bytes);
        let words: &[u32] = bytemuck::cast_slice(&bytes);
        let out: Vec<blst_p1> = words
            .chunks_exact(36)
            .map(|w| {
                let fp = |k: usize| {
                    let mut a = [0u32; 12];
                    a.copy_from_slice(&w[12 * k..12 * k + 12]);
                    self.radix.fp_of(&a)
                };
                blst_p1 {
                    x: fp(0),
                    y: fp(1),
                    z: fp(2),
                }
            })
            .collect();
        tracing::debug!(
            target: "quasar::accel::aggregate",
            sets = n,
            indices = total,
            levels = plan.dispatches.len() - 1,
            uploaded,
            table_bytes,
            downloaded = sums_bytes,
            elapsed_us = started.elapsed().as_micros() as u64,
            "gpu pubkey aggregation"
        );
        Ok(out)
    }
}

impl PubkeyAggregator for GpuAggregator {
    fn name(&self) -> String {
        format!(
            "gpu({}, {})",
            self.ctx.adapter_name(),
            self.options.fp_mul.name()
        )
    }

    fn aggregate(
        &self,
        table: &PubkeyTable,
        sets: &[&[u32]],
    ) -> Result<Vec<blst_p1>, AggregateError> {
        check_sets(table.len(), sets)?;
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.run(table, sets)?)
    }
}

// ---- test and measurement kernels ----

/// Operations of the `fp_test` kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpOp {
    Mul = 0,
    Add = 1,
    Sub = 2,
    Sqr = 3,
    Neg = 4,
    Dbl = 5,
    Mul12 = 6,
}

/// G1 operations of the test kernels (points are projective X, Y, Z).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G1Op {
    /// a + b (complete: also a = b, a = −b, infinity on either side).
    Add,
    /// a + (b.x, b.y) with b affine (b.z ignored; (0, 0) is infinity).
    AddAffine,
    /// a to Jacobian (X·Z, Y·Z², Z).
    ToJacobian,
}

impl G1Op {
    fn entry(self) -> &'static str {
        match self {
            G1Op::Add => "g1_add_test",
            G1Op::AddAffine => "g1_add_affine_test",
            G1Op::ToJacobian => "g1_to_jacobian_test",
        }
    }
}

/// A projective point (X : Y : Z) as blst field elements.
pub type Projective = [blst_fp; 3];

/// The WGSL Fp and G1 functions behind small test entry points (`shaders/bls_test.wgsl`),
/// for differential tests against blst and for measuring the multiplications. Inputs
/// and outputs are blst field elements (blst's Montgomery form), converted to and from
/// the shader's form. Each entry point's pipeline is built on first use.
pub struct BlsTestKernels {
    ctx: Arc<GpuContext>,
    fp_mul: FpMul,
    radix: Radix,
    module: wgpu::ShaderModule,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    pipelines: Mutex<Vec<(&'static str, wgpu::ComputePipeline)>>,
}

impl BlsTestKernels {
    pub fn new(ctx: Arc<GpuContext>, fp_mul: FpMul) -> Result<Self, AggregateError> {
        ctx.ensure_alive()?;
        let device = ctx.device();
        let source = [SHADER_FP_G1, fp_mul.source(), SHADER_TEST].concat();
        let entries = [
            storage_entry(0, true),
            storage_entry(1, true),
            storage_entry(2, false),
            uniform_entry(3, false, 16),
        ];
        let (module, layout, pipeline_layout) =
            ctx.error_scoped("building the bls test module", GpuError::Device, || {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("quasar bls test"),
                    source: wgpu::ShaderSource::Wgsl(Cow::Owned(source)),
                });
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("quasar bls test"),
                    entries: &entries,
                });
                let pipeline_layout =
                    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some("quasar bls test"),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                (module, layout, pipeline_layout)
            })?;
        Ok(BlsTestKernels {
            radix: Radix::new(fp_mul),
            ctx,
            fp_mul,
            module,
            layout,
            pipeline_layout,
            pipelines: Mutex::new(Vec::new()),
        })
    }

    pub fn fp_mul(&self) -> FpMul {
        self.fp_mul
    }

    /// Element-wise `op(a[i], b[i])` (b is ignored by unary ops but must be as long).
    pub fn fp(
        &self,
        op: FpOp,
        a: &[blst_fp],
        b: &[blst_fp],
    ) -> Result<Vec<blst_fp>, AggregateError> {
        let (out, _) = self.run("fp_test", op as u32, 0, a.len(), a, b)?;
        Ok(out)
    }

    /// `iters` chained multiplications x = x·b[i] from x = a[i], on every element at
    /// once; returns the results and the wall time of the submission.
    pub fn fp_mul_chain(
        &self,
        a: &[blst_fp],
        b: &[blst_fp],
        iters: u32,
    ) -> Result<(Vec<blst_fp>, Duration), AggregateError> {
        self.run("fp_mul_chain", 0, iters, a.len(), a, b)
    }

    /// Element-wise `op(a[i], b[i])` on projective points.
    pub fn g1(
        &self,
        op: G1Op,
        a: &[Projective],
        b: &[Projective],
    ) -> Result<Vec<Projective>, AggregateError> {
        let flat = |v: &[Projective]| v.iter().flatten().copied().collect::<Vec<blst_fp>>();
        let (out, _) = self.run(op.entry(), 0, 0, a.len(), &flat(a), &flat(b))?;
        Ok(out.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    }

    fn pipeline(&self, entry: &'static str) -> Result<wgpu::ComputePipeline, GpuError> {
        let mut pipelines = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, p)) = pipelines.iter().find(|(e, _)| *e == entry) {
            return Ok(p.clone());
        }
        let device = self.ctx.device();
        let p = self.ctx.error_scoped(
            &format!("building the {entry} pipeline"),
            GpuError::Device,
            || {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&self.pipeline_layout),
                    module: &self.module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    cache: None,
                })
            },
        )?;
        pipelines.push((entry, p.clone()));
        Ok(p)
    }

    /// One submission of `entry` over `count` elements (a, b: 12 words per field element).
    fn run(
        &self,
        entry: &'static str,
        op: u32,
        iters: u32,
        count: usize,
        a: &[blst_fp],
        b: &[blst_fp],
    ) -> Result<(Vec<blst_fp>, Duration), AggregateError> {
        if a.len() != b.len() {
            return Err(GpuError::Submission(format!(
                "{} elements in a but {} in b",
                a.len(),
                b.len()
            ))
            .into());
        }
        if a.is_empty() {
            return Ok((Vec::new(), Duration::ZERO));
        }
        let pipeline = self.pipeline(entry)?;
        let ctx = &self.ctx;
        ctx.ensure_alive()?;
        let device = ctx.device();
        let words = |v: &[blst_fp]| {
            v.iter()
                .flat_map(|x| self.radix.words_of(x))
                .collect::<Vec<u32>>()
        };
        let (wa, wb) = (words(a), words(b));
        let bytes = wa.len() as u64 * 4;
        let params: [u32; 4] = [op, count as u32, iters, 0];
        let (x, y) = grid(ctx, count as u64)?;
        let started = Instant::now();
        let (index, readback) =
            ctx.error_scoped("bls test submission", GpuError::Submission, || {
                use wgpu::BufferUsages as U;
                let buffer = |label: &str, usage: U, size: u64| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        size,
                        usage,
                        mapped_at_creation: false,
                    })
                };
                let ba = buffer("bls test a", U::STORAGE | U::COPY_DST, bytes);
                let bb = buffer("bls test b", U::STORAGE | U::COPY_DST, bytes);
                let bo = buffer("bls test out", U::STORAGE | U::COPY_SRC, bytes);
                let bp = buffer("bls test params", U::UNIFORM | U::COPY_DST, 16);
                let readback = buffer("bls test readback", U::MAP_READ | U::COPY_DST, bytes);
                let queue = ctx.queue();
                queue.write_buffer(&ba, 0, bytemuck::cast_slice(&wa));
                queue.write_buffer(&bb, 0, bytemuck::cast_slice(&wb));
                queue.write_buffer(&bp, 0, bytemuck::cast_slice(&params));
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("bls test"),
                    layout: &self.layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: ba.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: bb.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: bo.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: bp.as_entire_binding(),
                        },
                    ],
                });
                let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bls test"),
                });
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("bls test"),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &bind_group, &[]);
                    pass.dispatch_workgroups(x, y, 1);
                }
                encoder.copy_buffer_to_buffer(&bo, 0, &readback, 0, bytes);
                (queue.submit([encoder.finish()]), readback)
            })?;
        let out = read_back(ctx, &readback, bytes, index)?;
        let elapsed = started.elapsed();
        ctx.record_submission(bytes * 2 + 16, bytes);
        let words: &[u32] = bytemuck::cast_slice(&out);
        let result = words
            .chunks_exact(12)
            .map(|w| {
                let mut a = [0u32; 12];
                a.copy_from_slice(w);
                self.radix.fp_of(&a)
            })
            .collect();
        Ok((result, elapsed))
    }
}

/// The straight-line WGSL of the field arithmetic is generated here and checked in:
/// `shaders/bls_fp_mul13.wgsl`, `shaders/bls_fp_mul16.wgsl` and the block between the
/// `BEGIN/END GENERATED` markers of `shaders/bls12_381.wgsl`. Loops over limbs and
/// indexed arrays compiled 10-40x slower on lavapipe (minutes per pipeline) and ran
/// slower (arrays spill to memory), so every limb is its own `let`.
/// `QUASAR_WRITE_WGSL=1 cargo test --release --lib generated_wgsl` rewrites the files.
#[cfg(test)]
mod codegen {
    use quasar_kernels::bls as kbls;
    use std::fmt::Write;

    /// p, little-endian 32-bit words.
    const P32: [u32; 12] = [
        0xffffaaab, 0xb9feffff, 0xb153ffff, 0x1eabfffe, 0xf6b0f624, 0x6730d2a0, 0xf38512bf,
        0x64774b84, 0x434bacd7, 0x4b1ba7b6, 0x397fe69a, 0x1a0111ea,
    ];

    /// p in `n` limbs of `bits` bits.
    fn limbs(bits: u32, n: usize) -> Vec<u32> {
        (0..n)
            .map(|k| {
                let mut v = 0u64;
                for b in 0..bits {
                    let bit = k as u32 * bits + b;
                    if bit < 384 && (P32[(bit / 32) as usize] >> (bit % 32)) & 1 == 1 {
                        v |= 1 << b;
                    }
                }
                v as u32
            })
            .collect()
    }

    /// −p^-1 mod 2^bits.
    fn neg_inv(bits: u32) -> u32 {
        let mut inv = 1u32;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(P32[0].wrapping_mul(inv)));
        }
        inv.wrapping_neg() & ((1 << bits) - 1)
    }

    fn hex(v: u32) -> String {
        format!("0x{v:08x}u")
    }

    fn fp_const(name: &str, doc: &str, w: [u32; 12]) -> String {
        let row = |r: &[u32]| r.iter().map(|&v| hex(v)).collect::<Vec<_>>().join(", ");
        format!(
            "// {doc}\nconst {name}: Fp = Fp(\n    {},\n    {}\n);\n",
            row(&w[..6]),
            row(&w[6..])
        )
    }

    /// Expression of 13-bit limb k of the Fp `v` (12 words).
    fn limb13(v: &str, k: u32) -> String {
        let (w, s) = ((13 * k) >> 5, (13 * k) & 31);
        let mut e = if s == 0 {
            format!("{v}[{w}]")
        } else {
            format!("({v}[{w}] >> {s}u)")
        };
        if s > 19 && w < 11 {
            e = format!("({e} | ({v}[{}] << {}u))", w + 1, 32 - s);
        }
        format!("{e} & 0x1fffu")
    }

    /// The 12 words packed from 30 limbs `l0..l29` of 13 bits.
    fn pack13() -> Vec<String> {
        (0..12)
            .map(|w: i32| {
                (0..30)
                    .filter_map(|k: i32| {
                        let lo = 13 * k;
                        if lo + 13 <= 32 * w || lo >= 32 * (w + 1) {
                            return None;
                        }
                        let sh = lo - 32 * w;
                        Some(if sh >= 0 {
                            format!("(l{k} << {sh}u)")
                        } else {
                            format!("(l{k} >> {}u)", -sh)
                        })
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect()
    }

    pub fn mul13() -> String {
        let p = limbs(13, 30);
        let pinv = neg_inv(13);
        let mut s = String::from(
            "// GENERATED by `codegen` in src/accel/aggregate.rs; do not edit.\n\
// Montgomery multiplication for bls12_381.wgsl: 13-bit limbs, lazy carries (the default:\n\
// on lavapipe 1.6x faster per multiplication than bls_fp_mul16.wgsl).\n\
//\n\
// The operands' 12 words are cut into 30 limbs of 13 bits (390 bits). A limb product\n\
// is below 2^26, so each column k of the product is one sum without carries\n\
// (product scanning, Montgomery reduction interleaved per column): c_k = Σ a_i·b_(k−i)\n\
// + Σ m_i·p_(k−i) + carry; for k < 30, m_k = c_k·(−p^-1) mod 2^13 zeroes the column's\n\
// low 13 bits, and the carry into column k+1 is (c_k + m_k·p_0) >> 13; columns 30..58\n\
// are the result's limbs. A column holds at most 30 + 30 products and a carry:\n\
// 60·(2^13 − 1)^2 + 2^19 < 2^32, so u32 never overflows. R = 2^390: the result is\n\
// a·b·2^-390 mod p, so values in this build are x·2^390 mod p (the host converts\n\
// blst's x·2^384 in and out). For a, b < p the result is below 2p; one conditional\n\
// subtraction makes it < p. Straight-line code: every limb is a `let`.\n\n",
        );
        let one = kbls::fp_to_words(&kbls::fp_from_u64(64));
        s += &fp_const("FP_ONE", "R mod p = 2^390 mod p.", one);
        s += "\nfn fp_mul(a: Fp, b: Fp) -> Fp {\n";
        for v in ["a", "b"] {
            for k in 0..30 {
                let _ = writeln!(s, "    let {v}{k} = {};", limb13(v, k));
            }
        }
        let mut carry: Option<String> = None;
        for k in 0..59usize {
            let mut terms: Vec<String> = (k.saturating_sub(29)..=k.min(29))
                .map(|i| format!("a{i} * b{}", k - i))
                .collect();
            for i in k.saturating_sub(29)..k.min(30) {
                if p[k - i] != 0 {
                    terms.push(format!("m{i} * {}u", p[k - i]));
                }
            }
            if let Some(c) = &carry {
                terms.push(c.clone());
            }
            let _ = writeln!(s, "    let c{k} = {};", terms.join(" + "));
            if k < 30 {
                let _ = writeln!(s, "    let m{k} = (c{k} * {pinv}u) & 0x1fffu;");
                let _ = writeln!(s, "    let d{k} = c{k} + m{k} * {}u;", p[0]);
                carry = Some(format!("(d{k} >> 13u)"));
            } else {
                let _ = writeln!(s, "    let l{} = c{k} & 0x1fffu;", k - 30);
                carry = Some(format!("(c{k} >> 13u)"));
            }
        }
        let _ = writeln!(s, "    let l29 = {};", carry.unwrap_or_default());
        let _ = writeln!(
            s,
            "    return fp_reduce_once(Fp(\n        {}\n    ));\n}}",
            pack13().join(",\n        ")
        );
        s
    }

    #[allow(clippy::needless_range_loop)]
    pub fn mul16() -> String {
        let p = limbs(16, 24);
        let pinv = neg_inv(16);
        let mut s = String::from(
            "// GENERATED by `codegen` in src/accel/aggregate.rs; do not edit.\n\
// Montgomery multiplication for bls12_381.wgsl: 16-bit half products, CIOS (measured\n\
// against bls_fp_mul13.wgsl, which is faster on lavapipe and the default).\n\
//\n\
// WGSL has no 32×32→64 multiply, so the operands are split into 24 limbs of 16 bits\n\
// and multiplied with Coarsely Integrated Operand Scanning (Koç, Acar, Kaliski 1996)\n\
// over radix 2^16: for each limb b_i, t += a·b_i, then m = t_0·(−p^-1) mod 2^16 and\n\
// t = (t + m·p) / 2^16. Every step t_j + a_j·b_i + carry is at most (2^16 − 1) +\n\
// (2^16 − 1)^2 + (2^16 − 1) = 2^32 − 1: it fits a u32 exactly, and the carry is the\n\
// high half. R = 2^384: the result is a·b·2^-384 mod p, blst's own Montgomery form.\n\
// For a, b < p the result is below 2p; one conditional subtraction makes it < p.\n\
// Straight-line code: every limb of every step is a `let`.\n\n",
        );
        let one = kbls::fp_to_words(&kbls::fp_from_u64(1));
        s += &fp_const("FP_ONE", "R mod p = 2^384 mod p.", one);
        s += "\nfn fp_mul(a: Fp, b: Fp) -> Fp {\n";
        for i in 0..12 {
            let _ = writeln!(
                s,
                "    let a{} = a[{i}] & 0xffffu; let a{} = a[{i}] >> 16u;",
                2 * i,
                2 * i + 1
            );
            let _ = writeln!(
                s,
                "    let b{} = b[{i}] & 0xffffu; let b{} = b[{i}] >> 16u;",
                2 * i,
                2 * i + 1
            );
        }
        let mut t: Vec<Option<String>> = vec![None; 25];
        for i in 0..24 {
            let mut c: Option<String> = None;
            for j in 0..24 {
                let terms: Vec<String> = [t[j].clone(), Some(format!("a{j} * b{i}")), c.clone()]
                    .into_iter()
                    .flatten()
                    .collect();
                let _ = writeln!(s, "    let s{i}_{j} = {};", terms.join(" + "));
                t[j] = Some(format!("(s{i}_{j} & 0xffffu)"));
                c = Some(format!("(s{i}_{j} >> 16u)"));
            }
            let terms: Vec<String> = [t[24].clone(), c.clone()].into_iter().flatten().collect();
            let _ = writeln!(s, "    let s{i}_24 = {};", terms.join(" + "));
            let t25 = format!("(s{i}_24 >> 16u)");
            t[24] = Some(format!("(s{i}_24 & 0xffffu)"));
            let t0 = t[0].clone().unwrap_or_default();
            let _ = writeln!(s, "    let m{i} = ({t0} * {pinv}u) & 0xffffu;");
            let _ = writeln!(s, "    let r{i}_0 = {t0} + m{i} * {}u;", p[0]);
            let mut c = format!("(r{i}_0 >> 16u)");
            for j in 1..24 {
                let tj = t[j].clone().unwrap_or_default();
                let _ = writeln!(s, "    let r{i}_{j} = {tj} + m{i} * {}u + {c};", p[j]);
                t[j - 1] = Some(format!("(r{i}_{j} & 0xffffu)"));
                c = format!("(r{i}_{j} >> 16u)");
            }
            let t24 = t[24].clone().unwrap_or_default();
            let _ = writeln!(s, "    let r{i}_24 = {t24} + {c};");
            t[23] = Some(format!("(r{i}_24 & 0xffffu)"));
            let _ = writeln!(s, "    let h{i} = {t25} + (r{i}_24 >> 16u);");
            t[24] = Some(format!("h{i}"));
        }
        let words: Vec<String> = (0..12)
            .map(|k| {
                let lo = t[2 * k].clone().unwrap_or_default();
                let hi = t[2 * k + 1].clone().unwrap_or_default();
                format!("{lo} | ({hi} << 16u)")
            })
            .collect();
        let _ = writeln!(
            s,
            "    return fp_reduce_once(Fp(\n        {}\n    ));\n}}",
            words.join(",\n        ")
        );
        s
    }

    /// fp_reduce_once, fp_add and fp_sub on 32-bit words with explicit carries.
    pub fn add_sub() -> String {
        let mut s = String::new();
        let chain = |s: &mut String,
                     op: char,
                     a: &str,
                     b: &dyn Fn(usize) -> String,
                     out: &str,
                     carry: &str| {
            // out_i = a_i op b_i op carry_(i-1); carry_i from either step.
            for i in 0..12 {
                let bi = b(i);
                if i == 0 {
                    if op == '+' {
                        let _ = writeln!(s, "    let {out}0 = {a}[0] + {bi}; let {carry}0 = select(0u, 1u, {out}0 < {a}[0]);");
                    } else {
                        let _ = writeln!(s, "    let {out}0 = {a}[0] - {bi}; let {carry}0 = select(0u, 1u, {a}[0] < {bi});");
                    }
                } else if op == '+' {
                    let _ = writeln!(
                        s,
                        "    let {out}e{i} = {a}[{i}] + {bi}; let {out}{i} = {out}e{i} + {carry}{}; let {carry}{i} = select(0u, 1u, {out}e{i} < {a}[{i}]) | select(0u, 1u, {out}{i} < {out}e{i});",
                        i - 1
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "    let {out}e{i} = {a}[{i}] - {bi}; let {out}{i} = {out}e{i} - {carry}{}; let {carry}{i} = select(0u, 1u, {a}[{i}] < {bi}) | select(0u, 1u, {out}e{i} < {carry}{});",
                        i - 1,
                        i - 1
                    );
                }
            }
        };
        let list = |v: &str| {
            (0..12)
                .map(|i| format!("{v}{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s += "// a − p if a >= p, else a (for a < 2p).\nfn fp_reduce_once(a: Fp) -> Fp {\n";
        chain(&mut s, '-', "a", &|i| hex(P32[i]), "d", "w");
        let _ = writeln!(
            s,
            "    if w11 != 0u {{\n        return a;\n    }}\n    return Fp({});\n}}\n",
            list("d")
        );
        s += "// (a + b) mod p for a, b < p. The sum is below 2p < 2^382: no carry leaves word 11.\n\
fn fp_add(a: Fp, b: Fp) -> Fp {\n";
        chain(&mut s, '+', "a", &|i| format!("b[{i}]"), "s", "c");
        let _ = writeln!(s, "    return fp_reduce_once(Fp({}));\n}}\n", list("s"));
        s += "// (a − b) mod p for a, b < p: on a borrow, p is added back (mask = all ones).\n\
fn fp_sub(a: Fp, b: Fp) -> Fp {\n";
        chain(&mut s, '-', "a", &|i| format!("b[{i}]"), "d", "w");
        s += "    let mask = 0u - w11;\n    let x = Fp(";
        s += &(0..12)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        s += ");\n";
        chain(
            &mut s,
            '+',
            "x",
            &|i| format!("({} & mask)", hex(P32[i])),
            "s",
            "c",
        );
        let _ = writeln!(s, "    return Fp({});\n}}", list("s"));
        s
    }

    const BEGIN: &str = "// BEGIN GENERATED (codegen in src/accel/aggregate.rs)\n";
    const END: &str = "// END GENERATED\n";

    fn with_block(text: &str, block: &str) -> Option<String> {
        let b = text.find(BEGIN)? + BEGIN.len();
        let e = text.find(END)?;
        (b <= e).then(|| format!("{}{block}{}", &text[..b], &text[e..]))
    }

    #[test]
    fn generated_wgsl_is_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let main = std::fs::read_to_string(dir.join("bls12_381.wgsl")).expect("bls12_381.wgsl");
        let Some(main_new) = with_block(&main, &add_sub()) else {
            panic!("bls12_381.wgsl lacks the generated-block markers");
        };
        let files = [
            ("bls12_381.wgsl", main_new),
            ("bls_fp_mul13.wgsl", mul13()),
            ("bls_fp_mul16.wgsl", mul16()),
        ];
        let write = std::env::var_os("QUASAR_WRITE_WGSL").is_some();
        for (name, want) in files {
            let path = dir.join(name);
            if write {
                std::fs::write(&path, &want).expect("writing a shader");
            } else {
                let have = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(have == want, "{name} is stale: run QUASAR_WRITE_WGSL=1 cargo test --release --lib generated_wgsl");
            }
        }
    }

    #[test]
    fn constants() {
        assert_eq!(neg_inv(16), 0xfffd);
        assert_eq!(neg_inv(13), 8189);
        assert_eq!(limbs(13, 30)[29], 13);
        assert_eq!(limbs(16, 24)[0], 0xaaab);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_levels_reduce_every_set_to_one_partial() {
        let plan = plan_batch(&[1, 33, 100], 32, 2, 500).expect("plan");
        // offsets, then prefix sums of the partials per level: [1, 2, 4] → [1, 1, 2] → [1, 1, 1].
        assert_eq!(
            plan.plan,
            vec![0, 1, 34, 134, 0, 1, 3, 7, 0, 1, 2, 4, 0, 1, 2, 3]
        );
        let kinds: Vec<AggKernel> = plan.dispatches.iter().map(|d| d.kernel).collect();
        assert_eq!(
            kinds,
            vec![
                AggKernel::Chunks,
                AggKernel::Reduce,
                AggKernel::Reduce,
                AggKernel::Finish
            ]
        );
        let threads: Vec<u64> = plan.dispatches.iter().map(|d| d.threads).collect();
        assert_eq!(threads, vec![7, 4, 3, 3]);
        assert_eq!(plan.partials, 14);
        // Params: threads, n_sets, in_base, out_base, prefix_in, prefix_out, span, table_len.
        assert_eq!(plan.dispatches[0].params, [7, 3, 0, 0, 0, 4, 32, 500]);
        assert_eq!(plan.dispatches[1].params, [4, 3, 0, 7, 4, 8, 2, 500]);
        assert_eq!(plan.dispatches[2].params, [3, 3, 7, 11, 8, 12, 2, 500]);
        assert_eq!(plan.dispatches[3].params, [3, 3, 11, 0, 0, 0, 0, 500]);
        // Sets that fit one chunk need no reduce level.
        let small = plan_batch(&[3, 32], 32, 8, 10).expect("plan");
        assert_eq!(small.dispatches.len(), 2);
        assert_eq!(small.dispatches[1].params[2], 0, "finish reads level 0");
    }

    #[test]
    fn bad_sets_are_reported_in_order() {
        let sets: [&[u32]; 3] = [&[0, 1], &[], &[9]];
        assert!(matches!(
            check_sets(5, &sets),
            Err(AggregateError::EmptySet { set: 1 })
        ));
        let sets: [&[u32]; 2] = [&[0, 5, 7], &[]];
        assert!(matches!(
            check_sets(5, &sets),
            Err(AggregateError::IndexOutOfRange {
                set: 0,
                position: 1,
                index: 5,
                table_len: 5
            })
        ));
        assert!(check_sets(5, &[&[4, 4, 0]]).is_ok());
    }

    #[test]
    fn cpu_splits_large_sets() {
        let g = kbls::p1_generator();
        let mut acc = g;
        let points: Vec<blst_p1_affine> = (0..64)
            .map(|_| {
                let a = kbls::p1_to_affine(&acc);
                acc = kbls::p1_add(&acc, &g);
                a
            })
            .collect();
        let table = PubkeyTable::new(points);
        // 3·CPU_SPLIT + 5 indices cycling over 1..=64 multiples of G.
        let n = 3 * CPU_SPLIT + 5;
        let set: Vec<u32> = (0..n as u32).map(|i| i % 64).collect();
        let got = CpuAggregator.aggregate(&table, &[&set]).expect("cpu");
        let k: u64 = (0..n as u64).map(|i| i % 64 + 1).sum();
        assert!(kbls::p1_is_equal(&got[0], &kbls::p1_mul_u64(&g, k)));
        let mut bad = set.clone();
        bad[CPU_SPLIT + 3] = 64;
        assert!(matches!(
            CpuAggregator.aggregate(&table, &[&[1], &bad]),
            Err(AggregateError::IndexOutOfRange { set: 1, position, .. }) if position == CPU_SPLIT + 3
        ));
    }
}

/// `auto`: the GPU for batches of at least `min_keys` indices (when it has one), the CPU
/// twin otherwise; a GPU failure (lost device, failed submission) falls back to the CPU for
/// that batch and every later one, logged once. Bad input is reported, not retried.
pub struct AutoAggregator {
    gpu: Option<GpuAggregator>,
    min_keys: usize,
    disabled: std::sync::atomic::AtomicBool,
}

impl AutoAggregator {
    pub fn new(gpu: Option<GpuAggregator>, min_keys: usize) -> Self {
        Self {
            gpu,
            min_keys,
            disabled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether a GPU failure has switched this aggregator to the CPU for good.
    pub fn fell_back(&self) -> bool {
        self.disabled.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl PubkeyAggregator for AutoAggregator {
    fn name(&self) -> String {
        match &self.gpu {
            Some(g) if !self.fell_back() => {
                format!("auto({} | {})", CpuAggregator.name(), g.name())
            }
            _ => format!("auto({})", CpuAggregator.name()),
        }
    }

    fn aggregate(
        &self,
        table: &PubkeyTable,
        sets: &[&[u32]],
    ) -> Result<Vec<blst_p1>, AggregateError> {
        let keys: usize = sets.iter().map(|s| s.len()).sum();
        if let Some(gpu) = &self.gpu {
            if keys >= self.min_keys && !self.fell_back() {
                match gpu.aggregate(table, sets) {
                    Err(e) if !e.is_invalid_input() => {
                        if !self
                            .disabled
                            .swap(true, std::sync::atomic::Ordering::Relaxed)
                        {
                            tracing::warn!(
                                "aggregation: GPU failed ({e}); using the CPU from now on"
                            );
                        }
                    }
                    result => return result,
                }
            }
        }
        CpuAggregator.aggregate(table, sets)
    }
}
