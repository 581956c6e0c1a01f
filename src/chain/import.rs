//! The batch import pipeline for one preset (compiled per preset, see `chain::minimal` /
//! `chain::mainnet`; the preset-independent half is `chain::pipeline`).
//!
//! Per segment (see [`Chain::submit_segment`]; the chain service feeds it): blocks already imported are skipped; the rest
//! split into runs of blocks that each build on the previous one; a run is applied to its
//! parent's state with every signature set collected (the epoch boundaries through the
//! checkpoint-state cache, the state roots through the root cache carried from block to
//! block), then all the run's sets are resolved against the resident pubkey table in ONE
//! aggregator call (GPU or CPU) and verified in ONE randomized batch. A failure is bisected
//! to the first bad block: the blocks before it are imported (applied again and written),
//! the bad one is reported with its reason. Fork choice (proto-array) picks the head, and
//! the run, its state summaries, a snapshot every `snapshot_every_epochs` epochs and the new
//! head and checkpoints go to RocksDB in one atomic, synced write.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::{t, types};
use crate::accel::aggregate::PubkeyAggregator;
use crate::cache::budget::MemoryBudget;
use crate::cache::checkpoint::{CheckpointKey, CheckpointStateCache, TieredConfig};
use crate::cache::lru::WeighedLru;
use crate::cache::metrics::CacheMetrics;
use crate::cache::pool::BufferPool;
use crate::cache::preload::{PreloadRequest, Preloader};
use crate::cache::CachedState;
use crate::chain::error::{BlockError, FailedBlock};
use crate::chain::fork_choice::{ForkChoice, ForkChoiceBlock, ForkChoiceConfig};
use crate::chain::pipeline::{
    hex, BatchStats, Decoded, ImportError, ImportOptions, SegmentOutcome, Settled, Verification,
};
use crate::chain::pubkeys::{KeysLoad, ResidentKeys};
use crate::chain::resolve::{verify_sets_in_table, SetCheck, SetOwner};
use crate::chain::{Anchor, OldestBlock, META_ANCHOR, META_OLDEST_BLOCK, META_PRESET};
use crate::store::{Checkpoint, Head, StateSummary, Store};
use crate::transition::{
    ChainConfig, PhaseTimes, SignatureChecker, TransitionCtx, TransitionError,
};
use crate::types::ssz::{ssz_encode, SszDecode};
use crate::types::Preset;
use types::{BeaconBlockBody, BeaconState, SignedBeaconBlock};

type Root = [u8; 32];

/// A latest message: (validator, block root voted for, target epoch).
type Vote = (u64, Root, u64);

impl CachedState for BeaconState {
    fn encode_ssz(&self) -> Result<Vec<u8>, String> {
        ssz_encode(self).map_err(|e| e.to_string())
    }

    fn decode_ssz(bytes: &[u8]) -> Result<Self, String> {
        BeaconState::ssz_decode(bytes).map_err(|e| e.to_string())
    }

    fn approx_bytes(&self) -> usize {
        // The registry and its per-validator lists dominate; the fixed vectors are
        // counted by their bounds.
        let n = self.validators.len();
        n * (121 + 8 + 1 + 1 + 8)
            + 32 * (2 * types::SLOTS_PER_HISTORICAL_ROOT + types::EPOCHS_PER_HISTORICAL_VECTOR)
            + 8 * types::EPOCHS_PER_SLASHINGS_VECTOR
            + 64 * self.historical_summaries.len()
            + 192 * self.pending_deposits.len()
            + 4096
    }
}

fn block_bytes(b: &Arc<SignedBeaconBlock>) -> usize {
    // Attestation bits and the payload dominate; a rough count is enough for the budget.
    let body = &b.message.body;
    1024 + body.attestations.len() * 512
        + body.execution_payload.transactions.len() * 256
        + body.execution_payload.extra_data.len()
}

fn cp(c: &types::Checkpoint) -> Checkpoint {
    Checkpoint {
        epoch: c.epoch,
        root: *c.root.as_bytes(),
    }
}

fn internal(e: impl std::fmt::Display) -> ImportError {
    ImportError::Internal(e.to_string())
}

/// The preset this module is compiled for.
pub const PRESET: Preset = super::PRESET;

/// What an applied block leaves for the commit and for fork choice.
struct Applied {
    root: Root,
    parent: Root,
    slot: u64,
    state_root: Root,
    justified: Checkpoint,
    finalized: Checkpoint,
    /// The post state's pulled-up checkpoints (fork choice's `compute_pulled_up_tip`).
    unrealized_justified: Checkpoint,
    unrealized_finalized: Checkpoint,
    execution_block_hash: Root,
    /// (validator, block root voted for, target epoch) of each attester in the block.
    votes: Vec<Vote>,
    /// The attesting indices of both attestations of each attester slashing.
    slashings: Vec<(Vec<u64>, Vec<u64>)>,
    /// The post state when this block opens a snapshot period (encoded at the commit,
    /// which runs beside the next run's transition).
    snapshot: Option<Box<BeaconState>>,
}

/// A run applied to its parent state: the post state, what each block left, the
/// collected signature sets, and the first block that failed its transition (if any).
struct AppliedRun {
    state: BeaconState,
    /// Time the run's transition spent in epoch processing and state roots.
    phases: PhaseTimes,
    applied: Vec<Applied>,
    sets: Vec<crate::bls::SignatureSet>,
    owners: Vec<SetOwner>,
    failed: Option<(usize, BlockError)>,
}

/// A run applied but not yet verified: its signatures are checked while the next run is
/// applied (see [`Chain::submit_segment`]).
struct Pending {
    /// The segment's id (see [`Chain::submit_segment`]).
    id: u64,
    run: Vec<Decoded<SignedBeaconBlock>>,
    applied: AppliedRun,
    /// What the segment did so far (its skipped blocks, its transition time).
    stats: BatchStats,
}

/// The chain as this node verified it: the store, fork choice, the head state, and the
/// caches the pipeline works through.
pub struct Chain {
    store: Arc<Store>,
    opts: ImportOptions,
    anchor: Anchor,
    head_root: Root,
    /// The head block's post state (shared with the published head snapshot).
    head_state: Arc<BeaconState>,
    /// The transition context: the chain's shufflings and pubkey index (shared with the
    /// preloader's sibling context) and the state-root cache carried through the
    /// transition from block to block.
    ctx: TransitionCtx,
    /// Every validator's key at its index (KeyValidate'd once, stored in the datadir),
    /// resident on the GPU.
    keys: ResidentKeys,
    aggregator: Box<dyn PubkeyAggregator>,
    fork_choice: ForkChoice,
    /// Parent and slot of every block fork choice holds.
    parents: HashMap<Root, (Root, u64)>,
    forked: bool,
    checkpoints: Arc<CheckpointStateCache<BeaconState>>,
    blocks: WeighedLru<Root, Arc<SignedBeaconBlock>>,
    balances: Option<(Checkpoint, Arc<Vec<u64>>, u64)>,
    budget: Arc<MemoryBudget>,
    metrics: Arc<CacheMetrics>,
    preloader: Option<Preloader<BeaconState>>,
    pool: BufferPool,
    /// The segment applied but not yet verified (see [`Chain::submit_segment`]).
    pending: Option<Pending>,
}

impl Chain {
    /// Open the chain in `datadir` (RocksDB under `db/`, the checkpoint states' disk tier
    /// under `cache/`). A new datadir needs `genesis` (SSZ of the genesis state); an
    /// existing one checks it against the anchor it was created from. The head state is
    /// rebuilt from the latest snapshot at or before the finalized block, replaying the
    /// stored blocks after it (fork choice is rebuilt from the same replay).
    pub fn open(
        datadir: &Path,
        genesis: Option<&[u8]>,
        cfg: ChainConfig,
        opts: ImportOptions,
        aggregator: Box<dyn PubkeyAggregator>,
    ) -> Result<Self, ImportError> {
        std::fs::create_dir_all(datadir)
            .map_err(|e| internal(format!("{}: {e}", datadir.display())))?;
        let store = Store::open_with(
            datadir.join("db"),
            crate::store::StoreConfig {
                batch_threshold_bytes: opts.write_batch_bytes,
            },
        )?;
        let store = Arc::new(store);
        let budget = Arc::new(MemoryBudget::new(opts.memory_budget));
        let metrics = CacheMetrics::new();
        let checkpoints = Arc::new(CheckpointStateCache::new(
            TieredConfig {
                memory_entries: opts.memory_states,
                disk_entries: opts.disk_states,
                disk_dir: datadir.join("cache").join("checkpoint_states"),
            },
            budget.clone(),
            metrics.clone(),
        )?);
        let blocks = WeighedLru::new(
            "blocks",
            512,
            block_bytes as fn(&Arc<SignedBeaconBlock>) -> usize,
            budget.clone(),
            metrics.clone(),
        );
        let genesis_state = genesis
            .map(|g| {
                BeaconState::ssz_decode(g).map_err(|e| {
                    ImportError::Genesis(format!("not a {} state: {e}", PRESET.name()))
                })
            })
            .transpose()?;
        let anchor = match store.get_metadata(META_ANCHOR)? {
            Some(bytes) => {
                let anchor = Anchor::decode(&bytes).map_err(internal)?;
                let preset = store.get_metadata(META_PRESET)?.unwrap_or_default();
                if preset != PRESET.name().as_bytes() {
                    return Err(ImportError::Genesis(format!(
                        "the datadir holds a {} chain, not {}",
                        String::from_utf8_lossy(&preset),
                        PRESET.name()
                    )));
                }
                if let Some(state) = genesis_state.as_ref().filter(|s| s.slot == anchor.slot) {
                    let root = t::state_root_of(state).map_err(internal)?;
                    if root != anchor.state_root {
                        return Err(ImportError::Genesis(format!(
                            "the datadir was created from another genesis (state root 0x{}, given 0x{})",
                            hex(&anchor.state_root),
                            hex(&root)
                        )));
                    }
                }
                // A genesis state given for a datadir anchored at a checkpoint: of its chain.
                if let Some(state) = genesis_state.as_ref().filter(|s| s.slot != anchor.slot) {
                    let ours =
                        BeaconState::ssz_decode(&store.get_state(&anchor.state_root)?.ok_or_else(
                            || internal("the anchor state is missing from the store"),
                        )?)
                        .map_err(internal)?;
                    if ours.genesis_validators_root != state.genesis_validators_root {
                        return Err(ImportError::Genesis(
                            "the datadir was created from a checkpoint of another chain".into(),
                        ));
                    }
                }
                anchor
            }
            None => {
                let state = genesis_state.ok_or_else(|| {
                    ImportError::Genesis("a new datadir needs a genesis state".into())
                })?;
                init_anchor(&store, &state, None)?
            }
        };
        let anchor_state = BeaconState::ssz_decode(
            &store
                .get_state(&anchor.state_root)?
                .ok_or_else(|| internal("the anchor state is missing from the store"))?,
        )
        .map_err(internal)?;
        let anchor_cp = Checkpoint {
            epoch: t::compute_epoch_at_slot(anchor.slot),
            root: anchor.root,
        };
        let fc_config = ForkChoiceConfig::new(
            anchor_state.genesis_time,
            cfg.slot_duration_ms,
            types::SLOTS_PER_EPOCH as u64,
        );
        let mut fork_choice = ForkChoice::new(fc_config, anchor.root, anchor.slot, anchor_cp);
        // The store's time is the wall clock (the chain service ticks it on).
        fork_choice.on_tick_ms(unix_now_ms());
        let mut ctx = TransitionCtx::new(cfg);
        if let Some(device) = &opts.resident_roots {
            match crate::accel::resident::ResidentTrees::new(device.clone()) {
                Ok(trees) => ctx.roots.set_resident(Some(trees)),
                Err(e) => tracing::warn!(
                    "state roots: no resident GPU trees ({e}); the trees stay on the CPU"
                ),
            }
        }
        let mut chain = Chain {
            store,
            opts,
            anchor,
            head_root: anchor.root,
            head_state: Arc::new(anchor_state),
            ctx,
            keys: ResidentKeys::default(),
            aggregator,
            fork_choice,
            parents: HashMap::new(),
            forked: false,
            checkpoints,
            blocks,
            balances: None,
            budget,
            metrics,
            preloader: None,
            pool: BufferPool::new(256, crate::chain::pipeline::MAX_BLOCK_BYTES),
            pending: None,
        };
        chain.load_head()?;
        if chain.opts.preload {
            let ctx = chain.ctx.sibling();
            chain.preloader = Some(Preloader::spawn(
                chain.checkpoints.clone(),
                Arc::new(move |s: &BeaconState, epoch: u64| advance_to_epoch(s, epoch, &ctx)),
            ));
        }
        Ok(chain)
    }

    /// Rebuild the head state and fork choice from the store (see [`open`](Self::open)).
    fn load_head(&mut self) -> Result<(), ImportError> {
        let head = self
            .store
            .head()?
            .ok_or_else(|| internal("the store has an anchor but no head"))?;
        if head.root == self.anchor.root {
            return self.load_keys();
        }
        let finalized = self.store.finalized_checkpoint()?.unwrap_or(Checkpoint {
            epoch: t::compute_epoch_at_slot(self.anchor.slot),
            root: self.anchor.root,
        });
        let justified = self.store.justified_checkpoint()?.unwrap_or(finalized);
        let finalized_slot = self.slot_of(&finalized.root)?;
        // Walk back from the head to a stored snapshot at or before the finalized block.
        let mut chain = Vec::new();
        let mut r = head.root;
        let base = loop {
            if r == self.anchor.root {
                break self
                    .snapshot(&self.anchor.state_root)?
                    .ok_or_else(|| internal("the anchor state is missing from the store"))?;
            }
            let b = self.block(&r)?;
            if b.message.slot <= finalized_slot {
                if let Some(s) = self.snapshot(b.message.state_root.as_bytes())? {
                    break s;
                }
            }
            r = *b.message.parent_root.as_bytes();
            chain.push(b);
        };
        chain.reverse();
        let time = self.fork_choice.time_ms();
        let config = *self.fork_choice.config();
        self.fork_choice = ForkChoice::new(config, finalized.root, finalized_slot, finalized);
        // The stored blocks were accepted when they came: replay them at the later of the
        // clock and the head's slot.
        self.fork_choice
            .on_tick_ms(time.max(config.slot_start_ms(head.slot)));
        let mut state = base;
        let mut tctx = self.ctx.take();
        // The root of `state` once a block is replayed (the snapshot's is not kept).
        let mut state_root: Option<[u8; 32]> = None;
        let result = (|| -> Result<(), ImportError> {
            for b in chain.iter() {
                let root = t::hash_tree_root(&b.message).map_err(internal)?;
                let votes =
                    replay_block(&mut state, b, &mut tctx, &mut state_root).map_err(internal)?;
                if b.message.slot > finalized_slot {
                    let parent = *b.message.parent_root.as_bytes();
                    let (uj, uf) = t::compute_unrealized_checkpoints(&state).map_err(internal)?;
                    self.fork_choice.on_block(&ForkChoiceBlock {
                        root,
                        parent_root: parent,
                        slot: b.message.slot,
                        justified: cp(&state.current_justified_checkpoint),
                        finalized: cp(&state.finalized_checkpoint),
                        unrealized_justified: cp(&uj),
                        unrealized_finalized: cp(&uf),
                        execution_block_hash: *b
                            .message
                            .body
                            .execution_payload
                            .block_hash
                            .as_bytes(),
                    })?;
                    self.parents.insert(root, (parent, b.message.slot));
                    self.fork_choice.update_latest_messages(votes);
                    for (a1, a2) in slashings_of(b) {
                        self.fork_choice.on_attester_slashing(&a1, &a2);
                    }
                }
            }
            Ok(())
        })();
        self.ctx = tctx;
        result?;
        self.fork_choice.update_checkpoints(justified, finalized);
        let state_root = match state_root {
            Some(r) => r,
            None => t::state_root_of(&state).map_err(internal)?,
        };
        let want = self.store.get_state_summary(&state_root)?;
        if want.map(|s| s.latest_block_root) != Some(head.root) {
            return Err(internal(format!(
                "replaying the stored blocks to the head 0x{} gives a state the store does not know",
                hex(&head.root)
            )));
        }
        self.head_root = head.root;
        self.head_state = Arc::new(state);
        self.load_keys()
    }

    /// The pubkey table of the head's registry: the datadir's stored table as far as it
    /// holds (checked), the rest KeyValidate'd and stored (see `chain::pubkeys`).
    fn load_keys(&mut self) -> Result<(), ImportError> {
        let t = Instant::now();
        self.keys = ResidentKeys::load(&self.store, &self.head_state.validators, |v| {
            *v.pubkey.as_bytes()
        })?;
        let load = self.keys.load_stats();
        if self.keys.has_unstored() {
            let mut batch = self.store.batch().with_sync(true);
            self.keys.store_into(&mut batch)?;
            batch.commit()?;
            self.keys.stored_now();
        }
        tracing::info!(
            loaded = load.loaded,
            validated = load.validated,
            refused_chunks = load.refused_chunks,
            ms = t.elapsed().as_millis() as u64,
            "pubkey table"
        );
        if load.refused_chunks > 0 {
            tracing::warn!(
                refused_chunks = load.refused_chunks,
                "the stored pubkey table was refused in part: validated again and rewritten"
            );
        }
        Ok(())
    }

    /// How the pubkey table was built at open: keys loaded from the datadir, keys
    /// KeyValidate'd, stored chunks refused.
    pub fn keys_load(&self) -> KeysLoad {
        self.keys.load_stats()
    }

    /// The store this chain writes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, shared (readers use it beside the chain).
    pub fn store_arc(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The block the chain starts from.
    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    /// The chain config.
    pub fn config(&self) -> &ChainConfig {
        self.ctx.cfg()
    }

    /// The chain's transition context (siblings share its caches: `transition_ctx().sibling()`).
    pub fn transition_ctx(&self) -> &TransitionCtx {
        &self.ctx
    }

    /// The head state's root without hashing: the head block's `state_root` (checked when
    /// it was imported), or the anchor's.
    pub fn known_head_state_root(&self) -> Result<Root, ImportError> {
        if self.head_root == self.anchor.root {
            return Ok(self.anchor.state_root);
        }
        Ok(*self.block(&self.head_root)?.message.state_root.as_bytes())
    }

    /// The head block's root and slot.
    pub fn head(&self) -> Head {
        Head {
            slot: self.head_state.latest_block_header.slot,
            root: self.head_root,
        }
    }

    /// The head block's post state.
    pub fn head_state(&self) -> &BeaconState {
        &self.head_state
    }

    /// The head block's post state, shared (what the published head snapshot holds).
    pub fn head_state_arc(&self) -> Arc<BeaconState> {
        self.head_state.clone()
    }

    /// The head state's root.
    pub fn head_state_root(&self) -> Result<Root, ImportError> {
        t::state_root_of(&self.head_state).map_err(internal)
    }

    pub fn justified_checkpoint(&self) -> Checkpoint {
        self.fork_choice.justified_checkpoint()
    }

    pub fn finalized_checkpoint(&self) -> Checkpoint {
        self.fork_choice.finalized_checkpoint()
    }

    /// Latest messages from gossip (validator, block root, target epoch): fork choice's
    /// `on_attestation` for each; the weights move at the next head computation.
    pub(crate) fn on_gossip_votes(&mut self, votes: &[(u64, Root, u64)]) {
        self.fork_choice
            .update_latest_messages(votes.iter().copied());
    }

    /// Fork choice's `on_tick` at a Unix time in milliseconds (an earlier time changes
    /// nothing).
    pub fn on_tick_ms(&mut self, time_ms: u64) {
        self.fork_choice.on_tick_ms(time_ms);
    }

    /// Equivocating validators (the intersection of a checked attester slashing's two
    /// attestations) for fork choice's `on_attester_slashing`.
    pub fn on_attester_slashing(&mut self, attestation_1: &[u64], attestation_2: &[u64]) {
        self.fork_choice
            .on_attester_slashing(attestation_1, attestation_2);
    }

    /// The caches' metrics (OpenMetrics text through `encode_text`).
    pub fn metrics(&self) -> &Arc<CacheMetrics> {
        &self.metrics
    }

    /// The checkpoint-state cache (its tiers and counters).
    pub fn checkpoint_cache(&self) -> &Arc<CheckpointStateCache<BeaconState>> {
        &self.checkpoints
    }

    pub fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Wait until the preloader has finished what it was asked (tests, benches).
    pub fn wait_preloaded(&self) {
        if let Some(p) = &self.preloader {
            p.wait_idle();
        }
    }

    fn snapshot(&self, state_root: &Root) -> Result<Option<BeaconState>, ImportError> {
        self.store
            .get_state(state_root)?
            .map(|b| BeaconState::ssz_decode(&b).map_err(internal))
            .transpose()
    }

    /// A stored block, through the block cache.
    pub(crate) fn block(&self, root: &Root) -> Result<Arc<SignedBeaconBlock>, ImportError> {
        if let Some(b) = self.blocks.get(root) {
            return Ok(b);
        }
        let bytes = self
            .store
            .get_block(root)?
            .ok_or_else(|| internal(format!("block 0x{} is not in the store", hex(root))))?;
        let b = Arc::new(SignedBeaconBlock::ssz_decode(&bytes).map_err(internal)?);
        self.blocks.insert(*root, b.clone());
        Ok(b)
    }

    fn slot_of(&self, root: &Root) -> Result<u64, ImportError> {
        if *root == self.anchor.root {
            return Ok(self.anchor.slot);
        }
        if let Some(&(_, slot)) = self.parents.get(root) {
            return Ok(slot);
        }
        Ok(self.block(root)?.message.slot)
    }

    /// The post state of block `root`: the head's, or rebuilt from the nearest stored
    /// snapshot by replaying the blocks after it (the database tier).
    pub fn state_of_block(&self, root: &Root) -> Result<BeaconState, ImportError> {
        if *root == self.head_root {
            return Ok((*self.head_state).clone());
        }
        rebuild_state_of_block(&self.store, &self.anchor, &self.ctx, root, |r| {
            self.block(r)
        })
    }

    /// The state of checkpoint `(epoch, root)`: block `root`'s state advanced to the
    /// epoch's first slot — from memory, disk, or rebuilt from the database.
    pub fn checkpoint_state(
        &self,
        epoch: u64,
        root: &Root,
    ) -> Result<Arc<BeaconState>, ImportError> {
        let key = CheckpointKey { epoch, root: *root };
        let cache = self.checkpoints.clone();
        let found = cache.get_or_load(&key, || {
            let state = self.state_of_block(root).map_err(|e| e.to_string())?;
            if t::compute_start_slot_at_epoch(epoch).map_err(|e| e.to_string())? > state.slot {
                advance_to_epoch(&state, epoch, &self.ctx).map(Some)
            } else {
                Ok(Some(state))
            }
        })?;
        found
            .map(|(s, _)| s)
            .ok_or_else(|| internal(format!("checkpoint ({epoch}, 0x{}) not found", hex(root))))
    }

    pub(crate) fn finalized_slot(&self) -> Result<u64, ImportError> {
        self.slot_of(&self.fork_choice.finalized_checkpoint().root)
    }

    /// Fork choice, read-only (the gossip checks walk its blocks).
    pub(crate) fn fork_choice(&self) -> &ForkChoice {
        &self.fork_choice
    }

    /// Whether block `root` at `slot` is already imported: in fork choice, or at or below
    /// the finalized slot on the canonical chain.
    pub(crate) fn is_imported(&self, root: &Root, slot: u64) -> Result<bool, ImportError> {
        if self.fork_choice.contains(root) || *root == self.anchor.root {
            return Ok(true);
        }
        Ok(slot <= self.finalized_slot()? && self.store.block_root_at_slot(slot)? == Some(*root))
    }

    /// The buffer pool block bytes come back to once the chain is done with them (a
    /// client reading blocks takes its buffers from here).
    pub fn buffer_pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Decode one block of a segment: strict SSZ of the preset's `SignedBeaconBlock` within
    /// [`MAX_BLOCK_BYTES`](crate::chain::pipeline::MAX_BLOCK_BYTES), and its root.
    pub fn decode_block(
        pool: &BufferPool,
        index: usize,
        ssz: Vec<u8>,
    ) -> Result<Decoded<SignedBeaconBlock>, BlockError> {
        if ssz.len() > crate::chain::pipeline::MAX_BLOCK_BYTES {
            return Err(BlockError::Decode(format!(
                "{} bytes, over the {}-byte bound",
                ssz.len(),
                crate::chain::pipeline::MAX_BLOCK_BYTES
            )));
        }
        let block =
            SignedBeaconBlock::ssz_decode(&ssz).map_err(|e| BlockError::Decode(e.to_string()))?;
        let root =
            t::hash_tree_root(&block.message).map_err(|e| BlockError::Internal(e.to_string()))?;
        Ok(Decoded {
            index,
            slot: block.message.slot,
            root,
            block,
            ssz: pool.adopt(ssz),
        })
    }

    /// Import one segment of decoded blocks (in the order handed in), pipelined with the
    /// segment before it: when this segment extends the pending one, the pending one's
    /// signatures are verified and it is committed (`rayon::join`) while this one is
    /// applied. With `more`, the caller has another segment coming, so this one stays
    /// pending — its verification overlaps the next one's transition — until that arrives
    /// or [`flush`](Self::flush) is called. Returns every segment settled by this call.
    ///
    /// A segment that does not extend the pending one (per-block verification, a fork,
    /// several runs) first settles the pending segment, then goes run by run.
    pub fn submit_segment(
        &mut self,
        id: u64,
        blocks: Vec<Decoded<SignedBeaconBlock>>,
        more: bool,
    ) -> Vec<Settled> {
        let _span = tracing::info_span!("segment", id, blocks = blocks.len()).entered();
        let mut settled = Vec::new();
        let mut stats = BatchStats::default();
        let fresh = match self.fresh_blocks(blocks, &mut stats) {
            Ok(f) => f,
            Err(e) => {
                settled.extend(self.flush());
                settled.push(Settled { id, result: Err(e) });
                return settled;
            }
        };
        if fresh.is_empty() {
            if !more {
                settled.extend(self.flush());
            }
            settled.push(Settled {
                id,
                result: outcome_of(Ok(()), stats),
            });
            return settled;
        }
        let tip = self
            .pending
            .as_ref()
            .and_then(|p| p.applied.applied.last().map(|a| a.root))
            .unwrap_or(self.head_root);
        let parent = *fresh[0].block.message.parent_root.as_bytes();
        let one_run = fresh
            .windows(2)
            .all(|w| w[1].block.message.parent_root.as_bytes() == &w[0].root);
        if self.opts.verification != Verification::Batched || !one_run || parent != tip {
            settled.extend(self.flush());
            let result = self.import_runs(&fresh, &mut stats);
            settled.push(Settled {
                id,
                result: outcome_of(result, stats),
            });
            self.after_batch(!more);
            return settled;
        }
        let pre = match self.pending.as_ref() {
            Some(p) => p.applied.state.clone(),
            None => (*self.head_state).clone(),
        };
        let ctx = self.apply_ctx(&parent);
        let mut tctx = self.ctx.take();
        let applied = match self.pending.take() {
            Some(mut p) => {
                let sets = std::mem::take(&mut p.applied.sets);
                let mut p_stats = std::mem::take(&mut p.stats);
                p_stats.signature_sets += sets.len();
                // Verify and commit the pending segment while the new one is applied: the
                // applying side owns everything it touches (the state, the root cache, a
                // handle on the checkpoint cache), the other side has the chain.
                let this = &mut *self;
                let (p_result, (applied, apply_time)) = rayon::join(
                    || {
                        let t = Instant::now();
                        let v = this.verify_sets(
                            sets,
                            &p.applied.owners,
                            &p.applied.state,
                            &mut p_stats,
                        );
                        p_stats.signatures += t.elapsed();
                        this.settle(&p.run, p.applied, v, &mut p_stats)
                    },
                    || {
                        let t = Instant::now();
                        let a = apply_run_with(&ctx, &mut tctx, pre, parent, &fresh);
                        (a, t.elapsed())
                    },
                );
                self.ctx = tctx;
                stats.transition += apply_time;
                if let Ok(a) = &applied {
                    add_phases(&mut stats, &a.phases);
                }
                let p_ok = p_result.is_ok();
                settled.push(Settled {
                    id: p.id,
                    result: outcome_of(p_result, p_stats),
                });
                if !p_ok {
                    // The segment this one builds on was refused (or the node failed on
                    // it): nothing of this one can be imported; its parent is not known.
                    let first = &fresh[0];
                    let failed = FailedBlock {
                        index: first.index,
                        slot: first.slot,
                        root: first.root,
                        error: BlockError::UnknownParent { parent },
                    };
                    settled.push(Settled {
                        id,
                        result: outcome_of(Err(ImportError::InvalidBlock(failed)), stats),
                    });
                    self.after_batch(!more);
                    return settled;
                }
                applied
            }
            None => {
                let t = Instant::now();
                let a = apply_run_with(&ctx, &mut tctx, pre, parent, &fresh);
                self.ctx = tctx;
                stats.transition += t.elapsed();
                if let Ok(a) = &a {
                    add_phases(&mut stats, &a.phases);
                }
                a
            }
        };
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                settled.push(Settled { id, result: Err(e) });
                self.after_batch(!more);
                return settled;
            }
        };
        self.grow_table_from(&applied.state);
        let failed = applied.failed.is_some();
        self.pending = Some(Pending {
            id,
            run: fresh,
            applied,
            stats,
        });
        if failed || !more {
            // A block failed its transition (nothing can build on this segment), or no
            // segment follows: settle it now.
            settled.extend(self.flush());
        }
        self.after_batch(!more);
        settled
    }

    /// Verify and settle the pending segment, if any.
    pub fn flush(&mut self) -> Vec<Settled> {
        let Some(mut p) = self.pending.take() else {
            return Vec::new();
        };
        let mut stats = std::mem::take(&mut p.stats);
        let t = Instant::now();
        let sets = std::mem::take(&mut p.applied.sets);
        stats.signature_sets += sets.len();
        let verified = self.verify_sets(sets, &p.applied.owners, &p.applied.state, &mut stats);
        stats.signatures += t.elapsed();
        let result = self.settle(&p.run, p.applied, verified, &mut stats);
        vec![Settled {
            id: p.id,
            result: outcome_of(result, stats),
        }]
    }

    /// Blocks already imported are dropped (counted in `stats.skipped`).
    fn fresh_blocks(
        &self,
        blocks: Vec<Decoded<SignedBeaconBlock>>,
        stats: &mut BatchStats,
    ) -> Result<Vec<Decoded<SignedBeaconBlock>>, ImportError> {
        let mut fresh = Vec::with_capacity(blocks.len());
        for d in blocks {
            if self.is_imported(&d.root, d.slot)? {
                stats.skipped += 1;
            } else {
                fresh.push(d);
            }
        }
        Ok(fresh)
    }

    /// Whether a segment is pending verification.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Runs of blocks each building on the previous one, imported one after the other
    /// (per block in per-block mode).
    fn import_runs(
        &mut self,
        fresh: &[Decoded<SignedBeaconBlock>],
        stats: &mut BatchStats,
    ) -> Result<(), ImportError> {
        let mut start = 0;
        while start < fresh.len() {
            let mut end = start + 1;
            while end < fresh.len()
                && fresh[end].block.message.parent_root.as_bytes() == &fresh[end - 1].root
            {
                end += 1;
            }
            let run = &fresh[start..end];
            match self.opts.verification {
                Verification::Batched => self.import_run(run, stats)?,
                Verification::PerBlock => {
                    for d in run {
                        self.import_run(std::slice::from_ref(d), stats)?;
                    }
                }
            }
            start = end;
        }
        Ok(())
    }

    /// After a batch: warm the next epochs' checkpoint states when the importer has caught
    /// up (`at_head`: the batch closed on its timeout, so the queue ran dry — during a
    /// bulk import the preloader would only compete for the cores), and evict under the
    /// memory budget.
    fn after_batch(&mut self, at_head: bool) {
        if at_head {
            if let Some(p) = &self.preloader {
                let epoch = t::get_current_epoch(&self.head_state);
                p.request(PreloadRequest {
                    root: self.head_root,
                    state: self.head_state.clone(),
                    epochs: vec![epoch + 1, epoch + 2],
                });
            }
        }
        self.checkpoints.flush_deferred();
        let evicted = self.checkpoints.evict_to_budget() + self.blocks.evict_to_budget();
        if evicted > 0 {
            tracing::info!(
                evicted,
                used = self.budget.used(),
                limit = ?self.budget.limit(),
                "memory budget: evicted the coldest cache entries"
            );
        }
    }

    /// The state a run starts from: the head's, or (a fork) its parent's, rebuilt.
    fn pre_state(
        &mut self,
        run: &[Decoded<SignedBeaconBlock>],
    ) -> Result<(Root, BeaconState), ImportError> {
        let first = &run[0];
        let parent = *first.block.message.parent_root.as_bytes();
        if parent == self.head_root {
            Ok((parent, (*self.head_state).clone()))
        } else if self.fork_choice.contains(&parent) {
            self.forked = true;
            Ok((parent, self.state_of_block(&parent)?))
        } else {
            Err(ImportError::InvalidBlock(FailedBlock {
                index: first.index,
                slot: first.slot,
                root: first.root,
                error: BlockError::UnknownParent { parent },
            }))
        }
    }

    /// Apply `run` to its parent's state, verify its signatures (one batch, or each set
    /// alone), and commit it; on a bad block, import the blocks before it and report it.
    fn import_run(
        &mut self,
        run: &[Decoded<SignedBeaconBlock>],
        stats: &mut BatchStats,
    ) -> Result<(), ImportError> {
        let (parent, pre) = self.pre_state(run)?;
        let t0 = Instant::now();
        let mut applied = self.apply_run(pre, parent, run)?;
        stats.transition += t0.elapsed();
        add_phases(stats, &applied.phases);
        self.grow_table_from(&applied.state);
        let t1 = Instant::now();
        let sets = std::mem::take(&mut applied.sets);
        stats.signature_sets += sets.len();
        let verified = self.verify_sets(sets, &applied.owners, &applied.state, stats);
        stats.signatures += t1.elapsed();
        self.settle(run, applied, verified, stats)
    }

    /// Append validators the run added (on the head's chain) to the pubkey table.
    fn grow_table_from(&mut self, state: &BeaconState) {
        if state.validators.len() > self.keys.len()
            && self
                .keys
                .matches(&state.validators, |v| v.pubkey.as_bytes())
        {
            self.keys.grow(&state.validators, |v| *v.pubkey.as_bytes());
        }
    }

    /// Resolve and verify a run's sets: against the resident table when the run's
    /// registry agrees with it, else through a table of just the keys the sets name.
    fn verify_sets(
        &self,
        sets: Vec<crate::bls::SignatureSet>,
        owners: &[SetOwner],
        state: &BeaconState,
        stats: &mut BatchStats,
    ) -> Result<(), crate::chain::SegmentError> {
        let aggregator = Timed {
            inner: self.aggregator.as_ref(),
            spent: std::sync::Mutex::new(std::time::Duration::ZERO),
        };
        let out = self.verify_sets_with(sets, owners, state, &aggregator);
        stats.aggregation += aggregator
            .spent
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        out
    }

    fn verify_sets_with(
        &self,
        sets: Vec<crate::bls::SignatureSet>,
        owners: &[SetOwner],
        state: &BeaconState,
        aggregator: &dyn PubkeyAggregator,
    ) -> Result<(), crate::chain::SegmentError> {
        let check = match self.opts.verification {
            Verification::Batched => SetCheck::Batch,
            Verification::PerBlock => SetCheck::EachAlone,
        };
        if sets.is_empty() {
            Ok(())
        } else if state.validators.len() <= self.keys.len()
            && self
                .keys
                .matches(&state.validators, |v| v.pubkey.as_bytes())
        {
            let unusable = &self.keys.unusable;
            verify_sets_in_table(
                sets,
                owners,
                &self.keys.table,
                |i| !unusable.contains(&i),
                aggregator,
                check,
            )
        } else {
            let pubkey_of = |i: u32| {
                state
                    .validators
                    .get(i as usize)
                    .map(|v| *v.pubkey.as_bytes())
            };
            crate::chain::resolve::resolve_sets(sets, owners, pubkey_of, aggregator)
        }
    }

    /// Commit a verified run, or — on its first bad block — import the blocks before it
    /// and report that block.
    fn settle(
        &mut self,
        run: &[Decoded<SignedBeaconBlock>],
        applied: AppliedRun,
        verified: Result<(), crate::chain::SegmentError>,
        stats: &mut BatchStats,
    ) -> Result<(), ImportError> {
        let bad = match (applied.failed.clone(), verified) {
            (None, Ok(())) => None,
            (Some(failed), Ok(())) => Some(failed),
            (
                failed,
                Err(crate::chain::SegmentError::Signature {
                    index,
                    what,
                    reason,
                    ..
                }),
            ) => match failed {
                Some((i, error)) if i < index => Some((i, error)),
                _ => Some((index, BlockError::InvalidSignature { set: what, reason })),
            },
            (_, Err(e)) => return Err(internal(e)),
        };
        if let Some((index, error)) = bad {
            if index > 0 {
                self.import_run(&run[..index], stats)?;
            }
            let d = &run[index];
            tracing::warn!(slot = d.slot, root = %hex(&d.root), %error, fault = ?error.fault(), "invalid block");
            return Err(ImportError::InvalidBlock(FailedBlock {
                index: d.index,
                slot: d.slot,
                root: d.root,
                error,
            }));
        }
        let t2 = Instant::now();
        self.finish_run(run, applied.state, applied.applied)?;
        stats.write += t2.elapsed();
        stats.blocks += run.len();
        stats
            .imported_blocks
            .extend(run.iter().map(|d| (d.slot, d.root)));
        Ok(())
    }

    /// Apply the run's transitions with every signature set collected. A transition
    /// failure stops the run there (recorded in `failed`); the node's own faults are
    /// errors.
    fn apply_run(
        &mut self,
        pre: BeaconState,
        parent: Root,
        run: &[Decoded<SignedBeaconBlock>],
    ) -> Result<AppliedRun, ImportError> {
        let ctx = self.apply_ctx(&parent);
        let mut tctx = self.ctx.take();
        let out = apply_run_with(&ctx, &mut tctx, pre, parent, run);
        self.ctx = tctx;
        out
    }

    fn apply_ctx(&self, parent: &Root) -> ApplyCtx {
        let fc = &self.fork_choice;
        let config = fc.config();
        let finalized = fc.finalized_checkpoint();
        let finalized_slot = config.start_slot(finalized.epoch);
        ApplyCtx {
            checkpoints: self.checkpoints.clone(),
            every: self.opts.snapshot_every_epochs.max(1),
            current_slot: fc.current_slot(),
            now_ms: fc.ms_since_genesis(),
            slot_ms: config.slot_duration_ms,
            finalized,
            finalized_slot,
            // A parent not in fork choice yet is the pending run's tip, which descends.
            parent_descends_from_finalized: !fc.contains(parent)
                || fc.ancestor_at(parent, finalized_slot) == Some(finalized.root),
        }
    }

    /// Fork choice, the atomic write, and the new head.
    fn finish_run(
        &mut self,
        run: &[Decoded<SignedBeaconBlock>],
        state: BeaconState,
        applied: Vec<Applied>,
    ) -> Result<(), ImportError> {
        let old_finalized = self.fork_choice.finalized_checkpoint();
        for a in &applied {
            if self.fork_choice.is_timely(a.slot) {
                // The proposer boost compares with the head before the block (`get_head`).
                let (balances, total) = self.justified_balances()?;
                self.fork_choice.find_head(&balances, total)?;
            }
            self.fork_choice.on_block(&ForkChoiceBlock {
                root: a.root,
                parent_root: a.parent,
                slot: a.slot,
                justified: a.justified,
                finalized: a.finalized,
                unrealized_justified: a.unrealized_justified,
                unrealized_finalized: a.unrealized_finalized,
                execution_block_hash: a.execution_block_hash,
            })?;
            self.parents.insert(a.root, (a.parent, a.slot));
            self.fork_choice
                .update_latest_messages(a.votes.iter().copied());
            for (a1, a2) in &a.slashings {
                self.fork_choice.on_attester_slashing(a1, a2);
            }
        }
        let (balances, total) = self.justified_balances()?;
        let head = self.fork_choice.find_head(&balances, total)?;
        let last = applied.last().map(|a| a.root);
        let head_state = if Some(head) == last {
            Some(state)
        } else if head == self.head_root {
            None
        } else {
            Some(self.state_of_block(&head)?)
        };
        let head_slot = self.slot_of(&head)?;

        // One atomic, synced write: blocks, summaries, snapshots, the canonical index, and
        // last the checkpoints and the head (so a batch split by the 16 MiB auto-commit
        // never leaves a head pointing at unwritten data).
        let mut batch = self.store.batch().with_sync(true).grouped();
        for (d, a) in run.iter().zip(&applied) {
            batch.end_group()?;
            batch.put_block(&a.root, &d.ssz)?;
            batch.put_state_summary(
                &a.state_root,
                &StateSummary {
                    slot: a.slot,
                    latest_block_root: a.root,
                },
            )?;
            if let Some(state) = &a.snapshot {
                batch.put_state(&a.state_root, &ssz_encode(&**state).map_err(internal)?)?;
            }
        }
        if head != self.head_root {
            let (puts, deletes) = self.canonical_changes(&head, head_slot)?;
            for (slot, root) in puts {
                batch.put_block_root_at_slot(slot, &root)?;
            }
            for slot in deletes {
                batch.delete_block_root_at_slot(slot)?;
            }
        }
        let fc_justified = self.fork_choice.justified_checkpoint();
        let fc_finalized = self.fork_choice.finalized_checkpoint();
        batch.put_justified(&fc_justified)?;
        batch.put_finalized(&fc_finalized)?;
        batch.put_head(&Head {
            slot: head_slot,
            root: head,
        })?;
        // The keys the run's registry added (checked against the registry when loaded).
        self.keys.store_into(&mut batch)?;
        batch.commit()?;
        self.keys.stored_now();

        for (d, a) in run.iter().zip(&applied) {
            self.blocks.insert(a.root, Arc::new(d.block.clone()));
        }
        if let Some(s) = head_state {
            self.head_state = Arc::new(s);
        }
        self.head_root = head;
        if fc_finalized.epoch > old_finalized.epoch {
            self.on_finalized()?;
        }
        Ok(())
    }

    /// The `block_slots` changes that make `head`'s chain canonical: its blocks from the
    /// fork point up, and deletions of the old chain's slots it does not fill.
    #[allow(clippy::type_complexity)]
    fn canonical_changes(
        &self,
        head: &Root,
        head_slot: u64,
    ) -> Result<(Vec<(u64, Root)>, Vec<u64>), ImportError> {
        let mut path = Vec::new();
        let mut r = *head;
        let mut slot = head_slot;
        while r != self.anchor.root && self.store.block_root_at_slot(slot)? != Some(r) {
            path.push((slot, r));
            let Some(&(parent, _)) = self.parents.get(&r) else {
                break;
            };
            r = parent;
            slot = self.slot_of(&r)?;
        }
        let fork_slot = slot;
        let old_head_slot = self.head().slot;
        let filled: HashSet<u64> = path.iter().map(|(s, _)| *s).collect();
        let deletes = (fork_slot + 1..=old_head_slot)
            .filter(|s| !filled.contains(s))
            .collect();
        Ok((path, deletes))
    }

    /// Finalization advanced: prune fork choice, and the store's non-canonical blocks and
    /// states below the finalized slot when forks were seen.
    fn on_finalized(&mut self) -> Result<(), ImportError> {
        let pruned = self.fork_choice.prune()?;
        let finalized_slot = self.finalized_slot()?;
        // Checkpoint states below finalization are not needed any more (the database can
        // still rebuild one): dropping them keeps the memory tier from demoting to disk.
        let dropped = self
            .checkpoints
            .prune(self.fork_choice.finalized_checkpoint().epoch);
        tracing::debug!(dropped, "checkpoint states below finalization dropped");
        self.parents.retain(|_, (_, slot)| *slot >= finalized_slot);
        if self.forked && pruned > 0 {
            let mut canonical = HashSet::new();
            for item in self.store.block_roots_in_range(0, finalized_slot + 1)? {
                canonical.insert(item?.1);
            }
            let stats = self.store.prune_non_canonical(&canonical, finalized_slot)?;
            tracing::info!(?stats, finalized_slot, "pruned non-canonical data");
            self.forked = false;
        }
        Ok(())
    }

    /// Effective balances of the justified checkpoint's state (0 for inactive
    /// validators), for fork choice's weights.
    fn justified_balances(&mut self) -> Result<(Arc<Vec<u64>>, u64), ImportError> {
        let justified = self.fork_choice.justified_checkpoint();
        if let Some((c, b, total)) = &self.balances {
            if *c == justified {
                return Ok((b.clone(), *total));
            }
        }
        let state = self.checkpoint_state(justified.epoch, &justified.root)?;
        let (balances, total) = fork_choice_balances(&state);
        let balances = Arc::new(balances);
        self.balances = Some((justified, balances.clone(), total));
        Ok((balances, total))
    }
}

/// The post state of stored block `root`, rebuilt from the nearest stored snapshot at or
/// below it by replaying the stored blocks after it (`block` looks blocks up, through a
/// cache or straight from the store).
pub(crate) fn rebuild_state_of_block(
    store: &Store,
    anchor: &Anchor,
    ctx: &TransitionCtx,
    root: &Root,
    block: impl Fn(&Root) -> Result<Arc<SignedBeaconBlock>, ImportError>,
) -> Result<BeaconState, ImportError> {
    let snapshot = |state_root: &Root| -> Result<Option<BeaconState>, ImportError> {
        store
            .get_state(state_root)?
            .map(|b| BeaconState::ssz_decode(&b).map_err(internal))
            .transpose()
    };
    let mut chain = Vec::new();
    let mut r = *root;
    let base = loop {
        if r == anchor.root {
            break snapshot(&anchor.state_root)?
                .ok_or_else(|| internal("the anchor state is missing"))?;
        }
        let b = block(&r)?;
        if let Some(s) = snapshot(b.message.state_root.as_bytes())? {
            break s;
        }
        r = *b.message.parent_root.as_bytes();
        chain.push(b);
    };
    let mut state = base;
    // A sibling context: the chain's caches, its own root carry (from block to block).
    let mut ctx = ctx.sibling();
    let mut known_root = None;
    for b in chain.iter().rev() {
        replay_block(&mut state, b, &mut ctx, &mut known_root).map_err(internal)?;
    }
    Ok(state)
}

/// Add a run's transition phases to its batch's stats.
fn add_phases(stats: &mut BatchStats, phases: &PhaseTimes) {
    stats.epoch_processing += phases.epoch;
    stats.state_root += phases.state_root;
}

/// An aggregator that counts the time spent in it (the phase breakdown's "aggregation"):
/// in `submit` and `wait`, so GPU work overlapped with other work between them is not
/// counted.
struct Timed<'a> {
    inner: &'a dyn PubkeyAggregator,
    spent: std::sync::Mutex<std::time::Duration>,
}

impl Timed<'_> {
    fn count<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        if let Ok(mut spent) = self.spent.lock() {
            *spent += t.elapsed();
        }
        out
    }
}

impl PubkeyAggregator for Timed<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn submit<'a>(
        &'a self,
        table: &'a crate::accel::aggregate::PubkeyTable,
        sets: &'a [&'a [u32]],
    ) -> Result<
        crate::accel::aggregate::PendingAggregate<'a>,
        crate::accel::aggregate::AggregateError,
    > {
        self.count(|| self.inner.submit(table, sets))
    }

    fn wait(
        &self,
        pending: crate::accel::aggregate::PendingAggregate<'_>,
    ) -> Result<Vec<blst::blst_p1>, crate::accel::aggregate::AggregateError> {
        self.count(|| self.inner.wait(pending))
    }
}

/// A settled segment's outcome: a refused block is an outcome (the blocks before it are
/// imported), a node failure an error.
fn outcome_of(
    result: Result<(), ImportError>,
    stats: BatchStats,
) -> Result<SegmentOutcome, ImportError> {
    let failed = match result {
        Ok(()) => None,
        Err(ImportError::InvalidBlock(f)) => Some(f),
        Err(e) => return Err(e),
    };
    Ok(SegmentOutcome {
        imported: stats.blocks,
        skipped: stats.skipped,
        failed,
        stats,
    })
}

/// What applying a run needs from the chain (cloned, so a run can be applied on another
/// thread while the chain verifies the previous one).
struct ApplyCtx {
    checkpoints: Arc<CheckpointStateCache<BeaconState>>,
    every: u64,
    /// Fork choice's `on_block` checks, made before a block is applied: the store's slot
    /// (no block after it), the finalized epoch's first slot (no block at or before it),
    /// and whether the run's parent descends from the finalized block at that slot.
    current_slot: u64,
    now_ms: u64,
    slot_ms: u64,
    finalized: Checkpoint,
    finalized_slot: u64,
    parent_descends_from_finalized: bool,
}

/// Apply the run's transitions with every signature set collected, the state roots
/// through `tctx`'s carried root cache (from block to block). A transition failure stops
/// the run there (recorded in `failed`); the node's own faults are errors.
fn apply_run_with(
    ctx: &ApplyCtx,
    tctx: &mut TransitionCtx,
    pre: BeaconState,
    parent: Root,
    run: &[Decoded<SignedBeaconBlock>],
) -> Result<AppliedRun, ImportError> {
    let mut out = AppliedRun {
        state: pre,
        phases: PhaseTimes::default(),
        applied: Vec::with_capacity(run.len()),
        sets: Vec::new(),
        owners: Vec::new(),
        failed: None,
    };
    let (checkpoints, every) = (&ctx.checkpoints, ctx.every);
    let result = (|| -> Result<(), ImportError> {
        let mut known_root: Option<[u8; 32]> = None;
        let mut parent = parent;
        for (index, d) in run.iter().enumerate() {
            let state = &mut out.state;
            let block = &d.block;
            let slot = block.message.slot;
            // Fork choice's `on_block` checks, before the transition.
            let refused = if slot > ctx.current_slot {
                Some(BlockError::FutureSlot {
                    slot,
                    slot_start_ms: slot.saturating_mul(ctx.slot_ms),
                    now_ms: ctx.now_ms,
                })
            } else if slot <= ctx.finalized_slot {
                Some(BlockError::WouldRevertFinalized {
                    slot,
                    finalized_slot: ctx.finalized_slot,
                })
            } else if index == 0 && !ctx.parent_descends_from_finalized {
                Some(BlockError::NotFinalizedDescendant {
                    finalized_epoch: ctx.finalized.epoch,
                    finalized_root: ctx.finalized.root,
                })
            } else {
                None
            };
            if let Some(error) = refused {
                out.failed = Some((index, error));
                return Ok(());
            }
            let parent_slot = state.latest_block_header.slot;
            let mut sigs = SignatureChecker::collect();
            let known_root = &mut known_root;
            // The carried cache last saw the previous block's post state (its root was
            // known): if this block crosses no epoch boundary and carries no operation that
            // touches a validator, the registry need not be compared.
            let body = &block.message.body;
            // The state continues the one the previous block of this run left (its root
            // was checked), in the same epoch: the registry memo holds.
            let continues = known_root.is_some()
                && t::compute_epoch_at_slot(slot) == t::compute_epoch_at_slot(parent_slot);
            let unchanged = continues && touches_no_validator(body);
            let step = (|| -> Result<bool, TransitionError> {
                // The state's root is known while it is the previous block's post state
                // (checked against that block): process_slot need not hash it again.
                if enter_epoch(state, slot, parent, checkpoints, tctx, *known_root)? {
                    *known_root = None;
                }
                if state.slot < slot {
                    tctx.with_known_root(known_root.take(), |c| t::process_slots(state, slot, c))?;
                }
                t::verify_block_signature(state, block, &mut sigs)?;
                tctx.with_registry_memo(continues, |c| {
                    t::process_block(state, &block.message, c, &mut sigs)
                })?;
                let root = tctx.with_unchanged_validators(unchanged, |c| c.state_root(state))?;
                if block.message.state_root.as_bytes() == &root {
                    *known_root = Some(root);
                    Ok(true)
                } else {
                    Ok(false)
                }
            })();
            match step {
                Ok(true) => {}
                Ok(false) => {
                    out.failed = Some((
                        index,
                        BlockError::StateRootMismatch {
                            claimed: *block.message.state_root.as_bytes(),
                        },
                    ));
                    return Ok(());
                }
                Err(e) if e.is_input_fault() => {
                    out.failed = Some((index, BlockError::from_transition(e)));
                    return Ok(());
                }
                Err(e) => return Err(internal(e)),
            }
            let (sets, labels) = sigs.take_sets();
            // The latest messages: the attestation sets' signers are the attesters, in
            // the order of the block's attestations.
            let votes = match votes_from_sets(block, &sets, &labels) {
                Some(votes) => votes,
                None => votes_of(state, block, tctx).map_err(internal)?,
            };
            out.owners.extend(labels.into_iter().map(|what| SetOwner {
                block: index,
                slot,
                what,
            }));
            out.sets.extend(sets);
            let epoch = t::compute_epoch_at_slot(slot);
            let snapshot = if epoch / every > t::compute_epoch_at_slot(parent_slot) / every {
                Some(Box::new(state.clone()))
            } else {
                None
            };
            if slot == t::compute_start_slot_at_epoch(epoch).map_err(internal)? {
                // The post state of a block at an epoch's first slot is the state of
                // the checkpoint (epoch, block).
                checkpoints.insert_background(
                    CheckpointKey {
                        epoch,
                        root: d.root,
                    },
                    Arc::new(state.clone()),
                );
            }
            let (uj, uf) = t::compute_unrealized_checkpoints(state).map_err(internal)?;
            out.applied.push(Applied {
                root: d.root,
                parent,
                slot,
                state_root: *block.message.state_root.as_bytes(),
                justified: cp(&state.current_justified_checkpoint),
                finalized: cp(&state.finalized_checkpoint),
                unrealized_justified: cp(&uj),
                unrealized_finalized: cp(&uf),
                execution_block_hash: *body.execution_payload.block_hash.as_bytes(),
                votes,
                slashings: slashings_of(block),
                snapshot,
            });
            parent = d.root;
        }
        Ok(())
    })();
    out.phases = std::mem::take(&mut tctx.phases);
    result?;
    Ok(out)
}

/// Cross into the block's epoch through the checkpoint cache: the state of `parent`
/// advanced to the epoch's first slot is taken from the cache when the preloader (or an
/// earlier run) computed it, else computed here and cached.
fn enter_epoch(
    state: &mut BeaconState,
    slot: u64,
    parent: Root,
    cache: &Arc<CheckpointStateCache<BeaconState>>,
    ctx: &mut TransitionCtx,
    known_root: Option<[u8; 32]>,
) -> Result<bool, TransitionError> {
    let epoch = t::compute_epoch_at_slot(slot);
    if t::compute_epoch_at_slot(state.slot) >= epoch {
        return Ok(false);
    }
    let key = CheckpointKey {
        epoch,
        root: parent,
    };
    if let Ok(Some((cached, _))) = cache.get(&key) {
        if cached.latest_block_header.slot == state.latest_block_header.slot {
            *state = (*cached).clone();
            return Ok(true);
        }
    }
    let start = t::compute_start_slot_at_epoch(epoch)?;
    ctx.with_known_root(known_root, |c| t::process_slots(state, start, c))?;
    if slot > start {
        // The epoch's first slot is empty: this is the state of checkpoint
        // (epoch, parent). (With a block at the first slot, that block's post state is the
        // checkpoint's, cached after the block.)
        cache.insert_background(key, Arc::new(state.clone()));
    }
    Ok(true)
}

/// `state` advanced to the first slot of `epoch` (the preloader's and the database
/// tier's step), through a sibling of `ctx` (the chain's caches, its own root carry).
fn advance_to_epoch(
    state: &BeaconState,
    epoch: u64,
    ctx: &TransitionCtx,
) -> Result<BeaconState, String> {
    let start = t::compute_start_slot_at_epoch(epoch).map_err(|e| e.to_string())?;
    let mut s = state.clone();
    if s.slot < start {
        // One cold root, then each slot's root through the carried cache.
        t::process_slots(&mut s, start, &mut ctx.sibling()).map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// The votes of a block's attestations read off its collected signature sets (each
/// attestation's set names exactly its attesters); `None` when they do not line up.
fn votes_from_sets(
    block: &SignedBeaconBlock,
    sets: &[crate::bls::SignatureSet],
    labels: &[&'static str],
) -> Option<Vec<Vote>> {
    let attestation_sets: Vec<&crate::bls::SignatureSet> = sets
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l == "attestation")
        .map(|(s, _)| s)
        .collect();
    let attestations = &block.message.body.attestations;
    if attestation_sets.len() != attestations.len() {
        return None;
    }
    let mut votes = Vec::new();
    for (att, set) in attestations.iter().zip(attestation_sets) {
        let crate::bls::Signers::Indices(ids) = &set.signers else {
            return None;
        };
        let root = *att.data.beacon_block_root.as_bytes();
        votes.extend(ids.iter().map(|&v| (v as u64, root, att.data.target.epoch)));
    }
    Some(votes)
}

/// The latest messages a block carries: each attester's vote (block root, target epoch),
/// read off the committees (the epoch's cached shuffling) and the aggregation bits. The
/// block was just applied, so its attestations are valid.
fn votes_of(
    state: &BeaconState,
    block: &SignedBeaconBlock,
    ctx: &TransitionCtx,
) -> Result<Vec<Vote>, TransitionError> {
    let mut votes = Vec::new();
    for att in block.message.body.attestations.iter() {
        let root = *att.data.beacon_block_root.as_bytes();
        let target = att.data.target.epoch;
        let slot = att.data.slot;
        let shuffling = t::get_shuffling(state, t::compute_epoch_at_slot(slot), ctx)?;
        let bits = &att.aggregation_bits;
        let mut offset = 0usize;
        for (index, set) in att.committee_bits.iter().enumerate() {
            if !*set {
                continue;
            }
            let committee = t::committee_in(&shuffling, slot, index as u64)?;
            for (i, &v) in committee.iter().enumerate() {
                if offset + i < bits.len() && bits[offset + i] {
                    votes.push((v, root, target));
                }
            }
            offset += committee.len();
        }
    }
    Ok(votes)
}

/// The attesting indices of both attestations of each of a block's attester slashings.
#[allow(clippy::type_complexity)]
fn slashings_of(block: &SignedBeaconBlock) -> Vec<(Vec<u64>, Vec<u64>)> {
    block
        .message
        .body
        .attester_slashings
        .iter()
        .map(|s| {
            (
                s.attestation_1.attesting_indices.iter().copied().collect(),
                s.attestation_2.attesting_indices.iter().copied().collect(),
            )
        })
        .collect()
}

/// Fork choice's balances of a justified checkpoint state: each validator's effective
/// balance when it is active and not slashed (`get_attestation_score`'s
/// `unslashed_and_active_indices`), else 0; and `get_total_active_balance` (for the
/// proposer score).
pub fn fork_choice_balances(state: &BeaconState) -> (Vec<u64>, u64) {
    let epoch = t::get_current_epoch(state);
    let balances = state
        .validators
        .iter()
        .map(|v| {
            if t::is_active_validator(v, epoch) && !v.slashed {
                v.effective_balance
            } else {
                0
            }
        })
        .collect();
    let total = t::get_total_active_balance(state).unwrap_or(t::EFFECTIVE_BALANCE_INCREMENT);
    (balances, total)
}

/// The wall clock in Unix seconds.
fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a block body carries no operation that changes an existing validator (its
/// attestations and sync aggregate touch balances and participation, never the registry).
fn touches_no_validator(body: &BeaconBlockBody) -> bool {
    body.proposer_slashings.is_empty()
        && body.attester_slashings.is_empty()
        && body.voluntary_exits.is_empty()
        && body.deposits.is_empty()
        && body.bls_to_execution_changes.is_empty()
        && body.execution_requests.deposits.is_empty()
        && body.execution_requests.withdrawals.is_empty()
        && body.execution_requests.consolidations.is_empty()
}

/// Apply a stored (already verified) block: no signature check. Returns the block's votes.
/// `known_root`: the root of `state` as it stands, when it is the previous replayed
/// block's post state (set to this block's post-state root on return).
///
/// The post state's root is taken as the importer takes it, through the carried cache
/// with the same declarations (the state before it known, the registry not compared when
/// the block stays in its epoch and touches no validator), and it must be the block's
/// own: a stored block that does not reproduce its root is a corrupt store, not a fork.
fn replay_block(
    state: &mut BeaconState,
    block: &SignedBeaconBlock,
    ctx: &mut TransitionCtx,
    known_root: &mut Option<[u8; 32]>,
) -> Result<Vec<Vote>, TransitionError> {
    let known = known_root.take();
    let continues = known.is_some()
        && t::compute_epoch_at_slot(state.slot) == t::compute_epoch_at_slot(block.message.slot);
    if state.slot < block.message.slot {
        ctx.with_known_root(known, |c| t::process_slots(state, block.message.slot, c))?;
    }
    let mut skip = SignatureChecker::skip();
    let votes = ctx.with_registry_memo(continues, |c| {
        t::process_block(state, &block.message, c, &mut skip)?;
        votes_of(state, block, c)
    })?;
    let unchanged = continues && touches_no_validator(&block.message.body);
    let root = ctx.with_unchanged_validators(unchanged, |c| c.state_root(state))?;
    if &root != block.message.state_root.as_bytes() {
        return Err(TransitionError::Internal(format!(
            "stored block at slot {} does not reproduce its state root (0x{} != 0x{}): the store is corrupt",
            block.message.slot,
            hex(&root),
            hex(block.message.state_root.as_bytes()),
        )));
    }
    *known_root = Some(root);
    Ok(votes)
}

/// Record the anchor (genesis) state in a new store: its snapshot and summary, the
/// canonical index at its slot, the preset, and head, justified and finalized all at the
/// anchor block, in one synced write.
/// Write the anchor of a new datadir: the state (a snapshot), its summary, the anchor
/// block's root at its slot, the checkpoints and the head, in one synced write. `block`:
/// the anchor block of a checkpoint (stored, so that it is served, and the oldest block
/// backfill starts below); `None` for genesis, whose block is the state's header.
fn init_anchor(
    store: &Store,
    state: &BeaconState,
    block: Option<&SignedBeaconBlock>,
) -> Result<Anchor, ImportError> {
    let state_root = t::state_root_of(state).map_err(internal)?;
    let mut header = state.latest_block_header.clone();
    if header.state_root.as_bytes() == &[0u8; 32] {
        header.state_root = types::Root::from(state_root);
    }
    let root = t::hash_tree_root(&header).map_err(internal)?;
    let anchor = Anchor {
        root,
        state_root,
        slot: state.slot,
    };
    let cp = Checkpoint {
        epoch: t::compute_epoch_at_slot(state.slot),
        root,
    };
    let mut b = store.batch().with_sync(true);
    b.put_state(&state_root, &ssz_encode(state).map_err(internal)?)?;
    b.put_state_summary(
        &state_root,
        &StateSummary {
            slot: state.slot,
            latest_block_root: root,
        },
    )?;
    // The block's own slot: below the state's when the epoch's first slots were empty.
    b.put_block_root_at_slot(header.slot, &root)?;
    if let Some(block) = block {
        if t::hash_tree_root(&block.message).map_err(internal)? != root {
            return Err(ImportError::Genesis(
                "the anchor block is not the anchor state's latest block header".into(),
            ));
        }
        b.put_block(&root, &ssz_encode(block).map_err(internal)?)?;
        b.put_metadata(
            META_OLDEST_BLOCK,
            &OldestBlock {
                slot: block.message.slot,
                parent_root: *block.message.parent_root.as_bytes(),
            }
            .encode(),
        )?;
    }
    b.put_metadata(META_PRESET, PRESET.name().as_bytes())?;
    b.put_metadata(META_ANCHOR, &anchor.encode())?;
    b.put_justified(&cp)?;
    b.put_finalized(&cp)?;
    b.put_head(&Head {
        slot: state.slot,
        root,
    })?;
    b.commit()?;
    Ok(anchor)
}

/// Anchor a new datadir at a checkpoint (checkpoint sync): `state` at an epoch boundary and
/// `block`, its latest block (checked by the caller, and again here by root). Refuses a
/// datadir that holds a chain already. Nothing else is opened; [`Chain::open`] follows.
pub fn write_checkpoint_anchor(
    datadir: &Path,
    state: &BeaconState,
    block: &SignedBeaconBlock,
) -> Result<Anchor, ImportError> {
    std::fs::create_dir_all(datadir)
        .map_err(|e| internal(format!("{}: {e}", datadir.display())))?;
    let store = Store::open(datadir.join("db"))?;
    if store.get_metadata(META_ANCHOR)?.is_some() {
        return Err(ImportError::Genesis(format!(
            "{} holds a chain already",
            datadir.display()
        )));
    }
    init_anchor(&store, state, Some(block))
}
