//! `process_block` and every operation: block header, withdrawals, execution payload (the
//! checks that need no execution engine), RANDAO, eth1 data, slashings, attestations,
//! voluntary exits, BLS-to-execution changes, execution requests and the sync aggregate.

use super::helpers::*;
use super::preset::*;
use super::types::*;
use crate::transition::math::{hash, integer_squareroot, xor, SafeArith};
use crate::transition::{ChainConfig, Check, SignatureChecker, TransitionCtx, TransitionError};
use crate::transition_ensure as ensure;

/// `process_block`. The execution payload is trusted optimistically (no engine).
pub fn process_block(
    state: &mut BeaconState,
    block: &BeaconBlock,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    process_block_header(state, block)?;
    process_withdrawals(state, &block.body.execution_payload)?;
    process_execution_payload(state, &block.body, ctx, true)?;
    process_randao(state, &block.body, sigs)?;
    process_eth1_data(state, &block.body)?;
    process_operations(state, &block.body, ctx, sigs)?;
    process_sync_aggregate(state, &block.body.sync_aggregate, ctx, sigs)?;
    Ok(())
}

pub fn process_block_header(state: &mut BeaconState, block: &BeaconBlock) -> Result<()> {
    ensure!(
        block.slot == state.slot,
        Check::BlockSlot,
        "block slot {} != state slot {}",
        block.slot,
        state.slot
    );
    ensure!(
        block.slot > state.latest_block_header.slot,
        Check::BlockNotNewer,
        "block is not newer than the latest block header"
    );
    ensure!(
        block.proposer_index == get_beacon_proposer_index(state),
        Check::ProposerIndex,
        "proposer index {} is not the expected {}",
        block.proposer_index,
        get_beacon_proposer_index(state)
    );
    let parent = hash_tree_root(&state.latest_block_header)?;
    ensure!(
        block.parent_root.as_bytes() == &parent,
        Check::ParentRoot,
        "parent root does not match the latest block header"
    );
    state.latest_block_header = BeaconBlockHeader {
        slot: block.slot,
        proposer_index: block.proposer_index,
        parent_root: block.parent_root,
        state_root: Root::default(),
        body_root: Root::from(hash_tree_root(&block.body)?),
    };
    let proposer = validator(state, block.proposer_index)?;
    ensure!(
        !proposer.slashed,
        Check::ProposerSlashed,
        "proposer is slashed"
    );
    Ok(())
}

// ---- withdrawals ------------------------------------------------------------------------

/// What `get_expected_withdrawals` returns.
#[derive(Debug, Clone, Default)]
pub struct ExpectedWithdrawals {
    pub withdrawals: Vec<Withdrawal>,
    pub processed_partial_withdrawals_count: u64,
    pub processed_validators_sweep_count: u64,
}

pub fn get_balance_after_withdrawals(
    state: &BeaconState,
    validator_index: u64,
    withdrawals: &[Withdrawal],
) -> Result<u64> {
    let mut withdrawn: u64 = 0;
    for w in withdrawals {
        if w.validator_index == validator_index {
            withdrawn = withdrawn.safe_add(w.amount)?;
        }
    }
    balance(state, validator_index)?.safe_sub(withdrawn)
}

fn withdrawal_address(v: &Validator) -> ExecutionAddress {
    let mut a = [0u8; 20];
    a.copy_from_slice(&v.withdrawal_credentials.as_bytes()[12..]);
    ExecutionAddress::from(a)
}

pub fn get_pending_partial_withdrawals(
    state: &BeaconState,
    mut withdrawal_index: u64,
    prior_withdrawals: &[Withdrawal],
) -> Result<(Vec<Withdrawal>, u64, u64)> {
    let epoch = get_current_epoch(state);
    let withdrawals_limit = (prior_withdrawals.len() as u64
        + MAX_PENDING_PARTIALS_PER_WITHDRAWALS_SWEEP)
        .min(MAX_WITHDRAWALS_PER_PAYLOAD as u64 - 1);
    ensure!(
        prior_withdrawals.len() as u64 <= withdrawals_limit,
        Check::Withdrawals,
        "too many prior withdrawals"
    );
    let mut processed_count: u64 = 0;
    let mut withdrawals: Vec<Withdrawal> = Vec::new();
    for withdrawal in state.pending_partial_withdrawals.iter() {
        let mut all: Vec<Withdrawal> = prior_withdrawals.to_vec();
        all.extend(withdrawals.iter().cloned());
        let is_withdrawable = withdrawal.withdrawable_epoch <= epoch;
        let has_reached_limit = all.len() as u64 >= withdrawals_limit;
        if !is_withdrawable || has_reached_limit {
            break;
        }
        let validator_index = withdrawal.validator_index;
        let v = validator(state, validator_index)?;
        let bal = get_balance_after_withdrawals(state, validator_index, &all)?;
        if is_eligible_for_partial_withdrawals(v, bal) {
            let amount = (bal - MIN_ACTIVATION_BALANCE).min(withdrawal.amount);
            withdrawals.push(Withdrawal {
                index: withdrawal_index,
                validator_index,
                address: withdrawal_address(v),
                amount,
            });
            withdrawal_index = withdrawal_index.safe_add(1)?;
        }
        processed_count += 1;
    }
    Ok((withdrawals, withdrawal_index, processed_count))
}

pub fn get_validators_sweep_withdrawals(
    state: &BeaconState,
    mut withdrawal_index: u64,
    prior_withdrawals: &[Withdrawal],
) -> Result<(Vec<Withdrawal>, u64, u64)> {
    let epoch = get_current_epoch(state);
    let n = state.validators.len() as u64;
    let validators_limit = n.min(MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP);
    let withdrawals_limit = MAX_WITHDRAWALS_PER_PAYLOAD as u64;
    ensure!(
        (prior_withdrawals.len() as u64) < withdrawals_limit,
        Check::Withdrawals,
        "no room for sweep withdrawals"
    );
    let mut processed_count: u64 = 0;
    let mut withdrawals: Vec<Withdrawal> = Vec::new();
    let mut validator_index = state.next_withdrawal_validator_index;
    for _ in 0..validators_limit {
        let mut all: Vec<Withdrawal> = prior_withdrawals.to_vec();
        all.extend(withdrawals.iter().cloned());
        if all.len() as u64 >= withdrawals_limit {
            break;
        }
        let v = validator(state, validator_index)?;
        let bal = get_balance_after_withdrawals(state, validator_index, &all)?;
        if is_fully_withdrawable_validator(v, bal, epoch) {
            withdrawals.push(Withdrawal {
                index: withdrawal_index,
                validator_index,
                address: withdrawal_address(v),
                amount: bal,
            });
            withdrawal_index = withdrawal_index.safe_add(1)?;
        } else if is_partially_withdrawable_validator(v, bal) {
            withdrawals.push(Withdrawal {
                index: withdrawal_index,
                validator_index,
                address: withdrawal_address(v),
                amount: bal.safe_sub(get_max_effective_balance(v))?,
            });
            withdrawal_index = withdrawal_index.safe_add(1)?;
        }
        validator_index = validator_index.safe_add(1)? % n;
        processed_count += 1;
    }
    Ok((withdrawals, withdrawal_index, processed_count))
}

pub fn get_expected_withdrawals(state: &BeaconState) -> Result<ExpectedWithdrawals> {
    let withdrawal_index = state.next_withdrawal_index;
    let mut withdrawals = Vec::new();
    let (partial, withdrawal_index, processed_partial) =
        get_pending_partial_withdrawals(state, withdrawal_index, &withdrawals)?;
    withdrawals.extend(partial);
    let (sweep, _withdrawal_index, processed_sweep) =
        get_validators_sweep_withdrawals(state, withdrawal_index, &withdrawals)?;
    withdrawals.extend(sweep);
    Ok(ExpectedWithdrawals {
        withdrawals,
        processed_partial_withdrawals_count: processed_partial,
        processed_validators_sweep_count: processed_sweep,
    })
}

pub fn apply_withdrawals(state: &mut BeaconState, withdrawals: &[Withdrawal]) -> Result<()> {
    for w in withdrawals {
        decrease_balance(state, w.validator_index, w.amount)?;
    }
    Ok(())
}

pub fn update_next_withdrawal_index(
    state: &mut BeaconState,
    withdrawals: &[Withdrawal],
) -> Result<()> {
    if let Some(latest) = withdrawals.last() {
        state.next_withdrawal_index = latest.index.safe_add(1)?;
    }
    Ok(())
}

pub fn update_pending_partial_withdrawals(state: &mut BeaconState, processed: u64) -> Result<()> {
    let rest: Vec<PendingPartialWithdrawal> = state
        .pending_partial_withdrawals
        .iter()
        .skip(processed as usize)
        .cloned()
        .collect();
    state.pending_partial_withdrawals = to_list(rest, "pending_partial_withdrawals")?;
    Ok(())
}

pub fn update_next_withdrawal_validator_index(
    state: &mut BeaconState,
    withdrawals: &[Withdrawal],
) -> Result<()> {
    let n = state.validators.len() as u64;
    ensure!(n > 0, Check::Withdrawals, "no validators");
    if withdrawals.len() == MAX_WITHDRAWALS_PER_PAYLOAD {
        let last = withdrawals[withdrawals.len() - 1].validator_index;
        state.next_withdrawal_validator_index = last.safe_add(1)? % n;
    } else {
        let next_index = state
            .next_withdrawal_validator_index
            .safe_add(MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP)?;
        state.next_withdrawal_validator_index = next_index % n;
    }
    Ok(())
}

pub fn process_withdrawals(state: &mut BeaconState, payload: &ExecutionPayload) -> Result<()> {
    let expected = get_expected_withdrawals(state)?;
    ensure!(
        payload.withdrawals.as_slice() == expected.withdrawals.as_slice(),
        Check::Withdrawals,
        "payload withdrawals do not match the expected withdrawals"
    );
    apply_withdrawals(state, &expected.withdrawals)?;
    update_next_withdrawal_index(state, &expected.withdrawals)?;
    update_pending_partial_withdrawals(state, expected.processed_partial_withdrawals_count)?;
    update_next_withdrawal_validator_index(state, &expected.withdrawals)?;
    Ok(())
}

// ---- execution payload ------------------------------------------------------------------

/// `process_execution_payload`; `execution_valid` stands for the execution engine's
/// verdict (a node without an engine passes `true`: optimistic).
pub fn process_execution_payload(
    state: &mut BeaconState,
    body: &BeaconBlockBody,
    ctx: &TransitionCtx,
    execution_valid: bool,
) -> Result<()> {
    let cfg = ctx.cfg();
    let payload = &body.execution_payload;
    ensure!(
        payload.parent_hash == state.latest_execution_payload_header.block_hash,
        Check::ExecutionPayload,
        "payload parent hash mismatch"
    );
    ensure!(
        payload.prev_randao == get_randao_mix(state, get_current_epoch(state)),
        Check::ExecutionPayload,
        "payload prev_randao mismatch"
    );
    ensure!(
        payload.timestamp == compute_time_at_slot(state, state.slot, cfg)?,
        Check::ExecutionPayload,
        "payload timestamp mismatch"
    );
    ensure!(
        body.blob_kzg_commitments.len() as u64 <= cfg.max_blobs_per_block(get_current_epoch(state)),
        Check::ExecutionPayload,
        "too many blob commitments"
    );
    ensure!(
        execution_valid,
        Check::ExecutionPayload,
        "execution engine rejected the payload"
    );
    state.latest_execution_payload_header = ExecutionPayloadHeader {
        parent_hash: payload.parent_hash,
        fee_recipient: payload.fee_recipient,
        state_root: payload.state_root,
        receipts_root: payload.receipts_root,
        logs_bloom: payload.logs_bloom,
        prev_randao: payload.prev_randao,
        block_number: payload.block_number,
        gas_limit: payload.gas_limit,
        gas_used: payload.gas_used,
        timestamp: payload.timestamp,
        extra_data: payload.extra_data.clone(),
        base_fee_per_gas: payload.base_fee_per_gas.clone(),
        block_hash: payload.block_hash,
        transactions_root: Root::from(hash_tree_root(&payload.transactions)?),
        withdrawals_root: Root::from(hash_tree_root(&payload.withdrawals)?),
        blob_gas_used: payload.blob_gas_used,
        excess_blob_gas: payload.excess_blob_gas,
    };
    Ok(())
}

// ---- randao, eth1 data ------------------------------------------------------------------

pub fn process_randao(
    state: &mut BeaconState,
    body: &BeaconBlockBody,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let epoch = get_current_epoch(state);
    let proposer_index = get_beacon_proposer_index(state);
    validator(state, proposer_index)?;
    let signing_root = compute_signing_root(&epoch, get_domain(state, DOMAIN_RANDAO, None)?)?;
    sigs.check_validators(
        "randao reveal",
        &state.validators,
        &[proposer_index],
        signing_root,
        &body.randao_reveal,
    )?;
    let mix = xor(
        get_randao_mix(state, epoch).as_bytes(),
        &hash(&[body.randao_reveal.as_ref()]),
    );
    state.randao_mixes[(epoch % EPOCHS_PER_HISTORICAL_VECTOR as u64) as usize] = Bytes32::from(mix);
    Ok(())
}

pub fn process_eth1_data(state: &mut BeaconState, body: &BeaconBlockBody) -> Result<()> {
    push_bounded(
        &mut state.eth1_data_votes,
        body.eth1_data.clone(),
        "eth1_data_votes",
    )?;
    let count = state
        .eth1_data_votes
        .iter()
        .filter(|v| **v == body.eth1_data)
        .count() as u64;
    if count * 2 > (EPOCHS_PER_ETH1_VOTING_PERIOD * SLOTS_PER_EPOCH) as u64 {
        state.eth1_data = body.eth1_data.clone();
    }
    Ok(())
}

// ---- operations -------------------------------------------------------------------------

pub fn process_operations(
    state: &mut BeaconState,
    body: &BeaconBlockBody,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    ensure!(
        body.deposits.is_empty(),
        Check::Operations,
        "Fulu blocks carry no deposits"
    );
    for op in body.proposer_slashings.iter() {
        process_proposer_slashing(state, op, ctx, sigs)?;
    }
    for op in body.attester_slashings.iter() {
        process_attester_slashing(state, op, ctx, sigs)?;
    }
    for op in body.attestations.iter() {
        process_attestation(state, op, ctx, sigs)?;
    }
    for op in body.voluntary_exits.iter() {
        process_voluntary_exit(state, op, ctx, sigs)?;
    }
    for op in body.bls_to_execution_changes.iter() {
        process_bls_to_execution_change(state, op, ctx, sigs)?;
    }
    for op in body.execution_requests.deposits.iter() {
        process_deposit_request(state, op)?;
    }
    for op in body.execution_requests.withdrawals.iter() {
        process_withdrawal_request(state, op, ctx)?;
    }
    for op in body.execution_requests.consolidations.iter() {
        process_consolidation_request(state, op, ctx)?;
    }
    Ok(())
}

pub fn process_proposer_slashing(
    state: &mut BeaconState,
    proposer_slashing: &ProposerSlashing,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    check_proposer_slashing(state, proposer_slashing, sigs)?;
    let proposer_index = proposer_slashing.signed_header_1.message.proposer_index;
    slash_validator(state, proposer_index, None, ctx.cfg())
}

/// The asserts of `process_proposer_slashing`, in its order, without the slashing: the
/// header slots and proposer indices match, the headers differ, the proposer is a
/// slashable validator, and both header signatures verify (also the spec's
/// `proposer_slashing` gossip conditions after its seen-cache check).
pub fn check_proposer_slashing(
    state: &BeaconState,
    proposer_slashing: &ProposerSlashing,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let header_1 = &proposer_slashing.signed_header_1.message;
    let header_2 = &proposer_slashing.signed_header_2.message;
    ensure!(
        header_1.slot == header_2.slot,
        Check::ProposerSlashing,
        "header slots differ"
    );
    ensure!(
        header_1.proposer_index == header_2.proposer_index,
        Check::ProposerSlashing,
        "header proposer indices differ"
    );
    ensure!(
        header_1 != header_2,
        Check::ProposerSlashing,
        "headers are equal"
    );
    let proposer = validator(state, header_1.proposer_index)?;
    ensure!(
        is_slashable_validator(proposer, get_current_epoch(state)),
        Check::ProposerSlashing,
        "proposer is not slashable"
    );
    for signed_header in [
        &proposer_slashing.signed_header_1,
        &proposer_slashing.signed_header_2,
    ] {
        let domain = get_domain(
            state,
            DOMAIN_BEACON_PROPOSER,
            Some(compute_epoch_at_slot(signed_header.message.slot)),
        )?;
        let signing_root = compute_signing_root(&signed_header.message, domain)?;
        sigs.check_validators(
            "proposer slashing header",
            &state.validators,
            &[header_1.proposer_index],
            signing_root,
            &signed_header.signature,
        )?;
    }
    Ok(())
}

pub fn process_attester_slashing(
    state: &mut BeaconState,
    attester_slashing: &AttesterSlashing,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let cfg = ctx.cfg();
    // Slashing one validator changes no other validator's slashability, so the indices
    // the check finds slashable are exactly those the spec's loop slashes.
    for index in check_attester_slashing(state, attester_slashing, sigs)? {
        slash_validator(state, index, None, cfg)?;
    }
    Ok(())
}

/// The asserts of `process_attester_slashing`, without the slashing: the attestation data
/// are slashable, each indexed attestation's indices are validator indices (checked
/// before its other properties, as the `attester_slashing` gossip conditions order them)
/// and `is_valid_indexed_attestation` holds, and at least one index of the intersection is
/// a slashable validator. `Ok`: the slashable indices of the intersection, ascending.
pub fn check_attester_slashing(
    state: &BeaconState,
    attester_slashing: &AttesterSlashing,
    sigs: &mut SignatureChecker,
) -> Result<Vec<u64>> {
    let a1 = &attester_slashing.attestation_1;
    let a2 = &attester_slashing.attestation_2;
    ensure!(
        is_slashable_attestation_data(&a1.data, &a2.data),
        Check::AttesterSlashing,
        "attestation data are not slashable"
    );
    for a in [a1, a2] {
        for &i in a.attesting_indices.iter() {
            validator(state, i)?;
        }
        is_valid_indexed_attestation(state, a, sigs)?;
    }
    let set2: std::collections::BTreeSet<u64> = a2.attesting_indices.iter().copied().collect();
    let indices: std::collections::BTreeSet<u64> = a1
        .attesting_indices
        .iter()
        .copied()
        .filter(|i| set2.contains(i))
        .collect();
    let current_epoch = get_current_epoch(state);
    let mut slashable = Vec::new();
    for index in indices {
        if is_slashable_validator(validator(state, index)?, current_epoch) {
            slashable.push(index);
        }
    }
    ensure!(
        !slashable.is_empty(),
        Check::AttesterSlashing,
        "attester slashing slashed nobody"
    );
    Ok(slashable)
}

pub fn get_attestation_participation_flag_indices(
    state: &BeaconState,
    data: &AttestationData,
    inclusion_delay: u64,
) -> Result<Vec<usize>> {
    let justified_checkpoint = if data.target.epoch == get_current_epoch(state) {
        &state.current_justified_checkpoint
    } else {
        &state.previous_justified_checkpoint
    };
    let is_matching_source = &data.source == justified_checkpoint;
    let target_root = get_block_root(state, data.target.epoch)?;
    let is_matching_target = is_matching_source && data.target.root == target_root;
    let head_root = get_block_root_at_slot(state, data.slot)?;
    let is_matching_head = is_matching_target && data.beacon_block_root == head_root;
    ensure!(
        is_matching_source,
        Check::Attestation,
        "attestation source does not match"
    );
    let mut out = Vec::new();
    if is_matching_source && inclusion_delay <= integer_squareroot(SLOTS_PER_EPOCH_U64) {
        out.push(TIMELY_SOURCE_FLAG_INDEX);
    }
    if is_matching_target {
        out.push(TIMELY_TARGET_FLAG_INDEX);
    }
    if is_matching_head && inclusion_delay == MIN_ATTESTATION_INCLUSION_DELAY {
        out.push(TIMELY_HEAD_FLAG_INDEX);
    }
    Ok(out)
}

pub fn process_attestation(
    state: &mut BeaconState,
    attestation: &Attestation,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let data = &attestation.data;
    let current_epoch = get_current_epoch(state);
    ensure!(
        data.target.epoch == get_previous_epoch(state) || data.target.epoch == current_epoch,
        Check::Attestation,
        "attestation target epoch is neither previous nor current"
    );
    ensure!(
        data.target.epoch == compute_epoch_at_slot(data.slot),
        Check::Attestation,
        "attestation target epoch does not match its slot"
    );
    ensure!(
        data.slot.safe_add(MIN_ATTESTATION_INCLUSION_DELAY)? <= state.slot,
        Check::Attestation,
        "attestation included too early"
    );
    ensure!(
        data.index == 0,
        Check::Attestation,
        "attestation data index must be 0"
    );
    let bits = &attestation.aggregation_bits;
    let mut committee_offset: usize = 0;
    // The slot's committees are slices of the epoch's cached shuffling (whose length is
    // the active count `get_committee_count_per_slot` reads).
    let shuffling = get_shuffling(state, compute_epoch_at_slot(data.slot), ctx)?;
    let committee_count =
        (shuffling.len() as u64 / SLOTS_PER_EPOCH_U64 / TARGET_COMMITTEE_SIZE as u64)
            .min(MAX_COMMITTEES_PER_SLOT as u64)
            .max(1);
    for committee_index in get_committee_indices(&attestation.committee_bits) {
        ensure!(
            committee_index < committee_count,
            Check::Attestation,
            "committee index {committee_index} out of range"
        );
        let committee = committee_in(&shuffling, data.slot, committee_index)?;
        let mut any = false;
        for i in 0..committee.len() {
            let pos = committee_offset + i;
            ensure!(
                pos < bits.len(),
                Check::Attestation,
                "aggregation bits too short"
            );
            any |= bits[pos];
        }
        ensure!(
            any,
            Check::Attestation,
            "committee {committee_index} has no attesters"
        );
        committee_offset += committee.len();
    }
    ensure!(
        bits.len() == committee_offset,
        Check::Attestation,
        "aggregation bits length {} != committee sizes {committee_offset}",
        bits.len()
    );
    let inclusion_delay = state.slot - data.slot;
    let participation_flag_indices =
        get_attestation_participation_flag_indices(state, data, inclusion_delay)?;
    let indexed = IndexedAttestation {
        attesting_indices: to_list(
            get_attesting_indices_in(&shuffling, attestation)?,
            "attesting_indices",
        )?,
        data: attestation.data.clone(),
        signature: attestation.signature,
    };
    is_valid_indexed_attestation(state, &indexed, sigs)?;

    let is_current = data.target.epoch == current_epoch;
    let mut proposer_reward_numerator: u64 = 0;
    // `get_base_reward` reads the total active balance, which no step of an attestation
    // changes: computed once here instead of once per attester (O(n) each).
    let per_increment = EFFECTIVE_BALANCE_INCREMENT
        .safe_mul(BASE_REWARD_FACTOR)?
        .safe_div(integer_squareroot(get_total_active_balance_in(state, ctx)?))?;
    for &index in indexed.attesting_indices.iter() {
        let i = checked_index(
            "participation",
            index,
            state.current_epoch_participation.len(),
        )?;
        checked_index(
            "participation",
            index,
            state.previous_epoch_participation.len(),
        )?;
        let base_reward = (validator(state, index)?.effective_balance
            / EFFECTIVE_BALANCE_INCREMENT)
            .safe_mul(per_increment)?;
        for (flag_index, weight) in PARTICIPATION_FLAG_WEIGHTS.iter().enumerate() {
            let flags = if is_current {
                state.current_epoch_participation[i]
            } else {
                state.previous_epoch_participation[i]
            };
            if participation_flag_indices.contains(&flag_index) && !has_flag(flags, flag_index) {
                let new = add_flag(flags, flag_index);
                if is_current {
                    state.current_epoch_participation[i] = new;
                } else {
                    state.previous_epoch_participation[i] = new;
                }
                proposer_reward_numerator =
                    proposer_reward_numerator.safe_add(base_reward.safe_mul(*weight)?)?;
            }
        }
    }
    let proposer_reward_denominator =
        (WEIGHT_DENOMINATOR - PROPOSER_WEIGHT) * WEIGHT_DENOMINATOR / PROPOSER_WEIGHT;
    let proposer_reward = proposer_reward_numerator / proposer_reward_denominator;
    increase_balance(state, get_beacon_proposer_index(state), proposer_reward)
}

pub fn process_voluntary_exit(
    state: &mut BeaconState,
    signed_voluntary_exit: &SignedVoluntaryExit,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let cfg = ctx.cfg();
    let exit = &signed_voluntary_exit.message;
    check_voluntary_exit(state, signed_voluntary_exit, cfg, sigs)?;
    // [New in Electra:EIP7251] (checked after the signature here; either failing makes
    // the block invalid.)
    ensure!(
        get_pending_balance_to_withdraw(state, exit.validator_index)? == 0,
        Check::VoluntaryExit,
        "validator has pending withdrawals"
    );
    initiate_validator_exit(state, exit.validator_index, cfg)
}

/// The asserts of `process_voluntary_exit` up to Deneb, in its order: the validator index
/// is valid, the validator is active and not exiting, the exit's epoch is not in the
/// future, the validator has been active `SHARD_COMMITTEE_PERIOD` epochs, and the
/// signature verifies under the Capella fork version (EIP-7044). These are the spec's
/// `voluntary_exit` gossip conditions after its seen-cache check; `process_voluntary_exit`
/// adds Electra's pending-withdrawal check.
pub fn check_voluntary_exit(
    state: &BeaconState,
    signed_voluntary_exit: &SignedVoluntaryExit,
    cfg: &ChainConfig,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let exit = &signed_voluntary_exit.message;
    let current_epoch = get_current_epoch(state);
    let v = validator(state, exit.validator_index)?;
    ensure!(
        is_active_validator(v, current_epoch),
        Check::VoluntaryExit,
        "validator is not active"
    );
    ensure!(
        v.exit_epoch == FAR_FUTURE_EPOCH,
        Check::VoluntaryExit,
        "validator already exiting"
    );
    ensure!(
        current_epoch >= exit.epoch,
        Check::VoluntaryExit,
        "exit epoch is in the future"
    );
    ensure!(
        current_epoch >= v.activation_epoch.safe_add(cfg.shard_committee_period)?,
        Check::VoluntaryExit,
        "validator has not been active long enough"
    );
    let domain = compute_domain(
        DOMAIN_VOLUNTARY_EXIT,
        Some(&Version::from(cfg.capella_fork_version)),
        Some(&state.genesis_validators_root),
        cfg,
    )?;
    let signing_root = compute_signing_root(exit, domain)?;
    sigs.check_validators(
        "voluntary exit",
        &state.validators,
        &[exit.validator_index],
        signing_root,
        &signed_voluntary_exit.signature,
    )
}

pub fn process_bls_to_execution_change(
    state: &mut BeaconState,
    signed_address_change: &SignedBLSToExecutionChange,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let change = &signed_address_change.message;
    check_bls_to_execution_change(state, signed_address_change, ctx.cfg(), sigs)?;
    let mut new_wc = [0u8; 32];
    new_wc[0] = ETH1_ADDRESS_WITHDRAWAL_PREFIX;
    new_wc[12..].copy_from_slice(change.to_execution_address.as_ref());
    validator_mut(state, change.validator_index)?.withdrawal_credentials = Bytes32::from(new_wc);
    Ok(())
}

/// The asserts of `process_bls_to_execution_change`, in its order: the validator index is
/// valid, its withdrawal credentials are BLS ones of `from_bls_pubkey`, and the signature
/// verifies (genesis fork version). Also the spec's `bls_to_execution_change` gossip
/// conditions after its clock and seen-cache checks.
pub fn check_bls_to_execution_change(
    state: &BeaconState,
    signed_address_change: &SignedBLSToExecutionChange,
    cfg: &ChainConfig,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let change = &signed_address_change.message;
    let v = validator(state, change.validator_index)?;
    let wc = v.withdrawal_credentials.as_bytes();
    ensure!(
        wc[0] == BLS_WITHDRAWAL_PREFIX,
        Check::BlsToExecutionChange,
        "withdrawal credentials are not BLS"
    );
    ensure!(
        wc[1..] == hash(&[change.from_bls_pubkey.as_ref()])[1..],
        Check::BlsToExecutionChange,
        "from_bls_pubkey does not match the withdrawal credentials"
    );
    let domain = compute_domain(
        DOMAIN_BLS_TO_EXECUTION_CHANGE,
        None,
        Some(&state.genesis_validators_root),
        cfg,
    )?;
    let signing_root = compute_signing_root(change, domain)?;
    sigs.check_pubkeys(
        "bls to execution change",
        &[&change.from_bls_pubkey],
        signing_root,
        &signed_address_change.signature,
    )
}

// ---- execution requests -----------------------------------------------------------------

pub fn process_deposit_request(
    state: &mut BeaconState,
    deposit_request: &DepositRequest,
) -> Result<()> {
    let deposit = PendingDeposit {
        pubkey: deposit_request.pubkey,
        withdrawal_credentials: deposit_request.withdrawal_credentials,
        amount: deposit_request.amount,
        signature: deposit_request.signature,
        slot: state.slot,
    };
    push_bounded(&mut state.pending_deposits, deposit, "pending_deposits")
}

fn source_address_matches(v: &Validator, address: &ExecutionAddress) -> bool {
    &v.withdrawal_credentials.as_bytes()[12..] == address.as_ref()
}

pub fn process_withdrawal_request(
    state: &mut BeaconState,
    withdrawal_request: &WithdrawalRequest,
    ctx: &TransitionCtx,
) -> Result<()> {
    let cfg = ctx.cfg();
    let amount = withdrawal_request.amount;
    let is_full_exit_request = amount == FULL_EXIT_REQUEST_AMOUNT;
    if state.pending_partial_withdrawals.len() == PENDING_PARTIAL_WITHDRAWALS_LIMIT
        && !is_full_exit_request
    {
        return Ok(());
    }
    let Some(index) = find_validator_by_pubkey_in(state, &withdrawal_request.validator_pubkey, ctx)
    else {
        return Ok(());
    };
    let v = validator(state, index)?;
    let current_epoch = get_current_epoch(state);
    if !(has_execution_withdrawal_credential(v)
        && source_address_matches(v, &withdrawal_request.source_address))
    {
        return Ok(());
    }
    if !is_active_validator(v, current_epoch) {
        return Ok(());
    }
    if v.exit_epoch != FAR_FUTURE_EPOCH {
        return Ok(());
    }
    if current_epoch < v.activation_epoch.safe_add(cfg.shard_committee_period)? {
        return Ok(());
    }
    let pending_balance_to_withdraw = get_pending_balance_to_withdraw(state, index)?;
    if is_full_exit_request {
        if pending_balance_to_withdraw == 0 {
            initiate_validator_exit(state, index, cfg)?;
        }
        return Ok(());
    }
    let bal = balance(state, index)?;
    let has_sufficient_effective_balance = v.effective_balance >= MIN_ACTIVATION_BALANCE;
    let has_excess_balance = bal > MIN_ACTIVATION_BALANCE.safe_add(pending_balance_to_withdraw)?;
    if has_compounding_withdrawal_credential(v)
        && has_sufficient_effective_balance
        && has_excess_balance
    {
        let to_withdraw = (bal - MIN_ACTIVATION_BALANCE - pending_balance_to_withdraw).min(amount);
        let exit_queue_epoch = compute_exit_epoch_and_update_churn(state, to_withdraw, cfg)?;
        let withdrawable_epoch =
            exit_queue_epoch.safe_add(cfg.min_validator_withdrawability_delay)?;
        push_bounded(
            &mut state.pending_partial_withdrawals,
            PendingPartialWithdrawal {
                validator_index: index,
                amount: to_withdraw,
                withdrawable_epoch,
            },
            "pending_partial_withdrawals",
        )?;
    }
    Ok(())
}

pub fn is_valid_switch_to_compounding_request(
    state: &BeaconState,
    consolidation_request: &ConsolidationRequest,
    ctx: &TransitionCtx,
) -> bool {
    if consolidation_request.source_pubkey != consolidation_request.target_pubkey {
        return false;
    }
    let Some(index) = find_validator_by_pubkey_in(state, &consolidation_request.source_pubkey, ctx)
    else {
        return false;
    };
    let v = &state.validators[index as usize];
    if !source_address_matches(v, &consolidation_request.source_address) {
        return false;
    }
    if !has_eth1_withdrawal_credential(v) {
        return false;
    }
    if !is_active_validator(v, get_current_epoch(state)) {
        return false;
    }
    v.exit_epoch == FAR_FUTURE_EPOCH
}

pub fn process_consolidation_request(
    state: &mut BeaconState,
    consolidation_request: &ConsolidationRequest,
    ctx: &TransitionCtx,
) -> Result<()> {
    let cfg = ctx.cfg();
    if is_valid_switch_to_compounding_request(state, consolidation_request, ctx) {
        if let Some(source_index) =
            find_validator_by_pubkey_in(state, &consolidation_request.source_pubkey, ctx)
        {
            switch_to_compounding_validator(state, source_index)?;
        }
        return Ok(());
    }
    if consolidation_request.source_pubkey == consolidation_request.target_pubkey {
        return Ok(());
    }
    if state.pending_consolidations.len() == PENDING_CONSOLIDATIONS_LIMIT {
        return Ok(());
    }
    if get_consolidation_churn_limit(state, cfg)? <= MIN_ACTIVATION_BALANCE {
        return Ok(());
    }
    let Some(source_index) =
        find_validator_by_pubkey_in(state, &consolidation_request.source_pubkey, ctx)
    else {
        return Ok(());
    };
    let Some(target_index) =
        find_validator_by_pubkey_in(state, &consolidation_request.target_pubkey, ctx)
    else {
        return Ok(());
    };
    let source = validator(state, source_index)?;
    let target = validator(state, target_index)?;
    if !(has_execution_withdrawal_credential(source)
        && source_address_matches(source, &consolidation_request.source_address))
    {
        return Ok(());
    }
    if !has_compounding_withdrawal_credential(target) {
        return Ok(());
    }
    let current_epoch = get_current_epoch(state);
    if !is_active_validator(source, current_epoch) || !is_active_validator(target, current_epoch) {
        return Ok(());
    }
    if source.exit_epoch != FAR_FUTURE_EPOCH || target.exit_epoch != FAR_FUTURE_EPOCH {
        return Ok(());
    }
    if current_epoch
        < source
            .activation_epoch
            .safe_add(cfg.shard_committee_period)?
    {
        return Ok(());
    }
    if get_pending_balance_to_withdraw(state, source_index)? > 0 {
        return Ok(());
    }
    let source_effective_balance = source.effective_balance;
    let exit_epoch =
        compute_consolidation_epoch_and_update_churn(state, source_effective_balance, cfg)?;
    let source = validator_mut(state, source_index)?;
    source.exit_epoch = exit_epoch;
    source.withdrawable_epoch = exit_epoch.safe_add(cfg.min_validator_withdrawability_delay)?;
    push_bounded(
        &mut state.pending_consolidations,
        PendingConsolidation {
            source_index,
            target_index,
        },
        "pending_consolidations",
    )
}

// ---- sync aggregate ---------------------------------------------------------------------

pub fn process_sync_aggregate(
    state: &mut BeaconState,
    sync_aggregate: &SyncAggregate,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<()> {
    let bits: Vec<bool> = sync_aggregate
        .sync_committee_bits
        .iter()
        .by_vals()
        .collect();
    // The members' validator indices (the spec's `all_pubkeys.index(pubkey)`, looked up
    // through the remembered pubkey index); the participants' pubkeys are the registry's
    // keys at those indices, so the signature is checked by index (the pubkey table).
    let mut committee_indices = Vec::with_capacity(SYNC_COMMITTEE_SIZE);
    for pubkey in state.current_sync_committee.pubkeys.iter() {
        let index = ctx
            .pubkeys()
            .find_validator_index(&state.validators, pubkey.as_bytes())
            .ok_or_else(|| {
                TransitionError::check(
                    Check::SyncAggregate,
                    "sync committee member is not a validator",
                )
            })?;
        committee_indices.push(index);
    }
    let participant_indices: Vec<u64> = committee_indices
        .iter()
        .zip(bits.iter())
        .filter(|(_, b)| **b)
        .map(|(i, _)| *i)
        .collect();
    let previous_slot = state.slot.max(1) - 1;
    let domain = get_domain(
        state,
        DOMAIN_SYNC_COMMITTEE,
        Some(compute_epoch_at_slot(previous_slot)),
    )?;
    let signing_root =
        compute_signing_root(&get_block_root_at_slot(state, previous_slot)?, domain)?;
    // eth_fast_aggregate_verify: no participants and the infinity signature is valid.
    if !(participant_indices.is_empty()
        && sync_aggregate.sync_committee_signature == g2_point_at_infinity())
    {
        sigs.check_validators(
            "sync aggregate",
            &state.validators,
            &participant_indices,
            signing_root,
            &sync_aggregate.sync_committee_signature,
        )?;
    }

    // `get_total_active_balance` once (it is O(validators)); the per-increment reward is
    // `get_base_reward_per_increment` over the same total.
    let total_active_balance = get_total_active_balance_in(state, ctx)?;
    let total_active_increments = total_active_balance / EFFECTIVE_BALANCE_INCREMENT;
    let base_reward_per_increment = EFFECTIVE_BALANCE_INCREMENT
        .safe_mul(BASE_REWARD_FACTOR)?
        .safe_div(integer_squareroot(total_active_balance))?;
    let total_base_rewards = base_reward_per_increment.safe_mul(total_active_increments)?;
    let max_participant_rewards =
        total_base_rewards.safe_mul(SYNC_REWARD_WEIGHT)? / WEIGHT_DENOMINATOR / SLOTS_PER_EPOCH_U64;
    let participant_reward = max_participant_rewards / SYNC_COMMITTEE_SIZE as u64;
    let proposer_reward =
        participant_reward.safe_mul(PROPOSER_WEIGHT)? / (WEIGHT_DENOMINATOR - PROPOSER_WEIGHT);

    let proposer_index = get_beacon_proposer_index(state);
    for (participant_index, bit) in committee_indices.into_iter().zip(bits) {
        if bit {
            increase_balance(state, participant_index, participant_reward)?;
            increase_balance(state, proposer_index, proposer_reward)?;
        } else {
            decrease_balance(state, participant_index, participant_reward)?;
        }
    }
    Ok(())
}
