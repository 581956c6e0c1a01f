//! Merkle trees resident in device memory: the levels of a set of trees (the state's big
//! lists) stay on the GPU between calls; a call uploads only the changed leaves and a
//! work list, the device rehashes the dirty paths of every tree in ONE submission, and
//! only the trees' natural roots come back.
//!
//! The host keeps the leaves (it diffs the state against them, see
//! [`crate::merkle::CachedStateRoot`]) and passes, per tree, all its leaves and the dirty
//! indices — exactly what the CPU twin ([`crate::merkle::tree::rehash`]) is given, so the
//! two stay equal by construction of the same dirty sets (held by differential tests).
//!
//! Layout: one `nodes` buffer; tree `t` of capacity `C = 2^c` (its leaf count rounded up
//! to a power of two) owns `2C - 1` slots, level `k` at `base_t + Σ_{j<k} C >> j`. Level
//! `k` of a tree of `n` leaves has `ceil(n / 2^k)` real nodes; a missing right sibling is
//! the zero hash of level `k` (the shader's `zeros`). Slots past the real nodes are
//! stale and never read. A tree that outgrows its capacity (or a new set of trees)
//! re-lays the buffer and uploads every leaf once.
//!
//! Per level, a tree with more than half of its parents dirty is rehashed whole with the
//! `merkle_level` kernel (no index list: an epoch's balances, scores and flags); the
//! other trees' dirty parents of that level go in one `tree_gather` dispatch. Changed
//! leaves go up contiguously for a mostly dirty tree, else as `tree_scatter` items.
//!
//! Submissions are double-buffered: [`ResidentTrees::submit`] returns a
//! [`PendingRoots`] without waiting, each with its own upload, work-list and readback
//! buffers, so the host can prepare (and submit) the next update while the device hashes
//! this one; the queue orders them. [`ResidentTrees::wait`] maps the roots back.
//!
//! Errors never panic: a failure marks the context lost (see [`super::device`]); the
//! caller then rebuilds its trees on the CPU.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::device::{
    grid, pack_params, params_stride, read_back, storage_entry, uniform_entry, BufferKind,
    BufferPool, GpuContext, GpuError, PipelineKey, Program, PARAMS_SIZE,
};
use crate::merkle::Chunk;

/// The merkle kernels (`merkle_level`, the bindings and SHA-256) and the resident ones.
const SHADERS: [&str; 2] = [
    include_str!("../../shaders/sha256.wgsl"),
    include_str!("../../shaders/merkle_resident.wgsl"),
];
/// Invocations per workgroup (all three kernels).
const WG_SIZE: u64 = 256;
/// Bytes per node.
const NODE: u64 = 32;
/// Words of one scatter item: node index and the leaf's 8 words.
const SCATTER_WORDS: usize = 9;
/// Words of one gather item: child node, parent node, whether the right child exists.
const GATHER_WORDS: usize = 3;
/// Node indices are u32 word offsets in the shader (`node * 8`).
const MAX_NODES: u64 = 1 << 29;
/// Deepest natural tree (2^40 leaves: the validator registry's limit).
const MAX_DEPTH: u32 = 40;

/// One tree's update: all its leaves now, and the (ascending, in-range) indices whose
/// paths changed since the last update of this tree: changed and appended leaves, and
/// after a change of length the new last leaf (as `LeafTree::diff_leaves` gives them).
#[derive(Clone, Copy, Debug)]
pub struct TreeUpdate<'a> {
    pub leaves: &'a [Chunk],
    pub dirty: &'a [usize],
}

/// Cumulative counters of one [`ResidentTrees`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResidentStats {
    /// Updates submitted.
    pub updates: u64,
    /// Times the node buffer was laid out (first update, a tree outgrew its capacity).
    pub layouts: u64,
    /// Leaves written to the device.
    pub leaves_uploaded: u64,
    /// Nodes hashed on the device.
    pub nodes_hashed: u64,
    /// Bytes written to the device (leaves, work lists, parameters).
    pub bytes_uploaded: u64,
}

mod kind {
    use super::BufferKind;
    use wgpu::BufferUsages as U;
    pub const NODES: BufferKind = BufferKind::new(
        "quasar resident nodes",
        U::STORAGE.union(U::COPY_DST).union(U::COPY_SRC),
    );
    pub const UPLOAD: BufferKind =
        BufferKind::new("quasar resident upload", U::MAP_WRITE.union(U::COPY_SRC));
    pub const ITEMS: BufferKind =
        BufferKind::new("quasar resident items", U::STORAGE.union(U::COPY_DST));
    pub const PARAMS: BufferKind =
        BufferKind::new("quasar resident params", U::UNIFORM.union(U::COPY_DST));
    pub const READBACK: BufferKind =
        BufferKind::new("quasar resident readback", U::MAP_READ.union(U::COPY_DST));
}

#[derive(Clone)]
struct Pipelines {
    level: wgpu::ComputePipeline,
    scatter: wgpu::ComputePipeline,
    gather: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    zeros: wgpu::Buffer,
}

fn build_pipelines(ctx: &GpuContext) -> Result<Pipelines, GpuError> {
    let entries = [
        storage_entry(0, false),
        storage_entry(1, true),
        uniform_entry(2, true, PARAMS_SIZE),
        storage_entry(3, true),
    ];
    let program = Program::new(ctx, "quasar resident merkle", &SHADERS, &entries, false)?;
    let mut built = program.pipelines(ctx, &["merkle_level", "tree_scatter", "tree_gather"])?;
    let (Some(gather), Some(scatter), Some(level)) = (built.pop(), built.pop(), built.pop()) else {
        return Err(GpuError::Device("missing resident merkle pipelines".into()));
    };
    let zeros = ctx.error_scoped("uploading the zero hashes", GpuError::Device, || {
        let zeros = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("quasar resident zero hashes"),
            size: 64 * NODE,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue()
            .write_buffer(&zeros, 0, crate::merkle::zero_hashes()[..64].as_flattened());
        zeros
    })?;
    Ok(Pipelines {
        level,
        scatter,
        gather,
        layout: program.layout().clone(),
        zeros,
    })
}

/// Where one tree lives in the node buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TreeSlot {
    /// log2 of the capacity in leaves.
    cap_log2: u32,
    /// Node offset of each level 0..=cap_log2.
    level_offsets: Vec<u64>,
}

impl TreeSlot {
    fn for_len(base: u64, len: usize) -> TreeSlot {
        let cap_log2 = crate::accel::hash::ceil_log2(len.max(1) as u64);
        let mut level_offsets = Vec::with_capacity(cap_log2 as usize + 1);
        let mut off = base;
        for k in 0..=cap_log2 {
            level_offsets.push(off);
            off += 1u64 << (cap_log2 - k);
        }
        TreeSlot {
            cap_log2,
            level_offsets,
        }
    }
    fn nodes(&self) -> u64 {
        (2u64 << self.cap_log2) - 1
    }
    fn fits(&self, len: usize) -> bool {
        (len as u64) <= 1u64 << self.cap_log2
    }
}

/// The node buffer and the trees laid out in it.
struct Layout {
    nodes: wgpu::Buffer,
    total_nodes: u64,
    trees: Vec<TreeSlot>,
}

/// An update in flight: its buffers, until [`ResidentTrees::wait`] reads the roots.
#[must_use = "wait for it, or the update's roots are never read"]
pub struct PendingRoots {
    index: wgpu::SubmissionIndex,
    upload: wgpu::Buffer,
    items: wgpu::Buffer,
    params: wgpu::Buffer,
    readback: wgpu::Buffer,
    down_bytes: u64,
    /// Per tree: the root known on the host, or its slot in the readback.
    roots: Vec<RootSource>,
}

#[derive(Clone, Copy, Debug)]
enum RootSource {
    Host(Chunk),
    Readback(usize),
}

/// One dispatch of an update.
#[derive(Clone, Copy, Debug)]
enum Dispatch {
    Scatter {
        word: u64,
        count: u64,
    },
    Level {
        src: u64,
        dst: u64,
        m_in: u64,
        level: u32,
    },
    Gather {
        word: u64,
        count: u64,
        level: u32,
    },
}

impl Dispatch {
    fn workgroups(&self) -> u64 {
        match *self {
            Dispatch::Scatter { count, .. } | Dispatch::Gather { count, .. } => {
                count.div_ceil(WG_SIZE)
            }
            Dispatch::Level { m_in, .. } => m_in.div_ceil(2).div_ceil(WG_SIZE),
        }
    }
    fn params(&self) -> [u32; 8] {
        match *self {
            Dispatch::Scatter { word, count } => [word as u32, 0, count as u32, 0, 0, 0, 0, 0],
            Dispatch::Level {
                src,
                dst,
                m_in,
                level,
            } => [src as u32, dst as u32, m_in as u32, level, 1, 0, 0, 0],
            Dispatch::Gather { word, count, level } => {
                [word as u32, 0, count as u32, level, 0, 0, 0, 0]
            }
        }
    }
}

/// The trees of one owner (e.g. a state-root cache), resident on one device.
pub struct ResidentTrees {
    ctx: Arc<GpuContext>,
    pipelines: Pipelines,
    pool: BufferPool,
    layout: Option<Layout>,
    stats: ResidentStats,
}

impl std::fmt::Debug for ResidentTrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentTrees")
            .field("ctx", &self.ctx)
            .field("trees", &self.layout.as_ref().map_or(0, |l| l.trees.len()))
            .field(
                "nodes_bytes",
                &self.layout.as_ref().map_or(0, |l| l.total_nodes * NODE),
            )
            .field("stats", &self.stats)
            .finish()
    }
}

impl ResidentTrees {
    /// Trees on `ctx` (the kernels are compiled once per context).
    pub fn new(ctx: Arc<GpuContext>) -> Result<ResidentTrees, GpuError> {
        ctx.ensure_alive()?;
        let key = PipelineKey {
            kernel: "sha256 resident merkle",
            variant: "",
        };
        let pipelines = ctx.pipelines(key, build_pipelines)?;
        Ok(ResidentTrees {
            ctx,
            pipelines,
            pool: BufferPool::new(),
            layout: None,
            stats: ResidentStats::default(),
        })
    }

    /// The device context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Counters since creation.
    pub fn stats(&self) -> ResidentStats {
        self.stats
    }

    /// Bytes of device memory the trees hold.
    pub fn device_bytes(&self) -> u64 {
        self.layout.as_ref().map_or(0, |l| l.total_nodes * NODE)
    }

    /// Forgets the device trees: the next update lays them out and uploads every leaf.
    pub fn reset(&mut self) {
        self.layout = None;
    }

    /// [`submit`](Self::submit) and [`wait`](Self::wait): the natural root of every tree
    /// (the root of its leaves padded to the next power of two; `zero_hashes[0]` for none).
    pub fn update(&mut self, updates: &[TreeUpdate<'_>]) -> Result<Vec<Chunk>, GpuError> {
        let pending = self.submit(updates)?;
        self.wait(pending)
    }

    /// Uploads the changed leaves and the work list and submits the rehash of every
    /// tree's dirty paths, without waiting. Updates are applied in submission order.
    pub fn submit(&mut self, updates: &[TreeUpdate<'_>]) -> Result<PendingRoots, GpuError> {
        let ctx = self.ctx.clone();
        ctx.ensure_alive()?;
        for (t, u) in updates.iter().enumerate() {
            if let Some(&i) = u.dirty.iter().find(|&&i| i >= u.leaves.len()) {
                return Err(GpuError::Submission(format!(
                    "tree {t}: dirty leaf {i} outside its {} leaves",
                    u.leaves.len()
                )));
            }
            if crate::accel::hash::ceil_log2(u.leaves.len() as u64) > MAX_DEPTH {
                return Err(GpuError::TooLarge(format!(
                    "tree {t} of {} leaves",
                    u.leaves.len()
                )));
            }
        }
        let relaid = self.ensure_layout(updates)?;
        let layout = self.layout.as_ref().expect("laid out above");

        // Plan: contiguous leaf uploads, scatter items, dispatches per level.
        let mut dense_leaves: Vec<(u64, &[Chunk])> = Vec::new(); // (node offset, leaves)
        let mut scatter: Vec<u32> = Vec::new();
        let mut gathers: Vec<Vec<u32>> = Vec::new(); // per level
        let mut levels: Vec<Vec<Dispatch>> = Vec::new(); // whole-level dispatches per level
        let mut roots = Vec::with_capacity(updates.len());
        let mut readbacks: Vec<u64> = Vec::new(); // node offsets of roots read back
        let mut leaves_up = 0u64;
        let mut hashed = 0u64;
        for (u, slot) in updates.iter().zip(&layout.trees) {
            let n = u.leaves.len();
            let depth = crate::accel::hash::ceil_log2(n as u64);
            let dense = relaid || u.dirty.len() * 2 > n;
            if dense {
                if n > 0 {
                    dense_leaves.push((slot.level_offsets[0], u.leaves));
                    leaves_up += n as u64;
                }
            } else {
                for &i in u.dirty {
                    scatter.push(slot.level_offsets[0] as u32 + i as u32);
                    scatter.extend_from_slice(bytemuck::cast_slice::<u8, u32>(&u.leaves[i]));
                }
                leaves_up += u.dirty.len() as u64;
            }
            match (n, depth) {
                (0, _) => roots.push(RootSource::Host(crate::merkle::zero_hashes()[0])),
                (_, 0) => roots.push(RootSource::Host(u.leaves[0])),
                _ => {
                    roots.push(RootSource::Readback(readbacks.len()));
                    readbacks.push(slot.level_offsets[depth as usize]);
                }
            }
            if gathers.len() < depth as usize {
                gathers.resize(depth as usize, Vec::new());
                levels.resize(depth as usize, Vec::new());
            }
            let mut dirty: Vec<usize> = if dense { Vec::new() } else { u.dirty.to_vec() };
            for k in 0..depth as usize {
                let m_in = n.div_ceil(1 << k) as u64;
                let m_out = m_in.div_ceil(2);
                if dense {
                    levels[k].push(Dispatch::Level {
                        src: slot.level_offsets[k],
                        dst: slot.level_offsets[k + 1],
                        m_in,
                        level: k as u32,
                    });
                    hashed += m_out;
                    continue;
                }
                let mut parents: Vec<usize> = Vec::with_capacity(dirty.len());
                for &i in &dirty {
                    let p = i / 2;
                    if parents.last() != Some(&p) {
                        parents.push(p);
                    }
                }
                let g = &mut gathers[k];
                for &p in &parents {
                    let child = 2 * p as u64;
                    g.push((slot.level_offsets[k] + child) as u32);
                    g.push((slot.level_offsets[k + 1] + p as u64) as u32);
                    g.push(u32::from(child + 1 < m_in));
                }
                hashed += parents.len() as u64;
                dirty = parents;
            }
        }

        // Dispatch list and the items buffer (scatter items first, then each level's).
        let mut dispatches: Vec<Dispatch> = Vec::new();
        let mut item_words: Vec<u32> =
            Vec::with_capacity(scatter.len() + gathers.iter().map(Vec::len).sum::<usize>());
        if !scatter.is_empty() {
            dispatches.push(Dispatch::Scatter {
                word: 0,
                count: (scatter.len() / SCATTER_WORDS) as u64,
            });
            item_words.extend_from_slice(&scatter);
        }
        for (k, (whole, g)) in levels.iter().zip(&gathers).enumerate() {
            dispatches.extend_from_slice(whole);
            if !g.is_empty() {
                dispatches.push(Dispatch::Gather {
                    word: item_words.len() as u64,
                    count: (g.len() / GATHER_WORDS) as u64,
                    level: k as u32,
                });
                item_words.extend_from_slice(g);
            }
        }
        if item_words.len() as u64 >= 1 << 32 {
            return Err(GpuError::TooLarge(format!(
                "{} work-list words in one update",
                item_words.len()
            )));
        }
        let mut grids = Vec::with_capacity(dispatches.len());
        for d in &dispatches {
            grids.push(grid(&ctx, d.workgroups())?);
        }
        let align = params_stride(&ctx);
        let words: Vec<[u32; 8]> = dispatches.iter().map(Dispatch::params).collect();
        let params = pack_params(align, &words);

        let leaf_bytes: u64 = dense_leaves
            .iter()
            .map(|(_, l)| l.len() as u64 * NODE)
            .sum();
        let items_bytes = item_words.len() as u64 * 4;
        let params_bytes = params.len() as u64;
        let up_bytes = (leaf_bytes + items_bytes + params_bytes).max(4);
        let down_bytes = (readbacks.len() as u64 * NODE).max(NODE);
        if up_bytes > ctx.limits().max_buffer_size || items_bytes > ctx.binding_limit() {
            return Err(GpuError::TooLarge(format!(
                "an update of {up_bytes} bytes ({items_bytes} of work list)"
            )));
        }

        let upload = self.pool.take(&ctx, kind::UPLOAD, up_bytes);
        let items = self.pool.take(&ctx, kind::ITEMS, items_bytes.max(16));
        let uniforms = self
            .pool
            .take(&ctx, kind::PARAMS, params_bytes.max(PARAMS_SIZE));
        let readback = self.pool.take(&ctx, kind::READBACK, down_bytes);
        let p = &self.pipelines;
        let device = ctx.device();
        let submitted = ctx.error_scoped("resident merkle update", GpuError::Submission, || {
            {
                let mut view = upload
                    .get_mapped_range_mut(0..up_bytes)
                    .map_err(|e| GpuError::Submission(format!("mapping the upload buffer: {e}")))?;
                let mut at = 0usize;
                for (_, leaves) in &dense_leaves {
                    let bytes = leaves.as_flattened();
                    view.slice(at..at + bytes.len()).copy_from_slice(bytes);
                    at += bytes.len();
                }
                let item_bytes: &[u8] = bytemuck::cast_slice(&item_words);
                view.slice(at..at + item_bytes.len())
                    .copy_from_slice(item_bytes);
                at += item_bytes.len();
                view.slice(at..at + params.len()).copy_from_slice(&params);
            }
            upload.unmap();
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("quasar resident merkle"),
            });
            let mut at = 0u64;
            for (offset, leaves) in &dense_leaves {
                let bytes = leaves.len() as u64 * NODE;
                encoder.copy_buffer_to_buffer(&upload, at, &layout.nodes, offset * NODE, bytes);
                at += bytes;
            }
            if items_bytes > 0 {
                encoder.copy_buffer_to_buffer(&upload, at, &items, 0, items_bytes);
            }
            at += items_bytes;
            if params_bytes > 0 {
                encoder.copy_buffer_to_buffer(&upload, at, &uniforms, 0, params_bytes);
            }
            if !dispatches.is_empty() {
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("quasar resident bind group"),
                    layout: &p.layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &layout.nodes,
                                offset: 0,
                                size: NonZeroU64::new(layout.total_nodes * NODE),
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
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: items.as_entire_binding(),
                        },
                    ],
                });
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("quasar resident levels"),
                    timestamp_writes: None,
                });
                for (i, (d, &(x, y))) in dispatches.iter().zip(&grids).enumerate() {
                    pass.set_pipeline(match d {
                        Dispatch::Scatter { .. } => &p.scatter,
                        Dispatch::Level { .. } => &p.level,
                        Dispatch::Gather { .. } => &p.gather,
                    });
                    pass.set_bind_group(0, &bind_group, &[(i as u64 * align) as u32]);
                    pass.dispatch_workgroups(x, y, 1);
                }
            }
            for (j, &node) in readbacks.iter().enumerate() {
                encoder.copy_buffer_to_buffer(
                    &layout.nodes,
                    node * NODE,
                    &readback,
                    j as u64 * NODE,
                    NODE,
                );
            }
            Ok(ctx.queue().submit([encoder.finish()]))
        });
        let index = match submitted {
            Ok(Ok(index)) => index,
            Ok(Err(e)) | Err(e) => {
                ctx.mark_failed(&e.to_string());
                self.layout = None;
                return Err(e);
            }
        };
        ctx.count_submission(up_bytes);
        self.stats.updates += 1;
        self.stats.leaves_uploaded += leaves_up;
        self.stats.nodes_hashed += hashed;
        self.stats.bytes_uploaded += up_bytes;
        tracing::trace!(
            target: "quasar::accel::resident",
            trees = updates.len(),
            leaves = leaves_up,
            hashed,
            dispatches = dispatches.len(),
            uploaded = up_bytes,
            "resident merkle update submitted"
        );
        Ok(PendingRoots {
            index,
            upload,
            items,
            params: uniforms,
            readback,
            down_bytes,
            roots,
        })
    }

    /// Waits for `pending` and returns every tree's natural root, in update order.
    pub fn wait(&mut self, pending: PendingRoots) -> Result<Vec<Chunk>, GpuError> {
        let ctx = self.ctx.clone();
        let out = read_back(
            &ctx,
            "resident merkle",
            pending.index,
            &pending.readback,
            pending.down_bytes,
            Some(&pending.upload),
        );
        let (bytes, remapped) = match out {
            Ok(x) => x,
            Err(e) => {
                self.layout = None;
                return Err(e);
            }
        };
        ctx.count_download(pending.down_bytes);
        self.pool.give(kind::ITEMS, pending.items);
        self.pool.give(kind::PARAMS, pending.params);
        self.pool.give(kind::READBACK, pending.readback);
        if remapped {
            self.pool.give(kind::UPLOAD, pending.upload);
        }
        Ok(pending
            .roots
            .iter()
            .map(|r| match *r {
                RootSource::Host(root) => root,
                RootSource::Readback(j) => {
                    let mut root = [0u8; 32];
                    root.copy_from_slice(&bytes[j * 32..j * 32 + 32]);
                    root
                }
            })
            .collect())
    }

    /// Every real node of tree `t`'s levels as the device holds them (level 0 = the
    /// leaves), after waiting for all submitted work: for tests and diagnostics.
    pub fn read_levels(&self, t: usize, len: usize) -> Result<Vec<Vec<Chunk>>, GpuError> {
        let ctx = &self.ctx;
        let layout = self
            .layout
            .as_ref()
            .ok_or_else(|| GpuError::Submission("no resident trees yet".into()))?;
        let slot = layout
            .trees
            .get(t)
            .ok_or_else(|| GpuError::Submission(format!("no tree {t}")))?;
        if !slot.fits(len) {
            return Err(GpuError::Submission(format!(
                "tree {t} holds at most {} leaves",
                1u64 << slot.cap_log2
            )));
        }
        let depth = crate::accel::hash::ceil_log2(len as u64) as usize;
        let counts: Vec<u64> = (0..=depth).map(|k| len.div_ceil(1 << k) as u64).collect();
        let total: u64 = counts.iter().sum::<u64>().max(1) * NODE;
        let readback = self.pool.take(ctx, kind::READBACK, total);
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("quasar resident read levels"),
            });
        let mut at = 0;
        for (k, &c) in counts.iter().enumerate() {
            if c > 0 {
                encoder.copy_buffer_to_buffer(
                    &layout.nodes,
                    slot.level_offsets[k] * NODE,
                    &readback,
                    at,
                    c * NODE,
                );
            }
            at += c * NODE;
        }
        let index = ctx.queue().submit([encoder.finish()]);
        let (bytes, _) = read_back(ctx, "resident levels", index, &readback, total, None)?;
        let mut out = Vec::with_capacity(counts.len());
        let mut at = 0usize;
        for &c in &counts {
            let level = bytes[at..at + c as usize * 32]
                .chunks_exact(32)
                .map(|b| {
                    let mut x = [0u8; 32];
                    x.copy_from_slice(b);
                    x
                })
                .collect();
            out.push(level);
            at += c as usize * 32;
        }
        Ok(out)
    }

    /// Lays the node buffer out for `updates` when there is none, the number of trees
    /// changed, or a tree outgrew its capacity; returns whether it did (then every leaf
    /// goes up with this update).
    fn ensure_layout(&mut self, updates: &[TreeUpdate<'_>]) -> Result<bool, GpuError> {
        if let Some(l) = &self.layout {
            if l.trees.len() == updates.len()
                && l.trees
                    .iter()
                    .zip(updates)
                    .all(|(s, u)| s.fits(u.leaves.len()))
            {
                return Ok(false);
            }
        }
        let mut trees = Vec::with_capacity(updates.len());
        let mut total = 0u64;
        for u in updates {
            let slot = TreeSlot::for_len(total, u.leaves.len());
            total += slot.nodes();
            trees.push(slot);
        }
        let bytes = total * NODE;
        if total > MAX_NODES || bytes > self.ctx.binding_limit() {
            return Err(GpuError::TooLarge(format!(
                "{bytes} bytes of resident trees exceed the device's storage binding limit of {}",
                self.ctx.binding_limit()
            )));
        }
        // The old buffer (if any) is dropped here; pending work keeps it alive on the device.
        self.layout = None;
        let ctx = &self.ctx;
        let nodes = ctx.error_scoped(
            "allocating the resident trees",
            GpuError::Submission,
            || self.pool.take(ctx, kind::NODES, bytes),
        )?;
        self.layout = Some(Layout {
            nodes,
            total_nodes: total,
            trees,
        });
        self.stats.layouts += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_every_level_of_their_capacity() {
        let s = TreeSlot::for_len(10, 5);
        assert_eq!(s.cap_log2, 3);
        assert_eq!(s.level_offsets, vec![10, 18, 22, 24]);
        assert_eq!(s.nodes(), 15);
        assert!(s.fits(8) && !s.fits(9));
        let one = TreeSlot::for_len(0, 0);
        assert_eq!((one.cap_log2, one.nodes()), (0, 1));
        assert!(one.fits(1) && !one.fits(2));
    }
}
