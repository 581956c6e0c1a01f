//! Start-up calibration for `--backend auto`: time the CPU and the GPU on workloads of
//! growing size and find the smallest size from which the GPU is faster, for each engine:
//! hashing (trees of 2^14 … 2^20 host-resident leaves, upload included, as `auto` will use
//! them) and pubkey aggregation (2^14 … 2^20 keys in sets of [`SET_KEYS`] over the table
//! the node aggregates from, which is then resident on the device).
//!
//! Each engine is calibrated once, on the first workload big enough to possibly go to the
//! GPU. `QUASAR_GPU_THRESHOLD=<leaves>|never` and `QUASAR_AGG_THRESHOLD=<keys>|never`
//! override the measurement.

use std::time::{Duration, Instant};

use super::aggregate::{
    AggregateError, CpuAggregator, GpuAggregator, PubkeyAggregator, PubkeyTable,
};
use super::device::GpuError;
use super::gpu::GpuHasher;
use super::hash::{BatchHasher, CpuHasher};

/// Trees smaller than this never go to the GPU (a submission costs more than hashing them).
pub const MIN_GPU_LEAVES: usize = 1 << 14;
/// Batches of fewer keys never go to the GPU (a call costs milliseconds on hardware).
pub const MIN_GPU_KEYS: usize = 1 << 14;
/// Tree sizes measured, as log2 of the leaf count.
const HASH_SIZES_LOG2: [u32; 4] = [14, 16, 18, 20];
/// Aggregation sizes measured, as log2 of the keys in one call.
const AGG_SIZES_LOG2: [u32; 4] = [14, 16, 18, 20];
/// Keys per set in the aggregation workload (a committee's order of magnitude).
pub const SET_KEYS: usize = 1024;
/// The GPU is given up on once it is this many times slower than the CPU …
const HOPELESS: f64 = 8.0;
/// … and gained less than this factor on the CPU since the previous size.
const CATCHING_UP: f64 = 2.0;
/// Measuring stops once one GPU run of a losing size took longer than this.
const BUDGET: Duration = Duration::from_secs(1);

/// The outcome of a calibration run.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    /// Smallest workload (leaves for hashing, keys for aggregation) from which the GPU was
    /// faster at every larger size measured; `None` if the CPU was faster everywhere.
    pub threshold: Option<usize>,
    /// (log2 size, cpu seconds, gpu seconds) per size measured.
    pub points: Vec<(u32, f64, f64)>,
}

impl Calibration {
    /// A decision without measurement (tests, overrides).
    pub fn forced(threshold: Option<usize>) -> Self {
        Calibration {
            threshold,
            points: Vec::new(),
        }
    }

    /// Whether a workload of `size` goes to the GPU.
    pub fn gpu_for(&self, size: usize) -> bool {
        self.threshold.is_some_and(|t| size >= t)
    }

    /// The decision in words, for logs.
    pub fn describe(&self, unit: &str) -> String {
        match self.threshold {
            Some(t) => format!("the GPU from {t} {unit} on"),
            None => "the CPU at every size measured".to_string(),
        }
    }
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// `QUASAR_…_THRESHOLD`: a size or `never`.
fn overridden(var: &str) -> Option<Calibration> {
    let v = std::env::var(var).ok()?;
    tracing::info!("calibration: {var}={v}");
    Some(Calibration::forced(if v == "never" {
        None
    } else {
        v.parse().ok()
    }))
}

/// Which engine one timed run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Cpu,
    Gpu,
}

/// Times `run` on the CPU and on the GPU (best of two each, after one warm-up GPU run) at
/// each size, and stops early once the GPU is hopelessly slower and not catching up, or
/// too slow to wait for. A GPU failure keeps the CPU.
/// Whether measuring stops after a size whose best times were `c` (CPU) and `g` (GPU)
/// seconds, `previous` the size before's: the GPU loses and is either hopeless (more
/// than `HOPELESS` times slower and not gaining `CATCHING_UP` on the size before) or
/// over the time budget for one run.
fn gives_up(previous: Option<(f64, f64)>, c: f64, g: f64, gpu_t: Duration) -> bool {
    let ratio = g / c.max(1e-9);
    let gained = previous.map(|(pc, pg)| (pg / pc.max(1e-9)) / ratio.max(1e-9));
    let hopeless = ratio > HOPELESS && gained.is_some_and(|x| x < CATCHING_UP);
    g > c && (hopeless || gpu_t > BUDGET)
}

fn measure(
    what: &str,
    sizes: &[u32],
    mut run: impl FnMut(u32, Side) -> Result<(), GpuError>,
) -> Calibration {
    let mut points: Vec<(u32, f64, f64)> = Vec::new();
    for &log2 in sizes {
        let cpu_t = best_of(2, || {
            let _ = run(log2, Side::Cpu);
        });
        let mut failed = None;
        let mut gpu = || {
            if let Err(e) = run(log2, Side::Gpu) {
                failed.get_or_insert(e);
            }
        };
        gpu();
        let gpu_t = best_of(2, gpu);
        if let Some(e) = failed {
            tracing::warn!(
                "calibration: {what} on the GPU failed at 2^{log2} ({e}); keeping the CPU"
            );
            return Calibration {
                threshold: None,
                points,
            };
        }
        let (c, g) = (cpu_t.as_secs_f64(), gpu_t.as_secs_f64());
        tracing::debug!(
            "calibration: {what} at 2^{log2}: cpu {:.3} ms, gpu {:.3} ms",
            c * 1e3,
            g * 1e3
        );
        let previous = points.last().map(|&(_, pc, pg)| (pc, pg));
        points.push((log2, c, g));
        if gives_up(previous, c, g, gpu_t) {
            break;
        }
    }
    Calibration {
        threshold: threshold_from(&points),
        points,
    }
}

/// Measure hashing and decide. `QUASAR_GPU_THRESHOLD=<leaves>` overrides the measurement
/// (`QUASAR_GPU_THRESHOLD=never` keeps `auto` on the CPU).
pub fn calibrate(cpu: &CpuHasher, gpu: &GpuHasher) -> Calibration {
    if let Some(c) = overridden("QUASAR_GPU_THRESHOLD") {
        return c;
    }
    let mut leaves: (u32, Vec<[u8; 32]>) = (u32::MAX, Vec::new());
    measure("hashing", &HASH_SIZES_LOG2, |log2, side| {
        if leaves.0 != log2 {
            let l = (0..1u32 << log2)
                .map(|i| {
                    let mut c = [0u8; 32];
                    c[..4].copy_from_slice(&i.to_le_bytes());
                    c
                })
                .collect();
            leaves = (log2, l);
        }
        match side {
            Side::Cpu => {
                let _ = cpu.merkleize_subtree(&leaves.1, log2);
                Ok(())
            }
            Side::Gpu => gpu.merkleize(&leaves.1, log2).map(|_| ()),
        }
    })
}

/// The aggregation workload of 2^log2 keys: sets of [`SET_KEYS`] pseudo-random indices
/// into a table of `table_len >= 1` keys.
fn synthetic_sets(log2: u32, table_len: usize) -> Vec<Vec<u32>> {
    let n = 1usize << log2;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(log2);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % table_len as u64) as u32
    };
    (0..n.div_ceil(SET_KEYS))
        .map(|s| {
            (0..SET_KEYS.min(n - s * SET_KEYS))
                .map(|_| next())
                .collect()
        })
        .collect()
}

/// Measure aggregation over `table` (it is resident on the GPU afterwards) and decide.
/// `QUASAR_AGG_THRESHOLD=<keys>|never` overrides the measurement.
pub fn calibrate_aggregation(gpu: &GpuAggregator, table: &PubkeyTable) -> Calibration {
    if let Some(c) = overridden("QUASAR_AGG_THRESHOLD") {
        return c;
    }
    if table.is_empty() {
        return Calibration::forced(None);
    }
    let mut sets: (u32, Vec<Vec<u32>>) = (u32::MAX, Vec::new());
    measure("aggregation", &AGG_SIZES_LOG2, |log2, side| {
        if sets.0 != log2 {
            sets = (log2, synthetic_sets(log2, table.len()));
        }
        let refs: Vec<&[u32]> = sets.1.iter().map(|v| v.as_slice()).collect();
        let result = match side {
            Side::Cpu => CpuAggregator.aggregate(table, &refs),
            Side::Gpu => gpu.aggregate(table, &refs),
        };
        match result {
            Ok(_) => Ok(()),
            Err(AggregateError::Gpu(e)) => Err(e),
            Err(e) => Err(GpuError::Submission(format!("internal: {e}"))),
        }
    })
}

/// Smallest measured size from which the GPU wins at that size and every larger one.
pub fn threshold_from(points: &[(u32, f64, f64)]) -> Option<usize> {
    let mut threshold = None;
    for &(log2, c, g) in points.iter().rev() {
        if g < c {
            threshold = Some(1usize << log2);
        } else {
            break;
        }
    }
    threshold
}

#[cfg(test)]
mod tests {
    use super::{
        gives_up, measure, synthetic_sets, threshold_from, GpuError, Side, BUDGET, SET_KEYS,
    };
    use std::time::Duration;

    #[test]
    fn threshold_is_the_start_of_the_winning_suffix() {
        assert_eq!(threshold_from(&[]), None);
        assert_eq!(threshold_from(&[(14, 1.0, 2.0), (16, 1.0, 2.0)]), None);
        assert_eq!(
            threshold_from(&[(14, 1.0, 2.0), (16, 2.0, 1.0), (18, 4.0, 1.0)]),
            Some(1 << 16)
        );
        // A GPU win followed by a loss is not a crossover.
        assert_eq!(threshold_from(&[(14, 2.0, 1.0), (16, 1.0, 2.0)]), None);
        assert_eq!(
            threshold_from(&[(14, 2.0, 1.0), (16, 1.0, 2.0), (18, 3.0, 1.0)]),
            Some(1 << 18)
        );
    }

    #[test]
    fn synthetic_sets_cover_the_size_in_committee_sized_sets() {
        let sets = synthetic_sets(14, 100);
        assert_eq!(sets.len(), (1 << 14) / SET_KEYS);
        assert!(sets.iter().all(|s| s.len() == SET_KEYS));
        assert!(sets.iter().flatten().all(|&i| i < 100));
        let small = synthetic_sets(3, 1);
        assert_eq!(small, vec![vec![0; 8]]);
    }

    #[test]
    fn measuring_gives_up_on_a_gpu_that_cannot_catch_up() {
        // The rule on fixed figures (no timing in a test): 50x slower at two sizes in a row
        // gives up; 50x slower but gaining fast, or the first size alone, goes on; a GPU
        // that wins never stops; one GPU run over the budget stops a losing GPU.
        let ms = Duration::from_millis;
        assert!(gives_up(Some((1.0, 50.0)), 2.0, 100.0, ms(100)));
        assert!(!gives_up(None, 2.0, 100.0, ms(100)));
        assert!(!gives_up(Some((1.0, 500.0)), 2.0, 100.0, ms(100)));
        assert!(!gives_up(Some((1.0, 50.0)), 2.0, 1.0, ms(100)));
        assert!(gives_up(None, 1.0, 2.0, BUDGET + ms(1)));
        assert!(!gives_up(None, 2.0, 1.0, BUDGET + ms(1)));
    }

    #[test]
    fn a_failing_gpu_keeps_the_cpu_after_one_warm_up_and_two_runs() {
        let mut gpu_runs = 0;
        let c = measure("test", &[4, 6], |_, side| {
            if side == Side::Gpu {
                gpu_runs += 1;
                return Err(GpuError::Submission("test".into()));
            }
            Ok(())
        });
        assert_eq!(c.threshold, None);
        assert!(c.points.is_empty(), "{:?}", c.points);
        assert_eq!(gpu_runs, 3, "one warm-up and two timed runs, then it stops");
    }
}
