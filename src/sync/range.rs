//! Range sync: the slot range from our head to the best peer's head, cut into batches,
//! downloaded from several peers at once, checked, and imported in order.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

use crate::chain::any::{block_summary, BlockSummary};
use crate::chain::error::{BlockError, Fault};
use crate::chain::pipeline::{ImportError, SegmentOutcome};
use crate::chain::service::{BlockSource, ChainHandle, GossipVerdict};
use crate::net::codec::ResponseCode;
use crate::net::peer_manager::PeerAction;
use crate::net::service::{NetEvent, NetworkHandle, PeerInfo};
use crate::net::NetError;
use crate::types::Preset;

/// How range sync cuts and spreads its work.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Slots per batch (one blocks-by-range request; at most `MAX_REQUEST_BLOCKS_DENEB`).
    pub batch_slots: u64,
    /// Batches downloading at once, over all peers.
    pub max_in_flight: usize,
    /// Batches downloading at once from one peer.
    pub max_per_peer: usize,
    /// A batch not answered within this long is taken from its peer.
    pub request_timeout: Duration,
    /// How often the peers' Status is looked at again.
    pub tick: Duration,
    /// How often each peer is asked for a fresh Status (its head moves on).
    pub status_interval: Duration,
    /// How many ancestors an unknown-parent lookup fetches by root, at most.
    pub max_lookup_depth: usize,
    /// The request quotas kept to per peer, so that no peer has to rate-limit us (by
    /// default the default inbound quotas — Lighthouse's — with a margin).
    pub pacing: crate::net::rate_limit::RateLimitConfig,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_slots: 64,
            max_in_flight: 8,
            max_per_peer: 2,
            request_timeout: Duration::from_secs(30),
            tick: Duration::from_millis(500),
            status_interval: Duration::from_secs(30),
            max_lookup_depth: 8,
            pacing: pacing_quotas(),
        }
    }
}

/// Where sync stands (published after every change; the API's `node/syncing`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SyncStatus {
    /// Our head is behind the best peer's.
    pub syncing: bool,
    pub head_slot: u64,
    /// The best head slot our peers announced.
    pub target_slot: u64,
    /// Blocks imported by range sync since it started.
    pub imported: u64,
    /// `imported` over the time sync has been running while behind.
    pub blocks_per_second: f64,
    /// Peers with a Status.
    pub peers: usize,
    /// Batches downloading now.
    pub downloading: usize,
    /// Batches that failed (a bad, incomplete or late answer) and were fetched again.
    pub retried_batches: u64,
    /// Peers penalised for a batch.
    pub penalties: u64,
}

/// Why a peer lost its batch: how bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// A block that fails verification, or an answer outside the request.
    Invalid,
    /// No answer in time.
    Timeout,
}

/// Range sync as a background task.
pub struct RangeSync {
    status: watch::Receiver<SyncStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ImportError>>,
}

impl RangeSync {
    /// Start syncing `chain` from the peers of `net` (on the current tokio runtime).
    pub fn start(net: NetworkHandle, chain: ChainHandle, cfg: SyncConfig) -> Self {
        let (status_tx, status) = watch::channel(SyncStatus::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(net, chain, cfg, status_tx, stop_rx));
        RangeSync { status, stop, task }
    }

    pub fn status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.status.clone()
    }

    /// Stop: downloads in flight are dropped, segments handed to the chain settle there.
    pub async fn stop(self) -> Result<(), ImportError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| Err(ImportError::Internal(format!("sync task: {e}"))))
    }
}

enum State {
    Waiting,
    Downloading(PeerId),
    Downloaded(PeerId, Vec<Vec<u8>>),
    /// Handed to the chain (its answer comes under the generation it was sent in).
    Processing(PeerId, Vec<Vec<u8>>),
}

struct Batch {
    count: u64,
    state: State,
    /// Peers that failed this batch (avoided while others can serve it).
    tried: Vec<PeerId>,
}

enum Event {
    Downloaded {
        start: u64,
        peer: PeerId,
        result: Result<Vec<Vec<u8>>, DownloadError>,
    },
    Processed {
        start: u64,
        generation: u64,
        result: Result<SegmentOutcome, ImportError>,
    },
    /// An unknown-parent lookup ended.
    LookupDone { root: [u8; 32] },
}

/// Why a download brought no batch.
struct DownloadError {
    /// What the peer is charged.
    penalty: Option<Penalty>,
    /// The peer said it is over our quota (`ResourceUnavailable`): leave it alone a while.
    rate_limited: bool,
    reason: String,
}

/// How long a peer that answered `ResourceUnavailable` is left alone, at first (doubling
/// up to [`MAX_BACKOFF`] while it keeps refusing).
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The quotas range sync keeps to per peer: the default inbound quotas with a margin
/// (requests arrive with jitter, so a peer's bucket may see them closer together than we
/// sent them).
fn pacing_quotas() -> crate::net::rate_limit::RateLimitConfig {
    let mut q = crate::net::rate_limit::RateLimitConfig::default();
    q.blocks_by_range.max_tokens = q.blocks_by_range.max_tokens * 7 / 8;
    q
}

/// Unknown-parent lookups running at once, at most.
const MAX_LOOKUPS: usize = 4;

struct Syncer {
    net: NetworkHandle,
    chain: ChainHandle,
    cfg: SyncConfig,
    preset: Preset,
    /// Batches by first slot, in slot order; the first is the next to import.
    batches: BTreeMap<u64, Batch>,
    /// The first slot no batch covers yet.
    next_start: u64,
    peers: HashMap<PeerId, PeerInfo>,
    load: HashMap<PeerId, usize>,
    target: u64,
    /// Bumped when a refused batch sends the batches after it back to be resubmitted:
    /// their answers from before are stale.
    generation: u64,
    events: mpsc::Sender<Event>,
    status: watch::Sender<SyncStatus>,
    imported: u64,
    behind_since: Option<Instant>,
    behind_time: Duration,
    retried: u64,
    penalties: u64,
    /// Parent roots being looked up by root.
    lookups: std::collections::HashSet<[u8; 32]>,
    last_status: Instant,
    /// Our own pacing of block requests per peer: the default inbound quotas (Lighthouse's
    /// and ours), so that a peer never has to rate-limit us.
    pacing: crate::net::rate_limit::RateLimiter,
    /// Peers that refused for their quota, left alone until then (and the last wait).
    backoff: HashMap<PeerId, (Instant, Duration)>,
}

async fn run(
    net: NetworkHandle,
    chain: ChainHandle,
    cfg: SyncConfig,
    status: watch::Sender<SyncStatus>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ImportError> {
    let (events, mut rx) = mpsc::channel(64);
    let mut s = Syncer {
        pacing: crate::net::rate_limit::RateLimiter::new(cfg.pacing.clone()),
        preset: chain.preset(),
        next_start: chain.head().head.slot + 1,
        net,
        chain,
        cfg,
        batches: BTreeMap::new(),
        peers: HashMap::new(),
        load: HashMap::new(),
        target: 0,
        generation: 0,
        events,
        status,
        imported: 0,
        behind_since: None,
        behind_time: Duration::ZERO,
        retried: 0,
        penalties: 0,
        lookups: Default::default(),
        last_status: Instant::now(),
        backoff: HashMap::new(),
    };
    let mut net_events = s.net.subscribe();
    let mut tick = tokio::time::interval(s.cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = tick.tick() => s.refresh_peers().await,
            Some(ev) = rx.recv() => s.on_event(ev).await?,
            ev = net_events.recv() => match ev {
                Ok(NetEvent::GossipBlock {
                    from,
                    verdict: GossipVerdict::Ignore(BlockError::UnknownParent { parent }),
                }) => s.on_unknown_parent(from, parent),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
        s.schedule().await?;
        s.publish();
    }
}

impl Syncer {
    /// A gossip block from `from` builds on a block we do not have: the peer is ahead.
    /// Ask it for a fresh Status (range sync then covers the gap) and fetch the missing
    /// ancestors by root, a bounded number of them.
    fn on_unknown_parent(&mut self, from: PeerId, parent: [u8; 32]) {
        let net = self.net.clone();
        tokio::spawn(async move {
            let _ = net.status(from).await;
        });
        if self.lookups.len() >= MAX_LOOKUPS || !self.lookups.insert(parent) {
            return;
        }
        let net = self.net.clone();
        let chain = self.chain.clone();
        let events = self.events.clone();
        let depth = self.cfg.max_lookup_depth;
        let preset = self.preset;
        tokio::spawn(async move {
            // Walk back until a known block, then import the ancestors oldest first.
            let mut wanted = parent;
            let mut found = Vec::new();
            for _ in 0..depth {
                match chain.reader().block_by_root(&wanted) {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) => {}
                }
                let Ok(Ok(mut got)) = tokio::time::timeout(
                    Duration::from_secs(10),
                    net.blocks_by_root(from, vec![wanted]),
                )
                .await
                else {
                    break;
                };
                let Some(ssz) = got.pop() else { break };
                match block_summary(preset, &ssz) {
                    Ok(b) if b.root == wanted => {
                        wanted = b.parent_root;
                        found.push(ssz);
                    }
                    _ => break,
                }
            }
            found.reverse();
            if !found.is_empty() {
                let source = BlockSource::Peer(from.to_string());
                if let Err(e) = chain.import_segment(found, source).await {
                    tracing::debug!(%e, "unknown-parent lookup: import failed");
                }
            }
            let _ = events.send(Event::LookupDone { root: parent }).await;
        });
    }

    async fn refresh_peers(&mut self) {
        if self.last_status.elapsed() >= self.cfg.status_interval {
            self.last_status = Instant::now();
            for peer in self.peers.keys().copied().collect::<Vec<_>>() {
                let net = self.net.clone();
                tokio::spawn(async move {
                    let _ = net.status(peer).await;
                });
            }
        }
        let Ok(peers) = self.net.peers().await else {
            return;
        };
        self.peers = peers
            .into_iter()
            .filter(|p| p.status.is_some())
            .map(|p| (p.peer_id, p))
            .collect();
        let peers = &self.peers;
        self.backoff.retain(|p, _| peers.contains_key(p));
        self.pacing.prune(Instant::now());
        self.target = self
            .peers
            .values()
            .filter_map(|p| p.status.map(|s| s.head_slot))
            .max()
            .unwrap_or(0);
    }

    fn head_slot(&self) -> u64 {
        self.chain.head().head.slot
    }

    fn publish(&mut self) {
        let head_slot = self.head_slot();
        let syncing = head_slot < self.target;
        match (syncing, self.behind_since) {
            (true, None) => self.behind_since = Some(Instant::now()),
            (false, Some(t)) => {
                self.behind_time += t.elapsed();
                self.behind_since = None;
            }
            _ => {}
        }
        let behind = self.behind_time + self.behind_since.map(|t| t.elapsed()).unwrap_or_default();
        let status = SyncStatus {
            syncing,
            head_slot,
            target_slot: self.target,
            imported: self.imported,
            blocks_per_second: self.imported as f64 / behind.as_secs_f64().max(1e-3),
            peers: self.peers.len(),
            downloading: self.load.values().sum(),
            retried_batches: self.retried,
            penalties: self.penalties,
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn penalise(&mut self, peer: PeerId, penalty: Penalty, reason: &str) {
        self.penalties += 1;
        tracing::info!(%peer, ?penalty, reason, "range sync: peer penalised");
        let action = match penalty {
            Penalty::Invalid => PeerAction::LowToleranceError,
            Penalty::Timeout => PeerAction::MidToleranceError,
        };
        let net = self.net.clone();
        let reason = format!("range sync: {reason}");
        tokio::spawn(async move {
            let _ = net.report_peer(peer, action, &reason).await;
        });
    }

    /// Cut new batches up to the target, hand waiting ones to peers, submit the ready
    /// prefix to the chain.
    async fn schedule(&mut self) -> Result<(), ImportError> {
        // Our head may have moved past batches' ranges by gossip; never re-request those.
        let head = self.head_slot();
        if self.batches.is_empty() && self.next_start <= head {
            self.next_start = head + 1;
        }
        let cap = self.cfg.max_in_flight * 2;
        while self.batches.len() < cap && self.next_start <= self.target {
            let count = self
                .cfg
                .batch_slots
                .clamp(1, crate::net::messages::MAX_REQUEST_BLOCKS_DENEB as u64)
                .min(self.target + 1 - self.next_start);
            self.batches.insert(
                self.next_start,
                Batch {
                    count,
                    state: State::Waiting,
                    tried: Vec::new(),
                },
            );
            self.next_start += count;
        }
        self.assign();
        self.submit().await
    }

    fn downloading(&self) -> usize {
        self.load.values().sum()
    }

    fn assign(&mut self) {
        let waiting: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, b)| matches!(b.state, State::Waiting))
            .map(|(s, _)| *s)
            .collect();
        for start in waiting {
            if self.downloading() >= self.cfg.max_in_flight {
                return;
            }
            let now = Instant::now();
            let mut paced = Vec::new();
            let peer = loop {
                let Some(peer) = self.pick_peer(start, &paced) else {
                    break None;
                };
                let count = self.batches.get(&start).map(|b| b.count).unwrap_or(0);
                match self.pacing.allows(
                    peer,
                    crate::net::messages::Protocol::BeaconBlocksByRangeV2,
                    count,
                    now,
                ) {
                    Ok(()) => break Some(peer),
                    Err(_) => paced.push(peer),
                }
            };
            let Some(peer) = peer else {
                continue;
            };
            let batch = self.batches.get_mut(&start).expect("listed above");
            batch.state = State::Downloading(peer);
            *self.load.entry(peer).or_insert(0) += 1;
            let count = batch.count;
            let net = self.net.clone();
            let events = self.events.clone();
            let timeout = self.cfg.request_timeout;
            let preset = self.preset;
            tokio::spawn(async move {
                let result =
                    match tokio::time::timeout(timeout, net.blocks_by_range(peer, start, count))
                        .await
                    {
                        Err(_) => Err(DownloadError {
                            penalty: Some(Penalty::Timeout),
                            rate_limited: false,
                            reason: "no answer in time".into(),
                        }),
                        Ok(Err(e)) => Err(DownloadError {
                            penalty: None,
                            rate_limited: matches!(
                                e,
                                NetError::Response {
                                    code: ResponseCode::ResourceUnavailable,
                                    ..
                                }
                            ),
                            reason: e.to_string(),
                        }),
                        Ok(Ok(blocks)) => tokio::task::spawn_blocking(move || {
                            check_batch(preset, start, count, &blocks)
                                .map(|()| blocks)
                                .map_err(|reason| DownloadError {
                                    penalty: Some(Penalty::Invalid),
                                    rate_limited: false,
                                    reason,
                                })
                        })
                        .await
                        .unwrap_or_else(|e| {
                            Err(DownloadError {
                                penalty: None,
                                rate_limited: false,
                                reason: e.to_string(),
                            })
                        }),
                    };
                let _ = events
                    .send(Event::Downloaded {
                        start,
                        peer,
                        result,
                    })
                    .await;
            });
        }
    }

    /// The peer for a batch: one whose head reaches the batch, with spare capacity, that
    /// has not failed it (unless every candidate has); the least loaded first, then the
    /// best scored, then the one announcing the highest head.
    fn pick_peer(&self, start: u64, exclude: &[PeerId]) -> Option<PeerId> {
        let batch = self.batches.get(&start)?;
        let candidates: Vec<&PeerInfo> = self
            .peers
            .values()
            .filter(|p| !exclude.contains(&p.peer_id))
            .filter(|p| {
                self.backoff
                    .get(&p.peer_id)
                    .is_none_or(|(until, _)| *until <= Instant::now())
            })
            .filter(|p| p.status.is_some_and(|s| s.head_slot >= start))
            .filter(|p| self.load.get(&p.peer_id).copied().unwrap_or(0) < self.cfg.max_per_peer)
            .collect();
        let fresh: Vec<&&PeerInfo> = candidates
            .iter()
            .filter(|p| !batch.tried.contains(&p.peer_id))
            .collect();
        let pool: Vec<&PeerInfo> = if fresh.is_empty() {
            candidates
        } else {
            fresh.into_iter().copied().collect()
        };
        pool.into_iter()
            .min_by_key(|p| {
                (
                    self.load.get(&p.peer_id).copied().unwrap_or(0),
                    std::cmp::Reverse(p.score.round() as i64),
                    std::cmp::Reverse(p.status.map(|s| s.head_slot).unwrap_or(0)),
                    p.peer_id,
                )
            })
            .map(|p| p.peer_id)
    }

    /// Hand the downloaded batches that follow the ones already handed over to the chain,
    /// in slot order.
    async fn submit(&mut self) -> Result<(), ImportError> {
        let starts: Vec<u64> = self.batches.keys().copied().collect();
        for (i, start) in starts.iter().enumerate() {
            let batch = self.batches.get_mut(start).expect("listed above");
            match &batch.state {
                State::Processing(..) => continue,
                State::Downloaded(..) => {}
                State::Waiting | State::Downloading(_) => return Ok(()),
            }
            let State::Downloaded(peer, blocks) =
                std::mem::replace(&mut batch.state, State::Waiting)
            else {
                unreachable!("matched above")
            };
            let more = starts
                .get(i + 1)
                .and_then(|s| self.batches.get(s))
                .is_some_and(|b| matches!(b.state, State::Downloaded(..)));
            let reply = self
                .chain
                .submit_segment(blocks.clone(), BlockSource::Peer(peer.to_string()), more)
                .await?;
            let generation = self.generation;
            self.batches.get_mut(start).expect("listed above").state =
                State::Processing(peer, blocks);
            let events = self.events.clone();
            let start = *start;
            tokio::spawn(async move {
                let result = reply.wait().await;
                let _ = events
                    .send(Event::Processed {
                        start,
                        generation,
                        result,
                    })
                    .await;
            });
        }
        Ok(())
    }

    async fn on_event(&mut self, ev: Event) -> Result<(), ImportError> {
        match ev {
            Event::LookupDone { root } => {
                self.lookups.remove(&root);
            }
            Event::Downloaded {
                start,
                peer,
                result,
            } => {
                if let Some(n) = self.load.get_mut(&peer) {
                    *n = n.saturating_sub(1);
                }
                let Some(batch) = self.batches.get_mut(&start) else {
                    return Ok(());
                };
                if !matches!(batch.state, State::Downloading(p) if p == peer) {
                    return Ok(());
                }
                match result {
                    Ok(blocks) => {
                        batch.state = State::Downloaded(peer, blocks);
                        self.backoff.remove(&peer);
                    }
                    Err(e) => {
                        batch.state = State::Waiting;
                        batch.tried.push(peer);
                        self.retried += 1;
                        tracing::debug!(%peer, start, reason = e.reason, "range sync: batch failed");
                        if e.rate_limited {
                            let wait = self
                                .backoff
                                .get(&peer)
                                .map(|(_, w)| (*w * 2).min(MAX_BACKOFF))
                                .unwrap_or(FIRST_BACKOFF);
                            self.backoff.insert(peer, (Instant::now() + wait, wait));
                        }
                        if let Some(p) = e.penalty {
                            self.penalise(peer, p, &e.reason);
                        }
                    }
                }
            }
            Event::Processed {
                start,
                generation,
                result,
            } => {
                if generation != self.generation {
                    return Ok(());
                }
                let outcome = result?;
                let Some(batch) = self.batches.get(&start) else {
                    return Ok(());
                };
                let State::Processing(peer, ..) = batch.state else {
                    return Ok(());
                };
                self.imported += outcome.imported as u64;
                match outcome.failed {
                    None => {
                        self.batches.remove(&start);
                    }
                    Some(failed) => match failed.fault() {
                        Fault::Node => return Err(ImportError::InvalidBlock(failed)),
                        Fault::Peer => {
                            let reason = format!("block at slot {}: {}", failed.slot, failed.error);
                            self.penalise(peer, Penalty::Invalid, &reason);
                            self.retry_from(start, Some(peer));
                        }
                        Fault::Nobody => {
                            // Its parent is not known: an earlier batch came back without
                            // its last blocks, or our head moved. Start again from the head.
                            tracing::info!(
                                start,
                                error = %failed.error,
                                "range sync: batch does not attach; restarting from the head"
                            );
                            self.retried += 1;
                            self.generation += 1;
                            self.batches.clear();
                            self.next_start = self.head_slot() + 1;
                        }
                    },
                }
            }
        }
        Ok(())
    }

    /// The batch at `start` is to be downloaded again (from another peer than `bad`); the
    /// batches after it that were handed to the chain go back to be resubmitted.
    fn retry_from(&mut self, start: u64, bad: Option<PeerId>) {
        self.retried += 1;
        self.generation += 1;
        if let Some(b) = self.batches.get_mut(&start) {
            b.state = State::Waiting;
            if let Some(p) = bad {
                b.tried.push(p);
            }
        }
        for (_, b) in self.batches.range_mut(start + 1..) {
            if let State::Processing(peer, blocks) = &mut b.state {
                b.state = State::Downloaded(*peer, std::mem::take(blocks));
            }
        }
    }
}

/// A batch as it must be before the chain sees it: every block decodes, its slot is
/// inside `[start, start + count)` and above the previous one's, and each block's parent
/// is the previous block.
pub fn check_batch(
    preset: Preset,
    start: u64,
    count: u64,
    blocks: &[Vec<u8>],
) -> Result<(), String> {
    if blocks.len() as u64 > count {
        return Err(format!("{} blocks for {count} slots", blocks.len()));
    }
    let mut prev: Option<BlockSummary> = None;
    for (i, ssz) in blocks.iter().enumerate() {
        let b = block_summary(preset, ssz).map_err(|e| format!("block {i}: {e}"))?;
        if b.slot < start || b.slot >= start.saturating_add(count) {
            return Err(format!(
                "block {i} at slot {}, outside [{start}, {})",
                b.slot,
                start + count
            ));
        }
        if let Some(p) = prev {
            if b.slot <= p.slot {
                return Err(format!(
                    "block {i} at slot {} after slot {}",
                    b.slot, p.slot
                ));
            }
            if b.parent_root != p.root {
                return Err(format!(
                    "block {i} at slot {} does not build on the one before",
                    b.slot
                ));
            }
        }
        prev = Some(b);
    }
    Ok(())
}
