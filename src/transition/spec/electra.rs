//! The Electra state transition, as far as a node needs it to cross the Fulu fork: the
//! Electra `BeaconState` container, and the functions whose Electra form differs from
//! Fulu's (`process_slots`, `process_epoch` without the proposer lookahead,
//! `get_beacon_proposer_index` computed from the seed, `process_operations` with the eth1
//! bridge's `process_deposit`, `process_deposit_request` setting the requests' start
//! index, `process_pending_deposits` waiting for the bridge, the Electra blob limit).
//!
//! Electra's blocks are Fulu's containers (Fulu changed no block field), so they are
//! taken as `super::types::SignedBeaconBlock`. The block and epoch steps that Electra and
//! Fulu share run on a Fulu-shaped working state that the Electra state is moved into
//! (no copy), with `proposer_lookahead` filled with Electra's proposers for the current
//! epoch; the Electra state root never includes that field.

use super::helpers::*;
use super::preset::*;
use super::types::{self, *};
use crate::transition::math::SafeArith;
use crate::transition::{ChainConfig, Check, SignatureChecker, TransitionCtx};
use crate::transition_ensure as ensure;

/// `UNSET_DEPOSIT_REQUESTS_START_INDEX` (Electra).
pub const UNSET_DEPOSIT_REQUESTS_START_INDEX: u64 = u64::MAX;

/// The container lives in its own module: the macro's `Result` must be `std`'s.
mod container {
    use super::super::types::*;
    use ssz_rs::{Bitvector, List, Vector};

    crate::ssz_container! {
        /// Electra's state: Fulu's without `proposer_lookahead`.
        pub struct BeaconState {
            pub genesis_time: u64,
            pub genesis_validators_root: Root,
            pub slot: Slot,
            pub fork: Fork,
            pub latest_block_header: BeaconBlockHeader,
            pub block_roots: Vector<Root, SLOTS_PER_HISTORICAL_ROOT>,
            pub state_roots: Vector<Root, SLOTS_PER_HISTORICAL_ROOT>,
            pub historical_roots: List<Root, HISTORICAL_ROOTS_LIMIT>,
            pub eth1_data: Eth1Data,
            pub eth1_data_votes: List<Eth1Data, ETH1_DATA_VOTES_LIMIT>,
            pub eth1_deposit_index: u64,
            pub validators: List<Validator, VALIDATOR_REGISTRY_LIMIT>,
            pub balances: List<Gwei, VALIDATOR_REGISTRY_LIMIT>,
            pub randao_mixes: Vector<Bytes32, EPOCHS_PER_HISTORICAL_VECTOR>,
            pub slashings: Vector<Gwei, EPOCHS_PER_SLASHINGS_VECTOR>,
            pub previous_epoch_participation: List<ParticipationFlags, VALIDATOR_REGISTRY_LIMIT>,
            pub current_epoch_participation: List<ParticipationFlags, VALIDATOR_REGISTRY_LIMIT>,
            pub justification_bits: Bitvector<JUSTIFICATION_BITS_LENGTH>,
            pub previous_justified_checkpoint: Checkpoint,
            pub current_justified_checkpoint: Checkpoint,
            pub finalized_checkpoint: Checkpoint,
            pub inactivity_scores: List<u64, VALIDATOR_REGISTRY_LIMIT>,
            pub current_sync_committee: SyncCommittee,
            pub next_sync_committee: SyncCommittee,
            pub latest_execution_payload_header: ExecutionPayloadHeader,
            pub next_withdrawal_index: WithdrawalIndex,
            pub next_withdrawal_validator_index: ValidatorIndex,
            pub historical_summaries: List<HistoricalSummary, HISTORICAL_ROOTS_LIMIT>,
            pub deposit_requests_start_index: u64,
            pub deposit_balance_to_consume: Gwei,
            pub exit_balance_to_consume: Gwei,
            pub earliest_exit_epoch: Epoch,
            pub consolidation_balance_to_consume: Gwei,
            pub earliest_consolidation_epoch: Epoch,
            pub pending_deposits: List<PendingDeposit, PENDING_DEPOSITS_LIMIT>,
            pub pending_partial_withdrawals: List<PendingPartialWithdrawal, PENDING_PARTIAL_WITHDRAWALS_LIMIT>,
            pub pending_consolidations: List<PendingConsolidation, PENDING_CONSOLIDATIONS_LIMIT>,
        }
    }
}

pub use container::BeaconState;

/// Moves an Electra state into Fulu's container (`proposer_lookahead` zeroed).
pub fn into_fulu_shape(pre: BeaconState) -> types::BeaconState {
    types::BeaconState {
        genesis_time: pre.genesis_time,
        genesis_validators_root: pre.genesis_validators_root,
        slot: pre.slot,
        fork: pre.fork,
        latest_block_header: pre.latest_block_header,
        block_roots: pre.block_roots,
        state_roots: pre.state_roots,
        historical_roots: pre.historical_roots,
        eth1_data: pre.eth1_data,
        eth1_data_votes: pre.eth1_data_votes,
        eth1_deposit_index: pre.eth1_deposit_index,
        validators: pre.validators,
        balances: pre.balances,
        randao_mixes: pre.randao_mixes,
        slashings: pre.slashings,
        previous_epoch_participation: pre.previous_epoch_participation,
        current_epoch_participation: pre.current_epoch_participation,
        justification_bits: pre.justification_bits,
        previous_justified_checkpoint: pre.previous_justified_checkpoint,
        current_justified_checkpoint: pre.current_justified_checkpoint,
        finalized_checkpoint: pre.finalized_checkpoint,
        inactivity_scores: pre.inactivity_scores,
        current_sync_committee: pre.current_sync_committee,
        next_sync_committee: pre.next_sync_committee,
        latest_execution_payload_header: pre.latest_execution_payload_header,
        next_withdrawal_index: pre.next_withdrawal_index,
        next_withdrawal_validator_index: pre.next_withdrawal_validator_index,
        historical_summaries: pre.historical_summaries,
        deposit_requests_start_index: pre.deposit_requests_start_index,
        deposit_balance_to_consume: pre.deposit_balance_to_consume,
        exit_balance_to_consume: pre.exit_balance_to_consume,
        earliest_exit_epoch: pre.earliest_exit_epoch,
        consolidation_balance_to_consume: pre.consolidation_balance_to_consume,
        earliest_consolidation_epoch: pre.earliest_consolidation_epoch,
        pending_deposits: pre.pending_deposits,
        pending_partial_withdrawals: pre.pending_partial_withdrawals,
        pending_consolidations: pre.pending_consolidations,
        proposer_lookahead: Default::default(),
    }
}

/// Moves a Fulu-shaped working state back into Electra's container.
pub fn from_fulu_shape(s: types::BeaconState) -> BeaconState {
    BeaconState {
        genesis_time: s.genesis_time,
        genesis_validators_root: s.genesis_validators_root,
        slot: s.slot,
        fork: s.fork,
        latest_block_header: s.latest_block_header,
        block_roots: s.block_roots,
        state_roots: s.state_roots,
        historical_roots: s.historical_roots,
        eth1_data: s.eth1_data,
        eth1_data_votes: s.eth1_data_votes,
        eth1_deposit_index: s.eth1_deposit_index,
        validators: s.validators,
        balances: s.balances,
        randao_mixes: s.randao_mixes,
        slashings: s.slashings,
        previous_epoch_participation: s.previous_epoch_participation,
        current_epoch_participation: s.current_epoch_participation,
        justification_bits: s.justification_bits,
        previous_justified_checkpoint: s.previous_justified_checkpoint,
        current_justified_checkpoint: s.current_justified_checkpoint,
        finalized_checkpoint: s.finalized_checkpoint,
        inactivity_scores: s.inactivity_scores,
        current_sync_committee: s.current_sync_committee,
        next_sync_committee: s.next_sync_committee,
        latest_execution_payload_header: s.latest_execution_payload_header,
        next_withdrawal_index: s.next_withdrawal_index,
        next_withdrawal_validator_index: s.next_withdrawal_validator_index,
        historical_summaries: s.historical_summaries,
        deposit_requests_start_index: s.deposit_requests_start_index,
        deposit_balance_to_consume: s.deposit_balance_to_consume,
        exit_balance_to_consume: s.exit_balance_to_consume,
        earliest_exit_epoch: s.earliest_exit_epoch,
        consolidation_balance_to_consume: s.consolidation_balance_to_consume,
        earliest_consolidation_epoch: s.earliest_consolidation_epoch,
        pending_deposits: s.pending_deposits,
        pending_partial_withdrawals: s.pending_partial_withdrawals,
        pending_consolidations: s.pending_consolidations,
    }
}

/// Runs `f` on the state moved into Fulu's container, and moves it back (also on error).
pub fn with_fulu_shape<R>(
    state: &mut BeaconState,
    f: impl FnOnce(&mut types::BeaconState) -> Result<R>,
) -> Result<R> {
    let mut work = into_fulu_shape(std::mem::take(state));
    let result = f(&mut work);
    *state = from_fulu_shape(work);
    result
}

/// Fills the current epoch's part of `proposer_lookahead` with Electra's
/// `get_beacon_proposer_index` for each slot of the epoch (the same seed, active set and
/// effective balances), so the shared block functions read Electra's proposer.
pub fn set_current_epoch_proposers(work: &mut types::BeaconState) -> Result<()> {
    let epoch = get_current_epoch(work);
    let proposers = get_beacon_proposer_indices(work, epoch)?;
    for (i, p) in proposers.into_iter().enumerate() {
        work.proposer_lookahead[i] = p;
    }
    Ok(())
}

/// `get_current_epoch` of an Electra state.
pub fn get_current_epoch_electra(state: &BeaconState) -> u64 {
    compute_epoch_at_slot(state.slot)
}

/// `process_slots` (Electra).
pub fn process_slots(state: &mut BeaconState, slot: u64, ctx: &mut TransitionCtx) -> Result<()> {
    ensure!(
        state.slot < slot,
        Check::SlotNotNewer,
        "target slot {slot} is not after the state slot {}",
        state.slot
    );
    while state.slot < slot {
        process_slot(state)?;
        if (state.slot + 1) % SLOTS_PER_EPOCH_U64 == 0 {
            with_fulu_shape(state, |w| process_epoch(w, ctx))?;
        }
        state.slot = state.slot.safe_add(1)?;
    }
    Ok(())
}

/// `process_slot` (Electra: the root of Electra's container).
pub fn process_slot(state: &mut BeaconState) -> Result<()> {
    let previous_state_root = Root::from(hash_tree_root_mut(state)?);
    let i = (state.slot % SLOTS_PER_HISTORICAL_ROOT as u64) as usize;
    state.state_roots[i] = previous_state_root;
    if state.latest_block_header.state_root == Root::default() {
        state.latest_block_header.state_root = previous_state_root;
    }
    let previous_block_root = Root::from(hash_tree_root_mut(&mut state.latest_block_header)?);
    state.block_roots[i] = previous_block_root;
    Ok(())
}

/// `process_epoch` (Electra): Fulu's without `process_proposer_lookahead`, with Electra's
/// `process_pending_deposits`. Runs on the Fulu-shaped working state.
pub fn process_epoch(state: &mut types::BeaconState, ctx: &TransitionCtx) -> Result<()> {
    use super::process_epoch as f;
    f::process_justification_and_finalization(state)?;
    f::process_inactivity_updates(state, ctx)?;
    f::process_rewards_and_penalties(state, ctx)?;
    f::process_registry_updates(state, ctx)?;
    f::process_slashings(state)?;
    f::process_eth1_data_reset(state)?;
    process_pending_deposits(state, ctx)?;
    f::process_pending_consolidations(state)?;
    f::process_effective_balance_updates(state)?;
    f::process_slashings_reset(state)?;
    f::process_randao_mixes_reset(state)?;
    f::process_historical_summaries_update(state)?;
    f::process_participation_flag_updates(state)?;
    f::process_sync_committee_updates(state)?;
    Ok(())
}

/// `process_pending_deposits` (Electra): as Fulu's, but deposit requests wait while eth1
/// bridge deposits are still to be applied.
pub fn process_pending_deposits(state: &mut types::BeaconState, ctx: &TransitionCtx) -> Result<()> {
    let cfg = ctx.cfg();
    let next_epoch = get_current_epoch(state).safe_add(1)?;
    let available_for_processing = state
        .deposit_balance_to_consume
        .safe_add(get_activation_exit_churn_limit(state, cfg)?)?;
    let mut processed_amount: u64 = 0;
    let mut next_deposit_index: usize = 0;
    let mut deposits_to_postpone = Vec::new();
    let mut is_churn_limit_reached = false;
    let finalized_slot = compute_start_slot_at_epoch(state.finalized_checkpoint.epoch)?;

    let pending: Vec<PendingDeposit> = state.pending_deposits.to_vec();
    for deposit in pending.iter() {
        // Do not process deposit requests if Eth1 bridge deposits are not yet applied.
        if deposit.slot > GENESIS_SLOT
            && state.eth1_deposit_index < state.deposit_requests_start_index
        {
            break;
        }
        if deposit.slot > finalized_slot {
            break;
        }
        if next_deposit_index as u64 >= MAX_PENDING_DEPOSITS_PER_EPOCH {
            break;
        }
        let mut is_validator_exited = false;
        let mut is_validator_withdrawn = false;
        if let Some(index) = find_validator_by_pubkey_in(state, &deposit.pubkey, ctx) {
            let v = &state.validators[index as usize];
            is_validator_exited = v.exit_epoch < FAR_FUTURE_EPOCH;
            is_validator_withdrawn = v.withdrawable_epoch < next_epoch;
        }
        if is_validator_withdrawn {
            super::process_epoch::apply_pending_deposit(state, deposit, ctx)?;
        } else if is_validator_exited {
            deposits_to_postpone.push(deposit.clone());
        } else {
            is_churn_limit_reached =
                processed_amount.safe_add(deposit.amount)? > available_for_processing;
            if is_churn_limit_reached {
                break;
            }
            processed_amount = processed_amount.safe_add(deposit.amount)?;
            super::process_epoch::apply_pending_deposit(state, deposit, ctx)?;
        }
        next_deposit_index += 1;
    }
    let mut rest: Vec<PendingDeposit> = pending[next_deposit_index..].to_vec();
    rest.extend(deposits_to_postpone);
    state.pending_deposits = to_list(rest, "pending_deposits")?;
    state.deposit_balance_to_consume = if is_churn_limit_reached {
        available_for_processing.safe_sub(processed_amount)?
    } else {
        0
    };
    Ok(())
}

/// `process_block` (Electra), on the Fulu-shaped working state whose lookahead holds
/// Electra's proposers (see [`set_current_epoch_proposers`]).
pub fn process_block(
    state: &mut types::BeaconState,
    block: &BeaconBlock,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    use super::process_block as f;
    // Electra's blob limit: `MAX_BLOBS_PER_BLOCK_ELECTRA` (no blob schedule yet); the
    // same caches.
    let electra = ctx.with_config(ChainConfig {
        blob_schedule: Vec::new(),
        ..ctx.cfg().clone()
    });
    f::process_block_header(state, block)?;
    f::process_withdrawals(state, &block.body.execution_payload)?;
    f::process_execution_payload(state, &block.body, &electra, true)?;
    f::process_randao(state, &block.body, sigs)?;
    f::process_eth1_data(state, &block.body)?;
    process_operations(state, &block.body, &electra, sigs)?;
    f::process_sync_aggregate(state, &block.body.sync_aggregate, ctx, sigs)?;
    Ok(())
}

/// `process_operations` (Electra): eth1 bridge deposits until the requests take over.
pub fn process_operations(
    state: &mut types::BeaconState,
    body: &BeaconBlockBody,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    use super::process_block as f;
    let eth1_deposit_index_limit = state
        .eth1_data
        .deposit_count
        .min(state.deposit_requests_start_index);
    if state.eth1_deposit_index < eth1_deposit_index_limit {
        let expected =
            (MAX_DEPOSITS as u64).min(eth1_deposit_index_limit - state.eth1_deposit_index);
        ensure!(
            body.deposits.len() as u64 == expected,
            Check::Operations,
            "block carries {} deposits, {expected} expected",
            body.deposits.len()
        );
    } else {
        ensure!(
            body.deposits.is_empty(),
            Check::Operations,
            "block carries deposits after the eth1 bridge closed"
        );
    }
    for op in body.proposer_slashings.iter() {
        f::process_proposer_slashing(state, op, ctx, sigs)?;
    }
    for op in body.attester_slashings.iter() {
        f::process_attester_slashing(state, op, ctx, sigs)?;
    }
    for op in body.attestations.iter() {
        f::process_attestation(state, op, ctx, sigs)?;
    }
    for op in body.deposits.iter() {
        process_deposit(state, op, ctx, sigs)?;
    }
    for op in body.voluntary_exits.iter() {
        f::process_voluntary_exit(state, op, ctx, sigs)?;
    }
    for op in body.bls_to_execution_changes.iter() {
        f::process_bls_to_execution_change(state, op, ctx, sigs)?;
    }
    for op in body.execution_requests.deposits.iter() {
        process_deposit_request(state, op)?;
    }
    for op in body.execution_requests.withdrawals.iter() {
        f::process_withdrawal_request(state, op, ctx)?;
    }
    for op in body.execution_requests.consolidations.iter() {
        f::process_consolidation_request(state, op, ctx)?;
    }
    Ok(())
}

/// `process_deposit` (Electra): an eth1 bridge deposit, proven against `eth1_data`.
pub fn process_deposit(
    state: &mut types::BeaconState,
    deposit: &Deposit,
    ctx: &TransitionCtx,
    sigs: &SignatureChecker,
) -> Result<()> {
    let leaf = hash_tree_root(&deposit.data)?;
    ensure!(
        is_valid_merkle_branch(
            &leaf,
            deposit.proof.as_ref(),
            DEPOSIT_CONTRACT_TREE_DEPTH as u64 + 1,
            state.eth1_deposit_index,
            state.eth1_data.deposit_root.as_bytes(),
        ),
        Check::Deposit,
        "deposit merkle proof is invalid"
    );
    state.eth1_deposit_index = state.eth1_deposit_index.safe_add(1)?;
    apply_deposit(
        state,
        &deposit.data.pubkey,
        &deposit.data.withdrawal_credentials,
        deposit.data.amount,
        &deposit.data.signature,
        ctx,
        sigs,
    )
}

/// `apply_deposit` (Electra): a new key joins (when its proof of possession holds) with a
/// zero balance; the amount is queued as a pending deposit.
pub fn apply_deposit(
    state: &mut types::BeaconState,
    pubkey: &BLSPubkey,
    withdrawal_credentials: &Bytes32,
    amount: u64,
    signature: &BLSSignature,
    ctx: &TransitionCtx,
    sigs: &SignatureChecker,
) -> Result<()> {
    let cfg = ctx.cfg();
    if find_validator_by_pubkey_in(state, pubkey, ctx).is_none() {
        if is_valid_deposit_signature(pubkey, withdrawal_credentials, amount, signature, cfg, sigs)?
        {
            add_validator_to_registry(state, pubkey, withdrawal_credentials, 0)?;
        } else {
            return Ok(());
        }
    }
    let pending = PendingDeposit {
        pubkey: *pubkey,
        withdrawal_credentials: *withdrawal_credentials,
        amount,
        signature: *signature,
        slot: GENESIS_SLOT,
    };
    push_bounded(&mut state.pending_deposits, pending, "pending_deposits")
}

/// `process_deposit_request` (Electra): also records the first request's index.
pub fn process_deposit_request(
    state: &mut types::BeaconState,
    deposit_request: &DepositRequest,
) -> Result<()> {
    if state.deposit_requests_start_index == UNSET_DEPOSIT_REQUESTS_START_INDEX {
        state.deposit_requests_start_index = deposit_request.index;
    }
    super::process_block::process_deposit_request(state, deposit_request)
}

/// `state_transition` (Electra). Slots are processed only when the block is ahead of the
/// state (a block at the state's own slot, as at a fork, applies directly).
pub fn state_transition(
    state: &mut BeaconState,
    signed_block: &SignedBeaconBlock,
    validate_result: bool,
    ctx: &mut TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let block = &signed_block.message;
    if state.slot < block.slot {
        process_slots(state, block.slot, ctx)?;
    }
    with_fulu_shape(state, |w| {
        set_current_epoch_proposers(w)?;
        if validate_result {
            super::state_transition::verify_block_signature(w, signed_block, sigs)?;
        }
        process_block(w, block, ctx, sigs)
    })?;
    if validate_result {
        let root = hash_tree_root_mut(state)?;
        ensure!(
            block.state_root.as_bytes() == &root,
            Check::StateRoot,
            "block state root does not match the post state"
        );
    }
    Ok(())
}
