//! SHA-256 pair hashing and merkleization on the GPU: the merkle pipelines compiled once
//! per device, buffers pooled across calls (the device, pools, pipeline building and
//! readback are [`super::device`]'s, shared with the aggregator).
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
//! Errors never panic (see [`super::device`]): a failure marks the [`GpuContext`] lost,
//! and later calls fail fast with [`GpuError::Lost`] so the caller falls back to the CPU.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Instant;

use super::device::{
    grid, pack_params, params_stride, read_back, storage_entry, uniform_entry, BufferKind,
    BufferPool, Program, PARAMS_SIZE,
};
pub use super::device::{GpuContext, GpuError, GpuStats, PipelineKey, PoolStats};

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
/// Most dispatches in one submission (a tree of depth 40 unfused needs 40).
const MAX_STEPS: u64 = 64;
/// Zero hashes uploaded for the shader (levels 0..ZERO_LEVELS).
const ZERO_LEVELS: usize = 64;
/// Largest storage binding the kernels address: u32 word indices (`node * 8`).
const MAX_ADDRESSABLE: u64 = 1 << 32;

/// A root and the kept levels, in the order asked for.
pub type RootAndLevels = ([u8; 32], Vec<Vec<[u8; 32]>>);

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

/// The buffers of a merkle submission.
mod kind {
    use super::BufferKind;
    use wgpu::BufferUsages as U;
    /// Input and every level of a tree.
    pub const NODES: BufferKind = BufferKind::new(
        "quasar merkle nodes",
        U::STORAGE.union(U::COPY_DST).union(U::COPY_SRC),
    );
    /// Leaves and parameters, kept mapped while pooled.
    pub const UPLOAD: BufferKind =
        BufferKind::new("quasar merkle upload", U::MAP_WRITE.union(U::COPY_SRC));
    /// The root and kept levels.
    pub const READBACK: BufferKind =
        BufferKind::new("quasar merkle readback", U::MAP_READ.union(U::COPY_DST));
    /// Per-dispatch parameters.
    pub const PARAMS: BufferKind =
        BufferKind::new("quasar merkle params", U::UNIFORM.union(U::COPY_DST));
}

/// The merkle pipelines of one device and the zero-hash table they read, built once per
/// [`GpuContext`] and shared by every hasher on it.
#[derive(Clone)]
struct MerklePipelines {
    level: wgpu::ComputePipeline,
    fused: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    zeros: wgpu::Buffer,
}

fn build_merkle_pipelines(
    ctx: &GpuContext,
    zero_hashes: &[[u8; 32]],
) -> Result<MerklePipelines, GpuError> {
    let entries = [
        storage_entry(0, false),
        storage_entry(1, true),
        uniform_entry(2, true, PARAMS_SIZE),
    ];
    // The fused kernel's tile is always written before it is read.
    let program = Program::new(ctx, "quasar merkle", &[SHADER], &entries, false)?;
    let mut pipelines = program.pipelines(ctx, &["merkle_level", "merkle_fused"])?;
    let (Some(fused), Some(level)) = (pipelines.pop(), pipelines.pop()) else {
        return Err(GpuError::Device("missing merkle pipelines".into()));
    };
    let zeros = ctx.error_scoped("uploading the zero hashes", GpuError::Device, || {
        let zeros = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("quasar zero hashes"),
            size: (ZERO_LEVELS as u64) * NODE,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue()
            .write_buffer(&zeros, 0, zero_hashes.as_flattened());
        zeros
    })?;
    Ok(MerklePipelines {
        level,
        fused,
        layout: program.layout().clone(),
        zeros,
    })
}

/// SHA-256 pair hashing and merkleization on the GPU.
pub struct GpuHasher {
    ctx: Arc<GpuContext>,
    pipelines: MerklePipelines,
    zero_hashes: Vec<[u8; 32]>,
    pool: BufferPool,
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
    /// Takes the context's merkle pipelines (compiling them and uploading the zero-hash
    /// table on the context's first hasher).
    pub fn new(ctx: Arc<GpuContext>) -> Result<GpuHasher, GpuError> {
        ctx.ensure_alive()?;
        let zero_hashes = crate::merkle::zero_hashes()[..ZERO_LEVELS].to_vec();
        let key = PipelineKey {
            kernel: "sha256 merkle",
            variant: "",
        };
        let pipelines = ctx.pipelines(key, |ctx| build_merkle_pipelines(ctx, &zero_hashes))?;
        let limit = ctx.binding_limit().min(MAX_ADDRESSABLE);
        // A tree of S leaves needs < 2 S nodes (unfused worst case); a hash_pairs
        // batch of n blocks needs 3 n nodes.
        let subtree_log2 = (63 - (limit / (2 * NODE)).max(1).leading_zeros()).min(MAX_DEPTH);
        let max_pairs = (limit / (3 * NODE)).max(1);
        let fused = !ctx.is_software();
        Ok(GpuHasher {
            ctx,
            pipelines,
            zero_hashes,
            pool: BufferPool::new(),
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
        self.pool.stats()
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
        self.ctx.ensure_alive()?;
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
        self.ctx.ensure_alive()?;
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

    /// Runs one job in one submission and returns the downloaded bytes.
    fn run(&self, job: &Job<'_>) -> Result<Vec<u8>, GpuError> {
        let ctx = &self.ctx;
        ctx.ensure_alive()?;
        let device = ctx.device();
        let align = params_stride(ctx);
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
            .limits()
            .max_storage_buffer_binding_size
            .min(MAX_ADDRESSABLE);
        if nodes_bytes > binding_limit || up_bytes > ctx.limits().max_buffer_size {
            return Err(GpuError::TooLarge(format!(
                "{nodes_bytes} bytes of nodes exceed the device's storage binding limit of {binding_limit}"
            )));
        }
        let mut grids = Vec::with_capacity(job.steps.len());
        for step in &job.steps {
            grids.push(grid(ctx, step.workgroups())?);
        }
        let words: Vec<[u32; 8]> = job
            .steps
            .iter()
            .map(|step| {
                [
                    step.src as u32,
                    step.dst as u32,
                    step.m_in as u32,
                    step.level,
                    step.fuse,
                    0,
                    0,
                    0,
                ]
            })
            .collect();
        let params = pack_params(align, &words);

        let upload = self.pool.take(ctx, kind::UPLOAD, up_bytes);
        let nodes = self.pool.take(ctx, kind::NODES, nodes_bytes);
        let uniforms = self.pool.take(ctx, kind::PARAMS, MAX_STEPS * align);
        let readback = self.pool.take(ctx, kind::READBACK, down_bytes);
        let p = &self.pipelines;

        let submitted = ctx.error_scoped("merkle submission", GpuError::Submission, || {
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
                layout: &p.layout,
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
                        resource: p.zeros.as_entire_binding(),
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
                        Kernel::Level => &p.level,
                        Kernel::Fused => &p.fused,
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
            Ok(ctx.queue().submit([encoder.finish()]))
        });
        let index = match submitted {
            Ok(Ok(index)) => index,
            Ok(Err(e)) | Err(e) => {
                ctx.mark_failed(&e.to_string());
                return Err(e);
            }
        };
        ctx.count_submission(up_bytes);
        tracing::trace!(
            target: "quasar::accel::gpu",
            dispatches = steps,
            uploaded = up_bytes,
            downloaded = down_bytes,
            nodes_bytes,
            "gpu submission"
        );
        let (out, remapped) =
            read_back(ctx, "merkle", index, &readback, down_bytes, Some(&upload))?;
        ctx.count_download(down_bytes);
        self.pool.give(kind::NODES, nodes);
        self.pool.give(kind::PARAMS, uniforms);
        self.pool.give(kind::READBACK, readback);
        if remapped {
            self.pool.give(kind::UPLOAD, upload);
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
