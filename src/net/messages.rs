//! The req/resp messages of the eth2 wire (`specs/phase0/p2p-interface.md` and the
//! altair … fulu modifications): the protocol ids the node speaks ([`Protocol`]), the
//! SSZ containers of their requests and responses, and each type's SSZ size bounds
//! ([`SszBounds`]), which the codec checks a declared length against before it
//! decompresses or allocates anything.
//!
//! Single-field messages are their field (`Ping`, `Goodbye` are a `uint64`,
//! `BeaconBlocksByRootRequest` a list of roots), as the ssz_snappy encoding requires.

use crate::ssz_container;
use crate::types::common::{DataColumnSidecar, DataColumnsByRootIdentifier};
use crate::types::primitives::*;
use crate::types::ssz::{ssz_encode, ByteVector};
use crate::types::{mainnet, minimal, Preset};
use ssz_rs::{Bitlist, Bitvector, List, Vector, U256};
use std::fmt;

/// `MAX_PAYLOAD_SIZE`: the most uncompressed bytes of one request or response chunk.
pub const MAX_PAYLOAD_SIZE: usize = 10 * (1 << 20);
/// `MAX_REQUEST_BLOCKS_DENEB`: the most blocks (or roots) of one request.
pub const MAX_REQUEST_BLOCKS_DENEB: usize = 128;
/// `compute_max_request_data_column_sidecars()` = `MAX_REQUEST_BLOCKS_DENEB * NUMBER_OF_COLUMNS`.
pub const MAX_REQUEST_DATA_COLUMN_SIDECARS: usize = MAX_REQUEST_BLOCKS_DENEB * NUMBER_OF_COLUMNS;
/// The bound of `ErrorMessage` (`List[byte, 256]`).
pub const MAX_ERROR_MESSAGE_LEN: usize = 256;
/// `ATTESTATION_SUBNET_COUNT` (the length of `Attnets`).
pub const ATTESTATION_SUBNET_COUNT: usize = 64;

/// The protocol id prefix of every req/resp method.
pub const PROTOCOL_PREFIX: &str = "/eth2/beacon_chain/req";

pub const STATUS_V1: &str = "/eth2/beacon_chain/req/status/1/ssz_snappy";
pub const STATUS_V2: &str = "/eth2/beacon_chain/req/status/2/ssz_snappy";
pub const GOODBYE_V1: &str = "/eth2/beacon_chain/req/goodbye/1/ssz_snappy";
pub const PING_V1: &str = "/eth2/beacon_chain/req/ping/1/ssz_snappy";
pub const METADATA_V2: &str = "/eth2/beacon_chain/req/metadata/2/ssz_snappy";
pub const METADATA_V3: &str = "/eth2/beacon_chain/req/metadata/3/ssz_snappy";
pub const BEACON_BLOCKS_BY_RANGE_V2: &str =
    "/eth2/beacon_chain/req/beacon_blocks_by_range/2/ssz_snappy";
pub const BEACON_BLOCKS_BY_ROOT_V2: &str =
    "/eth2/beacon_chain/req/beacon_blocks_by_root/2/ssz_snappy";
pub const DATA_COLUMN_SIDECARS_BY_RANGE_V1: &str =
    "/eth2/beacon_chain/req/data_column_sidecars_by_range/1/ssz_snappy";
pub const DATA_COLUMN_SIDECARS_BY_ROOT_V1: &str =
    "/eth2/beacon_chain/req/data_column_sidecars_by_root/1/ssz_snappy";

// ---------------------------------------------------------------------------------------
// SSZ size bounds
// ---------------------------------------------------------------------------------------

/// The SSZ size bounds of a type ("What are SSZ type size bounds?" in the phase0 p2p
/// spec): the shortest and longest valid encodings, saturating at `usize::MAX`.
pub trait SszBounds {
    /// Whether the type is fixed-size (then `MIN == MAX`).
    const FIXED: bool;
    /// The length of the shortest valid encoding.
    const MIN: usize;
    /// The length of the longest valid encoding (saturating).
    const MAX: usize;

    /// `(MIN, MAX)`.
    fn ssz_bounds() -> (usize, usize) {
        (Self::MIN, Self::MAX)
    }
}

/// Bytes a field of type `T` takes in a container: its size, or an offset and its value.
pub const fn field_min<T: SszBounds>() -> usize {
    if T::FIXED {
        T::MIN
    } else {
        T::MIN.saturating_add(4)
    }
}

/// The most bytes a field of type `T` takes in a container.
pub const fn field_max<T: SszBounds>() -> usize {
    if T::FIXED {
        T::MAX
    } else {
        T::MAX.saturating_add(4)
    }
}

macro_rules! fixed_bounds {
    ($($t:ty => $n:expr),* $(,)?) => {$(
        impl SszBounds for $t {
            const FIXED: bool = true;
            const MIN: usize = $n;
            const MAX: usize = $n;
        }
    )*};
}
fixed_bounds!(u8 => 1, u16 => 2, u32 => 4, u64 => 8, u128 => 16, bool => 1, U256 => 32);

impl<const N: usize> SszBounds for ByteVector<N> {
    const FIXED: bool = true;
    const MIN: usize = N;
    const MAX: usize = N;
}

impl<const N: usize> SszBounds for Bitvector<N> {
    const FIXED: bool = true;
    const MIN: usize = N.div_ceil(8);
    const MAX: usize = N.div_ceil(8);
}

impl<const N: usize> SszBounds for Bitlist<N> {
    const FIXED: bool = false;
    // The delimiter bit needs one byte even for an empty list.
    const MIN: usize = 1;
    const MAX: usize = N / 8 + 1;
}

impl<T: SszBounds + ssz_rs::SimpleSerialize, const N: usize> SszBounds for List<T, N> {
    const FIXED: bool = false;
    const MIN: usize = 0;
    const MAX: usize = N.saturating_mul(field_max::<T>());
}

impl<T: SszBounds + ssz_rs::SimpleSerialize, const N: usize> SszBounds for Vector<T, N> {
    const FIXED: bool = T::FIXED;
    const MIN: usize = N.saturating_mul(field_min::<T>());
    const MAX: usize = N.saturating_mul(field_max::<T>());
}

/// Implements [`SszBounds`] for a container from its field types, in order.
macro_rules! container_bounds {
    ($($name:ty { $($ty:ty),* $(,)? })*) => {$(
        impl SszBounds for $name {
            const FIXED: bool = true $( && <$ty as SszBounds>::FIXED )*;
            const MIN: usize = 0 $( + field_min::<$ty>() )*;
            const MAX: usize = 0usize $( .saturating_add(field_max::<$ty>()) )*;
        }
    )*};
}

// ---------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------

/// `Attnets`.
pub type Attnets = Bitvector<ATTESTATION_SUBNET_COUNT>;
/// `Syncnets`.
pub type Syncnets = Bitvector<SYNC_COMMITTEE_SUBNET_COUNT>;

ssz_container! {
    /// Status v1 (phase0), request and response.
    pub struct StatusV1 {
        pub fork_digest: ForkDigest,
        pub finalized_root: Root,
        pub finalized_epoch: Epoch,
        pub head_root: Root,
        pub head_slot: Slot,
    }
}

ssz_container! {
    /// Status v2 (Fulu), request and response: v1 and `earliest_available_slot`.
    pub struct StatusV2 {
        pub fork_digest: ForkDigest,
        pub finalized_root: Root,
        pub finalized_epoch: Epoch,
        pub head_root: Root,
        pub head_slot: Slot,
        pub earliest_available_slot: Slot,
    }
}

ssz_container! {
    /// MetaData v2 (Altair), the response of GetMetaData v2.
    pub struct MetaDataV2 {
        pub seq_number: u64,
        pub attnets: Attnets,
        pub syncnets: Syncnets,
    }
}

ssz_container! {
    /// MetaData v3 (Fulu), the response of GetMetaData v3: v2 and `custody_group_count`.
    pub struct MetaDataV3 {
        pub seq_number: u64,
        pub attnets: Attnets,
        pub syncnets: Syncnets,
        pub custody_group_count: u64,
    }
}

ssz_container! {
    /// BeaconBlocksByRange v2 request (`step` is deprecated and must be 1).
    pub struct BeaconBlocksByRangeRequestV2 {
        pub start_slot: Slot,
        pub count: u64,
        pub step: u64,
    }
}

ssz_container! {
    /// DataColumnSidecarsByRange v1 request (Fulu).
    pub struct DataColumnSidecarsByRangeRequest {
        pub start_slot: Slot,
        pub count: u64,
        pub columns: DataColumnIndices,
    }
}

/// Ping v1, request and response: the sender's `MetaData.seq_number`.
pub type Ping = u64;
/// Goodbye v1: the reason code (see [`goodbye`]).
pub type Goodbye = u64;
/// `BeaconBlockRoots` (Deneb): the BeaconBlocksByRoot v2 request.
pub type BeaconBlocksByRootRequest = List<Root, MAX_REQUEST_BLOCKS_DENEB>;
/// `DataColumnIndices` (Fulu).
pub type DataColumnIndices = List<ColumnIndex, NUMBER_OF_COLUMNS>;
/// `DataColumnsByRootIdentifiers` (Fulu): the DataColumnSidecarsByRoot v1 request.
pub type DataColumnSidecarsByRootRequest =
    List<DataColumnsByRootIdentifier, MAX_REQUEST_BLOCKS_DENEB>;
/// BeaconBlocksByRange request (v1 and v2 share it).
pub type BeaconBlocksByRangeRequest = BeaconBlocksByRangeRequestV2;
/// `ErrorMessage`: the payload of a response chunk with a non-zero result.
pub type ErrorMessage = List<u8, MAX_ERROR_MESSAGE_LEN>;

container_bounds! {
    StatusV1 { ForkDigest, Root, Epoch, Root, Slot }
    StatusV2 { ForkDigest, Root, Epoch, Root, Slot, Slot }
    MetaDataV2 { u64, Attnets, Syncnets }
    MetaDataV3 { u64, Attnets, Syncnets, u64 }
    BeaconBlocksByRangeRequestV2 { Slot, u64, u64 }
    DataColumnSidecarsByRangeRequest { Slot, u64, DataColumnIndices }
    DataColumnsByRootIdentifier { Root, DataColumnIndices }
    crate::types::common::BeaconBlockHeader { Slot, ValidatorIndex, Root, Root, Root }
    crate::types::common::SignedBeaconBlockHeader {
        crate::types::common::BeaconBlockHeader, BLSSignature
    }
    DataColumnSidecar {
        ColumnIndex,
        List<Cell, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        List<KZGCommitment, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        List<KZGProof, MAX_BLOB_COMMITMENTS_PER_BLOCK>,
        crate::types::common::SignedBeaconBlockHeader,
        Vector<Bytes32, KZG_COMMITMENTS_INCLUSION_PROOF_DEPTH>,
    }
}

// A data column sidecar always fits in one chunk.
const _: () = assert!(DataColumnSidecar::MAX < MAX_PAYLOAD_SIZE);

/// Goodbye reason codes.
pub mod goodbye {
    /// 1: client shut down.
    pub const CLIENT_SHUTDOWN: u64 = 1;
    /// 2: irrelevant network.
    pub const IRRELEVANT_NETWORK: u64 = 2;
    /// 3: fault/error.
    pub const FAULT_OR_ERROR: u64 = 3;
    // Codes above 128 are client-defined; these are the ones Lighthouse and Prysm send.
    /// 128: unable to verify network (client extension).
    pub const UNABLE_TO_VERIFY_NETWORK: u64 = 128;
    /// 129: too many peers (client extension).
    pub const TOO_MANY_PEERS: u64 = 129;
    /// 250: peer score too low (client extension).
    pub const BAD_SCORE: u64 = 250;
    /// 251: peer banned (client extension).
    pub const BANNED: u64 = 251;
    /// 252: peer's IP banned (client extension).
    pub const BANNED_IP: u64 = 252;

    /// A short name for a reason code (`"reserved"` for 4..=127, `"unknown"` otherwise).
    pub fn reason_name(code: u64) -> &'static str {
        match code {
            CLIENT_SHUTDOWN => "client shutdown",
            IRRELEVANT_NETWORK => "irrelevant network",
            FAULT_OR_ERROR => "fault/error",
            UNABLE_TO_VERIFY_NETWORK => "unable to verify network",
            TOO_MANY_PEERS => "too many peers",
            BAD_SCORE => "bad score",
            BANNED => "banned",
            BANNED_IP => "banned IP",
            4..=127 => "reserved",
            _ => "unknown",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Protocols
// ---------------------------------------------------------------------------------------

/// Whether a method answers with one response chunk or a stream of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// Exactly one `response_chunk`.
    Single,
    /// Zero or more `response_chunk`s, one per list item.
    Stream,
}

/// Every req/resp protocol the node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    StatusV1,
    StatusV2,
    GoodbyeV1,
    PingV1,
    MetaDataV2,
    MetaDataV3,
    BeaconBlocksByRangeV2,
    BeaconBlocksByRootV2,
    DataColumnSidecarsByRangeV1,
    DataColumnSidecarsByRootV1,
}

impl Protocol {
    /// Every protocol, in declaration order.
    pub const ALL: [Protocol; 10] = [
        Protocol::StatusV1,
        Protocol::StatusV2,
        Protocol::GoodbyeV1,
        Protocol::PingV1,
        Protocol::MetaDataV2,
        Protocol::MetaDataV3,
        Protocol::BeaconBlocksByRangeV2,
        Protocol::BeaconBlocksByRootV2,
        Protocol::DataColumnSidecarsByRangeV1,
        Protocol::DataColumnSidecarsByRootV1,
    ];

    /// The full libp2p protocol id, `/eth2/beacon_chain/req/<name>/<version>/ssz_snappy`.
    pub fn protocol_id(self) -> &'static str {
        match self {
            Protocol::StatusV1 => STATUS_V1,
            Protocol::StatusV2 => STATUS_V2,
            Protocol::GoodbyeV1 => GOODBYE_V1,
            Protocol::PingV1 => PING_V1,
            Protocol::MetaDataV2 => METADATA_V2,
            Protocol::MetaDataV3 => METADATA_V3,
            Protocol::BeaconBlocksByRangeV2 => BEACON_BLOCKS_BY_RANGE_V2,
            Protocol::BeaconBlocksByRootV2 => BEACON_BLOCKS_BY_ROOT_V2,
            Protocol::DataColumnSidecarsByRangeV1 => DATA_COLUMN_SIDECARS_BY_RANGE_V1,
            Protocol::DataColumnSidecarsByRootV1 => DATA_COLUMN_SIDECARS_BY_ROOT_V1,
        }
    }

    /// The protocol with this id, if the node speaks it.
    pub fn from_protocol_id(id: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.protocol_id() == id)
    }

    /// The `MessageName` segment (`status`, `beacon_blocks_by_range`, …).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::StatusV1 | Protocol::StatusV2 => "status",
            Protocol::GoodbyeV1 => "goodbye",
            Protocol::PingV1 => "ping",
            Protocol::MetaDataV2 | Protocol::MetaDataV3 => "metadata",
            Protocol::BeaconBlocksByRangeV2 => "beacon_blocks_by_range",
            Protocol::BeaconBlocksByRootV2 => "beacon_blocks_by_root",
            Protocol::DataColumnSidecarsByRangeV1 => "data_column_sidecars_by_range",
            Protocol::DataColumnSidecarsByRootV1 => "data_column_sidecars_by_root",
        }
    }

    /// The `SchemaVersion` segment.
    pub fn version(self) -> u8 {
        match self {
            Protocol::StatusV1
            | Protocol::GoodbyeV1
            | Protocol::PingV1
            | Protocol::DataColumnSidecarsByRangeV1
            | Protocol::DataColumnSidecarsByRootV1 => 1,
            Protocol::StatusV2
            | Protocol::MetaDataV2
            | Protocol::BeaconBlocksByRangeV2
            | Protocol::BeaconBlocksByRootV2 => 2,
            Protocol::MetaDataV3 => 3,
        }
    }

    /// Whether successful response chunks carry `ForkDigest` context bytes.
    pub fn has_context_bytes(self) -> bool {
        matches!(
            self,
            Protocol::BeaconBlocksByRangeV2
                | Protocol::BeaconBlocksByRootV2
                | Protocol::DataColumnSidecarsByRangeV1
                | Protocol::DataColumnSidecarsByRootV1
        )
    }

    /// One response chunk, or a stream of them.
    pub fn response_kind(self) -> ResponseKind {
        if self.max_response_chunks() == 1 {
            ResponseKind::Single
        } else {
            ResponseKind::Stream
        }
    }

    /// The most response chunks a request may get (a given request may allow fewer:
    /// its `count`, its number of roots or columns). Goodbye's is 1 as the spec writes,
    /// though clients usually close the stream without answering.
    pub fn max_response_chunks(self) -> usize {
        match self {
            Protocol::BeaconBlocksByRangeV2 | Protocol::BeaconBlocksByRootV2 => {
                MAX_REQUEST_BLOCKS_DENEB
            }
            Protocol::DataColumnSidecarsByRangeV1 | Protocol::DataColumnSidecarsByRootV1 => {
                MAX_REQUEST_DATA_COLUMN_SIDECARS
            }
            _ => 1,
        }
    }

    /// Whether the request has content (GetMetaData has none: the requester opens the
    /// stream and closes its write side).
    pub fn has_request_body(self) -> bool {
        self.request_bounds().is_some()
    }

    /// The SSZ bounds of the request, `None` for a request without content.
    pub fn request_bounds(self) -> Option<(usize, usize)> {
        Some(match self {
            Protocol::StatusV1 => StatusV1::ssz_bounds(),
            Protocol::StatusV2 => StatusV2::ssz_bounds(),
            Protocol::GoodbyeV1 => Goodbye::ssz_bounds(),
            Protocol::PingV1 => Ping::ssz_bounds(),
            Protocol::MetaDataV2 | Protocol::MetaDataV3 => return None,
            Protocol::BeaconBlocksByRangeV2 => BeaconBlocksByRangeRequestV2::ssz_bounds(),
            Protocol::BeaconBlocksByRootV2 => BeaconBlocksByRootRequest::ssz_bounds(),
            Protocol::DataColumnSidecarsByRangeV1 => DataColumnSidecarsByRangeRequest::ssz_bounds(),
            Protocol::DataColumnSidecarsByRootV1 => DataColumnSidecarsByRootRequest::ssz_bounds(),
        })
    }

    /// The SSZ bounds of a successful response chunk of a protocol without context
    /// bytes; `None` for those whose chunk type depends on the fork (see
    /// [`ChunkBounds`]).
    pub fn response_bounds(self) -> Option<(usize, usize)> {
        Some(match self {
            Protocol::StatusV1 => StatusV1::ssz_bounds(),
            Protocol::StatusV2 => StatusV2::ssz_bounds(),
            Protocol::GoodbyeV1 => Goodbye::ssz_bounds(),
            Protocol::PingV1 => Ping::ssz_bounds(),
            Protocol::MetaDataV2 => MetaDataV2::ssz_bounds(),
            Protocol::MetaDataV3 => MetaDataV3::ssz_bounds(),
            _ => return None,
        })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol_id())
    }
}

/// The SSZ bounds of the fork-dependent response chunks, for a preset (the node
/// computes these once; the network layer only moves the numbers). A bound above
/// `MAX_PAYLOAD_SIZE` is capped to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkBounds {
    /// Fulu (= Electra) `SignedBeaconBlock`. Its true maximum (transactions of up to
    /// 2**30 bytes) is far above `MAX_PAYLOAD_SIZE`.
    pub signed_beacon_block: (usize, usize),
    /// Fulu `DataColumnSidecar` (the same in both presets).
    pub data_column_sidecar: (usize, usize),
}

impl ChunkBounds {
    pub fn for_preset(preset: Preset) -> Self {
        // A default value has every list empty: the shortest encoding.
        let block_min = match preset {
            Preset::Mainnet => encoded_len(&mainnet::SignedBeaconBlock::default()),
            Preset::Minimal => encoded_len(&minimal::SignedBeaconBlock::default()),
        };
        ChunkBounds {
            signed_beacon_block: (block_min, MAX_PAYLOAD_SIZE),
            data_column_sidecar: (
                DataColumnSidecar::MIN,
                DataColumnSidecar::MAX.min(MAX_PAYLOAD_SIZE),
            ),
        }
    }
}

fn encoded_len<T: ssz_rs::Serialize>(value: &T) -> usize {
    ssz_encode(value).map(|b| b.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ssz::SszDecode;

    fn min_of<T: ssz_rs::Serialize + Default>() -> usize {
        ssz_encode(&T::default()).unwrap().len()
    }

    #[test]
    fn bounds_match_the_shortest_encoding() {
        assert_eq!(StatusV1::ssz_bounds(), (84, 84));
        assert_eq!(StatusV2::ssz_bounds(), (92, 92));
        assert_eq!(MetaDataV2::ssz_bounds(), (17, 17));
        assert_eq!(MetaDataV3::ssz_bounds(), (25, 25));
        assert_eq!(Ping::ssz_bounds(), (8, 8));
        assert_eq!(BeaconBlocksByRangeRequestV2::ssz_bounds(), (24, 24));
        assert_eq!(BeaconBlocksByRootRequest::ssz_bounds(), (0, 128 * 32));
        assert_eq!(
            DataColumnSidecarsByRangeRequest::ssz_bounds(),
            (20, 20 + 128 * 8)
        );
        assert_eq!(
            DataColumnsByRootIdentifier::ssz_bounds(),
            (36, 36 + 128 * 8)
        );
        assert_eq!(
            DataColumnSidecarsByRootRequest::ssz_bounds(),
            (0, 128 * (4 + 36 + 128 * 8))
        );
        assert_eq!(ErrorMessage::ssz_bounds(), (0, 256));
        assert_eq!(DataColumnSidecar::MIN, 8 + 3 * 4 + 208 + 4 * 32);
        assert_eq!(
            DataColumnSidecar::MAX,
            DataColumnSidecar::MIN + 4096 * (2048 + 48 + 48)
        );
        // The container bounds list the fields the containers really have.
        assert_eq!(StatusV1::MIN, min_of::<StatusV1>());
        assert_eq!(StatusV2::MIN, min_of::<StatusV2>());
        assert_eq!(MetaDataV2::MIN, min_of::<MetaDataV2>());
        assert_eq!(MetaDataV3::MIN, min_of::<MetaDataV3>());
        assert_eq!(
            BeaconBlocksByRangeRequestV2::MIN,
            min_of::<BeaconBlocksByRangeRequestV2>()
        );
        assert_eq!(
            DataColumnSidecarsByRangeRequest::MIN,
            min_of::<DataColumnSidecarsByRangeRequest>()
        );
        assert_eq!(
            DataColumnsByRootIdentifier::MIN,
            min_of::<DataColumnsByRootIdentifier>()
        );
        assert_eq!(DataColumnSidecar::MIN, min_of::<DataColumnSidecar>());
    }

    fn full_identifier() -> DataColumnsByRootIdentifier {
        DataColumnsByRootIdentifier {
            block_root: [7; 32].into(),
            columns: List::try_from((0..128u64).collect::<Vec<_>>()).unwrap(),
        }
    }

    #[test]
    fn bounds_match_the_longest_encoding() {
        let roots = BeaconBlocksByRootRequest::try_from(vec![Root::from([1; 32]); 128]).unwrap();
        assert_eq!(
            ssz_encode(&roots).unwrap().len(),
            BeaconBlocksByRootRequest::MAX
        );
        let by_range = DataColumnSidecarsByRangeRequest {
            start_slot: 1,
            count: 2,
            columns: full_identifier().columns,
        };
        assert_eq!(
            ssz_encode(&by_range).unwrap().len(),
            DataColumnSidecarsByRangeRequest::MAX
        );
        let by_root =
            DataColumnSidecarsByRootRequest::try_from(vec![full_identifier(); 128]).unwrap();
        assert_eq!(
            ssz_encode(&by_root).unwrap().len(),
            DataColumnSidecarsByRootRequest::MAX
        );
        let msg = ErrorMessage::try_from(vec![b'x'; 256]).unwrap();
        assert_eq!(ssz_encode(&msg).unwrap().len(), ErrorMessage::MAX);
        let n = MAX_BLOB_COMMITMENTS_PER_BLOCK;
        let sidecar = DataColumnSidecar {
            column: List::try_from(vec![Cell::default(); n]).unwrap(),
            kzg_commitments: List::try_from(vec![KZGCommitment::default(); n]).unwrap(),
            kzg_proofs: List::try_from(vec![KZGProof::default(); n]).unwrap(),
            ..Default::default()
        };
        let bytes = ssz_encode(&sidecar).unwrap();
        assert_eq!(bytes.len(), DataColumnSidecar::MAX);
        assert_eq!(DataColumnSidecar::ssz_decode(&bytes).unwrap(), sidecar);
    }

    #[test]
    fn generic_bounds() {
        assert_eq!(<Bitlist<2048>>::ssz_bounds(), (1, 257));
        assert_eq!(<Bitvector<4>>::ssz_bounds(), (1, 1));
        assert_eq!(<Vector<u64, 3>>::ssz_bounds(), (24, 24));
        assert_eq!(<Vector<List<u8, 2>, 3>>::ssz_bounds(), (12, 18));
        // Saturating, not overflowing.
        assert_eq!(<List<List<u8, { 1 << 30 }>, { 1 << 40 }>>::MAX, usize::MAX);
    }

    #[test]
    fn containers_round_trip() {
        let status = StatusV2 {
            fork_digest: [1, 2, 3, 4].into(),
            finalized_root: [5; 32].into(),
            finalized_epoch: 6,
            head_root: [7; 32].into(),
            head_slot: 8,
            earliest_available_slot: 9,
        };
        let bytes = ssz_encode(&status).unwrap();
        assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
        assert_eq!(&bytes[84..], &9u64.to_le_bytes());
        assert_eq!(StatusV2::ssz_decode(&bytes).unwrap(), status);
        let mut meta = MetaDataV3 {
            seq_number: 3,
            custody_group_count: 4,
            ..Default::default()
        };
        meta.attnets.set(63, true);
        meta.syncnets.set(1, true);
        let bytes = ssz_encode(&meta).unwrap();
        assert_eq!(bytes[15], 0x80);
        assert_eq!(bytes[16], 0x02);
        assert_eq!(MetaDataV3::ssz_decode(&bytes).unwrap(), meta);
        // Syncnets has 4 bits: the upper bits of its byte must be zero.
        let mut bad = bytes.clone();
        bad[16] = 0x10;
        assert!(MetaDataV3::ssz_decode(&bad).is_err());
    }

    #[test]
    fn protocols() {
        for p in Protocol::ALL {
            let id = p.protocol_id();
            assert_eq!(
                id,
                format!("{PROTOCOL_PREFIX}/{}/{}/ssz_snappy", p.name(), p.version())
            );
            assert_eq!(Protocol::from_protocol_id(id), Some(p));
            assert_eq!(p.response_bounds().is_none(), p.has_context_bytes());
            assert_eq!(
                p.response_kind() == ResponseKind::Stream,
                p.has_context_bytes()
            );
        }
        assert_eq!(
            Protocol::from_protocol_id("/eth2/beacon_chain/req/status/1/ssz"),
            None
        );
        assert!(!Protocol::MetaDataV3.has_request_body());
        assert_eq!(
            Protocol::DataColumnSidecarsByRootV1.max_response_chunks(),
            16384
        );
        assert_eq!(Protocol::BeaconBlocksByRootV2.max_response_chunks(), 128);
        assert_eq!(
            goodbye::reason_name(goodbye::TOO_MANY_PEERS),
            "too many peers"
        );
        assert_eq!(goodbye::reason_name(5), "reserved");
    }

    #[test]
    fn chunk_bounds() {
        for preset in Preset::ALL {
            let b = ChunkBounds::for_preset(preset);
            assert_eq!(b.signed_beacon_block.1, MAX_PAYLOAD_SIZE);
            assert_eq!(b.data_column_sidecar, DataColumnSidecar::ssz_bounds());
            // A default block decodes from exactly its minimum, not from one byte less.
            let bytes = match preset {
                Preset::Mainnet => ssz_encode(&mainnet::SignedBeaconBlock::default()),
                Preset::Minimal => ssz_encode(&minimal::SignedBeaconBlock::default()),
            }
            .unwrap();
            assert_eq!(bytes.len(), b.signed_beacon_block.0);
            let short = &bytes[..bytes.len() - 1];
            let err = match preset {
                Preset::Mainnet => mainnet::SignedBeaconBlock::ssz_decode(short).err(),
                Preset::Minimal => minimal::SignedBeaconBlock::ssz_decode(short).err(),
            };
            assert!(err.is_some());
        }
    }
}
