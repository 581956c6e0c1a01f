//! The file formats of `quasar tool aggregate-pubkeys` and `quasar tool verify-batch`, and
//! their pipelines: every distinct key is decompressed and KeyValidate'd once (in parallel),
//! all sets are aggregated in one call of a `PubkeyAggregator` over the resulting table,
//! and verification is one batch (bisected on failure).

use std::collections::HashMap;

use blst::min_pk::PublicKey;
use rayon::prelude::*;

use super::sets::ResolvedSet;
use super::{from_hex, parse_pubkey, parse_signature, verify_each, BlsError};
use crate::accel::aggregate::{AggregateError, PubkeyAggregator, PubkeyTable};

/// A set's outcome: the compressed aggregate, or why the set is invalid.
pub type SetResult = Result<[u8; 48], String>;

/// Distinct keys of many sets, validated once each.
struct KeyTable {
    table: PubkeyTable,
    /// Per set: indices into the table, or the reason the set is refused.
    sets: Vec<Result<Vec<u32>, String>>,
}

/// Parse sets of hex keys; decompress and validate each distinct key once, in parallel.
fn build_table(sets: Vec<Result<Vec<Vec<u8>>, String>>) -> KeyTable {
    let mut index: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut distinct: Vec<Vec<u8>> = Vec::new();
    let mut by_set: Vec<Result<Vec<u32>, String>> = Vec::with_capacity(sets.len());
    for set in sets {
        by_set.push(set.map(|keys| {
            keys.into_iter()
                .map(|k| {
                    *index.entry(k.clone()).or_insert_with(|| {
                        distinct.push(k);
                        (distinct.len() - 1) as u32
                    })
                })
                .collect()
        }));
    }
    let parsed: Vec<Result<PublicKey, BlsError>> =
        distinct.par_iter().map(|k| parse_pubkey(k)).collect();
    // Table positions for valid keys only; remember why the others failed.
    let mut slot: Vec<Result<u32, String>> = Vec::with_capacity(parsed.len());
    let mut points = Vec::new();
    for p in &parsed {
        match p {
            Ok(pk) => {
                slot.push(Ok(points.len() as u32));
                points.push(blst::blst_p1_affine::from(*pk));
            }
            Err(e) => slot.push(Err(e.to_string())),
        }
    }
    let sets = by_set
        .into_iter()
        .map(|set| {
            let ids = set?;
            if ids.is_empty() {
                return Err(BlsError::EmptySet.to_string());
            }
            ids.iter()
                .enumerate()
                .map(|(pos, &d)| {
                    slot[d as usize]
                        .clone()
                        .map_err(|e| format!("key {}: {e}", pos + 1))
                })
                .collect()
        })
        .collect();
    KeyTable {
        table: PubkeyTable::new(points),
        sets,
    }
}

/// Split a line of whitespace-separated hex pubkeys.
fn parse_key_list<'a>(tokens: impl Iterator<Item = &'a str>) -> Result<Vec<Vec<u8>>, String> {
    tokens
        .enumerate()
        .map(|(i, t)| {
            let b = from_hex(t).map_err(|e| format!("key {}: {e}", i + 1))?;
            if b.len() != 48 {
                return Err(format!(
                    "key {}: {} bytes, want 48 (compressed G1)",
                    i + 1,
                    b.len()
                ));
            }
            Ok(b)
        })
        .collect()
}

/// Aggregate the valid sets in one aggregator call; sets at infinity are refused.
fn aggregate_valid(
    kt: &KeyTable,
    aggregator: &dyn PubkeyAggregator,
) -> Result<Vec<Result<blst::blst_p1, String>>, AggregateError> {
    let valid: Vec<&[u32]> = kt
        .sets
        .iter()
        .filter_map(|s| s.as_ref().ok().map(|v| v.as_slice()))
        .collect();
    let mut sums = aggregator.aggregate(&kt.table, &valid)?.into_iter();
    Ok(kt
        .sets
        .iter()
        .map(|s| match s {
            Ok(_) => {
                let p = sums.next().expect("one sum per valid set");
                if quasar_kernels::bls::p1_is_inf(&p) {
                    Err(BlsError::AggregateInfinity.to_string())
                } else {
                    Ok(p)
                }
            }
            Err(e) => Err(e.clone()),
        })
        .collect())
}

/// `aggregate-pubkeys`: one set per line of whitespace-separated compressed pubkeys.
pub fn aggregate_pubkeys(
    text: &str,
    aggregator: &dyn PubkeyAggregator,
) -> Result<Vec<SetResult>, AggregateError> {
    let sets = text
        .lines()
        .map(|l| parse_key_list(l.split_whitespace()))
        .collect();
    let kt = build_table(sets);
    Ok(aggregate_valid(&kt, aggregator)?
        .into_iter()
        .map(|r| r.map(|p| quasar_kernels::bls::p1_compress(&p)))
        .collect())
}

/// One line of a `verify-batch` file, split but not yet checked.
struct BatchLine<'a> {
    keys: Result<Vec<Vec<u8>>, String>,
    root: [u8; 32],
    signature: &'a str,
}

fn split_batch_line(line: &str) -> BatchLine<'_> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let bad = |e: String| BatchLine {
        keys: Err(e),
        root: [0; 32],
        signature: "",
    };
    let [keys, message, signature] = fields[..] else {
        return bad(format!(
            "{} fields, want 3: PUBKEYS MESSAGE SIGNATURE",
            fields.len()
        ));
    };
    let root = match from_hex(message) {
        Ok(m) => match <[u8; 32]>::try_from(m.as_slice()) {
            Ok(r) => r,
            Err(_) => return bad(format!("message: {} bytes, want 32", m.len())),
        },
        Err(e) => return bad(format!("message: {e}")),
    };
    BatchLine {
        keys: parse_key_list(keys.split(',')),
        root,
        signature,
    }
}

/// `verify-batch`: `PK1,PK2,... MESSAGE SIGNATURE` per line. Per line: valid, or the
/// reason it is not.
pub fn verify_batch_lines(
    text: &str,
    aggregator: &dyn PubkeyAggregator,
) -> Result<Vec<Result<(), String>>, AggregateError> {
    let lines: Vec<BatchLine> = text.lines().map(split_batch_line).collect();
    // Signatures are decompressed and subgroup-checked in parallel.
    let sigs: Vec<Result<blst::min_pk::Signature, String>> = lines
        .par_iter()
        .map(|l| match &l.keys {
            Ok(_) => from_hex(l.signature)
                .and_then(|b| parse_signature(&b))
                .map_err(|e| format!("signature: {e}")),
            Err(_) => Err(String::new()),
        })
        .collect();
    let roots: Vec<[u8; 32]> = lines.iter().map(|l| l.root).collect();
    let kt = build_table(lines.into_iter().map(|l| l.keys).collect());
    let aggs = aggregate_valid(&kt, aggregator)?;
    // The well-formed sets go into one batch, bisected if it fails.
    let mut resolved = Vec::new();
    let mut which = Vec::new();
    let mut out: Vec<Result<(), String>> = Vec::with_capacity(aggs.len());
    for (i, ((agg, sig), root)) in aggs.into_iter().zip(sigs).zip(roots).enumerate() {
        match (agg, sig) {
            (Ok(p), Ok(signature)) => {
                let pubkey = blst::min_pk::AggregatePublicKey::from(p).to_public_key();
                resolved.push(ResolvedSet {
                    pubkey,
                    signing_root: root,
                    signature,
                });
                which.push(i);
                out.push(Ok(()));
            }
            (Err(e), _) | (_, Err(e)) => out.push(Err(e)),
        }
    }
    let outcome = verify_each(&resolved);
    for (i, ok) in which.into_iter().zip(outcome.valid) {
        if !ok {
            out[i] = Err("signature does not verify".into());
        }
    }
    Ok(out)
}
