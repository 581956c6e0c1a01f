//! The chain as a long-running service: one owner thread, a cloneable [`ChainHandle`].
//!
//! ```text
//!  callers (sync, gossip, API, `quasar import`)          service threads
//!  ChainHandle ── Command (bytes) ──▶ intake thread ── decoded segments (bounded) ──▶ chain thread
//!      │          (tokio mpsc,        decodes behind       │                       owns the Chain:
//!      │           bounded)           the preset boundary  │                       transition, blst,
//!      │                                                   │                       GPU calls, fork
//!      │ ◀──────────── replies (oneshot) ──────────────────┘                       choice, RocksDB
//!      │ ◀──────────── events (broadcast: head, block, finalized) ─────────────────┘
//!      └── ChainReader: reads committed data straight from the store and the published
//!          head snapshot; never waits behind an import batch.
//! ```
//!
//! The handle's API does not depend on the preset: blocks go in as SSZ bytes with their
//! [`BlockSource`]; roots, slots, SSZ bytes and typed outcomes come out. The preset is
//! chosen once, in [`ChainService::open`], which starts the threads for that preset's
//! chain ([`PresetChain`]).
//!
//! Pipelining across commands: a segment submitted with `more = true` stays pending on the
//! chain thread — its signatures are verified while the next segment's transition runs —
//! until the next segment arrives or [`PENDING_WAIT`] passes. Its reply comes when it is
//! settled, so a caller that wants the overlap keeps one more segment in flight
//! ([`ChainHandle::submit_segment`] returns the reply to wait on later).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::error::{BlockError, FailedBlock, Fault};
use super::gossip_attestation::{AttestationGossip, BlockTree, GossipMessage, Vote};
use super::gossip_ops::{GossipOps, OperationKind};
use super::metrics::ChainMetrics;
use super::pipeline::{Decoded, ImportError, ImportOptions, SegmentOutcome, Settled};
use crate::accel::aggregate::PubkeyAggregator;
use crate::cache::metrics::CacheMetrics;
use crate::cache::pool::BufferPool;
use crate::store::{Checkpoint, Head, Store};
use crate::types::Preset;

type Root = [u8; 32];

/// How long the chain thread keeps a segment pending, waiting for the next one to overlap
/// its verification with, before it settles it anyway.
pub const PENDING_WAIT: Duration = Duration::from_millis(250);

/// Commands queued from the handles to the intake thread.
const COMMAND_QUEUE: usize = 64;
/// Decoded segments the intake may hold ahead of the chain thread.
const DECODED_QUEUE: usize = 2;
/// Events a slow subscriber may fall behind by before it misses some (it is told how
/// many: `broadcast::error::RecvError::Lagged`).
const EVENT_QUEUE: usize = 1024;
/// The most blocks one `blocks_by_range` read returns.
pub const MAX_BLOCKS_PER_READ: u64 = 1024;

/// Who handed the chain a block: the network layer passes its peer id (as text), so that
/// the fault of a refused block reaches the right peer's score.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlockSource {
    /// A block file (`quasar import`).
    File,
    /// A peer, by range or by root.
    Peer(String),
    /// A peer, on the gossip topic.
    Gossip(String),
    /// This node (block production, the API, tests).
    Local,
}

impl BlockSource {
    /// The peer to penalise for a [`Fault::Peer`] refusal, if a peer sent it.
    pub fn peer(&self) -> Option<&str> {
        match self {
            BlockSource::Peer(p) | BlockSource::Gossip(p) => Some(p),
            BlockSource::File | BlockSource::Local => None,
        }
    }
}

/// The head as last committed: what reads answer without asking the chain thread.
#[derive(Debug, Clone)]
pub struct HeadSnapshot {
    pub preset: Preset,
    pub head: Head,
    pub head_state_root: Root,
    pub justified: Checkpoint,
    pub finalized: Checkpoint,
    /// The finalized block's slot.
    pub finalized_slot: u64,
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
    /// The head state's fork: current version and the epoch it took effect.
    pub fork_version: [u8; 4],
    pub validators: usize,
    /// The lowest slot whose block the store holds: the anchor's, then (on a chain
    /// anchored at a checkpoint) lower as backfill goes.
    pub earliest_available_slot: u64,
    /// The anchor's slot: states are held from here on (backfilled blocks have none).
    pub anchor_slot: u64,
    /// The head state itself, of the chain's preset.
    pub state: AnyState,
    /// Fork choice's blocks, as of this commit.
    pub fork_choice: Arc<[super::fork_choice::ForkChoiceNode]>,
    /// How the pubkey table was built when the chain was opened (stored keys loaded,
    /// keys KeyValidate'd).
    pub keys_load: super::pubkeys::KeysLoad,
}

/// A state of either preset, shared.
#[derive(Clone)]
pub enum AnyState {
    Minimal(Arc<crate::types::minimal::BeaconState>),
    Mainnet(Arc<crate::types::mainnet::BeaconState>),
}

impl std::fmt::Debug for AnyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyState::Minimal(s) => write!(f, "AnyState::Minimal(slot {})", s.slot),
            AnyState::Mainnet(s) => write!(f, "AnyState::Mainnet(slot {})", s.slot),
        }
    }
}

impl AnyState {
    /// The state's SSZ encoding.
    pub fn to_ssz(&self) -> Result<Vec<u8>, ImportError> {
        use crate::types::ssz::ssz_encode;
        match self {
            AnyState::Minimal(s) => ssz_encode(&**s),
            AnyState::Mainnet(s) => ssz_encode(&**s),
        }
        .map_err(|e| ImportError::Internal(e.to_string()))
    }
}

/// What the chain announces to subscribers, after the write that made it true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// A block was imported (on the head chain or not).
    Block { slot: u64, root: Root },
    /// The head changed.
    Head {
        slot: u64,
        root: Root,
        state_root: Root,
        /// The new head is in a later epoch than the previous one.
        epoch_transition: bool,
    },
    /// Finalization advanced.
    FinalizedCheckpoint { epoch: u64, root: Root },
}

/// A gossip message's verdict with its typed reason; gossipsub is told its
/// [`acceptance`](Self::acceptance) (`ACCEPT` relays, `IGNORE` drops, `REJECT` drops and
/// penalises the sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Every gossip condition of the spec holds, and the block passed its full
    /// verification: imported.
    Accept,
    /// An `[IGNORE]` condition failed (an error of [`Fault::Nobody`]; for
    /// [`BlockError::UnknownParent`]: fetch the parent), or the node failed
    /// ([`Fault::Node`]).
    Ignore(BlockError),
    /// A `[REJECT]` condition of the spec failed ([`Fault::Peer`]).
    Reject(BlockError),
    /// Every gossip condition of the spec holds (the spec's `validate_beacon_block_gossip`
    /// would accept it), but the full verification — the state transition, the block's
    /// other signatures — refused the block for its own fault ([`Fault::Peer`]): not
    /// imported, not relayed. Told to gossipsub as IGNORE: a peer that follows the spec
    /// relays such a block after the gossip conditions alone, so the relayer is not
    /// penalised for it (the block's root goes to the refused cache, so its children are
    /// REJECTed).
    Invalid(BlockError),
}

/// A [`GossipVerdict`] without its reason (what gossipsub's `MessageAcceptance` needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipAcceptance {
    Accept,
    Ignore,
    Reject,
}

impl GossipVerdict {
    /// The verdict of a refused message: REJECT when the message is at fault, IGNORE
    /// otherwise.
    pub fn refused(e: BlockError) -> Self {
        match e.fault() {
            Fault::Peer => GossipVerdict::Reject(e),
            Fault::Nobody | Fault::Node => GossipVerdict::Ignore(e),
        }
    }

    pub fn acceptance(&self) -> GossipAcceptance {
        match self {
            GossipVerdict::Accept => GossipAcceptance::Accept,
            GossipVerdict::Ignore(_) | GossipVerdict::Invalid(_) => GossipAcceptance::Ignore,
            GossipVerdict::Reject(_) => GossipAcceptance::Reject,
        }
    }

    /// Why the message was not accepted.
    pub fn error(&self) -> Option<&BlockError> {
        match self {
            GossipVerdict::Accept => None,
            GossipVerdict::Ignore(e) | GossipVerdict::Reject(e) | GossipVerdict::Invalid(e) => {
                Some(e)
            }
        }
    }
}

/// `MAXIMUM_GOSSIP_CLOCK_DISPARITY`: the clock disparity assumed between honest nodes.
pub const MAXIMUM_GOSSIP_CLOCK_DISPARITY_MS: u64 = 500;

/// The local clock as gossip validation reads it: milliseconds since genesis (the spec's
/// `current_time_ms`, less `genesis_time * 1000`). Preset-free; the slot it falls in
/// depends on the chain's slot duration ([`ChainHandle::slot_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GossipClock {
    ms_since_genesis: u64,
}

impl GossipClock {
    pub const fn from_ms_since_genesis(ms: u64) -> Self {
        GossipClock {
            ms_since_genesis: ms,
        }
    }

    /// From Unix time in milliseconds (before genesis: genesis).
    pub fn from_unix_ms(unix_ms: u64, genesis_time: u64) -> Self {
        Self::from_ms_since_genesis(unix_ms.saturating_sub(genesis_time.saturating_mul(1000)))
    }

    /// The system clock now.
    pub fn now(genesis_time: u64) -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis().min(u64::MAX as u128) as u64)
            .unwrap_or(0);
        Self::from_unix_ms(unix_ms, genesis_time)
    }

    pub const fn ms_since_genesis(self) -> u64 {
        self.ms_since_genesis
    }

    /// This time plus `ms`.
    pub const fn plus_ms(self, ms: u64) -> Self {
        Self::from_ms_since_genesis(self.ms_since_genesis.saturating_add(ms))
    }
}

/// A block's (slot, proposer index): the key of the gossip seen-cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub slot: u64,
    pub proposer_index: u64,
}

/// Roots of blocks refused for their own fault (see [`BlockError::condemns_root`]), so
/// that gossip REJECTs their descendants (the spec's "parent failed validation"); the
/// oldest are forgotten past [`MAX_REFUSED_BLOCKS`].
#[derive(Debug, Default)]
pub struct RefusedBlocks {
    errors: HashMap<Root, BlockError>,
    order: VecDeque<Root>,
}

/// How many refused roots [`RefusedBlocks`] keeps.
pub const MAX_REFUSED_BLOCKS: usize = 4096;

impl RefusedBlocks {
    /// Why block `root` was refused, if it was.
    pub fn get(&self, root: &Root) -> Option<&BlockError> {
        self.errors.get(root)
    }

    pub fn contains(&self, root: &Root) -> bool {
        self.errors.contains_key(root)
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Remember `root` as refused with `error` (the first reason stays).
    fn insert(&mut self, root: Root, error: BlockError) {
        if self.errors.contains_key(&root) {
            return;
        }
        if self.order.len() >= MAX_REFUSED_BLOCKS {
            if let Some(old) = self.order.pop_front() {
                self.errors.remove(&old);
            }
        }
        self.order.push_back(root);
        self.errors.insert(root, error);
    }

    /// Remember `root` if `error` condemns it (its fault, whatever its signature).
    fn note(&mut self, root: Root, error: &BlockError) {
        if error.condemns_root() {
            self.insert(root, error.clone());
        }
    }
}

/// What the gossip checks read besides the chain: the clock, the seen-cache, the refused
/// roots, and a finalized checkpoint that replaces fork choice's (conformance vectors
/// only, see [`ChainHandle::override_gossip_finality`]).
pub struct GossipView<'a> {
    now: GossipClock,
    seen: &'a HashMap<Proposal, Root>,
    refused: &'a RefusedBlocks,
    finalized: Option<Checkpoint>,
}

impl GossipView<'_> {
    pub fn now(&self) -> GossipClock {
        self.now
    }

    /// Whether a block of this proposal passed the gossip checks already.
    pub fn is_seen(&self, proposal: &Proposal) -> bool {
        self.seen.contains_key(proposal)
    }

    /// Whether block `root` was refused for its own fault.
    pub fn is_refused(&self, root: &Root) -> bool {
        self.refused.contains(root)
    }

    pub fn finalized_override(&self) -> Option<Checkpoint> {
        self.finalized
    }
}

/// The gossip topics whose messages the chain validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipTopic {
    BeaconBlock,
    VoluntaryExit,
    ProposerSlashing,
    AttesterSlashing,
    BlsToExecutionChange,
    /// `beacon_aggregate_and_proof` (validated off the chain thread, see
    /// [`gossip_attestation`](super::gossip_attestation)).
    BeaconAggregateAndProof,
    /// `beacon_attestation_{subnet_id}`.
    BeaconAttestation {
        subnet: u64,
    },
    /// `sync_committee_contribution_and_proof`.
    SyncCommitteeContributionAndProof,
    /// `sync_committee_{subnet_id}`.
    SyncCommittee {
        subnet: u64,
    },
}

impl GossipTopic {
    /// Whether the topic is validated by [`AttestationGossip`] (off the chain thread).
    pub fn is_attestation_topic(&self) -> bool {
        matches!(
            self,
            GossipTopic::BeaconAggregateAndProof
                | GossipTopic::BeaconAttestation { .. }
                | GossipTopic::SyncCommitteeContributionAndProof
                | GossipTopic::SyncCommittee { .. }
        )
    }
}

/// A stored block as reads return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    pub slot: u64,
    pub root: Root,
    /// `SignedBeaconBlock` SSZ, byte for byte as imported.
    pub ssz: Vec<u8>,
}

/// What a preset's chain offers the service (implemented by `chain::minimal::Chain` and
/// `chain::mainnet::Chain`). Only the service calls it, on its own threads.
pub trait PresetChain: Send + 'static {
    type Block: Send + 'static;

    /// Decode one block (`index` is its position in its segment).
    fn decode(
        pool: &BufferPool,
        index: usize,
        ssz: Vec<u8>,
    ) -> Result<Decoded<Self::Block>, BlockError>;
    fn submit_segment(
        &mut self,
        id: u64,
        blocks: Vec<Decoded<Self::Block>>,
        more: bool,
    ) -> Vec<Settled>;
    fn flush(&mut self) -> Vec<Settled>;
    /// The spec's `beacon_block` gossip conditions, in the spec's order, up to the full
    /// verification: the first failed one as a typed error (IGNORE or REJECT by its
    /// fault), or the proposal to mark seen.
    fn validate_gossip_block(
        &self,
        block: &Decoded<Self::Block>,
        view: &GossipView<'_>,
    ) -> Result<Proposal, BlockError>;
    /// The chain config's `SLOT_DURATION_MS`.
    fn slot_duration_ms(&self) -> u64;
    /// The chain config (the operation gossip checks read it off the chain thread).
    fn chain_config(&self) -> crate::transition::ChainConfig;
    fn snapshot(&self) -> Result<HeadSnapshot, ImportError>;
    fn store(&self) -> Arc<Store>;
    /// A transition context sharing the chain's caches (shufflings), for gossip workers.
    fn gossip_ctx(&self) -> crate::transition::TransitionCtx;
    /// The fork-choice facts gossip validation reads (refused roots and the finality
    /// override are the service's to add).
    fn block_tree(&self) -> BlockTree;
    /// Apply latest messages from gossip to fork choice.
    fn on_gossip_votes(&mut self, votes: &[Vote]);
    /// Fork choice's `on_tick` at the slot clock's `now`.
    fn on_tick(&mut self, now: GossipClock);
    /// An `AttesterSlashing` (SSZ) that passed the gossip checks: its validators become
    /// equivocating in fork choice.
    fn on_gossip_attester_slashing(&mut self, ssz: &[u8]);
    fn pool(&self) -> BufferPool;
    fn metrics(&self) -> Arc<CacheMetrics>;
    /// Reads that rebuild states from the store, for [`ChainReader`].
    fn state_reader(&self) -> Arc<dyn StateReader>;
}

/// Rebuilding states from committed data (preset-specific; behind [`ChainReader`]).
pub trait StateReader: Send + Sync {
    /// The post state of stored block `root`, as SSZ (`None`: no such block).
    fn state_ssz_of_block(
        &self,
        root: &Root,
        slot: Option<u64>,
    ) -> Result<Option<Vec<u8>>, ImportError>;
}

/// A reply to wait for: `wait().await` in async code, `blocking_wait()` elsewhere.
pub struct Reply<T>(oneshot::Receiver<Result<T, ImportError>>);

impl<T> Reply<T> {
    pub async fn wait(self) -> Result<T, ImportError> {
        self.0.await.unwrap_or(Err(ImportError::ServiceStopped))
    }

    /// Block the calling thread until the reply comes (never inside an async task).
    pub fn blocking_wait(self) -> Result<T, ImportError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(ImportError::ServiceStopped))
    }
}

/// What the intake hands the chain thread.
enum Command {
    Segment {
        blocks: Vec<Vec<u8>>,
        source: BlockSource,
        more: bool,
        reply: oneshot::Sender<Result<SegmentOutcome, ImportError>>,
    },
    Gossip {
        topic: GossipTopic,
        message: Vec<u8>,
        source: BlockSource,
        now: GossipClock,
        reply: oneshot::Sender<Result<GossipVerdict, ImportError>>,
    },
    /// Remember a block root as invalid.
    MarkInvalid {
        root: Root,
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    /// Replace (or stop replacing) fork choice's finalized checkpoint in the gossip checks.
    GossipFinality {
        checkpoint: Option<Checkpoint>,
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    /// Settle whatever is pending, then answer.
    Flush {
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    /// Write a backfilled batch (see [`ChainHandle::backfill`]).
    Backfill {
        blocks: Vec<StoredBlock>,
        oldest: super::OldestBlock,
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    /// An attester slashing accepted from gossip, for fork choice.
    AttesterSlashing {
        ssz: Vec<u8>,
    },
    Shutdown,
}

/// Reads of committed data: the store (RocksDB reads never wait behind a write batch)
/// and the head snapshot the chain publishes after each commit. Cheap to clone.
#[derive(Clone)]
pub struct ChainReader {
    store: Arc<Store>,
    head: Arc<RwLock<Arc<HeadSnapshot>>>,
    states: Arc<dyn StateReader>,
    /// The genesis block of a chain anchored at genesis, which the store does not hold
    /// (its root and SSZ, synthesized from the anchor): served by root and by range.
    genesis_block: Option<GenesisBlock>,
}

/// A synthesized genesis block: its root and SSZ.
type GenesisBlock = (Root, Arc<Vec<u8>>);

impl ChainReader {
    /// The head, justified and finalized checkpoints and the status fields, as committed.
    pub fn head(&self) -> Arc<HeadSnapshot> {
        self.head.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A stored block's SSZ by its root.
    pub fn block_by_root(&self, root: &Root) -> Result<Option<Vec<u8>>, ImportError> {
        match self.store.get_block(root)? {
            Some(ssz) => Ok(Some(ssz)),
            None => Ok(self.genesis_ssz(root)),
        }
    }

    fn genesis_ssz(&self, root: &Root) -> Option<Vec<u8>> {
        self.genesis_block
            .as_ref()
            .filter(|(r, _)| r == root)
            .map(|(_, ssz)| ssz.to_vec())
    }

    /// The canonical blocks with `start_slot <= slot < start_slot + count` (at most
    /// [`MAX_BLOCKS_PER_READ`]), ascending; empty slots are skipped.
    pub fn blocks_by_range(
        &self,
        start_slot: u64,
        count: u64,
    ) -> Result<Vec<StoredBlock>, ImportError> {
        let end = start_slot.saturating_add(count.min(MAX_BLOCKS_PER_READ));
        let mut out = Vec::new();
        for item in self.store.block_roots_in_range(start_slot, end)? {
            let (slot, root) = item?;
            // A genesis anchor has no stored block (it is synthesized).
            if let Some(ssz) = self
                .store
                .get_block(&root)?
                .or_else(|| self.genesis_ssz(&root))
            {
                out.push(StoredBlock { slot, root, ssz });
            }
        }
        Ok(out)
    }

    /// The canonical block root at `slot` (`None`: an empty slot or beyond the head).
    pub fn block_root_at_slot(&self, slot: u64) -> Result<Option<Root>, ImportError> {
        Ok(self.store.block_root_at_slot(slot)?)
    }

    /// The SSZ of the state with root `state_root`: the head state, a stored snapshot, or
    /// rebuilt from the nearest snapshot by replaying stored blocks.
    pub fn state_by_root(&self, state_root: &Root) -> Result<Option<Vec<u8>>, ImportError> {
        let head = self.head();
        if head.head_state_root == *state_root {
            return head.state.to_ssz().map(Some);
        }
        if let Some(ssz) = self.store.get_state(state_root)? {
            return Ok(Some(ssz));
        }
        match self.store.get_state_summary(state_root)? {
            Some(summary) => self
                .states
                .state_ssz_of_block(&summary.latest_block_root, Some(summary.slot)),
            None => Ok(None),
        }
    }

    /// The SSZ of the canonical state at `slot` (the latest block at or before it,
    /// advanced through the empty slots); `None` beyond the head or before the anchor.
    pub fn state_at_slot(&self, slot: u64) -> Result<Option<Vec<u8>>, ImportError> {
        let head = self.head();
        if slot > head.head.slot || slot < head.anchor_slot {
            return Ok(None);
        }
        if slot == head.head.slot {
            return head.state.to_ssz().map(Some);
        }
        let mut s = slot;
        loop {
            if let Some(root) = self.store.block_root_at_slot(s)? {
                return self.states.state_ssz_of_block(&root, Some(slot));
            }
            if s <= head.anchor_slot {
                return Ok(None);
            }
            s -= 1;
        }
    }
}

/// The cloneable front of the chain service.
#[derive(Clone)]
pub struct ChainHandle {
    tx: mpsc::Sender<Command>,
    reader: ChainReader,
    events: broadcast::Sender<ChainEvent>,
    pool: BufferPool,
    metrics: Arc<CacheMetrics>,
    chain_metrics: ChainMetrics,
    preset: Preset,
    slot_duration_ms: u64,
    /// The operation topics' seen-caches and pool (see `chain::gossip_ops`).
    ops: Arc<GossipOps>,
    /// Attestation and sync-committee gossip validation (seen-caches, block tree, keys).
    attestations: Arc<AttestationGossip>,
}

impl ChainHandle {
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The chain config's `SLOT_DURATION_MS`.
    pub fn slot_duration_ms(&self) -> u64 {
        self.slot_duration_ms
    }

    /// The [`GossipClock`] at the start of `slot`.
    pub fn slot_start(&self, slot: u64) -> GossipClock {
        GossipClock::from_ms_since_genesis(slot.saturating_mul(self.slot_duration_ms))
    }

    /// Reads of committed data (never wait behind an import).
    pub fn reader(&self) -> &ChainReader {
        &self.reader
    }

    /// The head as last committed.
    pub fn head(&self) -> Arc<HeadSnapshot> {
        self.reader.head()
    }

    /// Head, block and finality events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// The pool block bytes go back to after import: a client reading blocks takes its
    /// buffers from here (and detaches them with `into_vec`).
    pub fn buffer_pool(&self) -> &BufferPool {
        &self.pool
    }

    /// The caches' metrics.
    pub fn metrics(&self) -> &Arc<CacheMetrics> {
        &self.metrics
    }

    /// The operation topics' seen-caches and the pool of valid gossip operations.
    pub fn operations(&self) -> &Arc<GossipOps> {
        &self.ops
    }

    /// The import metrics (`quasar_chain_*`).
    pub fn chain_metrics(&self) -> &ChainMetrics {
        &self.chain_metrics
    }

    fn segment(
        &self,
        blocks: Vec<Vec<u8>>,
        source: BlockSource,
        more: bool,
    ) -> (Command, Reply<SegmentOutcome>) {
        let (reply, rx) = oneshot::channel();
        (
            Command::Segment {
                blocks,
                source,
                more,
                reply,
            },
            Reply(rx),
        )
    }

    /// Queue a segment (blocks in order, each building on the one before) and return the
    /// reply to wait on. `more`: another segment follows soon, so this one may stay
    /// pending to overlap its verification with the next one's transition.
    pub async fn submit_segment(
        &self,
        blocks: Vec<Vec<u8>>,
        source: BlockSource,
        more: bool,
    ) -> Result<Reply<SegmentOutcome>, ImportError> {
        let (cmd, reply) = self.segment(blocks, source, more);
        self.tx
            .send(cmd)
            .await
            .map_err(|_| ImportError::ServiceStopped)?;
        Ok(reply)
    }

    /// [`submit_segment`](Self::submit_segment) from a thread outside the async runtime.
    pub fn blocking_submit_segment(
        &self,
        blocks: Vec<Vec<u8>>,
        source: BlockSource,
        more: bool,
    ) -> Result<Reply<SegmentOutcome>, ImportError> {
        let (cmd, reply) = self.segment(blocks, source, more);
        self.tx
            .blocking_send(cmd)
            .map_err(|_| ImportError::ServiceStopped)?;
        Ok(reply)
    }

    /// Import a segment and wait for its outcome: how many blocks were imported, and the
    /// first refused one with its typed error (every block before it is imported).
    pub async fn import_segment(
        &self,
        blocks: Vec<Vec<u8>>,
        source: BlockSource,
    ) -> Result<SegmentOutcome, ImportError> {
        self.submit_segment(blocks, source, false)
            .await?
            .wait()
            .await
    }

    /// Import one block that arrived on gossip at `now`: the spec's gossip conditions
    /// first, then the full import (see [`validate_gossip`](Self::validate_gossip)).
    pub async fn import_gossip_block(
        &self,
        block: Vec<u8>,
        source: BlockSource,
        now: GossipClock,
    ) -> Result<GossipVerdict, ImportError> {
        self.validate_gossip(GossipTopic::BeaconBlock, block, source, now)
            .await
    }

    /// Validate a gossip message received at `now` with the spec's rules: ACCEPT, IGNORE
    /// or REJECT, with the typed reason. For `beacon_block`, the conditions of
    /// `validate_beacon_block_gossip` (`specs/fulu/p2p-interface.md`) in the spec's
    /// order — future slot (with `MAXIMUM_GOSSIP_CLOCK_DISPARITY`), finalized slot, first
    /// block of its proposer and slot, proposer index, proposer signature, parent seen,
    /// payload timestamp, parent failed validation, slot after the parent's, finalized
    /// ancestor, blob commitment count, expected proposer — then the block is marked seen
    /// and fully verified and imported (REJECT when that fails for its own fault).
    ///
    /// The operation topics (`voluntary_exit`, `proposer_slashing`, `attester_slashing`,
    /// `bls_to_execution_change`) are validated by [`GossipOps`] against the published
    /// head state on the blocking pool, never behind an import; ACCEPTed ones are marked
    /// seen and pooled ([`operations`](Self::operations)).
    pub async fn validate_gossip(
        &self,
        topic: GossipTopic,
        message: Vec<u8>,
        source: BlockSource,
        now: GossipClock,
    ) -> Result<GossipVerdict, ImportError> {
        // The operation topics: against the published head state, off the chain thread
        // (`chain::gossip_ops`), never queued behind an import.
        if let Some(kind) = OperationKind::of_topic(topic) {
            let slashing = (kind == OperationKind::AttesterSlashing).then(|| message.clone());
            let verdict = self.ops.validate(kind, message, self.head(), now).await;
            if let (GossipVerdict::Accept, Some(ssz)) = (&verdict, slashing) {
                // Fork choice's `on_attester_slashing` (the chain thread, in order).
                let _ = self.tx.send(Command::AttesterSlashing { ssz }).await;
            }
            if let (GossipVerdict::Reject(e), Some(peer)) = (&verdict, source.peer()) {
                tracing::debug!(peer, error = %e, "gossip operation rejected");
            }
            return Ok(verdict);
        }
        if topic.is_attestation_topic() {
            let _ = source;
            let mut v = self
                .validate_gossip_batch(vec![GossipMessage {
                    topic,
                    message,
                    now,
                }])
                .await?;
            return v
                .pop()
                .ok_or_else(|| ImportError::Internal("no verdict for the message".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Gossip {
                topic,
                message,
                source,
                now,
                reply,
            })
            .await
            .map_err(|_| ImportError::ServiceStopped)?;
        Reply(rx).wait().await
    }

    /// Validate attestation and sync-committee gossip messages as one batch, on a blocking
    /// thread against the published head (never behind block import): the spec's verdict
    /// of each, in order, every signature of the batch in one blst verification (bisected
    /// on failure). Accepted attestations become fork-choice votes.
    pub async fn validate_gossip_batch(
        &self,
        msgs: Vec<GossipMessage>,
    ) -> Result<Vec<GossipVerdict>, ImportError> {
        let att = self.attestations.clone();
        let head = self.head();
        blocking(move || Ok(att.validate_batch(&head, &msgs))).await
    }

    /// [`validate_gossip_batch`](Self::validate_gossip_batch) on the calling thread (a
    /// worker outside the async runtime).
    pub fn validate_gossip_batch_blocking(&self, msgs: &[GossipMessage]) -> Vec<GossipVerdict> {
        self.attestations.validate_batch(&self.head(), msgs)
    }

    /// The attestation gossip validator (its counters, its seen-cache size).
    pub fn attestation_gossip(&self) -> &Arc<AttestationGossip> {
        &self.attestations
    }

    /// Remember block `root` as invalid without importing it (an operator's list of
    /// known-bad blocks; the gossip vectors' `failed` blocks): gossip then REJECTs its
    /// descendants as children of a parent that failed validation, and the block itself
    /// once it passes the gossip conditions. A block already imported stays imported.
    pub async fn mark_invalid(&self, root: Root) -> Result<(), ImportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::MarkInvalid { root, reply })
            .await
            .map_err(|_| ImportError::ServiceStopped)?;
        Reply(rx).wait().await
    }

    /// Conformance vectors only: make the gossip checks read `checkpoint` as the
    /// finalized checkpoint instead of fork choice's (the networking vectors'
    /// `finalized_checkpoint`, which no chain of theirs reaches); `None` restores fork
    /// choice's. Import and fork choice are not affected.
    #[doc(hidden)]
    pub async fn override_gossip_finality(
        &self,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), ImportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::GossipFinality { checkpoint, reply })
            .await
            .map_err(|_| ImportError::ServiceStopped)?;
        Reply(rx).wait().await
    }

    /// Write blocks older than the oldest one held (backfill after a checkpoint sync),
    /// each with its root at its slot, and the new oldest block, in one atomic write; the
    /// head snapshot's `earliest_available_slot` follows. The caller checked the blocks
    /// (linked by root down from the oldest block's parent, signatures verified); the
    /// chain refuses a batch whose newest block is not the recorded oldest block's parent.
    pub async fn backfill(
        &self,
        blocks: Vec<StoredBlock>,
        oldest: super::OldestBlock,
    ) -> Result<(), ImportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Backfill {
                blocks,
                oldest,
                reply,
            })
            .await
            .map_err(|_| ImportError::ServiceStopped)?;
        Reply(rx).wait().await
    }

    /// Settle whatever segment is pending and wait until it is written.
    pub async fn flush(&self) -> Result<(), ImportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush { reply })
            .await
            .map_err(|_| ImportError::ServiceStopped)?;
        Reply(rx).wait().await
    }

    /// [`flush`](Self::flush) from a thread outside the async runtime.
    pub fn blocking_flush(&self) -> Result<(), ImportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .blocking_send(Command::Flush { reply })
            .map_err(|_| ImportError::ServiceStopped)?;
        Reply(rx).blocking_wait()
    }

    /// Blocks by range, off the async workers.
    pub async fn blocks_by_range(
        &self,
        start_slot: u64,
        count: u64,
    ) -> Result<Vec<StoredBlock>, ImportError> {
        let r = self.reader.clone();
        blocking(move || r.blocks_by_range(start_slot, count)).await
    }

    /// A block by root, off the async workers.
    pub async fn block_by_root(&self, root: Root) -> Result<Option<Vec<u8>>, ImportError> {
        let r = self.reader.clone();
        blocking(move || r.block_by_root(&root)).await
    }

    /// A state's SSZ by its root, off the async workers (a replay may take a while).
    pub async fn state_by_root(&self, state_root: Root) -> Result<Option<Vec<u8>>, ImportError> {
        let r = self.reader.clone();
        blocking(move || r.state_by_root(&state_root)).await
    }

    /// The canonical state at a slot, off the async workers.
    pub async fn state_at_slot(&self, slot: u64) -> Result<Option<Vec<u8>>, ImportError> {
        let r = self.reader.clone();
        blocking(move || r.state_at_slot(slot)).await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImportError> + Send + 'static,
) -> Result<T, ImportError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ImportError::Internal(format!("read task: {e}"))))
}

/// The running service: its threads. Dropping it without [`shutdown`](Self::shutdown)
/// also stops it (the batch in flight is finished, the store flushed).
pub struct ChainService {
    handle: ChainHandle,
    threads: Vec<JoinHandle<()>>,
}

impl ChainService {
    /// Open the chain in `datadir` (see `Chain::open`; the preset comes from the datadir,
    /// else from the genesis state) and start its threads.
    pub fn open(
        datadir: &Path,
        genesis: Option<&[u8]>,
        opts: ImportOptions,
        aggregator: Box<dyn PubkeyAggregator>,
    ) -> Result<Self, ImportError> {
        Self::open_with_config(datadir, genesis, None, opts, aggregator)
    }

    /// [`open`](Self::open) with a chain config of the preset (`None`: the preset's
    /// built-in one), e.g. a devnet's or a vector's `config.yaml`.
    pub fn open_with_config(
        datadir: &Path,
        genesis: Option<&[u8]>,
        cfg: Option<crate::transition::ChainConfig>,
        opts: ImportOptions,
        aggregator: Box<dyn PubkeyAggregator>,
    ) -> Result<Self, ImportError> {
        let preset = match (super::any::datadir_preset(datadir)?, genesis) {
            (Some(p), _) => p,
            (None, Some(g)) => super::any::genesis_preset(g)?,
            (None, None) => {
                return Err(ImportError::Genesis(
                    "a new datadir needs a genesis state".into(),
                ))
            }
        };
        let cfg = cfg.unwrap_or_else(|| super::any::config_of(preset));
        // The one preset dispatch point: everything past here is preset-free.
        match preset {
            Preset::Minimal => Self::start(
                super::minimal::Chain::open(datadir, genesis, cfg, opts, aggregator)?,
                preset,
            ),
            Preset::Mainnet => Self::start(
                super::mainnet::Chain::open(datadir, genesis, cfg, opts, aggregator)?,
                preset,
            ),
        }
    }

    /// Start the service threads around an opened chain.
    pub fn start<C: PresetChain>(chain: C, preset: Preset) -> Result<Self, ImportError> {
        let snapshot = Arc::new(chain.snapshot()?);
        let genesis_block = genesis_block_of(&chain.store(), preset)?;
        let head = Arc::new(RwLock::new(snapshot));
        let reader = ChainReader {
            store: chain.store(),
            head: head.clone(),
            states: chain.state_reader(),
            genesis_block,
        };
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (work_tx, work_rx) = sync_channel::<Work<C::Block>>(DECODED_QUEUE);
        let pool = chain.pool();
        let (attestations, votes) = AttestationGossip::new(
            chain.gossip_ctx(),
            chain.store(),
            chain.slot_duration_ms(),
            chain.block_tree(),
        );
        let attestations = Arc::new(attestations);
        let chain_metrics = ChainMetrics::default();
        let handle = ChainHandle {
            tx,
            reader,
            events: events.clone(),
            pool: pool.clone(),
            metrics: chain.metrics(),
            chain_metrics: chain_metrics.clone(),
            preset,
            slot_duration_ms: chain.slot_duration_ms(),
            ops: Arc::new(GossipOps::new(chain.chain_config())),
            attestations: attestations.clone(),
        };
        let intake = std::thread::Builder::new()
            .name("quasar-chain-intake".into())
            .spawn(move || intake_loop::<C>(rx, work_tx, pool))
            .map_err(|e| ImportError::Internal(format!("spawning the intake thread: {e}")))?;
        let owner = std::thread::Builder::new()
            .name("quasar-chain".into())
            .spawn(move || {
                ChainThread {
                    chain,
                    head,
                    events,
                    waiting: HashMap::new(),
                    seen_proposals: HashMap::new(),
                    refused: RefusedBlocks::default(),
                    finality_override: None,
                    next_id: 0,
                    attestations,
                    votes,
                    metrics: chain_metrics,
                }
                .run(work_rx)
            })
            .map_err(|e| ImportError::Internal(format!("spawning the chain thread: {e}")))?;
        Ok(ChainService {
            handle,
            threads: vec![intake, owner],
        })
    }

    pub fn handle(&self) -> ChainHandle {
        self.handle.clone()
    }

    /// Stop: commands already queued are answered (a segment still pending is settled
    /// whole), the store is flushed, the threads are joined. Blocks the calling thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // The intake forwards Shutdown behind every command queued before it. (No
        // `blocking_send`: this may run on an async worker, where that would panic.)
        let mut cmd = Command::Shutdown;
        loop {
            match self.handle.tx.try_send(cmd) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => break,
                Err(mpsc::error::TrySendError::Full(c)) => {
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ChainService {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}

/// Work for the chain thread, decoded by the intake.
enum Work<B> {
    Segment {
        blocks: Vec<Decoded<B>>,
        /// The first block that did not decode: the segment is cut before it.
        undecodable: Option<FailedBlock>,
        more: bool,
        reply: oneshot::Sender<Result<SegmentOutcome, ImportError>>,
    },
    Gossip {
        topic: GossipTopic,
        block: Result<Decoded<B>, BlockError>,
        source: BlockSource,
        now: GossipClock,
        reply: oneshot::Sender<Result<GossipVerdict, ImportError>>,
    },
    MarkInvalid {
        root: Root,
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    GossipFinality {
        checkpoint: Option<Checkpoint>,
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    Flush {
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    Backfill {
        blocks: Vec<StoredBlock>,
        oldest: super::OldestBlock,
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    AttesterSlashing {
        ssz: Vec<u8>,
    },
    Shutdown,
}

/// The genesis block of a store anchored at genesis that does not hold it: synthesized
/// from the anchor (the spec's genesis block: the state's header, an empty body, no
/// signature), kept only when its root is the anchor's.
fn genesis_block_of(store: &Store, preset: Preset) -> Result<Option<GenesisBlock>, ImportError> {
    let Some(raw) = store.get_metadata(super::META_ANCHOR)? else {
        return Ok(None);
    };
    let anchor = super::Anchor::decode(&raw).map_err(ImportError::Internal)?;
    if anchor.slot != 0 || store.has_block(&anchor.root)? {
        return Ok(None);
    }
    let (ssz, root) = super::views::genesis_block(preset, 0, anchor.state_root)?;
    Ok((root == anchor.root).then(|| (root, Arc::new(ssz))))
}

/// The write of [`ChainHandle::backfill`].
fn write_backfill(
    store: &Store,
    blocks: &[StoredBlock],
    oldest: super::OldestBlock,
) -> Result<(), ImportError> {
    let current = super::OldestBlock::read(store)?
        .ok_or_else(|| ImportError::Internal("backfill on a chain anchored at genesis".into()))?;
    let newest = blocks
        .iter()
        .max_by_key(|b| b.slot)
        .ok_or_else(|| ImportError::Internal("an empty backfill batch".into()))?;
    if newest.root != current.parent_root || newest.slot >= current.slot {
        return Err(ImportError::Internal(format!(
            "backfill batch ending at slot {} does not extend the oldest block (slot {})",
            newest.slot, current.slot
        )));
    }
    let mut b = store.batch_with_threshold(usize::MAX).with_sync(true);
    for block in blocks {
        b.put_block(&block.root, &block.ssz)?;
        b.put_block_root_at_slot(block.slot, &block.root)?;
    }
    b.put_metadata(super::META_OLDEST_BLOCK, &oldest.encode())?;
    b.commit()?;
    Ok(())
}

/// The intake thread: decodes segments behind the preset boundary while the chain thread
/// imports the previous one, in command order.
fn intake_loop<C: PresetChain>(
    mut rx: mpsc::Receiver<Command>,
    tx: SyncSender<Work<C::Block>>,
    pool: BufferPool,
) {
    while let Some(cmd) = rx.blocking_recv() {
        let work = match cmd {
            Command::Segment {
                blocks,
                source,
                more,
                reply,
            } => {
                let _ = source;
                let mut decoded = Vec::with_capacity(blocks.len());
                let mut undecodable = None;
                for (index, ssz) in blocks.into_iter().enumerate() {
                    match C::decode(&pool, index, ssz) {
                        Ok(d) => decoded.push(d),
                        Err(error) => {
                            undecodable = Some(FailedBlock {
                                index,
                                slot: 0,
                                root: [0; 32],
                                error,
                            });
                            break;
                        }
                    }
                }
                Work::Segment {
                    more: more && undecodable.is_none(),
                    blocks: decoded,
                    undecodable,
                    reply,
                }
            }
            Command::Gossip {
                topic,
                message,
                source,
                now,
                reply,
            } => Work::Gossip {
                topic,
                block: C::decode(&pool, 0, message),
                source,
                now,
                reply,
            },
            Command::MarkInvalid { root, reply } => Work::MarkInvalid { root, reply },
            Command::GossipFinality { checkpoint, reply } => {
                Work::GossipFinality { checkpoint, reply }
            }
            Command::Flush { reply } => Work::Flush { reply },
            Command::Backfill {
                blocks,
                oldest,
                reply,
            } => Work::Backfill {
                blocks,
                oldest,
                reply,
            },
            Command::AttesterSlashing { ssz } => Work::AttesterSlashing { ssz },
            Command::Shutdown => {
                let _ = tx.send(Work::Shutdown);
                return;
            }
        };
        if tx.send(work).is_err() {
            return;
        }
    }
    // Every handle is gone: stop the chain thread too.
    let _ = tx.send(Work::Shutdown);
}

/// A segment waiting for its settlement: where to reply, and a decode failure to report
/// after its decoded prefix.
struct Waiting {
    reply: oneshot::Sender<Result<SegmentOutcome, ImportError>>,
    undecodable: Option<FailedBlock>,
}

/// Gossip proposals kept in the seen-cache (the spec's "first block for this proposer and
/// slot"), pruned below finalization.
const MAX_SEEN_PROPOSALS: usize = 1 << 16;

struct ChainThread<C: PresetChain> {
    chain: C,
    head: Arc<RwLock<Arc<HeadSnapshot>>>,
    events: broadcast::Sender<ChainEvent>,
    waiting: HashMap<u64, Waiting>,
    /// (slot, proposer) → the root that passed the gossip checks first.
    seen_proposals: HashMap<Proposal, Root>,
    /// Roots of blocks refused for their own fault.
    refused: RefusedBlocks,
    /// See [`ChainHandle::override_gossip_finality`].
    finality_override: Option<Checkpoint>,
    next_id: u64,
    /// Where the block tree is published for attestation gossip.
    attestations: Arc<AttestationGossip>,
    /// Votes from attestation gossip, applied before each command.
    votes: Receiver<Vec<Vote>>,
    metrics: ChainMetrics,
}

impl<C: PresetChain> ChainThread<C> {
    fn run(mut self, rx: Receiver<Work<C::Block>>) {
        loop {
            let work = if self.chain_has_pending() {
                match rx.recv_timeout(PENDING_WAIT) {
                    Ok(w) => w,
                    Err(RecvTimeoutError::Timeout) => {
                        let settled = self.chain.flush();
                        self.deliver(settled);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => Work::Shutdown,
                }
            } else {
                rx.recv().unwrap_or(Work::Shutdown)
            };
            while let Ok(votes) = self.votes.try_recv() {
                self.chain.on_gossip_votes(&votes);
            }
            // Fork choice's clock: the wall clock, ticked at every command (an earlier
            // time changes nothing).
            let genesis_time = self
                .head
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .genesis_time;
            self.chain.on_tick(GossipClock::now(genesis_time));
            match work {
                Work::Segment {
                    blocks,
                    undecodable,
                    more,
                    reply,
                } => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.waiting.insert(id, Waiting { reply, undecodable });
                    let settled = self.chain.submit_segment(id, blocks, more);
                    self.deliver(settled);
                }
                Work::Gossip {
                    topic,
                    block,
                    source,
                    now,
                    reply,
                } => {
                    let settled = self.chain.flush();
                    self.deliver(settled);
                    // The message's arrival (no earlier than the tick above).
                    self.chain.on_tick(now);
                    let verdict = self.gossip(topic, block, &source, now);
                    let _ = reply.send(verdict);
                }
                Work::MarkInvalid { root, reply } => {
                    self.refused.insert(root, BlockError::MarkedInvalid);
                    self.publish_tree();
                    let _ = reply.send(Ok(()));
                }
                Work::GossipFinality { checkpoint, reply } => {
                    self.finality_override = checkpoint;
                    self.publish_tree();
                    let _ = reply.send(Ok(()));
                }
                Work::AttesterSlashing { ssz } => {
                    self.chain.on_gossip_attester_slashing(&ssz);
                }
                Work::Flush { reply } => {
                    let settled = self.chain.flush();
                    self.deliver(settled);
                    let _ = reply.send(self.chain.store().flush().map_err(Into::into));
                }
                Work::Backfill {
                    blocks,
                    oldest,
                    reply,
                } => {
                    let settled = self.chain.flush();
                    self.deliver(settled);
                    let result = write_backfill(&self.chain.store(), &blocks, oldest);
                    if result.is_ok() {
                        self.republish();
                    }
                    let _ = reply.send(result);
                }
                Work::Shutdown => {
                    let settled = self.chain.flush();
                    self.deliver(settled);
                    if let Err(e) = self.chain.store().flush() {
                        tracing::error!(%e, "flushing the store at shutdown");
                    }
                    // Whatever still waits (it cannot: every segment was settled) learns
                    // the service stopped when its sender drops here.
                    return;
                }
            }
        }
    }

    /// Publish a fresh head snapshot after a write outside import (nothing else changed).
    fn republish(&self) {
        match self.chain.snapshot() {
            Ok(now) => *self.head.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(now),
            Err(e) => tracing::error!(%e, "publishing the head"),
        }
    }

    fn chain_has_pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Publish the fork-choice facts attestation gossip reads: fork choice's blocks, the
    /// refused roots, the finalized checkpoint (or its override).
    fn publish_tree(&self) {
        let mut tree = self.chain.block_tree();
        tree.refused = self.refused.errors.keys().copied().collect();
        if let Some(cp) = self.finality_override {
            tree.finalized = cp;
        }
        self.attestations.publish_tree(tree);
    }

    /// Publish the new head, announce what changed, and answer the settled segments.
    fn deliver(&mut self, settled: Vec<Settled>) {
        if settled.is_empty() {
            return;
        }
        for s in &settled {
            if let Ok(o) = &s.result {
                self.metrics.settled(&o.stats, o.failed.is_some());
            }
        }
        let before = self.head.read().unwrap_or_else(|e| e.into_inner()).clone();
        match self.chain.snapshot() {
            Ok(now) => {
                let now = Arc::new(now);
                *self.head.write().unwrap_or_else(|e| e.into_inner()) = now.clone();
                for s in &settled {
                    if let Ok(o) = &s.result {
                        for &(slot, root) in &o.stats.imported_blocks {
                            let _ = self.events.send(ChainEvent::Block { slot, root });
                        }
                    }
                }
                if now.head != before.head {
                    let _ = self.events.send(ChainEvent::Head {
                        slot: now.head.slot,
                        root: now.head.root,
                        state_root: now.head_state_root,
                        epoch_transition: epoch_of(now.preset, now.head.slot)
                            > epoch_of(before.preset, before.head.slot),
                    });
                }
                if now.finalized.epoch > before.finalized.epoch {
                    let _ = self.events.send(ChainEvent::FinalizedCheckpoint {
                        epoch: now.finalized.epoch,
                        root: now.finalized.root,
                    });
                    let slot = now.finalized_slot;
                    self.seen_proposals.retain(|p, _| p.slot > slot);
                }
            }
            Err(e) => tracing::error!(%e, "publishing the head"),
        }
        // The block tree attestation gossip reads, before any reply announces the import.
        for s in &settled {
            if let Ok(SegmentOutcome {
                failed: Some(f), ..
            }) = &s.result
            {
                self.refused.note(f.root, &f.error);
            }
        }
        self.publish_tree();
        for s in settled {
            if let Ok(SegmentOutcome {
                failed: Some(f), ..
            }) = &s.result
            {
                self.refused.note(f.root, &f.error);
            }
            let Some(w) = self.waiting.remove(&s.id) else {
                continue;
            };
            let result = s.result.map(|mut o| {
                if o.failed.is_none() {
                    o.failed = w.undecodable;
                }
                o
            });
            let _ = w.reply.send(result);
        }
    }

    /// A `beacon_block` gossip message: the spec's conditions in order (the preset's
    /// [`PresetChain::validate_gossip_block`]; IGNORE / REJECT by the failed one's fault),
    /// then the block is marked seen — its proposer signature verified, every condition
    /// met, as the spec marks it — and fully verified and imported: ACCEPT, or
    /// [`GossipVerdict::Invalid`] when that refuses it for its own fault.
    fn gossip(
        &mut self,
        topic: GossipTopic,
        block: Result<Decoded<C::Block>, BlockError>,
        source: &BlockSource,
        now: GossipClock,
    ) -> Result<GossipVerdict, ImportError> {
        if topic != GossipTopic::BeaconBlock {
            // The handle validates the other topics itself.
            return Err(ImportError::Internal(format!(
                "{topic:?} gossip reached the chain thread"
            )));
        }
        let block = match block {
            Ok(b) => b,
            Err(e) => return Ok(GossipVerdict::refused(e)),
        };
        let root = block.root;
        let view = GossipView {
            now,
            seen: &self.seen_proposals,
            refused: &self.refused,
            finalized: self.finality_override,
        };
        let proposal = match self.chain.validate_gossip_block(&block, &view) {
            Ok(p) => p,
            Err(e) => {
                self.refused.note(root, &e);
                return Ok(self.refusal(source, e));
            }
        };
        if self.seen_proposals.len() >= MAX_SEEN_PROPOSALS {
            self.seen_proposals.clear();
        }
        self.seen_proposals.insert(proposal, root);
        if let Some(e) = self.refused.get(&root) {
            // Refused before (or marked invalid): the full verification would refuse it.
            let e = e.clone();
            return Ok(self.invalid(source, e));
        }
        let id = self.next_id;
        self.next_id += 1;
        let (reply, mut rx) = oneshot::channel();
        self.waiting.insert(
            id,
            Waiting {
                reply,
                undecodable: None,
            },
        );
        let settled = self.chain.submit_segment(id, vec![block], false);
        // (Records the refused root, if the block is at fault.)
        self.deliver(settled);
        let outcome = rx
            .try_recv()
            .map_err(|_| ImportError::Internal("the gossip block was not settled".into()))??;
        if outcome.imported == 1 {
            return Ok(GossipVerdict::Accept);
        }
        if outcome.skipped == 1 {
            return Ok(GossipVerdict::Ignore(BlockError::AlreadyKnown));
        }
        match outcome.failed {
            Some(f) if f.fault() == Fault::Peer => Ok(self.invalid(source, f.error)),
            Some(f) => {
                if f.fault() == Fault::Node {
                    // The block may be fine: let it come again.
                    self.seen_proposals.remove(&proposal);
                }
                Ok(self.refusal(source, f.error))
            }
            None => Err(ImportError::Internal(
                "gossip block neither imported nor refused".into(),
            )),
        }
    }

    /// The verdict of a failed gossip condition (or a node failure).
    fn refusal(&self, source: &BlockSource, e: BlockError) -> GossipVerdict {
        if let (Fault::Peer, Some(peer)) = (e.fault(), source.peer()) {
            tracing::debug!(peer, error = %e, "gossip block rejected");
        }
        GossipVerdict::refused(e)
    }

    /// The verdict of a block that met the gossip conditions but failed its full
    /// verification (its own fault).
    fn invalid(&self, source: &BlockSource, e: BlockError) -> GossipVerdict {
        tracing::debug!(peer = source.peer(), error = %e, "gossip block failed its full verification");
        GossipVerdict::Invalid(e)
    }
}

/// The gossip verdict of a refused block: REJECT when the block is at fault, IGNORE
/// otherwise.
pub fn verdict_of(e: &BlockError) -> GossipVerdict {
    GossipVerdict::refused(e.clone())
}

fn epoch_of(preset: Preset, slot: u64) -> u64 {
    slot / match preset {
        Preset::Minimal => 8,
        Preset::Mainnet => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_roots_are_bounded_and_keep_the_first_reason() {
        let mut r = RefusedBlocks::default();
        let root = |i: usize| {
            let mut x = [0u8; 32];
            x[..8].copy_from_slice(&(i as u64).to_le_bytes());
            x
        };
        r.insert(root(0), BlockError::MarkedInvalid);
        r.note(root(0), &BlockError::StateRootMismatch { claimed: [1; 32] });
        assert_eq!(r.get(&root(0)), Some(&BlockError::MarkedInvalid));
        // A bad proposer signature does not condemn the root.
        let sig = BlockError::InvalidSignature {
            set: "block signature",
            reason: "x".into(),
        };
        r.note(root(1), &sig);
        assert!(!r.contains(&root(1)));
        for i in 1..=MAX_REFUSED_BLOCKS {
            r.insert(root(i), BlockError::MarkedInvalid);
        }
        assert_eq!(r.len(), MAX_REFUSED_BLOCKS);
        assert!(!r.contains(&root(0)), "the oldest is forgotten");
        assert!(r.contains(&root(MAX_REFUSED_BLOCKS)));
    }

    #[test]
    fn the_gossip_clock_counts_from_genesis() {
        assert_eq!(
            GossipClock::from_unix_ms(1_606_824_023_500, 1_606_824_023).ms_since_genesis(),
            500
        );
        assert_eq!(GossipClock::from_unix_ms(5, 1).ms_since_genesis(), 0);
        assert_eq!(
            GossipClock::from_ms_since_genesis(5_500)
                .plus_ms(500)
                .ms_since_genesis(),
            6_000
        );
    }
}
