//! RocksDB schema with batched atomic writes.
//!
//! Column families (see [`schema`]): `blocks` (block root → SSZ `SignedBeaconBlock`),
//! `states` (state root → SSZ snapshot), `state_summaries` (state root → slot and latest
//! block root), `block_slots` (big-endian slot → canonical block root, for range reads)
//! `metadata` (head, justified and finalized checkpoints, schema version) and `pubkeys`
//! (the validated pubkey table's chunks, a cache checked when loaded).
//!
//! Values are the caller's bytes: the store does not depend on presets. All writes go
//! through a [`StoreBatch`], which commits atomic RocksDB write batches and auto-commits
//! past a size threshold (16 MiB by default).

mod batch;
mod error;
mod prune;
pub mod schema;

use std::path::Path;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, DB};

pub use batch::{CommitStats, StoreBatch, DEFAULT_BATCH_THRESHOLD_BYTES};
pub use error::{Result, StoreError};
pub use prune::PruneStats;
pub use schema::{Checkpoint, Head, Root, StateSummary, SCHEMA_VERSION};

use schema::{
    decode_root, decode_slot_key, decode_u64, slot_key, CF_BLOCKS, CF_BLOCK_SLOTS, CF_METADATA,
    CF_PUBKEYS, CF_STATES, CF_STATE_SUMMARIES, COLUMN_FAMILIES, META_FINALIZED, META_HEAD,
    META_JUSTIFIED, META_SCHEMA_VERSION,
};

/// How to open a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Auto-commit threshold of the batches [`Store::batch`] hands out, in bytes.
    pub batch_threshold_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            batch_threshold_bytes: DEFAULT_BATCH_THRESHOLD_BYTES,
        }
    }
}

/// The node's database.
pub struct Store {
    db: DB,
    config: StoreConfig,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .field("config", &self.config)
            .finish()
    }
}

impl Store {
    /// Open (or create) the store at `path` with the default configuration.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, StoreConfig::default())
    }

    /// Open (or create) the store at `path`, creating missing column families.
    ///
    /// A new database gets [`SCHEMA_VERSION`]; an existing one must carry exactly that
    /// version, or opening fails with [`StoreError::Schema`].
    pub fn open_with(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Memtables sized per family (RocksDB's default is 64 MiB each, 2 per family): the
        // blocks and the state snapshots are the big writes, the rest are small records.
        // This bounds what an import holds in memtables to ~100 MiB.
        let cfs = COLUMN_FAMILIES.iter().map(|name| {
            let mut o = Options::default();
            let mib = match *name {
                CF_BLOCKS | CF_STATES => 16,
                _ => 4,
            };
            o.set_write_buffer_size(mib << 20);
            o.set_max_write_buffer_number(2);
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, path.as_ref(), cfs)?;
        let store = Store { db, config };
        for name in COLUMN_FAMILIES {
            store.cf(name)?;
        }
        store.check_schema_version()?;
        Ok(store)
    }

    fn check_schema_version(&self) -> Result<()> {
        let meta = self.cf(CF_METADATA)?;
        match self.db.get_pinned_cf(meta, META_SCHEMA_VERSION)? {
            Some(bytes) => {
                let found = decode_u64("schema version", &bytes)?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
            None => {
                // A database with data but no version was not written by this schema.
                for name in COLUMN_FAMILIES {
                    let cf = self.cf(name)?;
                    if let Some(first) = self.db.iterator_cf(cf, IteratorMode::Start).next() {
                        first?;
                        return Err(StoreError::corrupt(
                            "metadata",
                            format!("column family `{name}` has data but no schema version"),
                        ));
                    }
                }
                let mut wopts = rocksdb::WriteOptions::default();
                wopts.set_sync(true);
                self.db.put_cf_opt(
                    meta,
                    META_SCHEMA_VERSION,
                    SCHEMA_VERSION.to_be_bytes(),
                    &wopts,
                )?;
            }
        }
        Ok(())
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// A new batch with the configured auto-commit threshold.
    pub fn batch(&self) -> StoreBatch<'_> {
        StoreBatch::new(self, self.config.batch_threshold_bytes)
    }

    /// A new batch with its own auto-commit threshold.
    pub fn batch_with_threshold(&self, threshold_bytes: usize) -> StoreBatch<'_> {
        StoreBatch::new(self, threshold_bytes)
    }

    /// Flush memtables to disk (e.g. before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }

    fn get_raw(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<u64> {
        match self.get_raw(CF_METADATA, META_SCHEMA_VERSION)? {
            Some(bytes) => decode_u64("schema version", &bytes),
            None => Err(StoreError::corrupt("metadata", "no schema version")),
        }
    }

    /// A block's SSZ by block root.
    pub fn get_block(&self, root: &Root) -> Result<Option<Vec<u8>>> {
        self.get_raw(CF_BLOCKS, root)
    }

    /// Whether a block is stored.
    pub fn has_block(&self, root: &Root) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(CF_BLOCKS)?, root)?.is_some())
    }

    /// A state snapshot's SSZ by state root.
    pub fn get_state(&self, state_root: &Root) -> Result<Option<Vec<u8>>> {
        self.get_raw(CF_STATES, state_root)
    }

    /// A state summary by state root.
    pub fn get_state_summary(&self, state_root: &Root) -> Result<Option<StateSummary>> {
        self.db
            .get_pinned_cf(self.cf(CF_STATE_SUMMARIES)?, state_root)?
            .map(|b| StateSummary::decode(&b))
            .transpose()
    }

    /// The canonical block root at `slot`, if one was recorded.
    pub fn block_root_at_slot(&self, slot: u64) -> Result<Option<Root>> {
        self.db
            .get_pinned_cf(self.cf(CF_BLOCK_SLOTS)?, slot_key(slot))?
            .map(|b| decode_root("block_slots value", &b))
            .transpose()
    }

    /// `(slot, block root)` for every recorded slot in `start..end`, in slot order.
    pub fn block_roots_in_range(
        &self,
        start: u64,
        end: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, Root)>> + '_> {
        let cf = self.cf(CF_BLOCK_SLOTS)?;
        let from = slot_key(start);
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Forward));
        Ok(iter
            .map(|item| {
                let (k, v) = item?;
                Ok((decode_slot_key(&k)?, decode_root("block_slots value", &v)?))
            })
            .take_while(move |r| match r {
                Ok((slot, _)) => *slot < end,
                Err(_) => true,
            }))
    }

    /// A metadata entry by key.
    pub fn get_metadata(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_raw(CF_METADATA, key)
    }

    /// Set one metadata entry in its own atomic write (use a [`StoreBatch`] to group).
    pub fn set_metadata(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = self.batch();
        b.put_metadata(key, value)?;
        b.commit()?;
        Ok(())
    }

    /// The head, if set.
    pub fn head(&self) -> Result<Option<Head>> {
        self.get_raw(CF_METADATA, META_HEAD)?
            .map(|b| Head::decode(&b))
            .transpose()
    }

    /// The justified checkpoint, if set.
    pub fn justified_checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.get_raw(CF_METADATA, META_JUSTIFIED)?
            .map(|b| Checkpoint::decode(&b))
            .transpose()
    }

    /// The finalized checkpoint, if set.
    pub fn finalized_checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.get_raw(CF_METADATA, META_FINALIZED)?
            .map(|b| Checkpoint::decode(&b))
            .transpose()
    }

    /// Every stored chunk of the pubkey table, as (key, value) bytes in key order (the
    /// caller decodes and checks them: see `chain::pubkeys`).
    #[allow(clippy::type_complexity)]
    pub fn pubkey_chunks(&self) -> Result<Vec<(Box<[u8]>, Box<[u8]>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_PUBKEYS)?, IteratorMode::Start)
        {
            out.push(item?);
        }
        Ok(out)
    }

    /// Number of entries in a column family (a full scan; for `db info` and tests).
    pub fn count(&self, cf: &'static str) -> Result<usize> {
        let mut n = 0;
        for item in self.db.iterator_cf(self.cf(cf)?, IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Every stored block root (a full scan).
    pub fn block_roots(&self) -> Result<Vec<Root>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_BLOCKS)?, IteratorMode::Start)
        {
            let (k, _) = item?;
            out.push(decode_root("blocks key", &k)?);
        }
        Ok(out)
    }

    /// Every stored state root with its summary (a full scan).
    pub fn state_summaries(&self) -> Result<Vec<(Root, StateSummary)>> {
        let mut out = Vec::new();
        let cf = self.cf(CF_STATE_SUMMARIES)?;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            out.push((
                decode_root("state_summaries key", &k)?,
                StateSummary::decode(&v)?,
            ));
        }
        Ok(out)
    }

    /// Every stored state-snapshot root (a full scan).
    pub fn state_roots(&self) -> Result<Vec<Root>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_STATES)?, IteratorMode::Start)
        {
            let (k, _) = item?;
            out.push(decode_root("states key", &k)?);
        }
        Ok(out)
    }
}
