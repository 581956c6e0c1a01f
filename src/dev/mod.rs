//! `quasar dev`: a live devnet on 127.0.0.1, in one process.
//!
//! ```text
//!  node 0 (producer)            genesis at now + δ; each slot, at its start: the block
//!   interop validators   ──▶    (Generator: last slot's full-participation attestation,
//!   (every key)                 full sync aggregate), imported by its own chain and
//!                               published on `beacon_block`; at 2/3 of the slot: per
//!                               committee, a SignedAggregateAndProof from every member the
//!                               spec's selection picks, on `beacon_aggregate_and_proof`
//!  nodes 1 … N-1 (late)         started at slot --late-slots, booted from the producer and
//!                               every late node before them: range sync from all their
//!                               peers, then the head by gossip (blocks imported, aggregates
//!                               validated by the spec's rules)
//! ```
//!
//! Every node is a whole [`Node`] (its own datadir, chain, network, keys): they share only
//! the tokio runtime. A line per slot or two reports each node's head, peers and sync; at
//! the end a [`DevSummary`] says whether all heads are equal, the finalized epoch, each
//! late node's range-sync speed and the aggregates published and accepted.
//!
//! The producer's work (signing, the transition) runs on its own thread, the nodes' on
//! theirs; the caller's thread only starts nodes and watches them, so [`run`] must be
//! called outside the runtime's async workers (it blocks on the runtime's handle).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::accel::aggregate::PubkeyAggregator;
use crate::bls::to_hex;
use crate::chain::service::{BlockSource, GossipVerdict};
use crate::devnet::{DevnetError, InteropKeys};
use crate::net::gossip::GossipKind;
use crate::net::service::NetEvent;
use crate::node::{Node, NodeConfig, NodeError};
use crate::sync::{SyncConfig, SyncStatus};
use crate::transition::ChainConfig;
use crate::types::Preset;

/// How long before genesis the producer's chain starts (keys, genesis and node 0 must be
/// ready by then).
const GENESIS_DELAY_MS: u64 = 2_000;
/// After the last slot, how many slots the nodes get to import its block before the
/// summary is taken (it is taken earlier once every head is the producer's).
const SETTLE_SLOTS: u64 = 4;

/// What `quasar dev` runs.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub preset: Preset,
    /// Interop validators, all run by the producer.
    pub validators: usize,
    /// Nodes in all: the producer and `nodes - 1` late nodes (at least one).
    pub nodes: usize,
    /// Slots produced (a block at each slot `1..=slots`).
    pub slots: u64,
    /// The chain config's `SLOT_DURATION_MS`.
    pub slot_ms: u64,
    /// The late nodes start at the start of this slot.
    pub late_slots: u64,
    /// Where the nodes' datadirs go (`D/node-<i>`); `None`: a temporary folder, removed at
    /// the end.
    pub datadir: Option<PathBuf>,
}

impl Default for DevOptions {
    /// The built-in default: minimal preset, 64 validators, 3 nodes, 40 slots of 1 s (the
    /// chain finalizes epoch 3 at slot 40), the late nodes 16 slots (two epochs) late.
    fn default() -> Self {
        DevOptions {
            preset: Preset::Minimal,
            validators: 64,
            nodes: 3,
            slots: 40,
            slot_ms: 1000,
            late_slots: 16,
            datadir: None,
        }
    }
}

/// Why the devnet did not run (a devnet that ran but ended wrong is a [`DevSummary`] with
/// problems).
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("bad dev parameters: {0}")]
    Params(String),
    #[error("devnet: {0}")]
    Devnet(#[from] DevnetError),
    #[error("node {index}: {source}")]
    Node {
        index: usize,
        source: Box<NodeError>,
    },
    #[error("aggregator: {0}")]
    Aggregator(String),
    #[error("producer: {0}")]
    Producer(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The producer's counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProducerSummary {
    /// Blocks produced and imported by the producer's chain.
    pub blocks: u64,
    /// Blocks published on gossip (the rest had no peer to go to).
    pub blocks_published: u64,
    /// `SignedAggregateAndProof`s made (one per selected aggregator per committee).
    pub aggregates: u64,
    /// Of those, published on gossip.
    pub aggregates_published: u64,
    /// Committees in which no member was selected (nothing to publish for them).
    pub committees_without_aggregator: u64,
}

/// Range sync of a late node.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RangeSyncSummary {
    /// Blocks imported by range sync.
    pub imported: u64,
    /// Range sync's blocks/s while it was behind.
    pub blocks_per_second: f64,
    /// Batches fetched again after a bad or late answer.
    pub retried_batches: u64,
    /// The producer's head slot when this node first had the producer's head.
    pub caught_up_at_slot: Option<u64>,
    /// Seconds from the node's start to then.
    pub caught_up_after_s: Option<f64>,
}

/// What gossip brought a node.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GossipSummary {
    pub blocks_accepted: u64,
    pub blocks_ignored: u64,
    pub blocks_rejected: u64,
    pub aggregates_accepted: u64,
    /// IGNOREd aggregates: mostly a second aggregator's copy of a committee's aggregate
    /// (a superset was already seen), or one for a block not imported yet.
    pub aggregates_ignored: u64,
    pub aggregates_rejected: u64,
    /// Why the first rejected blocks or aggregates were rejected (at most 8).
    pub rejections: Vec<String>,
}

/// One node at the end.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeSummary {
    pub index: usize,
    /// `producer` or `late`.
    pub role: &'static str,
    /// The slot at whose start it was started.
    pub start_slot: u64,
    pub head_slot: u64,
    pub head_root: String,
    pub justified_epoch: u64,
    pub finalized_epoch: u64,
    pub peers: usize,
    /// Late nodes only.
    pub range_sync: Option<RangeSyncSummary>,
    pub gossip: GossipSummary,
    /// The node whose Beacon API this node was checkpoint-synced from (`--checkpoint-sync-url`).
    pub checkpoint_sync_from: Option<usize>,
    /// The slot of the anchor the store starts at (0: genesis).
    pub anchor_slot: u64,
    /// Backfill below the checkpoint anchor (checkpoint-synced nodes only).
    pub backfill: Option<crate::sync::backfill::BackfillStatus>,
}

/// How the devnet ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DevSummary {
    pub preset: &'static str,
    pub validators: usize,
    pub slots: u64,
    pub slot_ms: u64,
    pub late_slots: u64,
    /// From the start of the command to the summary.
    pub elapsed_s: f64,
    /// Every node ended on the same head block.
    pub heads_equal: bool,
    pub head_slot: u64,
    pub head_root: String,
    /// The lowest finalized epoch over the nodes.
    pub finalized_epoch: u64,
    /// The lowest justified epoch over the nodes.
    pub justified_epoch: u64,
    pub producer: ProducerSummary,
    /// Aggregates accepted on gossip, summed over the late nodes.
    pub aggregates_accepted: u64,
    pub nodes: Vec<NodeSummary>,
    /// What went wrong (empty: all heads equal and every late node caught up).
    pub problems: Vec<String>,
}

impl DevSummary {
    /// All heads equal and every late node caught up.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The summary as text lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "summary: {} nodes, {} preset, {} validators, {} slots of {} ms in {:.1} s",
            self.nodes.len(),
            self.preset,
            self.validators,
            self.slots,
            self.slot_ms,
            self.elapsed_s
        )];
        out.push(format!(
            "  heads: {} (slot {} root {})",
            if self.heads_equal {
                "all equal"
            } else {
                "DIFFER"
            },
            self.head_slot,
            self.head_root
        ));
        out.push(format!(
            "  finality: justified epoch {}, finalized epoch {}",
            self.justified_epoch, self.finalized_epoch
        ));
        let p = &self.producer;
        out.push(format!(
            "  producer: {} blocks ({} published), {} aggregates ({} published, {} committees without an aggregator), {} accepted by the late nodes",
            p.blocks,
            p.blocks_published,
            p.aggregates,
            p.aggregates_published,
            p.committees_without_aggregator,
            self.aggregates_accepted
        ));
        for n in &self.nodes {
            let mut line = format!(
                "  node {} ({}, from slot {}): head {} {}, finalized {}, {} peers",
                n.index,
                n.role,
                n.start_slot,
                n.head_slot,
                short(&n.head_root),
                n.finalized_epoch,
                n.peers
            );
            if let Some(from) = n.checkpoint_sync_from {
                line.push_str(&format!(
                    "; checkpoint-synced from node {from}'s API at slot {}",
                    n.anchor_slot
                ));
                if let Some(b) = &n.backfill {
                    line.push_str(&format!(
                        ", backfilled {} blocks to slot {}{}",
                        b.imported,
                        b.oldest_slot,
                        if b.complete { " (genesis)" } else { "" }
                    ));
                }
            }
            if let Some(s) = &n.range_sync {
                line.push_str(&format!(
                    "; range sync {} blocks at {:.1} blocks/s, caught up {}",
                    s.imported,
                    s.blocks_per_second,
                    match (s.caught_up_at_slot, s.caught_up_after_s) {
                        (Some(slot), Some(t)) => format!("at slot {slot} ({t:.1} s after start)"),
                        _ => "NEVER".into(),
                    }
                ));
                let g = &n.gossip;
                line.push_str(&format!(
                    "; gossip blocks {} accepted, aggregates {} accepted / {} ignored / {} rejected",
                    g.blocks_accepted,
                    g.aggregates_accepted,
                    g.aggregates_ignored,
                    g.aggregates_rejected
                ));
                for r in &g.rejections {
                    line.push_str(&format!("\n    rejected: {r}"));
                }
            }
            out.push(line);
        }
        if self.problems.is_empty() {
            out.push("  ok".into());
        }
        for p in &self.problems {
            out.push(format!("  PROBLEM: {p}"));
        }
        out
    }
}

fn short(root: &str) -> &str {
    &root[..root.len().min(12)]
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sleep until Unix time `at_ms` (or `stop`); false when stopped.
fn sleep_until(at_ms: u64, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = unix_ms();
        if now >= at_ms {
            return true;
        }
        std::thread::sleep(Duration::from_millis((at_ms - now).min(50)));
    }
}

/// Counters a node's network events feed.
#[derive(Default)]
struct GossipCounters {
    blocks: [AtomicU64; 3],
    aggregates: [AtomicU64; 3],
    /// The first rejections' reasons.
    rejections: std::sync::Mutex<Vec<String>>,
}

/// Rejection reasons kept per node for the summary.
const KEPT_REJECTIONS: usize = 8;

impl GossipCounters {
    fn count(&self, which: &[AtomicU64; 3], v: &GossipVerdict) {
        let i = match v.acceptance() {
            crate::chain::service::GossipAcceptance::Accept => 0,
            crate::chain::service::GossipAcceptance::Ignore => 1,
            crate::chain::service::GossipAcceptance::Reject => 2,
        };
        which[i].fetch_add(1, Ordering::Relaxed);
        if let GossipVerdict::Reject(e) | GossipVerdict::Invalid(e) = v {
            let mut kept = self.rejections.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() < KEPT_REJECTIONS {
                kept.push(e.to_string());
            }
        }
    }

    fn summary(&self) -> GossipSummary {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GossipSummary {
            blocks_accepted: g(&self.blocks[0]),
            blocks_ignored: g(&self.blocks[1]),
            blocks_rejected: g(&self.blocks[2]),
            aggregates_accepted: g(&self.aggregates[0]),
            aggregates_ignored: g(&self.aggregates[1]),
            aggregates_rejected: g(&self.aggregates[2]),
            rejections: self
                .rejections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// The producer thread's counters.
#[derive(Default)]
struct ProducerCounters {
    blocks: AtomicU64,
    blocks_published: AtomicU64,
    aggregates: AtomicU64,
    aggregates_published: AtomicU64,
    committees_without_aggregator: AtomicU64,
    /// The last slot produced.
    slot: AtomicU64,
    done: AtomicBool,
}

impl ProducerCounters {
    fn summary(&self) -> ProducerSummary {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProducerSummary {
            blocks: g(&self.blocks),
            blocks_published: g(&self.blocks_published),
            aggregates: g(&self.aggregates),
            aggregates_published: g(&self.aggregates_published),
            committees_without_aggregator: g(&self.committees_without_aggregator),
        }
    }
}

/// A late node's plan: when it starts, whom it boots from, and whose API it takes its
/// checkpoint anchor from (if any).
#[derive(Debug, Clone)]
struct Plan {
    start_slot: u64,
    boot_from: Vec<usize>,
    checkpoint_from: Option<usize>,
}

/// A started node and what the summary needs of it.
struct Running {
    index: usize,
    plan: Plan,
    node: Node,
    started: Instant,
    gossip: Arc<GossipCounters>,
    counter_task: tokio::task::JoinHandle<()>,
    caught_up: Option<(u64, f64)>,
    /// Range sync's status when it first caught up (its blocks/s then).
    sync_at_catch_up: Option<SyncStatus>,
}

/// The sync config of the dev nodes: small batches so that a short chain is still spread
/// over several peers, Status asked for every two slots (the head moves every slot).
fn dev_sync_config(slot_ms: u64) -> SyncConfig {
    SyncConfig {
        batch_slots: 8,
        max_per_peer: 1,
        tick: Duration::from_millis(100),
        status_interval: Duration::from_millis((2 * slot_ms).max(500)),
        request_timeout: Duration::from_secs(10),
        ..SyncConfig::default()
    }
}

fn check(opts: &DevOptions) -> Result<(), DevError> {
    let bad = |m: &str| Err(DevError::Params(m.into()));
    if opts.validators == 0 {
        return bad("--validators must be at least 1");
    }
    if opts.nodes < 2 {
        return bad("--nodes must be at least 2 (the producer and a late node)");
    }
    if opts.slots == 0 {
        return bad("--slots must be at least 1");
    }
    if opts.slot_ms < 100 {
        return bad("--slot-ms must be at least 100");
    }
    if opts.late_slots >= opts.slots {
        return bad("--late-slots must be below --slots");
    }
    Ok(())
}

/// Where the node datadirs go, and whether to remove them at the end.
fn datadirs(opts: &DevOptions) -> Result<(PathBuf, bool), DevError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DevError::Io { path, source }
    };
    match &opts.datadir {
        Some(d) => {
            if d.join("node-0").exists() {
                return Err(DevError::Params(format!(
                    "{} already holds a devnet (node-0): each run makes a new genesis, give an empty folder",
                    d.display()
                )));
            }
            std::fs::create_dir_all(d).map_err(io(d))?;
            Ok((d.clone(), false))
        }
        None => {
            let d = std::env::temp_dir().join(format!(
                "quasar-dev-{}-{}",
                std::process::id(),
                unix_ms()
            ));
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            Ok((d, true))
        }
    }
}

/// Run the devnet of `opts` to its end (or to `stop`) and summarise it. `new_aggregator`
/// gives each node its pubkey aggregation backend; `progress` receives the running lines.
/// Blocks on `rt`: call it from a thread outside the runtime's async workers.
pub fn run(
    opts: &DevOptions,
    rt: &tokio::runtime::Handle,
    new_aggregator: &mut dyn FnMut() -> Result<Box<dyn PubkeyAggregator>, String>,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<DevSummary, DevError> {
    check(opts)?;
    let t0 = Instant::now();
    let (root_dir, remove) = datadirs(opts)?;
    let out = run_in(opts, rt, new_aggregator, stop, progress, &root_dir, t0);
    if remove {
        let _ = std::fs::remove_dir_all(&root_dir);
    }
    out
}

fn run_in(
    opts: &DevOptions,
    rt: &tokio::runtime::Handle,
    new_aggregator: &mut dyn FnMut() -> Result<Box<dyn PubkeyAggregator>, String>,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
    root_dir: &Path,
    t0: Instant,
) -> Result<DevSummary, DevError> {
    let mut cfg = match opts.preset {
        Preset::Minimal => ChainConfig::minimal(),
        Preset::Mainnet => ChainConfig::mainnet(),
    };
    cfg.slot_duration_ms = opts.slot_ms;
    let keys = InteropKeys::generate(opts.validators)?;
    // Genesis a moment from now, on a whole second (the state's genesis_time is seconds).
    let genesis_time = (unix_ms() + GENESIS_DELAY_MS).div_ceil(1000);
    let genesis_ms = genesis_time * 1000;
    let slot_start_ms = |slot: u64| genesis_ms + slot * opts.slot_ms;
    let (genesis, producer) = crate::devnet::live_producer(opts.preset, &keys, &cfg, genesis_time)?;

    // Node 0, the producer (its Beacon API serves the late nodes' checkpoint sync).
    let aggregator = |f: &mut dyn FnMut() -> Result<Box<dyn PubkeyAggregator>, String>| {
        f().map_err(DevError::Aggregator)
    };
    let node_config = |index: usize, agg: Box<dyn PubkeyAggregator>| {
        let mut c = NodeConfig::local(
            root_dir.join(format!("node-{index}")),
            Some(genesis.clone()),
            agg,
        );
        c.chain_config = Some(cfg.clone());
        c.sync = dev_sync_config(opts.slot_ms);
        c
    };
    let mut c0 = node_config(0, aggregator(new_aggregator)?);
    c0.http = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let producer_plan = Plan {
        start_slot: 0,
        boot_from: Vec::new(),
        checkpoint_from: None,
    };
    let mut nodes = vec![start_node(rt, 0, producer_plan, c0)?];
    let api0 = nodes[0].node.api_addr();
    progress(&format!(
        "quasar dev: {} preset, {} validators, {} nodes, {} slots of {} ms; genesis in {:.1} s; late nodes from slot {}",
        opts.preset.name(),
        opts.validators,
        opts.nodes,
        opts.slots,
        opts.slot_ms,
        genesis_ms.saturating_sub(unix_ms()) as f64 / 1000.0,
        opts.late_slots
    ));
    progress(&format!(
        "node 0 (producer): {}{}",
        nodes[0]
            .node
            .net()
            .listen_addresses()
            .first()
            .map_or("-".into(), |a| a.to_string()),
        api0.map_or(String::new(), |a| format!(", Beacon API http://{a}"))
    ));

    // The late nodes' plans: each boots from the producer and every late node before it;
    // the last one (of three or more nodes) is checkpoint-synced from the producer's API.
    // It starts once the producer has finalized an epoch past genesis (with full
    // participation epoch 2 is final from the first block of epoch 4, as justification
    // starts at the end of epoch 2: the slot after that block), if the devnet runs that
    // long.
    let checkpoint_slot = opts
        .late_slots
        .max(4 * crate::chain::any::slots_per_epoch(opts.preset) + 1);
    let plans: Vec<Plan> = (1..opts.nodes)
        .map(|i| {
            let checkpoint = opts.nodes >= 3 && i == opts.nodes - 1 && checkpoint_slot < opts.slots;
            Plan {
                start_slot: if checkpoint {
                    checkpoint_slot
                } else {
                    opts.late_slots
                },
                boot_from: (0..i).collect(),
                checkpoint_from: checkpoint.then_some(0),
            }
        })
        .collect();

    let counters = Arc::new(ProducerCounters::default());
    let report_every = if opts.slot_ms >= 1000 { 1 } else { 2 };
    let result = std::thread::scope(|scope| -> Result<(), DevError> {
        let chain0 = nodes[0].node.chain().clone();
        let net0 = nodes[0].node.net().clone();
        let producer_counters = counters.clone();
        let slots = opts.slots;
        let slot_ms = opts.slot_ms;
        let producer_thread = std::thread::Builder::new()
            .name("quasar-dev-producer".into())
            .spawn_scoped(scope, move || {
                let out = produce(
                    producer,
                    &chain0,
                    &net0,
                    rt,
                    slots,
                    slot_ms,
                    genesis_ms,
                    stop,
                    &producer_counters,
                );
                producer_counters.done.store(true, Ordering::SeqCst);
                out
            })
            .map_err(|e| DevError::Producer(format!("thread: {e}")))?;

        let mut next_plan = 0;
        let mut next_report = 1u64;
        let mut settle_until: Option<u64> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let now = unix_ms();
            let clock_slot = now.saturating_sub(genesis_ms) / opts.slot_ms;
            // Start the late nodes whose slot has come.
            while next_plan < plans.len()
                && now >= genesis_ms
                && clock_slot >= plans[next_plan].start_slot
            {
                let plan = plans[next_plan].clone();
                let index = next_plan + 1;
                let mut c = node_config(index, aggregator(new_aggregator)?);
                c.network.boot_nodes = plan
                    .boot_from
                    .iter()
                    .flat_map(|&b| nodes[b].node.net().listen_addresses())
                    .collect();
                if let Some(from) = plan.checkpoint_from {
                    c.checkpoint_sync_url =
                        nodes[from].node.api_addr().map(|a| format!("http://{a}"));
                    // Its anchor comes from the API: the genesis only names the chain.
                }
                let r = start_node(rt, index, plan, c)?;
                progress(&format!(
                    "slot {clock_slot}: node {index} (late) started, booting from {:?}{}",
                    r.plan.boot_from,
                    r.plan.checkpoint_from.map_or(String::new(), |f| format!(
                        "; checkpoint-synced from node {f}'s API, anchored at slot {}",
                        r.node.chain().head().anchor_slot
                    ))
                ));
                nodes.push(r);
                next_plan += 1;
            }
            // Catch-up: the first time a late node holds the producer's head.
            let head0 = nodes[0].node.chain().head();
            for r in nodes.iter_mut().skip(1) {
                if r.caught_up.is_none() {
                    let h = r.node.chain().head();
                    if h.head.root == head0.head.root && head0.head.slot >= r.plan.start_slot {
                        r.caught_up = Some((head0.head.slot, r.started.elapsed().as_secs_f64()));
                        r.sync_at_catch_up = Some(r.node.sync().status());
                    }
                }
            }
            // Mid-slot: the slot's block has spread, its aggregates are not out yet.
            if now >= slot_start_ms(next_report) + opts.slot_ms / 2 {
                progress(&status_line(rt, next_report, &nodes));
                next_report = clock_slot.max(next_report) + report_every;
            }
            let produced = counters.done.load(Ordering::SeqCst);
            if produced {
                let until =
                    *settle_until.get_or_insert(slot_start_ms(opts.slots + 1 + SETTLE_SLOTS));
                let all_equal = nodes.len() == opts.nodes
                    && nodes
                        .iter()
                        .all(|r| r.node.chain().head().head.root == head0.head.root);
                let backfilled = nodes
                    .iter()
                    .all(|r| r.node.backfill().is_none_or(|b| b.status().complete));
                if (all_equal && backfilled) || now >= until {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        producer_thread
            .join()
            .map_err(|_| DevError::Producer("the producer thread panicked".into()))?
    });

    let summary = summarise(opts, rt, &nodes, &counters, t0);
    for r in nodes.into_iter().rev() {
        r.counter_task.abort();
        let _ = rt.block_on(r.node.shutdown());
    }
    result?;
    Ok(summary)
}

fn start_node(
    rt: &tokio::runtime::Handle,
    index: usize,
    plan: Plan,
    cfg: NodeConfig,
) -> Result<Running, DevError> {
    let node = rt
        .block_on(Node::start(cfg))
        .map_err(|source| DevError::Node {
            index,
            source: Box::new(source),
        })?;
    let gossip = Arc::new(GossipCounters::default());
    let mut events = node.net().subscribe();
    let g = gossip.clone();
    let counter_task = rt.spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(NetEvent::GossipBlock { verdict, .. }) => g.count(&g.blocks, &verdict),
                Ok(NetEvent::Gossip {
                    kind: Some(GossipKind::BeaconAggregateAndProof),
                    verdict,
                    ..
                }) => g.count(&g.aggregates, &verdict),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
    // Wait until it listens, so the next nodes can boot from it.
    let t = Instant::now();
    while node.net().listen_addresses().is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Running {
        index,
        plan,
        node,
        started: Instant::now(),
        gossip,
        counter_task,
        caught_up: None,
        sync_at_catch_up: None,
    })
}

/// The producer: a block at each slot's start, imported and published; the slot's
/// aggregates at two thirds of it.
#[allow(clippy::too_many_arguments)]
fn produce(
    mut producer: Box<dyn crate::devnet::LiveProducer + '_>,
    chain: &crate::chain::service::ChainHandle,
    net: &crate::net::service::NetworkHandle,
    rt: &tokio::runtime::Handle,
    slots: u64,
    slot_ms: u64,
    genesis_ms: u64,
    stop: &AtomicBool,
    counters: &ProducerCounters,
) -> Result<(), DevError> {
    for slot in 1..=slots {
        let start = genesis_ms + slot * slot_ms;
        if !sleep_until(start, stop) {
            return Ok(());
        }
        let (block_slot, ssz) = producer.next_block_ssz()?;
        debug_assert_eq!(block_slot, slot);
        let outcome = chain
            .blocking_submit_segment(vec![ssz.clone()], BlockSource::Local, false)
            .and_then(|r| r.blocking_wait())
            .map_err(|e| DevError::Producer(format!("slot {slot}: import: {e}")))?;
        if let Some(f) = outcome.failed {
            return Err(DevError::Producer(format!(
                "slot {slot}: its own block was refused: {f:?}"
            )));
        }
        counters.blocks.fetch_add(1, Ordering::Relaxed);
        counters.slot.store(slot, Ordering::Relaxed);
        // No peer yet (before the late nodes) is no error: they sync it by range.
        if rt.block_on(net.publish_block(ssz)).is_ok() {
            counters.blocks_published.fetch_add(1, Ordering::Relaxed);
        }
        if !sleep_until(start + slot_ms * 2 / 3, stop) {
            return Ok(());
        }
        let aggregates = producer.head_aggregates_ssz()?;
        let with_aggregator: std::collections::HashSet<u64> =
            aggregates.iter().map(|a| a.committee).collect();
        let committees = producer_committees(chain);
        counters.committees_without_aggregator.fetch_add(
            committees.saturating_sub(with_aggregator.len() as u64),
            Ordering::Relaxed,
        );
        for a in aggregates {
            counters.aggregates.fetch_add(1, Ordering::Relaxed);
            if rt
                .block_on(net.publish(GossipKind::BeaconAggregateAndProof, a.ssz))
                .is_ok()
            {
                counters
                    .aggregates_published
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// The committees per slot at the producer's head.
fn producer_committees(chain: &crate::chain::service::ChainHandle) -> u64 {
    use crate::chain::service::AnyState;
    match &chain.head().state {
        AnyState::Minimal(s) => crate::transition::minimal::get_committee_count_per_slot(
            s,
            crate::transition::minimal::compute_epoch_at_slot(s.slot),
        ),
        AnyState::Mainnet(s) => crate::transition::mainnet::get_committee_count_per_slot(
            s,
            crate::transition::mainnet::compute_epoch_at_slot(s.slot),
        ),
    }
}

/// `slot 17 | n0 17 2p | n1 17 2p synced 16 blk 212/s | n2 12 2p syncing 12/17`.
fn status_line(rt: &tokio::runtime::Handle, slot: u64, nodes: &[Running]) -> String {
    let mut line = format!("slot {slot:>3}");
    for r in nodes {
        let h = r.node.chain().head();
        let peers = rt
            .block_on(r.node.net().peers())
            .map(|p| p.len())
            .unwrap_or(0);
        line.push_str(&format!(
            " | n{} head {:>3} fin {} {}p",
            r.index, h.head.slot, h.finalized.epoch, peers
        ));
        if r.index > 0 {
            let s = r.node.sync().status();
            if s.syncing {
                line.push_str(&format!(" syncing {}/{}", s.head_slot, s.target_slot));
            } else {
                line.push_str(" synced");
            }
            line.push_str(&format!(" {} blk {:.0}/s", s.imported, s.blocks_per_second));
        }
    }
    line
}

fn summarise(
    opts: &DevOptions,
    rt: &tokio::runtime::Handle,
    nodes: &[Running],
    counters: &ProducerCounters,
    t0: Instant,
) -> DevSummary {
    let head0 = nodes[0].node.chain().head();
    let mut problems = Vec::new();
    let mut summaries = Vec::new();
    for r in nodes {
        let h = r.node.chain().head();
        let peers = rt
            .block_on(r.node.net().peers())
            .map(|p| p.len())
            .unwrap_or(0);
        let range_sync = (r.index > 0).then(|| {
            let now = r.node.sync().status();
            let at = r.sync_at_catch_up.clone().unwrap_or_else(|| now.clone());
            RangeSyncSummary {
                imported: now.imported,
                blocks_per_second: at.blocks_per_second,
                retried_batches: now.retried_batches,
                caught_up_at_slot: r.caught_up.map(|c| c.0),
                caught_up_after_s: r.caught_up.map(|c| c.1),
            }
        });
        if r.index > 0 && r.caught_up.is_none() {
            problems.push(format!(
                "node {} never caught up with the producer (head slot {}, producer {})",
                r.index, h.head.slot, head0.head.slot
            ));
        }
        if let Some(b) = r.node.backfill().map(|b| b.status()) {
            if !b.complete {
                problems.push(format!(
                    "node {} did not backfill to genesis (oldest block at slot {})",
                    r.index, b.oldest_slot
                ));
            }
        }
        if h.head.root != head0.head.root {
            problems.push(format!(
                "node {} ends on head slot {} {}, the producer on slot {} {}",
                r.index,
                h.head.slot,
                short(&to_hex(&h.head.root)),
                head0.head.slot,
                short(&to_hex(&head0.head.root))
            ));
        }
        summaries.push(NodeSummary {
            index: r.index,
            role: if r.index == 0 { "producer" } else { "late" },
            start_slot: r.plan.start_slot,
            head_slot: h.head.slot,
            head_root: to_hex(&h.head.root),
            justified_epoch: h.justified.epoch,
            finalized_epoch: h.finalized.epoch,
            peers,
            range_sync,
            gossip: r.gossip.summary(),
            checkpoint_sync_from: r.plan.checkpoint_from,
            anchor_slot: h.anchor_slot,
            backfill: r.node.backfill().map(|b| b.status()),
        });
    }
    if nodes.len() < opts.nodes {
        problems.push(format!(
            "only {} of {} nodes were started (stopped early)",
            nodes.len(),
            opts.nodes
        ));
    }
    let producer = counters.summary();
    if producer.blocks < opts.slots {
        problems.push(format!(
            "the producer made {} of {} blocks (stopped early)",
            producer.blocks, opts.slots
        ));
    }
    let heads_equal = summaries
        .iter()
        .all(|n| n.head_root == summaries[0].head_root);
    DevSummary {
        preset: opts.preset.name(),
        validators: opts.validators,
        slots: opts.slots,
        slot_ms: opts.slot_ms,
        late_slots: opts.late_slots,
        elapsed_s: t0.elapsed().as_secs_f64(),
        heads_equal,
        head_slot: head0.head.slot,
        head_root: to_hex(&head0.head.root),
        finalized_epoch: summaries
            .iter()
            .map(|n| n.finalized_epoch)
            .min()
            .unwrap_or(0),
        justified_epoch: summaries
            .iter()
            .map(|n| n.justified_epoch)
            .min()
            .unwrap_or(0),
        aggregates_accepted: summaries
            .iter()
            .skip(1)
            .map(|n| n.gossip.aggregates_accepted)
            .sum(),
        producer,
        nodes: summaries,
        problems,
    }
}
