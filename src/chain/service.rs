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

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::error::{BlockError, FailedBlock, Fault};
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
    /// The lowest slot whose block the store holds (the anchor's).
    pub earliest_available_slot: u64,
    /// The head state itself, of the chain's preset.
    pub state: AnyState,
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

/// The verdict gossipsub is told (`ACCEPT` relays, `IGNORE` drops, `REJECT` drops and
/// penalises the sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipVerdict {
    Accept,
    Ignore(String),
    Reject(String),
}

/// The gossip topics whose messages the chain validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipTopic {
    BeaconBlock,
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
    /// The gossip checks that come before the transition (the spec's IGNORE conditions
    /// on slot, finalization and what is already known), at `current_slot`.
    fn gossip_prechecks(
        &self,
        block: &Decoded<Self::Block>,
        current_slot: u64,
    ) -> Result<(), BlockError>;
    /// (proposer index, slot) of a decoded block, for the gossip seen-cache.
    fn proposer_and_slot(block: &Decoded<Self::Block>) -> (u64, u64);
    fn snapshot(&self) -> Result<HeadSnapshot, ImportError>;
    fn store(&self) -> Arc<Store>;
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
        current_slot: u64,
        reply: oneshot::Sender<Result<GossipVerdict, ImportError>>,
    },
    /// Settle whatever is pending, then answer.
    Flush {
        reply: oneshot::Sender<Result<(), ImportError>>,
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
}

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
        Ok(self.store.get_block(root)?)
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
            // The anchor has no stored block (only its state).
            if let Some(ssz) = self.store.get_block(&root)? {
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
        if slot > head.head.slot || slot < head.earliest_available_slot {
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
            if s == head.earliest_available_slot {
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
    preset: Preset,
}

impl ChainHandle {
    pub fn preset(&self) -> Preset {
        self.preset
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

    /// Import one block that arrived on gossip: the gossip checks first (future slot,
    /// below finalization, already known), then the full import.
    pub async fn import_gossip_block(
        &self,
        block: Vec<u8>,
        source: BlockSource,
        current_slot: u64,
    ) -> Result<GossipVerdict, ImportError> {
        self.validate_gossip(GossipTopic::BeaconBlock, block, source, current_slot)
            .await
    }

    /// Validate a gossip message with the spec's rules: ACCEPT, IGNORE or REJECT (a
    /// valid block is imported on the way, as the spec's `beacon_block` rules require
    /// its full verification).
    pub async fn validate_gossip(
        &self,
        topic: GossipTopic,
        message: Vec<u8>,
        source: BlockSource,
        current_slot: u64,
    ) -> Result<GossipVerdict, ImportError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Gossip {
                topic,
                message,
                source,
                current_slot,
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
        let preset = match (super::any::datadir_preset(datadir)?, genesis) {
            (Some(p), _) => p,
            (None, Some(g)) => super::any::genesis_preset(g)?,
            (None, None) => {
                return Err(ImportError::Genesis(
                    "a new datadir needs a genesis state".into(),
                ))
            }
        };
        let cfg = super::any::config_of(preset);
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
        let head = Arc::new(RwLock::new(snapshot));
        let reader = ChainReader {
            store: chain.store(),
            head: head.clone(),
            states: chain.state_reader(),
        };
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (work_tx, work_rx) = sync_channel::<Work<C::Block>>(DECODED_QUEUE);
        let pool = chain.pool();
        let handle = ChainHandle {
            tx,
            reader,
            events: events.clone(),
            pool: pool.clone(),
            metrics: chain.metrics(),
            preset,
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
                    next_id: 0,
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
        current_slot: u64,
        reply: oneshot::Sender<Result<GossipVerdict, ImportError>>,
    },
    Flush {
        reply: oneshot::Sender<Result<(), ImportError>>,
    },
    Shutdown,
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
                current_slot,
                reply,
            } => Work::Gossip {
                topic,
                block: C::decode(&pool, 0, message),
                source,
                current_slot,
                reply,
            },
            Command::Flush { reply } => Work::Flush { reply },
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
    /// (proposer, slot) → the root first seen on gossip.
    seen_proposals: HashMap<(u64, u64), Root>,
    next_id: u64,
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
                    current_slot,
                    reply,
                } => {
                    let settled = self.chain.flush();
                    self.deliver(settled);
                    let verdict = self.gossip(topic, block, &source, current_slot);
                    let _ = reply.send(verdict);
                }
                Work::Flush { reply } => {
                    let settled = self.chain.flush();
                    self.deliver(settled);
                    let _ = reply.send(self.chain.store().flush().map_err(Into::into));
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

    fn chain_has_pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Publish the new head, announce what changed, and answer the settled segments.
    fn deliver(&mut self, settled: Vec<Settled>) {
        if settled.is_empty() {
            return;
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
                    self.seen_proposals.retain(|&(_, s), _| s > slot);
                }
            }
            Err(e) => tracing::error!(%e, "publishing the head"),
        }
        for s in settled {
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

    /// The spec's `beacon_block` gossip rules, in order: the IGNORE checks on slot,
    /// finalization and what is already known; one block per proposer and slot; then the
    /// full verification (REJECT on the block's fault, IGNORE on nobody's).
    fn gossip(
        &mut self,
        topic: GossipTopic,
        block: Result<Decoded<C::Block>, BlockError>,
        source: &BlockSource,
        current_slot: u64,
    ) -> Result<GossipVerdict, ImportError> {
        let GossipTopic::BeaconBlock = topic;
        let block = match block {
            Ok(b) => b,
            Err(e) => return Ok(GossipVerdict::Reject(e.to_string())),
        };
        if let Err(e) = self.chain.gossip_prechecks(&block, current_slot) {
            return Ok(verdict_of(&e));
        }
        let key = C::proposer_and_slot(&block);
        let root = block.root;
        match self.seen_proposals.get(&key) {
            Some(r) if *r != root => {
                return Ok(GossipVerdict::Ignore(format!(
                    "a block for proposer {} at slot {} was already seen",
                    key.0, key.1
                )))
            }
            Some(_) => return Ok(GossipVerdict::Ignore("already known".into())),
            None => {}
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
        self.deliver(settled);
        let outcome = rx
            .try_recv()
            .map_err(|_| ImportError::Internal("the gossip block was not settled".into()))??;
        if outcome.imported == 1 {
            if self.seen_proposals.len() >= MAX_SEEN_PROPOSALS {
                self.seen_proposals.clear();
            }
            self.seen_proposals.insert(key, root);
            return Ok(GossipVerdict::Accept);
        }
        if outcome.skipped == 1 {
            return Ok(GossipVerdict::Ignore("already known".into()));
        }
        match &outcome.failed {
            Some(f) => {
                if let (Fault::Peer, Some(peer)) = (f.fault(), source.peer()) {
                    tracing::debug!(peer, error = %f.error, "gossip block rejected");
                }
                Ok(verdict_of(&f.error))
            }
            None => Err(ImportError::Internal(
                "gossip block neither imported nor refused".into(),
            )),
        }
    }
}

/// The gossip verdict of a refused block: REJECT when the block is at fault, IGNORE
/// otherwise.
pub fn verdict_of(e: &BlockError) -> GossipVerdict {
    match e.fault() {
        Fault::Peer => GossipVerdict::Reject(e.to_string()),
        Fault::Nobody | Fault::Node => GossipVerdict::Ignore(e.to_string()),
    }
}

fn epoch_of(preset: Preset, slot: u64) -> u64 {
    slot / match preset {
        Preset::Minimal => 8,
        Preset::Mainnet => 32,
    }
}
