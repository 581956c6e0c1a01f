//! Sync: range sync from several peers at once, feeding the chain's batched import.
//!
//! ```text
//!   peers' Status ──▶ target slot ──▶ batches of `batch_slots` slots
//!        │                                │  up to `max_in_flight` downloads, on different
//!        ▼                                ▼  peers picked by load (then score)
//!   NetworkHandle::blocks_by_range ──▶ checked (slots in range, ascending, linked)
//!                                         │
//!                        in slot order ──▶ ChainHandle::submit_segment(.., more)
//!                                         │  one batch signature check per segment
//!                                         ▼
//!              imported │ refused: the sender's fault → penalised, batch re-downloaded
//!                       │          elsewhere; later batches resubmitted from memory
//! ```
//!
//! Memory is bounded: at most `max_in_flight` batches downloading plus as many downloaded
//! and waiting for their turn. A peer that stalls past `request_timeout` loses its batch
//! (and is penalised); a peer that leaves loses its batch; new peers are used as they come.

//!
//! After a checkpoint sync (`checkpoint`: the anchor fetched from a Beacon API), `backfill`
//! fetches the blocks older than the anchor, backwards, down to genesis.

pub mod backfill;
pub mod checkpoint;
mod range;

pub use backfill::{Backfill, BackfillStatus};
pub use checkpoint::{CheckpointAnchor, CheckpointConfig, CheckpointError};
pub use range::{RangeSync, SyncConfig, SyncStatus};
