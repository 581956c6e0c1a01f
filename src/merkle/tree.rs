//! A cached merkle tree over a list of chunks: every level kept on the host, so that a
//! change to a few leaves rehashes only their paths. Several trees are rehashed together,
//! one batch per level across all of them ([`rehash`]), so a block's few dirty paths in
//! a dozen lists cost about forty `hash_pairs` calls, not one per node.

use rayon::prelude::*;

use super::{zero_hashes, Chunk, MerkleError};
use crate::accel::hash::{ceil_log2, pad_root, BatchHasher};
use quasar_kernels::sha256::Kernel;

/// Below this many leaves a diff runs on the calling thread.
const PAR_DIFF: usize = 1 << 14;

/// The levels of the tree over `levels[0]` (the leaves): level k holds ceil(n / 2^k)
/// nodes, an odd last node paired with the zero subtree of height k, up to the natural
/// root at height ceil(log2 n).
#[derive(Clone, Debug)]
pub struct LeafTree {
    levels: Vec<Vec<Chunk>>,
}

impl Default for LeafTree {
    fn default() -> Self {
        Self {
            levels: vec![Vec::new()],
        }
    }
}

impl LeafTree {
    /// The leaves.
    pub fn leaves(&self) -> &[Chunk] {
        &self.levels[0]
    }

    /// Height of the natural tree over the leaves.
    pub fn depth(&self) -> u32 {
        ceil_log2(self.levels[0].len() as u64)
    }

    /// Replaces the leaves with `new`, returning the (ascending) indices whose path must
    /// be rehashed: the leaves that differ, the appended ones, and after a change of
    /// length the new last leaf (its ancestors are the last node of every level).
    pub fn diff_leaves(&mut self, new: &[Chunk]) -> Vec<usize> {
        let old = &mut self.levels[0];
        let common = old.len().min(new.len());
        let mut dirty: Vec<usize> = if common >= PAR_DIFF {
            (0..common)
                .into_par_iter()
                .filter(|&i| old[i] != new[i])
                .collect()
        } else {
            (0..common).filter(|&i| old[i] != new[i]).collect()
        };
        for &i in &dirty {
            old[i] = new[i];
        }
        let changed_len = old.len() != new.len();
        old.truncate(new.len());
        old.extend_from_slice(&new[common..]);
        dirty.extend(common..new.len());
        if changed_len {
            mark_last(&mut dirty, new.len());
        }
        dirty
    }

    /// Like [`diff_leaves`](Self::diff_leaves) with the new leaves given by `leaf(i)` for
    /// `i < len` — compared in place, without building the new leaf vector.
    pub fn diff_leaves_by(
        &mut self,
        len: usize,
        leaf: impl Fn(usize) -> Chunk + Sync,
    ) -> Vec<usize> {
        let old = &mut self.levels[0];
        let common = old.len().min(len);
        let mut dirty: Vec<usize> = if common >= PAR_DIFF {
            (0..common)
                .into_par_iter()
                .filter(|&i| old[i] != leaf(i))
                .collect()
        } else {
            (0..common).filter(|&i| old[i] != leaf(i)).collect()
        };
        for &i in &dirty {
            old[i] = leaf(i);
        }
        let changed_len = old.len() != len;
        old.truncate(len);
        old.extend((common..len).map(&leaf));
        dirty.extend(common..len);
        if changed_len {
            mark_last(&mut dirty, len);
        }
        dirty
    }

    /// Sets the leaves at `indices` (ascending; those at or past the old length must be
    /// exactly the appended range) after resizing to `len`, returning the dirty indices.
    pub fn set_leaves(&mut self, len: usize, indices: &[usize], values: &[Chunk]) -> Vec<usize> {
        debug_assert_eq!(indices.len(), values.len());
        let leaves = &mut self.levels[0];
        let changed_len = leaves.len() != len;
        leaves.resize(len, [0u8; 32]);
        for (&i, v) in indices.iter().zip(values) {
            leaves[i] = *v;
        }
        let mut dirty = indices.to_vec();
        if changed_len {
            mark_last(&mut dirty, len);
        }
        dirty
    }

    /// Resizes the upper levels to the shape the leaves call for.
    fn reshape(&mut self) {
        let n = self.levels[0].len();
        let depth = self.depth() as usize;
        self.levels.truncate(depth + 1);
        while self.levels.len() < depth + 1 {
            self.levels.push(Vec::new());
        }
        for k in 1..=depth {
            self.levels[k].resize(n.div_ceil(1 << k), [0u8; 32]);
        }
    }

    /// The natural root: the root of the leaves padded to 2^depth.
    pub fn natural_root(&self) -> Chunk {
        let depth = self.depth() as usize;
        self.levels[depth]
            .first()
            .copied()
            .unwrap_or(zero_hashes()[0])
    }

    /// `merkleize(leaves, limit)` for a limit of `limit_chunks` (>= the leaf count).
    pub fn root(&self, limit_chunks: u64) -> Chunk {
        pad_natural(self.natural_root(), self.depth(), limit_chunks)
    }

    /// Keeps only the leaves (their levels live elsewhere, e.g. on the device); the next
    /// [`rehash`] of this tree must mark every leaf dirty.
    pub fn drop_upper_levels(&mut self) {
        self.levels.truncate(1);
        self.levels.shrink_to_fit();
    }
}

/// `merkleize(leaves, limit)` from the natural root of a tree of height `depth` (the
/// leaves padded to 2^depth) for a limit of `limit_chunks`.
pub fn pad_natural(natural: Chunk, depth: u32, limit_chunks: u64) -> Chunk {
    pad_root(
        Kernel::detect(),
        natural,
        depth,
        ceil_log2(limit_chunks).max(depth),
    )
}

/// Adds `len - 1` to the ascending `dirty` list (when `len > 0`) if it is not there.
fn mark_last(dirty: &mut Vec<usize>, len: usize) {
    if len == 0 {
        return;
    }
    let last = len - 1;
    match dirty.last() {
        Some(&l) if l == last => {}
        Some(&l) if l > last => {
            // Only reached when indices past the new length were passed; keep it sorted.
            dirty.retain(|&i| i < last);
            dirty.push(last);
        }
        _ => dirty.push(last),
    }
}

/// Rehashes the dirty paths of every tree, level by level: level k of all trees goes to
/// the hasher as one batch. `dirty[i]` are tree `i`'s dirty leaves, ascending.
pub fn rehash(
    hasher: &dyn BatchHasher,
    trees: &mut [&mut LeafTree],
    mut dirty: Vec<Vec<usize>>,
) -> Result<(), MerkleError> {
    assert_eq!(trees.len(), dirty.len());
    for t in trees.iter_mut() {
        t.reshape();
    }
    let max_depth = trees.iter().map(|t| t.depth()).max().unwrap_or(0);
    let zeros = zero_hashes();
    let mut blocks: Vec<[u8; 64]> = Vec::new();
    let mut out: Vec<Chunk> = Vec::new();
    for (k, zero) in zeros.iter().enumerate().take(max_depth as usize) {
        blocks.clear();
        for (t, d) in trees.iter().zip(dirty.iter_mut()) {
            if k >= t.depth() as usize {
                d.clear();
                continue;
            }
            let mut parents: Vec<usize> = Vec::with_capacity(d.len());
            for &i in d.iter() {
                let p = i / 2;
                if parents.last() != Some(&p) {
                    parents.push(p);
                }
            }
            let level = &t.levels[k];
            let start = blocks.len();
            blocks.resize(start + parents.len(), [0u8; 64]);
            let fill = |(block, &p): (&mut [u8; 64], &usize)| {
                block[..32].copy_from_slice(&level[2 * p]);
                block[32..].copy_from_slice(level.get(2 * p + 1).unwrap_or(zero));
            };
            if parents.len() >= PAR_DIFF {
                blocks[start..]
                    .par_iter_mut()
                    .zip(parents.par_iter())
                    .for_each(fill);
            } else {
                blocks[start..]
                    .iter_mut()
                    .zip(parents.iter())
                    .for_each(fill);
            }
            *d = parents;
        }
        if blocks.is_empty() {
            break;
        }
        out.clear();
        out.resize(blocks.len(), [0u8; 32]);
        hasher.hash_pairs(&blocks, &mut out)?;
        let mut offset = 0;
        for (t, d) in trees.iter_mut().zip(dirty.iter()) {
            if d.is_empty() {
                continue;
            }
            let next = &mut t.levels[k + 1];
            for (j, &p) in d.iter().enumerate() {
                next[p] = out[offset + j];
            }
            offset += d.len();
        }
    }
    Ok(())
}
