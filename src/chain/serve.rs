//! What one preset's chain offers the chain service (compiled per preset, see
//! `chain::minimal` / `chain::mainnet`): the [`PresetChain`] implementation and the
//! state reads that rebuild states from committed data.

use std::sync::Arc;

use super::import::{rebuild_state_of_block, Chain, PRESET};
use super::{t, types};
use crate::cache::metrics::CacheMetrics;
use crate::cache::pool::BufferPool;
use crate::chain::error::BlockError;
use crate::chain::pipeline::{Decoded, ImportError, Settled};
use crate::chain::service::{HeadSnapshot, PresetChain, StateReader};
use crate::chain::Anchor;
use crate::store::Store;
use crate::transition::TransitionCtx;
use crate::types::ssz::{ssz_encode, SszDecode};
use types::SignedBeaconBlock;

type Root = [u8; 32];

fn internal(e: impl std::fmt::Display) -> ImportError {
    ImportError::Internal(e.to_string())
}

/// `MAXIMUM_GOSSIP_CLOCK_DISPARITY` (500 ms) is below one slot: a block one slot ahead
/// of the local clock is tolerated only when the clock is that close to the next slot, so
/// the caller passes the slot it computed with the disparity added.
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

    fn gossip_prechecks(
        &self,
        d: &Decoded<SignedBeaconBlock>,
        current_slot: u64,
    ) -> Result<(), BlockError> {
        let slot = d.slot;
        // [IGNORE] The block is not from a future slot.
        if slot > current_slot {
            return Err(BlockError::FutureSlot { slot, current_slot });
        }
        // [IGNORE] The block is from a slot greater than the latest finalized slot.
        let finalized_slot = self
            .finalized_slot()
            .map_err(|e| BlockError::Internal(e.to_string()))?;
        if slot <= finalized_slot {
            return Err(BlockError::WouldRevertFinalized {
                slot,
                finalized_slot,
            });
        }
        // [IGNORE] The block is the first one seen with a valid signature: an imported one
        // was.
        if self
            .is_imported(&d.root, slot)
            .map_err(|e| BlockError::Internal(e.to_string()))?
        {
            return Err(BlockError::AlreadyKnown);
        }
        Ok(())
    }

    fn proposer_and_slot(d: &Decoded<SignedBeaconBlock>) -> (u64, u64) {
        (d.block.message.proposer_index, d.slot)
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
            earliest_available_slot: anchor.slot,
            state: super::any_state(state),
        })
    }

    fn store(&self) -> Arc<Store> {
        self.store_arc()
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
