//! `process_slots` and `process_slot`.

use super::helpers::*;
use super::process_epoch::process_epoch;
use super::types::*;
use crate::transition::math::SafeArith;
use crate::transition::ChainConfig;
use crate::transition_ensure as ensure;

/// Advances the state to `slot`, running `process_epoch` at each epoch boundary.
pub fn process_slots(state: &mut BeaconState, slot: u64, cfg: &ChainConfig) -> Result<()> {
    ensure!(
        state.slot < slot,
        "target slot {slot} is not after the state slot {}",
        state.slot
    );
    while state.slot < slot {
        process_slot(state)?;
        if (state.slot + 1) % SLOTS_PER_EPOCH_U64 == 0 {
            process_epoch(state, cfg)?;
        }
        state.slot = state.slot.safe_add(1)?;
    }
    Ok(())
}

/// Caches the previous state root and block root.
pub fn process_slot(state: &mut BeaconState) -> Result<()> {
    let previous_state_root = Root::from(state_root_of(state)?);
    let i = (state.slot % SLOTS_PER_HISTORICAL_ROOT as u64) as usize;
    state.state_roots[i] = previous_state_root;
    if state.latest_block_header.state_root == Root::default() {
        state.latest_block_header.state_root = previous_state_root;
    }
    let previous_block_root = Root::from(hash_tree_root_mut(&mut state.latest_block_header)?);
    state.block_roots[i] = previous_block_root;
    Ok(())
}
