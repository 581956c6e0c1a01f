//! Criterion benches for batch hashing, each against its peers in the same run:
//! the `sha2` crate and Prysm's hashtree (`hashtree-rs`), and the GPU where an adapter exists.
//!
//! cargo bench --bench hash

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quasar::accel::hash::{BatchHasher, CpuHasher, GpuBatchHasher};
use quasar::bench::{peers, random_chunks};
use quasar::merkle::merkleize;
use quasar_kernels::sha256::{hash_blocks, Kernel};

fn blocks(c: &mut Criterion) {
    let n = 1 << 14;
    let input: Vec<[u8; 64]> = random_chunks(2 * n, 1)
        .chunks(2)
        .map(|c| bytemuck::cast([c[0], c[1]]))
        .collect();
    let mut out = vec![[0u8; 32]; n];
    let mut g = c.benchmark_group("hash_blocks_2^14");
    g.throughput(Throughput::Elements(n as u64));
    for k in Kernel::available() {
        g.bench_function(k.name(), |b| b.iter(|| hash_blocks(k, &input, &mut out)));
    }
    peers::hashtree_init();
    g.bench_function("hashtree", |b| {
        b.iter(|| hashtree_rs::hash(out.as_flattened_mut(), input.as_flattened(), n))
    });
    g.bench_function("sha2", |b| {
        use sha2::{Digest, Sha256};
        b.iter(|| {
            for (i, o) in input.iter().zip(out.iter_mut()) {
                *o = Sha256::digest(i).into();
            }
        })
    });
    g.finish();
}

fn trees(c: &mut Criterion) {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("merkleize");
    g.sample_size(10);
    let gpu: Option<Arc<dyn BatchHasher>> = GpuBatchHasher::new().ok().map(|g| Arc::new(g) as _);
    for log2 in [12u32, 16, 20] {
        let leaves = random_chunks(1 << log2, log2 as u64);
        g.throughput(Throughput::Elements((1u64 << log2) - 1));
        g.bench_with_input(BenchmarkId::new("hashtree_1t", log2), &leaves, |b, l| {
            b.iter(|| peers::hashtree_merkleize(l))
        });
        g.bench_with_input(BenchmarkId::new("sha2_1t", log2), &leaves, |b, l| {
            b.iter(|| peers::sha2_merkleize(l))
        });
        let simd = CpuHasher::simd();
        g.bench_with_input(BenchmarkId::new("simd_1t", log2), &leaves, |b, l| {
            b.iter(|| one.install(|| merkleize(&simd, l, None).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("simd_all", log2), &leaves, |b, l| {
            b.iter(|| merkleize(&simd, l, None).unwrap())
        });
        if let Some(gpu) = &gpu {
            g.bench_with_input(BenchmarkId::new("gpu", log2), &leaves, |b, l| {
                b.iter(|| merkleize(gpu.as_ref(), l, None).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, blocks, trees);
criterion_main!(benches);
