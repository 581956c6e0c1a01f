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

mod range;

pub use range::{RangeSync, SyncConfig, SyncStatus};
