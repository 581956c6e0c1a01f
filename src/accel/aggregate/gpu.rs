//! The GPU aggregator: the pubkey table resident on the device, the aggregation kernels
//! (`shaders/bls12_381.wgsl`, one of `shaders/bls_fp_mul13.wgsl` /
//! `shaders/bls_fp_mul16.wgsl`, `shaders/bls_aggregate.wgsl`) compiled once per device,
//! and per call ONE submission: level 0 sums chunks of each set into projective partials,
//! a tree of reduce levels sums each set's partials ([`plan_batch`]), and one Jacobian
//! point per set comes back. `submit` returns once the submission is made
//! ([`GpuAggregator::launch`]); the pending aggregate owns its buffers until `wait`.

use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use blst::{blst_fp, blst_p1, blst_p1_affine};
use quasar_kernels::bls as kbls;

use super::{check_sets, AggregateError, PendingAggregate, PubkeyAggregator, PubkeyTable};
use crate::accel::device::{
    finish_read, grid, pack_params, params_stride, request_read, storage_entry, uniform_entry,
    BufferKind, BufferPool, GpuContext, GpuError, PipelineKey, Program, PARAMS_SIZE, POLL_TIMEOUT,
};

/// Fp and G1 arithmetic (linked first).
pub(super) const SHADER_FP_G1: &str = include_str!("../../../shaders/bls12_381.wgsl");
/// Montgomery multiplication, 16-bit half products (CIOS), R = 2^384.
const SHADER_MUL16: &str = include_str!("../../../shaders/bls_fp_mul16.wgsl");
/// Montgomery multiplication, 13-bit limbs with lazy carries, R = 2^390.
const SHADER_MUL13: &str = include_str!("../../../shaders/bls_fp_mul13.wgsl");
/// The segmented-reduction kernels.
const SHADER_AGGREGATE: &str = include_str!("../../../shaders/bls_aggregate.wgsl");

/// Invocations per workgroup of every kernel.
pub(super) const WG_SIZE: u64 = 64;
/// Bytes of one affine table point (x, y: 12 words each).
const POINT_BYTES: u64 = 96;
/// Bytes of one projective partial or Jacobian result (X, Y, Z).
const PARTIAL_BYTES: u64 = 144;

/// `bytes` of `buffer` from its start, as a binding.
fn binding(buffer: &wgpu::Buffer, bytes: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: NonZeroU64::new(bytes),
    })
}

/// The buffers of an aggregation submission (the table is resident, not pooled).
mod kind {
    use super::BufferKind;
    use wgpu::BufferUsages as U;
    pub const INDICES: BufferKind =
        BufferKind::new("quasar bls indices", U::STORAGE.union(U::COPY_DST));
    pub const PLAN: BufferKind = BufferKind::new("quasar bls plan", U::STORAGE.union(U::COPY_DST));
    pub const PARTIALS: BufferKind = BufferKind::new("quasar bls partials", U::STORAGE);
    pub const SUMS: BufferKind = BufferKind::new("quasar bls sums", U::STORAGE.union(U::COPY_SRC));
    pub const PARAMS: BufferKind =
        BufferKind::new("quasar bls params", U::UNIFORM.union(U::COPY_DST));
    pub const READBACK: BufferKind =
        BufferKind::new("quasar bls readback", U::MAP_READ.union(U::COPY_DST));
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
    pub(super) fn source(self) -> &'static str {
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
pub(super) struct Radix {
    /// Multiplier into the shader's form (None: the same form).
    into: Option<blst_fp>,
    /// Multiplier back into blst's form.
    back: Option<blst_fp>,
}

impl Radix {
    pub(super) fn new(fp: FpMul) -> Radix {
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

    pub(super) fn words_of(&self, a: &blst_fp) -> [u32; 12] {
        match &self.into {
            None => kbls::fp_to_words(a),
            Some(c) => kbls::fp_to_words(&kbls::fp_mul(a, c)),
        }
    }

    pub(super) fn fp_of(&self, w: &[u32; 12]) -> blst_fp {
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

#[derive(Default)]
struct GpuState {
    table: Option<ResidentTable>,
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
    /// Submissions not yet waited for (at most [`MAX_IN_FLIGHT`] on the device).
    in_flight: Mutex<InFlight>,
    pool: BufferPool,
}

/// Counters of one [`GpuAggregator`] (the context's [`GpuContext::stats`] count these
/// submissions and bytes too, with those of every other user of the device).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregateStats {
    /// Queue submissions (one per `submit` or `aggregate` call with at least one set).
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
    let program = Program::new(
        ctx,
        "quasar bls aggregate",
        &[SHADER_FP_G1, fp_mul.source(), SHADER_AGGREGATE],
        &entries,
        true,
    )?;
    let mut pipelines = program.pipelines(ctx, &["agg_chunks", "agg_reduce", "agg_finish"])?;
    let (Some(finish), Some(reduce), Some(chunks)) =
        (pipelines.pop(), pipelines.pop(), pipelines.pop())
    else {
        return Err(GpuError::Device("missing aggregation pipelines".into()));
    };
    Ok(AggPipelines {
        layout: program.layout().clone(),
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
        let align = params_stride(&ctx);
        Ok(GpuAggregator {
            radix: Radix::new(options.fp_mul),
            ctx,
            options,
            pipelines,
            align,
            state: Mutex::new(GpuState::default()),
            in_flight: Mutex::new(InFlight::default()),
            pool: BufferPool::new(),
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
        let limit = self.ctx.binding_limit();
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

    /// Plans the batch, uploads the index lists and the plan, and makes ONE submission
    /// whose readback is mapped as soon as it is done; returns without waiting for it.
    /// With [`MAX_IN_FLIGHT`] of this aggregator's submissions outstanding it first waits
    /// for the device to finish the oldest of them (on the device, not on its owner, so
    /// a thread holding several pending aggregates cannot deadlock itself).
    pub(super) fn launch(
        &self,
        table: &PubkeyTable,
        sets: &[&[u32]],
    ) -> Result<GpuPending<'_>, GpuError> {
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
        let binding_limit = ctx.binding_limit();
        for (what, bytes) in [
            ("indices", index_bytes),
            ("partial sums", partial_bytes),
            ("plan", plan_bytes),
            ("results", sums_bytes),
        ] {
            if bytes > binding_limit {
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
            grids.push(grid(ctx, d.threads.div_ceil(WG_SIZE))?);
        }
        let words: Vec<[u32; 8]> = plan.dispatches.iter().map(|d| d.params).collect();
        let params = pack_params(self.align, &words);

        // This submission's own buffers (the pool keeps two of each size class free, so
        // two submissions in flight alternate between two sets without allocating).
        let pool = &self.pool;
        let buffers = SubmitBuffers {
            indices: pool.take(ctx, kind::INDICES, index_bytes),
            plan: pool.take(ctx, kind::PLAN, plan_bytes),
            partials: pool.take(ctx, kind::PARTIALS, partial_bytes),
            sums: pool.take(ctx, kind::SUMS, sums_bytes),
            params: pool.take(ctx, kind::PARAMS, params_bytes),
            readback: pool.take(ctx, kind::READBACK, sums_bytes),
        };

        // The resident table is this aggregator's: one submission at a time updates it
        // (a submission in flight keeps the buffer it was bound to alive, and appends
        // land past the points it reads).
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait_for_a_slot()?;
        let submitted = ctx.error_scoped("aggregation submission", GpuError::Submission, || {
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("quasar bls aggregate"),
            });
            let table_bytes = self.sync_table(&mut state, table, &mut encoder)?;
            let Some(table_buffer) = state.table.as_ref().map(|t| t.buffer.clone()) else {
                return Err(GpuError::Submission("internal: no resident table".into()));
            };
            let queue = ctx.queue();
            // The index lists go straight from the sets into the staging memory.
            if index_bytes > 0 {
                let Some(size) = std::num::NonZeroU64::new(index_bytes) else {
                    return Err(GpuError::Submission("internal: no indices".into()));
                };
                let Some(mut view) = queue.write_buffer_with(&buffers.indices, 0, size) else {
                    return Err(GpuError::Submission(
                        "no staging memory for the index lists".into(),
                    ));
                };
                let mut at = 0usize;
                for set in sets {
                    let bytes: &[u8] = bytemuck::cast_slice(set);
                    view.slice(at..at + bytes.len()).copy_from_slice(bytes);
                    at += bytes.len();
                }
            }
            queue.write_buffer(&buffers.plan, 0, bytemuck::cast_slice(&plan.plan));
            queue.write_buffer(&buffers.params, 0, &params);
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
                        resource: binding(&buffers.indices, index_bytes.max(4)),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: binding(&buffers.plan, plan_bytes),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: binding(&buffers.partials, partial_bytes),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: binding(&buffers.sums, sums_bytes),
                    },
                    wgpu::BindGroupEntry {
                        binding: 5,
                        resource: binding(&buffers.params, PARAMS_SIZE),
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
            encoder.copy_buffer_to_buffer(&buffers.sums, 0, &buffers.readback, 0, sums_bytes);
            let index = queue.submit([encoder.finish()]);
            // Mapped by whichever poll first sees the submission done.
            let request = request_read(&buffers.readback, sums_bytes, None);
            Ok((index, request, table_bytes))
        });
        let (index, request, table_bytes) = match submitted {
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
        let ticket = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            in_flight.next_ticket += 1;
            let ticket = in_flight.next_ticket;
            in_flight.queue.push_back((ticket, index.clone()));
            ticket
        };
        let stats = &mut state.stats;
        stats.submissions += 1;
        stats.sets += n;
        stats.indices += total;
        stats.bytes_uploaded += uploaded;
        stats.table_bytes_uploaded += table_bytes;
        stats.bytes_downloaded += sums_bytes;
        drop(state);
        ctx.record_submission(uploaded, sums_bytes);
        tracing::debug!(
            target: "quasar::accel::aggregate",
            sets = n,
            indices = total,
            levels = plan.dispatches.len() - 1,
            uploaded,
            table_bytes,
            downloaded = sums_bytes,
            submit_us = started.elapsed().as_micros() as u64,
            "gpu pubkey aggregation submitted"
        );
        Ok(GpuPending {
            gpu: self,
            ticket,
            index,
            buffers: Some(buffers),
            request: Some(request),
            sums_bytes,
            started,
        })
    }

    /// With [`MAX_IN_FLIGHT`] submissions outstanding, waits until the device has finished
    /// the one that keeps the count over the limit (their map callbacks run in this poll
    /// and wait in their channels for their owners).
    fn wait_for_a_slot(&self) -> Result<(), GpuError> {
        let oldest = {
            let in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let q = &in_flight.queue;
            (q.len() >= MAX_IN_FLIGHT).then(|| q[q.len() - MAX_IN_FLIGHT].1.clone())
        };
        let Some(index) = oldest else {
            return Ok(());
        };
        if let Err(e) = self.ctx.device().poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(POLL_TIMEOUT),
        }) {
            let why = format!("waiting for an earlier aggregation submission: {e}");
            self.ctx.mark_failed(&why);
            return Err(GpuError::Lost(why));
        }
        Ok(())
    }

    /// Submissions of this aggregator submitted and not yet waited for or dropped.
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queue
            .len()
    }

    /// The pool the submissions' buffers come from (tests: reuse across calls).
    pub fn pool_stats(&self) -> crate::accel::device::PoolStats {
        self.pool.stats()
    }

    fn release(&self, ticket: u64) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        in_flight.queue.retain(|(t, _)| *t != ticket);
    }

    /// Jacobian points (X, Y, Z in the shader's form) into blst's.
    fn points_of(&self, bytes: &[u8]) -> Vec<blst_p1> {
        let words: &[u32] = bytemuck::cast_slice(bytes);
        words
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
            .collect()
    }
}

/// Most submissions of one [`GpuAggregator`] on the device queue at once: two, so that
/// batch N+1's index lists are planned and uploaded while batch N sums, with each
/// submission in its own pooled buffers (double buffering).
pub const MAX_IN_FLIGHT: usize = 2;

/// Submissions outstanding, oldest first.
#[derive(Default)]
struct InFlight {
    next_ticket: u64,
    queue: std::collections::VecDeque<(u64, wgpu::SubmissionIndex)>,
}

/// The buffers one submission uses, its own until it is waited for.
struct SubmitBuffers {
    indices: wgpu::Buffer,
    plan: wgpu::Buffer,
    partials: wgpu::Buffer,
    sums: wgpu::Buffer,
    params: wgpu::Buffer,
    readback: wgpu::Buffer,
}

/// A GPU aggregation in flight (see [`GpuAggregator::launch`]).
pub(super) struct GpuPending<'a> {
    gpu: &'a GpuAggregator,
    ticket: u64,
    index: wgpu::SubmissionIndex,
    /// `None` once waited for.
    buffers: Option<SubmitBuffers>,
    request: Option<crate::accel::device::ReadbackRequest>,
    sums_bytes: u64,
    started: Instant,
}

impl GpuPending<'_> {
    /// Whether the device is done and the readback mapped (no poll, no wait).
    pub(super) fn is_ready(&mut self) -> bool {
        self.request.as_mut().is_some_and(|r| r.is_ready())
    }

    /// Waits for the submission (see [`finish_read`]), returns the buffers to the pool
    /// and the sums.
    pub(super) fn wait(mut self) -> Result<Vec<blst_p1>, GpuError> {
        let (Some(buffers), Some(request)) = (self.buffers.take(), self.request.take()) else {
            return Err(GpuError::Submission("internal: waited twice".into()));
        };
        let gpu = self.gpu;
        let bytes = finish_read(
            &gpu.ctx,
            "aggregation",
            self.index.clone(),
            &buffers.readback,
            self.sums_bytes,
            request,
        )?;
        let pool = &gpu.pool;
        pool.give(kind::INDICES, buffers.indices);
        pool.give(kind::PLAN, buffers.plan);
        pool.give(kind::PARTIALS, buffers.partials);
        pool.give(kind::SUMS, buffers.sums);
        pool.give(kind::PARAMS, buffers.params);
        pool.give(kind::READBACK, buffers.readback);
        let out = gpu.points_of(&bytes.0);
        tracing::debug!(
            target: "quasar::accel::aggregate",
            sets = out.len(),
            elapsed_us = self.started.elapsed().as_micros() as u64,
            "gpu pubkey aggregation done"
        );
        Ok(out)
    }
}

impl Drop for GpuPending<'_> {
    /// Frees the slot. Buffers of a submission never waited for go back to the pool but
    /// the readback (its map is still pending): the queue orders their next use after
    /// this submission.
    fn drop(&mut self) {
        self.gpu.release(self.ticket);
        if let Some(b) = self.buffers.take() {
            let pool = &self.gpu.pool;
            pool.give(kind::INDICES, b.indices);
            pool.give(kind::PLAN, b.plan);
            pool.give(kind::PARTIALS, b.partials);
            pool.give(kind::SUMS, b.sums);
            pool.give(kind::PARAMS, b.params);
        }
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

    /// Checks the sets, uploads their index lists and makes one submission; returns at
    /// once. No sets: nothing goes to the device.
    fn submit<'a>(
        &'a self,
        table: &'a PubkeyTable,
        sets: &'a [&'a [u32]],
    ) -> Result<PendingAggregate<'a>, AggregateError> {
        check_sets(table.len(), sets)?;
        self.submit_checked(table, sets)
    }
}

impl GpuAggregator {
    /// [`PubkeyAggregator::submit`] for sets already checked.
    pub(super) fn submit_checked<'a>(
        &'a self,
        table: &'a PubkeyTable,
        sets: &'a [&'a [u32]],
    ) -> Result<PendingAggregate<'a>, AggregateError> {
        if sets.is_empty() {
            return Ok(PendingAggregate::on_cpu(table, sets));
        }
        let pending = self.launch(table, sets)?;
        Ok(PendingAggregate::on_device(table, sets, pending))
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
}
