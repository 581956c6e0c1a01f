//! `quasar bench net`: blocks by range served over real libp2p on 127.0.0.1 from a stored
//! chain, to one peer and to several peers at once (each peer a full quasar node with its
//! own chain service, asking for the whole chain again and again in requests of
//! `request_blocks`; the serving node's block quotas lifted), and the req/resp codec's encode/decode throughput on the chain's own
//! blocks against plain `snap` framing + SSZ, in the same run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::accel::aggregate::CpuAggregator;
use crate::chain::pipeline::ImportOptions;
use crate::chain::service::ChainService;
use crate::devnet::{DevnetOptions, SigningMode};
use crate::net::codec::{self, ResponseChunk, ResponseDecoder, Step};
use crate::net::service::{NetworkConfig, NetworkService};
use crate::types::ssz::SszDecode;
use crate::types::Preset;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What to serve and to how many peers.
#[derive(Debug, Clone)]
pub struct NetBenchConfig {
    pub preset: Preset,
    pub validators: usize,
    pub slots: u64,
    /// A chain written by `quasar devnet`, instead of generating one.
    pub chain: Option<PathBuf>,
    /// Peer counts to measure, e.g. `[1, 4]`.
    pub peers: Vec<usize>,
    /// Blocks per request (at most `MAX_REQUEST_BLOCKS_DENEB`).
    pub request_blocks: u64,
    /// How long each peer count is measured.
    pub seconds: f64,
}

/// One serving measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ServeRow {
    pub peers: usize,
    pub requests: u64,
    pub blocks: u64,
    pub mebibytes: f64,
    pub seconds: f64,
    pub blocks_per_second: f64,
    pub mib_per_second: f64,
    /// The slowest peer's blocks/s (fairness between peers).
    pub slowest_peer_blocks_per_second: f64,
}

/// One codec measurement over the chain's blocks.
#[derive(Debug, Clone, Serialize)]
pub struct CodecRow {
    pub name: String,
    pub mib_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetBenchReport {
    pub preset: String,
    pub validators: usize,
    pub blocks: u64,
    pub mean_block_bytes: u64,
    pub serve: Vec<ServeRow>,
    pub codec: Vec<CodecRow>,
    /// Blocks/s to the most peers over blocks/s to one.
    pub scaling: Option<f64>,
}

use super::TempDir;

fn read_snappy(path: &Path) -> Result<Vec<u8>, Error> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(snap::raw::Decoder::new()
        .decompress_vec(&raw)
        .map_err(|e| format!("{}: {e}", path.display()))?)
}

/// The reference the codec is measured against: `snap`'s framing writer (what Lighthouse's
/// codec wraps) after the result byte, context and varint, which must give the same bytes.
pub fn snap_frame_encode(context: [u8; 4], ssz: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&context);
    codec::encode_varint(ssz.len() as u64, &mut out);
    let mut w = snap::write::FrameEncoder::new(out);
    // Writing into a Vec cannot fail.
    let _ = w.write_all(ssz);
    w.into_inner().unwrap_or_default()
}

/// `snap`'s framing reader over a chunk written by [`snap_frame_encode`] (at most
/// `max_compressed_len` bytes read, as the spec bounds it).
pub fn snap_frame_decode(wire: &[u8]) -> Option<Vec<u8>> {
    let body = wire.get(5..)?;
    let mut n = 0usize;
    let mut used = 0;
    for (i, &byte) in body.iter().enumerate().take(10) {
        n |= usize::from(byte & 0x7f) << (7 * i);
        used = i + 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let frames = body.get(used..)?;
    let limit = codec::max_compressed_len(n) as u64;
    let mut out = vec![0u8; n];
    snap::read::FrameDecoder::new(Read::take(frames, limit))
        .read_exact(&mut out)
        .ok()?;
    Some(out)
}

/// quasar's response decoder over one success chunk.
pub fn decode_chunk(wire: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = ResponseDecoder::new(true, |_| Ok((0, codec::MAX_PAYLOAD_SIZE)));
    let mut input = wire;
    match decoder.feed(&mut input).ok()? {
        Step::Item(ResponseChunk::Success { ssz, .. }) => Some(ssz),
        _ => None,
    }
}

fn decode_block(preset: Preset, ssz: &[u8]) -> bool {
    match preset {
        Preset::Minimal => crate::types::minimal::SignedBeaconBlock::ssz_decode(ssz).is_ok(),
        Preset::Mainnet => crate::types::mainnet::SignedBeaconBlock::ssz_decode(ssz).is_ok(),
    }
}

/// MiB/s of `f` over `bytes` input bytes, run for about `target`.
fn throughput(bytes: usize, target: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut reps = 0u64;
    while reps == 0 || start.elapsed() < target {
        f();
        reps += 1;
    }
    (bytes as f64 * reps as f64) / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

fn codec_rows(preset: Preset, blocks: &[Vec<u8>]) -> Result<Vec<CodecRow>, Error> {
    const CONTEXT: [u8; 4] = [0xcc, 0x2c, 0x5c, 0xdb];
    let total: usize = blocks.iter().map(|b| b.len()).sum();
    let ours: Vec<Vec<u8>> = blocks
        .iter()
        .map(|b| codec::encode_response_chunk(0, Some(CONTEXT), b))
        .collect();
    let theirs: Vec<Vec<u8>> = blocks
        .iter()
        .map(|b| snap_frame_encode(CONTEXT, b))
        .collect();
    if ours != theirs {
        return Err("quasar's codec and snap framing wrote different bytes".into());
    }
    for (w, b) in ours.iter().zip(blocks) {
        if decode_chunk(w).as_deref() != Some(b.as_slice())
            || snap_frame_decode(w).as_deref() != Some(b.as_slice())
        {
            return Err("a chunk did not decode back to its block".into());
        }
    }
    let t = Duration::from_millis(700);
    let mut rows = Vec::new();
    let mut row = |name: &str, v: f64| {
        rows.push(CodecRow {
            name: name.into(),
            mib_per_second: v,
        })
    };
    row(
        "encode, quasar",
        throughput(total, t, || {
            for b in blocks {
                std::hint::black_box(codec::encode_response_chunk(0, Some(CONTEXT), b));
            }
        }),
    );
    row(
        "encode, snap frames",
        throughput(total, t, || {
            for b in blocks {
                std::hint::black_box(snap_frame_encode(CONTEXT, b));
            }
        }),
    );
    row(
        "decode+ssz, quasar",
        throughput(total, t, || {
            for w in &ours {
                let ssz = decode_chunk(w).unwrap_or_default();
                std::hint::black_box(decode_block(preset, &ssz));
            }
        }),
    );
    row(
        "decode+ssz, snap frames",
        throughput(total, t, || {
            for w in &ours {
                let ssz = snap_frame_decode(w).unwrap_or_default();
                std::hint::black_box(decode_block(preset, &ssz));
            }
        }),
    );
    Ok(rows)
}

/// A chain to serve: generated by `quasar devnet` into `tmp`, or the one at `chain`.
pub(crate) struct PreparedChain {
    pub dir: PathBuf,
    pub genesis: Vec<u8>,
    pub preset: Preset,
    pub validators: usize,
    /// Every block's SSZ, slot 1 on.
    pub blocks: Vec<Vec<u8>>,
}

pub(crate) fn prepare_chain(
    tmp: &Path,
    preset: Preset,
    validators: usize,
    slots: u64,
    chain: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<PreparedChain, Error> {
    std::fs::create_dir_all(tmp)?;
    let chain_dir = match chain {
        Some(dir) => dir.to_path_buf(),
        None => {
            let dir = tmp.join("chain");
            let t = Instant::now();
            let opts = DevnetOptions {
                validators,
                slots,
                genesis_time: crate::devnet::DEFAULT_GENESIS_TIME,
                signing: SigningMode::Summed,
            };
            crate::devnet::run(preset, &opts, &dir, &mut |_| {})?;
            progress(&format!(
                "generated {slots} blocks of {validators} validators ({}) in {:.1} s",
                preset.name(),
                t.elapsed().as_secs_f64()
            ));
            dir
        }
    };
    let genesis = read_snappy(&crate::devnet::genesis_path(&chain_dir))?;
    let (preset, validators) = crate::chain::any::genesis_preset_and_validators(&genesis)?;
    let mut blocks = Vec::new();
    for slot in 1.. {
        let path = crate::devnet::block_path(&chain_dir, slot);
        if !path.exists() {
            break;
        }
        blocks.push(read_snappy(&path)?);
    }
    if blocks.is_empty() {
        return Err(format!("{}: no blocks", chain_dir.display()).into());
    }
    Ok(PreparedChain {
        dir: chain_dir,
        genesis,
        preset,
        validators,
        blocks,
    })
}

/// Wait until every client has exchanged Status with `server`.
pub(crate) fn wait_for_status(
    rt: &tokio::runtime::Runtime,
    clients: &[&NetworkService],
    server: libp2p::PeerId,
) -> Result<(), Error> {
    let t = Instant::now();
    for net in clients {
        let h = net.handle();
        loop {
            let peers = rt.block_on(h.peers())?;
            if peers
                .iter()
                .any(|p| p.peer_id == server && p.status.is_some())
            {
                break;
            }
            if t.elapsed() > Duration::from_secs(20) {
                return Err("a node never exchanged Status with its peer".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// Start a network service over `chain` on 127.0.0.1 and wait until it listens.
pub(crate) fn start_network(
    rt: &tokio::runtime::Runtime,
    datadir: &Path,
    chain: &ChainService,
    target_peers: usize,
) -> Result<NetworkService, Error> {
    let mut cfg = NetworkConfig::local(datadir.to_path_buf());
    cfg.target_peers = target_peers;
    // The benchmarks measure serving and syncing capacity, not the quotas: block requests
    // are not rate-limited here (the default is Lighthouse's 1024 blocks / 10 s per peer).
    let unlimited = crate::net::rate_limit::Quota::n_every(1 << 40, 1);
    cfg.peers.rate_limits.blocks_by_range = unlimited;
    cfg.peers.rate_limits.blocks_by_root = unlimited;
    let net = rt.block_on(NetworkService::start(
        cfg,
        chain.handle(),
        crate::chain::any::config_of(chain.handle().preset()),
    ))?;
    let t = Instant::now();
    while net.handle().listen_addresses().is_empty() {
        if t.elapsed() > Duration::from_secs(10) {
            return Err("a node never listened".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(net)
}

pub(crate) fn open_chain(data: &Path, genesis: &[u8]) -> Result<ChainService, Error> {
    Ok(ChainService::open(
        data,
        Some(genesis),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )?)
}

/// Run the benchmark; `progress` gets the table's lines as they are measured.
pub fn run(cfg: &NetBenchConfig, progress: &mut dyn FnMut(&str)) -> Result<NetBenchReport, Error> {
    let tmp =
        TempDir(std::env::temp_dir().join(format!("quasar-bench-net-{}", std::process::id())));
    let prepared = prepare_chain(
        &tmp.0,
        cfg.preset,
        cfg.validators,
        cfg.slots,
        cfg.chain.as_deref(),
        progress,
    )?;
    let PreparedChain {
        dir: chain_dir,
        genesis,
        preset,
        validators,
        blocks,
    } = prepared;
    let slots = blocks.len() as u64;
    let mean_block_bytes = blocks.iter().map(|b| b.len() as u64).sum::<u64>() / slots;

    // The serving node: the chain imported with full verification.
    let server = open_chain(&tmp.0.join("server"), &genesis)?;
    let t = Instant::now();
    let stop = AtomicBool::new(false);
    let (report, result) = crate::chain::files::import_dir(
        &server.handle(),
        &chain_dir,
        &ImportOptions::default(),
        &stop,
        &mut |_| {},
    );
    result.map_err(|e| format!("import: {e}"))?;
    progress(&format!(
        "stored {} blocks ({} validators, {}, {} bytes per block on average) in {:.1} s",
        report.imported,
        validators,
        preset.name(),
        mean_block_bytes,
        t.elapsed().as_secs_f64()
    ));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server_net = start_network(
        &rt,
        &tmp.0.join("server"),
        &server,
        cfg.peers.iter().copied().max().unwrap_or(1) + 8,
    )?;
    let server_handle = server_net.handle();
    let server_addr = server_handle.listen_addresses()[0].clone();
    let server_id = server_handle.local_peer_id();

    progress(&format!(
        "{:<6} {:>9} {:>9} {:>9} {:>10} {:>9} {:>16}",
        "peers", "requests", "blocks", "MiB", "blocks/s", "MiB/s", "slowest peer b/s"
    ));
    let request_blocks = cfg
        .request_blocks
        .clamp(1, crate::net::messages::MAX_REQUEST_BLOCKS_DENEB as u64);
    let mut serve = Vec::new();
    for &n in &cfg.peers {
        // n fresh client nodes, each connected to the server.
        let mut clients = Vec::new();
        for i in 0..n {
            let dir = tmp.0.join(format!("client-{n}-{i}"));
            let chain = open_chain(&dir, &genesis)?;
            let net = start_network(&rt, &dir, &chain, 50)?;
            rt.block_on(net.handle().dial(server_addr.clone()))?;
            clients.push((chain, net));
        }
        let nets: Vec<&NetworkService> = clients.iter().map(|(_, n)| n).collect();
        wait_for_status(&rt, &nets, server_id)?;
        // The first full pass of each client is checked byte for byte against the files.
        let expected = Arc::new(blocks.clone());
        let deadline = Duration::from_secs_f64(cfg.seconds.max(0.5));
        let requests = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = clients
            .iter()
            .map(|(_, net)| {
                let h = net.handle();
                let expected = expected.clone();
                let requests = requests.clone();
                let bytes = bytes.clone();
                rt.spawn(async move {
                    let mut got = 0u64;
                    let mut next = 1u64;
                    let mut checked = false;
                    while start.elapsed() < deadline {
                        let count = request_blocks.min(slots + 1 - next);
                        let chunk = h
                            .blocks_by_range(server_id, next, count)
                            .await
                            .map_err(|e| e.to_string())?;
                        if chunk.len() as u64 != count {
                            return Err(format!(
                                "asked {count} blocks from slot {next}, got {}",
                                chunk.len()
                            ));
                        }
                        if !checked {
                            for (k, b) in chunk.iter().enumerate() {
                                if b != &expected[(next - 1) as usize + k] {
                                    return Err(format!("slot {}: other bytes", next + k as u64));
                                }
                            }
                        }
                        requests.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(
                            chunk.iter().map(|b| b.len() as u64).sum(),
                            Ordering::Relaxed,
                        );
                        got += count;
                        next += count;
                        if next > slots {
                            next = 1;
                            checked = true;
                        }
                    }
                    Ok::<(u64, f64), String>((got, start.elapsed().as_secs_f64()))
                })
            })
            .collect();
        let mut total = 0u64;
        let mut slowest = f64::INFINITY;
        for task in tasks {
            let (got, secs) = rt.block_on(task)?.map_err(|e| format!("{n} peers: {e}"))?;
            total += got;
            slowest = slowest.min(got as f64 / secs.max(1e-9));
        }
        let seconds = start.elapsed().as_secs_f64();
        let mib = bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
        let row = ServeRow {
            peers: n,
            requests: requests.load(Ordering::Relaxed),
            blocks: total,
            mebibytes: mib,
            seconds,
            blocks_per_second: total as f64 / seconds,
            mib_per_second: mib / seconds,
            slowest_peer_blocks_per_second: slowest,
        };
        progress(&format!(
            "{:<6} {:>9} {:>9} {:>9.1} {:>10.0} {:>9.1} {:>16.0}",
            row.peers,
            row.requests,
            row.blocks,
            row.mebibytes,
            row.blocks_per_second,
            row.mib_per_second,
            row.slowest_peer_blocks_per_second
        ));
        serve.push(row);
        for (chain, net) in clients {
            rt.block_on(net.shutdown());
            chain.shutdown();
        }
    }
    rt.block_on(server_net.shutdown());
    server.shutdown();

    let codec = codec_rows(preset, &blocks)?;
    progress(&format!(
        "codec over the chain's {} blocks ({} bytes on average):",
        slots, mean_block_bytes
    ));
    for r in &codec {
        progress(&format!("  {:<24} {:>9.0} MiB/s", r.name, r.mib_per_second));
    }
    let scaling = match (serve.first(), serve.last()) {
        (Some(a), Some(b)) if serve.len() > 1 => Some(b.blocks_per_second / a.blocks_per_second),
        _ => None,
    };
    if let Some(s) = scaling {
        progress(&format!(
            "blocks/s to {} peers over blocks/s to {}: {s:.2}x",
            serve.last().map(|r| r.peers).unwrap_or(0),
            serve.first().map(|r| r.peers).unwrap_or(0)
        ));
    }
    Ok(NetBenchReport {
        preset: preset.name().into(),
        validators,
        blocks: slots,
        mean_block_bytes,
        serve,
        codec,
        scaling,
    })
}
