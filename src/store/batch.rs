//! [`StoreBatch`]: puts and deletes across column families, committed as atomic
//! RocksDB write batches, auto-committed when the pending part passes a size threshold.

use rocksdb::{WriteBatch, WriteOptions};

use super::error::Result;
use super::schema::{
    slot_key, Checkpoint, Head, Root, StateSummary, CF_BLOCKS, CF_BLOCK_SLOTS, CF_METADATA,
    CF_STATES, CF_STATE_SUMMARIES, META_FINALIZED, META_HEAD, META_JUSTIFIED,
};
use super::Store;

/// Default auto-commit threshold: 16 MiB of pending write-batch bytes.
pub const DEFAULT_BATCH_THRESHOLD_BYTES: usize = 16 * 1024 * 1024;

/// A write batch over the store.
///
/// Every operation is appended to a pending RocksDB [`WriteBatch`]. When its size
/// reaches the threshold the pending part is written as one atomic batch (an
/// *auto-commit*), and a fresh one starts. [`StoreBatch::commit`] writes the remainder
/// atomically. Dropping a `StoreBatch` without `commit` discards the pending part;
/// what was auto-committed before stays.
pub struct StoreBatch<'a> {
    store: &'a Store,
    pending: WriteBatch,
    pending_ops: usize,
    threshold: usize,
    sync: bool,
    /// Auto-commits happen only at [`StoreBatch::end_group`] (see `grouped`).
    grouped: bool,
    commits: usize,
    committed_ops: usize,
}

/// What a [`StoreBatch`] wrote over its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Atomic write batches written (auto-commits plus the final one, if non-empty).
    pub commits: usize,
    /// Operations (puts and deletes) written.
    pub ops: usize,
}

impl<'a> StoreBatch<'a> {
    pub(crate) fn new(store: &'a Store, threshold: usize) -> Self {
        StoreBatch {
            store,
            pending: WriteBatch::default(),
            pending_ops: 0,
            threshold: threshold.max(1),
            sync: false,
            grouped: false,
            commits: 0,
            committed_ops: 0,
        }
    }

    /// Auto-commit only between groups of operations that belong together (a block, its
    /// state summary and snapshot): past the threshold, the pending part is written at the
    /// next [`end_group`](Self::end_group), so a crash between auto-commits never leaves
    /// half a group.
    pub fn grouped(mut self) -> Self {
        self.grouped = true;
        self
    }

    /// The end of a group (see [`grouped`](Self::grouped)): auto-commit if past the
    /// threshold.
    pub fn end_group(&mut self) -> Result<()> {
        if self.pending.size_in_bytes() >= self.threshold {
            self.flush()?;
        }
        Ok(())
    }

    /// Make every commit of this batch (auto or final) a synced write
    /// (`WriteOptions::set_sync`): for checkpoints such as finalization.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Builder form of [`StoreBatch::set_sync`].
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The auto-commit threshold in bytes.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Bytes in the pending (uncommitted) write batch.
    pub fn pending_bytes(&self) -> usize {
        self.pending.size_in_bytes()
    }

    /// Operations in the pending (uncommitted) write batch.
    pub fn pending_ops(&self) -> usize {
        self.pending_ops
    }

    /// Atomic write batches written so far (auto-commits).
    pub fn commits(&self) -> usize {
        self.commits
    }

    /// Operations written so far by auto-commits.
    pub fn committed_ops(&self) -> usize {
        self.committed_ops
    }

    fn after_op(&mut self) -> Result<()> {
        self.pending_ops += 1;
        if !self.grouped && self.pending.size_in_bytes() >= self.threshold {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the pending part as one atomic batch (nothing if it is empty).
    fn flush(&mut self) -> Result<()> {
        if self.pending_ops == 0 {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        let ops = self.pending_ops;
        self.pending_ops = 0;
        self.store.db.write_opt(batch, &opts)?;
        self.commits += 1;
        self.committed_ops += ops;
        tracing::debug!(ops, commits = self.commits, "store batch committed");
        Ok(())
    }

    /// Write what is pending as one atomic batch and return what the whole batch wrote.
    pub fn commit(mut self) -> Result<CommitStats> {
        self.flush()?;
        Ok(CommitStats {
            commits: self.commits,
            ops: self.committed_ops,
        })
    }

    /// Put raw bytes into a column family of the schema.
    pub fn put_raw(&mut self, cf: &'static str, key: &[u8], value: &[u8]) -> Result<()> {
        let handle = self.store.cf(cf)?;
        self.pending.put_cf(handle, key, value);
        self.after_op()
    }

    /// Delete a key from a column family of the schema.
    pub fn delete_raw(&mut self, cf: &'static str, key: &[u8]) -> Result<()> {
        let handle = self.store.cf(cf)?;
        self.pending.delete_cf(handle, key);
        self.after_op()
    }

    /// Store a block's SSZ under its root.
    pub fn put_block(&mut self, root: &Root, ssz: &[u8]) -> Result<()> {
        self.put_raw(CF_BLOCKS, root, ssz)
    }

    /// Delete a block.
    pub fn delete_block(&mut self, root: &Root) -> Result<()> {
        self.delete_raw(CF_BLOCKS, root)
    }

    /// Store a state snapshot's SSZ under its state root.
    pub fn put_state(&mut self, state_root: &Root, ssz: &[u8]) -> Result<()> {
        self.put_raw(CF_STATES, state_root, ssz)
    }

    /// Delete a state snapshot.
    pub fn delete_state(&mut self, state_root: &Root) -> Result<()> {
        self.delete_raw(CF_STATES, state_root)
    }

    /// Store a state summary under its state root.
    pub fn put_state_summary(&mut self, state_root: &Root, summary: &StateSummary) -> Result<()> {
        self.put_raw(CF_STATE_SUMMARIES, state_root, &summary.encode())
    }

    /// Delete a state summary.
    pub fn delete_state_summary(&mut self, state_root: &Root) -> Result<()> {
        self.delete_raw(CF_STATE_SUMMARIES, state_root)
    }

    /// Record `root` as the canonical block at `slot`.
    pub fn put_block_root_at_slot(&mut self, slot: u64, root: &Root) -> Result<()> {
        self.put_raw(CF_BLOCK_SLOTS, &slot_key(slot), root)
    }

    /// Forget the canonical block at `slot`.
    pub fn delete_block_root_at_slot(&mut self, slot: u64) -> Result<()> {
        self.delete_raw(CF_BLOCK_SLOTS, &slot_key(slot))
    }

    /// Set the head.
    pub fn put_head(&mut self, head: &Head) -> Result<()> {
        self.put_raw(CF_METADATA, META_HEAD, &head.encode())
    }

    /// Set the justified checkpoint.
    pub fn put_justified(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.put_raw(CF_METADATA, META_JUSTIFIED, &checkpoint.encode())
    }

    /// Set the finalized checkpoint.
    pub fn put_finalized(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.put_raw(CF_METADATA, META_FINALIZED, &checkpoint.encode())
    }

    /// Put a chunk of the pubkey table starting at validator `from` (see `chain::pubkeys`).
    pub fn put_pubkey_chunk(&mut self, from: u32, chunk: &[u8]) -> Result<()> {
        self.put_raw(super::schema::CF_PUBKEYS, &from.to_be_bytes(), chunk)
    }

    /// Set an arbitrary metadata entry.
    pub fn put_metadata(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_raw(CF_METADATA, key, value)
    }
}
