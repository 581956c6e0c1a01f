//! `process_epoch` and every sub-step, in the spec's order.

use super::helpers::*;
use super::preset::*;
use super::types::*;
use crate::transition::math::SafeArith;
use crate::transition::signatures::eth_aggregate_pubkeys;
use crate::transition::{ChainConfig, Check, TransitionCtx};
use crate::transition_ensure as ensure;

pub fn process_epoch(state: &mut BeaconState, ctx: &TransitionCtx) -> Result<()> {
    process_justification_and_finalization(state)?;
    process_inactivity_updates(state, ctx)?;
    process_rewards_and_penalties(state, ctx)?;
    process_registry_updates(state, ctx)?;
    process_slashings(state)?;
    process_eth1_data_reset(state)?;
    process_pending_deposits(state, ctx)?;
    process_pending_consolidations(state)?;
    process_effective_balance_updates(state)?;
    process_slashings_reset(state)?;
    process_randao_mixes_reset(state)?;
    process_historical_summaries_update(state)?;
    process_participation_flag_updates(state)?;
    process_sync_committee_updates(state)?;
    process_proposer_lookahead(state)?;
    Ok(())
}

/// Membership mask over the validator registry.
fn mask(state: &BeaconState, indices: &[u64]) -> Vec<bool> {
    let mut m = vec![false; state.validators.len()];
    for &i in indices {
        if let Some(x) = m.get_mut(i as usize) {
            *x = true;
        }
    }
    m
}

pub fn process_justification_and_finalization(state: &mut BeaconState) -> Result<()> {
    if get_current_epoch(state) <= GENESIS_EPOCH + 1 {
        return Ok(());
    }
    let previous_indices = get_unslashed_participating_indices(
        state,
        TIMELY_TARGET_FLAG_INDEX,
        get_previous_epoch(state),
    )?;
    let current_indices = get_unslashed_participating_indices(
        state,
        TIMELY_TARGET_FLAG_INDEX,
        get_current_epoch(state),
    )?;
    let total_active_balance = get_total_active_balance(state)?;
    let previous_target_balance = get_total_balance(state, previous_indices)?;
    let current_target_balance = get_total_balance(state, current_indices)?;
    weigh_justification_and_finalization(
        state,
        total_active_balance,
        previous_target_balance,
        current_target_balance,
    )
}

pub fn weigh_justification_and_finalization(
    state: &mut BeaconState,
    total_active_balance: u64,
    previous_epoch_target_balance: u64,
    current_epoch_target_balance: u64,
) -> Result<()> {
    let w = weighed_checkpoints(
        state,
        total_active_balance,
        previous_epoch_target_balance,
        current_epoch_target_balance,
    )?;
    state.previous_justified_checkpoint = w.previous_justified;
    state.current_justified_checkpoint = w.current_justified;
    for (i, b) in w.bits.iter().enumerate() {
        state.justification_bits.set(i, *b);
    }
    state.finalized_checkpoint = w.finalized;
    Ok(())
}

/// What `weigh_justification_and_finalization` would leave in the state's checkpoint
/// fields, computed without changing the state.
pub struct WeighedCheckpoints {
    pub previous_justified: Checkpoint,
    pub current_justified: Checkpoint,
    pub bits: [bool; JUSTIFICATION_BITS_LENGTH],
    pub finalized: Checkpoint,
}

/// The spec's `weigh_justification_and_finalization`, reading the state only.
pub fn weighed_checkpoints(
    state: &BeaconState,
    total_active_balance: u64,
    previous_epoch_target_balance: u64,
    current_epoch_target_balance: u64,
) -> Result<WeighedCheckpoints> {
    let previous_epoch = get_previous_epoch(state);
    let current_epoch = get_current_epoch(state);
    let old_previous_justified_checkpoint = state.previous_justified_checkpoint.clone();
    let old_current_justified_checkpoint = state.current_justified_checkpoint.clone();

    let previous_justified = state.current_justified_checkpoint.clone();
    let mut current_justified = state.current_justified_checkpoint.clone();
    let mut finalized = state.finalized_checkpoint.clone();
    let mut bits = [false; JUSTIFICATION_BITS_LENGTH];
    for (i, bit) in bits.iter_mut().enumerate().skip(1) {
        *bit = state.justification_bits[i - 1];
    }
    if previous_epoch_target_balance.safe_mul(3)? >= total_active_balance.safe_mul(2)? {
        current_justified = Checkpoint {
            epoch: previous_epoch,
            root: get_block_root(state, previous_epoch)?,
        };
        bits[1] = true;
    }
    if current_epoch_target_balance.safe_mul(3)? >= total_active_balance.safe_mul(2)? {
        current_justified = Checkpoint {
            epoch: current_epoch,
            root: get_block_root(state, current_epoch)?,
        };
        bits[0] = true;
    }

    if bits[1..4].iter().all(|b| *b)
        && old_previous_justified_checkpoint.epoch.safe_add(3)? == current_epoch
    {
        finalized = old_previous_justified_checkpoint.clone();
    }
    if bits[1..3].iter().all(|b| *b)
        && old_previous_justified_checkpoint.epoch.safe_add(2)? == current_epoch
    {
        finalized = old_previous_justified_checkpoint.clone();
    }
    if bits[0..3].iter().all(|b| *b)
        && old_current_justified_checkpoint.epoch.safe_add(2)? == current_epoch
    {
        finalized = old_current_justified_checkpoint.clone();
    }
    if bits[0..2].iter().all(|b| *b)
        && old_current_justified_checkpoint.epoch.safe_add(1)? == current_epoch
    {
        finalized = old_current_justified_checkpoint;
    }
    Ok(WeighedCheckpoints {
        previous_justified,
        current_justified,
        bits,
        finalized,
    })
}

/// Fork choice's pulled-up checkpoints of a block's post state (`compute_pulled_up_tip`:
/// the state's `current_justified_checkpoint` and `finalized_checkpoint` after
/// `process_justification_and_finalization` on a copy of it), computed without copying
/// the state: one pass over the registry sums the total active balance and the previous
/// and current epochs' unslashed target-attesting balances, then the checkpoints are
/// weighed as the spec weighs them.
pub fn compute_unrealized_checkpoints(state: &BeaconState) -> Result<(Checkpoint, Checkpoint)> {
    let current_epoch = get_current_epoch(state);
    if current_epoch <= GENESIS_EPOCH + 1 {
        return Ok((
            state.current_justified_checkpoint.clone(),
            state.finalized_checkpoint.clone(),
        ));
    }
    let previous_epoch = get_previous_epoch(state);
    let previous = &state.previous_epoch_participation;
    let current = &state.current_epoch_participation;
    ensure!(
        previous.len() == state.validators.len() && current.len() == state.validators.len(),
        Check::ParticipatingIndices,
        "participation lists of {} and {} entries for {} validators",
        previous.len(),
        current.len(),
        state.validators.len()
    );
    let (mut total, mut previous_target, mut current_target) = (0u64, 0u64, 0u64);
    for ((v, &p), &c) in state
        .validators
        .iter()
        .zip(previous.iter())
        .zip(current.iter())
    {
        let active_now = is_active_validator(v, current_epoch);
        if active_now {
            total = total.safe_add(v.effective_balance)?;
        }
        if v.slashed {
            continue;
        }
        if has_flag(p, TIMELY_TARGET_FLAG_INDEX) && is_active_validator(v, previous_epoch) {
            previous_target = previous_target.safe_add(v.effective_balance)?;
        }
        if active_now && has_flag(c, TIMELY_TARGET_FLAG_INDEX) {
            current_target = current_target.safe_add(v.effective_balance)?;
        }
    }
    let w = weighed_checkpoints(
        state,
        total.max(EFFECTIVE_BALANCE_INCREMENT),
        previous_target.max(EFFECTIVE_BALANCE_INCREMENT),
        current_target.max(EFFECTIVE_BALANCE_INCREMENT),
    )?;
    Ok((w.current_justified, w.finalized))
}

pub fn get_finality_delay(state: &BeaconState) -> Result<u64> {
    get_previous_epoch(state).safe_sub(state.finalized_checkpoint.epoch)
}

pub fn is_in_inactivity_leak(state: &BeaconState) -> Result<bool> {
    Ok(get_finality_delay(state)? > MIN_EPOCHS_TO_INACTIVITY_PENALTY)
}

pub fn get_eligible_validator_indices(state: &BeaconState) -> Result<Vec<u64>> {
    let previous_epoch = get_previous_epoch(state);
    let mut out = Vec::new();
    for (i, v) in state.validators.iter().enumerate() {
        if is_active_validator(v, previous_epoch)
            || (v.slashed && previous_epoch.safe_add(1)? < v.withdrawable_epoch)
        {
            out.push(i as u64);
        }
    }
    Ok(out)
}

pub fn process_inactivity_updates(state: &mut BeaconState, ctx: &TransitionCtx) -> Result<()> {
    let cfg = ctx.cfg();
    if get_current_epoch(state) == GENESIS_EPOCH {
        return Ok(());
    }
    let participating = mask(
        state,
        &get_unslashed_participating_indices(
            state,
            TIMELY_TARGET_FLAG_INDEX,
            get_previous_epoch(state),
        )?,
    );
    let leak = is_in_inactivity_leak(state)?;
    for index in get_eligible_validator_indices(state)? {
        let i = checked_index("inactivity score", index, state.inactivity_scores.len())?;
        let mut score = state.inactivity_scores[i];
        if participating[i] {
            score -= score.min(1);
        } else {
            score = score.safe_add(cfg.inactivity_score_bias)?;
        }
        if !leak {
            score -= score.min(cfg.inactivity_score_recovery_rate);
        }
        state.inactivity_scores[i] = score;
    }
    Ok(())
}

pub fn get_flag_index_deltas(
    state: &BeaconState,
    flag_index: usize,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let n = state.validators.len();
    let mut rewards = vec![0u64; n];
    let mut penalties = vec![0u64; n];
    let previous_epoch = get_previous_epoch(state);
    let unslashed = get_unslashed_participating_indices(state, flag_index, previous_epoch)?;
    let weight = PARTICIPATION_FLAG_WEIGHTS[flag_index];
    let unslashed_participating_increments =
        get_total_balance(state, unslashed.iter().copied())? / EFFECTIVE_BALANCE_INCREMENT;
    let active_increments = get_total_active_balance(state)? / EFFECTIVE_BALANCE_INCREMENT;
    let participating = mask(state, &unslashed);
    let leak = is_in_inactivity_leak(state)?;
    let per_increment = get_base_reward_per_increment(state)?;
    for index in get_eligible_validator_indices(state)? {
        let i = index as usize;
        let base_reward = (state.validators[i].effective_balance / EFFECTIVE_BALANCE_INCREMENT)
            .safe_mul(per_increment)?;
        if participating[i] {
            if !leak {
                let reward_numerator = base_reward
                    .safe_mul(weight)?
                    .safe_mul(unslashed_participating_increments)?;
                rewards[i] = rewards[i].safe_add(
                    reward_numerator.safe_div(active_increments.safe_mul(WEIGHT_DENOMINATOR)?)?,
                )?;
            }
        } else if flag_index != TIMELY_HEAD_FLAG_INDEX {
            penalties[i] =
                penalties[i].safe_add(base_reward.safe_mul(weight)? / WEIGHT_DENOMINATOR)?;
        }
    }
    Ok((rewards, penalties))
}

pub fn get_inactivity_penalty_deltas(
    state: &BeaconState,
    cfg: &ChainConfig,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let n = state.validators.len();
    let rewards = vec![0u64; n];
    let mut penalties = vec![0u64; n];
    let previous_epoch = get_previous_epoch(state);
    let matching_target = mask(
        state,
        &get_unslashed_participating_indices(state, TIMELY_TARGET_FLAG_INDEX, previous_epoch)?,
    );
    for index in get_eligible_validator_indices(state)? {
        let i = index as usize;
        if !matching_target[i] {
            let score = *state.inactivity_scores.get(i).ok_or(
                crate::transition::TransitionError::IndexOutOfRange {
                    what: "inactivity score",
                    index,
                    len: state.inactivity_scores.len(),
                },
            )?;
            let penalty_numerator = state.validators[i].effective_balance.safe_mul(score)?;
            let penalty_denominator = cfg
                .inactivity_score_bias
                .safe_mul(INACTIVITY_PENALTY_QUOTIENT_BELLATRIX)?;
            penalties[i] =
                penalties[i].safe_add(penalty_numerator.safe_div(penalty_denominator)?)?;
        }
    }
    Ok((rewards, penalties))
}

pub fn process_rewards_and_penalties(state: &mut BeaconState, ctx: &TransitionCtx) -> Result<()> {
    let cfg = ctx.cfg();
    if get_current_epoch(state) == GENESIS_EPOCH {
        return Ok(());
    }
    let mut deltas = Vec::with_capacity(4);
    for flag_index in 0..PARTICIPATION_FLAG_WEIGHTS.len() {
        deltas.push(get_flag_index_deltas(state, flag_index)?);
    }
    deltas.push(get_inactivity_penalty_deltas(state, cfg)?);
    for (rewards, penalties) in deltas {
        for index in 0..state.validators.len() {
            increase_balance(state, index as u64, rewards[index])?;
            decrease_balance(state, index as u64, penalties[index])?;
        }
    }
    Ok(())
}

pub fn process_registry_updates(state: &mut BeaconState, ctx: &TransitionCtx) -> Result<()> {
    let cfg = ctx.cfg();
    let current_epoch = get_current_epoch(state);
    let activation_epoch = compute_activation_exit_epoch(current_epoch)?;
    for index in 0..state.validators.len() {
        let v = state.validators[index].clone();
        if is_eligible_for_activation_queue(&v) {
            state.validators[index].activation_eligibility_epoch = current_epoch.safe_add(1)?;
        } else if is_active_validator(&v, current_epoch)
            && v.effective_balance <= cfg.ejection_balance
        {
            initiate_validator_exit(state, index as u64, cfg)?;
        } else if is_eligible_for_activation(state, &v) {
            state.validators[index].activation_epoch = activation_epoch;
        }
    }
    Ok(())
}

pub fn process_slashings(state: &mut BeaconState) -> Result<()> {
    let epoch = get_current_epoch(state);
    let total_balance = get_total_active_balance(state)?;
    let mut sum: u64 = 0;
    for s in state.slashings.iter() {
        sum = sum.safe_add(*s)?;
    }
    let adjusted_total_slashing_balance = sum
        .safe_mul(PROPORTIONAL_SLASHING_MULTIPLIER_BELLATRIX)?
        .min(total_balance);
    let increment = EFFECTIVE_BALANCE_INCREMENT;
    let penalty_per_increment =
        adjusted_total_slashing_balance.safe_div(total_balance / increment)?;
    let half = EPOCHS_PER_SLASHINGS_VECTOR as u64 / 2;
    for index in 0..state.validators.len() {
        let v = &state.validators[index];
        if v.slashed && epoch.safe_add(half)? == v.withdrawable_epoch {
            let penalty = penalty_per_increment.safe_mul(v.effective_balance / increment)?;
            decrease_balance(state, index as u64, penalty)?;
        }
    }
    Ok(())
}

pub fn process_eth1_data_reset(state: &mut BeaconState) -> Result<()> {
    let next_epoch = get_current_epoch(state).safe_add(1)?;
    if next_epoch % EPOCHS_PER_ETH1_VOTING_PERIOD as u64 == 0 {
        state.eth1_data_votes = Default::default();
    }
    Ok(())
}

pub fn apply_pending_deposit(
    state: &mut BeaconState,
    deposit: &PendingDeposit,
    ctx: &TransitionCtx,
) -> Result<()> {
    let cfg = ctx.cfg();
    match find_validator_by_pubkey_in(state, &deposit.pubkey, ctx) {
        None => {
            // Signatures of pending deposits are checked inline (they decide the branch).
            let checker = crate::transition::SignatureChecker::verify_inline();
            if is_valid_deposit_signature(
                &deposit.pubkey,
                &deposit.withdrawal_credentials,
                deposit.amount,
                &deposit.signature,
                cfg,
                &checker,
            )? {
                add_validator_to_registry(
                    state,
                    &deposit.pubkey,
                    &deposit.withdrawal_credentials,
                    deposit.amount,
                )?;
            }
        }
        Some(index) => increase_balance(state, index, deposit.amount)?,
    }
    Ok(())
}

pub fn process_pending_deposits(state: &mut BeaconState, ctx: &TransitionCtx) -> Result<()> {
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
            apply_pending_deposit(state, deposit, ctx)?;
        } else if is_validator_exited {
            deposits_to_postpone.push(deposit.clone());
        } else {
            is_churn_limit_reached =
                processed_amount.safe_add(deposit.amount)? > available_for_processing;
            if is_churn_limit_reached {
                break;
            }
            processed_amount = processed_amount.safe_add(deposit.amount)?;
            apply_pending_deposit(state, deposit, ctx)?;
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

pub fn process_pending_consolidations(state: &mut BeaconState) -> Result<()> {
    let next_epoch = get_current_epoch(state).safe_add(1)?;
    let mut next_pending_consolidation = 0usize;
    let pending: Vec<PendingConsolidation> = state.pending_consolidations.to_vec();
    for pc in pending.iter() {
        let source = validator(state, pc.source_index)?;
        if source.slashed {
            next_pending_consolidation += 1;
            continue;
        }
        if source.withdrawable_epoch > next_epoch {
            break;
        }
        let source_effective_balance =
            balance(state, pc.source_index)?.min(source.effective_balance);
        decrease_balance(state, pc.source_index, source_effective_balance)?;
        increase_balance(state, pc.target_index, source_effective_balance)?;
        next_pending_consolidation += 1;
    }
    state.pending_consolidations = to_list(
        pending[next_pending_consolidation..].to_vec(),
        "pending_consolidations",
    )?;
    Ok(())
}

pub fn process_effective_balance_updates(state: &mut BeaconState) -> Result<()> {
    let hysteresis_increment = EFFECTIVE_BALANCE_INCREMENT / HYSTERESIS_QUOTIENT;
    let downward_threshold = hysteresis_increment * HYSTERESIS_DOWNWARD_MULTIPLIER;
    let upward_threshold = hysteresis_increment * HYSTERESIS_UPWARD_MULTIPLIER;
    for index in 0..state.validators.len() {
        let bal = balance(state, index as u64)?;
        let v = &mut state.validators[index];
        let max_effective_balance = get_max_effective_balance(v);
        if bal.safe_add(downward_threshold)? < v.effective_balance
            || v.effective_balance.safe_add(upward_threshold)? < bal
        {
            v.effective_balance =
                (bal - bal % EFFECTIVE_BALANCE_INCREMENT).min(max_effective_balance);
        }
    }
    Ok(())
}

pub fn process_slashings_reset(state: &mut BeaconState) -> Result<()> {
    let next_epoch = get_current_epoch(state).safe_add(1)?;
    state.slashings[(next_epoch % EPOCHS_PER_SLASHINGS_VECTOR as u64) as usize] = 0;
    Ok(())
}

pub fn process_randao_mixes_reset(state: &mut BeaconState) -> Result<()> {
    let current_epoch = get_current_epoch(state);
    let next_epoch = current_epoch.safe_add(1)?;
    state.randao_mixes[(next_epoch % EPOCHS_PER_HISTORICAL_VECTOR as u64) as usize] =
        get_randao_mix(state, current_epoch);
    Ok(())
}

pub fn process_historical_summaries_update(state: &mut BeaconState) -> Result<()> {
    let next_epoch = get_current_epoch(state).safe_add(1)?;
    if next_epoch % (SLOTS_PER_HISTORICAL_ROOT as u64 / SLOTS_PER_EPOCH_U64) == 0 {
        let historical_summary = HistoricalSummary {
            block_summary_root: Root::from(hash_tree_root_mut(&mut state.block_roots)?),
            state_summary_root: Root::from(hash_tree_root_mut(&mut state.state_roots)?),
        };
        push_bounded(
            &mut state.historical_summaries,
            historical_summary,
            "historical_summaries",
        )?;
    }
    Ok(())
}

pub fn process_participation_flag_updates(state: &mut BeaconState) -> Result<()> {
    state.previous_epoch_participation = std::mem::take(&mut state.current_epoch_participation);
    state.current_epoch_participation = to_list(
        vec![0u8; state.validators.len()],
        "current_epoch_participation",
    )?;
    Ok(())
}

pub fn get_next_sync_committee_indices(state: &BeaconState) -> Result<Vec<u64>> {
    let epoch = get_current_epoch(state).safe_add(1)?;
    const MAX_RANDOM_VALUE: u64 = (1 << 16) - 1;
    let active = get_active_validator_indices(state, epoch);
    let count = active.len() as u64;
    ensure!(
        count > 0,
        Check::SyncCommitteeSelection,
        "no active validators for the sync committee"
    );
    let seed = get_seed(state, epoch, DOMAIN_SYNC_COMMITTEE)?;
    // `compute_shuffled_index(i % count, count, seed)`, the round hashes shared.
    let mut shuffle =
        crate::transition::shuffling::SeededShuffle::new(&seed, SHUFFLE_ROUND_COUNT, count);
    let mut i: u64 = 0;
    let mut out = Vec::with_capacity(SYNC_COMMITTEE_SIZE);
    while out.len() < SYNC_COMMITTEE_SIZE {
        let shuffled_index = shuffle.index(i % count).ok_or_else(|| {
            crate::transition::TransitionError::check(
                Check::ShuffledIndex,
                format!("shuffled index {} out of range {count}", i % count),
            )
        })?;
        let candidate_index = active[shuffled_index as usize];
        let random_bytes = crate::transition::math::hash(&[
            &seed,
            &crate::transition::math::uint_to_bytes(i / 16),
        ]);
        let offset = ((i % 16) * 2) as usize;
        let random_value =
            crate::transition::math::bytes_to_uint64(&random_bytes[offset..offset + 2]);
        let effective_balance = state.validators[candidate_index as usize].effective_balance;
        if effective_balance.safe_mul(MAX_RANDOM_VALUE)?
            >= MAX_EFFECTIVE_BALANCE_ELECTRA.safe_mul(random_value)?
        {
            out.push(candidate_index);
        }
        i = i.safe_add(1)?;
    }
    Ok(out)
}

pub fn get_next_sync_committee(state: &BeaconState) -> Result<SyncCommittee> {
    let indices = get_next_sync_committee_indices(state)?;
    let pubkeys: Vec<BLSPubkey> = indices
        .iter()
        .map(|&i| state.validators[i as usize].pubkey)
        .collect();
    let refs: Vec<&BLSPubkey> = pubkeys.iter().collect();
    let aggregate_pubkey = BLSPubkey::from(eth_aggregate_pubkeys(&refs)?);
    Ok(SyncCommittee {
        pubkeys: ssz_rs::Vector::try_from(pubkeys).map_err(|_| {
            crate::transition::TransitionError::Internal("sync committee size".into())
        })?,
        aggregate_pubkey,
    })
}

pub fn process_sync_committee_updates(state: &mut BeaconState) -> Result<()> {
    let next_epoch = get_current_epoch(state).safe_add(1)?;
    if next_epoch % EPOCHS_PER_SYNC_COMMITTEE_PERIOD as u64 == 0 {
        let next = get_next_sync_committee(state)?;
        state.current_sync_committee = std::mem::replace(&mut state.next_sync_committee, next);
    }
    Ok(())
}

/// Fulu (EIP-7917).
pub fn process_proposer_lookahead(state: &mut BeaconState) -> Result<()> {
    let len = state.proposer_lookahead.len();
    let last_epoch_start = len - SLOTS_PER_EPOCH;
    for i in 0..last_epoch_start {
        state.proposer_lookahead[i] = state.proposer_lookahead[i + SLOTS_PER_EPOCH];
    }
    let last_epoch_proposers = get_beacon_proposer_indices(
        state,
        get_current_epoch(state).safe_add(MIN_SEED_LOOKAHEAD as u64 + 1)?,
    )?;
    for (i, p) in last_epoch_proposers.into_iter().enumerate() {
        state.proposer_lookahead[last_epoch_start + i] = p;
    }
    Ok(())
}
