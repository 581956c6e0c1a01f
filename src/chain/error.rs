//! Typed outcomes of block import: what failed, and whose fault it is.
//!
//! Every [`BlockError`] variant says what was wrong with a block; [`BlockError::fault`]
//! says who is to blame — the peer that sent it (its score drops), this node (logged, nobody
//! penalised), or nobody (already known, an unknown parent to fetch, a block from the
//! future). Sync and gossip act on the variant and the fault, never on a message string.

use crate::chain::gossip_ops::OperationError;
use crate::transition::{Check, TransitionError};

use crate::chain::pipeline::hex;

type Root = [u8; 32];

/// Whose fault a refused block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The block is invalid: whoever sent it sent something no honest peer would (the
    /// network lowers its score).
    Peer,
    /// This node failed (a store, an aggregator, a corrupt record): nobody is penalised.
    Node,
    /// Nothing is wrong with the block or the node: it is already known (or its proposer's
    /// block for the slot is), its parent is not yet known (fetch it), or it is from the
    /// future or below finalization.
    Nobody,
}

/// Why a block was not imported (or, on gossip, why it was not accepted: the variants of
/// the `beacon_block` gossip conditions are named after the spec's checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The bytes are not a `SignedBeaconBlock` of the chain's preset (or over the size bound).
    #[error("undecodable block: {0}")]
    Decode(String),
    /// The block is already imported.
    #[error("already known")]
    AlreadyKnown,
    /// Its parent is neither imported nor earlier in the same segment (on gossip: the
    /// parent has not been seen): fetch the parent.
    #[error("unknown parent 0x{}", hex(parent))]
    UnknownParent { parent: Root },
    /// Gossip: the block's slot starts later than the local clock plus
    /// `MAXIMUM_GOSSIP_CLOCK_DISPARITY` (it may be queued until then).
    #[error(
        "slot {slot} starts at {slot_start_ms} ms, in the future (now {now_ms} ms since genesis)"
    )]
    FutureSlot {
        slot: u64,
        slot_start_ms: u64,
        now_ms: u64,
    },
    /// The block's slot is not after the latest finalized slot (the first slot of the
    /// finalized epoch).
    #[error("slot {slot} is not after the finalized slot {finalized_slot}")]
    WouldRevertFinalized { slot: u64, finalized_slot: u64 },
    /// Gossip: a block of this proposer for this slot was already seen with a valid
    /// signature (the spec's "first block … for the slot and proposer").
    #[error("proposer {proposer_index} already proposed a block at slot {slot}")]
    RepeatProposal { slot: u64, proposer_index: u64 },
    /// The proposer index is not a validator index of the head state.
    #[error("proposer index {proposer_index} is out of range ({validators} validators)")]
    ProposerIndexOutOfRange {
        proposer_index: u64,
        validators: u64,
    },
    /// Gossip: the execution payload's timestamp is not the time of the block's slot.
    #[error("execution payload timestamp {timestamp}, expected {expected} for the block's slot")]
    IncorrectPayloadTimestamp { timestamp: u64, expected: u64 },
    /// The block's parent was seen and failed validation (its own fault), and its payload
    /// is optimistic (quasar has no execution engine: every payload is): the block is
    /// invalid too.
    #[error("parent 0x{} failed validation", hex(parent))]
    ParentRefused { parent: Root },
    /// The block's slot is not after its parent's.
    #[error("slot {slot} is not after its parent's slot {parent_slot}")]
    NotLaterThanParent { slot: u64, parent_slot: u64 },
    /// The finalized checkpoint's block is not an ancestor of the block.
    #[error(
        "the finalized checkpoint (epoch {finalized_epoch}, 0x{}) is not an ancestor",
        hex(finalized_root)
    )]
    NotFinalizedDescendant {
        finalized_epoch: u64,
        finalized_root: Root,
    },
    /// More blob KZG commitments than `get_blob_parameters(epoch).max_blobs_per_block`.
    #[error("{count} blob kzg commitments, over the limit of {max}")]
    TooManyBlobCommitments { count: u64, max: u64 },
    /// The block was marked invalid without being imported (`ChainHandle::mark_invalid`).
    #[error("block marked invalid")]
    MarkedInvalid,
    /// A segment's blocks are not in ascending slot order, or one does not build on the
    /// block before it.
    #[error("segment is not a chain: {0}")]
    NonLinearSegment(&'static str),
    /// The block names the wrong proposer for its slot (`process_block_header`, or the
    /// gossip check against the parent state advanced to the block's slot).
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
    /// A gossip operation (exit, slashing, BLS change) was not accepted.
    #[error("{0}")]
    Operation(OperationError),
    /// An attestation or sync-committee gossip message was refused (its own fault says
    /// whose it is).
    #[error("{0}")]
    Attestation(crate::chain::gossip_attestation::AttestationError),
}

impl BlockError {
    /// Whose fault the refusal is.
    pub fn fault(&self) -> Fault {
        match self {
            BlockError::Decode(_)
            | BlockError::ProposerIndexOutOfRange { .. }
            | BlockError::IncorrectPayloadTimestamp { .. }
            | BlockError::ParentRefused { .. }
            | BlockError::NotLaterThanParent { .. }
            | BlockError::NotFinalizedDescendant { .. }
            | BlockError::TooManyBlobCommitments { .. }
            | BlockError::MarkedInvalid
            | BlockError::NonLinearSegment(_)
            | BlockError::BadProposer(_)
            | BlockError::InvalidSignature { .. }
            | BlockError::StateRootMismatch { .. } => Fault::Peer,
            BlockError::Transition(e) if e.is_input_fault() => Fault::Peer,
            BlockError::Transition(_) | BlockError::Internal(_) => Fault::Node,
            BlockError::Operation(e) => e.fault(),
            BlockError::AlreadyKnown
            | BlockError::UnknownParent { .. }
            | BlockError::FutureSlot { .. }
            | BlockError::WouldRevertFinalized { .. }
            | BlockError::RepeatProposal { .. } => Fault::Nobody,
            BlockError::Attestation(e) => e.fault(),
        }
    }

    /// Whether the refusal holds for every block with this root: the block's message
    /// itself is invalid, whatever its signature and whatever the node's view. Such roots
    /// are remembered, so that their descendants are refused as "parent failed
    /// validation". Not so for a bad proposer signature (the root does not cover it), an
    /// undecodable block (no root), a segment's shape, or checks against the head state
    /// (the proposer index bound, the blob limit of the head's epoch).
    pub fn condemns_root(&self) -> bool {
        match self {
            BlockError::InvalidSignature { set, .. } => *set != "block signature",
            BlockError::Decode(_)
            | BlockError::NonLinearSegment(_)
            | BlockError::ProposerIndexOutOfRange { .. }
            | BlockError::TooManyBlobCommitments { .. }
            | BlockError::Operation(_) => false,
            // Not a block: no root to condemn.
            BlockError::Attestation(_) => false,
            e => e.fault() == Fault::Peer,
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

    #[test]
    fn gossip_conditions_have_the_spec_verdicts() {
        // [IGNORE] conditions: nobody's fault.
        for e in [
            BlockError::FutureSlot {
                slot: 2,
                slot_start_ms: 12_000,
                now_ms: 11_000,
            },
            BlockError::WouldRevertFinalized {
                slot: 8,
                finalized_slot: 8,
            },
            BlockError::RepeatProposal {
                slot: 3,
                proposer_index: 1,
            },
            BlockError::UnknownParent { parent: [2; 32] },
        ] {
            assert_eq!(e.fault(), Fault::Nobody, "{e:?}");
            assert!(!e.condemns_root(), "{e:?}");
        }
        // [REJECT] conditions: the sender's fault.
        for e in [
            BlockError::ProposerIndexOutOfRange {
                proposer_index: 64,
                validators: 64,
            },
            BlockError::IncorrectPayloadTimestamp {
                timestamp: 0,
                expected: 6,
            },
            BlockError::ParentRefused { parent: [3; 32] },
            BlockError::NotLaterThanParent {
                slot: 1,
                parent_slot: 1,
            },
            BlockError::NotFinalizedDescendant {
                finalized_epoch: 0,
                finalized_root: [0xab; 32],
            },
            BlockError::TooManyBlobCommitments { count: 10, max: 9 },
            BlockError::MarkedInvalid,
        ] {
            assert_eq!(e.fault(), Fault::Peer, "{e:?}");
        }
        // The root is condemned by what the message says, not by its signature or by
        // checks against the head state.
        let sig = |set| BlockError::InvalidSignature {
            set,
            reason: "does not verify".into(),
        };
        assert!(!sig("block signature").condemns_root());
        assert!(sig("randao reveal").condemns_root());
        assert!(BlockError::ParentRefused { parent: [3; 32] }.condemns_root());
        assert!(BlockError::StateRootMismatch { claimed: [1; 32] }.condemns_root());
        assert!(!BlockError::TooManyBlobCommitments { count: 10, max: 9 }.condemns_root());
        assert!(!BlockError::Decode("x".into()).condemns_root());
        assert!(!BlockError::Internal("disk".into()).condemns_root());
    }
}
