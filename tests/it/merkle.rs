//! Differential tests: every backend (GPU on lavapipe, each SIMD kernel, scalar, auto)
//! against the `sha2` reference, for trees of many shapes.

use std::sync::{Arc, OnceLock};

use quasar::accel::calibrate::Calibration;
use quasar::accel::gpu::{GpuContext, GpuHasher};
use quasar::accel::hash::{AutoHasher, BatchHasher, CpuHasher, GpuBatchHasher};
use quasar::merkle::{self, list_root, merkleize, mix_in_length, zero_hashes};
use quasar_kernels::sha256::Kernel;

use crate::reference::{self, random_chunks};

/// The shared GPU for this test binary; no adapter is a failure, not a skip.
pub fn gpu() -> &'static GpuHasher {
    static GPU: OnceLock<GpuHasher> = OnceLock::new();
    GPU.get_or_init(|| {
        let ctx = GpuContext::new().unwrap_or_else(|e| {
            panic!("no GPU adapter for the GPU tests ({e}); install a Vulkan driver: apt-get install -y mesa-vulkan-drivers")
        });
        GpuHasher::new(ctx).expect("building the GPU pipelines")
    })
}

/// Every backend that must agree: scalar, each SIMD kernel, the GPU, and auto forced onto
/// the GPU above 2^10 leaves.
fn backends() -> Vec<(String, Arc<dyn BatchHasher>)> {
    let mut v: Vec<(String, Arc<dyn BatchHasher>)> = Vec::new();
    for k in Kernel::available() {
        let h = CpuHasher::with_kernel(k).unwrap();
        v.push((h.name(), Arc::new(h)));
    }
    let g = GpuHasher::new(gpu().context().clone()).expect("second GPU hasher on the same context");
    v.push(("gpu".into(), Arc::new(GpuBatchHasher::from_hasher(g))));
    let g = GpuHasher::new(gpu().context().clone()).unwrap();
    let forced = Calibration::forced(Some(1 << 10));
    v.push((
        "auto(gpu above 2^10)".into(),
        Arc::new(AutoHasher::with_gpu(g, forced)),
    ));
    v
}

const COUNTS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256,
    257, 1023, 1024, 1025, 1500, 4095, 4096, 4097,
];

#[test]
fn zero_hashes_match_reference() {
    let z = zero_hashes();
    for d in [0u32, 1, 2, 5, 17, 40, 64] {
        assert_eq!(z[d as usize], reference::zero(d), "zero hash at depth {d}");
    }
}

#[test]
fn all_backends_agree_with_sha2_on_many_shapes() {
    let backends = backends();
    for &n in COUNTS {
        let chunks = random_chunks(n, n as u64);
        let limits: Vec<Option<u64>> = vec![
            None,
            Some(n as u64),
            Some(n as u64 * 4 + 1),
            Some(1 << 40),
            Some(u64::MAX),
        ];
        for limit in limits {
            if limit == Some(0) && n > 0 {
                continue;
            }
            let expect = reference::merkleize(&chunks, limit);
            for (name, b) in &backends {
                let got = merkleize(b.as_ref(), &chunks, limit).unwrap();
                assert_eq!(got, expect, "{name}: {n} chunks, limit {limit:?}");
            }
        }
    }
}

#[test]
fn big_trees_cross_the_parallel_split() {
    // 2^13 leaves is one thread's subtree: cover both sides of it and a ragged right edge.
    let backends = backends();
    for n in [
        (1 << 13) - 1,
        1 << 13,
        (1 << 13) + 1,
        (1 << 14) + 3,
        3 << 13,
    ] {
        let chunks = random_chunks(n, 7 + n as u64);
        let expect = reference::merkleize(&chunks, None);
        for (name, b) in &backends {
            assert_eq!(
                merkleize(b.as_ref(), &chunks, None).unwrap(),
                expect,
                "{name}: {n} chunks"
            );
        }
    }
}

#[test]
fn edge_patterns() {
    let backends = backends();
    for (what, byte) in [("zeros", 0u8), ("ones", 0xff)] {
        for n in [1usize, 2, 3, 64, 65, 1000] {
            let chunks = vec![[byte; 32]; n];
            let expect = reference::merkleize(&chunks, Some(1 << 20));
            for (name, b) in &backends {
                assert_eq!(
                    merkleize(b.as_ref(), &chunks, Some(1 << 20)).unwrap(),
                    expect,
                    "{name}: {n} {what}"
                );
            }
        }
    }
    // An all-zero tree is the zero hash of its depth, whatever the backend.
    for (name, b) in &backends {
        let chunks = vec![[0u8; 32]; 256];
        assert_eq!(
            merkleize(b.as_ref(), &chunks, None).unwrap(),
            zero_hashes()[8],
            "{name}"
        );
    }
}

#[test]
fn hash_pairs_agree() {
    let backends = backends();
    for n in [0usize, 1, 2, 3, 7, 8, 9, 16, 17, 63, 64, 65, 1000] {
        let blocks: Vec<[u8; 64]> = random_chunks(2 * n, 99 + n as u64)
            .chunks(2)
            .map(|c| bytemuck::cast([c[0], c[1]]))
            .collect();
        let expect: Vec<[u8; 32]> = blocks
            .iter()
            .map(|b| {
                let (l, r) = b.split_at(32);
                reference::h(l.try_into().unwrap(), r.try_into().unwrap())
            })
            .collect();
        for (name, b) in &backends {
            let mut out = vec![[0u8; 32]; n];
            b.hash_pairs(&blocks, &mut out).unwrap();
            assert_eq!(out, expect, "{name}: hash_pairs of {n} blocks");
        }
    }
}

#[test]
fn over_limit_is_an_error_not_a_panic() {
    let b = CpuHasher::simd();
    let chunks = random_chunks(5, 1);
    let err = merkleize(&b, &chunks, Some(4)).unwrap_err();
    assert!(err.to_string().contains("exceed"), "{err}");
    assert!(list_root(&b, &[1u64; 9], 8).is_err());
}

#[test]
fn lists_mix_in_length() {
    let b = CpuHasher::simd();
    let values: Vec<u64> = (0..1000).collect();
    // List[uint64, 2^20]: 4 values per chunk, limit 2^18 chunks.
    let packed = merkle::pack(&values);
    let expect = reference::mix_in_length(&reference::merkleize(&packed, Some(1 << 18)), 1000);
    assert_eq!(list_root(&b, &values, 1 << 20).unwrap(), expect);
    assert_eq!(
        mix_in_length(&[7u8; 32], 3),
        reference::mix_in_length(&[7u8; 32], 3)
    );
    // The empty list: zero subtree of the limit, mixed with 0.
    let empty = reference::mix_in_length(&reference::zero(18), 0);
    assert_eq!(list_root::<u64>(&b, &[], 1 << 20).unwrap(), empty);
}

#[test]
fn auto_falls_back_to_the_cpu_when_the_device_is_lost() {
    // A device of its own, so destroying it leaves the shared one alone.
    let ctx = GpuContext::new().expect("GPU adapter (install mesa-vulkan-drivers)");
    let gpu = GpuHasher::new(ctx.clone()).unwrap();
    let auto = AutoHasher::with_gpu(gpu, Calibration::forced(Some(1 << 10)));
    let chunks = random_chunks(3000, 3);
    let expect = reference::merkleize(&chunks, None);
    let before = ctx.stats().submissions;
    assert_eq!(merkleize(&auto, &chunks, None).unwrap(), expect);
    assert_eq!(
        ctx.stats().submissions,
        before + 1,
        "the first tree went to the GPU"
    );
    assert!(!auto.fell_back());
    ctx.destroy();
    assert!(ctx.is_lost());
    for _ in 0..2 {
        assert_eq!(
            merkleize(&auto, &chunks, None).unwrap(),
            expect,
            "CPU result after the loss"
        );
    }
    assert!(auto.fell_back(), "auto noticed the lost device");
    assert!(
        auto.name().starts_with("auto(simd") || auto.name().starts_with("auto(scalar"),
        "{}",
        auto.name()
    );
}
