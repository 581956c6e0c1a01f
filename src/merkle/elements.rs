//! Roots of many small fixed-size containers at once (validators, pending deposits, …):
//! each element's field chunks are laid out side by side, a power of two per element,
//! and the whole array is reduced level by level with [`BatchHasher::hash_pairs`], so a
//! million validators take a handful of big batches instead of a million small trees.

use rayon::prelude::*;

use super::{Chunk, MerkleError};
use crate::accel::hash::BatchHasher;
use crate::types::common::{
    HistoricalSummary, PendingConsolidation, PendingDeposit, PendingPartialWithdrawal, Validator,
};

/// Elements per batch: bounds the scratch memory (2^17 validators = 32 MiB of leaves).
const BATCH: usize = 1 << 17;

/// A container whose root can be computed in batches.
pub trait BatchRoots: Clone + PartialEq + Send + Sync {
    /// The roots of `items`, in order.
    fn batch_roots(hasher: &dyn BatchHasher, items: &[&Self]) -> Result<Vec<Chunk>, MerkleError>;
}

/// The roots of all `items`, in batches of [`BATCH`].
pub fn element_roots<T: BatchRoots>(
    hasher: &dyn BatchHasher,
    items: &[T],
) -> Result<Vec<Chunk>, MerkleError> {
    let mut out = Vec::with_capacity(items.len());
    for part in items.chunks(BATCH) {
        let refs: Vec<&T> = part.iter().collect();
        out.extend(T::batch_roots(hasher, &refs)?);
    }
    Ok(out)
}

/// The roots of `items[i]` for each `i` in `indices`, in order.
pub fn element_roots_at<T: BatchRoots>(
    hasher: &dyn BatchHasher,
    items: &[T],
    indices: &[usize],
) -> Result<Vec<Chunk>, MerkleError> {
    let mut out = Vec::with_capacity(indices.len());
    for part in indices.chunks(BATCH) {
        let refs: Vec<&T> = part.iter().map(|&i| &items[i]).collect();
        out.extend(T::batch_roots(hasher, &refs)?);
    }
    Ok(out)
}

/// Reduces consecutive groups of `width` (a power of two) chunks to one root each.
fn reduce_groups(
    hasher: &dyn BatchHasher,
    mut chunks: Vec<Chunk>,
    width: usize,
) -> Result<Vec<Chunk>, MerkleError> {
    debug_assert!(width.is_power_of_two() && chunks.len() % width == 0);
    if chunks.is_empty() {
        return Ok(chunks);
    }
    let mut w = width;
    while w > 1 {
        let blocks: &[[u8; 64]] = bytemuck::cast_slice(&chunks);
        let mut out = vec![[0u8; 32]; blocks.len()];
        hasher.hash_pairs(blocks, &mut out)?;
        chunks = out;
        w /= 2;
    }
    Ok(chunks)
}

/// Fills `width` chunks per item with `fill`, in parallel for big batches.
fn layout<T: Sync>(
    items: &[T],
    width: usize,
    fill: impl Fn(&T, &mut [Chunk]) + Sync,
) -> Vec<Chunk> {
    let mut chunks = vec![[0u8; 32]; items.len() * width];
    if items.len() >= 4096 {
        chunks
            .par_chunks_mut(width)
            .zip(items.par_iter())
            .for_each(|(c, item)| fill(item, c));
    } else {
        chunks
            .chunks_mut(width)
            .zip(items.iter())
            .for_each(|(c, item)| fill(item, c));
    }
    chunks
}

fn uint(v: u64) -> Chunk {
    let mut c = [0u8; 32];
    c[..8].copy_from_slice(&v.to_le_bytes());
    c
}

/// The two chunks of a 48-byte BLS pubkey.
fn pubkey_chunks(pk: &[u8; 48], out: &mut [Chunk]) {
    out[0].copy_from_slice(&pk[..32]);
    out[1] = [0u8; 32];
    out[1][..16].copy_from_slice(&pk[32..]);
}

fn pubkey_roots<T: Sync>(
    hasher: &dyn BatchHasher,
    items: &[&T],
    pk: impl Fn(&T) -> &[u8; 48] + Sync,
) -> Result<Vec<Chunk>, MerkleError> {
    let chunks = layout(items, 2, |item: &&T, c| pubkey_chunks(pk(item), c));
    reduce_groups(hasher, chunks, 2)
}

impl BatchRoots for Validator {
    fn batch_roots(hasher: &dyn BatchHasher, items: &[&Self]) -> Result<Vec<Chunk>, MerkleError> {
        let pk = pubkey_roots(hasher, items, |v| &v.pubkey.0)?;
        let refs: Vec<(&Validator, &Chunk)> = items.iter().copied().zip(pk.iter()).collect();
        let chunks = layout(&refs, 8, |(v, pk), c| {
            c[0] = **pk;
            c[1] = v.withdrawal_credentials.0;
            c[2] = uint(v.effective_balance);
            c[3] = uint(u64::from(v.slashed));
            c[4] = uint(v.activation_eligibility_epoch);
            c[5] = uint(v.activation_epoch);
            c[6] = uint(v.exit_epoch);
            c[7] = uint(v.withdrawable_epoch);
        });
        reduce_groups(hasher, chunks, 8)
    }
}

impl BatchRoots for HistoricalSummary {
    fn batch_roots(hasher: &dyn BatchHasher, items: &[&Self]) -> Result<Vec<Chunk>, MerkleError> {
        let chunks = layout(items, 2, |s, c| {
            c[0] = s.block_summary_root.0;
            c[1] = s.state_summary_root.0;
        });
        reduce_groups(hasher, chunks, 2)
    }
}

impl BatchRoots for PendingDeposit {
    fn batch_roots(hasher: &dyn BatchHasher, items: &[&Self]) -> Result<Vec<Chunk>, MerkleError> {
        let pk = pubkey_roots(hasher, items, |d| &d.pubkey.0)?;
        let sig = layout(items, 4, |d, c| {
            for (chunk, part) in c.iter_mut().zip(d.signature.0.chunks(32)) {
                chunk.copy_from_slice(part);
            }
        });
        let sig = reduce_groups(hasher, sig, 4)?;
        let refs: Vec<(&PendingDeposit, (&Chunk, &Chunk))> = items
            .iter()
            .copied()
            .zip(pk.iter().zip(sig.iter()))
            .collect();
        let chunks = layout(&refs, 8, |(d, (pk, sig)), c| {
            c[0] = **pk;
            c[1] = d.withdrawal_credentials.0;
            c[2] = uint(d.amount);
            c[3] = **sig;
            c[4] = uint(d.slot);
        });
        reduce_groups(hasher, chunks, 8)
    }
}

impl BatchRoots for PendingPartialWithdrawal {
    fn batch_roots(hasher: &dyn BatchHasher, items: &[&Self]) -> Result<Vec<Chunk>, MerkleError> {
        let chunks = layout(items, 4, |w, c| {
            c[0] = uint(w.validator_index);
            c[1] = uint(w.amount);
            c[2] = uint(w.withdrawable_epoch);
        });
        reduce_groups(hasher, chunks, 4)
    }
}

impl BatchRoots for PendingConsolidation {
    fn batch_roots(hasher: &dyn BatchHasher, items: &[&Self]) -> Result<Vec<Chunk>, MerkleError> {
        let chunks = layout(items, 2, |p, c| {
            c[0] = uint(p.source_index);
            c[1] = uint(p.target_index);
        });
        reduce_groups(hasher, chunks, 2)
    }
}
