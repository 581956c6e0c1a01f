//! `PubkeyAggregator`: for each signature set, the sum of the G1 pubkeys at its validator
//! indices (Ethereum's `eth_aggregate_pubkeys` before a BLS batch verification).
//!
//! The module is split by job: [`cpu`] (the CPU twin), [`gpu`] (the GPU aggregator and its
//! batch plan), [`kernels`] (the WGSL Fp and G1 arithmetic behind test entry points),
//! `wgsl` (the generator of the straight-line field arithmetic, a test) and [`auto`] (the
//! calibrated choice between the two). Buffers, readback and pipeline building are
//! [`super::device`]'s, shared with the hasher.
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
//! Every aggregator works in two steps ([`PubkeyAggregator::submit`], then
//! [`PubkeyAggregator::wait`]; `aggregate` is both), so the importer submits a whole
//! segment's sets and decompresses the signatures while the device sums. On the GPU,
//! `submit` plans, uploads and submits and returns at once, with the readback's map
//! requested; `wait` blocks once (`poll(Wait)` for that submission, or not at all when an
//! earlier poll already mapped it). At most [`MAX_IN_FLIGHT`] (two) submissions of one
//! aggregator are on the device, each in its own pooled buffers, so batch N+1's index
//! lists go up while batch N sums. The CPU twin sums in `wait`.
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
//! batches belong on the CPU: [`AutoAggregator`] measures where the GPU starts to win.

use std::sync::atomic::{AtomicU64, Ordering};

use blst::{blst_p1, blst_p1_affine};

use super::device::GpuError;

pub mod auto;
pub mod cpu;
pub mod gpu;
pub mod kernels;
#[cfg(test)]
mod wgsl;

pub use auto::AutoAggregator;
pub use cpu::CpuAggregator;
pub use gpu::{AggregateStats, FpMul, GpuAggregator, GpuAggregatorOptions, MAX_IN_FLIGHT};
pub use kernels::{BlsTestKernels, FpOp, G1Op, Projective};

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

/// The accelerator contract for pubkey aggregation, in two steps so that a caller can
/// work while the device sums: [`submit`](Self::submit) checks the sets and starts the
/// work (on the GPU: uploads the index lists and makes ONE submission, returning at once),
/// [`wait`](Self::wait) gives the sums. [`aggregate`](Self::aggregate) is both. Every
/// implementation gives the same group elements; a pending aggregate is waited by the
/// aggregator that submitted it (another one still finishes it, without its fallback).
pub trait PubkeyAggregator: Send + Sync {
    /// Short name of the path that runs (e.g. `cpu(blst)`, `gpu(llvmpipe …)`).
    fn name(&self) -> String;
    /// Checks `sets` against `table` (bad input is an error here, before any work) and
    /// starts summing them; the sums come from [`wait`](Self::wait). The pending
    /// aggregate borrows its inputs, so a GPU failure can still be summed on the CPU.
    fn submit<'a>(
        &'a self,
        table: &'a PubkeyTable,
        sets: &'a [&'a [u32]],
    ) -> Result<PendingAggregate<'a>, AggregateError>;
    /// For each set of `pending`, the sum of the table's points at its indices
    /// (duplicates count twice), as a blst_p1 (callers check infinity: Ethereum rejects
    /// an aggregate at infinity).
    fn wait(&self, pending: PendingAggregate<'_>) -> Result<Vec<blst_p1>, AggregateError> {
        pending.finish()
    }
    /// [`submit`](Self::submit) then [`wait`](Self::wait).
    fn aggregate(
        &self,
        table: &PubkeyTable,
        sets: &[&[u32]],
    ) -> Result<Vec<blst_p1>, AggregateError> {
        let pending = self.submit(table, sets)?;
        self.wait(pending)
    }
}

/// An aggregation [`PubkeyAggregator::submit`] started: on the GPU a submission in flight
/// with its own buffers, on the CPU the work to do in `wait`. Dropping it unwaited is
/// safe: the GPU finishes into buffers nobody reuses, and the aggregator's slot is freed.
pub struct PendingAggregate<'a> {
    table: &'a PubkeyTable,
    sets: &'a [&'a [u32]],
    work: Work<'a>,
}

enum Work<'a> {
    /// The CPU twin sums in `wait`.
    Cpu,
    /// A GPU submission in flight (boxed: its buffers and channel are much larger than
    /// the CPU variant, and one allocation per segment is nothing).
    Gpu(Box<gpu::GpuPending<'a>>),
}

impl std::fmt::Debug for PendingAggregate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAggregate")
            .field("sets", &self.sets.len())
            .field("on_gpu", &self.on_gpu())
            .finish()
    }
}

impl<'a> PendingAggregate<'a> {
    /// Work the CPU twin does in `wait` (inputs already checked).
    pub(crate) fn on_cpu(table: &'a PubkeyTable, sets: &'a [&'a [u32]]) -> Self {
        PendingAggregate {
            table,
            sets,
            work: Work::Cpu,
        }
    }

    fn on_device(table: &'a PubkeyTable, sets: &'a [&'a [u32]], gpu: gpu::GpuPending<'a>) -> Self {
        PendingAggregate {
            table,
            sets,
            work: Work::Gpu(Box::new(gpu)),
        }
    }

    /// Whether a GPU submission computes it (else the CPU twin does, in `wait`).
    pub fn on_gpu(&self) -> bool {
        matches!(self.work, Work::Gpu(_))
    }

    /// Sets it sums.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Whether the sums are ready, so that `wait` will not block on the device (always
    /// true for CPU work, which `wait` computes).
    pub fn is_ready(&mut self) -> bool {
        match &mut self.work {
            Work::Cpu => true,
            Work::Gpu(g) => g.is_ready(),
        }
    }

    /// The sums, without a fallback: a GPU failure is the error.
    pub fn finish(self) -> Result<Vec<blst_p1>, AggregateError> {
        match self.work {
            Work::Cpu => cpu::CpuAggregator::sum_sets(self.table, self.sets),
            Work::Gpu(g) => Ok(g.wait()?),
        }
    }

    /// The sums, and a GPU failure summed again on the CPU (the error is passed to
    /// `failed` first, e.g. to log it and stop using the device).
    pub(crate) fn finish_or_cpu(
        self,
        failed: impl FnOnce(&AggregateError),
    ) -> Result<Vec<blst_p1>, AggregateError> {
        let (table, sets) = (self.table, self.sets);
        match self.finish() {
            Err(e) if !e.is_invalid_input() => {
                failed(&e);
                cpu::CpuAggregator::sum_sets(table, sets)
            }
            result => result,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
