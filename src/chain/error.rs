//! Typed outcomes of block import: what failed, and whose fault it is.
//!
//! Every [`BlockError`] variant says what was wrong with a block; [`BlockError::fault`]
//! says who is to blame — the peer that sent it (its score drops), this node (logged, nobody
//! penalised), or nobody (already known, an unknown parent to fetch, a block from the
//! future). Sync and gossip act on the variant and the fault, never on a message string.

use crate::transition::{Check, TransitionError};

type Root = [u8; 32];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whose fault a refused block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The block is invalid: whoever sent it sent something no honest peer would (the
    /// network lowers its score).
    Peer,
    /// This node failed (a store, an aggregator, a corrupt record): nobody is penalised.
    Node,
    /// Nothing is wrong with the block or the node: it is already known, its parent is not
    /// yet known (fetch it), or it is from the future or below finalization.
    Nobody,
}

/// Why a block was not imported.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlockError {
    /// The bytes are not a `SignedBeaconBlock` of the chain's preset (or over the size bound).
    #[error("undecodable block: {0}")]
    Decode(String),
    /// The block is already imported.
    #[error("already known")]
    AlreadyKnown,
    /// Its parent is neither imported nor earlier in the same segment: fetch the parent.
    #[error("unknown parent 0x{}", hex(parent))]
    UnknownParent { parent: Root },
    /// The block's slot is ahead of the node's clock (beyond the allowed disparity).
    #[error("slot {slot} is in the future (current slot {current_slot})")]
    FutureSlot { slot: u64, current_slot: u64 },
    /// The block is at or below the finalized slot and not on the finalized chain.
    #[error("slot {slot} is not after the finalized slot {finalized_slot}")]
    WouldRevertFinalized { slot: u64, finalized_slot: u64 },
    /// The block's slot is not after its parent's.
    #[error("slot {slot} is not after its parent's slot {parent_slot}")]
    NotLaterThanParent { slot: u64, parent_slot: u64 },
    /// A segment's blocks are not in ascending slot order, or one does not build on the
    /// block before it.
    #[error("segment is not a chain: {0}")]
    NonLinearSegment(&'static str),
    /// The block names the wrong proposer for its slot (`process_block_header`).
    #[error("wrong proposer: {0}")]
    BadProposer(String),
    /// One of the block's signature sets does not verify: `set` names it (`"block
    /// signature"`, `"randao reveal"`, `"attestation"`, `"sync aggregate"` …).
    #[error("invalid signature: {set}: {reason}")]
    InvalidSignature { set: &'static str, reason: String },
    /// The block's `state_root` is not the root of its post state.
    #[error(
        "state root: the block's state root 0x{} does not match the post state",
        hex(claimed)
    )]
    StateRootMismatch { claimed: Root },
    /// A check of the state transition failed (the transition error names it).
    #[error("{0}")]
    Transition(TransitionError),
    /// The node failed while importing the block; the block may be fine.
    #[error("internal: {0}")]
    Internal(String),
}

impl BlockError {
    /// Whose fault the refusal is.
    pub fn fault(&self) -> Fault {
        match self {
            BlockError::Decode(_)
            | BlockError::NotLaterThanParent { .. }
            | BlockError::NonLinearSegment(_)
            | BlockError::BadProposer(_)
            | BlockError::InvalidSignature { .. }
            | BlockError::StateRootMismatch { .. } => Fault::Peer,
            BlockError::Transition(e) if e.is_input_fault() => Fault::Peer,
            BlockError::Transition(_) | BlockError::Internal(_) => Fault::Node,
            BlockError::AlreadyKnown
            | BlockError::UnknownParent { .. }
            | BlockError::FutureSlot { .. }
            | BlockError::WouldRevertFinalized { .. } => Fault::Nobody,
        }
    }

    /// A transition failure, typed: a wrong proposer becomes [`BlockError::BadProposer`],
    /// a signature [`BlockError::InvalidSignature`]; the node's own faults are internal.
    pub fn from_transition(e: TransitionError) -> Self {
        match e {
            e if !e.is_input_fault() => BlockError::Internal(e.to_string()),
            TransitionError::Check {
                check: Check::ProposerIndex,
                detail,
            } => BlockError::BadProposer(detail),
            TransitionError::Signature { what, reason } => {
                BlockError::InvalidSignature { set: what, reason }
            }
            e => BlockError::Transition(e),
        }
    }
}

/// A refused block of a segment: its position in the segment, slot, root and error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("block at slot {slot} (root 0x{}): {error}", hex(root))]
pub struct FailedBlock {
    /// Position in the segment as it was handed in.
    pub index: usize,
    pub slot: u64,
    pub root: Root,
    pub error: BlockError,
}

impl FailedBlock {
    pub fn fault(&self) -> Fault {
        self.error.fault()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_follow_the_variant() {
        assert_eq!(BlockError::Decode("x".into()).fault(), Fault::Peer);
        assert_eq!(
            BlockError::UnknownParent { parent: [1; 32] }.fault(),
            Fault::Nobody
        );
        assert_eq!(BlockError::AlreadyKnown.fault(), Fault::Nobody);
        assert_eq!(
            BlockError::InvalidSignature {
                set: "block signature",
                reason: "does not verify".into()
            }
            .fault(),
            Fault::Peer
        );
        assert_eq!(BlockError::Internal("disk".into()).fault(), Fault::Node);
        assert_eq!(
            BlockError::from_transition(TransitionError::Internal("hash".into())).fault(),
            Fault::Node
        );
        assert_eq!(
            BlockError::from_transition(TransitionError::Overflow("balance")).fault(),
            Fault::Peer
        );
        let wrong = BlockError::from_transition(TransitionError::check(
            Check::ProposerIndex,
            "proposer index 3 is not the expected 5",
        ));
        assert!(matches!(wrong, BlockError::BadProposer(_)), "{wrong:?}");
        assert_eq!(wrong.fault(), Fault::Peer);
    }
}
