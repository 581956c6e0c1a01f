//! Importing a folder of block files through the chain service (`quasar import`, the import
//! bench, tests): a client of the [`ChainHandle`] like sync is.
//!
//! ```text
//! files ──reader thread──▶ bounded queue ──▶ batcher ──▶ ChainHandle::submit_segment
//!        read (pooled buffer),              closes a segment at `batch_size` blocks
//!        snappy length-checked              or `batch_timeout` after its first block
//! ```
//!
//! Three segments are kept in flight: the chain verifies one while it applies the next,
//! and the service's intake decodes a third.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::error::BlockError;
use super::pipeline::{
    next_batch, spawn_reader, ImportError, ImportOptions, ImportReport, Progress, SegmentOutcome,
};
use super::service::{BlockSource, ChainHandle, Reply};

/// Segments submitted and not yet answered, at most: one pending on the chain thread
/// (verified while the next is applied), the next being applied, and one more being
/// decoded by the service's intake meanwhile, so the chain never waits for a decode.
const IN_FLIGHT: usize = 3;

/// Import every block file of `dir/blocks` (or of `dir` itself) in slot order. Returns what
/// was done, and the error that stopped it, if any: blocks before an invalid one are
/// imported. When `stop` is raised, no further segment is submitted; those in flight are
/// answered (each settled whole) before this returns.
pub fn import_dir(
    handle: &ChainHandle,
    dir: &Path,
    opts: &ImportOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> (ImportReport, Result<(), ImportError>) {
    let started = Instant::now();
    let mut report = ImportReport::default();
    let folder = if dir.join("blocks").is_dir() {
        dir.join("blocks")
    } else {
        dir.to_path_buf()
    };
    let files = match crate::devnet::list_block_files(&folder) {
        Ok(f) => f,
        Err(e) => {
            return (
                report,
                Err(ImportError::Decode {
                    path: dir.to_path_buf(),
                    reason: e.to_string(),
                }),
            )
        }
    };
    let total = files.len() as u64;
    let (rx, reader) = spawn_reader(files, opts.queue_depth, handle.buffer_pool().clone());
    let mut in_flight: VecDeque<(Reply<SegmentOutcome>, Vec<PathBuf>)> = VecDeque::new();
    let mut result = Ok(());
    let mut done = 0u64;
    let mut submitted = 0u64;
    let mut settle_front = |in_flight: &mut VecDeque<(Reply<SegmentOutcome>, Vec<PathBuf>)>,
                            report: &mut ImportReport|
     -> Result<(), ImportError> {
        let Some((reply, paths)) = in_flight.pop_front() else {
            return Ok(());
        };
        let outcome = reply.blocking_wait()?;
        report.add(&outcome.stats);
        report.batches += 1;
        done += paths.len() as u64;
        progress(Progress {
            done,
            total,
            head_slot: handle.head().head.slot,
        });
        match outcome.failed {
            None => Ok(()),
            Some(f) => match f.error {
                // A file that is not a block is named by its path.
                BlockError::Decode(reason) => Err(ImportError::Decode {
                    path: paths.get(f.index).cloned().unwrap_or_default(),
                    reason,
                }),
                _ => Err(ImportError::InvalidBlock(f)),
            },
        }
    };
    while let Some(batch) = next_batch(&rx, opts.batch_size, opts.batch_timeout) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut blocks = Vec::with_capacity(batch.len());
        let mut paths = Vec::with_capacity(batch.len());
        let mut read_error = None;
        for item in batch {
            match item {
                Ok(b) => {
                    blocks.push(b.ssz);
                    paths.push(b.path);
                }
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        // More follows unless this is the folder's last segment, or it closed short (the
        // queue ran dry: the importer has caught up); without more, the chain settles it
        // at once rather than waiting for a next one to overlap with.
        submitted += blocks.len() as u64;
        let more = submitted < total && blocks.len() >= opts.batch_size && read_error.is_none();
        if !blocks.is_empty() {
            match handle.blocking_submit_segment(blocks, BlockSource::File, more) {
                Ok(reply) => in_flight.push_back((reply, paths)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        while in_flight.len() >= IN_FLIGHT || (!more && !in_flight.is_empty()) {
            if let Err(e) = settle_front(&mut in_flight, &mut report) {
                result = Err(e);
                break;
            }
        }
        if result.is_err() {
            break;
        }
        if let Some(e) = read_error {
            result = Err(e);
            break;
        }
    }
    // Answer what is still in flight (after an error, the later segments are refused
    // for their unknown parent: only the first error is reported).
    while !in_flight.is_empty() {
        let r = settle_front(&mut in_flight, &mut report);
        if result.is_ok() {
            result = r;
        }
    }
    drop(rx);
    let _ = reader.join();
    if let Err(e) = &result {
        if e.is_input_fault() {
            report.rejected = Some(e.to_string());
        }
    }
    report.elapsed = started.elapsed();
    let head = handle.head();
    report.head_slot = head.head.slot;
    report.head_root = head.head.root;
    report.head_state_root = head.head_state_root;
    report.justified_epoch = head.justified.epoch;
    report.finalized_epoch = head.finalized.epoch;
    (report, result)
}
