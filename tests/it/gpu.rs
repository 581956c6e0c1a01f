//! GPU ≡ CPU differential tests for the SHA-256 merkle kernels (`shaders/sha256.wgsl`).
//!
//! They run on whatever adapter wgpu finds; on a host without a GPU that is Mesa's
//! lavapipe (`mesa-vulkan-drivers`), slow but the same WGSL. A missing adapter fails.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use quasar::accel::gpu::{GpuContext, GpuError, GpuHasher};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

fn new_context() -> Arc<GpuContext> {
    GpuContext::new().unwrap_or_else(|e| {
        panic!(
            "the GPU tests need a wgpu adapter; on a host without a GPU install \
             mesa-vulkan-drivers (lavapipe, a CPU Vulkan device): {e}"
        )
    })
}

/// One context and fused hasher shared by the tests that do not count submissions.
fn shared() -> &'static GpuHasher {
    static HASHER: OnceLock<GpuHasher> = OnceLock::new();
    HASHER.get_or_init(|| GpuHasher::new(new_context()).expect("building the GPU hasher"))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn pair(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(l);
    block[32..].copy_from_slice(r);
    sha256(&block)
}

fn zero_hashes() -> Vec<[u8; 32]> {
    let mut z = vec![[0u8; 32]];
    for i in 0..64 {
        let next = pair(&z[i], &z[i]);
        z.push(next);
    }
    z
}

/// Every level 0..=depth of the padded tree, plainly.
fn reference_levels(leaves: &[[u8; 32]], depth: u32) -> Vec<Vec<[u8; 32]>> {
    let z = zero_hashes();
    let mut levels = vec![leaves.to_vec()];
    for k in 0..depth as usize {
        let below = &levels[k];
        let next: Vec<[u8; 32]> = below
            .chunks(2)
            .map(|c| pair(&c[0], c.get(1).unwrap_or(&z[k])))
            .collect();
        levels.push(next);
    }
    levels
}

fn reference_root(leaves: &[[u8; 32]], depth: u32) -> [u8; 32] {
    reference_levels(leaves, depth)[depth as usize]
        .first()
        .copied()
        .unwrap_or(zero_hashes()[depth as usize])
}

fn random_leaves(n: usize, seed: u64) -> Vec<[u8; 32]> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = vec![[0u8; 32]; n];
    for leaf in &mut v {
        rng.fill(&mut leaf[..]);
    }
    v
}

fn ceil_log2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

#[test]
fn gpu_adapter_is_found_and_named() {
    let hasher = shared();
    let name = hasher.context().adapter_name();
    assert!(
        name.contains('(') && name.contains(','),
        "adapter name {name:?} lacks backend/type"
    );
    assert!(!hasher.context().is_lost());
}

#[test]
fn gpu_hash_pairs_match_sha2() {
    let hasher = shared();
    let mut rng = StdRng::seed_from_u64(7);
    for n in [0usize, 1, 2, 3, 63, 64, 65, 255, 256, 257, 1000] {
        let mut blocks = vec![[0u8; 64]; n];
        for b in &mut blocks {
            rng.fill(&mut b[..]);
        }
        let mut out = vec![[0xAAu8; 32]; n];
        hasher.hash_pairs(&blocks, &mut out).expect("hash_pairs");
        for (i, (b, o)) in blocks.iter().zip(&out).enumerate() {
            assert_eq!(*o, sha256(b), "n = {n}, block {i}");
        }
    }
    // The all-zero block is the first zero hash.
    let mut out = [[0u8; 32]; 1];
    hasher.hash_pairs(&[[0u8; 64]], &mut out).unwrap();
    assert_eq!(out[0], zero_hashes()[1]);
}

#[test]
fn gpu_hash_pairs_rejects_mismatched_output() {
    let hasher = shared();
    let mut out = vec![[0u8; 32]; 2];
    let err = hasher.hash_pairs(&[[1u8; 64]; 3], &mut out).unwrap_err();
    assert!(matches!(err, GpuError::Submission(_)), "{err}");
    assert!(
        !hasher.context().is_lost(),
        "a caller's mistake must not mark the device lost"
    );
}

#[test]
fn gpu_merkleize_matches_reference() {
    let hasher = shared();
    for (seed, n) in [
        1usize, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 255, 256, 257, 1023, 1024, 1025, 3000,
    ]
    .into_iter()
    .enumerate()
    {
        let leaves = random_leaves(n, seed as u64);
        let levels = reference_levels(&leaves, 40);
        let h = ceil_log2(n);
        for depth in [h, h + 3, 40] {
            let want = levels[depth as usize][0];
            let got = hasher.merkleize(&leaves, depth).expect("merkleize");
            assert_eq!(got, want, "n = {n}, depth = {depth}");
        }
    }
}

#[test]
fn gpu_merkleize_all_zero_leaves_is_zero_hash() {
    let hasher = shared();
    let z = zero_hashes();
    for (n, depth) in [
        (1usize, 0u32),
        (1, 5),
        (2, 1),
        (1000, 10),
        (1024, 10),
        (1024, 12),
        (3000, 40),
    ] {
        let got = hasher.merkleize(&vec![[0u8; 32]; n], depth).unwrap();
        assert_eq!(got, z[depth as usize], "n = {n}, depth = {depth}");
    }
    // No leaves at all: every leaf is a zero chunk.
    assert_eq!(hasher.merkleize(&[], 7).unwrap(), z[7]);
}

#[test]
fn gpu_merkleize_levels_returns_kept_levels() {
    let hasher = shared();
    for (seed, n) in [(11u64, 3000usize), (12, 1000), (13, 257), (14, 2), (15, 1)] {
        let leaves = random_leaves(n, seed);
        let h = ceil_log2(n);
        let depth = h + 2;
        let levels = reference_levels(&leaves, depth);
        let all: Vec<u32> = (0..=depth).collect();
        let keeps: Vec<Vec<u32>> = vec![
            vec![],
            vec![0],
            vec![1],
            vec![1, 2, 3],
            vec![9, 10],
            vec![h],
            vec![depth],
            vec![5, 1, 5],
            all,
        ];
        for keep in keeps {
            let keep: Vec<u32> = keep.into_iter().filter(|&k| k <= depth).collect();
            let (root, got) = hasher
                .merkleize_levels(&leaves, depth, &keep)
                .expect("merkleize_levels");
            assert_eq!(root, levels[depth as usize][0], "n = {n}, keep = {keep:?}");
            assert_eq!(got.len(), keep.len());
            for (k, level) in keep.iter().zip(&got) {
                assert_eq!(level.len(), n.div_ceil(1 << k), "n = {n}, level {k} size");
                assert_eq!(*level, levels[*k as usize], "n = {n}, level {k}");
            }
        }
    }
}

#[test]
fn gpu_fused_unfused_and_split_paths_match_reference() {
    let ctx = shared().context().clone();
    let fused = GpuHasher::new(ctx.clone()).unwrap().with_fusion(true);
    let unfused = GpuHasher::new(ctx.clone()).unwrap().with_fusion(false);
    let split = GpuHasher::new(ctx).unwrap().with_max_subtree_leaves(64);
    assert!(fused.is_fused() && !unfused.is_fused());
    for (seed, n) in [
        (21u64, 1usize),
        (22, 5),
        (23, 64),
        (24, 65),
        (25, 1000),
        (26, 3000),
    ] {
        let leaves = random_leaves(n, seed);
        for depth in [ceil_log2(n), ceil_log2(n) + 3] {
            let want = reference_root(&leaves, depth);
            for (name, hasher) in [("fused", &fused), ("unfused", &unfused), ("split", &split)] {
                assert_eq!(
                    hasher.merkleize(&leaves, depth).unwrap(),
                    want,
                    "{name} n = {n}"
                );
            }
        }
        let depth = ceil_log2(n) + 1;
        let levels = reference_levels(&leaves, depth);
        // Every level kept (forces one dispatch per level), and a sparse set (fused spans).
        let every: Vec<u32> = (0..=depth).rev().collect();
        let sparse: Vec<u32> = vec![depth, 2, 0]
            .into_iter()
            .filter(|&k| k <= depth)
            .collect();
        for (name, hasher) in [("fused", &fused), ("unfused", &unfused), ("split", &split)] {
            for keep in [&every, &sparse] {
                let (root, got) = hasher.merkleize_levels(&leaves, depth, keep).unwrap();
                assert_eq!(root, levels[depth as usize][0], "{name} n = {n}");
                for (k, level) in keep.iter().zip(&got) {
                    assert_eq!(*level, levels[*k as usize], "{name} n = {n}, level {k}");
                }
            }
        }
    }
    let mut blocks = vec![[0u8; 64]; 200];
    StdRng::seed_from_u64(27).fill(blocks.as_flattened_mut());
    let mut out = vec![[0u8; 32]; 200];
    split.hash_pairs(&blocks, &mut out).unwrap();
    for (b, o) in blocks.iter().zip(&out) {
        assert_eq!(*o, sha256(b));
    }
}

#[test]
fn gpu_repeated_calls_reuse_pooled_buffers_and_count_one_submission() {
    // Its own context, so parallel tests do not disturb the counters.
    let hasher = GpuHasher::new(new_context()).unwrap();
    let ctx = hasher.context().clone();
    let leaves = random_leaves(1000, 31);
    let want = reference_root(&leaves, 12);

    let before = ctx.stats();
    let first = hasher.merkleize(&leaves, 12).unwrap();
    let mid = ctx.stats();
    let created = hasher.pool_stats().created;
    let second = hasher.merkleize(&leaves, 12).unwrap();
    let after = ctx.stats();
    assert_eq!(first, want);
    assert_eq!(second, want);
    assert_eq!(mid.submissions - before.submissions, 1);
    assert_eq!(after.submissions - mid.submissions, 1);
    assert_eq!(
        mid.bytes_downloaded - before.bytes_downloaded,
        32,
        "root-only call reads back 32 bytes"
    );
    assert_eq!(after.bytes_downloaded - mid.bytes_downloaded, 32);
    assert!(mid.bytes_uploaded - before.bytes_uploaded >= 1000 * 32);
    assert_eq!(
        hasher.pool_stats().created,
        created,
        "second call must reuse the pooled buffers"
    );
    assert!(hasher.pool_stats().reused >= 4);

    // Kept levels come back in the same single submission.
    let (root, levels) = hasher.merkleize_levels(&leaves, 12, &[1, 3]).unwrap();
    let end = ctx.stats();
    assert_eq!(root, want);
    assert_eq!(end.submissions - after.submissions, 1);
    assert_eq!(
        end.bytes_downloaded - after.bytes_downloaded,
        32 * (1 + 500 + 125)
    );
    assert_eq!(levels[0].len(), 500);

    // A single leaf needs no GPU work at all.
    let one = hasher.merkleize(&leaves[..1], 3).unwrap();
    assert_eq!(one, reference_root(&leaves[..1], 3));
    assert_eq!(ctx.stats().submissions, end.submissions);
}

#[test]
fn gpu_rejects_bad_shapes_without_losing_the_device() {
    let hasher = shared();
    let leaves = random_leaves(5, 41);
    assert!(matches!(
        hasher.merkleize(&leaves, 41),
        Err(GpuError::TooLarge(_))
    ));
    assert!(matches!(
        hasher.merkleize(&leaves, 2),
        Err(GpuError::TooLarge(_))
    ));
    assert!(matches!(
        hasher.merkleize_levels(&leaves, 3, &[4]),
        Err(GpuError::TooLarge(_))
    ));
    assert!(!hasher.context().is_lost());
    assert_eq!(
        hasher.merkleize(&leaves, 3).unwrap(),
        reference_root(&leaves, 3)
    );
}

#[test]
fn gpu_hasher_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GpuHasher>();
    check::<GpuContext>();
    let hasher = shared();
    let leaves = random_leaves(600, 51);
    let want = reference_root(&leaves, 10);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| hasher.merkleize(&leaves, 10).unwrap()))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), want);
        }
    });
}

/// Timings for the report (not a pass/fail test): fused vs one dispatch per level, and
/// 2^16 / 2^18 leaves. `cargo test --release --test it gpu_throughput -- --ignored --nocapture`
#[test]
#[ignore = "timing report, run by hand"]
fn gpu_throughput_report() {
    let ctx = new_context();
    let fused = GpuHasher::new(ctx.clone()).unwrap().with_fusion(true);
    let unfused = GpuHasher::new(ctx.clone()).unwrap().with_fusion(false);
    println!("adapter: {}", ctx.adapter_name());
    let max_log2: u32 = std::env::var("QUASAR_GPU_REPORT_MAX_LOG2")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(18);
    for log2 in [12u32, 14, 16, 18, 20, 22, 24]
        .into_iter()
        .filter(|&l| l <= max_log2)
    {
        let n = 1usize << log2;
        let leaves = random_leaves(n, u64::from(log2));
        let reps: u32 = if ctx.is_software() { 2 } else { 5 };
        for (name, hasher) in [("fused", &fused), ("unfused", &unfused)] {
            let _ = hasher.merkleize(&leaves, log2).unwrap(); // warm the pool
            let before = ctx.stats();
            let t = Instant::now();
            let mut root = [0u8; 32];
            for _ in 0..reps {
                root = hasher.merkleize(&leaves, log2).unwrap();
            }
            let per = t.elapsed().as_secs_f64() / f64::from(reps);
            let after = ctx.stats();
            println!(
                "2^{log2} leaves {name:8}: {:9.3} ms/tree, {:8.3} Mhash/s, {:.1} submissions/tree, \
                 {} B up + {} B down per tree",
                per * 1e3,
                (n as f64 - 1.0) / per / 1e6,
                (after.submissions - before.submissions) as f64 / f64::from(reps),
                (after.bytes_uploaded - before.bytes_uploaded) / u64::from(reps),
                (after.bytes_downloaded - before.bytes_downloaded) / u64::from(reps),
            );
            if log2 <= 16 {
                assert_eq!(root, reference_root(&leaves, log2));
            }
        }
    }
}
