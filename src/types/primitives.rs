//! The spec's custom types and the constants that do not depend on the preset.

use super::ssz::ByteVector;
use ssz_rs::List;

pub type Slot = u64;
pub type Epoch = u64;
pub type Gwei = u64;
pub type CommitteeIndex = u64;
pub type ValidatorIndex = u64;
pub type WithdrawalIndex = u64;
pub type BlobIndex = u64;
pub type CellIndex = u64;
pub type RowIndex = u64;
pub type ColumnIndex = u64;
pub type CustodyIndex = u64;
pub type SubnetId = u64;
pub type ParticipationFlags = u8;

pub type Bytes4 = ByteVector<4>;
pub type Bytes8 = ByteVector<8>;
pub type Bytes20 = ByteVector<20>;
pub type Bytes32 = ByteVector<32>;
pub type Bytes48 = ByteVector<48>;
pub type Bytes96 = ByteVector<96>;

pub type Root = Bytes32;
pub type Hash32 = Bytes32;
pub type Domain = Bytes32;
pub type VersionedHash = Bytes32;
pub type Version = Bytes4;
pub type DomainType = Bytes4;
pub type ForkDigest = Bytes4;
pub type BLSPubkey = Bytes48;
pub type BLSSignature = Bytes96;
pub type KZGCommitment = Bytes48;
pub type KZGProof = Bytes48;
pub type ExecutionAddress = Bytes20;
pub type PayloadId = Bytes8;

// Constants that are the same in every preset (phase0 … fulu).
pub const JUSTIFICATION_BITS_LENGTH: usize = 4;
pub const DEPOSIT_CONTRACT_TREE_DEPTH: usize = 32;
pub const HISTORICAL_ROOTS_LIMIT: usize = 16_777_216;
pub const VALIDATOR_REGISTRY_LIMIT: usize = 1_099_511_627_776;
pub const MAX_VALIDATORS_PER_COMMITTEE: usize = 2048;
pub const MAX_PROPOSER_SLASHINGS: usize = 16;
pub const MAX_DEPOSITS: usize = 16;
pub const MAX_VOLUNTARY_EXITS: usize = 16;
pub const MAX_BLS_TO_EXECUTION_CHANGES: usize = 16;
pub const MAX_ATTESTER_SLASHINGS_ELECTRA: usize = 1;
pub const MAX_ATTESTATIONS_ELECTRA: usize = 8;
pub const SYNC_COMMITTEE_SUBNET_COUNT: usize = 4;
pub const MAX_BYTES_PER_TRANSACTION: usize = 1_073_741_824;
pub const MAX_TRANSACTIONS_PER_PAYLOAD: usize = 1_048_576;
pub const BYTES_PER_LOGS_BLOOM: usize = 256;
pub const MAX_EXTRA_DATA_BYTES: usize = 32;
pub const BYTES_PER_FIELD_ELEMENT: usize = 32;
pub const FIELD_ELEMENTS_PER_BLOB: usize = 4096;
pub const FIELD_ELEMENTS_PER_CELL: usize = 64;
pub const BYTES_PER_CELL: usize = BYTES_PER_FIELD_ELEMENT * FIELD_ELEMENTS_PER_CELL;
pub const MAX_BLOB_COMMITMENTS_PER_BLOCK: usize = 4096;
pub const MAX_DEPOSIT_REQUESTS_PER_PAYLOAD: usize = 8192;
pub const MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD: usize = 16;
pub const MAX_CONSOLIDATION_REQUESTS_PER_PAYLOAD: usize = 2;
pub const PENDING_DEPOSITS_LIMIT: usize = 134_217_728;
pub const NUMBER_OF_COLUMNS: usize = 128;
pub const KZG_COMMITMENTS_INCLUSION_PROOF_DEPTH: usize = 4;
pub const MIN_SEED_LOOKAHEAD: usize = 1;

// Light-client branch depths: floorlog2 of the Electra generalized indices.
pub const FINALIZED_ROOT_GINDEX_ELECTRA: u64 = 169;
pub const CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA: u64 = 86;
pub const NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA: u64 = 87;
pub const EXECUTION_PAYLOAD_GINDEX: u64 = 25;
pub const FINALITY_BRANCH_DEPTH: usize = 7;
pub const CURRENT_SYNC_COMMITTEE_BRANCH_DEPTH: usize = 6;
pub const NEXT_SYNC_COMMITTEE_BRANCH_DEPTH: usize = 6;
pub const EXECUTION_BRANCH_DEPTH: usize = 4;

pub type LogsBloom = ByteVector<BYTES_PER_LOGS_BLOOM>;
pub type ExtraData = List<u8, MAX_EXTRA_DATA_BYTES>;
pub type Transaction = List<u8, MAX_BYTES_PER_TRANSACTION>;
pub type Cell = ByteVector<BYTES_PER_CELL>;

#[cfg(test)]
mod tests {
    use super::*;

    fn floorlog2(x: u64) -> usize {
        (63 - x.leading_zeros()) as usize
    }

    #[test]
    fn branch_depths_match_gindices() {
        assert_eq!(
            FINALITY_BRANCH_DEPTH,
            floorlog2(FINALIZED_ROOT_GINDEX_ELECTRA)
        );
        assert_eq!(
            CURRENT_SYNC_COMMITTEE_BRANCH_DEPTH,
            floorlog2(CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA)
        );
        assert_eq!(
            NEXT_SYNC_COMMITTEE_BRANCH_DEPTH,
            floorlog2(NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA)
        );
        assert_eq!(EXECUTION_BRANCH_DEPTH, floorlog2(EXECUTION_PAYLOAD_GINDEX));
    }
}
