//! Containers whose bounds depend on the preset, as one macro instantiated once per
//! preset (`types::minimal`, `types::mainnet`). The invoking module supplies the preset
//! constants by name; field names and order follow the spec (Fulu, with Electra's
//! attestations and execution requests).

macro_rules! define_preset_containers {
    () => {
        use $crate::ssz_container;
        use ::ssz_rs::{Bitlist, Bitvector, List, Vector};

        pub const SYNC_SUBCOMMITTEE_SIZE: usize = SYNC_COMMITTEE_SIZE / SYNC_COMMITTEE_SUBNET_COUNT;
        pub const MAX_ATTESTING_INDICES: usize = MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT;
        pub const ETH1_DATA_VOTES_LIMIT: usize = EPOCHS_PER_ETH1_VOTING_PERIOD * SLOTS_PER_EPOCH;
        pub const PROPOSER_LOOKAHEAD_LENGTH: usize = (MIN_SEED_LOOKAHEAD + 1) * SLOTS_PER_EPOCH;

        ssz_container! {
            pub struct SyncAggregate {
                pub sync_committee_bits: Bitvector<SYNC_COMMITTEE_SIZE>,
                pub sync_committee_signature: BLSSignature,
            }
        }

        ssz_container! {
            pub struct SyncCommittee {
                pub pubkeys: Vector<BLSPubkey, SYNC_COMMITTEE_SIZE>,
                pub aggregate_pubkey: BLSPubkey,
            }
        }

        ssz_container! {
            pub struct SyncCommitteeContribution {
                pub slot: Slot,
                pub beacon_block_root: Root,
                pub subcommittee_index: u64,
                pub aggregation_bits: Bitvector<SYNC_SUBCOMMITTEE_SIZE>,
                pub signature: BLSSignature,
            }
        }

        ssz_container! {
            pub struct ContributionAndProof {
                pub aggregator_index: ValidatorIndex,
                pub contribution: SyncCommitteeContribution,
                pub selection_proof: BLSSignature,
            }
        }

        ssz_container! {
            pub struct SignedContributionAndProof {
                pub message: ContributionAndProof,
                pub signature: BLSSignature,
            }
        }

        ssz_container! {
            /// Electra (EIP-7549): `aggregation_bits` spans all committees of the slot
            /// that `committee_bits` selects.
            pub struct Attestation {
                pub aggregation_bits: Bitlist<MAX_ATTESTING_INDICES>,
                pub data: AttestationData,
                pub signature: BLSSignature,
                pub committee_bits: Bitvector<MAX_COMMITTEES_PER_SLOT>,
            }
        }

        ssz_container! {
            pub struct AggregateAndProof {
                pub aggregator_index: ValidatorIndex,
                pub aggregate: Attestation,
                pub selection_proof: BLSSignature,
            }
        }

        ssz_container! {
            pub struct SignedAggregateAndProof {
                pub message: AggregateAndProof,
                pub signature: BLSSignature,
            }
        }

        ssz_container! {
            pub struct IndexedAttestation {
                pub attesting_indices: List<ValidatorIndex, MAX_ATTESTING_INDICES>,
                pub data: AttestationData,
                pub signature: BLSSignature,
            }
        }

        ssz_container! {
            pub struct AttesterSlashing {
                pub attestation_1: IndexedAttestation,
                pub attestation_2: IndexedAttestation,
            }
        }

        ssz_container! {
            pub struct ExecutionPayload {
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
                pub base_fee_per_gas: ::ssz_rs::U256,
                pub block_hash: Hash32,
                pub transactions: List<Transaction, MAX_TRANSACTIONS_PER_PAYLOAD>,
                pub withdrawals: List<Withdrawal, MAX_WITHDRAWALS_PER_PAYLOAD>,
                pub blob_gas_used: u64,
                pub excess_blob_gas: u64,
            }
        }

        ssz_container! {
            pub struct BeaconBlockBody {
                pub randao_reveal: BLSSignature,
                pub eth1_data: Eth1Data,
                pub graffiti: Bytes32,
                pub proposer_slashings: List<ProposerSlashing, MAX_PROPOSER_SLASHINGS>,
                pub attester_slashings: List<AttesterSlashing, MAX_ATTESTER_SLASHINGS_ELECTRA>,
                pub attestations: List<Attestation, MAX_ATTESTATIONS_ELECTRA>,
                pub deposits: List<Deposit, MAX_DEPOSITS>,
                pub voluntary_exits: List<SignedVoluntaryExit, MAX_VOLUNTARY_EXITS>,
                pub sync_aggregate: SyncAggregate,
                pub execution_payload: ExecutionPayload,
                pub bls_to_execution_changes: List<SignedBLSToExecutionChange, MAX_BLS_TO_EXECUTION_CHANGES>,
                pub blob_kzg_commitments: List<KZGCommitment, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
                pub execution_requests: ExecutionRequests,
            }
        }

        ssz_container! {
            pub struct BeaconBlock {
                pub slot: Slot,
                pub proposer_index: ValidatorIndex,
                pub parent_root: Root,
                pub state_root: Root,
                pub body: BeaconBlockBody,
            }
        }

        ssz_container! {
            pub struct SignedBeaconBlock {
                pub message: BeaconBlock,
                pub signature: BLSSignature,
            }
        }

        ssz_container! {
            /// Fulu's state: Electra's, plus `proposer_lookahead` (EIP-7917).
            pub struct BeaconState {
                pub genesis_time: u64,
                pub genesis_validators_root: Root,
                pub slot: Slot,
                pub fork: Fork,
                pub latest_block_header: BeaconBlockHeader,
                pub block_roots: Vector<Root, SLOTS_PER_HISTORICAL_ROOT>,
                pub state_roots: Vector<Root, SLOTS_PER_HISTORICAL_ROOT>,
                pub historical_roots: List<Root, HISTORICAL_ROOTS_LIMIT>,
                pub eth1_data: Eth1Data,
                pub eth1_data_votes: List<Eth1Data, ETH1_DATA_VOTES_LIMIT>,
                pub eth1_deposit_index: u64,
                pub validators: List<Validator, VALIDATOR_REGISTRY_LIMIT>,
                pub balances: List<Gwei, VALIDATOR_REGISTRY_LIMIT>,
                pub randao_mixes: Vector<Bytes32, EPOCHS_PER_HISTORICAL_VECTOR>,
                pub slashings: Vector<Gwei, EPOCHS_PER_SLASHINGS_VECTOR>,
                pub previous_epoch_participation: List<ParticipationFlags, VALIDATOR_REGISTRY_LIMIT>,
                pub current_epoch_participation: List<ParticipationFlags, VALIDATOR_REGISTRY_LIMIT>,
                pub justification_bits: Bitvector<JUSTIFICATION_BITS_LENGTH>,
                pub previous_justified_checkpoint: Checkpoint,
                pub current_justified_checkpoint: Checkpoint,
                pub finalized_checkpoint: Checkpoint,
                pub inactivity_scores: List<u64, VALIDATOR_REGISTRY_LIMIT>,
                pub current_sync_committee: SyncCommittee,
                pub next_sync_committee: SyncCommittee,
                pub latest_execution_payload_header: ExecutionPayloadHeader,
                pub next_withdrawal_index: WithdrawalIndex,
                pub next_withdrawal_validator_index: ValidatorIndex,
                pub historical_summaries: List<HistoricalSummary, HISTORICAL_ROOTS_LIMIT>,
                pub deposit_requests_start_index: u64,
                pub deposit_balance_to_consume: Gwei,
                pub exit_balance_to_consume: Gwei,
                pub earliest_exit_epoch: Epoch,
                pub consolidation_balance_to_consume: Gwei,
                pub earliest_consolidation_epoch: Epoch,
                pub pending_deposits: List<PendingDeposit, PENDING_DEPOSITS_LIMIT>,
                pub pending_partial_withdrawals: List<PendingPartialWithdrawal, PENDING_PARTIAL_WITHDRAWALS_LIMIT>,
                pub pending_consolidations: List<PendingConsolidation, PENDING_CONSOLIDATIONS_LIMIT>,
                pub proposer_lookahead: Vector<ValidatorIndex, PROPOSER_LOOKAHEAD_LENGTH>,
            }
        }

        ssz_container! {
            pub struct LightClientBootstrap {
                pub header: LightClientHeader,
                pub current_sync_committee: SyncCommittee,
                pub current_sync_committee_branch: Vector<Bytes32, CURRENT_SYNC_COMMITTEE_BRANCH_DEPTH>,
            }
        }

        ssz_container! {
            pub struct LightClientUpdate {
                pub attested_header: LightClientHeader,
                pub next_sync_committee: SyncCommittee,
                pub next_sync_committee_branch: Vector<Bytes32, NEXT_SYNC_COMMITTEE_BRANCH_DEPTH>,
                pub finalized_header: LightClientHeader,
                pub finality_branch: Vector<Bytes32, FINALITY_BRANCH_DEPTH>,
                pub sync_aggregate: SyncAggregate,
                pub signature_slot: Slot,
            }
        }

        ssz_container! {
            pub struct LightClientFinalityUpdate {
                pub attested_header: LightClientHeader,
                pub finalized_header: LightClientHeader,
                pub finality_branch: Vector<Bytes32, FINALITY_BRANCH_DEPTH>,
                pub sync_aggregate: SyncAggregate,
                pub signature_slot: Slot,
            }
        }

        ssz_container! {
            pub struct LightClientOptimisticUpdate {
                pub attested_header: LightClientHeader,
                pub sync_aggregate: SyncAggregate,
                pub signature_slot: Slot,
            }
        }
    };
}

pub(crate) use define_preset_containers;
