//! Start-up calibration for `--backend auto`: time the CPU and the GPU on trees of growing
//! size and find the smallest size from which the GPU is faster (host-resident leaves,
//! upload included, as `auto` will use it).

use std::time::{Duration, Instant};

use super::gpu::GpuHasher;
use super::hash::{BatchHasher, CpuHasher};

/// Trees smaller than this never go to the GPU (a submission costs more than hashing them).
pub const MIN_GPU_LEAVES: usize = 1 << 14;
/// Sizes measured, as log2 of the leaf count.
const SIZES_LOG2: [u32; 4] = [14, 16, 18, 20];
/// Stop measuring once the GPU is this many times slower than the CPU: it won't catch up.
const HOPELESS: f64 = 8.0;

/// The outcome of a calibration run.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    /// Smallest leaf count from which the GPU was faster at every larger size measured;
    /// `None` if the CPU was faster everywhere.
    pub threshold_leaves: Option<usize>,
    /// (log2 leaves, cpu seconds, gpu seconds) per size measured.
    pub points: Vec<(u32, f64, f64)>,
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

/// Measure and decide. `QUASAR_GPU_THRESHOLD=<leaves>` overrides the measurement
/// (`QUASAR_GPU_THRESHOLD=never` keeps `auto` on the CPU).
pub fn calibrate(cpu: &CpuHasher, gpu: &GpuHasher) -> Calibration {
    if let Ok(v) = std::env::var("QUASAR_GPU_THRESHOLD") {
        let threshold = if v == "never" { None } else { v.parse().ok() };
        tracing::info!("calibration: QUASAR_GPU_THRESHOLD={v}");
        return Calibration {
            threshold_leaves: threshold,
            points: vec![],
        };
    }
    let mut points = Vec::new();
    for log2 in SIZES_LOG2 {
        let n = 1usize << log2;
        let leaves: Vec<[u8; 32]> = (0..n as u32)
            .map(|i| {
                let mut c = [0u8; 32];
                c[..4].copy_from_slice(&i.to_le_bytes());
                c
            })
            .collect();
        let cpu_t = best_of(2, || {
            let _ = cpu.merkleize_subtree(&leaves, log2);
        });
        // First GPU call warms the pool and pipelines; best of two.
        let mut failed = false;
        let gpu_t = best_of(2, || failed |= gpu.merkleize(&leaves, log2).is_err());
        if failed {
            tracing::warn!(
                "calibration: GPU submission failed at 2^{log2} leaves; keeping the CPU"
            );
            return Calibration {
                threshold_leaves: None,
                points,
            };
        }
        let (c, g) = (cpu_t.as_secs_f64(), gpu_t.as_secs_f64());
        tracing::debug!(
            "calibration: 2^{log2} leaves: cpu {:.3} ms, gpu {:.3} ms",
            c * 1e3,
            g * 1e3
        );
        points.push((log2, c, g));
        if g > c * HOPELESS {
            break;
        }
    }
    Calibration {
        threshold_leaves: threshold_from(&points),
        points,
    }
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
    use super::threshold_from;

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
}
