//! The import side of the node:
//! - segment verification (`segment.rs`): every block's transition with its signature
//!   sets collected, then one pubkey pre-aggregation for the whole segment (GPU or CPU)
//!   and one batch verification, bisected on failure;
//! - the batch import pipeline (`pipeline.rs`, `import.rs`): a reader thread and a
//!   bounded queue feeding batches of up to 64 blocks (or 500 ms) through the transition,
//!   one signature batch, fork choice, and one atomic RocksDB write each;
//! - fork choice (`fork_choice.rs`): the spec's store (time, proposer boost, unrealized
//!   checkpoints, equivocations) over a proto-array LMD-GHOST;
//! - `db info` / `db verify` over a datadir (`dbcheck.rs`).

pub mod any;
pub mod error;
pub mod files;
pub mod fork_choice;
pub mod gossip_attestation;
pub mod gossip_ops;
pub mod metrics;
pub mod pipeline;
pub mod pubkeys;
pub mod resolve;
pub mod service;
pub mod views;

/// Metadata key of the chain's preset name.
pub const META_PRESET: &[u8] = b"preset";
/// Metadata key of the [`Anchor`].
pub const META_ANCHOR: &[u8] = b"anchor";

/// Metadata key of the [`OldestBlock`]: absent on a chain anchored at genesis.
pub const META_OLDEST_BLOCK: &[u8] = b"oldest_block";

/// The oldest block the store holds on a chain anchored at a checkpoint (checkpoint sync):
/// its slot (`earliest_available_slot`) and its parent's root, the next block backfill
/// fetches. The anchor block at first; backfill moves it down, in the same write as the
/// blocks it adds. Backfill is complete when `parent_root` is the zero root (the genesis
/// block is held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldestBlock {
    pub slot: u64,
    pub parent_root: [u8; 32],
}

impl OldestBlock {
    pub fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.slot.to_be_bytes());
        out[8..].copy_from_slice(&self.parent_root);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 40 {
            return Err(format!(
                "oldest-block record of {} bytes, expected 40",
                bytes.len()
            ));
        }
        let mut slot = [0u8; 8];
        slot.copy_from_slice(&bytes[..8]);
        let mut parent_root = [0u8; 32];
        parent_root.copy_from_slice(&bytes[8..]);
        Ok(OldestBlock {
            slot: u64::from_be_bytes(slot),
            parent_root,
        })
    }

    /// Whether every block down to genesis is held.
    pub fn is_genesis(&self) -> bool {
        self.parent_root == [0u8; 32]
    }

    /// The record of a store (`None`: anchored at genesis, every block held).
    pub fn read(store: &crate::store::Store) -> Result<Option<Self>, pipeline::ImportError> {
        store
            .get_metadata(META_OLDEST_BLOCK)?
            .map(|b| Self::decode(&b).map_err(pipeline::ImportError::Internal))
            .transpose()
    }
}

/// The block the chain starts from (the genesis block): its root, its post state's root
/// (a snapshot of that state is always stored) and its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub root: [u8; 32],
    pub state_root: [u8; 32],
    pub slot: u64,
}

impl Anchor {
    pub fn encode(&self) -> [u8; 72] {
        let mut out = [0u8; 72];
        out[..32].copy_from_slice(&self.root);
        out[32..64].copy_from_slice(&self.state_root);
        out[64..].copy_from_slice(&self.slot.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 72 {
            return Err(format!(
                "anchor record of {} bytes, expected 72",
                bytes.len()
            ));
        }
        let mut root = [0u8; 32];
        let mut state_root = [0u8; 32];
        root.copy_from_slice(&bytes[..32]);
        state_root.copy_from_slice(&bytes[32..64]);
        let mut slot = [0u8; 8];
        slot.copy_from_slice(&bytes[64..]);
        Ok(Anchor {
            root,
            state_root,
            slot: u64::from_be_bytes(slot),
        })
    }
}

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
