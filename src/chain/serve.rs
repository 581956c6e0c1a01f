//! What one preset's chain offers the chain service (compiled per preset, see
//! `chain::minimal` / `chain::mainnet`): the [`PresetChain`] implementation and the
//! state reads that rebuild states from committed data.

use std::sync::Arc;

use super::import::{rebuild_state_of_block, Chain, PRESET};
use super::{t, types};
use crate::cache::metrics::CacheMetrics;
use crate::cache::pool::BufferPool;
use crate::chain::error::BlockError;
use crate::chain::gossip_attestation::{BlockTree, TreeBlock, Vote};
use crate::chain::pipeline::{Decoded, ImportError, Settled};
use crate::chain::service::{
    GossipView, HeadSnapshot, PresetChain, Proposal, StateReader, MAXIMUM_GOSSIP_CLOCK_DISPARITY_MS,
};
use crate::chain::Anchor;
use crate::store::Store;
use crate::transition::{SignatureChecker, TransitionCtx};
use crate::types::ssz::{ssz_encode, SszDecode};
use types::SignedBeaconBlock;

use crate::chain::pipeline::hex;

type Root = [u8; 32];

fn internal(e: impl std::fmt::Display) -> ImportError {
    ImportError::Internal(e.to_string())
}

/// A node failure met while checking a gossip block (the spec's "IGNORE instead" when,
/// e.g., the shuffling is not available).
fn node_failure(e: impl std::fmt::Display) -> BlockError {
    BlockError::Internal(e.to_string())
}

impl PresetChain for Chain {
    type Block = SignedBeaconBlock;

    fn decode(
        pool: &BufferPool,
        index: usize,
        ssz: Vec<u8>,
    ) -> Result<Decoded<SignedBeaconBlock>, BlockError> {
        Chain::decode_block(pool, index, ssz)
    }

    fn submit_segment(
        &mut self,
        id: u64,
        blocks: Vec<Decoded<SignedBeaconBlock>>,
        more: bool,
    ) -> Vec<Settled> {
        Chain::submit_segment(self, id, blocks, more)
    }

    fn flush(&mut self) -> Vec<Settled> {
        Chain::flush(self)
    }

    fn validate_gossip_block(
        &self,
        d: &Decoded<SignedBeaconBlock>,
        view: &GossipView<'_>,
    ) -> Result<Proposal, BlockError> {
        validate_beacon_block_gossip(self, d, view)
    }

    fn slot_duration_ms(&self) -> u64 {
        self.config().slot_duration_ms
    }

    fn chain_config(&self) -> crate::transition::ChainConfig {
        self.config().clone()
    }

    fn snapshot(&self) -> Result<HeadSnapshot, ImportError> {
        let state = self.head_state_arc();
        let anchor = self.anchor();
        Ok(HeadSnapshot {
            preset: PRESET,
            head: self.head(),
            head_state_root: self.known_head_state_root()?,
            justified: self.justified_checkpoint(),
            finalized: self.finalized_checkpoint(),
            finalized_slot: self.finalized_slot()?,
            genesis_time: state.genesis_time,
            genesis_validators_root: *state.genesis_validators_root.as_bytes(),
            fork_version: *state.fork.current_version.as_bytes(),
            validators: state.validators.len(),
            earliest_available_slot: crate::chain::OldestBlock::read(&self.store_arc())?
                .map_or(anchor.slot, |o| o.slot),
            anchor_slot: anchor.slot,
            state: super::any_state(state),
            fork_choice: self.fork_choice().nodes().into(),
            keys_load: self.keys_load(),
        })
    }

    fn store(&self) -> Arc<Store> {
        self.store_arc()
    }

    fn gossip_ctx(&self) -> TransitionCtx {
        self.transition_ctx().sibling()
    }

    fn block_tree(&self) -> BlockTree {
        let anchor = self.anchor();
        BlockTree {
            blocks: self
                .fork_choice()
                .blocks()
                .map(|(root, slot, parent)| (root, TreeBlock { slot, parent }))
                .collect(),
            anchor: anchor.root,
            anchor_slot: anchor.slot,
            refused: Default::default(),
            finalized: self.finalized_checkpoint(),
        }
    }

    fn on_gossip_votes(&mut self, votes: &[Vote]) {
        Chain::on_gossip_votes(self, votes)
    }

    fn on_tick(&mut self, now: crate::chain::service::GossipClock) {
        let genesis = self.head_state().genesis_time;
        Chain::on_tick_ms(
            self,
            genesis
                .saturating_mul(1000)
                .saturating_add(now.ms_since_genesis()),
        );
    }

    fn on_gossip_attester_slashing(&mut self, ssz: &[u8]) {
        // Validated by the gossip checks before it came here.
        if let Ok(s) = types::AttesterSlashing::ssz_decode(ssz) {
            let a1: Vec<u64> = s.attestation_1.attesting_indices.iter().copied().collect();
            let a2: Vec<u64> = s.attestation_2.attesting_indices.iter().copied().collect();
            Chain::on_attester_slashing(self, &a1, &a2);
        }
    }

    fn pool(&self) -> BufferPool {
        self.buffer_pool().clone()
    }

    fn metrics(&self) -> Arc<CacheMetrics> {
        Chain::metrics(self).clone()
    }

    fn state_reader(&self) -> Arc<dyn StateReader> {
        Arc::new(StoreStates {
            store: self.store_arc(),
            anchor: self.anchor(),
            ctx: self.transition_ctx().sibling(),
        })
    }
}

/// `validate_beacon_block_gossip` of `specs/fulu/p2p-interface.md` (Bellatrix's payload
/// timestamp and parent rules, Fulu's blob limit), in the spec's order: the first failed
/// condition decides, as IGNORE ([`Fault::Nobody`] / [`Fault::Node`]) or REJECT
/// ([`Fault::Peer`]). The spec's `state` is the head state; `store.blocks` is what the
/// chain imported plus the roots refused for their own fault (`view.refused`), and
/// `store.block_states` what it imported. `Ok` is the proposal to mark seen; the full
/// verification (the state transition) is the caller's next step.
///
/// quasar has no execution engine: every payload is optimistic (`NOT_VALIDATED`), so a
/// block whose parent failed validation is always REJECTed, and the spec's two IGNOREs
/// that need a payload verdict (a failed parent whose payload was processed, a valid
/// parent whose payload is invalid) never arise.
///
/// [`Fault::Nobody`]: crate::chain::error::Fault::Nobody
/// [`Fault::Node`]: crate::chain::error::Fault::Node
/// [`Fault::Peer`]: crate::chain::error::Fault::Peer
fn validate_beacon_block_gossip(
    chain: &Chain,
    d: &Decoded<SignedBeaconBlock>,
    view: &GossipView<'_>,
) -> Result<Proposal, BlockError> {
    let block = &d.block.message;
    let slot = block.slot;
    let cfg = chain.config();
    let state = chain.head_state();

    // [IGNORE] The block is not from a future slot (`is_future_slot`, with the
    // MAXIMUM_GOSSIP_CLOCK_DISPARITY allowance).
    let slot_start_ms = slot.saturating_mul(cfg.slot_duration_ms);
    let now_ms = view.now().ms_since_genesis();
    if now_ms.saturating_add(MAXIMUM_GOSSIP_CLOCK_DISPARITY_MS) < slot_start_ms {
        return Err(BlockError::FutureSlot {
            slot,
            slot_start_ms,
            now_ms,
        });
    }

    // [IGNORE] The block is from a slot greater than the latest finalized slot.
    let finalized = view
        .finalized_override()
        .unwrap_or_else(|| chain.finalized_checkpoint());
    let finalized_slot = t::compute_start_slot_at_epoch(finalized.epoch).map_err(node_failure)?;
    if slot <= finalized_slot {
        return Err(BlockError::WouldRevertFinalized {
            slot,
            finalized_slot,
        });
    }

    // [IGNORE] The block is the first block with valid signature received for the slot
    // and proposer. (A block already imported had its valid signature received, by
    // gossip or not.)
    let proposal = Proposal {
        slot,
        proposer_index: block.proposer_index,
    };
    if view.is_seen(&proposal) {
        return Err(BlockError::RepeatProposal {
            slot,
            proposer_index: block.proposer_index,
        });
    }
    if chain.is_imported(&d.root, slot).map_err(node_failure)? {
        return Err(BlockError::AlreadyKnown);
    }

    // [REJECT] The proposer index is a valid validator index.
    if block.proposer_index >= state.validators.len() as u64 {
        return Err(BlockError::ProposerIndexOutOfRange {
            proposer_index: block.proposer_index,
            validators: state.validators.len() as u64,
        });
    }

    // [REJECT] The proposer signature is valid (the domain of the block's epoch).
    let domain = t::get_domain(
        state,
        t::DOMAIN_BEACON_PROPOSER,
        Some(t::compute_epoch_at_slot(slot)),
    )
    .map_err(node_failure)?;
    let signing_root = t::compute_signing_root_of(d.root, domain).map_err(node_failure)?;
    SignatureChecker::verify_inline()
        .check_validators(
            "block signature",
            &state.validators,
            &[block.proposer_index],
            signing_root,
            &d.block.signature,
        )
        .map_err(BlockError::from_transition)?;

    // [IGNORE] The block's parent has been seen (via gossip or non-gossip sources).
    let parent = *block.parent_root.as_bytes();
    let parent_slot = imported_block_slot(chain, &parent)?;
    if parent_slot.is_none() && !view.is_refused(&parent) {
        return Err(BlockError::UnknownParent { parent });
    }

    // [REJECT] The block's execution payload timestamp is correct with respect to the slot.
    let expected = t::compute_time_at_slot(state, slot, cfg).map_err(node_failure)?;
    let timestamp = block.body.execution_payload.timestamp;
    if timestamp != expected {
        return Err(BlockError::IncorrectPayloadTimestamp {
            timestamp,
            expected,
        });
    }

    // [REJECT] The block's parent failed validation and its execution payload is
    // optimistic (seen, refused, so no post state; every payload is optimistic here).
    let Some(parent_slot) = parent_slot else {
        return Err(BlockError::ParentRefused { parent });
    };

    // [REJECT] The block is from a higher slot than its parent.
    if slot <= parent_slot {
        return Err(BlockError::NotLaterThanParent { slot, parent_slot });
    }

    // [REJECT] The current finalized checkpoint is an ancestor of the block
    // (`get_checkpoint_block(store, block.parent_root, finalized.epoch)`).
    if checkpoint_block(chain, parent, finalized.epoch)? != Some(finalized.root) {
        return Err(BlockError::NotFinalizedDescendant {
            finalized_epoch: finalized.epoch,
            finalized_root: finalized.root,
        });
    }

    // [REJECT] The length of KZG commitments is less than or equal to the limit
    // (`get_blob_parameters(get_current_epoch(state)).max_blobs_per_block`).
    let max = cfg.max_blobs_per_block(t::get_current_epoch(state));
    let count = block.body.blob_kzg_commitments.len() as u64;
    if count > max {
        return Err(BlockError::TooManyBlobCommitments { count, max });
    }

    // [REJECT] The block is proposed by the expected proposer for the slot (the parent's
    // state advanced to the slot; a state that cannot be had is a node failure: IGNORE).
    let expected = expected_proposer(chain, &parent, slot)?;
    if block.proposer_index != expected {
        return Err(BlockError::BadProposer(format!(
            "proposer index {} is not the expected {expected} at slot {slot}",
            block.proposer_index
        )));
    }
    Ok(proposal)
}

/// The slot of an imported block (`store.block_states` holds its post state): in fork
/// choice, the anchor, or stored below finalization. `None`: not imported.
fn imported_block_slot(chain: &Chain, root: &Root) -> Result<Option<u64>, BlockError> {
    if let Some(slot) = chain.fork_choice().block_slot(root) {
        return Ok(Some(slot));
    }
    let anchor = chain.anchor();
    if *root == anchor.root {
        return Ok(Some(anchor.slot));
    }
    if chain.store().has_block(root).map_err(node_failure)? {
        return Ok(Some(chain.block(root).map_err(node_failure)?.message.slot));
    }
    Ok(None)
}

/// `get_checkpoint_block(store, root, epoch)`: the ancestor of imported block `root` at
/// the epoch's first slot (`get_ancestor`), walked through fork choice and then the store;
/// `None` when the walk reaches the anchor above that slot.
fn checkpoint_block(chain: &Chain, root: Root, epoch: u64) -> Result<Option<Root>, BlockError> {
    let target = t::compute_start_slot_at_epoch(epoch).map_err(node_failure)?;
    let fork_choice = chain.fork_choice();
    let anchor = chain.anchor();
    let mut r = root;
    loop {
        let (slot, parent) = match fork_choice.block_slot(&r) {
            Some(slot) if r == anchor.root => (slot, None),
            Some(slot) => match fork_choice.parent_root(&r) {
                Some(p) => (slot, Some(p)),
                // The pruned tree's root (the finalized block): its parent is in the store.
                None => (slot, Some(stored_parent(chain, &r)?)),
            },
            None if r == anchor.root => (anchor.slot, None),
            None => {
                let b = chain.block(&r).map_err(node_failure)?;
                (b.message.slot, Some(*b.message.parent_root.as_bytes()))
            }
        };
        if slot <= target {
            return Ok(Some(r));
        }
        match parent {
            Some(p) => r = p,
            None => return Ok(None),
        }
    }
}

fn stored_parent(chain: &Chain, root: &Root) -> Result<Root, BlockError> {
    Ok(*chain
        .block(root)
        .map_err(node_failure)?
        .message
        .parent_root
        .as_bytes())
}

/// `get_beacon_proposer_index` of `parent`'s post state advanced to `slot`, read from the
/// Fulu `proposer_lookahead` (EIP-7917), which a state holds for its epoch and the next
/// and which no later processing changes: the head state serves both epochs without a
/// copy; otherwise the state of checkpoint (block's epoch, parent).
fn expected_proposer(chain: &Chain, parent: &Root, slot: u64) -> Result<u64, BlockError> {
    let per_epoch = types::SLOTS_PER_EPOCH as u64;
    let epoch = t::compute_epoch_at_slot(slot);
    let in_epoch = (slot % per_epoch) as usize;
    if chain.head().root == *parent {
        let state = chain.head_state();
        let state_epoch = t::get_current_epoch(state);
        if epoch == state_epoch {
            return Ok(state.proposer_lookahead[in_epoch]);
        }
        if epoch == state_epoch + 1 {
            return Ok(state.proposer_lookahead[per_epoch as usize + in_epoch]);
        }
    }
    let state = chain
        .checkpoint_state(epoch, parent)
        .map_err(node_failure)?;
    if t::get_current_epoch(&state) != epoch {
        return Err(node_failure(format!(
            "the state of checkpoint ({epoch}, 0x{}) is at slot {}",
            hex(parent),
            state.slot
        )));
    }
    Ok(state.proposer_lookahead[in_epoch])
}

/// States rebuilt from what the store holds (committed data only): a snapshot at or below
/// the block plus a replay of the stored blocks after it.
struct StoreStates {
    store: Arc<Store>,
    anchor: Anchor,
    ctx: TransitionCtx,
}

impl StateReader for StoreStates {
    fn state_ssz_of_block(
        &self,
        root: &Root,
        slot: Option<u64>,
    ) -> Result<Option<Vec<u8>>, ImportError> {
        if *root != self.anchor.root && !self.store.has_block(root)? {
            return Ok(None);
        }
        let store = &self.store;
        let mut state = rebuild_state_of_block(store, &self.anchor, &self.ctx, root, |r| {
            let bytes = store
                .get_block(r)?
                .ok_or_else(|| internal(format!("block 0x{} is not in the store", hex(r))))?;
            Ok(Arc::new(
                SignedBeaconBlock::ssz_decode(&bytes).map_err(internal)?,
            ))
        })?;
        if let Some(slot) = slot {
            if slot > state.slot {
                t::process_slots(&mut state, slot, &mut self.ctx.sibling()).map_err(internal)?;
            }
        }
        ssz_encode(&state).map(Some).map_err(internal)
    }
}
