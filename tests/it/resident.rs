//! Resident GPU trees (`accel::resident`) against their CPU twin (`merkle::tree`): the
//! same dirty sets, the same natural roots and levels, bit for bit, after random sparse,
//! dense, growing (past the capacity), shrinking and emptying updates; two updates in
//! flight at once; a dropped update; a lost device. On lavapipe in CI; no adapter fails.

use quasar::accel::gpu::GpuContext;
use quasar::accel::hash::{hash_pair, CpuHasher};
use quasar::accel::resident::{ResidentTrees, TreeUpdate};
use quasar::merkle::tree::{rehash, LeafTree};
use quasar::merkle::{synthetic, zero_hashes, CachedStateRoot, Chunk};
use quasar_kernels::sha256::Kernel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn resident() -> ResidentTrees {
    let ctx = crate::merkle::gpu().context().clone();
    ResidentTrees::new(ctx).expect("resident trees on the test GPU")
}

fn chunk(rng: &mut StdRng) -> Chunk {
    let mut c = [0u8; 32];
    rng.fill(&mut c[..]);
    c
}

/// One random change of a tree's leaves, as the state's lists change.
fn mutate(rng: &mut StdRng, leaves: &mut Vec<Chunk>) {
    let n = leaves.len();
    match rng.random_range(0..8) {
        // A block: a few leaves.
        0..=2 if n > 0 => {
            for _ in 0..rng.random_range(1..=n.min(20)) {
                let i = rng.random_range(0..n);
                leaves[i] = chunk(rng);
            }
        }
        // An epoch: every leaf.
        3 => leaves.iter_mut().for_each(|l| *l = chunk(rng)),
        // Appends, sometimes past the next power of two.
        4 => {
            let add = rng.random_range(1..=n.max(3));
            leaves.extend((0..add).map(|_| chunk(rng)));
        }
        // Drops from the end.
        5 if n > 0 => leaves.truncate(rng.random_range(0..n)),
        // Emptied.
        6 => leaves.clear(),
        // Nothing.
        _ => {}
    }
}

/// The natural root of `leaves` straight from the definition.
fn natural(leaves: &[Chunk]) -> Chunk {
    levels_of(leaves)
        .last()
        .and_then(|l| l.first().copied())
        .unwrap_or(zero_hashes()[0])
}

/// Every level of the natural tree over `leaves` (odd last nodes paired with zeros).
fn levels_of(leaves: &[Chunk]) -> Vec<Vec<Chunk>> {
    let mut levels = vec![leaves.to_vec()];
    let mut k = 0;
    while levels[k].len() > 1 {
        let next = levels[k]
            .chunks(2)
            .map(|p| hash_pair(Kernel::Scalar, &p[0], p.get(1).unwrap_or(&zero_hashes()[k])))
            .collect();
        levels.push(next);
        k += 1;
    }
    levels
}

#[test]
fn resident_trees_equal_host_trees_on_random_updates() {
    let mut rng = StdRng::seed_from_u64(12);
    let cpu = CpuHasher::simd();
    let mut gpu = resident();
    let sizes = [0usize, 1, 2, 3, 1000, 4097, 300];
    let mut leaves: Vec<Vec<Chunk>> = sizes
        .iter()
        .map(|&n| (0..n).map(|_| chunk(&mut rng)).collect())
        .collect();
    let mut host: Vec<LeafTree> = vec![LeafTree::default(); sizes.len()];
    let mut uploaded_sparse = false;
    for round in 0..40 {
        if round > 0 {
            for l in leaves.iter_mut() {
                mutate(&mut rng, l);
            }
        }
        let dirty: Vec<Vec<usize>> = host
            .iter_mut()
            .zip(&leaves)
            .map(|(t, l)| t.diff_leaves(l))
            .collect();
        let before = gpu.stats();
        let updates: Vec<TreeUpdate<'_>> = leaves
            .iter()
            .zip(&dirty)
            .map(|(l, d)| TreeUpdate {
                leaves: l,
                dirty: d,
            })
            .collect();
        let got = gpu.update(&updates).expect("resident update");
        {
            let mut trees: Vec<&mut LeafTree> = host.iter_mut().collect();
            rehash(&cpu, &mut trees, dirty.clone()).expect("host rehash");
        }
        for (t, l) in leaves.iter().enumerate() {
            let want = natural(l);
            assert_eq!(host[t].natural_root(), want, "round {round} tree {t}: host");
            assert_eq!(got[t], want, "round {round} tree {t}: resident");
        }
        let after = gpu.stats();
        let total: usize = leaves.iter().map(Vec::len).sum();
        if after.layouts == before.layouts {
            let dirty_total: usize = dirty.iter().map(Vec::len).sum();
            let up = (after.leaves_uploaded - before.leaves_uploaded) as usize;
            // Only dirty leaves (or, for a mostly dirty tree, that tree's leaves) go up.
            assert!(up <= total, "round {round}: {up} leaves up of {total}");
            if dirty_total * 4 < total
                && dirty
                    .iter()
                    .zip(&leaves)
                    .all(|(d, l)| d.len() * 2 <= l.len())
            {
                assert_eq!(
                    up, dirty_total,
                    "round {round}: sparse update uploads only dirty leaves"
                );
                uploaded_sparse = true;
            }
        }
    }
    assert!(uploaded_sparse, "no round exercised the sparse path");
    assert!(
        gpu.stats().layouts >= 2,
        "no round outgrew a tree's capacity"
    );
    // The device's levels are the definition's, node for node.
    for (t, l) in leaves.iter().enumerate() {
        let dev = gpu.read_levels(t, l.len()).expect("read levels");
        let want = levels_of(l);
        assert_eq!(dev.len(), want.len().max(1), "tree {t}: level count");
        for (k, (d, w)) in dev.iter().zip(&want).enumerate() {
            assert_eq!(d, w, "tree {t} level {k}");
        }
    }
}

#[test]
fn two_updates_in_flight_and_a_dropped_one_stay_in_order() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut gpu = resident();
    let mut leaves: Vec<Chunk> = (0..777).map(|_| chunk(&mut rng)).collect();
    let mut host = LeafTree::default();
    let d0 = host.diff_leaves(&leaves);
    let first = gpu
        .submit(&[TreeUpdate {
            leaves: &leaves,
            dirty: &d0,
        }])
        .expect("first");
    let root0 = natural(&leaves);
    // The second update is prepared and submitted while the first may still run.
    for _ in 0..9 {
        let i = rng.random_range(0..leaves.len());
        leaves[i] = chunk(&mut rng);
    }
    let d1 = host.diff_leaves(&leaves);
    let second = gpu
        .submit(&[TreeUpdate {
            leaves: &leaves,
            dirty: &d1,
        }])
        .expect("second");
    let root1 = natural(&leaves);
    assert_eq!(gpu.wait(first).expect("first roots"), vec![root0]);
    assert_eq!(gpu.wait(second).expect("second roots"), vec![root1]);
    // An update whose roots nobody reads still lands before the next one.
    leaves[3] = chunk(&mut rng);
    let d2 = host.diff_leaves(&leaves);
    drop(
        gpu.submit(&[TreeUpdate {
            leaves: &leaves,
            dirty: &d2,
        }])
        .expect("third"),
    );
    leaves[700] = chunk(&mut rng);
    let d3 = host.diff_leaves(&leaves);
    let got = gpu
        .update(&[TreeUpdate {
            leaves: &leaves,
            dirty: &d3,
        }])
        .expect("fourth");
    assert_eq!(got, vec![natural(&leaves)]);
    // Bad input is an error, not a panic.
    assert!(gpu
        .submit(&[TreeUpdate {
            leaves: &leaves,
            dirty: &[leaves.len()]
        }])
        .is_err());
}

#[test]
fn a_resident_state_root_survives_a_lost_device_on_the_cpu() {
    let ctx = GpuContext::new().expect("GPU adapter (install mesa-vulkan-drivers)");
    let h = CpuHasher::simd();
    let mut rng = synthetic::rng(3);
    let mut state = synthetic::minimal_state(200, 2);
    let mut cache = CachedStateRoot::default()
        .with_resident(ResidentTrees::new(ctx.clone()).expect("resident trees"));
    let want = quasar::merkle::state_root(&h, &state).expect("cold");
    assert_eq!(cache.update(&h, &state).expect("resident"), want);
    assert!(cache.resident().is_some());
    synthetic::minimal_block(&mut state, &mut rng, 50, 4);
    ctx.destroy();
    let want = quasar::merkle::state_root(&h, &state).expect("cold");
    assert_eq!(cache.update(&h, &state).expect("after the loss"), want);
    assert!(cache.resident().is_none(), "fell back to the host trees");
    synthetic::minimal_block(&mut state, &mut rng, 50, 4);
    let want = quasar::merkle::state_root(&h, &state).expect("cold");
    assert_eq!(cache.update(&h, &state).expect("on the host"), want);
}
