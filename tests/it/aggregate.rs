//! Pubkey aggregation: the WGSL Fp and G1 arithmetic against blst, and GPU ≡ CPU ≡ blst's
//! `AggregatePublicKey::aggregate` on sets over a table of generated keys.
//!
//! The GPU tests run on whatever adapter wgpu finds; on a host without a GPU that is
//! Mesa's lavapipe (`mesa-vulkan-drivers`), slow but the same WGSL. A missing adapter fails.

use std::sync::{Arc, OnceLock};

use blst::min_pk::{AggregatePublicKey, PublicKey, SecretKey};
use blst::{blst_fp, blst_p1, blst_p1_affine};
use quasar::accel::aggregate::{
    AggregateError, AutoAggregator, BlsTestKernels, CpuAggregator, FpMul, FpOp, G1Op,
    GpuAggregator, GpuAggregatorOptions, Projective, PubkeyAggregator, PubkeyTable,
};
use quasar::accel::calibrate::Calibration;
use quasar::accel::gpu::GpuContext;
use quasar_kernels::bls as k;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Keys in the shared table.
const TABLE_KEYS: usize = 3000;

fn context() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::new().unwrap_or_else(|e| {
            panic!(
                "the GPU aggregation tests need a wgpu adapter; on a host without a GPU install \
                 mesa-vulkan-drivers (lavapipe, a CPU Vulkan device): {e}"
            )
        })
    })
    .clone()
}

fn test_kernels(fp: FpMul) -> &'static BlsTestKernels {
    static K16: OnceLock<BlsTestKernels> = OnceLock::new();
    static K13: OnceLock<BlsTestKernels> = OnceLock::new();
    let cell = match fp {
        FpMul::Limb16 => &K16,
        FpMul::Limb13 => &K13,
    };
    cell.get_or_init(|| BlsTestKernels::new(context(), fp).expect("building the BLS test kernels"))
}

fn gpu() -> &'static GpuAggregator {
    static GPU: OnceLock<GpuAggregator> = OnceLock::new();
    GPU.get_or_init(|| GpuAggregator::new(context()).expect("building the GPU aggregator"))
}

/// Deterministic key i.
fn key(i: usize) -> PublicKey {
    let mut ikm = [0u8; 32];
    ikm[..8].copy_from_slice(&(i as u64).to_le_bytes());
    ikm[8..16].copy_from_slice(b"quasar-k");
    SecretKey::key_gen(&ikm, &[])
        .expect("32 bytes of ikm")
        .sk_to_pk()
}

fn keys() -> &'static [PublicKey] {
    static KEYS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..TABLE_KEYS).map(key).collect())
}

fn table() -> &'static PubkeyTable {
    static TABLE: OnceLock<PubkeyTable> = OnceLock::new();
    TABLE.get_or_init(|| PubkeyTable::from_public_keys(keys()))
}

/// blst's own aggregation of the keys at `set`.
fn blst_aggregate(keys: &[PublicKey], set: &[u32]) -> [u8; 48] {
    let refs: Vec<&PublicKey> = set.iter().map(|&i| &keys[i as usize]).collect();
    let agg = AggregatePublicKey::aggregate(&refs, false).expect("a non-empty set");
    k::p1_compress(&blst_p1::from(agg))
}

fn random_fp(rng: &mut StdRng) -> blst_fp {
    let mut bytes = [0u8; 48];
    rng.fill(&mut bytes[..]);
    k::fp_from_bendian(&bytes)
}

/// Edge values (0, 1, p − 1, and the raw words 1 and p − 1) and random ones.
fn fp_values(rng: &mut StdRng, random: usize) -> Vec<blst_fp> {
    let one = k::fp_from_u64(1);
    let mut raw_one = [0u32; 12];
    raw_one[0] = 1;
    let mut v = vec![
        k::fp_from_u64(0),
        one,
        k::fp_neg(&one),
        k::fp_from_u64(2),
        k::fp_from_words(&raw_one),
        k::fp_neg(&k::fp_from_words(&raw_one)),
    ];
    v.extend((0..random).map(|_| random_fp(rng)));
    v
}

fn check_fp(fp: FpMul) {
    let kernels = test_kernels(fp);
    let mut rng = StdRng::seed_from_u64(7);
    let values = fp_values(&mut rng, 26);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for x in &values {
        for y in &values {
            a.push(*x);
            b.push(*y);
        }
    }
    let twelve = k::fp_from_u64(12);
    type Reference = fn(&blst_fp, &blst_fp, &blst_fp) -> blst_fp;
    let cases: [(FpOp, Reference); 7] = [
        (FpOp::Mul, |a, b, _| k::fp_mul(a, b)),
        (FpOp::Add, |a, b, _| k::fp_add(a, b)),
        (FpOp::Sub, |a, b, _| k::fp_sub(a, b)),
        (FpOp::Sqr, |a, _, _| k::fp_sqr(a)),
        (FpOp::Neg, |a, _, _| k::fp_neg(a)),
        (FpOp::Dbl, |a, _, _| k::fp_add(a, a)),
        (FpOp::Mul12, |a, _, t| k::fp_mul(a, t)),
    ];
    for (op, want) in cases {
        let got = kernels.fp(op, &a, &b).expect("fp kernel");
        assert_eq!(got.len(), a.len());
        for i in 0..a.len() {
            assert_eq!(
                got[i],
                want(&a[i], &b[i], &twelve),
                "{fp:?} {op:?} of {:?} and {:?}",
                k::fp_to_words(&a[i]),
                k::fp_to_words(&b[i])
            );
        }
    }
}

#[test]
fn wgsl_fp16_matches_blst() {
    check_fp(FpMul::Limb16);
}

#[test]
fn wgsl_fp13_matches_blst() {
    check_fp(FpMul::Limb13);
}

/// A projective representative (X·Z', Y·Z', Z') of the point with Z' random; infinity as (0 : 1 : 0).
fn projective(p: &blst_p1, rng: &mut StdRng) -> Projective {
    if k::p1_is_inf(p) {
        return [k::fp_from_u64(0), k::fp_from_u64(1), k::fp_from_u64(0)];
    }
    let a = k::p1_to_affine(p);
    let z = random_fp(rng);
    [k::fp_mul(&a.x, &z), k::fp_mul(&a.y, &z), z]
}

/// The blst point of a projective triple.
fn from_projective(p: &Projective) -> blst_p1 {
    let [x, y, z] = p;
    if k::fp_to_words(z) == [0; 12] {
        return k::p1_infinity();
    }
    // Jacobian (X·Z, Y·Z², Z).
    blst_p1 {
        x: k::fp_mul(x, z),
        y: k::fp_mul(y, &k::fp_sqr(z)),
        z: *z,
    }
}

fn affine_as_projective(a: &blst_p1_affine) -> Projective {
    [a.x, a.y, k::fp_from_u64(1)]
}

#[test]
fn wgsl_g1_matches_blst() {
    let kernels = test_kernels(FpMul::Limb13);
    let mut rng = StdRng::seed_from_u64(11);
    let pts: Vec<blst_p1> = keys()[..8]
        .iter()
        .map(|pk| k::p1_from_affine(&blst_p1_affine::from(*pk)))
        .collect();
    let inf = k::p1_infinity();
    let neg = |p: &blst_p1| k::p1_neg(p);
    // (a, b) pairs: P+Q, P+P, P+(−P), ∞+P, P+∞, ∞+∞, −P+P, and more P+Q.
    let mut pairs: Vec<(blst_p1, blst_p1)> = vec![
        (pts[0], pts[1]),
        (pts[2], pts[2]),
        (pts[3], neg(&pts[3])),
        (inf, pts[4]),
        (pts[5], inf),
        (inf, inf),
        (neg(&pts[6]), pts[6]),
    ];
    for i in 0..8 {
        pairs.push((pts[i], pts[(i + 3) % 8]));
    }
    let a: Vec<Projective> = pairs.iter().map(|(p, _)| projective(p, &mut rng)).collect();
    let b: Vec<Projective> = pairs.iter().map(|(_, q)| projective(q, &mut rng)).collect();
    let sums = kernels.g1(G1Op::Add, &a, &b).expect("g1 add");
    for ((p, q), got) in pairs.iter().zip(&sums) {
        let want = k::p1_add(p, q);
        assert!(
            k::p1_is_equal(&from_projective(got), &want),
            "add {p:?} + {q:?}"
        );
    }
    // Doubling is the complete addition of a point to itself (different Z on each side).
    let twice: Vec<Projective> = pts.iter().map(|p| projective(p, &mut rng)).collect();
    let again: Vec<Projective> = pts.iter().map(|p| projective(p, &mut rng)).collect();
    let doubles = kernels.g1(G1Op::Add, &twice, &again).expect("g1 add P + P");
    for (p, got) in pts.iter().zip(&doubles) {
        assert!(
            k::p1_is_equal(&from_projective(got), &k::p1_double(p)),
            "2P of {p:?}"
        );
    }
    // Mixed addition: affine b (Z = 1), and (0, 0) for infinity.
    let affine_b: Vec<Projective> = pairs
        .iter()
        .map(|(_, q)| affine_as_projective(&k::p1_to_affine(q)))
        .collect();
    let mixed = kernels
        .g1(G1Op::AddAffine, &a, &affine_b)
        .expect("g1 add_affine");
    for ((p, q), got) in pairs.iter().zip(&mixed) {
        assert!(
            k::p1_is_equal(&from_projective(got), &k::p1_add(p, q)),
            "add_affine {p:?} + {q:?}"
        );
    }
    // To Jacobian: blst_p1's X, Y, Z (the test kernels convert the field elements back
    // to blst's Montgomery form).
    let jac = kernels
        .g1(G1Op::ToJacobian, &a, &b)
        .expect("g1 to_jacobian");
    for ((p, _), got) in pairs.iter().zip(&jac) {
        let j = blst_p1 {
            x: got[0],
            y: got[1],
            z: got[2],
        };
        assert!(k::p1_is_equal(&j, p), "to_jacobian {p:?}");
        assert_eq!(k::p1_is_inf(&j), k::p1_is_inf(p));
    }
}

/// Random sets of the given sizes over the table, plus duplicates and a key with its negation.
fn random_sets(rng: &mut StdRng, sizes: &[usize], table_len: usize) -> Vec<Vec<u32>> {
    sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| rng.random_range(0..table_len as u32))
                .collect()
        })
        .collect()
}

fn assert_same(sets: &[Vec<u32>], got: &[blst_p1], want: &[blst_p1], who: &str) {
    assert_eq!(got.len(), sets.len(), "{who}: one result per set");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            k::p1_is_equal(g, w),
            "{who}: set {i} of {} keys differs",
            sets[i].len()
        );
    }
}

#[test]
fn gpu_cpu_and_blst_agree_on_random_sets() {
    let table = table();
    let mut rng = StdRng::seed_from_u64(42);
    let sizes = [1usize, 2, 3, 17, 100, 1000, 4096];
    let mut sets = random_sets(&mut rng, &sizes, table.len());
    // Duplicates: one key many times, and a set with repeats.
    sets.push(vec![5; 40]);
    sets.push(vec![9, 9]);
    sets.push((0..300).map(|i| (i % 7) as u32).collect());
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();

    let cpu = CpuAggregator.aggregate(table, &refs).expect("cpu");
    let gpu_out = gpu().aggregate(table, &refs).expect("gpu");
    assert_same(&sets, &gpu_out, &cpu, "gpu vs cpu");
    for (set, c) in sets.iter().zip(&cpu) {
        assert_eq!(
            k::p1_compress(c),
            blst_aggregate(keys(), set),
            "cpu vs blst, {} keys",
            set.len()
        );
    }
}

#[test]
fn negations_and_infinity() {
    // A table with P_i, −P_i and blst's affine infinity (0, 0): P + (−P) is infinity on
    // every path, and an infinity entry adds nothing.
    let base = &keys()[..64];
    let mut points: Vec<blst_p1_affine> = base.iter().map(|pk| blst_p1_affine::from(*pk)).collect();
    let negs: Vec<blst_p1_affine> = points.iter().map(k::p1_affine_neg).collect();
    points.extend(negs);
    points.push(blst_p1_affine::default()); // 128: infinity
    let table = PubkeyTable::new(points);
    let sets: Vec<Vec<u32>> = vec![
        vec![3, 67],
        vec![67, 3],
        (0..128).collect(),
        vec![128],
        vec![128, 128, 5, 69],
        vec![1, 65, 2],
        (0..40).chain(64..104).chain([7]).collect(),
        vec![10, 10, 74, 74, 74],
        vec![128, 9, 128],
        (0..64)
            .chain([128; 40])
            .chain(64..128)
            .chain([11])
            .collect(),
    ];
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
    let cpu = CpuAggregator.aggregate(&table, &refs).expect("cpu");
    let gpu_out = gpu().aggregate(&table, &refs).expect("gpu");
    let point = |i: usize| k::p1_from_affine(&table.points()[i]);
    for i in 0..5 {
        assert!(k::p1_is_inf(&cpu[i]), "cpu set {i} should be infinity");
        assert!(k::p1_is_inf(&gpu_out[i]), "gpu set {i} should be infinity");
        assert_eq!(k::p1_compress(&gpu_out[i])[0], 0xc0, "compressed infinity");
    }
    for (set, want) in [(5, 2), (6, 7), (7, 74), (8, 9), (9, 11)] {
        assert!(k::p1_is_equal(&cpu[set], &point(want)), "cpu set {set}");
    }
    assert_same(&sets, &gpu_out, &cpu, "gpu vs cpu with negations");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let table = table();
    let n = table.len() as u32;
    type Expected = fn(&AggregateError) -> bool;
    let cases: Vec<(Vec<Vec<u32>>, Expected)> = vec![
        (vec![vec![0, 1], vec![2, n]], |e| {
            matches!(
                e,
                AggregateError::IndexOutOfRange {
                    set: 1,
                    position: 1,
                    ..
                }
            )
        }),
        (vec![vec![u32::MAX]], |e| {
            matches!(
                e,
                AggregateError::IndexOutOfRange {
                    set: 0,
                    position: 0,
                    ..
                }
            )
        }),
        (vec![vec![1], vec![]], |e| {
            matches!(e, AggregateError::EmptySet { set: 1 })
        }),
    ];
    for (sets, expected) in cases {
        let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
        let c = CpuAggregator
            .aggregate(table, &refs)
            .expect_err("cpu must reject");
        assert!(expected(&c) && c.is_invalid_input(), "cpu: {c}");
        let g = gpu().aggregate(table, &refs).expect_err("gpu must reject");
        assert!(expected(&g) && g.is_invalid_input(), "gpu: {g}");
    }
    assert!(gpu().aggregate(table, &[]).expect("no sets").is_empty());
    assert!(CpuAggregator
        .aggregate(table, &[])
        .expect("no sets")
        .is_empty());
    // The GPU context is still usable.
    assert!(!context().is_lost());
}

#[test]
fn one_submission_per_call_and_table_growth_uploads_only_new_keys() {
    // Its own aggregator (sharing the compiled pipelines), so the counters are its own;
    // tiny chunks and fan-in 2 give deep reduction trees.
    let options = GpuAggregatorOptions {
        chunk: 4,
        fan_in: 2,
        ..Default::default()
    };
    let gpu = GpuAggregator::with_options(context(), options).expect("gpu");
    let mut table = PubkeyTable::new(
        keys()[..100]
            .iter()
            .map(|pk| blst_p1_affine::from(*pk))
            .collect(),
    );
    let set: Vec<u32> = (0..100).rev().collect();
    let first = gpu.aggregate(&table, &[&set]).expect("first");
    assert_eq!(k::p1_compress(&first[0]), blst_aggregate(keys(), &set));
    let s = gpu.stats();
    assert_eq!((s.submissions, s.sets, s.indices), (1, 1, 100));
    assert_eq!(
        s.table_bytes_uploaded,
        100 * 96,
        "the whole table goes up once"
    );
    assert_eq!(s.bytes_downloaded, 144);
    assert_eq!(gpu.resident_len(&table), 100);

    // 30 new validators: only their 30 · 96 bytes go up, with the indices and the plan.
    for pk in &keys()[100..130] {
        table.push(blst_p1_affine::from(*pk));
    }
    let sets: Vec<Vec<u32>> = vec![
        (95..130).collect(),
        vec![129, 0, 129],
        (0..130).collect(),
        vec![7],
    ];
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
    let grown = gpu.aggregate(&table, &refs).expect("grown");
    let d = gpu.stats();
    assert_eq!(
        d.submissions - s.submissions,
        1,
        "one submission for four sets"
    );
    assert_eq!(d.table_bytes_uploaded - s.table_bytes_uploaded, 30 * 96);
    assert_eq!(
        d.bytes_downloaded - s.bytes_downloaded,
        4 * 144,
        "one point per set comes back"
    );
    let indices_up = d.bytes_uploaded - s.bytes_uploaded - 30 * 96;
    assert!(
        indices_up < 4096,
        "{indices_up} bytes of indices, plan and parameters"
    );
    assert_eq!(gpu.resident_len(&table), 130);
    for (set, g) in sets.iter().zip(&grown) {
        assert_eq!(
            k::p1_compress(g),
            blst_aggregate(keys(), set),
            "{} keys",
            set.len()
        );
    }

    // A call on the resident table uploads no points at all.
    let before = gpu.stats();
    let again = gpu.aggregate(&table, &refs[..1]).expect("resident");
    assert_eq!(
        gpu.stats().table_bytes_uploaded,
        before.table_bytes_uploaded
    );
    assert!(k::p1_is_equal(&again[0], &grown[0]));

    // Past the first buffer's capacity (1024 keys): a larger buffer, the old points
    // copied on the device, only the new ones uploaded.
    for pk in &keys()[130..1500] {
        table.push(blst_p1_affine::from(*pk));
    }
    let before = gpu.stats();
    let big: Vec<u32> = (1000..1500).chain(0..10).collect();
    let out = gpu
        .aggregate(&table, &[&big, &[1499]])
        .expect("past capacity");
    assert_eq!(
        gpu.stats().table_bytes_uploaded - before.table_bytes_uploaded,
        1370 * 96
    );
    assert_eq!(k::p1_compress(&out[0]), blst_aggregate(keys(), &big));
    assert_eq!(k::p1_compress(&out[1]), blst_aggregate(keys(), &[1499]));

    // Another table (a clone has its own identity) is uploaded whole.
    let other = table.clone();
    assert_eq!(gpu.resident_len(&other), 0);
    let before = gpu.stats();
    let out = gpu.aggregate(&other, &[&[3, 1400]]).expect("other table");
    assert_eq!(
        gpu.stats().table_bytes_uploaded - before.table_bytes_uploaded,
        1500 * 96
    );
    assert_eq!(k::p1_compress(&out[0]), blst_aggregate(keys(), &[3, 1400]));
}

#[test]
fn auto_falls_back_to_the_cpu_when_the_device_is_lost() {
    // A device of its own, so destroying it leaves the shared one alone.
    let ctx = GpuContext::new().expect("GPU adapter (install mesa-vulkan-drivers)");
    let gpu = GpuAggregator::new(ctx.clone()).expect("GPU aggregator");
    let auto = AutoAggregator::with_gpu(gpu, Calibration::forced(Some(1)));
    let sets: Vec<Vec<u32>> = vec![vec![0, 1, 2], vec![5, 5], vec![7]];
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
    let expect: Vec<[u8; 48]> = sets.iter().map(|s| blst_aggregate(keys(), s)).collect();
    let got = |r: Vec<blst_p1>| r.iter().map(k::p1_compress).collect::<Vec<_>>();
    let before = ctx.stats().submissions;
    assert_eq!(got(auto.aggregate(table(), &refs).unwrap()), expect);
    assert!(
        ctx.stats().submissions > before,
        "the first batch went to the GPU"
    );
    ctx.destroy();
    for _ in 0..2 {
        assert_eq!(
            got(auto.aggregate(table(), &refs).unwrap()),
            expect,
            "CPU after the loss"
        );
    }
    assert!(auto.fell_back());
    // Bad input is still an error, not a fallback.
    assert!(auto.aggregate(table(), &[&[u32::MAX][..]]).is_err());
}

#[test]
fn pipelines_are_cached_per_context_not_per_process() {
    // A context of its own: no pipelines until an aggregator is built on it; a second
    // aggregator with the same multiplication reuses them; the shared test context's
    // cache is not this one's.
    let own = GpuContext::new().expect("a second device on the adapter");
    assert_eq!(own.cached_pipelines(), 0);
    let options = GpuAggregatorOptions {
        fp_mul: FpMul::Limb13,
        ..Default::default()
    };
    let first = GpuAggregator::with_options(own.clone(), options).expect("gpu");
    assert_eq!(own.cached_pipelines(), 1);
    let second = GpuAggregator::with_options(own.clone(), options).expect("gpu");
    assert_eq!(
        own.cached_pipelines(),
        1,
        "the second aggregator shares the first's"
    );
    let table = PubkeyTable::new(
        keys()[..8]
            .iter()
            .map(|pk| blst_p1_affine::from(*pk))
            .collect(),
    );
    let sets: Vec<Vec<u32>> = vec![vec![0, 3, 5], vec![7]];
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
    let a = first.aggregate(&table, &refs).expect("first");
    let b = second.aggregate(&table, &refs).expect("second");
    let cpu = CpuAggregator.aggregate(&table, &refs).expect("cpu");
    assert_same(&sets, &a, &cpu, "first vs cpu");
    assert_same(&sets, &b, &cpu, "second vs cpu");
    let other = GpuContext::new().expect("a third device");
    assert_eq!(
        other.cached_pipelines(),
        0,
        "nothing leaks into another context"
    );
}

/// Sets of `keys` keys in all, 1000 per set, cycling over the shared table.
fn batch(keys: usize) -> Vec<Vec<u32>> {
    let all: Vec<u32> = (0..keys).map(|i| (i * 7 % TABLE_KEYS) as u32).collect();
    all.chunks(1000).map(<[u32]>::to_vec).collect()
}

#[test]
fn auto_calibrates_on_the_device_and_picks_by_batch_size() {
    use quasar::accel::calibrate::MIN_GPU_KEYS;
    use quasar::accel::DeviceProbe;
    // A device of its own, so the submission counters are this test's.
    let ctx = GpuContext::new().expect("GPU adapter (install mesa-vulkan-drivers)");
    let probe = DeviceProbe::with_context(ctx.clone());
    let expect_of = |sets: &[Vec<u32>]| -> Vec<[u8; 48]> {
        let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
        let cpu = CpuAggregator.aggregate(table(), &refs).expect("cpu");
        cpu.iter().map(k::p1_compress).collect()
    };
    let run = |auto: &AutoAggregator, sets: &[Vec<u32>]| -> Vec<[u8; 48]> {
        let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
        let got = auto.aggregate(table(), &refs).expect("auto");
        got.iter().map(k::p1_compress).collect()
    };
    let small = batch(3000);
    let big = batch(MIN_GPU_KEYS);

    // By default a software adapter is never calibrated: everything stays on the CPU.
    if ctx.is_software() {
        let auto = AutoAggregator::with_probe(probe.clone());
        let before = ctx.stats().submissions;
        assert_eq!(run(&auto, &big), expect_of(&big));
        assert!(auto.calibration().is_none());
        assert_eq!(ctx.stats().submissions, before, "no GPU work on lavapipe");
        assert!(auto.name().starts_with("auto(cpu"), "{}", auto.name());
    }

    let auto = AutoAggregator::with_probe(probe).on_software_adapters(true);
    // A small batch neither probes nor calibrates.
    assert_eq!(run(&auto, &small), expect_of(&small));
    assert!(auto.calibration().is_none(), "calibrated on a small batch");
    // The first big batch calibrates (CPU against GPU, on this table), then goes where the
    // calibration says; so does every later batch.
    let before = ctx.stats().submissions;
    assert_eq!(run(&auto, &big), expect_of(&big));
    let cal = auto
        .calibration()
        .expect("calibrated on the first big batch")
        .clone();
    println!("aggregation calibration on {}: {cal:?}", ctx.adapter_name());
    assert!(!cal.points.is_empty(), "measured at least one size");
    assert_eq!(cal.points[0].0, MIN_GPU_KEYS.trailing_zeros());
    assert!(
        cal.points.iter().all(|&(_, c, g)| c > 0.0 && g > 0.0),
        "{:?}",
        cal.points
    );
    assert!(
        ctx.stats().submissions > before + 2,
        "the calibration ran on the GPU"
    );
    assert_eq!(
        cal.threshold,
        quasar::accel::calibrate::threshold_from(&cal.points)
    );
    for sets in [&small, &big] {
        let keys: usize = sets.iter().map(Vec::len).sum();
        let before = ctx.stats().submissions;
        assert_eq!(run(&auto, sets), expect_of(sets), "{keys} keys");
        assert_eq!(
            ctx.stats().submissions > before,
            cal.gpu_for(keys),
            "{keys} keys went to the GPU only if the calibration says so: {:?}",
            cal
        );
    }
    // Forced onto the GPU from 1 key, the same results.
    let gpu = GpuAggregator::new(ctx.clone()).expect("gpu");
    let forced = AutoAggregator::with_gpu(gpu, Calibration::forced(Some(1)));
    let before = ctx.stats().submissions;
    assert_eq!(run(&forced, &small), expect_of(&small));
    assert_eq!(ctx.stats().submissions, before + 1);
}

#[test]
fn one_backend_choice_shares_one_device_probe_between_the_engines() {
    use quasar::accel::{Accel, Backend};
    let accel = Accel::new(Backend::Auto).expect("auto never fails");
    let hasher = accel.hasher().expect("hasher");
    let agg = accel.aggregator().expect("aggregator");
    // Small work on either engine does not probe.
    let sets: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![9]];
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
    let got = agg.aggregate(table(), &refs).expect("auto");
    let cpu = CpuAggregator.aggregate(table(), &refs).expect("cpu");
    assert_same(&sets, &got, &cpu, "auto small");
    let leaves: Vec<[u8; 32]> = (0..100u8).map(|i| [i; 32]).collect();
    let small_root = quasar::merkle::merkleize(hasher.as_ref(), &leaves, None).expect("root");
    assert_eq!(
        small_root,
        quasar::merkle::merkleize(&quasar::accel::CpuHasher::simd(), &leaves, None).unwrap()
    );
    assert!(!accel.probe().probed(), "small work probed the device");
    // A big batch probes once, for both engines.
    let big = batch(quasar::accel::calibrate::MIN_GPU_KEYS);
    let refs: Vec<&[u32]> = big.iter().map(|s| s.as_slice()).collect();
    let got = agg.aggregate(table(), &refs).expect("auto big");
    let cpu = CpuAggregator.aggregate(table(), &refs).expect("cpu big");
    assert_same(&big, &got, &cpu, "auto big");
    assert!(accel.probe().probed(), "the big batch probed the device");
    let ctx = accel
        .probe()
        .context()
        .expect("an adapter (lavapipe at least)");
    assert!(Arc::ptr_eq(
        &ctx,
        &accel.probe().context().expect("the same adapter")
    ));
    // `cpu` and `gpu` build what they say.
    let cpu = Accel::new(Backend::Cpu).expect("cpu");
    assert_eq!(cpu.aggregator().expect("cpu").name(), "cpu(blst)");
    assert!(!cpu.probe().probed());
    let gpu = Accel::new(Backend::Gpu).expect("gpu backend on lavapipe");
    assert!(gpu.aggregator().expect("gpu").name().starts_with("gpu("));
    assert!(gpu.hasher().expect("gpu").name().starts_with("gpu"));
}

// ---- one aggregation call per segment: submit, work, wait ----

/// A segment's sets, shaped like `blocks` blocks' worth: each block has its proposal and
/// RANDAO reveal (one key each), a sync aggregate, and a few attestations of varied sizes;
/// some blocks repeat a set of the block before (the same aggregate included twice), one
/// key many times, and two big sets. `seed` varies the draw.
fn segment(blocks: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = TABLE_KEYS as u32;
    let mut sets: Vec<Vec<u32>> = Vec::new();
    for b in 0..blocks {
        sets.push(vec![rng.random_range(0..n)]);
        sets.push(vec![rng.random_range(0..n)]);
        sets.push((0..16).map(|_| rng.random_range(0..n)).collect());
        for _ in 0..rng.random_range(1..4) {
            let size = rng.random_range(1..=96);
            sets.push((0..size).map(|_| rng.random_range(0..n)).collect());
        }
        if b % 9 == 4 {
            let again = sets[sets.len() - 4].clone();
            sets.push(again);
            sets.push(vec![b as u32; 12]);
        }
    }
    sets.push((0..1500).map(|_| rng.random_range(0..n)).collect());
    sets.push((0..2500).map(|i| i % n).collect());
    sets
}

fn refs_of(sets: &[Vec<u32>]) -> Vec<&[u32]> {
    sets.iter().map(|s| s.as_slice()).collect()
}

fn compressed(points: &[blst_p1]) -> Vec<[u8; 48]> {
    points.iter().map(k::p1_compress).collect()
}

/// The CPU twin's sums of `sets`, checked against blst's own aggregation on every set.
fn oracle(sets: &[Vec<u32>]) -> Vec<[u8; 48]> {
    let cpu = compressed(
        &CpuAggregator
            .aggregate(table(), &refs_of(sets))
            .expect("cpu"),
    );
    for (i, (set, c)) in sets.iter().zip(&cpu).enumerate() {
        assert_eq!(*c, blst_aggregate(keys(), set), "cpu vs blst, set {i}");
    }
    cpu
}

#[test]
fn a_whole_segment_is_one_submission_and_gpu_equals_cpu_equals_blst() {
    let gpu = GpuAggregator::new(context()).expect("gpu");
    let sets = segment(64, 1);
    let refs = refs_of(&sets);
    assert!(sets.len() > 64 * 4, "{} sets", sets.len());
    assert!(sets.iter().any(|s| s.len() == 1) && sets.iter().any(|s| s.len() >= 1500));
    let want = oracle(&sets);

    let mut pending = gpu.submit(table(), &refs).expect("submit");
    assert!(pending.on_gpu(), "a segment goes to the device");
    assert_eq!(pending.len(), sets.len());
    assert_eq!(gpu.in_flight(), 1);
    // The CPU works meanwhile; the pending aggregate is unaffected.
    let busy: u64 = (0..200_000u64).map(|i| i.wrapping_mul(i) >> 3).sum();
    std::hint::black_box(busy);
    let _ = pending.is_ready();
    let got = gpu.wait(pending).expect("wait");
    assert_eq!(compressed(&got), want, "gpu vs cpu/blst on the segment");
    assert_eq!(gpu.in_flight(), 0);
    let s = gpu.stats();
    assert_eq!(
        (s.submissions, s.sets),
        (1, sets.len() as u64),
        "one submission"
    );

    // The same through `aggregate`, through the CPU twin's submit/wait, and through
    // `auto` forced onto the device.
    assert_eq!(
        compressed(&gpu.aggregate(table(), &refs).expect("aggregate")),
        want
    );
    let cpu_pending = CpuAggregator.submit(table(), &refs).expect("cpu submit");
    assert!(!cpu_pending.on_gpu());
    assert_eq!(
        compressed(&CpuAggregator.wait(cpu_pending).expect("cpu")),
        want
    );
    let auto = AutoAggregator::with_gpu(
        GpuAggregator::new(context()).expect("gpu"),
        Calibration::forced(Some(1)),
    );
    let p = auto.submit(table(), &refs).expect("auto submit");
    assert!(p.on_gpu(), "forced from one key");
    assert_eq!(compressed(&auto.wait(p).expect("auto wait")), want);
    assert!(!auto.fell_back());
    // Bad input is refused by submit, before any work.
    let bad: Vec<&[u32]> = vec![&[1, 2], &[TABLE_KEYS as u32]];
    let before = gpu.stats().submissions;
    assert!(matches!(
        gpu.submit(table(), &bad),
        Err(AggregateError::IndexOutOfRange { set: 1, .. })
    ));
    assert!(matches!(
        auto.submit(table(), &[&[][..]]),
        Err(AggregateError::EmptySet { set: 0 })
    ));
    assert_eq!(gpu.stats().submissions, before);
}

#[test]
fn two_submissions_in_flight_waited_in_either_order() {
    let gpu = GpuAggregator::new(context()).expect("gpu");
    let (a, b) = (segment(24, 2), segment(24, 3));
    let (ra, rb) = (refs_of(&a), refs_of(&b));
    let (wa, wb) = (oracle(&a), oracle(&b));

    // The later one first.
    let pa = gpu.submit(table(), &ra).expect("a");
    let pb = gpu.submit(table(), &rb).expect("b");
    assert_eq!(gpu.in_flight(), 2);
    assert_eq!(compressed(&gpu.wait(pb).expect("b")), wb, "b waited first");
    assert_eq!(compressed(&gpu.wait(pa).expect("a")), wa, "a waited second");
    // In order.
    let pa = gpu.submit(table(), &ra).expect("a");
    let pb = gpu.submit(table(), &rb).expect("b");
    assert_eq!(compressed(&gpu.wait(pa).expect("a")), wa);
    assert_eq!(compressed(&gpu.wait(pb).expect("b")), wb);
    assert_eq!(gpu.in_flight(), 0);

    // A third submission while two are outstanding waits for the device to finish the
    // oldest (never for its owner), so the oldest is ready before anyone waits for it.
    let mut p1 = gpu.submit(table(), &ra).expect("1");
    let p2 = gpu.submit(table(), &rb).expect("2");
    let p3 = gpu.submit(table(), &ra).expect("3");
    assert!(
        p1.is_ready(),
        "the third submission waited for the first on the device"
    );
    assert_eq!(gpu.in_flight(), 3);
    assert_eq!(compressed(&gpu.wait(p2).expect("2")), wb);
    assert_eq!(compressed(&gpu.wait(p3).expect("3")), wa);
    assert_eq!(compressed(&gpu.wait(p1).expect("1")), wa);

    // Double buffering: in the steady state (submit k+1, wait k) the two buffer sets
    // alternate and nothing new is allocated.
    let mut pending = Some(gpu.submit(table(), &ra).expect("warm"));
    for _ in 0..2 {
        let next = gpu.submit(table(), &ra).expect("warm");
        assert_eq!(
            compressed(&gpu.wait(pending.replace(next).unwrap()).unwrap()),
            wa
        );
    }
    let created = gpu.pool_stats().created;
    for round in 0..4 {
        let next = gpu.submit(table(), &ra).expect("steady");
        let done = gpu.wait(pending.replace(next).unwrap()).expect("steady");
        assert_eq!(compressed(&done), wa, "round {round}");
    }
    assert_eq!(compressed(&gpu.wait(pending.take().unwrap()).unwrap()), wa);
    assert_eq!(
        gpu.pool_stats().created,
        created,
        "two sets of pooled buffers serve two submissions in flight"
    );
}

#[test]
fn a_later_wait_delivers_an_earlier_submission_without_a_poll_of_its_own() {
    let gpu = GpuAggregator::new(context()).expect("gpu");
    let (a, b) = (segment(8, 4), segment(8, 5));
    let (ra, rb) = (refs_of(&a), refs_of(&b));
    let mut pa = gpu.submit(table(), &ra).expect("a");
    // Waiting for b polls the device past a too: a's readback is mapped then.
    assert_eq!(
        compressed(&gpu.aggregate(table(), &rb).expect("b")),
        oracle(&b)
    );
    assert!(pa.is_ready(), "a was mapped by b's wait");
    assert_eq!(compressed(&gpu.wait(pa).expect("a")), oracle(&a));
}

#[test]
fn a_dropped_pending_leaves_the_aggregator_correct() {
    let gpu = GpuAggregator::new(context()).expect("gpu");
    let (a, b) = (segment(16, 6), segment(16, 7));
    let (ra, rb) = (refs_of(&a), refs_of(&b));
    let (wa, wb) = (oracle(&a), oracle(&b));
    drop(gpu.submit(table(), &ra).expect("a"));
    assert_eq!(gpu.in_flight(), 0, "a dropped pending frees its slot");
    assert_eq!(compressed(&gpu.aggregate(table(), &rb).expect("b")), wb);
    // Dropped while another is in flight, whose buffers and results stay its own.
    let pa = gpu.submit(table(), &ra).expect("a");
    let pb = gpu.submit(table(), &rb).expect("b");
    drop(pa);
    assert_eq!(gpu.in_flight(), 1);
    let pa2 = gpu.submit(table(), &ra).expect("a again");
    assert_eq!(compressed(&gpu.wait(pb).expect("b")), wb);
    assert_eq!(compressed(&gpu.wait(pa2).expect("a again")), wa);
    assert_eq!(compressed(&gpu.aggregate(table(), &ra).expect("a")), wa);
    assert!(!context().is_lost());
}

#[test]
fn threads_sharing_one_aggregator_get_their_own_sums() {
    let gpu = GpuAggregator::new(context()).expect("gpu");
    let work: Vec<Vec<Vec<u32>>> = (0..3).map(|t| segment(6, 10 + t)).collect();
    let want: Vec<Vec<[u8; 48]>> = work.iter().map(|s| oracle(s)).collect();
    std::thread::scope(|scope| {
        for (sets, want) in work.iter().zip(&want) {
            let gpu = &gpu;
            scope.spawn(move || {
                let refs = refs_of(sets);
                for round in 0..4 {
                    // Alternate the split and the one-call forms.
                    let got = if round % 2 == 0 {
                        let p = gpu.submit(table(), &refs).expect("submit");
                        gpu.wait(p).expect("wait")
                    } else {
                        gpu.aggregate(table(), &refs).expect("aggregate")
                    };
                    assert_eq!(compressed(&got), *want, "round {round}");
                }
            });
        }
    });
    assert_eq!(gpu.in_flight(), 0);
    assert_eq!(gpu.stats().submissions, 12);
}

#[test]
fn a_destroyed_device_is_an_error_and_auto_falls_back_to_the_cpu() {
    // A device of its own, so destroying it leaves the shared one alone.
    let ctx = GpuContext::new().expect("GPU adapter (install mesa-vulkan-drivers)");
    let gpu = GpuAggregator::new(ctx.clone()).expect("GPU aggregator");
    let auto = AutoAggregator::with_gpu(
        GpuAggregator::new(ctx.clone()).expect("GPU aggregator"),
        Calibration::forced(Some(1)),
    );
    let sets = segment(12, 8);
    let refs = refs_of(&sets);
    let want = oracle(&sets);
    assert_eq!(
        compressed(&gpu.aggregate(table(), &refs).expect("alive")),
        want
    );

    // In flight when the device goes: the raw aggregator gives the sums or a GPU error
    // (never wrong sums); auto gives the sums, from the CPU if need be.
    let raw = gpu.submit(table(), &refs).expect("submitted while alive");
    let via_auto = auto.submit(table(), &refs).expect("submitted while alive");
    assert!(via_auto.on_gpu());
    ctx.destroy();
    match gpu.wait(raw) {
        Ok(got) => assert_eq!(compressed(&got), want, "finished before the loss"),
        Err(e) => assert!(!e.is_invalid_input(), "a node fault: {e}"),
    }
    assert_eq!(compressed(&auto.wait(via_auto).expect("auto")), want);

    // After the loss: the GPU refuses at submit, typed as ours; auto sums on the CPU.
    let e = gpu.submit(table(), &refs).expect_err("lost device");
    assert!(
        matches!(
            e,
            AggregateError::Gpu(quasar::accel::gpu::GpuError::Lost(_))
        ),
        "{e}"
    );
    assert!(!e.is_invalid_input());
    let p = auto.submit(table(), &refs).expect("auto after the loss");
    assert!(!p.on_gpu(), "auto no longer submits to a lost device");
    assert_eq!(compressed(&auto.wait(p).expect("cpu")), want);
    assert!(auto.fell_back());
    assert_eq!(gpu.in_flight(), 0);
}
