//! Pluggable signature checking. Every signature check of the transition goes through a
//! [`SignatureChecker`], which either verifies it at once, skips it (vectors with
//! `bls_setting: 2`, or blocks whose sets the caller verified already), or collects it as
//! a [`SignatureSet`] so the caller verifies a whole block or chain segment in one batch.

use blst::min_pk::{AggregatePublicKey, PublicKey};

use crate::bls::sets::SetSignature;
use crate::bls::{parse_pubkey, parse_signature, SignatureSet, Signers, DST};
use crate::types::common::Validator;
use crate::types::primitives::{BLSPubkey, BLSSignature};

use super::{Check, TransitionError};

/// What to do with each signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStrategy {
    /// Verify each signature when it is met; a bad one fails the step.
    VerifyInline,
    /// Treat every signature as valid.
    Skip,
    /// Collect each check as a signature set; the caller verifies them (in one batch).
    Collect,
}

/// Applies a [`SignatureStrategy`]; holds the collected sets.
#[derive(Debug)]
pub struct SignatureChecker {
    strategy: SignatureStrategy,
    sets: Vec<SignatureSet>,
    labels: Vec<&'static str>,
}

impl SignatureChecker {
    pub fn new(strategy: SignatureStrategy) -> Self {
        Self {
            strategy,
            sets: Vec::new(),
            labels: Vec::new(),
        }
    }
    pub fn verify_inline() -> Self {
        Self::new(SignatureStrategy::VerifyInline)
    }
    pub fn skip() -> Self {
        Self::new(SignatureStrategy::Skip)
    }
    pub fn collect() -> Self {
        Self::new(SignatureStrategy::Collect)
    }

    pub fn strategy(&self) -> SignatureStrategy {
        self.strategy
    }

    /// The collected sets (empty unless the strategy is `Collect`), with a label each
    /// naming the check (`"block signature"`, `"attestation"`, …).
    pub fn take_sets(&mut self) -> (Vec<SignatureSet>, Vec<&'static str>) {
        (
            std::mem::take(&mut self.sets),
            std::mem::take(&mut self.labels),
        )
    }

    fn bad(what: &'static str, reason: impl ToString) -> TransitionError {
        TransitionError::Signature {
            what,
            reason: reason.to_string(),
        }
    }

    /// A signature by validators (by index into `validators`) over `signing_root`:
    /// one index is `Verify`, several are `FastAggregateVerify`. Indices must be in range.
    pub fn check_validators(
        &mut self,
        what: &'static str,
        validators: &[Validator],
        indices: &[u64],
        signing_root: [u8; 32],
        signature: &BLSSignature,
    ) -> Result<(), TransitionError> {
        if self.strategy == SignatureStrategy::Skip {
            return Ok(());
        }
        if indices.is_empty() {
            return Err(Self::bad(what, "no signers"));
        }
        for &i in indices {
            if i >= validators.len() as u64 {
                return Err(TransitionError::IndexOutOfRange {
                    what: "validator",
                    index: i,
                    len: validators.len(),
                });
            }
        }
        match self.strategy {
            SignatureStrategy::Collect if indices.iter().all(|&i| i <= u32::MAX as u64) => {
                // Keys are validated when the caller resolves the indices (pubkey cache);
                // the signature is parsed there too, in parallel with the others.
                self.sets.push(SignatureSet {
                    signers: Signers::Indices(indices.iter().map(|&i| i as u32).collect()),
                    signing_root,
                    signature: compressed(signature).map_err(|e| Self::bad(what, e))?,
                });
                self.labels.push(what);
                Ok(())
            }
            _ => {
                let keys: Vec<&BLSPubkey> = indices
                    .iter()
                    .map(|&i| &validators[i as usize].pubkey)
                    .collect();
                self.check_pubkeys(what, &keys, signing_root, signature)
            }
        }
    }

    /// A signature by explicit pubkeys over `signing_root` (`FastAggregateVerify`; an
    /// empty key list is invalid).
    pub fn check_pubkeys(
        &mut self,
        what: &'static str,
        pubkeys: &[&BLSPubkey],
        signing_root: [u8; 32],
        signature: &BLSSignature,
    ) -> Result<(), TransitionError> {
        if self.strategy == SignatureStrategy::Skip {
            return Ok(());
        }
        if pubkeys.is_empty() {
            return Err(Self::bad(what, "no signers"));
        }
        let keys: Vec<PublicKey> = pubkeys
            .iter()
            .map(|k| parse_pubkey(k.as_ref()))
            .collect::<Result<_, _>>()
            .map_err(|e| Self::bad(what, e))?;
        let sig = parse_signature(signature.as_ref()).map_err(|e| Self::bad(what, e))?;
        match self.strategy {
            SignatureStrategy::Collect => {
                self.sets.push(SignatureSet {
                    signers: Signers::Pubkeys(keys),
                    signing_root,
                    signature: SetSignature::Parsed(sig),
                });
                self.labels.push(what);
                Ok(())
            }
            _ => {
                if verify_fast_aggregate(&keys, &signing_root, &sig) {
                    Ok(())
                } else {
                    Err(Self::bad(what, "does not verify"))
                }
            }
        }
    }
}

/// A signature kept compressed for the verification stage; only its length is checked
/// here (the decompression and the subgroup check come with verification).
fn compressed(signature: &BLSSignature) -> Result<SetSignature, String> {
    let bytes: [u8; 96] = signature
        .as_ref()
        .try_into()
        .map_err(|_| format!("signature of {} bytes", signature.as_ref().len()))?;
    Ok(SetSignature::Compressed(bytes))
}

/// `FastAggregateVerify` over already-validated keys.
pub fn verify_fast_aggregate(
    keys: &[PublicKey],
    message: &[u8; 32],
    sig: &blst::min_pk::Signature,
) -> bool {
    if keys.is_empty() {
        return false;
    }
    let refs: Vec<&PublicKey> = keys.iter().collect();
    let agg = match AggregatePublicKey::aggregate(&refs, false) {
        Ok(a) => a.to_public_key(),
        Err(_) => return false,
    };
    sig.verify(false, message, DST, &[], &agg, false) == blst::BLST_ERROR::BLST_SUCCESS
}

/// `bls.Verify` of one compressed pubkey, for checks whose failure is not an error but a
/// branch of the spec (the deposit proof of possession). Bad encodings verify false.
pub fn verify_single(pubkey: &BLSPubkey, message: &[u8; 32], signature: &BLSSignature) -> bool {
    let Ok(pk) = parse_pubkey(pubkey.as_ref()) else {
        return false;
    };
    let Ok(sig) = parse_signature(signature.as_ref()) else {
        return false;
    };
    verify_fast_aggregate(&[pk], message, &sig)
}

/// `eth_aggregate_pubkeys`: the compressed sum of the keys (each KeyValidate'd).
pub fn eth_aggregate_pubkeys(pubkeys: &[&BLSPubkey]) -> Result<[u8; 48], TransitionError> {
    let keys: Vec<PublicKey> = pubkeys
        .iter()
        .map(|k| parse_pubkey(k.as_ref()))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            TransitionError::check(
                Check::AggregatePubkeys,
                format!("sync committee pubkey: {e}"),
            )
        })?;
    if keys.is_empty() {
        return Err(TransitionError::check(
            Check::AggregatePubkeys,
            "aggregate of no pubkeys",
        ));
    }
    let refs: Vec<&PublicKey> = keys.iter().collect();
    let agg = AggregatePublicKey::aggregate(&refs, false).map_err(|e| {
        TransitionError::check(Check::AggregatePubkeys, format!("aggregate pubkeys: {e:?}"))
    })?;
    Ok(agg.to_public_key().compress())
}
