//! `state_transition` and `verify_block_signature`.

use super::helpers::*;
use super::process_block::process_block;
use super::process_slots::process_slots;
use super::types::*;
use crate::transition::{Check, SignatureChecker, TransitionCtx};
use crate::transition_ensure as ensure;

/// `verify_block_signature` (through the checker).
pub fn verify_block_signature(
    state: &BeaconState,
    signed_block: &SignedBeaconBlock,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let proposer_index = signed_block.message.proposer_index;
    validator(state, proposer_index)?;
    let signing_root = compute_signing_root(
        &signed_block.message,
        get_domain(state, DOMAIN_BEACON_PROPOSER, None)?,
    )?;
    sigs.check_validators(
        "block signature",
        &state.validators,
        &[proposer_index],
        signing_root,
        &signed_block.signature,
    )
}

/// `state_transition`: slots up to the block's, the proposer signature, the block, and
/// (when `validate_result`) the state root (through the context's carried root cache).
pub fn state_transition(
    state: &mut BeaconState,
    signed_block: &SignedBeaconBlock,
    validate_result: bool,
    ctx: &mut TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let block = &signed_block.message;
    process_slots(state, block.slot, ctx)?;
    if validate_result {
        verify_block_signature(state, signed_block, sigs)?;
    }
    process_block(state, block, ctx, sigs)?;
    if validate_result {
        let root = ctx.state_root(state)?;
        ensure!(
            block.state_root.as_bytes() == &root,
            Check::StateRoot,
            "block state root does not match the post state"
        );
    }
    Ok(())
}
