//! The tiered checkpoint-state cache: memory (`Arc<S>`), disk (snappy-compressed SSZ
//! files) and the database (the caller rebuilds the state from a stored snapshot plus
//! block replay).
//!
//! Memory overflow (by count, or while the [`MemoryBudget`] is over its limit) demotes the
//! least-recently-used state to disk; disk overflow deletes the least-recently-used file.
//! A disk hit decodes the file and promotes the state back to memory. States are encoded,
//! compressed, decompressed and decoded outside the cache's lock; while a state is being
//! written to disk it is still served from memory.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ::lru::LruCache;

use super::metrics::{REASON_CAPACITY, REASON_MEMORY_BUDGET};
use super::{CacheError, CacheMetrics, CachedState, MemoryBudget};

/// Metrics label of the memory tier (hits of every tier and misses are counted here too).
pub const CACHE_NAME: &str = "checkpoint_states";
/// Metrics label of the disk tier's size and evictions.
pub const DISK_CACHE_NAME: &str = "checkpoint_states_disk";
/// Suffix of the disk tier's files (temporary files carry it too, followed by more).
const FILE_SUFFIX: &str = ".ssz_snappy";

/// The state at the first slot of `epoch` descending from block `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckpointKey {
    pub epoch: u64,
    pub root: [u8; 32],
}

impl CheckpointKey {
    pub fn new(epoch: u64, root: [u8; 32]) -> Self {
        CheckpointKey { epoch, root }
    }

    /// `<epoch>-<hex root>.ssz_snappy`, the disk tier's file name for this key.
    pub fn file_name(&self) -> String {
        format!("{}-{}{FILE_SUFFIX}", self.epoch, hex(&self.root))
    }
}

/// Where a state was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Memory,
    Disk,
    /// Not cached: rebuilt by the caller's loader.
    Database,
}

impl Tier {
    /// The `tier` label of `quasar_cache_hits_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Disk => "disk",
            Tier::Database => "database",
        }
    }
}

/// Sizes and place of the tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TieredConfig {
    /// States kept in memory (at least 1).
    pub memory_entries: usize,
    /// States kept on disk (0 disables the disk tier: demoted states are dropped).
    pub disk_entries: usize,
    /// Folder of the disk tier; created if missing, and our stale files in it are removed.
    pub disk_dir: PathBuf,
}

impl TieredConfig {
    pub const DEFAULT_MEMORY_ENTRIES: usize = 4;
    pub const DEFAULT_DISK_ENTRIES: usize = 16;

    /// The default sizes (4 in memory, 16 on disk) with the disk tier in `disk_dir`.
    pub fn new(disk_dir: impl Into<PathBuf>) -> Self {
        TieredConfig {
            memory_entries: Self::DEFAULT_MEMORY_ENTRIES,
            disk_entries: Self::DEFAULT_DISK_ENTRIES,
            disk_dir: disk_dir.into(),
        }
    }
}

/// Counters of a [`CheckpointStateCache`] since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointCacheStats {
    /// Lookups served from memory.
    pub memory_hits: u64,
    /// Lookups served from disk (decoded and promoted to memory).
    pub disk_hits: u64,
    /// States rebuilt by the loader of [`CheckpointStateCache::get_or_load`].
    pub db_loads: u64,
    /// Lookups found in neither memory nor disk (including unreadable disk entries).
    pub misses: u64,
    /// States moved out of memory, for either reason (to disk, or dropped when the disk
    /// tier is disabled or the write failed).
    pub demotions: u64,
    /// Disk files deleted because the disk tier was full.
    pub disk_evictions: u64,
    /// The demotions caused by the memory budget rather than the entry count.
    pub budget_evictions: u64,
}

struct MemEntry<S> {
    state: Arc<S>,
    bytes: u64,
}

struct Inner<S> {
    /// Unbounded: the limits are enforced here so that every move is accounted.
    memory: LruCache<CheckpointKey, MemEntry<S>>,
    memory_bytes: u64,
    /// States out of `memory` whose file is being written (at most one write per key);
    /// still served as memory hits.
    demoting: HashMap<CheckpointKey, Arc<S>>,
    /// Demotions of [`CheckpointStateCache::insert_background`] not yet written (also in
    /// `demoting`): [`CheckpointStateCache::prune`] drops those below finalization
    /// without writing them; [`CheckpointStateCache::flush_deferred`] writes the rest.
    deferred: Vec<(CheckpointKey, Arc<S>)>,
    /// Deferred at the flush before the last: written at the next flush.
    deferred_old: Vec<(CheckpointKey, Arc<S>)>,
    /// Key → compressed file size.
    disk: LruCache<CheckpointKey, u64>,
    disk_bytes: u64,
    stats: CheckpointCacheStats,
}

/// Checkpoint states in memory, on disk, or rebuilt from the database. All methods take
/// `&self`: the importer and the preloader share it through an `Arc`.
pub struct CheckpointStateCache<S: CachedState> {
    config: TieredConfig,
    budget: Arc<MemoryBudget>,
    metrics: Arc<CacheMetrics>,
    /// Makes temporary file names unique.
    seq: AtomicU64,
    inner: Mutex<Inner<S>>,
}

impl<S: CachedState> CheckpointStateCache<S> {
    /// Creates the cache and its disk folder, removing disk-tier files left by an earlier
    /// run (their states may be from another fork choice; the database rebuilds them).
    pub fn new(
        mut config: TieredConfig,
        budget: Arc<MemoryBudget>,
        metrics: Arc<CacheMetrics>,
    ) -> Result<Self, CacheError> {
        config.memory_entries = config.memory_entries.max(1);
        fs::create_dir_all(&config.disk_dir).map_err(CacheError::io(&config.disk_dir))?;
        let removed = remove_stale_files(&config.disk_dir)?;
        if removed > 0 {
            tracing::info!(
                dir = %config.disk_dir.display(),
                removed,
                "removed stale checkpoint-state files"
            );
        }
        let cache = CheckpointStateCache {
            config,
            budget,
            metrics,
            seq: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                memory: LruCache::unbounded(),
                memory_bytes: 0,
                demoting: HashMap::new(),
                deferred: Vec::new(),
                deferred_old: Vec::new(),
                disk: LruCache::unbounded(),
                disk_bytes: 0,
                stats: CheckpointCacheStats::default(),
            }),
        };
        cache.publish(&cache.lock());
        Ok(cache)
    }

    /// The configuration in use.
    pub fn config(&self) -> &TieredConfig {
        &self.config
    }

    /// Inserts `state` into memory as the most recently used entry (replacing any copy on
    /// disk), then demotes least-recently-used states while memory is over its count or
    /// the budget is over its limit (the new state always stays).
    pub fn insert(&self, key: CheckpointKey, state: Arc<S>) {
        let demotions = self.put_in_memory(key, state);
        self.demote(demotions);
    }

    /// Puts `state` into memory (replacing any copy on disk) and takes out the states that
    /// must now be demoted (registered as in flight: still served from memory).
    fn put_in_memory(&self, key: CheckpointKey, state: Arc<S>) -> Vec<(CheckpointKey, Arc<S>)> {
        let bytes = state.approx_bytes() as u64;
        let mut g = self.lock();
        self.drop_disk_entry(&mut g, &key);
        self.budget.charge(bytes);
        g.memory_bytes += bytes;
        if let Some(old) = g.memory.put(key, MemEntry { state, bytes }) {
            self.budget.release(old.bytes);
            g.memory_bytes -= old.bytes;
        }
        let (demotions, _) = self.collect_demotions(&mut g, 1);
        self.publish(&g);
        demotions
    }

    /// Like [`insert`](Self::insert), but the states it demotes are not written yet: they
    /// stay served from memory until [`flush_deferred`](Self::flush_deferred) writes them
    /// on a background thread, and [`prune`](Self::prune) drops those below finalization
    /// unwritten (during a bulk import most are finalized before the batch commits).
    pub fn insert_background(self: &Arc<Self>, key: CheckpointKey, state: Arc<S>) {
        let demotions = self.put_in_memory(key, state);
        // Written at a later `flush_deferred`, unless `prune` drops them first.
        self.lock().deferred.extend(demotions);
    }

    /// Write the deferred demotions of [`insert_background`](Self::insert_background) to
    /// disk on a background thread (served from memory until their file is in place), so
    /// the caller — the importer, on its hot path — does not wait for the disk.
    pub fn flush_deferred(self: &Arc<Self>) {
        // Two generations: what was deferred before the previous flush is written now; what
        // was deferred since waits one more batch, for finalization to prune it first.
        let demotions = {
            let mut g = self.lock();
            let fresh = std::mem::take(&mut g.deferred);
            std::mem::replace(&mut g.deferred_old, fresh)
        };
        if demotions.is_empty() {
            return;
        }
        let this = self.clone();
        // If no thread can be started, write them here.
        let pending = Arc::new(Mutex::new(Some(demotions)));
        let theirs = pending.clone();
        let spawned = std::thread::Builder::new()
            .name("quasar-demote".into())
            .spawn(move || {
                let work = theirs.lock().ok().and_then(|mut w| w.take());
                if let Some(work) = work {
                    this.demote(work);
                }
            });
        if spawned.is_err() {
            let work = pending.lock().ok().and_then(|mut w| w.take());
            if let Some(work) = work {
                self.demote(work);
            }
        }
    }

    /// Looks `key` up in memory, then on disk. A disk hit is decoded (outside the lock) and
    /// promoted to memory, and its file removed. A disk entry that cannot be read or
    /// decoded is dropped and reported as [`CacheError::Io`] or [`CacheError::Codec`].
    pub fn get(&self, key: &CheckpointKey) -> Result<Option<(Arc<S>, Tier)>, CacheError> {
        let claimed = {
            let mut g = self.lock();
            let found = match g.memory.get(key) {
                Some(entry) => Some(entry.state.clone()),
                None => g.demoting.get(key).cloned(),
            };
            if let Some(state) = found {
                g.stats.memory_hits += 1;
                drop(g);
                self.metrics.hit(CACHE_NAME, Tier::Memory.as_str());
                return Ok(Some((state, Tier::Memory)));
            }
            let Some(size) = g.disk.pop(key) else {
                g.stats.misses += 1;
                drop(g);
                self.metrics.miss(CACHE_NAME);
                return Ok(None);
            };
            g.disk_bytes -= size;
            self.publish(&g);
            // Claim the file under the lock, so that nothing else touches it meanwhile.
            let path = self.path(key);
            let claimed = self.temp_path(key, "claimed");
            match fs::rename(&path, &claimed) {
                Ok(()) => claimed,
                Err(source) => {
                    g.stats.misses += 1;
                    drop(g);
                    self.metrics.miss(CACHE_NAME);
                    return Err(CacheError::Io { path, source });
                }
            }
        };

        let decoded = read_state_file::<S>(&claimed);
        if let Err(e) = fs::remove_file(&claimed) {
            tracing::warn!(path = %claimed.display(), error = %e, "could not remove checkpoint-state file");
        }
        match decoded {
            Ok(state) => {
                let state = Arc::new(state);
                self.lock().stats.disk_hits += 1;
                self.metrics.hit(CACHE_NAME, Tier::Disk.as_str());
                self.insert(*key, state.clone());
                Ok(Some((state, Tier::Disk)))
            }
            Err(e) => {
                tracing::warn!(
                    epoch = key.epoch,
                    root = %hex(&key.root),
                    error = %e,
                    "dropped unreadable checkpoint-state file"
                );
                self.lock().stats.misses += 1;
                self.metrics.miss(CACHE_NAME);
                Err(e)
            }
        }
    }

    /// Like [`get`](Self::get), but on a miss rebuilds the state with `load` (the database
    /// tier), inserts it into memory and returns it with [`Tier::Database`]. `load` is
    /// called only on a miss; `Ok(None)` from it means the state cannot be built (unknown
    /// root). An unreadable disk entry is logged and treated as a miss.
    pub fn get_or_load(
        &self,
        key: &CheckpointKey,
        load: impl FnOnce() -> Result<Option<S>, String>,
    ) -> Result<Option<(Arc<S>, Tier)>, CacheError> {
        match self.get(key) {
            Ok(Some(hit)) => return Ok(Some(hit)),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                epoch = key.epoch,
                root = %hex(&key.root),
                error = %e,
                "checkpoint state unreadable from disk; rebuilding it from the database"
            ),
        }
        let Some(state) = load().map_err(CacheError::Load)? else {
            return Ok(None);
        };
        let state = Arc::new(state);
        self.lock().stats.db_loads += 1;
        self.metrics.hit(CACHE_NAME, Tier::Database.as_str());
        self.insert(*key, state.clone());
        Ok(Some((state, Tier::Database)))
    }

    /// The state for `key` if it is in memory, without touching the LRU order, the disk
    /// tier or the counters (for the preloader).
    pub fn peek(&self, key: &CheckpointKey) -> Option<Arc<S>> {
        let g = self.lock();
        match g.memory.peek(key) {
            Some(entry) => Some(entry.state.clone()),
            None => g.demoting.get(key).cloned(),
        }
    }

    /// Whether `key` is in memory or on disk.
    pub fn contains(&self, key: &CheckpointKey) -> bool {
        let g = self.lock();
        g.memory.contains(key) || g.demoting.contains_key(key) || g.disk.contains(key)
    }

    /// States in memory.
    pub fn len_memory(&self) -> usize {
        self.lock().memory.len()
    }

    /// States on disk.
    pub fn len_disk(&self) -> usize {
        self.lock().disk.len()
    }

    /// Approximate bytes of the states in memory.
    pub fn bytes_memory(&self) -> u64 {
        self.lock().memory_bytes
    }

    /// Bytes of the files on disk.
    pub fn bytes_disk(&self) -> u64 {
        self.lock().disk_bytes
    }

    /// Demotes least-recently-used states to disk while the budget is over its limit
    /// (down to an empty memory tier if need be). Returns how many were demoted.
    pub fn evict_to_budget(&self) -> usize {
        let (demotions, count) = {
            let mut g = self.lock();
            let out = self.collect_demotions(&mut g, 0);
            self.publish(&g);
            out
        };
        self.demote(demotions);
        count
    }

    /// Removes every state of an epoch before `min_epoch` (e.g. below finalization) from
    /// both tiers. Returns how many were removed.
    pub fn prune(&self, min_epoch: u64) -> usize {
        let mut g = self.lock();
        let old_memory: Vec<_> = g
            .memory
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.epoch < min_epoch)
            .collect();
        for key in &old_memory {
            if let Some(entry) = g.memory.pop(key) {
                self.budget.release(entry.bytes);
                g.memory_bytes -= entry.bytes;
            }
        }
        let old_disk: Vec<_> = g
            .disk
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.epoch < min_epoch)
            .collect();
        for key in &old_disk {
            self.drop_disk_entry(&mut g, key);
        }
        let before = g.deferred.len() + g.deferred_old.len();
        let dropped: Vec<CheckpointKey> = g
            .deferred
            .iter()
            .chain(g.deferred_old.iter())
            .map(|(k, _)| *k)
            .filter(|k| k.epoch < min_epoch)
            .collect();
        g.deferred.retain(|(k, _)| k.epoch >= min_epoch);
        g.deferred_old.retain(|(k, _)| k.epoch >= min_epoch);
        for key in &dropped {
            g.demoting.remove(key);
        }
        let old_deferred = before - g.deferred.len() - g.deferred_old.len();
        self.publish(&g);
        old_memory.len() + old_disk.len() + old_deferred
    }

    /// The counters since creation.
    pub fn stats(&self) -> CheckpointCacheStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        // Every update leaves the maps consistent between statements: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, key: &CheckpointKey) -> PathBuf {
        self.config.disk_dir.join(key.file_name())
    }

    fn temp_path(&self, key: &CheckpointKey, what: &str) -> PathBuf {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.config
            .disk_dir
            .join(format!("{}.{what}{seq}", key.file_name()))
    }

    fn publish(&self, g: &Inner<S>) {
        self.metrics
            .set_size(CACHE_NAME, g.memory.len(), g.memory_bytes);
        self.metrics
            .set_size(DISK_CACHE_NAME, g.disk.len(), g.disk_bytes);
    }

    /// Removes `key`'s disk entry and file, if any (under the lock, so that no new file of
    /// the same name can be written meanwhile).
    fn drop_disk_entry(&self, g: &mut Inner<S>, key: &CheckpointKey) {
        if let Some(size) = g.disk.pop(key) {
            g.disk_bytes -= size;
            self.remove_file(&self.path(key));
        }
    }

    fn remove_file(&self, path: &Path) {
        if let Err(e) = fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not remove checkpoint-state file");
            }
        }
    }

    /// Takes least-recently-used states out of memory while memory holds more than its
    /// count, or more than `keep` states while the budget is over. Returns the states to
    /// write to disk and how many left memory.
    fn collect_demotions(
        &self,
        g: &mut Inner<S>,
        keep: usize,
    ) -> (Vec<(CheckpointKey, Arc<S>)>, usize) {
        let mut writes = Vec::new();
        let (mut count, mut by_budget, mut budget_bytes) = (0usize, 0u64, 0u64);
        loop {
            let len = g.memory.len();
            let budget = if len > self.config.memory_entries {
                false
            } else if len > keep && self.budget.is_over() {
                true
            } else {
                break;
            };
            let Some((key, entry)) = g.memory.pop_lru() else {
                break;
            };
            self.budget.release(entry.bytes);
            g.memory_bytes -= entry.bytes;
            g.stats.demotions += 1;
            count += 1;
            let reason = if budget {
                g.stats.budget_evictions += 1;
                by_budget += 1;
                budget_bytes += entry.bytes;
                REASON_MEMORY_BUDGET
            } else {
                REASON_CAPACITY
            };
            self.metrics.evicted(CACHE_NAME, reason, 1);
            tracing::debug!(
                epoch = key.epoch,
                root = %hex(&key.root),
                reason,
                "demoting checkpoint state to disk"
            );
            if self.config.disk_entries == 0 {
                continue;
            }
            // A write of this key already in flight will land it on disk.
            if g.demoting.insert(key, entry.state.clone()).is_none() {
                writes.push((key, entry.state));
            }
        }
        if by_budget > 0 {
            tracing::info!(
                demoted = by_budget,
                bytes = budget_bytes,
                budget_used = self.budget.used(),
                budget_limit = ?self.budget.limit(),
                "demoted checkpoint states to disk under the memory budget"
            );
        }
        (writes, count)
    }

    /// Writes demoted states to disk (outside the lock), then registers the files,
    /// deleting the least-recently-used files beyond the disk tier's count.
    fn demote(&self, writes: Vec<(CheckpointKey, Arc<S>)>) {
        for (key, state) in writes {
            let path = self.path(&key);
            let tmp = self.temp_path(&key, "tmp");
            let written = write_state_file(&path, &tmp, &*state);
            drop(state);
            let mut evicted = Vec::new();
            let mut g = self.lock();
            g.demoting.remove(&key);
            match written {
                Ok(_) if g.memory.contains(&key) => {
                    // Inserted again while being written: memory wins.
                    self.remove_file(&path);
                }
                Ok(size) => {
                    g.disk_bytes += size;
                    if let Some(old) = g.disk.put(key, size) {
                        g.disk_bytes -= old;
                    }
                    while g.disk.len() > self.config.disk_entries {
                        let Some((old_key, old_size)) = g.disk.pop_lru() else {
                            break;
                        };
                        g.disk_bytes -= old_size;
                        g.stats.disk_evictions += 1;
                        self.remove_file(&self.path(&old_key));
                        evicted.push(old_key);
                    }
                }
                Err(e) => tracing::warn!(
                    epoch = key.epoch,
                    root = %hex(&key.root),
                    error = %e,
                    "could not write checkpoint state to disk; dropped it (the database can rebuild it)"
                ),
            }
            self.publish(&g);
            drop(g);
            self.metrics
                .evicted(DISK_CACHE_NAME, REASON_CAPACITY, evicted.len() as u64);
            for old in evicted {
                tracing::debug!(
                    epoch = old.epoch,
                    root = %hex(&old.root),
                    "deleted checkpoint-state file (disk tier full)"
                );
            }
        }
    }
}

impl<S: CachedState> Drop for CheckpointStateCache<S> {
    fn drop(&mut self) {
        let g = match self.inner.get_mut() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.budget.release(g.memory_bytes);
        let keys: Vec<_> = g.disk.iter().map(|(k, _)| *k).collect();
        for key in keys {
            let _ = fs::remove_file(self.config.disk_dir.join(key.file_name()));
        }
    }
}

impl<S: CachedState> std::fmt::Debug for CheckpointStateCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStateCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Lower-case hex of a root.
pub(crate) fn hex(root: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in root {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Removes the disk tier's files (finished, temporary or claimed) from `dir`.
fn remove_stale_files(dir: &Path) -> Result<usize, CacheError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(CacheError::io(dir))? {
        let entry = entry.map_err(CacheError::io(dir))?;
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.contains(FILE_SUFFIX));
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            fs::remove_file(&path).map_err(CacheError::io(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Encodes, compresses (snappy frames) and writes `state` to `tmp`, then renames it to
/// `path`. Returns the file's size.
fn write_state_file<S: CachedState>(path: &Path, tmp: &Path, state: &S) -> Result<u64, CacheError> {
    let ssz = state
        .encode_ssz()
        .map_err(|e| CacheError::Codec(format!("encoding checkpoint state: {e}")))?;
    let write = || -> Result<u64, CacheError> {
        let file = File::create(tmp).map_err(CacheError::io(tmp))?;
        let mut encoder = snap::write::FrameEncoder::new(BufWriter::with_capacity(1 << 20, file));
        encoder.write_all(&ssz).map_err(CacheError::io(tmp))?;
        let buffered = encoder.into_inner().map_err(|e| CacheError::Io {
            path: tmp.to_path_buf(),
            source: e.into_error(),
        })?;
        let file = buffered.into_inner().map_err(|e| CacheError::Io {
            path: tmp.to_path_buf(),
            source: e.into_error(),
        })?;
        let size = file.metadata().map_err(CacheError::io(tmp))?.len();
        drop(file);
        fs::rename(tmp, path).map_err(CacheError::io(path))?;
        Ok(size)
    };
    let result = write();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Reads, decompresses and decodes a state file.
fn read_state_file<S: CachedState>(path: &Path) -> Result<S, CacheError> {
    let compressed = fs::read(path).map_err(CacheError::io(path))?;
    let mut ssz = Vec::new();
    snap::read::FrameDecoder::new(compressed.as_slice())
        .read_to_end(&mut ssz)
        .map_err(|e| CacheError::Codec(format!("{}: snappy: {e}", path.display())))?;
    S::decode_ssz(&ssz).map_err(|e| CacheError::Codec(format!("{}: ssz: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_support::Toy;
    use std::sync::atomic::AtomicUsize;

    fn root(i: u64) -> [u8; 32] {
        let mut r = [0u8; 32];
        r[..8].copy_from_slice(&i.to_le_bytes());
        r[31] = 0xab;
        r
    }

    fn key(i: u64) -> CheckpointKey {
        CheckpointKey::new(i, root(i))
    }

    fn config(dir: &Path, memory: usize, disk: usize) -> TieredConfig {
        TieredConfig {
            memory_entries: memory,
            disk_entries: disk,
            disk_dir: dir.to_path_buf(),
        }
    }

    fn cache(
        dir: &Path,
        memory: usize,
        disk: usize,
        limit: Option<u64>,
    ) -> (
        CheckpointStateCache<Toy>,
        Arc<MemoryBudget>,
        Arc<CacheMetrics>,
    ) {
        let budget = Arc::new(MemoryBudget::new(limit));
        let metrics = CacheMetrics::new();
        let c =
            CheckpointStateCache::new(config(dir, memory, disk), budget.clone(), metrics.clone())
                .unwrap();
        (c, budget, metrics)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn deferred_demotions_are_pruned_or_written_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) = cache(dir.path(), 4, 16, None);
        let c = Arc::new(c);
        let states: Vec<Toy> = (0..6).map(|i| Toy::new(i, 500 + i as usize)).collect();
        for (i, s) in states.iter().enumerate() {
            c.insert_background(key(i as u64), Arc::new(s.clone()));
        }
        // Two demoted, not yet written, still served from memory.
        assert_eq!((c.len_memory(), c.len_disk()), (4, 0));
        assert!(files(dir.path()).is_empty());
        let (got, tier) = c.get(&key(1)).unwrap().expect("deferred state served");
        assert_eq!(tier, Tier::Memory);
        assert_eq!(*got, states[1]);
        // Pruning below epoch 1 drops state 0 without writing it; the flush writes state 1.
        c.prune(1);
        c.flush_deferred();
        assert!(files(dir.path()).is_empty(), "written one flush later");
        c.flush_deferred();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while c.len_disk() < 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(files(dir.path()), vec![key(1).file_name()]);
        assert!(c.get(&key(0)).unwrap().is_none(), "pruned, never written");
        let (got, tier) = c.get(&key(1)).unwrap().expect("written, then promoted");
        assert_eq!(tier, Tier::Disk);
        assert_eq!(*got, states[1]);
    }

    #[test]
    fn file_name_format() {
        let k = CheckpointKey::new(7, [0x0f; 32]);
        assert_eq!(k.file_name(), format!("7-{}.ssz_snappy", "0f".repeat(32)));
    }

    #[test]
    fn memory_overflow_demotes_and_disk_hit_promotes() {
        let dir = tempfile::tempdir().unwrap();
        let (c, budget, metrics) = cache(dir.path(), 4, 16, None);
        let states: Vec<Toy> = (0..6).map(|i| Toy::new(i, 1000 + i as usize)).collect();
        for (i, s) in states.iter().enumerate() {
            c.insert(key(i as u64), Arc::new(s.clone()));
        }
        assert_eq!((c.len_memory(), c.len_disk()), (4, 2));
        assert_eq!(
            files(dir.path()),
            vec![key(0).file_name(), key(1).file_name()]
        );
        let mem_bytes: u64 = states[2..].iter().map(|s| s.approx_bytes() as u64).sum();
        assert_eq!(budget.used(), mem_bytes, "only the memory tier is charged");
        assert_eq!(c.bytes_memory(), mem_bytes);
        assert!(c.bytes_disk() > 0);
        assert!((0..6).all(|i| c.contains(&key(i))));

        let (got, tier) = c.get(&key(0)).unwrap().unwrap();
        assert_eq!(tier, Tier::Disk);
        assert_eq!(*got, states[0]);
        assert_eq!(got.encode_ssz().unwrap(), states[0].encode_ssz().unwrap());
        assert!(
            !dir.path().join(key(0).file_name()).exists(),
            "promoted file removed"
        );
        // Promotion pushed the least recently used memory entry (2) to disk.
        assert_eq!(
            files(dir.path()),
            vec![key(1).file_name(), key(2).file_name()]
        );
        assert_eq!((c.len_memory(), c.len_disk()), (4, 2));

        let (again, tier) = c.get(&key(0)).unwrap().unwrap();
        assert_eq!(tier, Tier::Memory);
        assert!(Arc::ptr_eq(&got, &again));
        assert!(c.get(&key(99)).unwrap().is_none());

        let stats = c.stats();
        assert_eq!(stats.memory_hits, 1);
        assert_eq!(stats.disk_hits, 1);
        assert_eq!(stats.misses, 1);
        assert_eq!(stats.demotions, 3);
        assert_eq!(stats.budget_evictions, 0);
        assert_eq!(stats.disk_evictions, 0);
        assert_eq!(metrics.hits(CACHE_NAME, "disk"), 1);
        assert_eq!(metrics.hits(CACHE_NAME, "memory"), 1);
        assert_eq!(metrics.misses(CACHE_NAME), 1);
        assert_eq!(metrics.evictions(CACHE_NAME, "capacity"), 3);
        assert_eq!(metrics.entries(CACHE_NAME), 4);
        assert_eq!(metrics.entries(DISK_CACHE_NAME), 2);

        drop(c);
        assert_eq!(budget.used(), 0, "dropping the cache releases its bytes");
        assert!(
            files(dir.path()).is_empty(),
            "dropping the cache removes its files"
        );
    }

    #[test]
    fn disk_overflow_deletes_least_recently_used_files() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, metrics) = cache(dir.path(), 1, 2, None);
        for i in 0..5 {
            c.insert(key(i), Arc::new(Toy::new(i, 300)));
        }
        // Memory: 4. Disk: 2, 3 (0 and 1 were deleted).
        assert_eq!((c.len_memory(), c.len_disk()), (1, 2));
        assert_eq!(
            files(dir.path()),
            vec![key(2).file_name(), key(3).file_name()]
        );
        assert_eq!(c.stats().disk_evictions, 2);
        assert_eq!(metrics.evictions(DISK_CACHE_NAME, "capacity"), 2);
        assert!(!c.contains(&key(0)));
        assert!(c.get(&key(0)).unwrap().is_none());
        assert_eq!(c.get(&key(2)).unwrap().unwrap().1, Tier::Disk);
        // 2 is back in memory, 4 went to disk.
        assert_eq!(
            files(dir.path()),
            vec![key(3).file_name(), key(4).file_name()]
        );
    }

    #[test]
    fn disabled_disk_tier_drops_demoted_states() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) = cache(dir.path(), 2, 0, None);
        for i in 0..4 {
            c.insert(key(i), Arc::new(Toy::new(i, 10)));
        }
        assert_eq!((c.len_memory(), c.len_disk()), (2, 0));
        assert!(files(dir.path()).is_empty());
        assert!(c.get(&key(0)).unwrap().is_none());
        assert_eq!(c.stats().demotions, 2);
    }

    #[test]
    fn get_or_load_loads_only_on_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, metrics) = cache(dir.path(), 1, 4, None);
        let calls = AtomicUsize::new(0);
        let load = |epoch: u64| {
            let calls = &calls;
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Some(Toy::new(epoch, 64)))
            }
        };

        let (s, tier) = c.get_or_load(&key(1), load(1)).unwrap().unwrap();
        assert_eq!(
            (tier, s.epoch, calls.load(Ordering::SeqCst)),
            (Tier::Database, 1, 1)
        );
        let (_, tier) = c.get_or_load(&key(1), load(1)).unwrap().unwrap();
        assert_eq!((tier, calls.load(Ordering::SeqCst)), (Tier::Memory, 1));

        // Another load demotes 1 to disk; 1 then comes from disk, not the database.
        c.get_or_load(&key(2), load(2)).unwrap().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let (s, tier) = c.get_or_load(&key(1), load(1)).unwrap().unwrap();
        assert_eq!(
            (tier, s.epoch, calls.load(Ordering::SeqCst)),
            (Tier::Disk, 1, 2)
        );

        // Unknown to the database, and a failing database.
        assert!(c.get_or_load(&key(3), || Ok(None)).unwrap().is_none());
        assert!(!c.contains(&key(3)));
        let err = c
            .get_or_load(&key(4), || Err("no snapshot".into()))
            .unwrap_err();
        assert!(
            matches!(err, CacheError::Load(ref m) if m == "no snapshot"),
            "{err}"
        );

        let stats = c.stats();
        assert_eq!(stats.db_loads, 2);
        assert_eq!(stats.misses, 4);
        assert_eq!(metrics.hits(CACHE_NAME, "database"), 2);
    }

    #[test]
    fn corrupt_disk_file_is_a_codec_error_and_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) = cache(dir.path(), 1, 4, None);
        for i in 0..4 {
            c.insert(key(i), Arc::new(Toy::new(i, 500)));
        }
        assert_eq!(c.len_disk(), 3);

        // Not snappy at all.
        let path0 = dir.path().join(key(0).file_name());
        fs::write(&path0, b"definitely not a snappy frame stream").unwrap();
        let err = c.get(&key(0)).unwrap_err();
        assert!(matches!(err, CacheError::Codec(_)), "{err}");
        assert!(!c.contains(&key(0)));
        assert!(!path0.exists());
        assert_eq!(c.len_disk(), 2);
        assert!(
            c.get(&key(0)).unwrap().is_none(),
            "dropped: now a plain miss"
        );

        // Valid snappy, truncated SSZ.
        let path1 = dir.path().join(key(1).file_name());
        let mut enc = snap::write::FrameEncoder::new(Vec::new());
        enc.write_all(&[1, 2, 3]).unwrap();
        fs::write(&path1, enc.into_inner().unwrap()).unwrap();
        assert!(matches!(c.get(&key(1)), Err(CacheError::Codec(_))));
        assert!(!c.contains(&key(1)));

        // A flipped byte inside a valid file is caught by the frame checksum.
        let path2 = dir.path().join(key(2).file_name());
        let mut bytes = fs::read(&path2).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path2, bytes).unwrap();
        let loaded = c
            .get_or_load(&key(2), || Ok(Some(Toy::new(2, 500))))
            .unwrap()
            .unwrap();
        assert_eq!(
            loaded.1,
            Tier::Database,
            "get_or_load falls back to the database"
        );
        assert_eq!(*loaded.0, Toy::new(2, 500));

        // A missing file is an Io error (memory holds 2 now; loading it demoted 3).
        let path3 = dir.path().join(key(3).file_name());
        assert!(path3.exists());
        fs::remove_file(&path3).unwrap();
        assert!(matches!(c.get(&key(3)), Err(CacheError::Io { .. })));
        assert_eq!(c.len_disk(), 0);
    }

    #[test]
    fn budget_demotes_to_disk_and_shows_in_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let one = Toy::new(0, 1000).approx_bytes() as u64;
        let (c, budget, metrics) = cache(dir.path(), 4, 16, Some(2 * one + one / 2));
        for i in 0..4 {
            c.insert(key(i), Arc::new(Toy::new(i, 1000)));
        }
        // Count allows 4, the budget allows 2.
        assert_eq!((c.len_memory(), c.len_disk()), (2, 2));
        assert_eq!(budget.used(), 2 * one);
        assert_eq!(budget.over_by(), 0);
        let stats = c.stats();
        assert_eq!((stats.demotions, stats.budget_evictions), (2, 2));
        assert_eq!(files(dir.path()).len(), 2);
        assert_eq!(metrics.evictions(CACHE_NAME, "memory_budget"), 2);
        let text = metrics.encode_text();
        assert!(
            text.contains(
                "quasar_cache_evictions_total{cache=\"checkpoint_states\",reason=\"memory_budget\"} 2"
            ),
            "{text}"
        );

        // A single state over the budget stays in memory on insert...
        let (c2, budget2, _) = cache(&dir.path().join("small"), 4, 16, Some(10));
        c2.insert(key(0), Arc::new(Toy::new(0, 1000)));
        assert_eq!(c2.len_memory(), 1);
        assert!(budget2.is_over());
        // ...until memory pressure is relieved explicitly.
        assert_eq!(c2.evict_to_budget(), 1);
        assert_eq!((c2.len_memory(), c2.len_disk()), (0, 1));
        assert_eq!(budget2.used(), 0);
        assert_eq!(c2.get(&key(0)).unwrap().unwrap().1, Tier::Disk);

        // Pressure from another cache demotes everything in memory.
        budget.charge(1 << 30);
        assert_eq!(c.evict_to_budget(), 2);
        assert_eq!((c.len_memory(), c.len_disk()), (0, 4));
        assert_eq!(budget.used(), 1 << 30);
    }

    #[test]
    fn stale_files_are_removed_on_new() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(key(3).file_name()), b"old").unwrap();
        fs::write(
            dir.path().join(format!("{}.tmp7", key(4).file_name())),
            b"x",
        )
        .unwrap();
        fs::write(dir.path().join("unrelated.txt"), b"keep").unwrap();
        let nested = dir.path().join("not-ours");
        let (c, _, _) = cache(&nested, 4, 16, None);
        assert!(nested.is_dir(), "disk dir created");
        drop(c);
        let (c, _, _) = cache(dir.path(), 4, 16, None);
        assert_eq!(
            files(dir.path()),
            vec!["not-ours".to_string(), "unrelated.txt".to_string()]
        );
        assert!(!c.contains(&key(3)));
    }

    #[test]
    fn prune_removes_old_epochs_from_both_tiers() {
        let dir = tempfile::tempdir().unwrap();
        let (c, budget, _) = cache(dir.path(), 2, 16, None);
        for i in 0..6 {
            c.insert(key(i), Arc::new(Toy::new(i, 100)));
        }
        assert_eq!(c.prune(5), 5);
        assert_eq!((c.len_memory(), c.len_disk()), (1, 0));
        assert!(files(dir.path()).is_empty());
        assert_eq!(budget.used(), Toy::new(5, 100).approx_bytes() as u64);
    }

    #[test]
    fn concurrent_use_stays_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let (c, budget, _) = cache(dir.path(), 3, 5, None);
        let c = Arc::new(c);
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..40u64 {
                        let k = key((t * 7 + i) % 12);
                        if i % 3 == 0 {
                            c.insert(k, Arc::new(Toy::new(k.epoch, 200)));
                        } else {
                            let got = c
                                .get_or_load(&k, || Ok(Some(Toy::new(k.epoch, 200))))
                                .unwrap()
                                .unwrap();
                            assert_eq!(*got.0, Toy::new(k.epoch, 200));
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.len_memory(), 3);
        assert!(c.len_disk() <= 5);
        assert_eq!(files(dir.path()).len(), c.len_disk());
        assert_eq!(budget.used(), c.bytes_memory());
        assert_eq!(c.bytes_memory(), 3 * Toy::new(0, 200).approx_bytes() as u64);
    }
}
