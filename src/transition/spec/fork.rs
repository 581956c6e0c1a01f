//! The upgrade from Electra to Fulu: `upgrade_to_fulu` and `initialize_proposer_lookahead`
//! (Fulu's `fork.md`), and `process_slots` across the fork boundary.

use super::electra;
use super::helpers::*;
use super::types::*;
use crate::transition::math::SafeArith;
use crate::transition::{ChainConfig, TransitionCtx};

/// `initialize_proposer_lookahead`: the proposers of the current epoch and the next
/// `MIN_SEED_LOOKAHEAD` epochs (at genesis and after the fork).
pub fn initialize_proposer_lookahead(
    state: &BeaconState,
) -> Result<ssz_rs::Vector<ValidatorIndex, PROPOSER_LOOKAHEAD_LENGTH>> {
    let current_epoch = get_current_epoch(state);
    let mut lookahead = Vec::with_capacity(PROPOSER_LOOKAHEAD_LENGTH);
    for i in 0..=MIN_SEED_LOOKAHEAD {
        lookahead.extend(get_beacon_proposer_indices(
            state,
            current_epoch.safe_add(i as u64)?,
        )?);
    }
    ssz_rs::Vector::try_from(lookahead).map_err(|_| {
        crate::transition::TransitionError::Internal("proposer lookahead length".into())
    })
}

/// `upgrade_to_fulu`: every Electra field carried over, the fork record moved on, and the
/// proposer lookahead initialized.
pub fn upgrade_to_fulu(pre: electra::BeaconState, cfg: &ChainConfig) -> Result<BeaconState> {
    let epoch = electra::get_current_epoch_electra(&pre);
    let mut post = electra::into_fulu_shape(pre);
    post.fork = Fork {
        previous_version: post.fork.current_version,
        current_version: Version::from(cfg.fulu_fork_version),
        epoch,
    };
    post.proposer_lookahead = initialize_proposer_lookahead(&post)?;
    Ok(post)
}

/// A state on either side of the Electra → Fulu fork.
#[derive(Debug, Clone)]
pub enum ForkState {
    Electra(electra::BeaconState),
    Fulu(BeaconState),
}

impl ForkState {
    pub fn slot(&self) -> u64 {
        match self {
            ForkState::Electra(s) => s.slot,
            ForkState::Fulu(s) => s.slot,
        }
    }
}

/// `process_slots` across the fork: Electra's slot and epoch processing up to the first
/// slot of `fork_epoch`, where the state is upgraded (`upgrade_to_fulu`), then Fulu's.
/// A Fulu state, or a target at or before the state's slot, is advanced as usual.
pub fn process_slots_across_fork(
    state: &mut ForkState,
    slot: u64,
    fork_epoch: u64,
    ctx: &mut TransitionCtx,
) -> Result<()> {
    let fork_slot = compute_start_slot_at_epoch(fork_epoch)?;
    while let ForkState::Electra(s) = state {
        if s.slot >= fork_slot {
            let pre = std::mem::take(s);
            *state = ForkState::Fulu(upgrade_to_fulu(pre, ctx.cfg())?);
            break;
        }
        if s.slot >= slot {
            return Ok(());
        }
        electra::process_slots(s, s.slot.safe_add(1)?, ctx)?;
    }
    if let ForkState::Fulu(s) = state {
        if s.slot < slot {
            super::process_slots::process_slots(s, slot, ctx)?;
        }
    }
    Ok(())
}
