//! SSZ merkleization over a [`BatchHasher`]: `merkleize(chunks, limit)` with zero-subtree
//! padding up to limits of 2^64 chunks without allocating them, `mix_in_length`, and the
//! packing of basic types into chunks.

pub mod elements;
mod pack;
pub mod proof;
pub mod state_root;
pub mod synthetic;
pub mod tree;
mod zero;

pub use pack::{pack, pack_bytes, Basic};
pub use state_root::{
    state_root, CachedStateRoot, Dirty, RootCarry, StateRootError, StateRootFields,
};
pub use zero::zero_hashes;

use crate::accel::hash::{ceil_log2, pad_root, BatchHasher, HashError};
use quasar_kernels::sha256::Kernel;

/// A 32-byte SSZ chunk or root.
pub type Chunk = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    #[error("{count} chunks exceed the limit of {limit}")]
    OverLimit { count: u64, limit: u64 },
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Depth of the tree for `merkleize(chunks, limit)`: the chunks are padded with zero chunks
/// to `next_pow_of_two(limit)` (or of the chunk count when there is no limit).
pub fn tree_depth(count: u64, limit: Option<u64>) -> u32 {
    ceil_log2(limit.unwrap_or(count))
}

/// The SSZ `merkleize(chunks, limit)`: the root of the chunks padded with zero chunks to
/// `next_pow_of_two(limit)` leaves (`limit = len(chunks)` when `None`). Only the real chunks
/// are hashed; the padding comes from the precomputed zero-subtree roots.
pub fn merkleize(
    hasher: &dyn BatchHasher,
    chunks: &[Chunk],
    limit: Option<u64>,
) -> Result<Chunk, MerkleError> {
    let count = chunks.len() as u64;
    if let Some(limit) = limit {
        if count > limit {
            return Err(MerkleError::OverLimit { count, limit });
        }
    }
    let depth = tree_depth(count, limit);
    if chunks.is_empty() {
        return Ok(zero_hashes()[depth as usize]);
    }
    let natural = ceil_log2(count);
    let root = hasher.merkleize_subtree(chunks, natural)?;
    Ok(pad_root(Kernel::detect(), root, natural, depth))
}

/// The SSZ `mix_in_length(root, length)`: `H(root || uint256(length))`.
pub fn mix_in_length(root: &Chunk, length: u64) -> Chunk {
    let mut len = [0u8; 32];
    len[..8].copy_from_slice(&length.to_le_bytes());
    crate::accel::hash::hash_pair(Kernel::detect(), root, &len)
}

/// `hash_tree_root` of an SSZ `List[T, max_len]` of a basic type.
pub fn list_root<T: Basic>(
    hasher: &dyn BatchHasher,
    values: &[T],
    max_len: u64,
) -> Result<Chunk, MerkleError> {
    if values.len() as u64 > max_len {
        return Err(MerkleError::OverLimit {
            count: values.len() as u64,
            limit: max_len,
        });
    }
    let limit = (max_len * T::SIZE as u64).div_ceil(32);
    let root = merkleize(hasher, &pack(values), Some(limit))?;
    Ok(mix_in_length(&root, values.len() as u64))
}

/// `hash_tree_root` of an SSZ `Vector[T, N]` of a basic type (`values.len() == N`).
pub fn vector_root<T: Basic>(hasher: &dyn BatchHasher, values: &[T]) -> Result<Chunk, MerkleError> {
    merkleize(hasher, &pack(values), None)
}
