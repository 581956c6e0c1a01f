//! `quasar bench hash`: merkleization throughput of every backend against `sha2` and
//! Prysm's `hashtree`, for tree sizes 2^min … 2^max leaves, in one run.

use std::sync::Arc;
use std::time::Duration;

use quasar_kernels::sha256::Kernel;
use serde::Serialize;

use super::{peers, random_chunks, time_best};
use crate::accel::gpu::{GpuContext, GpuHasher};
use crate::accel::hash::{BatchHasher, CpuHasher, GpuBatchHasher};
use crate::merkle::merkleize;

/// What to measure.
#[derive(Clone, Debug)]
pub struct HashBenchConfig {
    pub min_log2: u32,
    pub max_log2: u32,
    pub step: u32,
    /// Time spent per measurement (the fastest run counts).
    pub target: Duration,
    /// Skip larger sizes of an implementation once one run took longer than this.
    pub give_up: Duration,
    /// Leave the GPU out even when an adapter exists.
    pub no_gpu: bool,
}

impl Default for HashBenchConfig {
    fn default() -> Self {
        Self {
            min_log2: 10,
            max_log2: 20,
            step: 2,
            target: Duration::from_millis(300),
            give_up: Duration::from_secs(8),
            no_gpu: false,
        }
    }
}

/// One measurement: an implementation merkleizing 2^log2 leaves.
#[derive(Clone, Debug, Serialize)]
pub struct HashPoint {
    pub implementation: String,
    pub threads: usize,
    pub log2_leaves: u32,
    pub leaves: u64,
    /// Pairs hashed: leaves - 1.
    pub nodes: u64,
    pub seconds: f64,
    pub ns_per_node: f64,
    pub nodes_per_sec: f64,
    /// hashtree's time / this time, for the same size (> 1: faster than hashtree).
    pub vs_hashtree: Option<f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct HashReport {
    pub cpu_kernel: String,
    pub threads: usize,
    pub gpu: Option<String>,
    pub gpu_note: Option<String>,
    /// (log2 leaves, submissions, bytes uploaded, bytes downloaded) for one GPU tree.
    pub gpu_traffic: Vec<(u32, u64, u64, u64)>,
    pub points: Vec<HashPoint>,
}

type Merkleize<'a> = Box<dyn Fn(&[[u8; 32]]) -> anyhow::Result<[u8; 32]> + Send + Sync + 'a>;

struct Contender<'a> {
    name: String,
    threads: usize,
    run: Merkleize<'a>,
    gave_up: bool,
}

fn via(hasher: Arc<dyn BatchHasher>) -> Merkleize<'static> {
    Box::new(move |leaves| Ok(merkleize(hasher.as_ref(), leaves, None)?))
}

/// Run the benchmark; `progress` receives one line per measurement.
pub fn run(cfg: &HashBenchConfig, mut progress: impl FnMut(&str)) -> anyhow::Result<HashReport> {
    let threads = rayon::current_num_threads();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let simd = CpuHasher::simd();

    let (gpu, gpu_note) = if cfg.no_gpu {
        (None, Some("left out (--no-gpu)".to_string()))
    } else {
        match GpuContext::new().and_then(GpuHasher::new) {
            Ok(g) => (Some(g), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let gpu_name = gpu.as_ref().map(|g| g.context().adapter_name());

    let mut contenders: Vec<Contender> = vec![
        Contender {
            name: "sha2".into(),
            threads: 1,
            run: Box::new(|l| Ok(peers::sha2_merkleize(l))),
            gave_up: false,
        },
        Contender {
            name: "hashtree".into(),
            threads: 1,
            run: Box::new(|l| Ok(peers::hashtree_merkleize(l))),
            gave_up: false,
        },
        Contender {
            name: "scalar".into(),
            threads: 1,
            run: via(Arc::new(CpuHasher::scalar())),
            gave_up: false,
        },
    ];
    for k in Kernel::available()
        .into_iter()
        .filter(|k| *k != Kernel::Scalar)
    {
        let h = CpuHasher::with_kernel(k).expect("available");
        contenders.push(Contender {
            name: h.name(),
            threads: 1,
            run: via(Arc::new(h)),
            gave_up: false,
        });
    }
    if threads > 1 {
        contenders.push(Contender {
            name: simd.name(),
            threads,
            run: via(Arc::new(simd.clone())),
            gave_up: false,
        });
    }
    let gpu_hasher = gpu.map(|g| Arc::new(GpuBatchHasher::from_hasher(g)));
    if let Some(g) = &gpu_hasher {
        contenders.push(Contender {
            name: "gpu".into(),
            threads: 0,
            run: via(g.clone()),
            gave_up: false,
        });
    }

    let mut points = Vec::new();
    let mut gpu_traffic = Vec::new();
    let mut log2 = cfg.min_log2;
    while log2 <= cfg.max_log2 {
        let n = 1usize << log2;
        let leaves = random_chunks(n, 0x5eed + log2 as u64);
        let expect = peers::sha2_merkleize(&leaves);
        let mut hashtree_secs = None;
        for c in contenders.iter_mut() {
            if c.gave_up {
                continue;
            }
            let pool = if c.threads == 1 { Some(&one) } else { None };
            let call = || match pool {
                Some(p) => p.install(|| (c.run)(&leaves)),
                None => (c.run)(&leaves),
            };
            // Correctness first: a fast wrong answer is not a result.
            let root = call()?;
            anyhow::ensure!(
                root == expect,
                "{} gave a wrong root for 2^{log2} leaves",
                c.name
            );
            if c.name == "gpu" {
                if let Some(g) = &gpu_hasher {
                    let before = g.gpu().context().stats();
                    call()?;
                    let after = g.gpu().context().stats();
                    gpu_traffic.push((
                        log2,
                        after.submissions - before.submissions,
                        after.bytes_uploaded - before.bytes_uploaded,
                        after.bytes_downloaded - before.bytes_downloaded,
                    ));
                }
            }
            let t = time_best(cfg.target, 50, || {
                let _ = call();
            });
            let secs = t.as_secs_f64();
            if c.name == "hashtree" {
                hashtree_secs = Some(secs);
            }
            let nodes = (n as u64).saturating_sub(1).max(1);
            let p = HashPoint {
                implementation: c.name.clone(),
                threads: c.threads,
                log2_leaves: log2,
                leaves: n as u64,
                nodes,
                seconds: secs,
                ns_per_node: secs * 1e9 / nodes as f64,
                nodes_per_sec: nodes as f64 / secs,
                vs_hashtree: hashtree_secs.map(|h| h / secs),
            };
            progress(&format_row(&p));
            points.push(p);
            if t > cfg.give_up {
                c.gave_up = true;
                progress(&format!(
                    "  ({} took {:.1} s at 2^{log2}: larger sizes left out)",
                    c.name, secs
                ));
            }
        }
        log2 += cfg.step.max(1);
    }
    Ok(HashReport {
        cpu_kernel: simd.kernel().name().to_string(),
        threads,
        gpu: gpu_name,
        gpu_note,
        gpu_traffic,
        points,
    })
}

pub fn header() -> String {
    format!(
        "{:<18} {:>7} {:>8} {:>10} {:>12} {:>12}",
        "implementation", "threads", "leaves", "ns/node", "Mnodes/s", "x hashtree"
    )
}

pub fn format_row(p: &HashPoint) -> String {
    let threads = if p.threads == 0 {
        "gpu".to_string()
    } else {
        p.threads.to_string()
    };
    format!(
        "{:<18} {:>7} {:>8} {:>10.2} {:>12.2} {:>12}",
        p.implementation,
        threads,
        format!("2^{}", p.log2_leaves),
        p.ns_per_node,
        p.nodes_per_sec / 1e6,
        p.vs_hashtree.map_or("-".to_string(), |r| format!("{r:.2}")),
    )
}

/// Write the SVG plot of throughput against size.
pub fn plot(report: &HashReport, path: &std::path::Path) -> anyhow::Result<()> {
    let title = format!(
        "quasar bench hash — merkleize throughput ({}; GPU: {})",
        report.cpu_kernel,
        report.gpu.as_deref().unwrap_or("none")
    );
    let series: Vec<(String, Vec<(f64, f64)>)> = {
        let mut names: Vec<String> = Vec::new();
        for p in &report.points {
            let label = series_label(p);
            if !names.contains(&label) {
                names.push(label);
            }
        }
        names
            .into_iter()
            .map(|name| {
                let pts = report
                    .points
                    .iter()
                    .filter(|p| series_label(p) == name)
                    .map(|p| (p.log2_leaves as f64, p.nodes_per_sec / 1e6))
                    .collect();
                (name, pts)
            })
            .collect()
    };
    super::plot::line_chart(
        path,
        &title,
        "log2(leaves)",
        "Mnodes/s (log scale)",
        &series,
    )
}

fn series_label(p: &HashPoint) -> String {
    match p.threads {
        0 => p.implementation.clone(),
        t => format!("{} ×{t}", p.implementation),
    }
}
