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

#[derive(Clone, Debug)]
pub struct SignatureSet {
    pub signers: Signers,
    pub signing_root: [u8; 32],
    pub signature: Signature,
}

/// A set whose signers are reduced to one aggregate pubkey: what batch verification takes.
#[derive(Clone, Debug)]
pub struct ResolvedSet {
    pub pubkey: PublicKey,
    pub signing_root: [u8; 32],
    pub signature: Signature,
}
