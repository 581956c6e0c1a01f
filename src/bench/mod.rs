//! `quasar bench …`: throughput of each backend beside its peers, measured in the same run
//! and reported as ratios (these machines are shared and noisy; absolute times mean little).

pub mod bls;
pub mod gpu;
pub mod hash;
pub mod import;
pub mod net;
pub mod peers;
mod plot;
pub mod sync;

use std::time::{Duration, Instant};

/// A scratch folder of a benchmark, removed when dropped.
pub(crate) struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `f` until at least `target` has passed (and at least once, at most `max_reps`
/// times); the fastest run.
pub fn time_best(target: Duration, max_reps: usize, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut best = Duration::MAX;
    for _ in 0..max_reps.max(1) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        if start.elapsed() >= target {
            break;
        }
    }
    best
}

/// Deterministic pseudo-random chunks (splitmix64), so every run hashes the same tree.
pub fn random_chunks(n: usize, seed: u64) -> Vec<[u8; 32]> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            let mut c = [0u8; 32];
            for w in c.chunks_mut(8) {
                w.copy_from_slice(&next().to_le_bytes());
            }
            c
        })
        .collect()
}
