//! Containers whose shape is the same in every preset (Fulu, with the fields of the
//! fork that last changed each one). Field names and order follow the spec.

use super::primitives::*;
use crate::ssz_container;
use ssz_rs::{Bitlist, List, Vector, U256};

ssz_container! {
    pub struct Fork {
        pub previous_version: Version,
        pub current_version: Version,
        pub epoch: Epoch,
    }
}

ssz_container! {
    pub struct ForkData {
        pub current_version: Version,
        pub genesis_validators_root: Root,
    }
}

ssz_container! {
    pub struct Checkpoint {
        pub epoch: Epoch,
        pub root: Root,
    }
}

ssz_container! {
    pub struct AttestationData {
        pub slot: Slot,
        pub index: CommitteeIndex,
        pub beacon_block_root: Root,
        pub source: Checkpoint,
        pub target: Checkpoint,
    }
}

ssz_container! {
    /// Electra (EIP-7549): the attestation an attester publishes on a subnet.
    pub struct SingleAttestation {
        pub committee_index: CommitteeIndex,
        pub attester_index: ValidatorIndex,
        pub data: AttestationData,
        pub signature: BLSSignature,
    }
}

ssz_container! {
    pub struct BeaconBlockHeader {
        pub slot: Slot,
        pub proposer_index: ValidatorIndex,
        pub parent_root: Root,
        pub state_root: Root,
        pub body_root: Root,
    }
}

ssz_container! {
    pub struct SignedBeaconBlockHeader {
        pub message: BeaconBlockHeader,
        pub signature: BLSSignature,
    }
}

ssz_container! {
    pub struct ProposerSlashing {
        pub signed_header_1: SignedBeaconBlockHeader,
        pub signed_header_2: SignedBeaconBlockHeader,
    }
}

ssz_container! {
    pub struct Eth1Data {
        pub deposit_root: Root,
        pub deposit_count: u64,
        pub block_hash: Hash32,
    }
}

ssz_container! {
    pub struct Eth1Block {
        pub timestamp: u64,
        pub deposit_root: Root,
        pub deposit_count: u64,
    }
}

ssz_container! {
    pub struct SigningData {
        pub object_root: Root,
        pub domain: Domain,
    }
}

ssz_container! {
    pub struct Validator {
        pub pubkey: BLSPubkey,
        pub withdrawal_credentials: Bytes32,
        pub effective_balance: Gwei,
        pub slashed: bool,
        pub activation_eligibility_epoch: Epoch,
        pub activation_epoch: Epoch,
        pub exit_epoch: Epoch,
        pub withdrawable_epoch: Epoch,
    }
}

ssz_container! {
    pub struct DepositMessage {
        pub pubkey: BLSPubkey,
        pub withdrawal_credentials: Bytes32,
        pub amount: Gwei,
    }
}

ssz_container! {
    pub struct DepositData {
        pub pubkey: BLSPubkey,
        pub withdrawal_credentials: Bytes32,
        pub amount: Gwei,
        pub signature: BLSSignature,
    }
}

ssz_container! {
    pub struct Deposit {
        pub proof: Vector<Bytes32, { DEPOSIT_CONTRACT_TREE_DEPTH + 1 }>,
        pub data: DepositData,
    }
}

ssz_container! {
    pub struct VoluntaryExit {
        pub epoch: Epoch,
        pub validator_index: ValidatorIndex,
    }
}

ssz_container! {
    pub struct SignedVoluntaryExit {
        pub message: VoluntaryExit,
        pub signature: BLSSignature,
    }
}

ssz_container! {
    pub struct HistoricalSummary {
        pub block_summary_root: Root,
        pub state_summary_root: Root,
    }
}

ssz_container! {
    pub struct PendingDeposit {
        pub pubkey: BLSPubkey,
        pub withdrawal_credentials: Bytes32,
        pub amount: Gwei,
        pub signature: BLSSignature,
        pub slot: Slot,
    }
}

ssz_container! {
    pub struct PendingPartialWithdrawal {
        pub validator_index: ValidatorIndex,
        pub amount: Gwei,
        pub withdrawable_epoch: Epoch,
    }
}

ssz_container! {
    pub struct PendingConsolidation {
        pub source_index: ValidatorIndex,
        pub target_index: ValidatorIndex,
    }
}

ssz_container! {
    pub struct DepositRequest {
        pub pubkey: BLSPubkey,
        pub withdrawal_credentials: Bytes32,
        pub amount: Gwei,
        pub signature: BLSSignature,
        pub index: u64,
    }
}

ssz_container! {
    pub struct WithdrawalRequest {
        pub source_address: ExecutionAddress,
        pub validator_pubkey: BLSPubkey,
        pub amount: Gwei,
    }
}

ssz_container! {
    pub struct ConsolidationRequest {
        pub source_address: ExecutionAddress,
        pub source_pubkey: BLSPubkey,
        pub target_pubkey: BLSPubkey,
    }
}

ssz_container! {
    pub struct ExecutionRequests {
        pub deposits: List<DepositRequest, MAX_DEPOSIT_REQUESTS_PER_PAYLOAD>,
        pub withdrawals: List<WithdrawalRequest, MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD>,
        pub consolidations: List<ConsolidationRequest, MAX_CONSOLIDATION_REQUESTS_PER_PAYLOAD>,
    }
}

ssz_container! {
    pub struct BLSToExecutionChange {
        pub validator_index: ValidatorIndex,
        pub from_bls_pubkey: BLSPubkey,
        pub to_execution_address: ExecutionAddress,
    }
}

ssz_container! {
    pub struct SignedBLSToExecutionChange {
        pub message: BLSToExecutionChange,
        pub signature: BLSSignature,
    }
}

ssz_container! {
    pub struct Withdrawal {
        pub index: WithdrawalIndex,
        pub validator_index: ValidatorIndex,
        pub address: ExecutionAddress,
        pub amount: Gwei,
    }
}

ssz_container! {
    /// Deneb's header (with `blob_gas_used` and `excess_blob_gas`), unchanged since.
    pub struct ExecutionPayloadHeader {
        pub parent_hash: Hash32,
        pub fee_recipient: ExecutionAddress,
        pub state_root: Bytes32,
        pub receipts_root: Bytes32,
        pub logs_bloom: LogsBloom,
        pub prev_randao: Bytes32,
        pub block_number: u64,
        pub gas_limit: u64,
        pub gas_used: u64,
        pub timestamp: u64,
        pub extra_data: ExtraData,
        pub base_fee_per_gas: U256,
        pub block_hash: Hash32,
        pub transactions_root: Root,
        pub withdrawals_root: Root,
        pub blob_gas_used: u64,
        pub excess_blob_gas: u64,
    }
}

ssz_container! {
    pub struct LightClientHeader {
        pub beacon: BeaconBlockHeader,
        pub execution: ExecutionPayloadHeader,
        pub execution_branch: Vector<Bytes32, EXECUTION_BRANCH_DEPTH>,
    }
}

ssz_container! {
    pub struct SyncAggregatorSelectionData {
        pub slot: Slot,
        pub subcommittee_index: u64,
    }
}

ssz_container! {
    pub struct SyncCommitteeMessage {
        pub slot: Slot,
        pub beacon_block_root: Root,
        pub validator_index: ValidatorIndex,
        pub signature: BLSSignature,
    }
}

ssz_container! {
    pub struct PowBlock {
        pub block_hash: Hash32,
        pub parent_hash: Hash32,
        pub total_difficulty: U256,
    }
}

ssz_container! {
    pub struct DataColumnSidecar {
        pub index: ColumnIndex,
        pub column: List<Cell, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        pub kzg_commitments: List<KZGCommitment, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        pub kzg_proofs: List<KZGProof, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        pub signed_block_header: SignedBeaconBlockHeader,
        pub kzg_commitments_inclusion_proof: Vector<Bytes32, KZG_COMMITMENTS_INCLUSION_PROOF_DEPTH>,
    }
}

ssz_container! {
    pub struct DataColumnsByRootIdentifier {
        pub block_root: Root,
        pub columns: List<ColumnIndex, NUMBER_OF_COLUMNS>,
    }
}

ssz_container! {
    pub struct MatrixEntry {
        pub cell: Cell,
        pub kzg_proof: KZGProof,
        pub column_index: ColumnIndex,
        pub row_index: RowIndex,
    }
}

ssz_container! {
    pub struct PartialDataColumnGroupID {
        pub beacon_block_root: Root,
    }
}

ssz_container! {
    pub struct PartialDataColumnHeader {
        pub kzg_commitments: List<KZGCommitment, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        pub signed_block_header: SignedBeaconBlockHeader,
        pub kzg_commitments_inclusion_proof: Vector<Bytes32, KZG_COMMITMENTS_INCLUSION_PROOF_DEPTH>,
    }
}

ssz_container! {
    pub struct PartialDataColumnPartsMetadata {
        pub available: Bitlist<MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        pub requests: Bitlist<MAX_BLOB_COMMITMENTS_PER_BLOCK>,
    }
}

ssz_container! {
    pub struct PartialDataColumnSidecar {
        pub cells_present_bitmap: Bitlist<MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        pub partial_column: List<Cell, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        pub kzg_proofs: List<KZGProof, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        /// Optional header, only sent on eager pushes.
        pub header: List<PartialDataColumnHeader, 1>,
    }
}
