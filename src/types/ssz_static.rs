//! Type name → type dispatch, written once for the `ssz_static` conformance runner and
//! for `quasar tool hash-tree-root --preset P --type NAME FILE`.

use super::ssz::{hash_tree_root, ssz_encode, SszDecode};
use super::{mainnet, minimal, Preset, TypeError};

/// The result of decoding bytes as a type: its canonical re-encoding and its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roundtrip {
    /// The value encoded again; equal to the input for canonical input.
    pub encoded: Vec<u8>,
    /// `hash_tree_root` of the value.
    pub root: [u8; 32],
}

/// The default cap on a decompressed `.ssz_snappy` file: 1 GiB.
pub const MAX_DECOMPRESSED_LEN: usize = 1 << 30;

fn roundtrip_as<T: SszDecode>(type_name: &str, bytes: &[u8]) -> Result<Roundtrip, TypeError> {
    let mut value = T::ssz_decode(bytes).map_err(|source| TypeError::Decode {
        type_name: type_name.to_string(),
        source,
    })?;
    let encoded = ssz_encode(&value).map_err(|e| TypeError::Encode {
        type_name: type_name.to_string(),
        message: e.to_string(),
    })?;
    let root = hash_tree_root(&mut value).map_err(|e| TypeError::Merkleize {
        type_name: type_name.to_string(),
        message: e.to_string(),
    })?;
    Ok(Roundtrip { encoded, root })
}

macro_rules! ssz_static_types {
    ($($t:ident),* $(,)?) => {
        /// Every type name the dispatch knows: all containers of the `ssz_static`
        /// vectors of Fulu, in the spec's spelling.
        pub const TYPE_NAMES: &[&str] = &[$(stringify!($t)),*];

        fn dispatch_minimal(type_name: &str, bytes: &[u8]) -> Result<Roundtrip, TypeError> {
            match type_name {
                $( stringify!($t) => roundtrip_as::<minimal::$t>(type_name, bytes), )*
                other => Err(TypeError::UnknownType(other.to_string())),
            }
        }

        fn dispatch_mainnet(type_name: &str, bytes: &[u8]) -> Result<Roundtrip, TypeError> {
            match type_name {
                $( stringify!($t) => roundtrip_as::<mainnet::$t>(type_name, bytes), )*
                other => Err(TypeError::UnknownType(other.to_string())),
            }
        }
    };
}

ssz_static_types! {
    AggregateAndProof,
    Attestation,
    AttestationData,
    AttesterSlashing,
    BLSToExecutionChange,
    BeaconBlock,
    BeaconBlockBody,
    BeaconBlockHeader,
    BeaconState,
    Checkpoint,
    ConsolidationRequest,
    ContributionAndProof,
    DataColumnSidecar,
    DataColumnsByRootIdentifier,
    Deposit,
    DepositData,
    DepositMessage,
    DepositRequest,
    Eth1Block,
    Eth1Data,
    ExecutionPayload,
    ExecutionPayloadHeader,
    ExecutionRequests,
    Fork,
    ForkData,
    HistoricalSummary,
    IndexedAttestation,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    MatrixEntry,
    PartialDataColumnGroupID,
    PartialDataColumnHeader,
    PartialDataColumnPartsMetadata,
    PartialDataColumnSidecar,
    PendingConsolidation,
    PendingDeposit,
    PendingPartialWithdrawal,
    PowBlock,
    ProposerSlashing,
    SignedAggregateAndProof,
    SignedBLSToExecutionChange,
    SignedBeaconBlock,
    SignedBeaconBlockHeader,
    SignedContributionAndProof,
    SignedVoluntaryExit,
    SigningData,
    SingleAttestation,
    SyncAggregate,
    SyncAggregatorSelectionData,
    SyncCommittee,
    SyncCommitteeContribution,
    SyncCommitteeMessage,
    Validator,
    VoluntaryExit,
    Withdrawal,
    WithdrawalRequest,
}

/// Whether `type_name` is one of [`TYPE_NAMES`].
pub fn is_known_type(type_name: &str) -> bool {
    TYPE_NAMES.contains(&type_name)
}

/// Decodes `bytes` (plain SSZ) as `type_name` under `preset`, encodes the value again
/// and computes its hash tree root.
pub fn roundtrip(preset: Preset, type_name: &str, bytes: &[u8]) -> Result<Roundtrip, TypeError> {
    match preset {
        Preset::Minimal => dispatch_minimal(type_name, bytes),
        Preset::Mainnet => dispatch_mainnet(type_name, bytes),
    }
}

/// The hash tree root of `bytes` (plain SSZ) decoded as `type_name` under `preset`.
pub fn decode_and_root(
    preset: Preset,
    type_name: &str,
    bytes: &[u8],
) -> Result<[u8; 32], TypeError> {
    Ok(roundtrip(preset, type_name, bytes)?.root)
}

/// Decompresses raw (unframed) snappy, as in `.ssz_snappy` files, refusing a declared
/// length over `max_len` before allocating.
pub fn decompress_snappy(bytes: &[u8], max_len: usize) -> Result<Vec<u8>, TypeError> {
    let len = snap::raw::decompress_len(bytes).map_err(|e| TypeError::Snappy(e.to_string()))?;
    if len > max_len {
        return Err(TypeError::Snappy(format!(
            "declared length {len} exceeds the cap of {max_len} bytes"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(bytes)
        .map_err(|e| TypeError::Snappy(e.to_string()))
}

/// `0x` followed by the 64 hex digits of `root`.
pub fn root_hex(root: &[u8; 32]) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    for b in root {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
