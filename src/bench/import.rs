//! `quasar bench import`: blocks/s importing one generated chain with full verification —
//! batched with the CPU aggregator, batched with the GPU aggregator, and per-block
//! verification (each set verified alone, one write per block) — in the same run, each
//! into a fresh datadir, with the peak RSS of each import.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::accel::aggregate::{CpuAggregator, GpuAggregator, PubkeyAggregator};
use crate::accel::gpu::GpuContext;
use crate::chain::pipeline::{peak_rss_bytes, reset_peak_rss, ImportOptions, Verification};
use crate::chain::service::ChainService;
use crate::devnet::{DevnetOptions, SigningMode};
use crate::types::Preset;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportBenchConfig {
    pub preset: Preset,
    pub validators: usize,
    pub slots: u64,
    /// A chain written by `quasar devnet`, instead of generating one.
    pub chain: Option<PathBuf>,
    pub no_gpu: bool,
}

/// One import.
#[derive(Debug, Clone, Serialize)]
pub struct ImportBenchRow {
    pub name: String,
    pub blocks: u64,
    pub seconds: f64,
    pub blocks_per_second: f64,
    pub transition_seconds: f64,
    /// Of the transition: epoch processing and state roots.
    pub epoch_processing_seconds: f64,
    pub state_root_seconds: f64,
    pub signature_seconds: f64,
    /// Of the signatures: pubkey aggregation (the rest: parsing and verification).
    pub aggregation_seconds: f64,
    pub write_seconds: f64,
    pub signature_sets: u64,
    /// Opening the fresh datadir (genesis decoded, the pubkey table KeyValidate'd and
    /// stored), before the import is timed.
    pub startup_seconds: f64,
    /// Opening the imported datadir again (the stored pubkey table loaded, the head
    /// state replayed from its snapshot), ending at the same head.
    pub restart_seconds: f64,
    /// Keys the restart loaded from the stored table / KeyValidate'd again.
    pub restart_keys_loaded: usize,
    pub restart_keys_validated: usize,
    /// Peak resident set size during this import (the counter is reset before it).
    pub peak_rss_mib: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportBenchReport {
    pub preset: String,
    pub validators: usize,
    pub blocks: u64,
    pub threads: usize,
    pub gpu: Option<String>,
    pub gpu_note: Option<String>,
    pub head_slot: u64,
    pub head_root: String,
    pub rows: Vec<ImportBenchRow>,
    /// Batched (CPU) blocks/s over per-block blocks/s.
    pub batched_cpu_speedup: f64,
    pub batched_gpu_speedup: Option<f64>,
}

use super::TempDir;

fn import_once(
    name: &str,
    chain_dir: &Path,
    genesis: &[u8],
    datadir: &Path,
    verification: Verification,
    aggregator: Box<dyn PubkeyAggregator>,
    resident_roots: Option<std::sync::Arc<GpuContext>>,
) -> Result<(ImportBenchRow, u64, [u8; 32]), Error> {
    let _ = std::fs::remove_dir_all(datadir);
    let opts = ImportOptions {
        verification,
        resident_roots,
        ..ImportOptions::default()
    };
    let t = Instant::now();
    let service = ChainService::open(datadir, Some(genesis), opts.clone(), aggregator)?;
    let startup_seconds = t.elapsed().as_secs_f64();
    reset_peak_rss();
    let t = Instant::now();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (report, result) =
        crate::chain::files::import_dir(&service.handle(), chain_dir, &opts, &stop, &mut |_| {});
    let seconds = t.elapsed().as_secs_f64();
    result.map_err(|e| format!("{name}: {e}"))?;
    let peak_rss_mib = peak_rss_bytes().map(|b| b >> 20);
    service.shutdown();
    // A restart: the same datadir opened again, through the stored pubkey table.
    let t = Instant::now();
    let service = ChainService::open(datadir, None, opts, Box::new(CpuAggregator))?;
    let restart_seconds = t.elapsed().as_secs_f64();
    let head = service.handle().head();
    if head.head.root != report.head_root {
        return Err(format!("{name}: the restart ends at another head").into());
    }
    let keys = head.keys_load;
    service.shutdown();
    let row = ImportBenchRow {
        name: name.into(),
        blocks: report.imported,
        seconds,
        blocks_per_second: report.imported as f64 / seconds.max(1e-9),
        transition_seconds: report.transition.as_secs_f64(),
        epoch_processing_seconds: report.epoch_processing.as_secs_f64(),
        state_root_seconds: report.state_root.as_secs_f64(),
        signature_seconds: report.signatures.as_secs_f64(),
        aggregation_seconds: report.aggregation.as_secs_f64(),
        write_seconds: report.write.as_secs_f64(),
        signature_sets: report.signature_sets,
        startup_seconds,
        restart_seconds,
        restart_keys_loaded: keys.loaded,
        restart_keys_validated: keys.validated,
        peak_rss_mib,
    };
    let _ = std::fs::remove_dir_all(datadir);
    Ok((row, report.head_slot, report.head_root))
}

/// Run the benchmark; `progress` gets the table's lines as they are measured.
pub fn run(
    cfg: &ImportBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<ImportBenchReport, Error> {
    let tmp =
        TempDir(std::env::temp_dir().join(format!("quasar-bench-import-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0)?;
    let chain_dir = match &cfg.chain {
        Some(dir) => dir.clone(),
        None => {
            let dir = tmp.0.join("chain");
            let t = Instant::now();
            let opts = DevnetOptions {
                validators: cfg.validators,
                slots: cfg.slots,
                genesis_time: crate::devnet::DEFAULT_GENESIS_TIME,
                signing: SigningMode::Summed,
            };
            crate::devnet::run(cfg.preset, &opts, &dir, &mut |_| {})?;
            progress(&format!(
                "generated {} blocks of {} validators ({}) in {:.1} s",
                cfg.slots,
                cfg.validators,
                cfg.preset.name(),
                t.elapsed().as_secs_f64()
            ));
            dir
        }
    };
    let genesis_raw = std::fs::read(crate::devnet::genesis_path(&chain_dir))?;
    let genesis = snap::raw::Decoder::new()
        .decompress_vec(&genesis_raw)
        .map_err(|e| format!("genesis: {e}"))?;
    // The chain's own preset and registry (a given chain's, not the flags').
    let (preset, validators) = crate::chain::any::genesis_preset_and_validators(&genesis)?;
    progress(&format!(
        "chain: {} preset, {validators} validators, {} blocks",
        preset.name(),
        crate::devnet::list_blocks(&chain_dir)?.len()
    ));

    let (gpu, gpu_note) = if cfg.no_gpu {
        (None, Some("left out (--no-gpu)".to_string()))
    } else {
        match GpuContext::new() {
            Ok(ctx) => (Some(ctx), None),
            Err(e) => (None, Some(format!("no adapter: {e}"))),
        }
    };
    let gpu_name = gpu.as_ref().map(|c| c.adapter_name().to_string());
    progress(&format!(
        "{:<16} {:>6} {:>8} {:>8} {:>10} {:>7} {:>7} {:>10} {:>7} {:>7} {:>8} {:>8} {:>9}",
        "import",
        "blocks",
        "seconds",
        "blocks/s",
        "transition",
        "epoch",
        "root",
        "signatures",
        "aggr",
        "writes",
        "start-up",
        "restart",
        "peak RSS"
    ));
    let mut rows = Vec::new();
    let mut head: Option<(u64, [u8; 32])> = None;
    type Run = (
        String,
        Verification,
        Box<dyn PubkeyAggregator>,
        Option<std::sync::Arc<GpuContext>>,
    );
    let mut runs: Vec<Run> = vec![(
        "batched, cpu".into(),
        Verification::Batched,
        Box::new(CpuAggregator),
        None,
    )];
    if let Some(ctx) = &gpu {
        // As `--backend gpu` runs: GPU aggregation and the state-root trees resident.
        runs.push((
            "batched, gpu".into(),
            Verification::Batched,
            Box::new(GpuAggregator::new(ctx.clone())?),
            Some(ctx.clone()),
        ));
    }
    runs.push((
        "per-block, cpu".into(),
        Verification::PerBlock,
        Box::new(CpuAggregator),
        None,
    ));
    for (name, verification, agg, resident) in runs {
        let (row, slot, root) = import_once(
            &name,
            &chain_dir,
            &genesis,
            &tmp.0.join("data"),
            verification,
            agg,
            resident,
        )?;
        match head {
            None => head = Some((slot, root)),
            Some(h) if h == (slot, root) => {}
            Some(_) => return Err(format!("{name}: ended at another head").into()),
        }
        progress(&format!(
            "{:<16} {:>6} {:>8.2} {:>8.1} {:>9.2}s {:>6.2}s {:>6.2}s {:>9.2}s {:>6.2}s {:>6.2}s {:>7.2}s {:>7.2}s {:>5} MiB",
            row.name,
            row.blocks,
            row.seconds,
            row.blocks_per_second,
            row.transition_seconds,
            row.epoch_processing_seconds,
            row.state_root_seconds,
            row.signature_seconds,
            row.aggregation_seconds,
            row.write_seconds,
            row.startup_seconds,
            row.restart_seconds,
            row.peak_rss_mib.unwrap_or(0)
        ));
        rows.push(row);
    }
    let per_block = rows
        .iter()
        .find(|r| r.name.starts_with("per-block"))
        .map_or(1.0, |r| r.blocks_per_second);
    let speed = |prefix: &str| {
        rows.iter()
            .find(|r| r.name == prefix)
            .map(|r| r.blocks_per_second / per_block)
    };
    let batched_cpu_speedup = speed("batched, cpu").unwrap_or(0.0);
    let batched_gpu_speedup = speed("batched, gpu");
    progress(
        "(epoch, root: of the transition; aggr: pubkey aggregation, of the signatures; \
         start-up: opening the fresh datadir; restart: opening it again after the import, \
         through the stored pubkey table)",
    );
    progress(&format!(
        "batched import: {batched_cpu_speedup:.2}x per-block (cpu){}; threads {}; gpu: {}",
        batched_gpu_speedup.map_or(String::new(), |g| format!(", {g:.2}x (gpu)")),
        rayon::current_num_threads(),
        gpu_name
            .as_deref()
            .or(gpu_note.as_deref())
            .unwrap_or("none")
    ));
    let (head_slot, head_root) = head.unwrap_or_default();
    Ok(ImportBenchReport {
        preset: preset.name().into(),
        validators,
        blocks: rows.first().map_or(0, |r| r.blocks),
        threads: rayon::current_num_threads(),
        gpu: gpu_name,
        gpu_note,
        head_slot,
        head_root: crate::chain::pipeline::hex(&head_root),
        rows,
        batched_cpu_speedup,
        batched_gpu_speedup,
    })
}
