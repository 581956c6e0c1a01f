//! Preset-dispatched views of stored blocks and states, for readers outside the chain
//! (the Beacon API): a block's signed header, the Beacon API JSON of a block or a state,
//! a state's fork, checkpoints and validator registry. Everything is read from SSZ bytes or
//! an [`AnyState`]; the preset is matched here, once per call, so callers stay preset-free.

use ssz_rs::List;

use super::pipeline::ImportError;
use super::service::AnyState;
use crate::types::common::{
    BeaconBlockHeader, Checkpoint, Fork, SignedBeaconBlockHeader, Validator,
};
use crate::types::json::ApiJson;
use crate::types::primitives::{Gwei, VALIDATOR_REGISTRY_LIMIT};
use crate::types::ssz::{hash_tree_root, ssz_encode, ByteVector, SszDecode};
use crate::types::{mainnet, minimal, Preset};

type Root = [u8; 32];

fn internal(what: &str, e: impl std::fmt::Display) -> ImportError {
    ImportError::Internal(format!("{what}: {e}"))
}

/// Runs `$body` with `$ty` bound to the preset's types module.
macro_rules! with_preset {
    ($preset:expr, $ty:ident => $body:expr) => {
        match $preset {
            Preset::Minimal => {
                use minimal as $ty;
                $body
            }
            Preset::Mainnet => {
                use mainnet as $ty;
                $body
            }
        }
    };
}

/// The signed header of a stored `SignedBeaconBlock` (its body replaced by the body's root).
pub fn signed_header(preset: Preset, ssz: &[u8]) -> Result<SignedBeaconBlockHeader, ImportError> {
    with_preset!(preset, ty => {
        let mut b = ty::SignedBeaconBlock::ssz_decode(ssz).map_err(|e| internal("stored block", e))?;
        let body_root = hash_tree_root(&mut b.message.body).map_err(|e| internal("body root", e))?;
        Ok(SignedBeaconBlockHeader {
            message: BeaconBlockHeader {
                slot: b.message.slot,
                proposer_index: b.message.proposer_index,
                parent_root: b.message.parent_root,
                state_root: b.message.state_root,
                body_root: ByteVector(body_root),
            },
            signature: b.signature,
        })
    })
}

/// The Beacon API JSON of a `SignedBeaconBlock` (`{"message":…,"signature":…}`).
pub fn block_json(preset: Preset, ssz: &[u8]) -> Result<String, ImportError> {
    with_preset!(preset, ty => {
        let b = ty::SignedBeaconBlock::ssz_decode(ssz).map_err(|e| internal("stored block", e))?;
        Ok(b.to_api_json())
    })
}

/// The execution payload's block hash of a stored block.
pub fn execution_block_hash(preset: Preset, ssz: &[u8]) -> Result<Root, ImportError> {
    with_preset!(preset, ty => {
        let b = ty::SignedBeaconBlock::ssz_decode(ssz).map_err(|e| internal("stored block", e))?;
        Ok(*b.message.body.execution_payload.block_hash.as_bytes())
    })
}

/// The spec's genesis block for a genesis state with root `state_root` (slot `slot`, every
/// other field empty, no signature) and its root: the anchor block, which the store does
/// not hold. A caller serves it only when the root matches the anchor's.
pub fn genesis_block(
    preset: Preset,
    slot: u64,
    state_root: Root,
) -> Result<(Vec<u8>, Root), ImportError> {
    with_preset!(preset, ty => {
        let mut b = ty::SignedBeaconBlock::default();
        b.message.slot = slot;
        b.message.state_root = ByteVector(state_root);
        let root = hash_tree_root(&mut b.message).map_err(|e| internal("genesis block root", e))?;
        Ok((ssz_encode(&b).map_err(|e| internal("genesis block", e))?, root))
    })
}

/// The preset's constants as `config/spec` lists them.
pub fn preset_constants(preset: Preset) -> Vec<(&'static str, u64)> {
    macro_rules! consts {
        ($ty:ident; $($name:ident),*) => {
            vec![$((stringify!($name), $ty::$name as u64)),*]
        };
    }
    with_preset!(preset, ty => consts!(ty;
        MAX_COMMITTEES_PER_SLOT, TARGET_COMMITTEE_SIZE, SHUFFLE_ROUND_COUNT, SLOTS_PER_EPOCH,
        EPOCHS_PER_ETH1_VOTING_PERIOD, SLOTS_PER_HISTORICAL_ROOT, EPOCHS_PER_HISTORICAL_VECTOR,
        EPOCHS_PER_SLASHINGS_VECTOR, SYNC_COMMITTEE_SIZE, EPOCHS_PER_SYNC_COMMITTEE_PERIOD,
        MAX_WITHDRAWALS_PER_PAYLOAD, PENDING_PARTIAL_WITHDRAWALS_LIMIT, PENDING_CONSOLIDATIONS_LIMIT,
        HISTORICAL_ROOTS_LIMIT, VALIDATOR_REGISTRY_LIMIT, MAX_VALIDATORS_PER_COMMITTEE,
        MAX_PROPOSER_SLASHINGS, MAX_DEPOSITS, MAX_VOLUNTARY_EXITS, MAX_BLS_TO_EXECUTION_CHANGES,
        MAX_ATTESTER_SLASHINGS_ELECTRA, MAX_ATTESTATIONS_ELECTRA, MAX_BLOB_COMMITMENTS_PER_BLOCK,
        FIELD_ELEMENTS_PER_BLOB, FIELD_ELEMENTS_PER_CELL, NUMBER_OF_COLUMNS,
        MAX_DEPOSIT_REQUESTS_PER_PAYLOAD, MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD,
        MAX_CONSOLIDATION_REQUESTS_PER_PAYLOAD, PENDING_DEPOSITS_LIMIT,
        KZG_COMMITMENTS_INCLUSION_PROOF_DEPTH, MIN_SEED_LOOKAHEAD, JUSTIFICATION_BITS_LENGTH,
        DEPOSIT_CONTRACT_TREE_DEPTH, MAX_BYTES_PER_TRANSACTION, MAX_TRANSACTIONS_PER_PAYLOAD,
        BYTES_PER_LOGS_BLOOM, MAX_EXTRA_DATA_BYTES
    ))
}

/// A state's finality checkpoints.
#[derive(Debug, Clone)]
pub struct FinalityCheckpoints {
    pub previous_justified: Checkpoint,
    pub current_justified: Checkpoint,
    pub finalized: Checkpoint,
}

macro_rules! on_state {
    ($state:expr, $s:ident => $body:expr) => {
        match $state {
            AnyState::Minimal($s) => $body,
            AnyState::Mainnet($s) => $body,
        }
    };
}

impl AnyState {
    /// Decode a `BeaconState` of `preset` (committed data: a failure is the node's).
    pub fn from_ssz(preset: Preset, ssz: &[u8]) -> Result<Self, ImportError> {
        Ok(match preset {
            Preset::Minimal => AnyState::Minimal(std::sync::Arc::new(
                minimal::BeaconState::ssz_decode(ssz).map_err(|e| internal("stored state", e))?,
            )),
            Preset::Mainnet => AnyState::Mainnet(std::sync::Arc::new(
                mainnet::BeaconState::ssz_decode(ssz).map_err(|e| internal("stored state", e))?,
            )),
        })
    }

    pub fn slot(&self) -> u64 {
        on_state!(self, s => s.slot)
    }

    pub fn fork(&self) -> Fork {
        on_state!(self, s => s.fork.clone())
    }

    pub fn finality_checkpoints(&self) -> FinalityCheckpoints {
        on_state!(self, s => FinalityCheckpoints {
            previous_justified: s.previous_justified_checkpoint.clone(),
            current_justified: s.current_justified_checkpoint.clone(),
            finalized: s.finalized_checkpoint.clone(),
        })
    }

    /// The validator registry.
    pub fn validators(&self) -> &List<Validator, VALIDATOR_REGISTRY_LIMIT> {
        on_state!(self, s => &s.validators)
    }

    pub fn balances(&self) -> &List<Gwei, VALIDATOR_REGISTRY_LIMIT> {
        on_state!(self, s => &s.balances)
    }

    /// The state's hash tree root (computed: use a known root where there is one).
    pub fn hash_tree_root(&self) -> Result<Root, ImportError> {
        on_state!(self, s => hash_tree_root(&mut (**s).clone()).map_err(|e| internal("state root", e)))
    }

    /// The Beacon API JSON of the state.
    pub fn to_api_json(&self) -> String {
        on_state!(self, s => s.to_api_json())
    }
}
