//! `process_slots` and `process_slot`.

use super::helpers::*;
use super::process_epoch::process_epoch;
use super::types::*;
use crate::transition::math::SafeArith;
use crate::transition::{Check, TransitionCtx};
use crate::transition_ensure as ensure;

/// Advances the state to `slot`, running `process_epoch` at each epoch boundary. Each
/// slot's state root goes through the context's carried root cache.
pub fn process_slots(state: &mut BeaconState, slot: u64, ctx: &mut TransitionCtx) -> Result<()> {
    ensure!(
        state.slot < slot,
        Check::SlotNotNewer,
        "target slot {slot} is not after the state slot {}",
        state.slot
    );
    while state.slot < slot {
        process_slot(state, ctx)?;
        if (state.slot + 1) % SLOTS_PER_EPOCH_U64 == 0 {
            let t = std::time::Instant::now();
            process_epoch(state, ctx)?;
            ctx.phases.epoch += t.elapsed();
        }
        state.slot = state.slot.safe_add(1)?;
    }
    Ok(())
}

/// Caches the previous state root and block root.
pub fn process_slot(state: &mut BeaconState, ctx: &mut TransitionCtx) -> Result<()> {
    let previous_state_root = Root::from(ctx.state_root(state)?);
    let i = (state.slot % SLOTS_PER_HISTORICAL_ROOT as u64) as usize;
    state.state_roots[i] = previous_state_root;
    if state.latest_block_header.state_root == Root::default() {
        state.latest_block_header.state_root = previous_state_root;
    }
    let previous_block_root = Root::from(hash_tree_root_mut(&mut state.latest_block_header)?);
    state.block_roots[i] = previous_block_root;
    Ok(())
}
