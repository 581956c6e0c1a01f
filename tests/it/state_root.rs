//! State roots through the merkle engine: the cold root of every `BeaconState` in the
//! vectors (`ssz_static`, `sanity` and `epoch_processing` pre/post states) on every
//! backend equals `ssz_rs`'s `hash_tree_root`, and a [`CachedStateRoot`] follows random
//! changes (a block's few balances and validators, an epoch's every balance, appended
//! validators, pending lists that grow and shrink) to the same root as a cold one.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quasar::accel::calibrate::Calibration;
use quasar::accel::gpu::GpuHasher;
use quasar::accel::hash::{AutoHasher, BatchHasher, CpuHasher, GpuBatchHasher};
use quasar::accel::resident::ResidentTrees;
use quasar::merkle::synthetic;
use quasar::merkle::{state_root, CachedStateRoot, Dirty};
use quasar::types::ssz::{hash_tree_root, SszDecode};
use quasar::types::ssz_static::{decompress_snappy, root_hex, MAX_DECOMPRESSED_LEN};
use quasar::types::{mainnet, minimal};
use quasar_kernels::sha256::Kernel;
use rand::Rng;
use ssz_rs::List;

/// Scalar, each SIMD kernel, the GPU (lavapipe in CI; no adapter fails the test), and
/// auto with the GPU taking every tree.
fn backends() -> Vec<(String, Arc<dyn BatchHasher>)> {
    let mut v: Vec<(String, Arc<dyn BatchHasher>)> = Vec::new();
    for k in Kernel::available() {
        let h = CpuHasher::with_kernel(k).expect("available kernel");
        v.push((h.name(), Arc::new(h)));
    }
    let gpu = crate::merkle::gpu();
    let g = GpuHasher::new(gpu.context().clone()).expect("GPU hasher on the shared context");
    v.push(("gpu".into(), Arc::new(GpuBatchHasher::from_hasher(g))));
    let g = GpuHasher::new(gpu.context().clone()).expect("GPU hasher on the shared context");
    let forced = Calibration::forced(Some(1));
    v.push((
        "auto(gpu for all)".into(),
        Arc::new(AutoHasher::with_gpu(g, forced)),
    ));
    v
}

fn vectors_root() -> PathBuf {
    match std::env::var_os("QUASAR_VECTORS") {
        Some(dir) => PathBuf::from(dir).join("tests"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/tests"),
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("missing vector folder {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Every `BeaconState` file of the minimal vectors this test covers.
fn state_files() -> Vec<PathBuf> {
    let fulu = vectors_root().join("minimal/fulu");
    let mut files = Vec::new();
    for suite in subdirs(&fulu.join("ssz_static/BeaconState")) {
        for case in subdirs(&suite) {
            files.push(case.join("serialized.ssz_snappy"));
        }
    }
    for runner in ["sanity", "epoch_processing"] {
        for handler in subdirs(&fulu.join(runner)) {
            for case in subdirs(&handler.join("pyspec_tests")) {
                for name in ["pre.ssz_snappy", "post.ssz_snappy"] {
                    let f = case.join(name);
                    if f.exists() {
                        files.push(f);
                    }
                }
            }
        }
    }
    files
}

fn load(path: &Path) -> minimal::BeaconState {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bytes = decompress_snappy(&raw, MAX_DECOMPRESSED_LEN)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    minimal::BeaconState::ssz_decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reference<S: ssz_rs::Merkleized + Clone>(state: &S) -> [u8; 32] {
    hash_tree_root(&mut state.clone()).expect("ssz_rs root")
}

#[test]
fn cold_root_equals_ssz_rs_on_every_vector_state() {
    let files = state_files();
    assert!(files.len() > 100, "only {} state files found", files.len());
    let backends = backends();
    let mut failed = Vec::new();
    for path in &files {
        let state = load(path);
        let want = reference(&state);
        for (name, h) in &backends {
            let got = state_root(h.as_ref(), &state).expect("state root");
            if got != want {
                failed.push(format!(
                    "{} [{name}]: {} != {}",
                    path.display(),
                    root_hex(&got),
                    root_hex(&want)
                ));
            }
        }
    }
    println!(
        "state_root: {} states × {} backends, {} failed",
        files.len(),
        backends.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn cached_root_follows_the_vectors_state_sequences() {
    // pre → post of every sanity/epoch case through one cache per backend: whatever the
    // transition changed, the cached root is the post state's root.
    let fulu = vectors_root().join("minimal/fulu");
    let mut cases = Vec::new();
    for runner in ["sanity", "epoch_processing"] {
        for handler in subdirs(&fulu.join(runner)) {
            for case in subdirs(&handler.join("pyspec_tests")) {
                if case.join("post.ssz_snappy").exists() {
                    cases.push(case);
                }
            }
        }
    }
    assert!(!cases.is_empty());
    let backends = backends();
    for (name, h) in &backends {
        // GPU backends on lavapipe are slow: every 8th case for them.
        let step = if name.starts_with("gpu") || name.starts_with("auto") {
            8
        } else {
            1
        };
        for case in cases.iter().step_by(step) {
            let pre = load(&case.join("pre.ssz_snappy"));
            let post = load(&case.join("post.ssz_snappy"));
            let mut cache = CachedStateRoot::new(h.as_ref(), &pre).expect("cache");
            assert_eq!(cache.root(), Some(reference(&pre)), "{}", case.display());
            let got = cache.update(h.as_ref(), &post).expect("update");
            assert_eq!(got, reference(&post), "{} [{name}]", case.display());
            // And back.
            let got = cache.update(h.as_ref(), &pre).expect("update");
            assert_eq!(got, reference(&pre), "{} [{name}] back", case.display());
        }
    }
}

fn truncate_front<T: ssz_rs::SimpleSerialize + Clone + std::fmt::Debug, const N: usize>(
    list: &List<T, N>,
    drop: usize,
) -> List<T, N> {
    let v: Vec<T> = list.iter().skip(drop).cloned().collect();
    v.try_into().expect("shorter list")
}

macro_rules! random_changes_test {
    ($name:ident, $preset:ident, $state_fn:ident, $block_fn:ident, $validators:expr, $rounds:expr) => {
        #[test]
        fn $name() {
            use quasar::types::$preset as p;
            for (bi, (bname, h)) in backends().into_iter().enumerate() {
                let h = h.as_ref();
                let mut rng = synthetic::rng(7);
                let mut state = synthetic::$state_fn($validators, 1);
                assert_eq!(state_root(h, &state).expect("cold"), reference(&state));
                let mut cache = CachedStateRoot::new(h, &state).expect("cache");
                let mut hinted = cache.clone();
                // With the first backend, a twin whose trees live on the GPU.
                let mut resident = (bi == 0).then(|| {
                    let ctx = crate::merkle::gpu().context().clone();
                    let trees = ResidentTrees::new(ctx).expect("resident trees");
                    let mut c = CachedStateRoot::default().with_resident(trees);
                    assert_eq!(c.update(h, &state).expect("resident"), reference(&state));
                    c
                });
                for round in 0..$rounds {
                    let mut changed = Vec::new();
                    match round % 6 {
                        // A block.
                        0 | 3 => {
                            changed = synthetic::$block_fn(&mut state, &mut rng, 100, 4);
                        }
                        // An epoch: every balance, participation rotated, scores.
                        1 => {
                            for i in 0..state.balances.len() {
                                state.balances[i] =
                                    state.balances[i].wrapping_add(rng.random_range(0..5000));
                                state.inactivity_scores[i] = rng.random_range(0..3);
                            }
                            state.previous_epoch_participation =
                                state.current_epoch_participation.clone();
                            let zeros = vec![0u8; state.validators.len()];
                            state.current_epoch_participation = zeros.try_into().expect("bound");
                            let s = state.slashings.len();
                            state.slashings[round % s] = rng.random_range(0..1_000_000);
                            let hs = p::HistoricalSummary::default();
                            state.historical_summaries.push(hs);
                            state.pending_deposits = truncate_front(&state.pending_deposits, 7);
                            state.finalized_checkpoint.epoch += 1;
                        }
                        // Deposits: new validators; pending lists grow.
                        2 => {
                            for _ in 0..(round + 1) * 3 {
                                state.validators.push(synthetic::random_validator(&mut rng));
                                state.balances.push(32_000_000_000);
                                state.previous_epoch_participation.push(0);
                                state.current_epoch_participation.push(1);
                                state.inactivity_scores.push(0);
                            }
                            state
                                .pending_deposits
                                .push(synthetic::random_pending_deposit(&mut rng));
                            if state.pending_consolidations.len() < p::PENDING_CONSOLIDATIONS_LIMIT
                            {
                                state.pending_consolidations.push(p::PendingConsolidation {
                                    source_index: 1,
                                    target_index: 2,
                                });
                            }
                            state.historical_roots.push(Default::default());
                        }
                        // Pending lists emptied, sync committee rotated.
                        4 => {
                            state.pending_partial_withdrawals = Default::default();
                            state.pending_consolidations =
                                truncate_front(&state.pending_consolidations, 1);
                            state.current_sync_committee = state.next_sync_committee.clone();
                            state.next_sync_committee.aggregate_pubkey.0[0] ^= 1;
                        }
                        // Many validators at once (a mass exit), by index hint too.
                        _ => {
                            let n = state.validators.len();
                            for _ in 0..n / 3 {
                                let i = rng.random_range(0..n);
                                state.validators[i].exit_epoch = rng.random_range(0..1000);
                                changed.push(i);
                            }
                            state
                                .pending_partial_withdrawals
                                .push(p::PendingPartialWithdrawal {
                                    validator_index: 3,
                                    amount: 5,
                                    withdrawable_epoch: 9,
                                });
                        }
                    }
                    let want = reference(&state);
                    let cold = state_root(h, &state).expect("cold");
                    assert_eq!(cold, want, "[{bname}] round {round}: cold");
                    let got = cache.update(h, &state).expect("update");
                    assert_eq!(got, want, "[{bname}] round {round}: cached");
                    // The hint names the changed validators; rounds that touch none
                    // besides appended ones pass an empty hint.
                    let dirty = Dirty {
                        validators: Some(changed),
                    };
                    let got = hinted
                        .update_with(h, &state, &dirty)
                        .expect("hinted update");
                    assert_eq!(got, want, "[{bname}] round {round}: hinted");
                    if let Some(r) = resident.as_mut() {
                        let before = r.resident().expect("still resident").stats();
                        let got = r.update(h, &state).expect("resident update");
                        assert_eq!(got, want, "[{bname}] round {round}: resident");
                        let after = r.resident().expect("no fallback").stats();
                        let leaves: u64 = (state.validators.len() * 2) as u64;
                        if matches!(round % 6, 0 | 3) && after.layouts == before.layouts {
                            let up = after.leaves_uploaded - before.leaves_uploaded;
                            assert!(
                                up < leaves / 4,
                                "round {round}: a block sent {up} leaves up"
                            );
                        }
                    }
                }
            }
        }
    };
}

random_changes_test!(
    cached_root_follows_random_changes_minimal,
    minimal,
    minimal_state,
    minimal_block,
    300,
    12
);
random_changes_test!(
    cached_root_follows_random_changes_mainnet,
    mainnet,
    mainnet_state,
    mainnet_block,
    5000,
    7
);

#[test]
fn empty_and_tiny_states() {
    for (name, h) in backends() {
        let h = h.as_ref();
        let mut state = minimal::BeaconState::default();
        assert_eq!(
            state_root(h, &state).expect("cold"),
            reference(&state),
            "[{name}]"
        );
        let mut cache = CachedStateRoot::new(h, &state).expect("cache");
        for n in [1usize, 2, 3, 5, 1, 0, 4] {
            let vals: Vec<_> = (0..n)
                .map(|i| quasar::types::common::Validator {
                    effective_balance: i as u64,
                    ..Default::default()
                })
                .collect();
            state.validators = vals.try_into().expect("bound");
            state.balances = vec![7u64; n].try_into().expect("bound");
            let want = reference(&state);
            assert_eq!(
                cache.update(h, &state).expect("update"),
                want,
                "[{name}] n={n}"
            );
        }
        let m = mainnet::BeaconState::default();
        assert_eq!(
            state_root(h, &m).expect("cold"),
            reference(&m),
            "[{name}] mainnet"
        );
    }
}
