//! Committee shufflings, computed once per (seed, active set) and kept in a
//! [`ShufflingCache`]: an LRU owned by whoever runs the transition (no process-wide cache).
//!
//! The spec's `compute_committee` runs `compute_shuffled_index` (swap-or-not, 2 hashes per
//! round) for every member of every committee it is asked for: at 16k validators one
//! Electra attestation names ~2k members, i.e. ~180k hashes per block in the mainnet
//! preset. Here the whole epoch's permutation is computed at once — each round's pivot and
//! source hashes are computed once for all positions (`n / 256 + 1` per round instead of
//! two per position) — and cached, so a committee is a slice of the cached list.
//!
//! `shuffled[i] == indices[compute_shuffled_index(i, n, seed)]` for every position `i`:
//! the per-position rounds are the spec's, only the hashes are shared. Held equal to the
//! spec's function by the tests below and by every spec vector that touches committees.
//!
//! The key is the seed, the round count and a SHA-256 digest of the active indices, so two
//! states with the same seed but different active sets never share an entry.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Shufflings kept (a node needs the previous, current and next epoch's, on a few forks).
pub const SHUFFLING_CACHE_ENTRIES: usize = 16;

type Key = [u8; 32];

/// The shufflings of one chain, by (seed, round count, active set), with its own hit and
/// miss counters. Owned by whoever runs the transition (through
/// [`TransitionCtx`](crate::transition::TransitionCtx)); two caches share nothing.
pub struct ShufflingCache {
    entries: Mutex<LruCache<Key, Arc<Vec<u64>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for ShufflingCache {
    fn default() -> Self {
        Self::new(SHUFFLING_CACHE_ENTRIES)
    }
}

impl std::fmt::Debug for ShufflingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (hits, misses) = self.stats();
        f.debug_struct("ShufflingCache")
            .field("hits", &hits)
            .field("misses", &misses)
            .finish()
    }
}

impl ShufflingCache {
    /// A cache keeping up to `entries` shufflings (at least one).
    pub fn new(entries: usize) -> Self {
        ShufflingCache {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(entries.max(1)).expect("non-zero"),
            )),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Hits and misses of this cache since it was made (for logs, benches and tests).
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// `[indices[compute_shuffled_index(i, n, seed)] for i in 0..n]`, from the cache when
    /// the same seed and active set were shuffled before.
    pub fn shuffled_indices(
        &self,
        seed: &[u8; 32],
        rounds: usize,
        indices: &[u64],
    ) -> Arc<Vec<u64>> {
        let key = key_of(seed, rounds, indices);
        if let Some(hit) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return hit.clone();
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let permutation = shuffle_positions(seed, rounds, indices.len() as u64);
        let list: Arc<Vec<u64>> = Arc::new(
            permutation
                .into_iter()
                .map(|p| indices[p as usize])
                .collect(),
        );
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(key, list.clone());
        list
    }
}

fn key_of(seed: &[u8; 32], rounds: usize, indices: &[u64]) -> Key {
    let mut h = Sha256::new();
    h.update(seed);
    h.update((rounds as u64).to_le_bytes());
    h.update((indices.len() as u64).to_le_bytes());
    for chunk in indices.chunks(4096) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|i| i.to_le_bytes()).collect();
        h.update(&bytes);
    }
    h.finalize().into()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `compute_shuffled_index(i, n, seed)` for every `i` in `0..n`, the hashes of each round
/// shared across positions.
pub fn shuffle_positions(seed: &[u8; 32], rounds: usize, n: u64) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    // Per round: the pivot and the source hashes of every 256-position block.
    let blocks = (n / 256 + 1) as usize;
    let tables: Vec<(u64, Vec<[u8; 32]>)> = (0..rounds)
        .into_par_iter()
        .map(|round| {
            let r = [round as u8];
            let pivot_hash = sha256(&[seed, &r]);
            let pivot = u64::from_le_bytes(pivot_hash[0..8].try_into().expect("8 bytes")) % n;
            let sources = (0..blocks)
                .map(|b| sha256(&[seed, &r, &(b as u32).to_le_bytes()]))
                .collect();
            (pivot, sources)
        })
        .collect();
    // The whole list, round by round (the swap-or-not network run over a list instead of
    // one index at a time): round r swaps the pairs {i, flip} whose bit at max(i, flip)
    // is set. With `a` the identity, applying the rounds from the last to the first gives
    // `a[i] = π_last(… π_0(i))`, which is `compute_shuffled_index(i)`. Each round walks
    // the list from both ends (sequential memory) instead of a random table read per
    // index per round.
    let n_usize = n as usize;
    let mut a: Vec<u64> = (0..n).collect();
    for (pivot, sources) in tables.iter().rev() {
        let pivot = *pivot as usize;
        // Pairs mirror around pivot / 2 in [0, pivot] and around (pivot + n) / 2 in
        // (pivot, n): i pairs with flip = (pivot - i) mod n.
        let mut swap_pairs = |lo: usize, hi: usize| {
            // Pairs (i, j) with i < j, i + j ≡ pivot (mod n), lo <= i, j <= hi, i + j = lo + hi.
            let (mut i, mut j) = (lo, hi);
            while i < j {
                let position = j; // max(i, flip)
                let byte = sources[position / 256][(position % 256) / 8];
                if (byte >> (position % 8)) & 1 == 1 {
                    a.swap(i, j);
                }
                i += 1;
                j -= 1;
            }
        };
        swap_pairs(0, pivot);
        if pivot + 1 < n_usize {
            swap_pairs(pivot + 1, n_usize - 1);
        }
    }
    a
}

/// `compute_shuffled_index(index, n, seed)` for many indices under one seed (the
/// proposer and sync-committee selections try candidate after candidate): each round's
/// pivot is hashed once, and each source block once, when first needed — instead of two
/// hashes per round per candidate. Same results as the spec's function.
pub struct SeededShuffle {
    seed: [u8; 32],
    n: u64,
    pivots: Vec<u64>,
    sources: std::collections::HashMap<(usize, u64), [u8; 32]>,
}

impl SeededShuffle {
    pub fn new(seed: &[u8; 32], rounds: usize, n: u64) -> Self {
        let pivots = if n == 0 {
            Vec::new()
        } else {
            (0..rounds)
                .map(|round| {
                    let h = sha256(&[seed, &[round as u8]]);
                    u64::from_le_bytes(h[0..8].try_into().expect("8 bytes")) % n
                })
                .collect()
        };
        SeededShuffle {
            seed: *seed,
            n,
            pivots,
            sources: std::collections::HashMap::new(),
        }
    }

    /// The shuffled position of `index` (`None` when `index >= n`).
    pub fn index(&mut self, index: u64) -> Option<u64> {
        let n = self.n;
        if index >= n {
            return None;
        }
        let mut index = index;
        for (round, &pivot) in self.pivots.iter().enumerate() {
            let mut flip = pivot + n - index;
            if flip >= n {
                flip -= n;
            }
            let position = index.max(flip);
            let block = position / 256;
            let seed = &self.seed;
            let source = self
                .sources
                .entry((round, block))
                .or_insert_with(|| sha256(&[seed, &[round as u8], &(block as u32).to_le_bytes()]));
            let byte = source[((position % 256) / 8) as usize];
            if (byte >> (position % 8)) & 1 == 1 {
                index = flip;
            }
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's `compute_shuffled_index`, written out here as the oracle.
    fn spec_index(index: u64, n: u64, seed: &[u8; 32], rounds: usize) -> u64 {
        let mut index = index;
        for round in 0..rounds {
            let r = [round as u8];
            let pivot = u64::from_le_bytes(sha256(&[seed, &r])[0..8].try_into().unwrap()) % n;
            let flip = (pivot + n - index) % n;
            let position = index.max(flip);
            let source = sha256(&[seed, &r, &((position / 256) as u32).to_le_bytes()]);
            let byte = source[((position % 256) / 8) as usize];
            if (byte >> (position % 8)) & 1 == 1 {
                index = flip;
            }
        }
        index
    }

    #[test]
    fn equals_the_spec_index_for_every_position() {
        for (n, rounds, s) in [
            (1u64, 10, 1u8),
            (2, 10, 2),
            (255, 90, 3),
            (256, 90, 4),
            (257, 10, 5),
            (1000, 90, 6),
            (5000, 10, 7),
            (3, 90, 8),
            (4096, 90, 9),
            (70_001, 12, 10),
        ] {
            let seed = [s; 32];
            let all = shuffle_positions(&seed, rounds, n);
            assert_eq!(all.len() as u64, n);
            for i in 0..n {
                assert_eq!(
                    all[i as usize],
                    spec_index(i, n, &seed, rounds),
                    "n={n} i={i}"
                );
            }
            let mut sorted = all.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
        }
    }

    /// The per-index form (every round's tables, then each index through all rounds):
    /// the earlier implementation, an oracle at sizes where `spec_index` is too slow.
    fn by_index(seed: &[u8; 32], rounds: usize, n: u64) -> Vec<u64> {
        let tables: Vec<(u64, Vec<[u8; 32]>)> = (0..rounds)
            .map(|round| {
                let r = [round as u8];
                let pivot = u64::from_le_bytes(sha256(&[seed, &r])[0..8].try_into().unwrap()) % n;
                let sources = (0..n / 256 + 1)
                    .map(|b| sha256(&[seed, &r, &(b as u32).to_le_bytes()]))
                    .collect();
                (pivot, sources)
            })
            .collect();
        (0..n)
            .into_par_iter()
            .map(|mut index| {
                for (pivot, sources) in &tables {
                    let flip = (pivot + n - index) % n;
                    let position = index.max(flip);
                    let byte = sources[(position / 256) as usize][((position % 256) / 8) as usize];
                    if (byte >> (position % 8)) & 1 == 1 {
                        index = flip;
                    }
                }
                index
            })
            .collect()
    }

    #[test]
    fn the_whole_list_form_equals_the_per_index_form_at_registry_sizes() {
        for (n, s) in [(300_000u64, 11u8), (262_145, 12)] {
            let seed = [s; 32];
            let t = std::time::Instant::now();
            let list = shuffle_positions(&seed, 90, n);
            let list_t = t.elapsed();
            let t = std::time::Instant::now();
            let each = by_index(&seed, 90, n);
            let each_t = t.elapsed();
            assert_eq!(list, each, "n={n}");
            // Printed for the note, never asserted (speed is a benchmark, not a test).
            println!("n={n}: whole list {list_t:?}, per index {each_t:?}");
        }
    }

    #[test]
    fn seeded_shuffle_equals_the_spec_index() {
        for (n, rounds) in [(1u64, 90), (7, 10), (300, 90), (20_000, 90)] {
            let seed = [n as u8 ^ 0x5a; 32];
            let mut s = SeededShuffle::new(&seed, rounds, n);
            for i in (0..n).step_by((n as usize / 97).max(1)) {
                assert_eq!(
                    s.index(i),
                    Some(spec_index(i, n, &seed, rounds)),
                    "n={n} i={i}"
                );
            }
            assert_eq!(s.index(n), None);
        }
    }

    #[test]
    fn cached_by_seed_and_active_set() {
        let seed = [42u8; 32];
        let a: Vec<u64> = (0..300).map(|i| i * 2).collect();
        let b: Vec<u64> = (0..300).map(|i| i * 2 + 1).collect();
        let cache = ShufflingCache::default();
        let sa = cache.shuffled_indices(&seed, 10, &a);
        let sb = cache.shuffled_indices(&seed, 10, &b);
        assert_ne!(sa, sb, "different active sets never share an entry");
        let again = cache.shuffled_indices(&seed, 10, &a);
        assert!(Arc::ptr_eq(&sa, &again), "second lookup is a hit");
        assert_eq!(cache.stats(), (1, 2));
        let other = ShufflingCache::default();
        let fresh = other.shuffled_indices(&seed, 10, &a);
        assert!(!Arc::ptr_eq(&sa, &fresh), "another cache shares nothing");
        assert_eq!(other.stats(), (0, 1));
        for i in 0..300u64 {
            assert_eq!(sa[i as usize], a[spec_index(i, 300, &seed, 10) as usize]);
        }
    }
}
