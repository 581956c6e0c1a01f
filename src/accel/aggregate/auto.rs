//! `auto`: the CPU twin for small batches, the GPU for batches from the size where
//! calibration on this device found it faster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use blst::blst_p1;

use super::{
    check_sets, AggregateError, CpuAggregator, GpuAggregator, PendingAggregate, PubkeyAggregator,
    PubkeyTable,
};
use crate::accel::backend::DeviceProbe;
use crate::accel::calibrate::{self, Calibration};

/// `auto`: the first batch of [`calibrate::MIN_GPU_KEYS`] keys or more probes for a device
/// (shared with the hasher through the [`DeviceProbe`]), builds the GPU aggregator on it
/// and calibrates it against the CPU twin on that batch's table; from then on a batch goes
/// to the GPU when its key count reaches the calibrated crossover, else to the CPU. A
/// software adapter (lavapipe) runs on the very cores the CPU twin uses and is 3-4x slower
/// (2 cores, 2^14 … 2^20 keys: 11-576 ms on the CPU, 37-1924 ms on lavapipe), so it is not
/// calibrated unless asked ([`AutoAggregator::on_software_adapters`]): that would cost the
/// kernels' build and ~10 s of measuring for nothing. A GPU failure (lost device, failed
/// submission) falls back to the CPU for that batch and every later one, logged once. Bad
/// input is reported, not retried.
pub struct AutoAggregator {
    probe: DeviceProbe,
    software: bool,
    gpu: OnceLock<Option<(GpuAggregator, Calibration)>>,
    disabled: AtomicBool,
}

impl Default for AutoAggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl AutoAggregator {
    /// Probes for its own device on first use.
    pub fn new() -> Self {
        Self::with_probe(DeviceProbe::new())
    }

    /// Uses the device `probe` finds (shared with other engines).
    pub fn with_probe(probe: DeviceProbe) -> Self {
        AutoAggregator {
            probe,
            software: false,
            gpu: OnceLock::new(),
            disabled: AtomicBool::new(false),
        }
    }

    /// With a GPU aggregator and its calibration already in hand.
    pub fn with_gpu(gpu: GpuAggregator, calibration: Calibration) -> Self {
        let this = Self::with_probe(DeviceProbe::with_context(gpu.context().clone()));
        let _ = this.gpu.set(Some((gpu, calibration)));
        this
    }

    /// Whether a software adapter is calibrated (and used where it wins) too.
    pub fn on_software_adapters(mut self, yes: bool) -> Self {
        self.software = yes;
        self
    }

    /// The calibration, once made (`None` before the first big batch or without a GPU).
    pub fn calibration(&self) -> Option<&Calibration> {
        self.gpu.get().and_then(|g| g.as_ref()).map(|(_, c)| c)
    }

    /// Whether a GPU failure has switched this aggregator to the CPU for good.
    pub fn fell_back(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// The GPU and its calibration, probing and calibrating on `table` on the first call.
    fn gpu(&self, table: &PubkeyTable) -> Option<&(GpuAggregator, Calibration)> {
        self.gpu
            .get_or_init(|| {
                let ctx = self.probe.context()?;
                if ctx.is_software() && !self.software {
                    tracing::info!(
                        "aggregation auto: {} is a software adapter; the CPU aggregates",
                        ctx.adapter_name()
                    );
                    return None;
                }
                let gpu = match GpuAggregator::new(ctx) {
                    Ok(gpu) => gpu,
                    Err(e) => {
                        tracing::warn!(
                            "aggregation auto: no GPU aggregator ({e}); the CPU aggregates"
                        );
                        return None;
                    }
                };
                let cal = calibrate::calibrate_aggregation(&gpu, table);
                tracing::info!(
                    "aggregation auto: {} — {} ({:?})",
                    gpu.name(),
                    cal.describe("keys"),
                    cal.points
                );
                Some((gpu, cal))
            })
            .as_ref()
    }

    fn fall_back(&self, e: &AggregateError) {
        if !self.disabled.swap(true, Ordering::Relaxed) {
            tracing::warn!("aggregation: GPU failed ({e}); using the CPU from now on");
        }
    }
}

impl PubkeyAggregator for AutoAggregator {
    fn name(&self) -> String {
        match self.gpu.get() {
            Some(Some((g, _))) if !self.fell_back() => {
                format!("auto({} | {})", CpuAggregator.name(), g.name())
            }
            _ => format!("auto({})", CpuAggregator.name()),
        }
    }

    /// To the GPU when calibration says so (a submission that fails is summed on the CPU,
    /// and the GPU is left for good); else the CPU twin, in `wait`.
    fn submit<'a>(
        &'a self,
        table: &'a PubkeyTable,
        sets: &'a [&'a [u32]],
    ) -> Result<PendingAggregate<'a>, AggregateError> {
        check_sets(table.len(), sets)?;
        let keys: usize = sets.iter().map(|s| s.len()).sum();
        // Small batches never start the probe; once probed, the calibration decides.
        let unprobed = self.gpu.get().is_none();
        let too_small_to_probe = unprobed && keys < calibrate::MIN_GPU_KEYS;
        if !self.fell_back() && !too_small_to_probe {
            if let Some((gpu, cal)) = self.gpu(table) {
                if cal.gpu_for(keys) {
                    match gpu.submit_checked(table, sets) {
                        Err(e) if !e.is_invalid_input() => self.fall_back(&e),
                        result => return result,
                    }
                }
            }
        }
        Ok(PendingAggregate::on_cpu(table, sets))
    }

    /// The sums; a GPU submission that failed on the device is summed again on the CPU,
    /// and later batches stay there.
    fn wait(&self, pending: PendingAggregate<'_>) -> Result<Vec<blst_p1>, AggregateError> {
        pending.finish_or_cpu(|e| self.fall_back(e))
    }
}
