//! Backfill: after a checkpoint sync, the blocks older than the anchor, fetched backwards
//! by range down to genesis, in the background.
//!
//! ```text
//!   oldest block held (slot O, parent root P)  ── the store's `OldestBlock` record
//!        │
//!   blocks_by_range [O − 64, O) from a peer holding them (Status v2's
//!        │           `earliest_available_slot`), picked by load, then score
//!        ▼
//!   checked: each decodes, slots ascending inside the window; the newest one's root is P,
//!            each one's parent the one before; the proposer signatures of the batch in
//!            ONE blst batch (keys and fork from the anchor state)
//!        │ bad: the peer is reported, the window asked of another peer
//!        ▼
//!   ChainHandle::backfill: the blocks, their roots at their slots and the new oldest
//!   block (its slot, its parent) in one atomic write — restarts resume from there
//! ```
//!
//! It ends when the oldest block's parent is the zero root: the genesis block (slot 0) is
//! held. (A node anchored at genesis serves its genesis block by range; it is checked by
//! root like every other block, and has no signature to check.) An answer with no blocks
//! moves the window down in memory only (the slots may be empty); if a later answer does
//! not link, the empty answers may have hidden blocks, so the window goes back to the
//! oldest block held and other peers are asked.
//!
//! One batch is in flight at a time: each batch's check needs the root the batch above it
//! ends with, and backfill must not take bandwidth from range sync, which follows the head.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use blst::min_pk::PublicKey;
use libp2p::PeerId;
use serde::Serialize;
use tokio::sync::watch;

use crate::bls::sets::ResolvedSet;
use crate::bls::{parse_pubkey, parse_signature};
use crate::chain::pipeline::ImportError;
use crate::chain::service::{AnyState, ChainHandle, StoredBlock};
use crate::chain::{Anchor, OldestBlock, META_ANCHOR};
use crate::net::codec::ResponseCode;
use crate::net::messages::Protocol;
use crate::net::peer_manager::PeerAction;
use crate::net::service::{NetworkHandle, PeerInfo};
use crate::net::NetError;
use crate::types::ssz::SszDecode;
use crate::types::Preset;

use super::SyncConfig;

type Root = [u8; 32];

/// Where backfill stands (published after every change).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BackfillStatus {
    /// Every block down to genesis is held.
    pub complete: bool,
    /// The anchor's slot (where backfill started).
    pub anchor_slot: u64,
    /// The oldest block held.
    pub oldest_slot: u64,
    /// Blocks written since this run started.
    pub imported: u64,
    /// `imported` over the time this run has been going.
    pub blocks_per_second: f64,
    /// A batch is downloading.
    pub downloading: bool,
    /// Batches that failed (bad, late or not linking) and were asked again.
    pub retried_batches: u64,
    /// Peers reported for a batch.
    pub penalties: u64,
}

/// Backfill as a background task.
pub struct Backfill {
    status: watch::Receiver<BackfillStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ImportError>>,
}

impl Backfill {
    /// Start backfilling `chain` from the peers of `net`, when it is anchored at a
    /// checkpoint (`None` for a chain anchored at genesis: every block is held). `cfg`:
    /// range sync's batch size, request timeout, tick and pacing.
    pub fn start(
        net: NetworkHandle,
        chain: ChainHandle,
        cfg: &SyncConfig,
    ) -> Result<Option<Self>, ImportError> {
        let store = chain.reader().store().clone();
        let Some(oldest) = OldestBlock::read(&store)? else {
            return Ok(None);
        };
        let anchor = store
            .get_metadata(META_ANCHOR)?
            .ok_or_else(|| ImportError::Internal("the store holds no anchor".into()))?;
        let anchor = Anchor::decode(&anchor).map_err(ImportError::Internal)?;
        let (status_tx, status) = watch::channel(BackfillStatus {
            complete: oldest.is_genesis(),
            anchor_slot: anchor.slot,
            oldest_slot: oldest.slot,
            ..Default::default()
        });
        let (stop, stop_rx) = watch::channel(false);
        let filler = Filler {
            pacing: crate::net::rate_limit::RateLimiter::new(cfg.pacing.clone()),
            cfg: cfg.clone(),
            preset: chain.preset(),
            net,
            chain,
            anchor,
            oldest,
            window_end: oldest.slot,
            empties: Vec::new(),
            tried: Vec::new(),
            backoff: HashMap::new(),
            status: status_tx,
            started: Instant::now(),
            imported: 0,
            retried: 0,
            penalties: 0,
        };
        let task = tokio::spawn(filler.run(stop_rx));
        Ok(Some(Backfill { status, stop, task }))
    }

    pub fn status(&self) -> BackfillStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<BackfillStatus> {
        self.status.clone()
    }

    /// Stop: a download in flight is dropped; a batch being written is written whole.
    pub async fn stop(self) -> Result<(), ImportError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| Err(ImportError::Internal(format!("backfill task: {e}"))))
    }
}

/// What a proposer signature is checked against: the anchor state's fork, genesis
/// validators root and registry (validator indices never change, so every older block's
/// proposer is in it).
struct Signing {
    previous_version: [u8; 4],
    current_version: [u8; 4],
    fork_epoch: u64,
    genesis_validators_root: Root,
    pubkeys: Vec<[u8; 48]>,
}

/// A block as backfill reads it.
struct Parsed {
    slot: u64,
    root: Root,
    parent_root: Root,
    proposer_index: u64,
    signature: [u8; 96],
}

macro_rules! per_preset {
    ($preset:expr, $m:ident => $body:expr) => {
        match $preset {
            Preset::Minimal => {
                use crate::chain::minimal as $m;
                $body
            }
            Preset::Mainnet => {
                use crate::chain::mainnet as $m;
                $body
            }
        }
    };
}

fn signing_of(state: &AnyState) -> Signing {
    macro_rules! of {
        ($s:expr) => {
            Signing {
                previous_version: *$s.fork.previous_version.as_bytes(),
                current_version: *$s.fork.current_version.as_bytes(),
                fork_epoch: $s.fork.epoch,
                genesis_validators_root: *$s.genesis_validators_root.as_bytes(),
                pubkeys: $s.validators.iter().map(|v| *v.pubkey.as_bytes()).collect(),
            }
        };
    }
    match state {
        AnyState::Minimal(s) => of!(s),
        AnyState::Mainnet(s) => of!(s),
    }
}

fn parse_block(preset: Preset, ssz: &[u8]) -> Result<Parsed, String> {
    per_preset!(preset, m => {
        let b = m::types::SignedBeaconBlock::ssz_decode(ssz).map_err(|e| e.to_string())?;
        Ok(Parsed {
            slot: b.message.slot,
            root: m::t::hash_tree_root(&b.message).map_err(|e| e.to_string())?,
            parent_root: *b.message.parent_root.as_bytes(),
            proposer_index: b.message.proposer_index,
            signature: *b.signature.as_bytes(),
        })
    })
}

/// `compute_signing_root(block, get_domain(state, DOMAIN_BEACON_PROPOSER, epoch))` with the
/// anchor state's fork (the previous version before the fork's epoch).
fn proposer_signing_root(
    preset: Preset,
    signing: &Signing,
    block: &Parsed,
) -> Result<Root, String> {
    per_preset!(preset, m => {
        let epoch = m::t::compute_epoch_at_slot(block.slot);
        let version = if epoch < signing.fork_epoch {
            signing.previous_version
        } else {
            signing.current_version
        };
        let fork_data_root = m::t::compute_fork_data_root(
            &crate::types::primitives::Version::from(version),
            &crate::types::primitives::Root::from(signing.genesis_validators_root),
        )
        .map_err(|e| e.to_string())?;
        let mut domain = [0u8; 32];
        domain[..4].copy_from_slice(&m::t::DOMAIN_BEACON_PROPOSER);
        domain[4..].copy_from_slice(&fork_data_root[..28]);
        m::t::compute_signing_root_of(block.root, crate::types::primitives::Domain::from(domain))
            .map_err(|e| e.to_string())
    })
}

/// What a checked answer brings.
enum Checked {
    /// No blocks in the window.
    Empty,
    /// Blocks linked down from the expected root: to write, with the new oldest block.
    Linked {
        blocks: Vec<StoredBlock>,
        oldest: OldestBlock,
    },
}

/// Why an answer was refused.
enum Refused {
    /// The answer is wrong whatever came before: the peer's fault.
    Invalid(String),
    /// Its newest block is not the one expected: the peer's fault unless an earlier empty
    /// answer skipped the expected block.
    NotLinked(String),
}

/// Check an answer for the window `[start, end)` whose newest block must have root
/// `expected`.
fn check_answer(
    preset: Preset,
    signing: &Signing,
    start: u64,
    end: u64,
    expected: Root,
    answer: Vec<Vec<u8>>,
) -> Result<Checked, Refused> {
    if answer.is_empty() {
        return Ok(Checked::Empty);
    }
    if answer.len() as u64 > end - start {
        return Err(Refused::Invalid(format!(
            "{} blocks for {} slots",
            answer.len(),
            end - start
        )));
    }
    let mut parsed = Vec::with_capacity(answer.len());
    for (i, ssz) in answer.iter().enumerate() {
        let b =
            parse_block(preset, ssz).map_err(|e| Refused::Invalid(format!("block {i}: {e}")))?;
        if b.slot < start || b.slot >= end {
            return Err(Refused::Invalid(format!(
                "block {i} at slot {}, outside [{start}, {end})",
                b.slot
            )));
        }
        if let Some(p) = parsed.last() {
            let p: &Parsed = p;
            if b.slot <= p.slot {
                return Err(Refused::Invalid(format!(
                    "block {i} at slot {} after slot {}",
                    b.slot, p.slot
                )));
            }
            if b.parent_root != p.root {
                return Err(Refused::Invalid(format!(
                    "block {i} at slot {} does not build on the one before",
                    b.slot
                )));
            }
        }
        parsed.push(b);
    }
    let newest = parsed.last().expect("not empty");
    if newest.root != expected {
        return Err(Refused::NotLinked(format!(
            "the newest block (slot {}) is 0x{}, not the expected parent 0x{}",
            newest.slot,
            hex(&newest.root),
            hex(&expected)
        )));
    }
    // The genesis block has no signature; every other block's proposer signs it.
    let mut sets = Vec::with_capacity(parsed.len());
    for b in &parsed {
        if b.slot == 0 {
            if b.parent_root != [0u8; 32] {
                return Err(Refused::Invalid("a slot-0 block with a parent".into()));
            }
            continue;
        }
        let key = signing
            .pubkeys
            .get(b.proposer_index as usize)
            .ok_or_else(|| {
                Refused::Invalid(format!(
                    "block at slot {}: proposer index {} is not in the anchor state's registry",
                    b.slot, b.proposer_index
                ))
            })?;
        let pubkey: PublicKey = parse_pubkey(key).map_err(|e| {
            Refused::Invalid(format!("block at slot {}: proposer key: {e}", b.slot))
        })?;
        let signature = parse_signature(&b.signature)
            .map_err(|e| Refused::Invalid(format!("block at slot {}: signature: {e}", b.slot)))?;
        let signing_root = proposer_signing_root(preset, signing, b)
            .map_err(|e| Refused::Invalid(format!("block at slot {}: {e}", b.slot)))?;
        sets.push(ResolvedSet {
            pubkey,
            signing_root,
            signature,
        });
    }
    let refs: Vec<&ResolvedSet> = sets.iter().collect();
    if !crate::bls::verify_batch(&refs) {
        return Err(Refused::Invalid(
            "a proposer signature of the batch does not verify".into(),
        ));
    }
    let oldest = &parsed[0];
    let new_oldest = OldestBlock {
        slot: oldest.slot,
        parent_root: oldest.parent_root,
    };
    let blocks = parsed
        .iter()
        .zip(answer)
        .map(|(b, ssz)| StoredBlock {
            slot: b.slot,
            root: b.root,
            ssz,
        })
        .collect();
    Ok(Checked::Linked {
        blocks,
        oldest: new_oldest,
    })
}

/// How long a peer that answered `ResourceUnavailable` is left alone.
const BACKOFF: Duration = Duration::from_secs(5);

struct Filler {
    net: NetworkHandle,
    chain: ChainHandle,
    cfg: SyncConfig,
    preset: Preset,
    anchor: Anchor,
    /// The oldest block held (as written).
    oldest: OldestBlock,
    /// The top of the next window: `oldest.slot`, lower after empty answers.
    window_end: u64,
    /// Peers whose empty answers moved the window down since the last write.
    empties: Vec<PeerId>,
    /// Peers that failed the current window (avoided while others can serve it).
    tried: Vec<PeerId>,
    backoff: HashMap<PeerId, Instant>,
    pacing: crate::net::rate_limit::RateLimiter,
    status: watch::Sender<BackfillStatus>,
    started: Instant,
    imported: u64,
    retried: u64,
    penalties: u64,
}

impl Filler {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), ImportError> {
        if self.oldest.is_genesis() {
            self.publish(false);
            return Ok(());
        }
        let signing = {
            let ssz = self
                .chain
                .state_by_root(self.anchor.state_root)
                .await?
                .ok_or_else(|| ImportError::Internal("the anchor state is not held".into()))?;
            let preset = self.preset;
            let state = tokio::task::spawn_blocking(move || AnyState::from_ssz(preset, &ssz))
                .await
                .map_err(|e| ImportError::Internal(format!("decoding the anchor state: {e}")))??;
            std::sync::Arc::new(signing_of(&state))
        };
        tracing::info!(
            anchor_slot = self.anchor.slot,
            oldest_slot = self.oldest.slot,
            "backfill: fetching the blocks before the checkpoint"
        );
        let mut tick = tokio::time::interval(self.cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.oldest.is_genesis() {
            if *stop.borrow() {
                return Ok(());
            }
            if self.window_end == 0 {
                // Every window down to slot 0 came back empty, yet the oldest block has a
                // parent: the empty answers were wrong (or no peer serves the genesis
                // block). Start over from the oldest block held, with other peers.
                tracing::info!(
                    oldest_slot = self.oldest.slot,
                    "backfill: no peer answered the oldest block's parent; asking again"
                );
                self.reset_window();
            }
            let end = self.window_end;
            let start = end.saturating_sub(self.cfg.batch_slots.clamp(1, 128));
            let Some(peer) = self.pick_peer(start).await else {
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    _ = tick.tick() => continue,
                }
            };
            self.publish(true);
            let request = self.net.blocks_by_range(peer, start, end - start);
            let answer = tokio::select! {
                _ = stop.changed() => return Ok(()),
                a = tokio::time::timeout(self.cfg.request_timeout, request) => a,
            };
            let answer = match answer {
                Err(_) => {
                    self.penalise(peer, PeerAction::MidToleranceError, "no answer in time");
                    self.failed(peer);
                    continue;
                }
                Ok(Err(NetError::Response {
                    code: ResponseCode::ResourceUnavailable,
                    ..
                })) => {
                    self.backoff.insert(peer, Instant::now() + BACKOFF);
                    self.failed(peer);
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, start, %e, "backfill: request failed");
                    self.failed(peer);
                    continue;
                }
                Ok(Ok(blocks)) => blocks,
            };
            let (preset, signing2, expected) =
                (self.preset, signing.clone(), self.oldest.parent_root);
            let checked = tokio::task::spawn_blocking(move || {
                check_answer(preset, &signing2, start, end, expected, answer)
            })
            .await
            .map_err(|e| ImportError::Internal(format!("backfill check: {e}")))?;
            match checked {
                Ok(Checked::Empty) => {
                    self.empties.push(peer);
                    self.tried.clear();
                    self.window_end = start;
                }
                Ok(Checked::Linked { blocks, oldest }) => {
                    let n = blocks.len() as u64;
                    self.chain.backfill(blocks, oldest).await?;
                    self.imported += n;
                    self.oldest = oldest;
                    self.empties.clear();
                    self.tried.clear();
                    self.window_end = oldest.slot;
                    tracing::debug!(oldest_slot = oldest.slot, n, "backfill: batch written");
                }
                Err(Refused::NotLinked(reason)) if !self.empties.is_empty() => {
                    tracing::debug!(%peer, reason, "backfill: after empty answers, the chain does not link");
                    // Someone lied: the peers that said "empty", or this one. Ask others.
                    let mut suspects = std::mem::take(&mut self.empties);
                    suspects.push(peer);
                    self.reset_window();
                    self.tried = suspects;
                }
                Err(Refused::NotLinked(reason) | Refused::Invalid(reason)) => {
                    self.penalise(peer, PeerAction::LowToleranceError, &reason);
                    self.failed(peer);
                }
            }
            self.publish(false);
        }
        self.publish(false);
        tracing::info!(
            imported = self.imported,
            "backfill: complete, every block down to genesis is held"
        );
        Ok(())
    }

    fn reset_window(&mut self) {
        self.retried += 1;
        self.window_end = self.oldest.slot;
        self.empties.clear();
    }

    fn failed(&mut self, peer: PeerId) {
        self.retried += 1;
        if !self.tried.contains(&peer) {
            self.tried.push(peer);
        }
    }

    fn penalise(&mut self, peer: PeerId, action: PeerAction, reason: &str) {
        self.penalties += 1;
        tracing::info!(%peer, ?action, reason, "backfill: peer penalised");
        let net = self.net.clone();
        let reason = format!("backfill: {reason}");
        tokio::spawn(async move {
            let _ = net.report_peer(peer, action, &reason).await;
        });
    }

    /// A peer holding the window's blocks (its Status' `earliest_available_slot` at or
    /// below `start`; a Status v1 peer is assumed to hold everything), not backing off,
    /// within our pacing; one that has not failed this window first, then the best scored,
    /// then the highest head.
    async fn pick_peer(&mut self, start: u64) -> Option<PeerId> {
        let peers = self.net.peers().await.ok()?;
        let now = Instant::now();
        self.backoff.retain(|_, until| *until > now);
        self.pacing.prune(now);
        let holders: Vec<&PeerInfo> = peers
            .iter()
            .filter(|p| {
                p.status
                    .is_some_and(|s| s.earliest_available_slot.unwrap_or(0) <= start)
            })
            .filter(|p| !self.backoff.contains_key(&p.peer_id))
            .collect();
        let fresh: Vec<&PeerInfo> = holders
            .iter()
            .copied()
            .filter(|p| !self.tried.contains(&p.peer_id))
            .collect();
        let mut pool = if fresh.is_empty() { holders } else { fresh };
        pool.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.score.round() as i64),
                std::cmp::Reverse(p.status.map(|s| s.head_slot).unwrap_or(0)),
                p.peer_id,
            )
        });
        let count = self.window_end - start;
        pool.into_iter().map(|p| p.peer_id).find(|p| {
            self.pacing
                .allows(*p, Protocol::BeaconBlocksByRangeV2, count, now)
                .is_ok()
        })
    }

    fn publish(&mut self, downloading: bool) {
        let status = BackfillStatus {
            complete: self.oldest.is_genesis(),
            anchor_slot: self.anchor.slot,
            oldest_slot: self.oldest.slot,
            imported: self.imported,
            blocks_per_second: self.imported as f64
                / self.started.elapsed().as_secs_f64().max(1e-3),
            downloading,
            retried_batches: self.retried,
            penalties: self.penalties,
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
