//! Resolving a segment's signature sets: each distinct validator key is decompressed and
//! checked once (in parallel), all index sets are summed in one aggregator submission (the
//! GPU when it is given one) while the CPU decompresses the signatures, and the resolved
//! sets are verified in one batch; a failing batch is bisected to name exactly the bad
//! sets.

use std::collections::HashMap;

use blst::min_pk::{AggregatePublicKey, PublicKey, Signature};
use rayon::prelude::*;

use super::SegmentError;
use crate::accel::aggregate::{AggregateError, PubkeyAggregator, PubkeyTable};
use crate::accel::device::GpuError;
use crate::bls::sets::ResolvedSet;
use crate::bls::{parse_pubkey, verify_each, SignatureSet, Signers, DST};

/// Which block (and which check of it) a signature set came from.
#[derive(Clone, Copy, Debug)]
pub struct SetOwner {
    pub block: usize,
    pub slot: u64,
    pub what: &'static str,
}

fn bad(owner: &SetOwner, reason: String) -> SegmentError {
    SegmentError::Signature {
        index: owner.block,
        slot: owner.slot,
        what: owner.what,
        reason,
    }
}

/// Resolve and verify `sets` (owned by `owners`, same order); the first invalid set's block
/// is the error. `pubkey_of` maps a validator index to its compressed pubkey.
pub fn resolve_sets(
    sets: Vec<SignatureSet>,
    owners: &[SetOwner],
    pubkey_of: impl Fn(u32) -> Option<[u8; 48]> + Sync,
    aggregator: &dyn PubkeyAggregator,
) -> Result<(), SegmentError> {
    // Dense table of the distinct validators the sets name.
    let mut slot_of: HashMap<u32, u32> = HashMap::new();
    let mut distinct: Vec<u32> = Vec::new();
    for set in &sets {
        if let Signers::Indices(ids) = &set.signers {
            for &i in ids {
                slot_of.entry(i).or_insert_with(|| {
                    distinct.push(i);
                    (distinct.len() - 1) as u32
                });
            }
        }
    }
    let keys: Vec<Result<blst::blst_p1_affine, String>> = distinct
        .par_iter()
        .map(|&i| {
            let bytes = pubkey_of(i).ok_or_else(|| format!("unknown validator {i}"))?;
            parse_pubkey(&bytes)
                .map(blst::blst_p1_affine::from)
                .map_err(|e| format!("validator {i}: {e}"))
        })
        .collect();
    let mut points = Vec::with_capacity(keys.len());
    for (set, owner) in sets.iter().zip(owners) {
        if let Signers::Indices(ids) = &set.signers {
            for &i in ids {
                if let Err(e) = &keys[slot_of[&i] as usize] {
                    return Err(bad(owner, e.clone()));
                }
            }
        }
    }
    points.extend(keys.into_iter().map(|k| k.expect("checked above")));
    let table = PubkeyTable::new(points);
    let index_sets: Vec<Vec<u32>> = sets
        .iter()
        .filter_map(|s| match &s.signers {
            Signers::Indices(ids) => Some(ids.iter().map(|i| slot_of[i]).collect()),
            Signers::Pubkeys(_) => None,
        })
        .collect();
    aggregate_and_verify(
        sets,
        owners,
        &table,
        &index_sets,
        aggregator,
        SetCheck::Batch,
    )
}

/// How resolved sets are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCheck {
    /// One randomized batch, bisected on failure.
    Batch,
    /// Each set on its own (the unbatched baseline).
    EachAlone,
}

/// Resolve and verify `sets` against `table`, which holds every validator's key at its
/// validator index (the importer's table, resident on the GPU and grown as validators
/// join), so no per-batch table is built. `usable(i)` is false for an index whose key
/// failed validation; a set naming one is invalid.
pub fn verify_sets_in_table(
    sets: Vec<SignatureSet>,
    owners: &[SetOwner],
    table: &PubkeyTable,
    usable: impl Fn(u32) -> bool,
    aggregator: &dyn PubkeyAggregator,
    check: SetCheck,
) -> Result<(), SegmentError> {
    let mut index_sets = Vec::new();
    for (set, owner) in sets.iter().zip(owners) {
        if let Signers::Indices(ids) = &set.signers {
            if let Some(&i) = ids
                .iter()
                .find(|&&i| i as usize >= table.len() || !usable(i))
            {
                return Err(bad(owner, format!("validator {i} has no usable pubkey")));
            }
            index_sets.push(ids.clone());
        }
    }
    aggregate_and_verify(sets, owners, table, &index_sets, aggregator, check)
}

/// What a set needs besides its sum: its parsed signature, and for a set given as pubkeys
/// their aggregate (`None` for an index set).
type Prepared = (Result<Signature, String>, Option<Result<PublicKey, String>>);

/// Sums the index sets on `aggregator` and verifies every set. The sums are submitted
/// first, and everything that does not need them — decompressing and subgroup-checking
/// the signatures, aggregating sets given as pubkeys — runs on the CPU (in parallel)
/// while the device sums; then the wait, and the sums become keys (in parallel too).
fn aggregate_and_verify(
    sets: Vec<SignatureSet>,
    owners: &[SetOwner],
    table: &PubkeyTable,
    index_sets: &[Vec<u32>],
    aggregator: &dyn PubkeyAggregator,
    check: SetCheck,
) -> Result<(), SegmentError> {
    let refs: Vec<&[u32]> = index_sets.iter().map(|v| v.as_slice()).collect();
    let pending = aggregator.submit(table, &refs)?;
    // Signatures collected compressed are decompressed and subgroup-checked here; a set
    // whose signature does not parse is invalid like one that does not verify (the first
    // bad set, by position, is the one reported).
    let prepared: Vec<Prepared> = sets
        .par_iter()
        .map(|s| {
            let signature = s.signature.parse().map_err(|e| e.to_string());
            let key = match &s.signers {
                Signers::Indices(_) => None,
                Signers::Pubkeys(keys) => {
                    let refs: Vec<&PublicKey> = keys.iter().collect();
                    Some(
                        AggregatePublicKey::aggregate(&refs, false)
                            .map(|a| a.to_public_key())
                            .map_err(|e| format!("aggregate: {e:?}")),
                    )
                }
            };
            (signature, key)
        })
        .collect();
    let first_unparsed = prepared.iter().position(|(s, _)| s.is_err());
    let sums = aggregator.wait(pending)?;
    if sums.len() != refs.len() {
        return Err(SegmentError::Aggregate(AggregateError::Gpu(
            GpuError::Submission(format!(
                "the aggregator returned {} sums for {} sets",
                sums.len(),
                refs.len()
            )),
        )));
    }
    // None: the aggregate is the point at infinity (which Ethereum rejects).
    let summed: Vec<Option<PublicKey>> = sums
        .par_iter()
        .map(|p| {
            (!quasar_kernels::bls::p1_is_inf(p))
                .then(|| AggregatePublicKey::from(*p).to_public_key())
        })
        .collect();
    let mut summed = summed.into_iter();
    let mut resolved = Vec::with_capacity(sets.len());
    for ((set, owner), (signature, key)) in sets.into_iter().zip(owners).zip(prepared) {
        if first_unparsed.is_some_and(|u| resolved.len() >= u) {
            break;
        }
        let signature = signature.map_err(|e| bad(owner, e))?;
        let pubkey = match key {
            None => summed
                .next()
                .flatten()
                .ok_or_else(|| bad(owner, "aggregate pubkey is the point at infinity".into()))?,
            Some(key) => key.map_err(|e| bad(owner, e))?,
        };
        resolved.push(ResolvedSet {
            pubkey,
            signing_root: set.signing_root,
            signature,
        });
    }
    // With an unparsable signature at `u`, only the sets before it were resolved: the
    // first bad one is among them, or `u`.
    let first_bad = match check {
        SetCheck::Batch => verify_each(&resolved).valid.iter().position(|ok| !ok),
        SetCheck::EachAlone => resolved.iter().position(|s| {
            s.signature
                .verify(false, &s.signing_root, DST, &[], &s.pubkey, false)
                != blst::BLST_ERROR::BLST_SUCCESS
        }),
    };
    match (first_bad, first_unparsed) {
        (None, None) => Ok(()),
        (Some(i), _) => Err(bad(&owners[i], "signature does not verify".into())),
        (None, Some(u)) => Err(bad(
            &owners[u],
            "signature is not a valid G2 point encoding".into(),
        )),
    }
}
