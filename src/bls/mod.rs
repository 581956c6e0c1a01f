//! BLS signatures the Ethereum way (proof-of-possession ciphersuite, pubkeys in G1,
//! signatures in G2) over blst: signature sets, the validator pubkey cache, batch
//! verification with random blinding and bisection of a failing batch.

pub mod cache;
pub mod sets;
pub mod tools;
pub mod verify;

pub use cache::PubkeyCache;
pub use sets::{SignatureSet, Signers};
pub use verify::{verify_batch, verify_each, BatchOutcome};

/// The domain separation tag of Ethereum's ciphersuite (`BLS_SIG_…_POP_`).
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Why a key, a signature or a set is refused. All of these are the input's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    #[error("bad pubkey encoding ({0})")]
    PubkeyEncoding(String),
    #[error("pubkey is the point at infinity")]
    PubkeyInfinity,
    #[error("pubkey is not in the G1 subgroup")]
    PubkeyNotInGroup,
    #[error("bad signature encoding ({0})")]
    SignatureEncoding(String),
    #[error("signature is not in the G2 subgroup")]
    SignatureNotInGroup,
    #[error("empty set of signers")]
    EmptySet,
    #[error("aggregate pubkey is the point at infinity")]
    AggregateInfinity,
    #[error("validator index {index} is unknown (the cache holds {len})")]
    UnknownIndex { index: u32, len: usize },
    #[error("bad hex ({0})")]
    Hex(String),
}

fn blst_reason(e: blst::BLST_ERROR) -> String {
    use blst::BLST_ERROR::*;
    match e {
        BLST_BAD_ENCODING => "bad encoding".into(),
        BLST_POINT_NOT_ON_CURVE => "not on the curve".into(),
        BLST_POINT_NOT_IN_GROUP => "not in the subgroup".into(),
        BLST_PK_IS_INFINITY => "point at infinity".into(),
        other => format!("{other:?}"),
    }
}

/// Parse and KeyValidate a compressed (48-byte) pubkey from outside: on the curve, in
/// the subgroup, not infinity.
pub fn parse_pubkey(bytes: &[u8]) -> Result<blst::min_pk::PublicKey, BlsError> {
    if bytes.len() != 48 {
        return Err(BlsError::PubkeyEncoding(format!(
            "{} bytes, want 48",
            bytes.len()
        )));
    }
    let pk = blst::min_pk::PublicKey::uncompress(bytes)
        .map_err(|e| BlsError::PubkeyEncoding(blst_reason(e)))?;
    match pk.validate() {
        Ok(()) => Ok(pk),
        Err(blst::BLST_ERROR::BLST_PK_IS_INFINITY) => Err(BlsError::PubkeyInfinity),
        Err(blst::BLST_ERROR::BLST_POINT_NOT_IN_GROUP) => Err(BlsError::PubkeyNotInGroup),
        Err(e) => Err(BlsError::PubkeyEncoding(blst_reason(e))),
    }
}

/// Parse a compressed (96-byte) signature and check it is in G2 (infinity is allowed by
/// the encoding; it simply fails verification unless every key is… never, in practice).
pub fn parse_signature(bytes: &[u8]) -> Result<blst::min_pk::Signature, BlsError> {
    if bytes.len() != 96 {
        return Err(BlsError::SignatureEncoding(format!(
            "{} bytes, want 96",
            bytes.len()
        )));
    }
    let sig = blst::min_pk::Signature::uncompress(bytes)
        .map_err(|e| BlsError::SignatureEncoding(blst_reason(e)))?;
    sig.validate(false)
        .map_err(|_| BlsError::SignatureNotInGroup)?;
    Ok(sig)
}

/// Decode hex with an optional `0x` prefix.
pub fn from_hex(s: &str) -> Result<Vec<u8>, BlsError> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.len() % 2 != 0 {
        return Err(BlsError::Hex(format!("odd number of digits ({})", s.len())));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16)
                .map_err(|_| BlsError::Hex(format!("not a hex digit near position {i}")))
        })
        .collect()
}

pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
