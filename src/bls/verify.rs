//! Batch verification over blst: every set weighted by a random 64-bit scalar from a
//! CSPRNG, sets that share a signing root folded into one pairing term first, then one
//! `verify_multiple_aggregate_signatures` (which runs on blst's own thread pool — it is not
//! wrapped in rayon, so cores are not oversubscribed). A failing batch is bisected until
//! exactly the invalid sets are named.

use std::collections::HashMap;

use blst::min_pk::{PublicKey, Signature};
use blst::{MultiPoint, BLST_ERROR};
use rand::RngCore;

use super::sets::ResolvedSet;
use super::DST;

/// Bits of the blinding scalars.
const RAND_BITS: usize = 64;

fn random_scalar(rng: &mut impl RngCore) -> [u8; 8] {
    loop {
        let r = rng.next_u64();
        if r != 0 {
            return r.to_le_bytes();
        }
    }
}

/// Whether every set verifies, by one batch check. Empty: true.
pub fn verify_batch(sets: &[&ResolvedSet]) -> bool {
    if sets.is_empty() {
        return true;
    }
    let mut rng = rand::rng();
    // Fold sets that share a signing root: Σ r_i·pk_i and Σ r_i·sig_i pair with one H(m).
    let mut groups: HashMap<[u8; 32], Vec<&ResolvedSet>> = HashMap::new();
    for s in sets {
        groups.entry(s.signing_root).or_default().push(s);
    }
    let mut pks: Vec<PublicKey> = Vec::with_capacity(groups.len());
    let mut sigs: Vec<Signature> = Vec::with_capacity(groups.len());
    let mut msgs: Vec<[u8; 32]> = Vec::with_capacity(groups.len());
    let mut rands: Vec<blst::blst_scalar> = Vec::with_capacity(groups.len());
    for (root, group) in groups {
        if group.len() == 1 {
            pks.push(group[0].pubkey);
            sigs.push(group[0].signature);
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&random_scalar(&mut rng));
            rands.push(blst::blst_scalar { b });
        } else {
            let scalars: Vec<u8> = group.iter().flat_map(|_| random_scalar(&mut rng)).collect();
            let gpks: Vec<PublicKey> = group.iter().map(|s| s.pubkey).collect();
            let gsigs: Vec<Signature> = group.iter().map(|s| s.signature).collect();
            pks.push(gpks.mult(&scalars, RAND_BITS).to_public_key());
            sigs.push(gsigs.mult(&scalars, RAND_BITS).to_signature());
            let mut b = [0u8; 32];
            b[0] = 1; // already blinded
            rands.push(blst::blst_scalar { b });
        }
        msgs.push(root);
    }
    let msg_refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    let pk_refs: Vec<&PublicKey> = pks.iter().collect();
    let sig_refs: Vec<&Signature> = sigs.iter().collect();
    // Keys and signatures were validated when parsed (KeyValidate, subgroup checks).
    Signature::verify_multiple_aggregate_signatures(
        &msg_refs, DST, &pk_refs, false, &sig_refs, false, &rands, RAND_BITS,
    ) == BLST_ERROR::BLST_SUCCESS
}

/// The outcome of [`verify_each`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Per set, in input order.
    pub valid: Vec<bool>,
    /// Batch checks run (1 when everything was valid).
    pub checks: usize,
}

impl BatchOutcome {
    pub fn all_valid(&self) -> bool {
        self.valid.iter().all(|&v| v)
    }
}

/// Verify all sets in one batch; if that fails, bisect so that exactly the invalid sets
/// are marked, the valid ones passing.
pub fn verify_each(sets: &[ResolvedSet]) -> BatchOutcome {
    let refs: Vec<&ResolvedSet> = sets.iter().collect();
    let mut valid = vec![false; sets.len()];
    let mut checks = 0;
    bisect(&refs, 0, &mut valid, &mut checks);
    BatchOutcome { valid, checks }
}

fn bisect(sets: &[&ResolvedSet], offset: usize, valid: &mut [bool], checks: &mut usize) {
    if sets.is_empty() {
        return;
    }
    *checks += 1;
    if verify_batch(sets) {
        valid[offset..offset + sets.len()]
            .iter_mut()
            .for_each(|v| *v = true);
        return;
    }
    if sets.len() == 1 {
        return;
    }
    let mid = sets.len() / 2;
    bisect(&sets[..mid], offset, valid, checks);
    bisect(&sets[mid..], offset + mid, valid, checks);
}
