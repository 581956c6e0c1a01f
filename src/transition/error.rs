//! Errors of the state transition. Each variant says whether the input (a block, an
//! operation, a state from outside) is at fault or the node failed; a failed spec
//! `assert` names the check ([`Check`]).

/// Why a transition step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// A spec `assert` failed: the block or operation is invalid. `check` names the
    /// assert, `detail` says what was found.
    #[error("check failed: {check}: {detail}")]
    Check { check: Check, detail: String },
    /// An index from the input points outside a list of the state.
    #[error("{what} index {index} out of range (length {len})")]
    IndexOutOfRange {
        what: &'static str,
        index: u64,
        len: usize,
    },
    /// Checked arithmetic overflowed or underflowed (a uint64 error in the spec).
    #[error("arithmetic overflow in {0}")]
    Overflow(&'static str),
    /// A signature (or a key it needs) is invalid.
    #[error("invalid signature: {what}: {reason}")]
    Signature { what: &'static str, reason: String },
    /// A list would grow past its SSZ bound.
    #[error("list {0} is full")]
    ListFull(&'static str),
    /// Hashing or encoding failed: the node's fault, not the input's.
    #[error("internal error: {0}")]
    Internal(String),
}

impl TransitionError {
    /// A failed check.
    pub fn check(check: Check, detail: impl Into<String>) -> Self {
        TransitionError::Check {
            check,
            detail: detail.into(),
        }
    }

    /// Whether the input (block, operation, state) is to blame; `false` means the node failed.
    pub fn is_input_fault(&self) -> bool {
        !matches!(self, TransitionError::Internal(_))
    }

    /// The check that failed, when this is a failed check.
    pub fn failed_check(&self) -> Option<Check> {
        match self {
            TransitionError::Check { check, .. } => Some(*check),
            _ => None,
        }
    }
}

/// Which spec `assert` failed. The asserts of `process_block_header` and of
/// `state_transition` / `process_slots` each have their own variant; every other assert is
/// named by the spec function (or operation) it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    // `state_transition` and `process_slots`.
    /// `state_transition`: the block's `state_root` is not the post state's root.
    StateRoot,
    /// `process_slots`: the target slot is not after the state's slot.
    SlotNotNewer,
    /// A block on the wrong side of a fork boundary (the fork-transition runner).
    ForkBoundary,

    // `process_block_header`.
    /// The block's slot is not the state's slot.
    BlockSlot,
    /// The block is not newer than the latest block header.
    BlockNotNewer,
    /// The block's proposer is not the slot's proposer.
    ProposerIndex,
    /// The parent root is not the root of the latest block header.
    ParentRoot,
    /// The proposer is slashed.
    ProposerSlashed,

    // Block processing, by spec function.
    /// `process_withdrawals` (and `get_expected_withdrawals`' helpers).
    Withdrawals,
    /// `process_execution_payload`.
    ExecutionPayload,
    /// `process_operations` (the deposit count).
    Operations,
    /// `process_proposer_slashing`.
    ProposerSlashing,
    /// `process_attester_slashing`.
    AttesterSlashing,
    /// `process_attestation` (and `get_attestation_participation_flag_indices`).
    Attestation,
    /// `is_valid_indexed_attestation`.
    IndexedAttestation,
    /// `process_deposit` (the eth1 bridge's merkle proof).
    Deposit,
    /// `process_voluntary_exit`.
    VoluntaryExit,
    /// `process_bls_to_execution_change`.
    BlsToExecutionChange,
    /// `process_sync_aggregate`.
    SyncAggregate,

    // Helpers.
    /// `compute_shuffled_index`.
    ShuffledIndex,
    /// `compute_proposer_index`.
    ProposerSelection,
    /// `compute_committee`.
    Committee,
    /// `get_block_root_at_slot`.
    BlockRootAtSlot,
    /// `get_attesting_indices`.
    AttestingIndices,
    /// `get_unslashed_participating_indices`.
    ParticipatingIndices,
    /// `get_next_sync_committee_indices`.
    SyncCommitteeSelection,
    /// `eth_aggregate_pubkeys`.
    AggregatePubkeys,
}

impl Check {
    /// A snake_case name a reader matches to the spec: the spec function for the checks
    /// named by their function, the assert's subject for the others.
    pub fn name(self) -> &'static str {
        match self {
            Check::StateRoot => "state_root",
            Check::SlotNotNewer => "slot_not_newer",
            Check::ForkBoundary => "fork_boundary",
            Check::BlockSlot => "block_slot",
            Check::BlockNotNewer => "block_not_newer",
            Check::ProposerIndex => "proposer_index",
            Check::ParentRoot => "parent_root",
            Check::ProposerSlashed => "proposer_slashed",
            Check::Withdrawals => "process_withdrawals",
            Check::ExecutionPayload => "process_execution_payload",
            Check::Operations => "process_operations",
            Check::ProposerSlashing => "process_proposer_slashing",
            Check::AttesterSlashing => "process_attester_slashing",
            Check::Attestation => "process_attestation",
            Check::IndexedAttestation => "is_valid_indexed_attestation",
            Check::Deposit => "process_deposit",
            Check::VoluntaryExit => "process_voluntary_exit",
            Check::BlsToExecutionChange => "process_bls_to_execution_change",
            Check::SyncAggregate => "process_sync_aggregate",
            Check::ShuffledIndex => "compute_shuffled_index",
            Check::ProposerSelection => "compute_proposer_index",
            Check::Committee => "compute_committee",
            Check::BlockRootAtSlot => "get_block_root_at_slot",
            Check::AttestingIndices => "get_attesting_indices",
            Check::ParticipatingIndices => "get_unslashed_participating_indices",
            Check::SyncCommitteeSelection => "get_next_sync_committee_indices",
            Check::AggregatePubkeys => "eth_aggregate_pubkeys",
        }
    }

    /// The spec function the assert is in.
    pub fn spec_function(self) -> &'static str {
        match self {
            Check::StateRoot => "state_transition",
            Check::SlotNotNewer => "process_slots",
            Check::ForkBoundary => "process_slots_across_fork",
            Check::BlockSlot
            | Check::BlockNotNewer
            | Check::ProposerIndex
            | Check::ParentRoot
            | Check::ProposerSlashed => "process_block_header",
            other => other.name(),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, function) = (self.name(), self.spec_function());
        if name == function {
            f.write_str(name)
        } else {
            write!(f, "{function}: {name}")
        }
    }
}

/// `assert` of the spec: returns [`TransitionError::Check`] naming `check`, with the
/// formatted detail, when `cond` is false.
///
/// `transition_ensure!(cond, Check::Attestation, "attestation source does not match")`.
#[macro_export]
#[doc(hidden)]
macro_rules! transition_ensure {
    ($cond:expr, $check:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::transition::TransitionError::Check {
                check: $check,
                detail: format!($($msg)+),
            });
        }
    };
}
