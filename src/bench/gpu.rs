//! `quasar bench gpu`: the node's own GPU workloads at mainnet scale, on every backend of
//! this host, in one run — where the GPU wins and where the CPU does.
//!
//! Workloads, per registry size (synthetic mainnet states, `merkle::synthetic`):
//! - **cold state root**: `hash_tree_root(state)` from nothing (start-up, a state loaded
//!   from disk), through the CPU hasher and the GPU hasher;
//! - **root after a block**: the cached root after what a mainnet block changes (the
//!   proposer's and sync committee's balances, one slot of attesters' participation flags,
//!   a few validators, the slot's roots), with the trees on the host (CPU, or the GPU
//!   hashing each level's pairs) and resident on the device (`accel::resident`);
//! - **root after an epoch**: every balance and inactivity score, the participation
//!   rotated, on the same three;
//! - **segment aggregation**: the pubkey sums of a 64-block segment, one set of
//!   `attesters` keys per block, through the CPU twin and the GPU aggregator.
//!
//! Every timed result is checked first (roots against the cold CPU root, sums against
//! the CPU twin): a fast wrong answer is not a result.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use super::time_best;
use crate::accel::aggregate::{CpuAggregator, GpuAggregator, PubkeyAggregator, PubkeyTable};
use crate::accel::gpu::{GpuContext, GpuHasher};
use crate::accel::hash::{BatchHasher, CpuHasher, GpuBatchHasher};
use crate::accel::resident::ResidentTrees;
use crate::merkle::{state_root, synthetic, CachedStateRoot};
use crate::types::mainnet::BeaconState;

/// What to measure.
#[derive(Clone, Debug)]
pub struct GpuBenchConfig {
    /// Registry sizes (validators).
    pub validators: Vec<usize>,
    /// Attesters per block in the segment aggregation.
    pub attesters: usize,
    /// Blocks per segment.
    pub blocks: usize,
    /// Time spent per measurement (the fastest run counts).
    pub target: Duration,
    /// Leave a backend out at larger sizes once one run took longer than this.
    pub give_up: Duration,
    /// Leave the GPU out even when an adapter exists.
    pub no_gpu: bool,
}

impl Default for GpuBenchConfig {
    fn default() -> Self {
        GpuBenchConfig {
            validators: vec![1 << 16, 1 << 18, 1 << 20],
            attesters: 1 << 15,
            blocks: 64,
            target: Duration::from_millis(500),
            give_up: Duration::from_secs(20),
            no_gpu: false,
        }
    }
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct GpuPoint {
    pub workload: String,
    pub backend: String,
    pub validators: usize,
    pub seconds: f64,
    /// The CPU's time / this time for the same workload and size (> 1: faster than the CPU).
    pub vs_cpu: Option<f64>,
    /// Bytes sent to the device per run (GPU rows).
    pub bytes_up: Option<u64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct GpuReport {
    pub cpu: String,
    pub threads: usize,
    pub gpu: Option<String>,
    pub gpu_note: Option<String>,
    pub points: Vec<GpuPoint>,
}

/// What a mainnet block does to the state's big lists: balances of the proposer and the
/// sync committee, one slot's attesters' participation flags, a few validators.
fn block_change(state: &mut BeaconState, rng: &mut rand::rngs::StdRng) {
    let n = state.validators.len();
    synthetic::mainnet_block(state, rng, 513, 2);
    for _ in 0..n / 32 {
        let i = rng.random_range(0..n);
        state.current_epoch_participation[i] |= 1 << rng.random_range(0..3);
    }
}

/// What an epoch boundary does: every balance and inactivity score, participation rotated.
fn epoch_change(state: &mut BeaconState, rng: &mut rand::rngs::StdRng) {
    for i in 0..state.balances.len() {
        state.balances[i] = state.balances[i].wrapping_add(rng.random_range(1..5000));
        state.inactivity_scores[i] = rng.random_range(0..3);
    }
    state.previous_epoch_participation = state.current_epoch_participation.clone();
    let zeros = vec![0u8; state.validators.len()];
    if let Ok(z) = zeros.try_into() {
        state.current_epoch_participation = z;
    }
    synthetic::mainnet_block(state, rng, 0, 0);
}

/// The trees of a cached root: where they live.
enum Trees {
    /// On the host, hashed by the CPU.
    HostCpu,
    /// On the host, each level's pairs hashed on the GPU.
    HostGpu,
    /// Resident on the device.
    Resident,
}

impl Trees {
    fn name(&self) -> &'static str {
        match self {
            Trees::HostCpu => "cpu (host trees)",
            Trees::HostGpu => "gpu pairs (host trees)",
            Trees::Resident => "gpu resident trees",
        }
    }
}

struct Gpu {
    ctx: std::sync::Arc<GpuContext>,
    hasher: GpuBatchHasher,
    aggregator: GpuAggregator,
}

fn open_gpu() -> Result<Gpu, String> {
    let ctx = GpuContext::new().map_err(|e| e.to_string())?;
    let hasher = GpuHasher::new(ctx.clone()).map_err(|e| e.to_string())?;
    let aggregator = GpuAggregator::new(ctx.clone()).map_err(|e| e.to_string())?;
    Ok(Gpu {
        ctx,
        hasher: GpuBatchHasher::from_hasher(hasher),
        aggregator,
    })
}

/// Mean time of `reps` (at least one, until `target`) calls of `update` after `change`,
/// only `update` timed; every root checked against the cold CPU root at the first rep.
fn time_updates(
    target: Duration,
    mut change: impl FnMut(),
    mut update: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut spent = Duration::ZERO;
    let mut reps = 0u32;
    while reps == 0 || (started.elapsed() < target && reps < 20) {
        change();
        let t = Instant::now();
        update()?;
        spent += t.elapsed();
        reps += 1;
    }
    Ok(spent / reps)
}

/// Run the benchmark; `progress` receives one line per measurement.
pub fn run(cfg: &GpuBenchConfig, mut progress: impl FnMut(&str)) -> anyhow::Result<GpuReport> {
    let threads = rayon::current_num_threads();
    let cpu = CpuHasher::simd();
    let (gpu, gpu_note) = if cfg.no_gpu {
        (None, Some("left out (--no-gpu)".to_string()))
    } else {
        match open_gpu() {
            Ok(g) => (Some(g), None),
            Err(e) => (None, Some(e)),
        }
    };
    let mut points: Vec<GpuPoint> = Vec::new();
    let mut gave_up: Vec<String> = Vec::new();
    let mut push = |points: &mut Vec<GpuPoint>,
                    workload: &str,
                    backend: &str,
                    validators: usize,
                    t: Duration,
                    bytes_up: Option<u64>| {
        let cpu_secs = points
            .iter()
            .find(|p| {
                p.workload == workload && p.validators == validators && p.backend.starts_with("cpu")
            })
            .map(|p| p.seconds);
        let p = GpuPoint {
            workload: workload.into(),
            backend: backend.into(),
            validators,
            seconds: t.as_secs_f64(),
            vs_cpu: cpu_secs.map(|c| c / t.as_secs_f64()),
            bytes_up,
        };
        progress(&format_row(&p));
        points.push(p);
    };
    let key = |w: &str, b: &str| format!("{w}/{b}");

    for &n in &cfg.validators {
        let mut rng = synthetic::rng(n as u64);
        let mut state = synthetic::mainnet_state(n, 1);
        let want = state_root(&cpu, &state)?;

        // Cold roots.
        let t = time_best(cfg.target, 10, || {
            let _ = state_root(&cpu, &state);
        });
        push(&mut points, "cold state root", "cpu", n, t, None);
        if let Some(g) = &gpu {
            let k = key("cold", "gpu");
            if !gave_up.contains(&k) {
                let got = state_root(&g.hasher, &state)?;
                anyhow::ensure!(got == want, "gpu: wrong cold root at {n} validators");
                let before = g.ctx.stats().bytes_uploaded;
                let runs = std::cell::Cell::new(0u64);
                let t = time_best(cfg.target, 10, || {
                    runs.set(runs.get() + 1);
                    let _ = state_root(&g.hasher, &state);
                });
                let up = (g.ctx.stats().bytes_uploaded - before) / runs.get().max(1);
                push(&mut points, "cold state root", "gpu", n, t, Some(up));
                if t > cfg.give_up {
                    gave_up.push(k);
                }
            }
        }

        // Cached roots after a block and after an epoch, per place of the trees.
        let mut kinds = vec![Trees::HostCpu];
        if gpu.is_some() {
            kinds.push(Trees::HostGpu);
            kinds.push(Trees::Resident);
        }
        for kind in kinds {
            let mut cache = match (&kind, &gpu) {
                (Trees::Resident, Some(g)) => {
                    CachedStateRoot::default().with_resident(ResidentTrees::new(g.ctx.clone())?)
                }
                _ => CachedStateRoot::default(),
            };
            let hasher: &dyn BatchHasher = match (&kind, &gpu) {
                (Trees::HostGpu, Some(g)) => &g.hasher,
                _ => &cpu,
            };
            let got = cache.update(hasher, &state)?;
            anyhow::ensure!(
                got == state_root(&cpu, &state)?,
                "{}: wrong root",
                kind.name()
            );
            for (workload, epoch) in [("root after a block", false), ("root after an epoch", true)]
            {
                let k = key(workload, kind.name());
                if gave_up.contains(&k) {
                    continue;
                }
                // Checked once, then timed.
                if epoch {
                    epoch_change(&mut state, &mut rng);
                } else {
                    block_change(&mut state, &mut rng);
                }
                let got = cache.update(hasher, &state)?;
                anyhow::ensure!(
                    got == state_root(&cpu, &state)?,
                    "{}: wrong root after a change at {n} validators",
                    kind.name()
                );
                let before = gpu.as_ref().map(|g| g.ctx.stats().bytes_uploaded);
                let reps = std::cell::Cell::new(0u64);
                let t = {
                    let state = std::cell::RefCell::new(&mut state);
                    let rng = std::cell::RefCell::new(&mut rng);
                    time_updates(
                        cfg.target,
                        || {
                            reps.set(reps.get() + 1);
                            let (mut s, mut r) = (state.borrow_mut(), rng.borrow_mut());
                            if epoch {
                                epoch_change(&mut s, &mut r);
                            } else {
                                block_change(&mut s, &mut r);
                            }
                        },
                        || {
                            cache.update(hasher, &**state.borrow())?;
                            Ok(())
                        },
                    )?
                };
                let up = match (&kind, &gpu, before) {
                    (Trees::HostCpu, _, _) | (_, None, _) | (_, _, None) => None,
                    (_, Some(g), Some(b)) => {
                        Some((g.ctx.stats().bytes_uploaded - b) / reps.get().max(1))
                    }
                };
                let backend = match kind {
                    Trees::HostCpu => "cpu",
                    Trees::HostGpu => "gpu pairs, host trees",
                    Trees::Resident => "gpu resident trees",
                };
                push(&mut points, workload, backend, n, t, up);
                if t > cfg.give_up {
                    gave_up.push(k);
                }
            }
            if matches!(kind, Trees::Resident) {
                anyhow::ensure!(
                    cache.resident().is_some(),
                    "the resident trees fell back to the CPU during the run"
                );
            }
        }
    }

    // Segment aggregation over the largest registry.
    let n = cfg
        .validators
        .iter()
        .copied()
        .max()
        .unwrap_or(1 << 16)
        .max(cfg.attesters);
    let keys = super::bls::synthetic_table(n);
    let table = PubkeyTable::from_public_keys(&keys);
    let mut rng = synthetic::rng(99);
    let sets: Vec<Vec<u32>> = (0..cfg.blocks)
        .map(|_| {
            (0..cfg.attesters)
                .map(|_| rng.random_range(0..n as u32))
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = sets.iter().map(Vec::as_slice).collect();
    let workload = format!("segment aggregation ({}x{})", cfg.blocks, cfg.attesters);
    let want = CpuAggregator.aggregate(&table, &refs)?;
    let t = time_best(cfg.target, 10, || {
        let _ = CpuAggregator.aggregate(&table, &refs);
    });
    push(&mut points, &workload, "cpu", n, t, None);
    if let Some(g) = &gpu {
        let got = g.aggregator.aggregate(&table, &refs)?;
        let same = got
            .iter()
            .zip(&want)
            .all(|(a, b)| quasar_kernels::bls::p1_is_equal(a, b));
        anyhow::ensure!(same && got.len() == want.len(), "gpu: wrong segment sums");
        let before = g.ctx.stats().bytes_uploaded;
        let runs = std::cell::Cell::new(0u64);
        let t = time_best(cfg.target, 10, || {
            runs.set(runs.get() + 1);
            let _ = g.aggregator.aggregate(&table, &refs);
        });
        let up = (g.ctx.stats().bytes_uploaded - before) / runs.get().max(1);
        push(&mut points, &workload, "gpu", n, t, Some(up));
    }
    Ok(GpuReport {
        cpu: cpu.name(),
        threads,
        gpu: gpu.as_ref().map(|g| g.ctx.adapter_name()),
        gpu_note,
        points,
    })
}

pub fn header() -> String {
    format!(
        "{:<34} {:<24} {:>10} {:>12} {:>9} {:>12}",
        "workload", "backend", "validators", "ms", "x cpu", "bytes up"
    )
}

pub fn format_row(p: &GpuPoint) -> String {
    format!(
        "{:<34} {:<24} {:>10} {:>12.3} {:>9} {:>12}",
        p.workload,
        p.backend,
        p.validators,
        p.seconds * 1e3,
        p.vs_cpu.map_or("-".to_string(), |r| format!("{r:.2}")),
        p.bytes_up.map_or("-".to_string(), |b| b.to_string()),
    )
}

/// The SVG: time against registry size, one line per (workload, backend).
pub fn plot(report: &GpuReport, path: &std::path::Path) -> anyhow::Result<()> {
    let title = format!(
        "quasar bench gpu — {} ×{} vs GPU: {}",
        report.cpu,
        report.threads,
        report.gpu.as_deref().unwrap_or("none")
    );
    let mut names: Vec<String> = Vec::new();
    for p in &report.points {
        let label = format!("{} — {}", p.workload, p.backend);
        if !names.contains(&label) {
            names.push(label);
        }
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = names
        .into_iter()
        .map(|name| {
            let pts = report
                .points
                .iter()
                .filter(|p| format!("{} — {}", p.workload, p.backend) == name)
                .map(|p| ((p.validators as f64).log2(), p.seconds * 1e3))
                .collect();
            (name, pts)
        })
        .collect();
    super::plot::line_chart(path, &title, "log2(validators)", "ms (log scale)", &series)
}
