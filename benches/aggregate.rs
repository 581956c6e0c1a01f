//! Criterion benches for pubkey aggregation, each against its peers in the same run:
//! plain blst (`AggregatePublicKey::aggregate` over validated `PublicKey`s already in
//! memory, one thread), the CPU twin (`CpuAggregator`: blst batch-affine sums, one thread
//! and all threads) and the GPU (`GpuAggregator`, table resident, both multiplications)
//! where an adapter exists. Throughput is in pubkey additions (indices summed).
//!
//! cargo bench --bench aggregate
//! (`QUASAR_BENCH_QUICK=1` shortens the measurement, e.g. on lavapipe.)

use std::sync::Arc;
use std::time::Duration;

use blst::min_pk::{AggregatePublicKey, PublicKey, SecretKey};
use blst::{blst_fp, blst_p1_affine};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quasar::accel::aggregate::{
    BlsTestKernels, CpuAggregator, FpMul, GpuAggregator, GpuAggregatorOptions, PubkeyAggregator,
    PubkeyTable,
};
use quasar::accel::gpu::GpuContext;
use quasar_kernels::bls as k;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Keys in the resident table.
const TABLE_KEYS: usize = 16_384;
/// Sets per batch (one `aggregate` call).
const SETS: usize = 16;

fn keys() -> &'static [PublicKey] {
    static KEYS: std::sync::OnceLock<Vec<PublicKey>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        (0..TABLE_KEYS)
            .map(|i| {
                let mut ikm = [0u8; 32];
                ikm[..8].copy_from_slice(&(i as u64).to_le_bytes());
                SecretKey::key_gen(&ikm, &[]).expect("ikm").sk_to_pk()
            })
            .collect()
    })
}

/// Shorter measurements with `QUASAR_BENCH_QUICK` set.
fn quick<M: criterion::measurement::Measurement>(g: &mut criterion::BenchmarkGroup<'_, M>) {
    let q = std::env::var_os("QUASAR_BENCH_QUICK").is_some();
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(if q { 2 } else { 4 }));
    if q {
        g.sample_size(10);
    }
}

fn aggregate(c: &mut Criterion) {
    let keys = keys();
    let table = PubkeyTable::from_public_keys(keys);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let ctx: Option<Arc<GpuContext>> = GpuContext::new().ok();
    let gpus: Vec<(String, GpuAggregator)> = ctx
        .iter()
        .flat_map(|ctx| {
            [FpMul::Limb13, FpMul::Limb16].into_iter().filter_map(|fp| {
                let options = GpuAggregatorOptions {
                    fp_mul: fp,
                    ..Default::default()
                };
                GpuAggregator::with_options(ctx.clone(), options)
                    .ok()
                    .map(|g| (format!("gpu_{}", fp.name()), g))
            })
        })
        .collect();
    if let Some(ctx) = &ctx {
        eprintln!("GPU: {}", ctx.adapter_name());
    }
    let mut rng = StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("aggregate_16_sets");
    quick(&mut g);
    for size in [512usize, 4096] {
        let sets: Vec<Vec<u32>> = (0..SETS)
            .map(|_| {
                (0..size)
                    .map(|_| rng.random_range(0..TABLE_KEYS as u32))
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
        g.throughput(Throughput::Elements((SETS * size) as u64));
        g.bench_with_input(BenchmarkId::new("blst_1t", size), &sets, |b, sets| {
            b.iter(|| {
                sets.iter()
                    .map(|s| {
                        let pks: Vec<&PublicKey> = s.iter().map(|&i| &keys[i as usize]).collect();
                        AggregatePublicKey::aggregate(&pks, false).expect("non-empty")
                    })
                    .collect::<Vec<_>>()
            })
        });
        g.bench_with_input(BenchmarkId::new("cpu_1t", size), &refs, |b, refs| {
            b.iter(|| one.install(|| CpuAggregator.aggregate(&table, refs).expect("cpu")))
        });
        g.bench_with_input(BenchmarkId::new("cpu_all", size), &refs, |b, refs| {
            b.iter(|| CpuAggregator.aggregate(&table, refs).expect("cpu"))
        });
        for (name, gpu) in &gpus {
            // Upload the table once, outside the measurement (it stays resident).
            let warm = gpu.aggregate(&table, &refs).expect("gpu");
            let want = CpuAggregator.aggregate(&table, &refs).expect("cpu");
            assert!(
                warm.iter().zip(&want).all(|(a, b)| k::p1_is_equal(a, b)),
                "{name} differs"
            );
            g.bench_with_input(BenchmarkId::new(name.as_str(), size), &refs, |b, refs| {
                b.iter(|| gpu.aggregate(&table, refs).expect("gpu"))
            });
        }
    }
    g.finish();
}

/// Throughput of the two WGSL Montgomery multiplications: 1000 chained
/// multiplications on each of 4096 elements per submission.
fn fp_mul(c: &mut Criterion) {
    let Ok(ctx) = GpuContext::new() else {
        eprintln!("no GPU adapter: skipping fp_mul");
        return;
    };
    let mut rng = StdRng::seed_from_u64(2);
    let mut random = || {
        let mut bytes = [0u8; 48];
        rng.fill(&mut bytes[..]);
        k::fp_from_bendian(&bytes)
    };
    let n = 4096;
    let a: Vec<blst_fp> = (0..n).map(|_| random()).collect();
    let b: Vec<blst_fp> = (0..n).map(|_| random()).collect();
    let iters = 1000u32;
    let mut g = c.benchmark_group("wgsl_fp_mul");
    quick(&mut g);
    g.throughput(Throughput::Elements(n as u64 * u64::from(iters)));
    for fp in [FpMul::Limb13, FpMul::Limb16] {
        let Ok(kernels) = BlsTestKernels::new(ctx.clone(), fp) else {
            continue;
        };
        g.bench_function(fp.name(), |bench| {
            bench.iter(|| kernels.fp_mul_chain(&a, &b, iters).expect("fp_mul_chain"))
        });
    }
    g.finish();
}

/// The CPU twin's one-thread cost per addition against blst's sequential
/// `blst_p1_add_or_double_affine` chain, over a table of affine points.
fn cpu_per_addition(c: &mut Criterion) {
    let g1 = k::p1_generator();
    let mut acc = g1;
    let table: Vec<blst_p1_affine> = (0..8192)
        .map(|_| {
            acc = k::p1_add(&acc, &g1);
            k::p1_to_affine(&acc)
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(3);
    let mut g = c.benchmark_group("cpu_sum_by_indices");
    quick(&mut g);
    for size in [512usize, 4096] {
        let set: Vec<u32> = (0..size).map(|_| rng.random_range(0..8192)).collect();
        g.throughput(Throughput::Elements(size as u64));
        g.bench_with_input(BenchmarkId::new("blst_p1s_add", size), &set, |b, set| {
            b.iter(|| k::sum_by_indices(&table, set).expect("in range"))
        });
        g.bench_with_input(
            BenchmarkId::new("add_or_double_affine", size),
            &set,
            |b, set| {
                b.iter(|| {
                    set.iter().fold(k::p1_infinity(), |acc, &i| {
                        k::p1_add_affine(&acc, &table[i as usize])
                    })
                })
            },
        );
    }
    g.finish();
}

/// Batches large enough to fill a hardware GPU (512 sets of 1024 keys): the GPU with
/// chunks of 8 and 32 indices per invocation against the CPU twin on all threads.
/// Skipped on software adapters (lavapipe) unless `QUASAR_BENCH_LARGE` is set.
fn gpu_throughput(c: &mut Criterion) {
    let Ok(ctx) = GpuContext::new() else { return };
    if ctx.is_software() && std::env::var_os("QUASAR_BENCH_LARGE").is_none() {
        return;
    }
    let table = PubkeyTable::from_public_keys(keys());
    let mut rng = StdRng::seed_from_u64(4);
    let (n_sets, size) = (512usize, 1024usize);
    let sets: Vec<Vec<u32>> = (0..n_sets)
        .map(|_| {
            (0..size)
                .map(|_| rng.random_range(0..TABLE_KEYS as u32))
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
    let want = CpuAggregator.aggregate(&table, &refs).expect("cpu");
    let mut g = c.benchmark_group("aggregate_512x1024");
    quick(&mut g);
    g.throughput(Throughput::Elements((n_sets * size) as u64));
    g.bench_function("cpu_all", |b| {
        b.iter(|| CpuAggregator.aggregate(&table, &refs).expect("cpu"))
    });
    for (fp, chunk) in [(FpMul::Limb13, 8), (FpMul::Limb13, 32), (FpMul::Limb16, 8)] {
        let options = GpuAggregatorOptions {
            fp_mul: fp,
            chunk,
            ..Default::default()
        };
        let Ok(gpu) = GpuAggregator::with_options(ctx.clone(), options) else {
            continue;
        };
        let warm = gpu.aggregate(&table, &refs).expect("gpu");
        assert!(
            warm.iter().zip(&want).all(|(a, b)| k::p1_is_equal(a, b)),
            "gpu differs"
        );
        g.bench_function(format!("gpu_{}_chunk{chunk}", fp.name()), |b| {
            b.iter(|| gpu.aggregate(&table, &refs).expect("gpu"))
        });
    }
    g.finish();
}

criterion_group!(benches, cpu_per_addition, aggregate, fp_mul, gpu_throughput);
criterion_main!(benches);
