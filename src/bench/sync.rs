//! `quasar bench sync`: range-sync blocks/s of a stored chain from several local peers
//! (real libp2p on 127.0.0.1, each peer a full quasar node in this process), batched
//! against per-block import and the CPU against the GPU aggregator, beside `quasar import`
//! of the same chain from files — all in the same run, each into a fresh datadir, each
//! ending on the same head (checked).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::net::{open_chain, prepare_chain, start_network, wait_for_status, PreparedChain};
use crate::accel::aggregate::{CpuAggregator, GpuAggregator, PubkeyAggregator};
use crate::accel::gpu::GpuContext;
use crate::chain::pipeline::{peak_rss_bytes, reset_peak_rss, ImportOptions, Verification};
use crate::chain::service::ChainService;
use crate::net::service::NetworkService;
use crate::sync::{RangeSync, SyncConfig};
use crate::types::Preset;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub struct SyncBenchConfig {
    pub preset: Preset,
    pub validators: usize,
    pub slots: u64,
    pub chain: Option<PathBuf>,
    /// Serving peers.
    pub peers: usize,
    pub batch_slots: u64,
    pub no_gpu: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncBenchRow {
    pub name: String,
    pub blocks: u64,
    pub seconds: f64,
    pub blocks_per_second: f64,
    /// Peak RSS of the whole process during the row (the serving peers included).
    pub peak_rss_mib: Option<u64>,
    pub retried_batches: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncBenchReport {
    pub preset: String,
    pub validators: usize,
    pub blocks: u64,
    pub peers: usize,
    pub gpu: Option<String>,
    pub rows: Vec<SyncBenchRow>,
}

use super::TempDir;

fn row_line(r: &SyncBenchRow) -> String {
    format!(
        "{:<38} {:>7} {:>9.2} {:>9.1} {:>6} MiB",
        r.name,
        r.blocks,
        r.seconds,
        r.blocks_per_second,
        r.peak_rss_mib.unwrap_or(0)
    )
}

/// Run the benchmark; `progress` gets the table's lines as they are measured.
pub fn run(
    cfg: &SyncBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<SyncBenchReport, Error> {
    let tmp =
        TempDir(std::env::temp_dir().join(format!("quasar-bench-sync-{}", std::process::id())));
    let PreparedChain {
        dir: chain_dir,
        genesis,
        preset,
        validators,
        blocks,
    } = prepare_chain(
        &tmp.0,
        cfg.preset,
        cfg.validators,
        cfg.slots,
        cfg.chain.as_deref(),
        progress,
    )?;
    let slots = blocks.len() as u64;
    drop(blocks);
    let gpu = if cfg.no_gpu {
        None
    } else {
        GpuContext::new().ok()
    };
    progress(&format!(
        "{:<38} {:>7} {:>9} {:>9} {:>10}",
        "import", "blocks", "seconds", "blocks/s", "peak RSS"
    ));
    let mut rows = Vec::new();

    // From files, as `quasar import` does.
    let files_dir = tmp.0.join("files");
    let service = open_chain(&files_dir, &genesis)?;
    reset_peak_rss();
    let t = Instant::now();
    let stop = AtomicBool::new(false);
    let (report, result) = crate::chain::files::import_dir(
        &service.handle(),
        &chain_dir,
        &ImportOptions::default(),
        &stop,
        &mut |_| {},
    );
    result.map_err(|e| format!("import: {e}"))?;
    let want = service.handle().head();
    let row = SyncBenchRow {
        name: "import from files, batched, cpu".into(),
        blocks: report.imported,
        seconds: t.elapsed().as_secs_f64(),
        blocks_per_second: report.imported as f64 / t.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_bytes().map(|b| b >> 20),
        retried_batches: 0,
    };
    progress(&row_line(&row));
    rows.push(row);
    service.shutdown();

    // The serving peers: the chain stored by each (copies of the imported datadir).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut servers: Vec<(ChainService, NetworkService)> = Vec::new();
    for i in 0..cfg.peers.max(1) {
        let dir = tmp.0.join(format!("server-{i}"));
        copy_dir(&files_dir, &dir)?;
        let chain = open_chain(&dir, &genesis)?;
        if chain.handle().head().head != want.head {
            return Err("a copied datadir opened on another head".into());
        }
        let net = start_network(&rt, &dir, &chain, 64)?;
        servers.push((chain, net));
    }
    let addrs: Vec<_> = servers
        .iter()
        .map(|(_, n)| n.handle().listen_addresses()[0].clone())
        .collect();

    let mut runs: Vec<(String, Verification, Box<dyn PubkeyAggregator>)> = vec![(
        format!("range sync from {} peers, batched, cpu", servers.len()),
        Verification::Batched,
        Box::new(CpuAggregator),
    )];
    if let Some(ctx) = &gpu {
        runs.push((
            format!("range sync from {} peers, batched, gpu", servers.len()),
            Verification::Batched,
            Box::new(GpuAggregator::new(ctx.clone())?),
        ));
    }
    runs.push((
        format!("range sync from {} peers, per-block", servers.len()),
        Verification::PerBlock,
        Box::new(CpuAggregator),
    ));
    for (k, (name, verification, aggregator)) in runs.into_iter().enumerate() {
        let dir = tmp.0.join(format!("client-{k}"));
        let opts = ImportOptions {
            verification,
            ..ImportOptions::default()
        };
        let chain = ChainService::open(&dir, Some(&genesis), opts, aggregator)?;
        let net = start_network(&rt, &dir, &chain, 64)?;
        for a in &addrs {
            rt.block_on(net.handle().dial(a.clone()))?;
        }
        for (_, s) in &servers {
            wait_for_status(&rt, &[&net], s.handle().local_peer_id())?;
        }
        reset_peak_rss();
        let t = Instant::now();
        let sync = {
            let _runtime = rt.enter();
            RangeSync::start(
                net.handle(),
                chain.handle(),
                SyncConfig {
                    batch_slots: cfg.batch_slots,
                    // The serving nodes' quotas are lifted too (see `start_network`).
                    pacing: unlimited_pacing(),
                    ..SyncConfig::default()
                },
            )
        };
        while chain.handle().head().head.slot < want.head.slot {
            if t.elapsed() > Duration::from_secs(3600) {
                return Err(format!("{name}: not synced within an hour").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let seconds = t.elapsed().as_secs_f64();
        let status = sync.status();
        rt.block_on(sync.stop())?;
        let head = chain.handle().head();
        if head.head != want.head || head.head_state_root != want.head_state_root {
            return Err(format!("{name}: ended on another head").into());
        }
        let row = SyncBenchRow {
            name,
            blocks: slots,
            seconds,
            blocks_per_second: slots as f64 / seconds,
            peak_rss_mib: peak_rss_bytes().map(|b| b >> 20),
            retried_batches: status.retried_batches,
        };
        progress(&row_line(&row));
        rows.push(row);
        rt.block_on(net.shutdown());
        chain.shutdown();
    }
    for (chain, net) in servers {
        rt.block_on(net.shutdown());
        chain.shutdown();
    }
    if let [files, sync, ..] = rows.as_slice() {
        progress(&format!(
            "range sync (batched, cpu) over import from files: {:.2}x",
            sync.blocks_per_second / files.blocks_per_second
        ));
    }
    if let Some(per_block) = rows.last() {
        if rows.len() > 2 {
            progress(&format!(
                "range sync batched (cpu) over per-block: {:.2}x",
                rows[1].blocks_per_second / per_block.blocks_per_second
            ));
        }
    }
    Ok(SyncBenchReport {
        preset: preset.name().into(),
        validators,
        blocks: slots,
        peers: cfg.peers.max(1),
        gpu: gpu.map(|g| g.adapter_name().to_string()),
        rows,
    })
}

fn unlimited_pacing() -> crate::net::rate_limit::RateLimitConfig {
    crate::net::rate_limit::RateLimitConfig {
        blocks_by_range: crate::net::rate_limit::Quota::n_every(1 << 40, 1),
        ..Default::default()
    }
}

/// Copy a (closed) datadir.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<(), Error> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
