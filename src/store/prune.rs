//! Pruning of non-canonical data on finalization.

use std::collections::HashSet;

use rocksdb::{IteratorMode, WriteBatch, WriteOptions};

use super::error::Result;
use super::schema::{
    decode_root, decode_slot_key, signed_block_slot, Root, StateSummary, CF_BLOCKS, CF_BLOCK_SLOTS,
    CF_STATES, CF_STATE_SUMMARIES,
};
use super::Store;

/// What [`Store::prune_non_canonical`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneStats {
    /// Blocks deleted.
    pub blocks: usize,
    /// State summaries deleted.
    pub summaries: usize,
    /// State snapshots deleted (those of the deleted summaries).
    pub states: usize,
    /// `block_slots` entries deleted.
    pub block_slots: usize,
}

impl Store {
    /// Delete everything below `below_slot` (the finalized slot) that is not on the
    /// canonical chain, in one atomic, synced write batch:
    /// - blocks whose root is not in `canonical` and whose slot is `< below_slot`;
    /// - state summaries with slot `< below_slot` whose latest block root is not in
    ///   `canonical`, and the state snapshots stored under the same state roots;
    /// - `block_slots` entries below `below_slot` that point outside `canonical`.
    ///
    /// `canonical` holds block roots. A stored block whose SSZ has no readable slot is
    /// [`super::StoreError::Corrupt`] and nothing is deleted.
    pub fn prune_non_canonical(
        &self,
        canonical: &HashSet<Root>,
        below_slot: u64,
    ) -> Result<PruneStats> {
        let mut batch = WriteBatch::default();
        let mut stats = PruneStats::default();

        let blocks = self.cf(CF_BLOCKS)?;
        for item in self.db.iterator_cf(blocks, IteratorMode::Start) {
            let (k, v) = item?;
            let root = decode_root("blocks key", &k)?;
            if canonical.contains(&root) {
                continue;
            }
            if signed_block_slot(&v)? < below_slot {
                batch.delete_cf(blocks, k);
                stats.blocks += 1;
            }
        }

        let summaries = self.cf(CF_STATE_SUMMARIES)?;
        let states = self.cf(CF_STATES)?;
        for item in self.db.iterator_cf(summaries, IteratorMode::Start) {
            let (k, v) = item?;
            decode_root("state_summaries key", &k)?;
            let summary = StateSummary::decode(&v)?;
            if summary.slot < below_slot && !canonical.contains(&summary.latest_block_root) {
                if self.db.get_pinned_cf(states, &k)?.is_some() {
                    batch.delete_cf(states, &k);
                    stats.states += 1;
                }
                batch.delete_cf(summaries, &k);
                stats.summaries += 1;
            }
        }

        let slots = self.cf(CF_BLOCK_SLOTS)?;
        for item in self.db.iterator_cf(slots, IteratorMode::Start) {
            let (k, v) = item?;
            if decode_slot_key(&k)? >= below_slot {
                break;
            }
            let root = decode_root("block_slots value", &v)?;
            if !canonical.contains(&root) {
                batch.delete_cf(slots, k);
                stats.block_slots += 1;
            }
        }

        if !batch.is_empty() {
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            self.db.write_opt(batch, &opts)?;
        }
        tracing::info!(
            below_slot,
            blocks = stats.blocks,
            summaries = stats.summaries,
            states = stats.states,
            block_slots = stats.block_slots,
            "pruned non-canonical data"
        );
        Ok(stats)
    }
}
