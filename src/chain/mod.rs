//! The import side of the node. For now: verifying a chain segment — every block's
//! transition with its signature sets collected, then one pubkey pre-aggregation for the
//! whole segment (GPU or CPU) and one batch verification, bisected on failure.

pub mod resolve;

use crate::accel::aggregate::AggregateError;
use crate::transition::TransitionError;

/// Why a segment was refused: the first bad block and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The block failed a check of the state transition.
    #[error("block {index} (slot {slot}): {error}")]
    Block {
        index: usize,
        slot: u64,
        error: TransitionError,
    },
    /// One of the block's signatures does not verify (found by the batch and its bisection).
    #[error("block {index} (slot {slot}): invalid signature: {what}")]
    Signature {
        index: usize,
        slot: u64,
        what: &'static str,
        reason: String,
    },
    /// An input could not be decoded.
    #[error("{what}: {error}")]
    Decode {
        what: String,
        error: crate::types::ssz::DecodeError,
    },
    /// Advancing the state through empty slots failed.
    #[error("advancing to slot {slot}: {error}")]
    Slots { slot: u64, error: TransitionError },
    /// Encoding or hashing the post state failed (a node fault).
    #[error("post state: {0}")]
    Internal(String),
    /// The aggregator failed (a node fault, not the block's).
    #[error("pubkey aggregation failed: {0}")]
    Aggregate(#[from] AggregateError),
}

// Each preset module compiles the same `segment.rs` against its own types.
#[allow(clippy::duplicate_mod)]
pub mod mainnet;
#[allow(clippy::duplicate_mod)]
pub mod minimal;
