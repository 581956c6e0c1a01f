//! Column families, keys and the byte encodings of the small records.
//!
//! Blocks and states are stored as the SSZ bytes the caller hands in; the store never
//! decodes them except for [`signed_block_slot`], which reads the slot at its fixed,
//! fork-independent position.

use super::error::{Result, StoreError};

/// A 32-byte root (block root or state root).
pub type Root = [u8; 32];

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// Block root → SSZ of the `SignedBeaconBlock`.
pub const CF_BLOCKS: &str = "blocks";
/// State root → SSZ snapshot of the `BeaconState`.
pub const CF_STATES: &str = "states";
/// State root → [`StateSummary`] (slot and latest block root).
pub const CF_STATE_SUMMARIES: &str = "state_summaries";
/// Slot (big-endian u64) → canonical block root.
pub const CF_BLOCK_SLOTS: &str = "block_slots";
/// Named singletons: head, checkpoints, schema version.
pub const CF_METADATA: &str = "metadata";
/// First validator index (big-endian u32) → a checksummed chunk of the validated pubkey
/// table (`chain::pubkeys`): a cache, checked against the registry when it is loaded.
pub const CF_PUBKEYS: &str = "pubkeys";

/// Every column family of the schema, in creation order.
pub const COLUMN_FAMILIES: [&str; 6] = [
    CF_BLOCKS,
    CF_STATES,
    CF_STATE_SUMMARIES,
    CF_BLOCK_SLOTS,
    CF_METADATA,
    CF_PUBKEYS,
];

/// Metadata key of the schema version (u64 big-endian).
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// Metadata key of the head ([`Head`]).
pub const META_HEAD: &[u8] = b"head";
/// Metadata key of the justified checkpoint ([`Checkpoint`]).
pub const META_JUSTIFIED: &[u8] = b"justified_checkpoint";
/// Metadata key of the finalized checkpoint ([`Checkpoint`]).
pub const META_FINALIZED: &[u8] = b"finalized_checkpoint";

/// What the store keeps per state root besides (or instead of) the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateSummary {
    /// The state's slot.
    pub slot: u64,
    /// `latest_block_header`'s root: the block this state descends from.
    pub latest_block_root: Root,
}

/// A checkpoint as stored in metadata (epoch and block root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Checkpoint {
    /// The checkpoint's epoch.
    pub epoch: u64,
    /// The checkpoint's block root.
    pub root: Root,
}

/// The head as stored in metadata (slot and block root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Head {
    /// The head block's slot.
    pub slot: u64,
    /// The head block's root.
    pub root: Root,
}

/// Key of `block_slots`: the slot as big-endian bytes, so key order is slot order.
pub fn slot_key(slot: u64) -> [u8; 8] {
    slot.to_be_bytes()
}

pub(crate) fn decode_slot_key(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        StoreError::corrupt(
            "block_slots key",
            format!("{} bytes, expected 8", key.len()),
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

pub(crate) fn decode_root(what: &'static str, bytes: &[u8]) -> Result<Root> {
    bytes
        .try_into()
        .map_err(|_| StoreError::corrupt(what, format!("{} bytes, expected 32", bytes.len())))
}

pub(crate) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt(what, format!("{} bytes, expected 8", bytes.len())))?;
    Ok(u64::from_be_bytes(b))
}

/// `u64` big-endian followed by a 32-byte root: the encoding of summaries, checkpoints
/// and the head.
fn encode_u64_root(n: u64, root: &Root) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&n.to_be_bytes());
    out[8..].copy_from_slice(root);
    out
}

fn decode_u64_root(what: &'static str, bytes: &[u8]) -> Result<(u64, Root)> {
    if bytes.len() != 40 {
        return Err(StoreError::corrupt(
            what,
            format!("{} bytes, expected 40", bytes.len()),
        ));
    }
    let n = decode_u64(what, &bytes[..8])?;
    let root = decode_root(what, &bytes[8..])?;
    Ok((n, root))
}

impl StateSummary {
    /// The 40-byte stored form.
    pub fn encode(&self) -> [u8; 40] {
        encode_u64_root(self.slot, &self.latest_block_root)
    }

    /// Decode the stored form; a wrong length is [`StoreError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (slot, latest_block_root) = decode_u64_root("state summary", bytes)?;
        Ok(StateSummary {
            slot,
            latest_block_root,
        })
    }
}

impl Checkpoint {
    /// The 40-byte stored form.
    pub fn encode(&self) -> [u8; 40] {
        encode_u64_root(self.epoch, &self.root)
    }

    /// Decode the stored form; a wrong length is [`StoreError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (epoch, root) = decode_u64_root("checkpoint", bytes)?;
        Ok(Checkpoint { epoch, root })
    }
}

impl Head {
    /// The 40-byte stored form.
    pub fn encode(&self) -> [u8; 40] {
        encode_u64_root(self.slot, &self.root)
    }

    /// Decode the stored form; a wrong length is [`StoreError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (slot, root) = decode_u64_root("head", bytes)?;
        Ok(Head { slot, root })
    }
}

/// The slot of a `SignedBeaconBlock` from its SSZ bytes, in every fork: the container's
/// fixed part is a 4-byte offset to `message` then the 96-byte signature, and `message`
/// (a `BeaconBlock`) starts with its `slot` as u64 little-endian.
pub fn signed_block_slot(ssz: &[u8]) -> Result<u64> {
    const WHAT: &str = "block SSZ";
    if ssz.len() < 4 {
        return Err(StoreError::corrupt(WHAT, format!("{} bytes", ssz.len())));
    }
    let offset = u32::from_le_bytes([ssz[0], ssz[1], ssz[2], ssz[3]]) as usize;
    if offset != 100 {
        return Err(StoreError::corrupt(
            WHAT,
            format!("message offset {offset}, expected 100"),
        ));
    }
    let slot_bytes = ssz
        .get(offset..offset + 8)
        .ok_or_else(|| StoreError::corrupt(WHAT, format!("{} bytes, too short", ssz.len())))?;
    let mut b = [0u8; 8];
    b.copy_from_slice(slot_bytes);
    Ok(u64::from_le_bytes(b))
}
