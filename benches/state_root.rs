//! Criterion benches for the beacon state root, against plain `ssz_rs` `hash_tree_root`
//! in the same run, on a synthetic mainnet-preset state with 2^20 validators
//! (`QUASAR_BENCH_VALIDATORS_LOG2` changes the size):
//!
//! - `state_root_cold`: the whole root from scratch — `ssz_rs`, the SIMD CPU hasher, `auto`
//!   (GPU above the calibrated size), and the GPU where an adapter exists;
//! - `state_root_block`: a block changes 100 balances, 4 validators, the slot's block and
//!   state roots and the randao mix; the root after it from a `CachedStateRoot` (full
//!   diff, and with the block's validator indices as a hint). `ssz_rs` has no cache: its
//!   root after a block costs what `state_root_cold/ssz_rs` does.
//!
//! cargo bench --bench state_root
//! cargo bench --bench state_root -- --sample-size 10 --warm-up-time 1 --measurement-time 5

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use quasar::accel::hash::{AutoHasher, BatchHasher, CpuHasher, GpuBatchHasher};
use quasar::merkle::synthetic;
use quasar::merkle::{state_root, CachedStateRoot, Dirty};
use quasar::types::mainnet;
use quasar::types::ssz::hash_tree_root;

fn validators() -> usize {
    let log2 = std::env::var("QUASAR_BENCH_VALIDATORS_LOG2")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(20);
    1 << log2
}

fn hashers() -> Vec<(&'static str, Arc<dyn BatchHasher>)> {
    let mut v: Vec<(&'static str, Arc<dyn BatchHasher>)> =
        vec![("simd", Arc::new(CpuHasher::simd()))];
    let auto = AutoHasher::new();
    // Probe and calibrate before timing.
    let _ = auto.gpu();
    v.push(("auto", Arc::new(auto)));
    match GpuBatchHasher::new() {
        Ok(g) => {
            let software = ["llvmpipe", "lavapipe"]
                .iter()
                .any(|s| g.name().to_lowercase().contains(s));
            if software && std::env::var("QUASAR_BENCH_GPU").as_deref() != Ok("1") {
                eprintln!(
                    "state_root bench: {} is a software rasterizer; gpu rows skipped \
                     (QUASAR_BENCH_GPU=1 runs them)",
                    g.name()
                );
            } else {
                v.push(("gpu", Arc::new(g)));
            }
        }
        Err(e) => eprintln!("state_root bench: no GPU ({e}); gpu rows skipped"),
    }
    v
}

fn state() -> mainnet::BeaconState {
    let n = validators();
    let t = std::time::Instant::now();
    let state = synthetic::mainnet_state(n, 1);
    eprintln!(
        "state_root bench: synthetic mainnet state with {n} validators built in {:.1?}",
        t.elapsed()
    );
    state
}

fn cold(c: &mut Criterion) {
    let mut state = state();
    let hashers = hashers();
    let want = hash_tree_root(&mut state.clone()).expect("ssz_rs root");
    for (name, h) in &hashers {
        assert_eq!(
            state_root(h.as_ref(), &state).expect("root"),
            want,
            "{name}: {}",
            h.name()
        );
        eprintln!("state_root bench: {name} = {}", h.name());
    }
    let mut g = c.benchmark_group("state_root_cold");
    g.sample_size(10);
    g.bench_function("ssz_rs", |b| {
        b.iter(|| hash_tree_root(black_box(&mut state)).expect("root"))
    });
    for (name, h) in &hashers {
        g.bench_function(*name, |b| {
            b.iter(|| state_root(h.as_ref(), black_box(&state)).expect("root"))
        });
    }
    g.finish();
}

fn block(c: &mut Criterion) {
    let base = state();
    let hashers = hashers();
    let mut g = c.benchmark_group("state_root_block");
    g.sample_size(20);
    for (name, h) in &hashers {
        let h = h.as_ref();
        let mut state = base.clone();
        let mut rng = synthetic::rng(9);
        let mut cache = CachedStateRoot::new(h, &state).expect("cache");
        let mut hinted = cache.clone();
        // Check once against a cold root.
        let changed = synthetic::mainnet_block(&mut state, &mut rng, 100, 4);
        let want = state_root(h, &state).expect("root");
        assert_eq!(cache.update(h, &state).expect("update"), want);
        let dirty = Dirty {
            validators: Some(changed),
        };
        assert_eq!(hinted.update_with(h, &state, &dirty).expect("update"), want);
        g.bench_function(format!("cached_{name}"), |b| {
            b.iter(|| {
                synthetic::mainnet_block(&mut state, &mut rng, 100, 4);
                cache.update(h, black_box(&state)).expect("update")
            })
        });
        // Bring the hinted cache up to date; from here each update hints its block.
        hinted.update(h, &state).expect("update");
        g.bench_function(format!("cached_hinted_{name}"), |b| {
            b.iter(|| {
                let changed = synthetic::mainnet_block(&mut state, &mut rng, 100, 4);
                let dirty = Dirty {
                    validators: Some(changed),
                };
                hinted
                    .update_with(h, black_box(&state), &dirty)
                    .expect("update")
            })
        });
        drop(cache);
        drop(hinted);
    }
    g.finish();
}

criterion_group!(benches, cold, block);
criterion_main!(benches);
