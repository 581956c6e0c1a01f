//! The preset-independent half of the import pipeline: options, errors, reports, the
//! reader thread that reads block files into a bounded queue, and the batcher.
//!
//! ```text
//! files ──reader thread──▶ bounded queue ──▶ batcher ──▶ ChainHandle::submit_segment
//!        read (pooled buffer),              closes a batch at `batch_size` blocks      │
//!        snappy length-checked              or `batch_timeout` after its first block   ▼
//!                                                         service intake: strict SSZ decode,
//!                                                         block root ──▶ chain thread
//! ```
//!
//! Reading and decoding run beside the importer verifying the previous batch; the queues'
//! bounds keep a fast reader from holding the whole chain in memory.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cache::pool::BufferPool;

/// The largest snappy-decoded block accepted (the gossip / req-resp chunk bound).
pub const MAX_BLOCK_BYTES: usize = 10 * 1024 * 1024;

/// How signatures are verified during import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    /// Every signature set of a batch resolved at once (one pubkey pre-aggregation call)
    /// and verified in one randomized batch, bisected on failure; one atomic write per
    /// batch.
    #[default]
    Batched,
    /// The baseline of a node without batching: each block's sets resolved and each set
    /// verified on its own right after the block, one write per block.
    PerBlock,
}

/// How the importer runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// A batch closes at this many blocks…
    pub batch_size: usize,
    /// … or this long after its first block arrived, whichever comes first.
    pub batch_timeout: Duration,
    /// Decoded blocks the reader may hold ahead of the importer.
    pub queue_depth: usize,
    /// A state snapshot is stored every this many epochs (the blocks between are replayed).
    pub snapshot_every_epochs: u64,
    pub verification: Verification,
    /// Bytes of cached states and blocks before the coldest are evicted (`None`: no limit).
    pub memory_budget: Option<u64>,
    /// Checkpoint states kept in memory and on disk.
    pub memory_states: usize,
    pub disk_states: usize,
    /// Warm the next two epochs' checkpoint states in the background after each batch.
    pub preload: bool,
    /// A batch's write auto-commits past this many bytes (between blocks; the head and
    /// checkpoints always go in its last part).
    pub write_batch_bytes: usize,
    /// Keep the state-root trees resident on this device (`--backend gpu`): after each
    /// block only the changed leaves go up and the device rehashes the dirty paths
    /// (`accel::resident`). `None`: the trees stay on the host.
    pub resident_roots: Option<std::sync::Arc<crate::accel::device::GpuContext>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: 64,
            batch_timeout: Duration::from_millis(500),
            queue_depth: 128,
            snapshot_every_epochs: 4,
            verification: Verification::Batched,
            memory_budget: None,
            memory_states: 4,
            disk_states: 16,
            preload: true,
            write_batch_bytes: crate::store::DEFAULT_BATCH_THRESHOLD_BYTES,
            resident_roots: None,
        }
    }
}

/// Why an import stopped. Blocks before the failing one are imported and stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A block file could not be read (the input's fault; only file import reads files).
    #[error("{path}: {reason}")]
    Decode { path: PathBuf, reason: String },
    /// A block was refused; every block of its segment before it was imported. Its
    /// [`BlockError`](crate::chain::error::BlockError) says what failed and whose fault it
    /// is.
    #[error("{0}")]
    InvalidBlock(crate::chain::error::FailedBlock),
    /// The genesis given does not match the one the datadir was created with, or none
    /// was given for a new datadir.
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
    #[error("fork choice: {0}")]
    ForkChoice(#[from] crate::chain::fork_choice::ForkChoiceError),
    /// The chain service stopped (shut down, or its thread failed) before answering.
    #[error("the chain service is not running")]
    ServiceStopped,
    /// The node failed (not the input): a transition or aggregation fault, a corrupt store.
    #[error("internal: {0}")]
    Internal(String),
}

impl ImportError {
    /// Whether the input (a block or a file) is at fault rather than the node.
    pub fn is_input_fault(&self) -> bool {
        match self {
            ImportError::Decode { .. } | ImportError::Genesis(_) => true,
            ImportError::InvalidBlock(f) => f.fault() != crate::chain::error::Fault::Node,
            _ => false,
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub blocks: usize,
    /// (slot, root) of each block imported, in import order.
    pub imported_blocks: Vec<(u64, [u8; 32])>,
    pub skipped: usize,
    pub signature_sets: usize,
    pub transition: Duration,
    /// Of `transition`: epoch processing and state roots.
    pub epoch_processing: Duration,
    pub state_root: Duration,
    pub signatures: Duration,
    /// Of `signatures`: pubkey aggregation (the rest is parsing and verification).
    pub aggregation: Duration,
    pub write: Duration,
}

/// What an import did, summed over its batches.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Blocks imported by this run.
    pub imported: u64,
    /// Blocks already in the store, skipped.
    pub skipped: u64,
    pub batches: u64,
    pub signature_sets: u64,
    pub head_slot: u64,
    pub head_root: [u8; 32],
    pub head_state_root: [u8; 32],
    pub justified_epoch: u64,
    pub finalized_epoch: u64,
    pub elapsed: Duration,
    pub transition: Duration,
    /// Of `transition`: epoch processing and state roots.
    pub epoch_processing: Duration,
    pub state_root: Duration,
    pub signatures: Duration,
    /// Of `signatures`: pubkey aggregation.
    pub aggregation: Duration,
    pub write: Duration,
    /// The first invalid block, when the import stopped at one (the blocks before it are
    /// imported and counted above).
    pub rejected: Option<String>,
}

impl ImportReport {
    /// Add what a batch (or the settling of a pending one) did; `batches` is counted by
    /// the caller.
    pub fn add(&mut self, b: &BatchStats) {
        self.imported += b.blocks as u64;
        self.skipped += b.skipped as u64;
        self.signature_sets += b.signature_sets as u64;
        self.transition += b.transition;
        self.epoch_processing += b.epoch_processing;
        self.state_root += b.state_root;
        self.signatures += b.signatures;
        self.aggregation += b.aggregation;
        self.write += b.write;
    }

    /// Imported blocks per second of wall time.
    pub fn blocks_per_second(&self) -> f64 {
        self.imported as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What importing one segment did: blocks imported and skipped (already known), the
/// first refused block (every block before it is imported), and the time spent.
#[derive(Debug, Clone, Default)]
pub struct SegmentOutcome {
    pub imported: usize,
    pub skipped: usize,
    pub failed: Option<crate::chain::error::FailedBlock>,
    pub stats: BatchStats,
}

/// A segment the chain has finished with: the id it was submitted under and its outcome
/// (`Err` when the node failed, not the blocks).
#[derive(Debug)]
pub struct Settled {
    pub id: u64,
    pub result: Result<SegmentOutcome, ImportError>,
}

/// Progress of a running import, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Blocks handled (imported or skipped) so far, and the total in the folder.
    pub done: u64,
    pub total: u64,
    pub head_slot: u64,
}

/// One block of a segment, decoded (behind the chain handle, by the service's intake).
pub struct Decoded<B> {
    /// Position in the segment as it was handed in (named in a [`FailedBlock`]).
    ///
    /// [`FailedBlock`]: crate::chain::error::FailedBlock
    pub index: usize,
    pub slot: u64,
    pub root: [u8; 32],
    pub block: B,
    /// The block's SSZ bytes, in a pooled buffer (returned to the pool when dropped).
    pub ssz: crate::cache::pool::PooledBuf,
}

/// Read a block file: snappy (raw, as `quasar devnet` writes them) when it ends in
/// `.ssz_snappy`, else plain SSZ; the declared length is checked against
/// [`MAX_BLOCK_BYTES`] before anything is allocated.
pub fn read_block_file(
    path: &Path,
    pool: &BufferPool,
) -> Result<crate::cache::pool::PooledBuf, String> {
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    let snappy = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == "ssz_snappy");
    if !snappy {
        if raw.len() > MAX_BLOCK_BYTES {
            return Err(format!(
                "{} bytes, over the {MAX_BLOCK_BYTES}-byte bound",
                raw.len()
            ));
        }
        let mut buf = pool.take(raw.len());
        buf.extend_from_slice(&raw);
        return Ok(buf);
    }
    let len = snap::raw::decompress_len(&raw).map_err(|e| format!("snappy: {e}"))?;
    if len > MAX_BLOCK_BYTES {
        return Err(format!(
            "declares {len} bytes, over the {MAX_BLOCK_BYTES}-byte bound"
        ));
    }
    let mut buf = pool.take(len);
    buf.resize(len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(&raw, &mut buf[..])
        .map_err(|e| format!("snappy: {e}"))?;
    buf.truncate(n);
    Ok(buf)
}

/// One block file as read by the reader thread: its path and its SSZ bytes (in a buffer of
/// `pool`, detached so it can cross the chain handle; the chain gives it back to the pool
/// when it is done with it).
pub struct FileBlock {
    pub path: PathBuf,
    pub ssz: Vec<u8>,
}

/// The reader thread: reads `files` in order (snappy length-checked) into a queue of depth
/// `depth`. The first file that cannot be read ends the stream with its error.
pub fn spawn_reader(
    files: Vec<(u64, PathBuf)>,
    depth: usize,
    pool: BufferPool,
) -> (Receiver<Result<FileBlock, ImportError>>, JoinHandle<()>) {
    let (tx, rx) = sync_channel(depth.max(1));
    let handle = std::thread::Builder::new()
        .name("quasar-reader".into())
        .spawn(move || {
            for (_, path) in files {
                let item = match read_block_file(&path, &pool) {
                    Ok(ssz) => Ok(FileBlock {
                        path,
                        ssz: ssz.into_vec(),
                    }),
                    Err(reason) => Err(ImportError::Decode { path, reason }),
                };
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    return;
                }
            }
        })
        .expect("spawning the reader thread");
    (rx, handle)
}

/// The next batch from the queue: blocks until one block arrives, then takes more until
/// `size` blocks or `timeout` after the first. `None` when the queue is closed and empty.
pub fn next_batch<T>(rx: &Receiver<T>, size: usize, timeout: Duration) -> Option<Vec<T>> {
    let first = rx.recv().ok()?;
    let deadline = Instant::now() + timeout;
    let mut batch = vec![first];
    while batch.len() < size.max(1) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(item) => batch.push(item),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

/// Peak resident set size of this process so far (VmHWM), in bytes, where Linux says.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reset the peak RSS counter (Linux: `echo 5 > /proc/self/clear_refs`); false if refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_close_on_size_and_on_timeout() {
        let (tx, rx) = sync_channel(100);
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        assert_eq!(
            next_batch(&rx, 4, Duration::from_secs(5)).unwrap(),
            vec![0, 1, 2, 3]
        );
        // Six left and the sender still open: the batch closes on the timeout.
        let t = Instant::now();
        let b = next_batch(&rx, 64, Duration::from_millis(100)).unwrap();
        assert_eq!(b, vec![4, 5, 6, 7, 8, 9]);
        assert!(t.elapsed() >= Duration::from_millis(100));
        drop(tx);
        assert!(next_batch(&rx, 64, Duration::from_millis(10)).is_none());
    }

    #[test]
    fn block_files_are_length_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pool = BufferPool::new(4, 1 << 20);
        // A snappy header declaring 2^31 bytes is refused before allocating.
        let bad = dir.path().join("1.ssz_snappy");
        std::fs::write(&bad, [0x80, 0x80, 0x80, 0x80, 0x08, 0x00]).unwrap();
        let err = read_block_file(&bad, &pool).unwrap_err();
        assert!(err.contains("over the"), "{err}");
        let good = dir.path().join("2.ssz_snappy");
        let payload = vec![7u8; 1000];
        std::fs::write(
            &good,
            snap::raw::Encoder::new().compress_vec(&payload).unwrap(),
        )
        .unwrap();
        assert_eq!(&read_block_file(&good, &pool).unwrap()[..], &payload[..]);
        let garbage = dir.path().join("3.ssz_snappy");
        std::fs::write(&garbage, [0x05, 0xff, 0xff]).unwrap();
        assert!(read_block_file(&garbage, &pool).is_err());
    }
}
