//! `quasar bench aggregate` and `quasar bench verify`: pubkey pre-aggregation (GPU, CPU
//! twin) against plain blst `AggregatePublicKey::aggregate`, and batch verification against
//! per-set verification, in the same run.

use std::time::Duration;

use blst::min_pk::{AggregatePublicKey, PublicKey, SecretKey};
use serde::Serialize;

use super::time_best;
use crate::accel::aggregate::{CpuAggregator, GpuAggregator, PubkeyAggregator, PubkeyTable};
use crate::accel::gpu::GpuContext;
use crate::bls::sets::ResolvedSet;
use crate::bls::{verify_each, DST};

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct BlsPoint {
    pub implementation: String,
    pub threads: usize,
    /// Keys per set (aggregate) or sets per batch (verify).
    pub size: usize,
    pub seconds: f64,
    /// ns per pubkey addition (aggregate) or per signature set (verify).
    pub ns_per_item: f64,
    /// plain blst's time / this time, same size (> 1: faster than plain blst).
    pub vs_blst: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BlsReport {
    pub what: String,
    pub table_keys: usize,
    pub threads: usize,
    pub gpu: Option<String>,
    pub gpu_note: Option<String>,
    pub points: Vec<BlsPoint>,
}

/// A table of `n` distinct valid G1 points: i·G for i = 1..=n (one addition each, so a
/// 2M-key table is built in a second instead of 2M key generations).
pub fn synthetic_table(n: usize) -> Vec<PublicKey> {
    use quasar_kernels::bls::{p1_add, p1_generator, p1_to_affine};
    let g = p1_generator();
    let mut acc = g;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(PublicKey::from(p1_to_affine(&acc)));
        acc = p1_add(&acc, &g);
    }
    out
}

fn lcg_indices(count: usize, modulo: usize, seed: u64) -> Vec<u32> {
    let mut s = seed;
    (0..count)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % modulo as u64) as u32
        })
        .collect()
}

fn gpu_aggregator() -> (Option<GpuAggregator>, Option<String>) {
    match GpuContext::new() {
        Ok(ctx) => match GpuAggregator::new(ctx) {
            Ok(g) => (Some(g), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Aggregate sets of `sizes` keys each (`sets_per_size` sets) drawn from a resident table of
/// `table_keys` keys.
pub fn run_aggregate(
    table_keys: usize,
    sizes: &[usize],
    budget: Duration,
    no_gpu: bool,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<BlsReport> {
    let threads = rayon::current_num_threads();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let keys = synthetic_table(table_keys);
    let table = PubkeyTable::from_public_keys(&keys);
    let (gpu, gpu_note) = if no_gpu {
        (None, Some("left out (--no-gpu)".into()))
    } else {
        gpu_aggregator()
    };
    let gpu_name = gpu.as_ref().map(|g| g.context().adapter_name());
    let mut points = Vec::new();
    for &size in sizes {
        // Enough sets to give the GPU a batch (as a block's attestations would), ≥ 64k keys in all.
        let nsets = (65536 / size).clamp(1, 64);
        let sets: Vec<Vec<u32>> = (0..nsets)
            .map(|i| lcg_indices(size, table_keys, (size * 1000 + i) as u64))
            .collect();
        let set_refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
        let adds = (nsets * size.saturating_sub(1)).max(1);
        // The oracle, and the peer: plain blst, one set after another, one thread.
        let expect: Vec<[u8; 48]> = sets
            .iter()
            .map(|s| {
                let refs: Vec<&PublicKey> = s.iter().map(|&i| &keys[i as usize]).collect();
                AggregatePublicKey::aggregate(&refs, false)
                    .expect("non-empty")
                    .to_public_key()
                    .compress()
            })
            .collect();
        let plain = time_best(budget, 20, || {
            for s in &sets {
                let refs: Vec<&PublicKey> = s.iter().map(|&i| &keys[i as usize]).collect();
                std::hint::black_box(AggregatePublicKey::aggregate(&refs, false).unwrap());
            }
        });
        let mut push = |name: &str, threads: usize, t: Duration, vs: Option<f64>| {
            let p = BlsPoint {
                implementation: name.into(),
                threads,
                size,
                seconds: t.as_secs_f64(),
                ns_per_item: t.as_secs_f64() * 1e9 / adds as f64,
                vs_blst: vs,
            };
            progress(&format_row(&p));
            points.push(p);
        };
        push("blst aggregate", 1, plain, None);
        let ratio = |t: Duration| Some(plain.as_secs_f64() / t.as_secs_f64());
        let mut contenders: Vec<(&str, usize, &dyn PubkeyAggregator)> =
            vec![("cpu", 1, &CpuAggregator)];
        if threads > 1 {
            contenders.push(("cpu", threads, &CpuAggregator));
        }
        if let Some(g) = &gpu {
            contenders.push(("gpu", 0, g));
        }
        for (name, t, agg) in contenders {
            let call = || -> anyhow::Result<Vec<blst::blst_p1>> {
                if t == 1 {
                    Ok(one.install(|| agg.aggregate(&table, &set_refs))?)
                } else {
                    Ok(agg.aggregate(&table, &set_refs)?)
                }
            };
            let got: Vec<[u8; 48]> = call()?
                .iter()
                .map(quasar_kernels::bls::p1_compress)
                .collect();
            anyhow::ensure!(
                got == expect,
                "{name} gave a wrong aggregate for sets of {size}"
            );
            let d = time_best(budget, 20, || {
                let _ = call();
            });
            push(name, t, d, ratio(d));
        }
    }
    Ok(BlsReport {
        what: "aggregate".into(),
        table_keys,
        threads,
        gpu: gpu_name,
        gpu_note,
        points,
    })
}

/// Verify batches of `sizes` single-signer sets: one batch check against one check per set.
pub fn run_verify(
    sizes: &[usize],
    budget: Duration,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<BlsReport> {
    let threads = rayon::current_num_threads();
    let max = sizes.iter().copied().max().unwrap_or(1);
    let sks: Vec<SecretKey> = (0..max)
        .map(|i| {
            let mut ikm = [7u8; 32];
            ikm[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SecretKey::key_gen(&ikm, &[]).expect("32 bytes of ikm")
        })
        .collect();
    let sets: Vec<ResolvedSet> = sks
        .iter()
        .enumerate()
        .map(|(i, sk)| {
            let mut root = [0u8; 32];
            root[..8].copy_from_slice(&(i as u64).to_le_bytes());
            ResolvedSet {
                pubkey: sk.sk_to_pk(),
                signing_root: root,
                signature: sk.sign(&root, DST, &[]),
            }
        })
        .collect();
    let mut points = Vec::new();
    for &size in sizes {
        let batch = &sets[..size];
        let plain = time_best(budget, 20, || {
            for s in batch {
                let r = s
                    .signature
                    .verify(false, &s.signing_root, DST, &[], &s.pubkey, false);
                assert_eq!(r, blst::BLST_ERROR::BLST_SUCCESS);
            }
        });
        let batched = time_best(budget, 20, || assert!(verify_each(batch).all_valid()));
        for (name, t, vs) in [
            ("blst verify per set", plain, None),
            (
                "batch (blst, blinded)",
                batched,
                Some(plain.as_secs_f64() / batched.as_secs_f64()),
            ),
        ] {
            let p = BlsPoint {
                implementation: name.into(),
                threads: if vs.is_some() { threads } else { 1 },
                size,
                seconds: t.as_secs_f64(),
                ns_per_item: t.as_secs_f64() * 1e9 / size as f64,
                vs_blst: vs,
            };
            progress(&format_row(&p));
            points.push(p);
        }
    }
    Ok(BlsReport {
        what: "verify".into(),
        table_keys: max,
        threads,
        gpu: None,
        gpu_note: None,
        points,
    })
}

pub fn header(unit: &str) -> String {
    format!(
        "{:<24} {:>7} {:>8} {:>14} {:>10}",
        "implementation", "threads", "size", unit, "x blst"
    )
}

pub fn format_row(p: &BlsPoint) -> String {
    let threads = if p.threads == 0 {
        "gpu".to_string()
    } else {
        p.threads.to_string()
    };
    format!(
        "{:<24} {:>7} {:>8} {:>14.1} {:>10}",
        p.implementation,
        threads,
        p.size,
        p.ns_per_item,
        p.vs_blst.map_or("-".into(), |r| format!("{r:.2}"))
    )
}

fn label(p: &BlsPoint) -> String {
    match p.threads {
        0 => format!("{} (gpu)", p.implementation),
        t => format!("{} ×{t}", p.implementation),
    }
}

/// SVG plot: ns per item against log2(size), one line per implementation.
pub fn plot(report: &BlsReport, path: &std::path::Path) -> anyhow::Result<()> {
    let mut names: Vec<String> = Vec::new();
    for p in &report.points {
        if !names.contains(&label(p)) {
            names.push(label(p));
        }
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = names
        .into_iter()
        .map(|n| {
            let pts = report
                .points
                .iter()
                .filter(|p| label(p) == n)
                .map(|p| ((p.size as f64).log2(), p.ns_per_item))
                .collect();
            (n, pts)
        })
        .collect();
    let title = format!(
        "quasar bench {} (GPU: {})",
        report.what,
        report.gpu.as_deref().unwrap_or("none")
    );
    super::plot::line_chart(
        path,
        &title,
        "log2(size)",
        "ns per item (log scale)",
        &series,
    )
}

/// The shape of a segment's signature sets (`quasar bench aggregate --segment`).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SegmentShape {
    /// Blocks in the segment (64: a range-sync batch).
    pub blocks: usize,
    /// Attesters per block: the sum of its attestations' set sizes (32,768 at a million
    /// validators: a slot's committees).
    pub attesters: usize,
    /// Keys per attestation set (the last of a block may be smaller).
    pub committee: usize,
    /// Keys of the block's sync aggregate set (0: none).
    pub sync: usize,
}

impl SegmentShape {
    /// Each block's sets: the proposal and the RANDAO reveal (one key each), the sync
    /// aggregate, then the attestations; indices pseudo-random over `table_keys`.
    pub fn sets(&self, table_keys: usize) -> Vec<Vec<u32>> {
        let committee = self.committee.max(1);
        let mut out = Vec::new();
        for b in 0..self.blocks {
            let seed = (b as u64 + 1) << 32;
            out.push(lcg_indices(1, table_keys, seed));
            out.push(lcg_indices(1, table_keys, seed + 1));
            if self.sync > 0 {
                out.push(lcg_indices(self.sync, table_keys, seed + 2));
            }
            let mut left = self.attesters;
            let mut k = 3;
            while left > 0 {
                let n = left.min(committee);
                out.push(lcg_indices(n, table_keys, seed + k));
                left -= n;
                k += 1;
            }
        }
        out
    }
}

/// One row of the segment report.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentRow {
    pub implementation: String,
    /// Seconds per segment (the fastest run).
    pub seconds: f64,
    pub ns_per_addition: f64,
    /// The CPU twin's time / this time (> 1: faster than the CPU twin).
    pub vs_cpu: f64,
}

/// Per-call latency of a tiny batch (one set of one key) on the GPU.
#[derive(Clone, Debug, Serialize)]
pub struct CallLatency {
    pub calls: usize,
    /// `aggregate` (submit, then wait) one call after another: the fastest and the median.
    pub serial_best_us: f64,
    pub serial_median_us: f64,
    /// Of which `submit` (plan, uploads, one submission; returns without waiting).
    pub submit_median_us: f64,
    /// Submit call k+1 before waiting for call k (two in flight): time per call.
    pub pipelined_us: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentReport {
    pub shape: SegmentShape,
    pub sets: usize,
    pub additions: usize,
    pub table_keys: usize,
    pub threads: usize,
    pub gpu: Option<String>,
    pub gpu_note: Option<String>,
    pub rows: Vec<SegmentRow>,
    pub latency: Option<CallLatency>,
}

/// Segment aggregation: all sets of `shape.blocks` blocks in one call, the CPU twin (all
/// threads) against the GPU (one submission per segment; and segments two in flight,
/// the next one's index lists going up while one sums), GPU ≡ CPU checked on every set
/// and plain blst on a sample; then the GPU's per-call latency on a tiny batch.
pub fn run_segment(
    table_keys: usize,
    shape: SegmentShape,
    budget: Duration,
    no_gpu: bool,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<SegmentReport> {
    use quasar_kernels::bls::p1_compress;
    anyhow::ensure!(shape.blocks >= 1, "a segment has at least one block");
    let threads = rayon::current_num_threads();
    let keys = synthetic_table(table_keys);
    let table = PubkeyTable::from_public_keys(&keys);
    let (gpu, gpu_note) = if no_gpu {
        (None, Some("left out (--no-gpu)".into()))
    } else {
        gpu_aggregator()
    };
    let sets = shape.sets(table_keys);
    let refs: Vec<&[u32]> = sets.iter().map(|s| s.as_slice()).collect();
    let additions: usize = sets.iter().map(|s| s.len()).sum::<usize>().max(1);
    progress(&format!(
        "segment: {} blocks, {} sets, {additions} additions over {table_keys} keys",
        shape.blocks,
        sets.len()
    ));

    let cpu = CpuAggregator.aggregate(&table, &refs)?;
    let expect: Vec<[u8; 48]> = cpu.iter().map(p1_compress).collect();
    for (i, s) in sets.iter().enumerate().step_by(97) {
        let ks: Vec<&PublicKey> = s.iter().map(|&k| &keys[k as usize]).collect();
        let want = AggregatePublicKey::aggregate(&ks, false)
            .map_err(|e| anyhow::anyhow!("blst aggregate: {e:?}"))?
            .to_public_key()
            .compress();
        anyhow::ensure!(
            expect[i] == want,
            "the CPU twin differs from blst on set {i}"
        );
    }
    let cpu_t = time_best(budget, 20, || {
        let _ = CpuAggregator.aggregate(&table, &refs);
    });
    let mut rows = Vec::new();
    let mut push = |name: &str, t: Duration| {
        let row = SegmentRow {
            implementation: name.into(),
            seconds: t.as_secs_f64(),
            ns_per_addition: t.as_secs_f64() * 1e9 / additions as f64,
            vs_cpu: cpu_t.as_secs_f64() / t.as_secs_f64(),
        };
        progress(&format!(
            "{:<34} {:>10.2} ms {:>10.1} ns/add {:>8.2}x cpu",
            row.implementation,
            row.seconds * 1e3,
            row.ns_per_addition,
            row.vs_cpu
        ));
        rows.push(row);
    };
    push(&format!("cpu twin ({threads} threads)"), cpu_t);
    let mut latency = None;
    if let Some(g) = &gpu {
        let got: Vec<[u8; 48]> = g
            .aggregate(&table, &refs)?
            .iter()
            .map(p1_compress)
            .collect();
        anyhow::ensure!(
            got == expect,
            "the GPU differs from the CPU twin on the segment"
        );
        let one = time_best(budget, 20, || {
            let _ = g.aggregate(&table, &refs);
        });
        push("gpu, one submission per segment", one);
        // Four segments, two in flight: submit k+1, then wait for k.
        let rounds = 4;
        let piped = time_best(budget, 10, || {
            let mut pending = g.submit(&table, &refs).ok();
            for _ in 1..rounds {
                let next = g.submit(&table, &refs).ok();
                if let Some(p) = pending.take() {
                    let _ = g.wait(p);
                }
                pending = next;
            }
            if let Some(p) = pending {
                let _ = g.wait(p);
            }
        }) / rounds as u32;
        push("gpu, two segments in flight", piped);
        latency = Some(call_latency(g, &table)?);
        if let Some(l) = &latency {
            progress(&format!(
                "gpu per-call latency, 1 set of 1 key: best {:.0} us, median {:.0} us serial (submit {:.0} us of it); {:.0} us per call two in flight ({} calls)",
                l.serial_best_us, l.serial_median_us, l.submit_median_us, l.pipelined_us, l.calls
            ));
        }
    }
    Ok(SegmentReport {
        shape,
        sets: sets.len(),
        additions,
        table_keys,
        threads,
        gpu: gpu.as_ref().map(|g| g.context().adapter_name()),
        gpu_note,
        rows,
        latency,
    })
}

/// The per-call latency of a tiny batch: serial `aggregate` calls, then calls two in flight.
fn call_latency(g: &GpuAggregator, table: &PubkeyTable) -> anyhow::Result<CallLatency> {
    let set: &[u32] = &[0];
    let sets = [set];
    let calls = 100;
    g.aggregate(table, &sets)?;
    let mut times = Vec::with_capacity(calls);
    let mut submits = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = std::time::Instant::now();
        let p = g.submit(table, &sets)?;
        submits.push(t.elapsed().as_secs_f64() * 1e6);
        g.wait(p)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    submits.sort_by(f64::total_cmp);
    let t = std::time::Instant::now();
    let mut pending = Some(g.submit(table, &sets)?);
    for _ in 1..calls {
        let next = g.submit(table, &sets)?;
        if let Some(p) = pending.replace(next) {
            g.wait(p)?;
        }
    }
    if let Some(p) = pending {
        g.wait(p)?;
    }
    let pipelined_us = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
    Ok(CallLatency {
        calls,
        serial_best_us: times[0],
        serial_median_us: times[calls / 2],
        submit_median_us: submits[calls / 2],
        pipelined_us,
    })
}
