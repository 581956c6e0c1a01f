//! The `quasar` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use quasar::accel::aggregate::PubkeyAggregator;
use quasar::accel::{Accel, Backend};
use quasar::bench;
use quasar::merkle;

#[derive(Parser)]
#[command(
    name = "quasar",
    version,
    about = "Ethereum consensus verification node with GPU-accelerated hashing and BLS"
)]
struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info`, `quasar=debug`; also RUST_LOG.
    #[arg(
        long,
        global = true,
        default_value = "warn,wgpu_core=error,wgpu_hal=error,naga=error"
    )]
    log: String,
    /// Worker threads for CPU paths (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One-shot tools over files.
    #[command(subcommand)]
    Tool(Tool),
    /// Benchmarks, each against its peers in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Generate a valid chain from an interop genesis: `OUT/genesis.ssz_snappy` and
    /// `OUT/blocks/<slot>.ssz_snappy`, a block every slot with full participation.
    Devnet {
        #[arg(long, value_parser = ["mainnet", "minimal"], default_value = "minimal")]
        preset: String,
        /// Validators at genesis (interop keys 0 … N-1).
        #[arg(long, default_value_t = 64)]
        validators: usize,
        /// Blocks to produce, at slots 1 … M.
        #[arg(long, default_value_t = 64)]
        slots: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Genesis time (seconds since the Unix epoch).
        #[arg(long, default_value_t = quasar::devnet::DEFAULT_GENESIS_TIME)]
        genesis_time: u64,
        /// `each`: every attester signs and the signatures are aggregated (the real cost);
        /// `summed`: the attesters' secret keys are summed and sign once (same bytes, fast).
        #[arg(long, value_parser = ["each", "summed"], default_value = "each")]
        sign: String,
    },
    /// Import blocks (`BLOCKS_DIR/blocks/<slot>.ssz_snappy` as `devnet` writes them, or
    /// `<slot>.ssz[_snappy]` files in BLOCKS_DIR) with full verification, in batches;
    /// blocks already imported are skipped.
    Import {
        /// Node data folder (RocksDB under `db/`, cache tiers under `cache/`).
        #[arg(long)]
        datadir: PathBuf,
        /// Genesis state (`.ssz` or `.ssz_snappy`); needed for a new datadir. Default:
        /// BLOCKS_DIR/genesis.ssz_snappy when there is one.
        #[arg(long)]
        genesis: Option<PathBuf>,
        #[command(flatten)]
        args: ImportArgs,
        /// Write the caches' metrics (OpenMetrics text) here at the end.
        #[arg(long, value_name = "FILE")]
        metrics: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        blocks_dir: PathBuf,
    },
    /// Inspect a datadir.
    #[command(subcommand)]
    Db(DbCmd),
    /// Run the node: the chain in DATADIR on the network (serving its blocks, relaying and
    /// importing gossip blocks, keeping peers) until SIGINT / SIGTERM.
    Node(NodeArgs),
    /// A live devnet on 127.0.0.1: a producer node running the interop validators (a block
    /// every slot, full-participation attestations, aggregates by the spec's aggregator
    /// selection) and late nodes that range-sync from every peer and then follow the head
    /// by gossip. Prints each node's head, peers and sync every slot or two, then a
    /// summary; exits 1 when the heads differ or a late node did not catch up.
    Dev(DevArgs),
}

/// `quasar dev`.
#[derive(Args)]
struct DevArgs {
    #[arg(long, value_parser = ["mainnet", "minimal"], default_value = "minimal")]
    preset: String,
    /// Interop validators, all run by the producer.
    #[arg(long, default_value_t = 64)]
    validators: usize,
    /// Nodes in all: the producer and N-1 late nodes (N >= 2).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Slots to run (a block at each slot 1 … N).
    #[arg(long, default_value_t = 40)]
    slots: u64,
    /// Slot duration in milliseconds (the chain config's SLOT_DURATION_MS).
    #[arg(long, default_value_t = 1000)]
    slot_ms: u64,
    /// The late nodes start at this slot.
    #[arg(long, default_value_t = 16)]
    late_slots: u64,
    /// Keep the nodes' datadirs here (D/node-<i>; D must not hold a devnet yet). Default:
    /// a temporary folder, removed at the end.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Backend of every node's hashing and pubkey aggregation.
    #[arg(long, value_enum, default_value = "auto")]
    backend: Backend,
    /// Print the summary as JSON on stdout (the running lines go to stderr).
    #[arg(long)]
    json: bool,
}

/// `quasar node`.
#[derive(Args)]
struct NodeArgs {
    /// Node data folder (RocksDB under `db/`, the network key under `network/`).
    #[arg(long)]
    datadir: PathBuf,
    /// The network: `minimal` or `mainnet` (the preset's built-in config), or a folder with
    /// a consensus-specs `config.yaml` and `genesis.ssz` (or `genesis.ssz_snappy`).
    #[arg(long)]
    network: Option<String>,
    /// Genesis state (`.ssz` or `.ssz_snappy`); needed for a new datadir unless the
    /// --network folder has one or --checkpoint-sync-url anchors it (then, when given,
    /// the checkpoint must be of its chain).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Anchor a new datadir at the finalized checkpoint of this Beacon API (another node's:
    /// its finalized state and block, checked), sync forward from peers and backfill the
    /// older blocks in the background. Ignored for a datadir that holds a chain already.
    #[arg(long, value_name = "URL")]
    checkpoint_sync_url: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: std::net::IpAddr,
    /// TCP port (0: any free port).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// QUIC (UDP) port; default: --port + 1.
    #[arg(long)]
    quic_port: Option<u16>,
    /// Do not listen on QUIC.
    #[arg(long)]
    disable_quic: bool,
    /// Boot nodes, comma-separated: ENRs (`enr:-…`, added to discovery and dialled when
    /// relevant) or multiaddrs (dialled at start).
    #[arg(long, value_delimiter = ',')]
    boot_nodes: Vec<String>,
    /// discv5 UDP port; default: --port.
    #[arg(long)]
    discovery_port: Option<u16>,
    /// Do not run discv5 discovery (only the boot multiaddrs are dialled).
    #[arg(long)]
    disable_discovery: bool,
    /// The IP address the ENR announces; default: --listen-address unless it is 0.0.0.0 / ::
    /// (then learnt from peers).
    #[arg(long)]
    enr_address: Option<std::net::IpAddr>,
    /// Discover and dial peers at loopback, private and link-local addresses (local
    /// devnets); on by default when --listen-address / --enr-address is such an address.
    #[arg(long)]
    enable_private_discovery: bool,
    /// Connections kept, at most.
    #[arg(long, default_value_t = 50)]
    target_peers: usize,
    /// Backend of hashing and pubkey aggregation.
    #[arg(long, value_enum, default_value = "auto")]
    backend: Backend,
    /// Slots per range-sync batch (one blocks-by-range request; at most 128).
    #[arg(long, default_value_t = 64)]
    sync_batch_slots: u64,
    /// Bytes of cached states and blocks before the coldest are evicted, e.g. 2GiB.
    #[arg(long, value_parser = parse_budget)]
    memory_budget: Option<u64>,
    #[command(flatten)]
    http: HttpArgs,
}

/// The Beacon API and metrics servers of `quasar node` (Lighthouse's flags).
#[derive(Args)]
struct HttpArgs {
    /// Serve the Beacon API.
    #[arg(long)]
    http: bool,
    /// Address of the Beacon API.
    #[arg(long, default_value = "127.0.0.1")]
    http_address: std::net::IpAddr,
    /// Port of the Beacon API (0: any free port).
    #[arg(long, default_value_t = 5052)]
    http_port: u16,
    /// Serve Prometheus metrics at /metrics.
    #[arg(long)]
    metrics: bool,
    /// Address of the metrics server.
    #[arg(long, default_value = "127.0.0.1")]
    metrics_address: std::net::IpAddr,
    /// Port of the metrics server (0: any free port).
    #[arg(long, default_value_t = 5054)]
    metrics_port: u16,
}

/// How `quasar import` runs (shared with `bench import`).
#[derive(Args, Clone)]
struct ImportArgs {
    /// Backend of hashing and pubkey aggregation.
    #[arg(long, value_enum, default_value = "auto")]
    backend: Backend,
    /// A batch closes at this many blocks …
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// … or this many milliseconds after its first block.
    #[arg(long, default_value_t = 500)]
    batch_timeout_ms: u64,
    /// Store a state snapshot every this many epochs (blocks between are replayed).
    #[arg(long, default_value_t = 4)]
    snapshot_every: u64,
    /// Bytes of cached states and blocks before the coldest are evicted, e.g. 512MiB.
    #[arg(long, value_parser = parse_budget)]
    memory_budget: Option<u64>,
    /// Verify each block's signatures on their own, one write per block (the baseline).
    #[arg(long)]
    per_block: bool,
    /// Do not warm the next epochs' checkpoint states in the background.
    #[arg(long)]
    no_preload: bool,
    /// A batch's database write auto-commits past this many bytes, between blocks (the
    /// head and checkpoints always go in its last part), e.g. 16MiB.
    #[arg(long, value_parser = parse_budget, default_value = "16MiB")]
    write_batch_bytes: u64,
}

fn parse_budget(s: &str) -> Result<u64, String> {
    quasar::cache::budget::parse_bytes(s)
}

impl ImportArgs {
    fn options(&self) -> quasar::chain::pipeline::ImportOptions {
        use quasar::chain::pipeline::{ImportOptions, Verification};
        ImportOptions {
            batch_size: self.batch_size.max(1),
            batch_timeout: std::time::Duration::from_millis(self.batch_timeout_ms),
            snapshot_every_epochs: self.snapshot_every.max(1),
            memory_budget: self.memory_budget,
            verification: if self.per_block {
                Verification::PerBlock
            } else {
                Verification::Batched
            },
            preload: !self.no_preload,
            write_batch_bytes: self.write_batch_bytes.clamp(1, usize::MAX as u64) as usize,
            ..ImportOptions::default()
        }
    }
}

#[derive(Subcommand)]
enum DbCmd {
    /// Head, checkpoints and counts of a datadir.
    Info {
        #[arg(long)]
        datadir: PathBuf,
    },
    /// Walk the whole store and report every inconsistency (exit 1 if any).
    Verify {
        #[arg(long)]
        datadir: PathBuf,
    },
}

#[derive(Subcommand)]
enum Tool {
    /// Print the SSZ root of `merkleize(chunks, limit)` of a file of concatenated 32-byte chunks.
    Merkleize {
        /// Hashing backend.
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        /// Chunk limit (the tree is padded to the next power of two of it); default: the chunk count.
        #[arg(long)]
        limit: Option<u64>,
        /// File of concatenated 32-byte chunks.
        file: PathBuf,
    },
    /// Print the hash tree root of an SSZ object (`.ssz` or `.ssz_snappy`).
    HashTreeRoot {
        /// Preset whose bounds the type has.
        #[arg(long, value_parser = ["mainnet", "minimal"])]
        preset: String,
        /// Container name as in the spec, e.g. BeaconState, SignedBeaconBlock.
        #[arg(long = "type", value_name = "NAME")]
        type_name: String,
        file: PathBuf,
    },
    /// Apply signed blocks to a state with full verification (signatures batched), then
    /// advance to a slot; write the post state and print its root.
    Transition {
        #[arg(long, value_parser = ["mainnet", "minimal"])]
        preset: String,
        /// Pre state (`.ssz` or `.ssz_snappy`).
        #[arg(long)]
        pre: PathBuf,
        /// Signed blocks, applied in the order given.
        #[arg(long = "block")]
        blocks: Vec<PathBuf>,
        /// Advance to this slot after the blocks.
        #[arg(long)]
        slots: Option<u64>,
        /// Where to write the post state (`.ssz` or `.ssz_snappy` by extension).
        #[arg(long)]
        out: PathBuf,
        /// Backend of hashing and pubkey aggregation.
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
    },
    /// Aggregate sets of compressed G1 pubkeys (one set per line, whitespace-separated hex).
    AggregatePubkeys {
        /// Backend of the aggregation.
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        file: PathBuf,
    },
    /// Batch-verify signature sets: `PK1,PK2,... MESSAGE SIGNATURE` per line, in hex.
    VerifyBatch {
        /// Backend of the pubkey aggregation.
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Merkleization throughput: every backend beside sha2 and hashtree, 2^min … 2^max leaves.
    Hash(HashArgs),
    /// Pubkey pre-aggregation: GPU and CPU against plain blst, set sizes 1 … 65536; with
    /// `--segment`, a whole segment's sets in one call, CPU twin against GPU.
    Aggregate(AggregateArgs),
    /// Batch verification against per-set verification, batch sizes 1 … 128.
    Verify(BlsArgs),
    /// Blocks/s importing a generated chain with full verification: batched on the CPU
    /// and the GPU beside per-block verification, in the same run.
    Import(ImportBenchArgs),
    /// Blocks by range served over libp2p on 127.0.0.1 to one and to several peers from a
    /// stored chain, and the req/resp codec against plain `snap` framing + SSZ.
    Net(NetBenchArgs),
    /// Range-sync blocks/s from several local peers (batched and per-block, CPU and GPU
    /// aggregation) beside import of the same chain from files.
    Sync(SyncBenchArgs),
    /// The node's GPU workloads at mainnet scale on every backend: cold state root, the
    /// root after a block and after an epoch (host trees vs resident GPU trees), segment
    /// aggregation.
    Gpu(GpuBenchArgs),
}

#[derive(clap::Args, Debug)]
struct GpuBenchArgs {
    /// Registry sizes (validators), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![65536usize, 262144, 1048576])]
    validators: Vec<usize>,
    /// Attesters per block in the segment aggregation.
    #[arg(long, default_value_t = 32768)]
    attesters: usize,
    /// Blocks per segment in the segment aggregation.
    #[arg(long, default_value_t = 64)]
    blocks: usize,
    /// Milliseconds spent per measurement.
    #[arg(long, default_value_t = 500)]
    millis: u64,
    /// Leave the GPU out.
    #[arg(long)]
    no_gpu: bool,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write an SVG plot of time against registry size.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct SyncBenchArgs {
    #[arg(long, value_parser = ["mainnet", "minimal"], default_value = "minimal")]
    preset: String,
    /// Validators of the generated chain.
    #[arg(long, default_value_t = 16384)]
    validators: usize,
    /// Blocks of the generated chain.
    #[arg(long, default_value_t = 512)]
    slots: u64,
    /// Sync this chain (as `quasar devnet` writes it) instead of generating one.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Serving peers.
    #[arg(long, default_value_t = 4)]
    peers: usize,
    /// Slots per range-sync batch.
    #[arg(long, default_value_t = 64)]
    batch_slots: u64,
    /// Leave the GPU out.
    #[arg(long)]
    no_gpu: bool,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct NetBenchArgs {
    #[arg(long, value_parser = ["mainnet", "minimal"], default_value = "minimal")]
    preset: String,
    /// Validators of the generated chain.
    #[arg(long, default_value_t = 16384)]
    validators: usize,
    /// Blocks of the generated chain.
    #[arg(long, default_value_t = 256)]
    slots: u64,
    /// Serve this chain (as `quasar devnet` writes it) instead of generating one.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Peer counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    peers: Vec<usize>,
    /// Blocks per blocks-by-range request (at most 128).
    #[arg(long, default_value_t = 64)]
    request_blocks: u64,
    /// Seconds each peer count is measured.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ImportBenchArgs {
    #[arg(long, value_parser = ["mainnet", "minimal"], default_value = "minimal")]
    preset: String,
    /// Validators of the generated chain.
    #[arg(long, default_value_t = 16384)]
    validators: usize,
    /// Blocks of the generated chain (8 batches: the pipeline needs a few to fill).
    #[arg(long, default_value_t = 512)]
    slots: u64,
    /// Import this chain (as `quasar devnet` writes it) instead of generating one.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Leave the GPU out.
    #[arg(long)]
    no_gpu: bool,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AggregateArgs {
    #[command(flatten)]
    bls: BlsArgs,
    /// Segment aggregation instead of the set-size sweep: all sets of `--blocks` blocks
    /// in one call (mainnet at a million validators: `--blocks 64 --attesters 32768
    /// --committee 512 --sync 512 --table 1048576`, 2.1M additions), the CPU twin against
    /// the GPU, and the GPU's per-call latency on a tiny batch.
    #[arg(long)]
    segment: bool,
    /// Blocks per segment (--segment).
    #[arg(long, default_value_t = 64)]
    blocks: usize,
    /// Attesters per block, the sum of its attestation sets (--segment).
    #[arg(long, default_value_t = 1024)]
    attesters: usize,
    /// Keys per attestation set (--segment).
    #[arg(long, default_value_t = 128)]
    committee: usize,
    /// Keys of each block's sync aggregate set (--segment; 0: none).
    #[arg(long, default_value_t = 64)]
    sync: usize,
}

#[derive(Args)]
struct BlsArgs {
    /// Keys in the resident table (aggregate).
    #[arg(long, default_value_t = 1 << 16)]
    table: usize,
    /// Largest size, as log2 (aggregate: keys per set; verify: sets per batch).
    #[arg(long)]
    max_log: Option<u32>,
    /// Milliseconds spent per measurement (the fastest run counts).
    #[arg(long, default_value_t = 300)]
    millis: u64,
    /// Leave the GPU out.
    #[arg(long)]
    no_gpu: bool,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write an SVG plot.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct HashArgs {
    /// Smallest tree, as log2 of the leaf count.
    #[arg(long, default_value_t = 10)]
    min_log: u32,
    /// Largest tree, as log2 of the leaf count (24 = 512 MiB of leaves).
    #[arg(long, default_value_t = 20)]
    max_log: u32,
    /// Step between sizes, in powers of two.
    #[arg(long, default_value_t = 2)]
    step: u32,
    /// Milliseconds spent per measurement (the fastest run counts).
    #[arg(long, default_value_t = 300)]
    millis: u64,
    /// Leave the GPU out.
    #[arg(long)]
    no_gpu: bool,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write an SVG plot of throughput against size.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Mesa's Vulkan drivers probe Wayland when wgpu opens an instance; without
    // XDG_RUNTIME_DIR, libwayland prints "error: XDG_RUNTIME_DIR is invalid" lines that
    // read like ours. Set it before any thread exists (set_var is sound only then).
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // The binary runs on tokio (signals, and the node's sockets later); every command's
    // own work is blocking, so it runs on the runtime's blocking pool, off the async
    // workers.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("quasar-async")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signals = Signals::default();
    rt.spawn(watch_signals(signals.clone()));
    let outcome =
        rt.block_on(async { tokio::task::spawn_blocking(move || run(cli, &signals)).await });
    rt.shutdown_background();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => Err(anyhow::anyhow!("the command's thread failed: {e}")),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, signals: &Signals) -> anyhow::Result<ExitCode> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("--threads")?;
    }
    match cli.command {
        Command::Devnet {
            preset,
            validators,
            slots,
            out,
            genesis_time,
            sign,
        } => {
            let preset: quasar::types::Preset = preset.parse()?;
            let opts = quasar::devnet::DevnetOptions {
                validators,
                slots,
                genesis_time,
                signing: sign.parse()?,
            };
            let s = quasar::devnet::run(preset, &opts, &out, &mut |line| eprintln!("{line}"))?;
            let t = &s.timings;
            eprintln!(
                "{} blocks, {} signatures in {:.2} s (keys {:.2} s, genesis {:.2} s, signing {:.2} s, transition {:.2} s, writing {:.2} s)",
                s.blocks,
                s.signatures,
                t.total.as_secs_f64(),
                t.keys.as_secs_f64(),
                t.genesis.as_secs_f64(),
                t.signing.as_secs_f64(),
                t.transition.as_secs_f64(),
                t.writing.as_secs_f64(),
            );
            println!(
                "head slot {} root {} state root {} justified epoch {} finalized epoch {}",
                s.head_slot,
                quasar::bls::to_hex(&s.head_root),
                quasar::bls::to_hex(&s.state_root),
                s.current_justified_epoch,
                s.finalized_epoch
            );
        }
        Command::Import {
            datadir,
            genesis,
            args,
            metrics,
            quiet,
            blocks_dir,
        } => {
            return import_command(
                &datadir,
                genesis,
                &args,
                metrics,
                quiet,
                &blocks_dir,
                signals,
            )
        }
        Command::Node(args) => return node_command(args, signals),
        Command::Dev(args) => return dev_command(args, signals),
        Command::Db(DbCmd::Info { datadir }) => {
            let info = quasar::chain::any::db_info(&datadir).map_err(anyhow::Error::msg)?;
            println!("{info}");
        }
        Command::Db(DbCmd::Verify { datadir }) => {
            let problems = quasar::chain::any::db_verify(&datadir).map_err(anyhow::Error::msg)?;
            if problems.is_empty() {
                println!("ok: no inconsistencies");
            } else {
                for p in &problems {
                    println!("inconsistency: {p}");
                }
                println!("{} inconsistencies", problems.len());
                return Ok(ExitCode::from(1));
            }
        }
        Command::Bench(BenchCmd::Sync(a)) => {
            let cfg = bench::sync::SyncBenchConfig {
                preset: a.preset.parse()?,
                validators: a.validators,
                slots: a.slots,
                chain: a.chain,
                peers: a.peers,
                batch_slots: a.batch_slots,
                no_gpu: a.no_gpu,
            };
            report_bench(a.json, |p| bench::sync::run(&cfg, p))?;
        }
        Command::Bench(BenchCmd::Net(a)) => {
            let cfg = bench::net::NetBenchConfig {
                preset: a.preset.parse()?,
                validators: a.validators,
                slots: a.slots,
                chain: a.chain,
                peers: a.peers,
                request_blocks: a.request_blocks,
                seconds: a.seconds,
            };
            report_bench(a.json, |p| bench::net::run(&cfg, p))?;
        }
        Command::Bench(BenchCmd::Gpu(a)) => {
            anyhow::ensure!(
                !a.validators.is_empty()
                    && a.validators.iter().all(|&n| (1..=1 << 22).contains(&n)),
                "--validators: sizes between 1 and 4194304"
            );
            anyhow::ensure!(
                a.attesters >= 1 && a.blocks >= 1,
                "--attesters and --blocks must be at least 1"
            );
            let cfg = bench::gpu::GpuBenchConfig {
                validators: a.validators.clone(),
                attesters: a.attesters,
                blocks: a.blocks,
                target: std::time::Duration::from_millis(a.millis),
                no_gpu: a.no_gpu,
                ..Default::default()
            };
            if !a.json {
                println!("{}", bench::gpu::header());
            }
            let json = a.json;
            let report = bench::gpu::run(&cfg, |line| {
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "cpu: {} x{}; gpu: {}",
                    report.cpu,
                    report.threads,
                    report
                        .gpu
                        .as_deref()
                        .or(report.gpu_note.as_deref())
                        .unwrap_or("none")
                );
            }
            if let Some(path) = a.plot {
                bench::gpu::plot(&report, &path)?;
                eprintln!("plot written to {}", path.display());
            }
        }
        Command::Bench(BenchCmd::Import(a)) => {
            let cfg = bench::import::ImportBenchConfig {
                preset: a.preset.parse()?,
                validators: a.validators,
                slots: a.slots,
                chain: a.chain,
                no_gpu: a.no_gpu,
            };
            report_bench(a.json, |p| bench::import::run(&cfg, p))?;
        }
        Command::Tool(Tool::Merkleize {
            backend,
            limit,
            file,
        }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            anyhow::ensure!(
                bytes.len() % 32 == 0,
                "{}: length {} is not a multiple of 32 bytes",
                file.display(),
                bytes.len()
            );
            let chunks: &[[u8; 32]] = bytemuck::cast_slice(&bytes);
            if let Some(limit) = limit {
                anyhow::ensure!(
                    chunks.len() as u64 <= limit,
                    "{}: {} chunks exceed --limit {limit}",
                    file.display(),
                    chunks.len()
                );
            }
            let hasher = accel(backend)?
                .hasher()
                .with_context(|| format!("--backend {}", backend.name()))?;
            let root = merkle::merkleize(hasher.as_ref(), chunks, limit)?;
            tracing::info!("merkleized {} chunks with {}", chunks.len(), hasher.name());
            println!("0x{}", hex(&root));
        }
        Command::Tool(Tool::Transition {
            preset,
            pre,
            blocks,
            slots,
            out,
            backend,
        }) => {
            use quasar::chain::{mainnet, minimal, SegmentError};
            use quasar::transition::ChainConfig;
            let preset: quasar::types::Preset = preset.parse()?;
            let pre_bytes = read_ssz_file(&pre)?;
            let block_bytes = blocks
                .iter()
                .map(|b| read_ssz_file(b))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let engines = accel(backend)?;
            let context = || format!("--backend {}", backend.name());
            let agg = engines.aggregator().with_context(context)?;
            let hasher = engines.hasher().with_context(context)?;
            let result = match preset {
                quasar::types::Preset::Minimal => minimal::transition_bytes_with(
                    &pre_bytes,
                    &block_bytes,
                    slots,
                    &ChainConfig::minimal(),
                    agg.as_ref(),
                    hasher.as_ref(),
                )
                .map(|p| (p.ssz, p.root)),
                quasar::types::Preset::Mainnet => mainnet::transition_bytes_with(
                    &pre_bytes,
                    &block_bytes,
                    slots,
                    &ChainConfig::mainnet(),
                    agg.as_ref(),
                    hasher.as_ref(),
                )
                .map(|p| (p.ssz, p.root)),
            };
            let (ssz, root) = result.map_err(|e| match &e {
                SegmentError::Block { index, .. } | SegmentError::Signature { index, .. } => {
                    let file = blocks
                        .get(*index)
                        .map_or("?".into(), |p| p.display().to_string());
                    anyhow::anyhow!("invalid block {file}: {e}")
                }
                _ => anyhow::anyhow!("{e}"),
            })?;
            let bytes = if out.extension().is_some_and(|e| e == "ssz_snappy") {
                snap::raw::Encoder::new()
                    .compress_vec(&ssz)
                    .context("snappy")?
            } else {
                ssz
            };
            write_atomically(&out, &bytes)?;
            println!("{}", quasar::types::ssz_static::root_hex(&root));
        }
        Command::Tool(Tool::HashTreeRoot {
            preset,
            type_name,
            file,
        }) => {
            use quasar::types::ssz_static;
            let preset: quasar::types::Preset = preset.parse()?;
            anyhow::ensure!(
                ssz_static::is_known_type(&type_name),
                "unknown type {type_name:?} (known: {})",
                ssz_static::TYPE_NAMES.join(", ")
            );
            let bytes = read_ssz_file(&file)?;
            let root = ssz_static::decode_and_root(preset, &type_name, &bytes)
                .with_context(|| format!("{}: decoding as {preset} {type_name}", file.display()))?;
            println!("{}", ssz_static::root_hex(&root));
        }
        Command::Tool(Tool::AggregatePubkeys { backend, file }) => {
            let text = read_text(&file)?;
            let agg = aggregator_for(backend)?;
            let results = quasar::bls::tools::aggregate_pubkeys(&text, agg.as_ref())?;
            let mut out = String::new();
            for r in &results {
                match r {
                    Ok(pk) => out.push_str(&quasar::bls::to_hex(pk)),
                    Err(e) => out.push_str(&format!("error: {e}")),
                }
                out.push('\n');
            }
            print!("{out}");
            tracing::info!("{} sets aggregated with {}", results.len(), agg.name());
            if results.iter().any(|r| r.is_err()) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Tool(Tool::VerifyBatch { backend, file }) => {
            let text = read_text(&file)?;
            let agg = aggregator_for(backend)?;
            let results = quasar::bls::tools::verify_batch_lines(&text, agg.as_ref())?;
            let mut out = String::new();
            for (i, r) in results.iter().enumerate() {
                match r {
                    Ok(()) => out.push_str("valid\n"),
                    Err(e) => {
                        out.push_str("invalid\n");
                        tracing::warn!("line {}: {e}", i + 1);
                    }
                }
            }
            print!("{out}");
            if results.iter().any(|r| r.is_err()) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Bench(BenchCmd::Aggregate(AggregateArgs {
            bls: a,
            segment: true,
            blocks,
            attesters,
            committee,
            sync,
        })) => {
            anyhow::ensure!(a.table >= 1, "--table must be at least 1");
            let shape = bench::bls::SegmentShape {
                blocks,
                attesters,
                committee,
                sync,
            };
            let json = a.json;
            let report = bench::bls::run_segment(
                a.table,
                shape,
                std::time::Duration::from_millis(a.millis),
                a.no_gpu,
                |line| {
                    if json {
                        eprintln!("{line}")
                    } else {
                        println!("{line}")
                    }
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "table: {} keys; threads: {}; gpu: {}",
                    report.table_keys,
                    report.threads,
                    report
                        .gpu
                        .as_deref()
                        .or(report.gpu_note.as_deref())
                        .unwrap_or("none")
                );
            }
        }
        Command::Bench(cmd @ (BenchCmd::Aggregate(_) | BenchCmd::Verify(_))) => {
            let (is_agg, a) = match cmd {
                BenchCmd::Aggregate(a) => (true, a.bls),
                BenchCmd::Verify(a) => (false, a),
                BenchCmd::Hash(_)
                | BenchCmd::Import(_)
                | BenchCmd::Net(_)
                | BenchCmd::Sync(_)
                | BenchCmd::Gpu(_) => {
                    unreachable!()
                }
            };
            let budget = std::time::Duration::from_millis(a.millis);
            let json = a.json;
            let progress = |line: &str| {
                if json {
                    eprintln!("{line}")
                } else {
                    println!("{line}")
                }
            };
            let report = if is_agg {
                let max = a.max_log.unwrap_or(16).min(20);
                anyhow::ensure!(a.table >= 1, "--table must be at least 1");
                let sizes: Vec<usize> = (0..=max).step_by(2).map(|l| 1usize << l).collect();
                if !json {
                    println!("{}", bench::bls::header("ns/addition"));
                }
                bench::bls::run_aggregate(a.table, &sizes, budget, a.no_gpu, progress)?
            } else {
                let max = a.max_log.unwrap_or(7).min(12);
                let sizes: Vec<usize> = (0..=max).map(|l| 1usize << l).collect();
                if !json {
                    println!("{}", bench::bls::header("ns/set"));
                }
                bench::bls::run_verify(&sizes, budget, progress)?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "table: {} keys; threads: {}; gpu: {}",
                    report.table_keys,
                    report.threads,
                    report
                        .gpu
                        .as_deref()
                        .or(report.gpu_note.as_deref())
                        .unwrap_or("none")
                );
            }
            if let Some(path) = a.plot {
                bench::bls::plot(&report, &path)?;
                eprintln!("plot written to {}", path.display());
            }
        }
        Command::Bench(BenchCmd::Hash(a)) => {
            let cfg = bench::hash::HashBenchConfig {
                min_log2: a.min_log,
                max_log2: a.max_log,
                step: a.step,
                target: std::time::Duration::from_millis(a.millis),
                no_gpu: a.no_gpu,
                ..Default::default()
            };
            anyhow::ensure!(
                cfg.min_log2 <= cfg.max_log2 && cfg.max_log2 <= 28,
                "sizes: need --min-log <= --max-log <= 28"
            );
            if !a.json {
                println!("{}", bench::hash::header());
            }
            let json = a.json;
            let report = bench::hash::run(&cfg, |line| {
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "cpu kernel: {}; threads: {}; gpu: {}",
                    report.cpu_kernel,
                    report.threads,
                    report
                        .gpu
                        .as_deref()
                        .or(report.gpu_note.as_deref())
                        .unwrap_or("none")
                );
                for (log2, subs, up, down) in &report.gpu_traffic {
                    println!(
                        "gpu tree 2^{log2}: {subs} submission(s), {up} bytes up, {down} bytes down"
                    );
                }
            }
            if let Some(path) = a.plot {
                bench::hash::plot(&report, &path)?;
                eprintln!("plot written to {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `quasar import`: open (or create) the datadir, import the folder's blocks through
/// the pipeline with a progress bar, print the outcome; exit 1 on an invalid block.
fn import_command(
    datadir: &std::path::Path,
    genesis: Option<PathBuf>,
    args: &ImportArgs,
    metrics: Option<PathBuf>,
    quiet: bool,
    blocks_dir: &std::path::Path,
    signals: &Signals,
) -> anyhow::Result<ExitCode> {
    // From here a signal stops the import gracefully instead of ending the process.
    signals
        .graceful
        .store(true, std::sync::atomic::Ordering::SeqCst);
    use quasar::chain::service::ChainService;
    anyhow::ensure!(
        blocks_dir.is_dir(),
        "{}: not a folder of blocks",
        blocks_dir.display()
    );
    let genesis = genesis.or_else(|| {
        let g = quasar::devnet::genesis_path(blocks_dir);
        (g.exists()
            && quasar::chain::any::datadir_preset(datadir)
                .ok()
                .flatten()
                .is_none())
        .then_some(g)
    });
    let genesis_bytes = genesis.as_deref().map(read_ssz_file).transpose()?;
    let (agg, resident) = engines_for(args.backend)?;
    let mut opts = args.options();
    opts.resident_roots = resident;
    let service = ChainService::open(datadir, genesis_bytes.as_deref(), opts.clone(), agg)?;
    let handle = service.handle();
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} blocks {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    // SIGINT / SIGTERM: no further segment is submitted; the one in flight is settled
    // whole, the store is flushed, and the command exits 0 with what it imported.
    let stop = &signals.stop;
    let (report, result) =
        quasar::chain::files::import_dir(&handle, blocks_dir, &opts, stop, &mut |p| {
            bar.set_length(p.total);
            bar.set_position(p.done);
            bar.set_message(format!("head slot {}", p.head_slot));
        });
    bar.finish_and_clear();
    let metrics_text = handle.metrics().encode_text();
    drop(handle);
    service.shutdown();
    let stopped = stop.load(std::sync::atomic::Ordering::Relaxed);
    if stopped {
        eprintln!("stopped by a signal: the batch in flight was finished and the store flushed");
    }
    eprintln!(
        "imported {} blocks ({} already imported, skipped) in {} batches, {:.1} s: {:.1} blocks/s (transition {:.2} s, signatures {:.2} s, writes {:.2} s); peak RSS {} MiB",
        report.imported,
        report.skipped,
        report.batches,
        report.elapsed.as_secs_f64(),
        report.blocks_per_second(),
        report.transition.as_secs_f64(),
        report.signatures.as_secs_f64(),
        report.write.as_secs_f64(),
        quasar::chain::pipeline::peak_rss_bytes().unwrap_or(0) >> 20,
    );
    println!(
        "head slot {} root 0x{} state root 0x{} justified epoch {} finalized epoch {}",
        report.head_slot,
        hex(&report.head_root),
        hex(&report.head_state_root),
        report.justified_epoch,
        report.finalized_epoch
    );
    if let Some(path) = metrics {
        write_atomically(&path, metrics_text.as_bytes())?;
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_input_fault() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// `quasar node`: the chain service and the network service until a signal; then Goodbye
/// to every peer, the batch in flight finished, the store flushed, exit 0.
fn node_command(args: NodeArgs, signals: &Signals) -> anyhow::Result<ExitCode> {
    use quasar::net::service::NetworkConfig;
    signals
        .graceful
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let genesis = args.genesis.as_deref().map(read_ssz_file).transpose()?;
    let mut boot_nodes = Vec::new();
    let mut boot_enrs = Vec::new();
    for b in args
        .boot_nodes
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
    {
        if b.starts_with("enr:") {
            boot_enrs.push(
                b.parse::<quasar::net::discovery::Enr>()
                    .map_err(|e| anyhow::anyhow!("--boot-nodes: {b} is not an ENR: {e}"))?,
            );
        } else {
            boot_nodes.push(
                b.parse::<libp2p::Multiaddr>()
                    .with_context(|| format!("--boot-nodes: {b} is not a multiaddr or ENR"))?,
            );
        }
    }
    if args.disable_discovery && !boot_enrs.is_empty() {
        anyhow::bail!("--boot-nodes has ENRs but --disable-discovery is set");
    }
    let discovery = (!args.disable_discovery).then(|| {
        use quasar::net::discovery::{is_global, DiscoveryConfig};
        let announced = args.enr_address.unwrap_or(args.listen_address);
        let mut d = DiscoveryConfig::new(args.discovery_port.unwrap_or(args.port));
        d.boot_enrs = boot_enrs;
        d.enr_address = args.enr_address;
        d.allow_private =
            args.enable_private_discovery || (!announced.is_unspecified() && !is_global(announced));
        d
    });
    let network = args
        .network
        .as_deref()
        .map(quasar::node::NetworkSpec::load)
        .transpose()?;
    let genesis = match (genesis, &network) {
        (Some(g), _) => Some(g),
        (None, Some(n)) => n.genesis.clone(),
        (None, None) => None,
    };
    if let Some(n) = &network {
        n.check(&args.datadir, genesis.as_deref())?;
    }
    let (agg, resident) = engines_for(args.backend)?;
    let mut cfg = quasar::node::NodeConfig::local(args.datadir.clone(), genesis, agg);
    cfg.import.resident_roots = resident;
    cfg.chain_config = network.map(|n| n.config);
    cfg.import.memory_budget = args.memory_budget;
    cfg.checkpoint_sync_url = args.checkpoint_sync_url.clone();
    cfg.network = NetworkConfig {
        datadir: args.datadir.clone(),
        listen_address: args.listen_address,
        tcp_port: args.port,
        quic_port: (!args.disable_quic)
            .then(|| args.quic_port.unwrap_or(args.port.wrapping_add(1))),
        boot_nodes,
        target_peers: args.target_peers,
        peers: Default::default(),
        discovery,
        gossip_pool: Default::default(),
    };
    cfg.sync = quasar::sync::SyncConfig {
        batch_slots: args.sync_batch_slots,
        ..Default::default()
    };
    cfg.http = args
        .http
        .http
        .then(|| std::net::SocketAddr::new(args.http.http_address, args.http.http_port));
    cfg.metrics = args
        .http
        .metrics
        .then(|| std::net::SocketAddr::new(args.http.metrics_address, args.http.metrics_port));
    let rt = tokio::runtime::Handle::try_current().context("no tokio runtime")?;
    let node = rt.block_on(quasar::node::Node::start(cfg))?;
    let (chain, net) = (node.chain(), node.net());
    let head = chain.head();
    eprintln!(
        "quasar node: {} chain, head slot {} root 0x{}, peer id {}",
        chain.preset().name(),
        head.head.slot,
        hex(&head.head.root),
        net.local_peer_id()
    );
    // Print the listen addresses once bound.
    for _ in 0..50 {
        if !net.listen_addresses().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for a in net.listen_addresses() {
        eprintln!("listening on {a}");
    }
    match net.local_enr() {
        Some(enr) => eprintln!("enr {}", enr.to_base64()),
        None => eprintln!("discovery off"),
    }
    if let Some(a) = node.api_addr() {
        eprintln!("Beacon API on http://{a}");
    }
    if let Some(a) = node.metrics_addr() {
        eprintln!("metrics on http://{a}/metrics");
    }
    let mut last_report = std::time::Instant::now();
    while !signals.stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if last_report.elapsed() >= std::time::Duration::from_secs(10) {
            last_report = std::time::Instant::now();
            let s = node.sync().status();
            eprintln!(
                "slot {} of {} ({}), {} peers, {} blocks synced at {:.0} blocks/s",
                s.head_slot,
                s.target_slot,
                if s.syncing { "syncing" } else { "synced" },
                s.peers,
                s.imported,
                s.blocks_per_second
            );
            if let Some(b) = node.backfill().map(|b| b.status()) {
                if !b.complete {
                    eprintln!(
                        "backfill: oldest block at slot {} (anchor {}), {} blocks at {:.0} blocks/s",
                        b.oldest_slot, b.anchor_slot, b.imported, b.blocks_per_second
                    );
                }
            }
        }
    }
    eprintln!("stopping: goodbye to peers, finishing the batch in flight");
    if let Err(e) = rt.block_on(node.shutdown()) {
        eprintln!("range sync ended with: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

fn dev_command(args: DevArgs, signals: &Signals) -> anyhow::Result<ExitCode> {
    signals
        .graceful
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let opts = quasar::dev::DevOptions {
        preset: args.preset.parse()?,
        validators: args.validators,
        nodes: args.nodes,
        slots: args.slots,
        slot_ms: args.slot_ms,
        late_slots: args.late_slots,
        datadir: args.datadir,
    };
    // One device for every node's engines.
    let accel = accel(args.backend)?;
    let rt = tokio::runtime::Handle::try_current().context("no tokio runtime")?;
    let json = args.json;
    let mut say = |line: &str| {
        if json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };
    let summary = quasar::dev::run(
        &opts,
        &rt,
        &mut || {
            accel
                .aggregator()
                .map_err(|e| format!("--backend {}: {e}", accel.backend().name()))
        },
        &signals.stop,
        &mut say,
    )?;
    for line in summary.lines() {
        say(&line);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Run a `bench` command: its table lines on stdout, or with `--json` on stderr and the
/// report as JSON on stdout.
fn report_bench<R: serde::Serialize>(
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&str)) -> Result<R, Box<dyn std::error::Error + Send + Sync>>,
) -> anyhow::Result<()> {
    let report = run(&mut |line| {
        if json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// What SIGINT / SIGTERM do: a command that can stop cleanly sets `graceful`, and a signal
/// then raises `stop` (a second signal ends the process at once); any other command ends
/// at the first signal, as without a handler.
#[derive(Clone, Default)]
struct Signals {
    graceful: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn watch_signals(signals: Signals) {
    use std::sync::atomic::Ordering;
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install the SIGTERM/SIGINT handlers");
        return;
    };
    loop {
        let code = tokio::select! {
            _ = term.recv() => 128 + 15,
            _ = int.recv() => 128 + 2,
        };
        if signals.graceful.load(Ordering::SeqCst) && !signals.stop.swap(true, Ordering::SeqCst) {
            tracing::info!("signal received: finishing the batch in flight (again to exit now)");
            continue;
        }
        std::process::exit(code);
    }
}

/// A file of SSZ: `.ssz_snappy` is raw snappy (its declared length capped before
/// allocating), anything else plain SSZ.
fn read_ssz_file(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use quasar::types::ssz_static;
    let raw = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if file.extension().is_some_and(|e| e == "ssz_snappy") {
        ssz_static::decompress_snappy(&raw, ssz_static::MAX_DECOMPRESSED_LEN)
            .with_context(|| format!("{}: snappy", file.display()))
    } else {
        Ok(raw)
    }
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename, so
/// a crash leaves either the old file or the whole new one.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn read_text(file: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", file.display()))
}

/// The engines of a `--backend` choice; `gpu` without an adapter is an error.
fn accel(backend: Backend) -> anyhow::Result<Accel> {
    Accel::new(backend).with_context(|| format!("--backend {}", backend.name()))
}

/// The pubkey aggregator of a `--backend` choice (`auto` calibrates on its first big batch).
fn aggregator_for(backend: Backend) -> anyhow::Result<Box<dyn PubkeyAggregator>> {
    accel(backend)?
        .aggregator()
        .with_context(|| format!("--backend {}", backend.name()))
}

/// The device that keeps the state-root trees resident, if any.
type ResidentDevice = Option<std::sync::Arc<quasar::accel::device::GpuContext>>;

/// The aggregator of a `--backend` choice and, for `gpu`, the device that keeps the
/// state-root trees resident.
fn engines_for(backend: Backend) -> anyhow::Result<(Box<dyn PubkeyAggregator>, ResidentDevice)> {
    let accel = accel(backend)?;
    let agg = accel
        .aggregator()
        .with_context(|| format!("--backend {}", backend.name()))?;
    Ok((agg, accel.resident_device()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
