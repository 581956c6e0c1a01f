//! Signature sets: who signed (validator indices into the pubkey cache, or pubkeys), what
//! (the 32-byte signing root) and the signature. The import pipeline collects a whole
//! segment's sets, pre-aggregates their pubkeys at once (GPU or CPU), then verifies them
//! in one batch.

use blst::min_pk::{PublicKey, Signature};

/// The signers of a set.
#[derive(Clone, Debug)]
pub enum Signers {
    /// Validator indices, resolved against the pubkey cache (aggregated on GPU or CPU).
    Indices(Vec<u32>),
    /// Already-validated pubkeys.
    Pubkeys(Vec<PublicKey>),
}

/// A set's signature: parsed, or still compressed. The state transition collects
/// signatures compressed, so their G2 decompression and subgroup check run in the
/// verification stage — in parallel across the batch, beside the next batch's transition —
/// instead of one after the other on the transition's thread.
#[derive(Clone, Debug)]
pub enum SetSignature {
    Parsed(Signature),
    Compressed([u8; 96]),
}

impl SetSignature {
    /// The signature, decompressed and checked to be in G2 (not infinity-only checks:
    /// see [`crate::bls::parse_signature`]).
    pub fn parse(&self) -> Result<Signature, crate::bls::BlsError> {
        match self {
            SetSignature::Parsed(s) => Ok(*s),
            SetSignature::Compressed(bytes) => crate::bls::parse_signature(bytes),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SignatureSet {
    pub signers: Signers,
    pub signing_root: [u8; 32],
    pub signature: SetSignature,
}

/// A set whose signers are reduced to one aggregate pubkey: what batch verification takes.
#[derive(Clone, Debug)]
pub struct ResolvedSet {
    pub pubkey: PublicKey,
    pub signing_root: [u8; 32],
    pub signature: Signature,
}
