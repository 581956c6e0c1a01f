//! Constants, predicates, misc, accessors and mutators of the spec (phase0 … Fulu, each in
//! its final form), for one preset (`super::types`).

#![allow(clippy::needless_range_loop)]

use ssz_rs::{List, Merkleized, SimpleSerialize};

use super::types::*;
use crate::transition::math::{
    bytes_to_uint64, hash, integer_squareroot, uint_to_bytes, SafeArith,
};
use crate::transition::{ChainConfig, Check, TransitionCtx, TransitionError};
use crate::transition_ensure as ensure;

pub type Result<T> = std::result::Result<T, TransitionError>;

// ---- constants --------------------------------------------------------------------------

pub const GENESIS_SLOT: u64 = 0;
pub const GENESIS_EPOCH: u64 = 0;
pub const FAR_FUTURE_EPOCH: u64 = u64::MAX;
pub const BLS_WITHDRAWAL_PREFIX: u8 = 0x00;
pub const ETH1_ADDRESS_WITHDRAWAL_PREFIX: u8 = 0x01;
pub const COMPOUNDING_WITHDRAWAL_PREFIX: u8 = 0x02;

pub const DOMAIN_BEACON_PROPOSER: [u8; 4] = [0, 0, 0, 0];
pub const DOMAIN_BEACON_ATTESTER: [u8; 4] = [1, 0, 0, 0];
pub const DOMAIN_RANDAO: [u8; 4] = [2, 0, 0, 0];
pub const DOMAIN_DEPOSIT: [u8; 4] = [3, 0, 0, 0];
pub const DOMAIN_VOLUNTARY_EXIT: [u8; 4] = [4, 0, 0, 0];
pub const DOMAIN_SYNC_COMMITTEE: [u8; 4] = [7, 0, 0, 0];
pub const DOMAIN_BLS_TO_EXECUTION_CHANGE: [u8; 4] = [10, 0, 0, 0];

pub const TIMELY_SOURCE_FLAG_INDEX: usize = 0;
pub const TIMELY_TARGET_FLAG_INDEX: usize = 1;
pub const TIMELY_HEAD_FLAG_INDEX: usize = 2;
pub const TIMELY_SOURCE_WEIGHT: u64 = 14;
pub const TIMELY_TARGET_WEIGHT: u64 = 26;
pub const TIMELY_HEAD_WEIGHT: u64 = 14;
pub const SYNC_REWARD_WEIGHT: u64 = 2;
pub const PROPOSER_WEIGHT: u64 = 8;
pub const WEIGHT_DENOMINATOR: u64 = 64;
pub const PARTICIPATION_FLAG_WEIGHTS: [u64; 3] = [
    TIMELY_SOURCE_WEIGHT,
    TIMELY_TARGET_WEIGHT,
    TIMELY_HEAD_WEIGHT,
];

pub const MAX_SEED_LOOKAHEAD: u64 = 4;
pub const MIN_EPOCHS_TO_INACTIVITY_PENALTY: u64 = 4;
pub const MIN_ATTESTATION_INCLUSION_DELAY: u64 = 1;
pub const EFFECTIVE_BALANCE_INCREMENT: u64 = 1_000_000_000;
pub const MIN_ACTIVATION_BALANCE: u64 = 32_000_000_000;
pub const MAX_EFFECTIVE_BALANCE_ELECTRA: u64 = 2_048_000_000_000;
pub const HYSTERESIS_QUOTIENT: u64 = 4;
pub const HYSTERESIS_DOWNWARD_MULTIPLIER: u64 = 1;
pub const HYSTERESIS_UPWARD_MULTIPLIER: u64 = 5;
pub const BASE_REWARD_FACTOR: u64 = 64;
pub const INACTIVITY_PENALTY_QUOTIENT_BELLATRIX: u64 = 16_777_216;
pub const PROPORTIONAL_SLASHING_MULTIPLIER_BELLATRIX: u64 = 3;
pub const MIN_SLASHING_PENALTY_QUOTIENT_ELECTRA: u64 = 4096;
pub const WHISTLEBLOWER_REWARD_QUOTIENT_ELECTRA: u64 = 4096;
pub const FULL_EXIT_REQUEST_AMOUNT: u64 = 0;

/// `bls.G2_POINT_AT_INFINITY`.
pub fn g2_point_at_infinity() -> BLSSignature {
    let mut b = [0u8; 96];
    b[0] = 0xc0;
    BLSSignature::from(b)
}

pub const SLOTS_PER_EPOCH_U64: u64 = SLOTS_PER_EPOCH as u64;

// ---- SSZ helpers -----------------------------------------------------------------------

/// `hash_tree_root` of a value (cloned, as ssz_rs merkleizes through `&mut`).
pub fn hash_tree_root<T: Merkleized + Clone>(value: &T) -> Result<[u8; 32]> {
    let mut v = value.clone();
    crate::types::ssz::hash_tree_root(&mut v)
        .map_err(|e| TransitionError::Internal(format!("hash_tree_root: {e}")))
}

/// `hash_tree_root` without cloning.
pub fn hash_tree_root_mut<T: Merkleized>(value: &mut T) -> Result<[u8; 32]> {
    crate::types::ssz::hash_tree_root(value)
        .map_err(|e| TransitionError::Internal(format!("hash_tree_root: {e}")))
}

/// `hash_tree_root(state)` through the merkle engine (the SIMD kernels, rayon across the
/// big lists), cold — equal to ssz_rs's root, held so by `tests/it/state_root.rs`. The
/// transition's own roots go through the context's carried cache instead
/// ([`TransitionCtx::state_root`]): only what changed since the last root is rehashed.
pub fn state_root_of(state: &BeaconState) -> Result<[u8; 32]> {
    let hasher = crate::accel::hash::CpuHasher::simd();
    crate::merkle::state_root::state_root(&hasher, state)
        .map_err(|e| TransitionError::Internal(format!("state root: {e}")))
}

/// `list.append(value)`, failing when the list is at its bound.
pub fn push_bounded<T: SimpleSerialize, const N: usize>(
    list: &mut List<T, N>,
    value: T,
    what: &'static str,
) -> Result<()> {
    if list.len() >= N {
        return Err(TransitionError::ListFull(what));
    }
    list.push(value);
    Ok(())
}

/// A list from a vector, failing when it is over the bound.
pub fn to_list<T: SimpleSerialize, const N: usize>(
    values: Vec<T>,
    what: &'static str,
) -> Result<List<T, N>> {
    List::try_from(values).map_err(|_| TransitionError::ListFull(what))
}

/// Checks `index` against a length; returns it as `usize`.
pub fn checked_index(what: &'static str, index: u64, len: usize) -> Result<usize> {
    if index < len as u64 {
        Ok(index as usize)
    } else {
        Err(TransitionError::IndexOutOfRange { what, index, len })
    }
}

/// `state.validators[index]`.
pub fn validator(state: &BeaconState, index: u64) -> Result<&Validator> {
    let i = checked_index("validator", index, state.validators.len())?;
    Ok(&state.validators[i])
}

/// `state.validators[index]`, mutable.
pub fn validator_mut(state: &mut BeaconState, index: u64) -> Result<&mut Validator> {
    let i = checked_index("validator", index, state.validators.len())?;
    Ok(&mut state.validators[i])
}

/// `state.balances[index]`.
pub fn balance(state: &BeaconState, index: u64) -> Result<u64> {
    let i = checked_index("balance", index, state.balances.len())?;
    Ok(state.balances[i])
}

// ---- predicates --------------------------------------------------------------------------

pub fn is_active_validator(validator: &Validator, epoch: u64) -> bool {
    validator.activation_epoch <= epoch && epoch < validator.exit_epoch
}

pub fn is_eligible_for_activation_queue(validator: &Validator) -> bool {
    validator.activation_eligibility_epoch == FAR_FUTURE_EPOCH
        && validator.effective_balance >= MIN_ACTIVATION_BALANCE
}

pub fn is_eligible_for_activation(state: &BeaconState, validator: &Validator) -> bool {
    validator.activation_eligibility_epoch <= state.finalized_checkpoint.epoch
        && validator.activation_epoch == FAR_FUTURE_EPOCH
}

pub fn is_slashable_validator(validator: &Validator, epoch: u64) -> bool {
    !validator.slashed
        && validator.activation_epoch <= epoch
        && epoch < validator.withdrawable_epoch
}

pub fn is_slashable_attestation_data(data_1: &AttestationData, data_2: &AttestationData) -> bool {
    (data_1 != data_2 && data_1.target.epoch == data_2.target.epoch)
        || (data_1.source.epoch < data_2.source.epoch && data_2.target.epoch < data_1.target.epoch)
}

pub fn is_compounding_withdrawal_credential(withdrawal_credentials: &Bytes32) -> bool {
    withdrawal_credentials.as_bytes()[0] == COMPOUNDING_WITHDRAWAL_PREFIX
}

pub fn has_compounding_withdrawal_credential(validator: &Validator) -> bool {
    is_compounding_withdrawal_credential(&validator.withdrawal_credentials)
}

pub fn has_eth1_withdrawal_credential(validator: &Validator) -> bool {
    validator.withdrawal_credentials.as_bytes()[0] == ETH1_ADDRESS_WITHDRAWAL_PREFIX
}

pub fn has_execution_withdrawal_credential(validator: &Validator) -> bool {
    has_eth1_withdrawal_credential(validator) || has_compounding_withdrawal_credential(validator)
}

pub fn is_fully_withdrawable_validator(validator: &Validator, balance: u64, epoch: u64) -> bool {
    has_execution_withdrawal_credential(validator)
        && validator.withdrawable_epoch <= epoch
        && balance > 0
}

pub fn is_partially_withdrawable_validator(validator: &Validator, balance: u64) -> bool {
    let max_effective_balance = get_max_effective_balance(validator);
    has_execution_withdrawal_credential(validator)
        && validator.effective_balance == max_effective_balance
        && balance > max_effective_balance
}

pub fn is_eligible_for_partial_withdrawals(validator: &Validator, balance: u64) -> bool {
    validator.exit_epoch == FAR_FUTURE_EPOCH
        && validator.effective_balance >= MIN_ACTIVATION_BALANCE
        && balance > MIN_ACTIVATION_BALANCE
}

/// `is_valid_indexed_attestation`: sorted unique non-empty indices, and the aggregate
/// signature (through the checker).
pub fn is_valid_indexed_attestation(
    state: &BeaconState,
    indexed_attestation: &IndexedAttestation,
    sigs: &mut crate::transition::SignatureChecker,
) -> Result<()> {
    let indices: &[u64] = &indexed_attestation.attesting_indices;
    ensure!(
        !indices.is_empty(),
        Check::IndexedAttestation,
        "indexed attestation has no indices"
    );
    ensure!(
        indices.windows(2).all(|w| w[0] < w[1]),
        Check::IndexedAttestation,
        "indexed attestation indices are not sorted and unique"
    );
    for &i in indices {
        checked_index("validator", i, state.validators.len())?;
    }
    let domain = get_domain(
        state,
        DOMAIN_BEACON_ATTESTER,
        Some(indexed_attestation.data.target.epoch),
    )?;
    let signing_root = compute_signing_root(&indexed_attestation.data, domain)?;
    sigs.check_validators(
        "attestation",
        &state.validators,
        indices,
        signing_root,
        &indexed_attestation.signature,
    )
}

/// `is_valid_merkle_branch`.
pub fn is_valid_merkle_branch(
    leaf: &[u8; 32],
    branch: &[Bytes32],
    depth: u64,
    index: u64,
    root: &[u8; 32],
) -> bool {
    if depth != branch.len() as u64 {
        return false;
    }
    let mut value = *leaf;
    for i in 0..depth as usize {
        let b = branch[i].as_bytes();
        value = if (index >> i) & 1 == 1 {
            hash(&[b, &value])
        } else {
            hash(&[&value, b])
        };
    }
    &value == root
}

// ---- misc --------------------------------------------------------------------------------

/// `compute_shuffled_index` (swap-or-not, `SHUFFLE_ROUND_COUNT` rounds).
pub fn compute_shuffled_index(index: u64, index_count: u64, seed: &[u8; 32]) -> Result<u64> {
    ensure!(
        index < index_count,
        Check::ShuffledIndex,
        "shuffled index {index} out of range {index_count}"
    );
    let mut index = index;
    for current_round in 0..SHUFFLE_ROUND_COUNT {
        let round = [current_round as u8];
        let pivot = bytes_to_uint64(&hash(&[seed, &round])[0..8]) % index_count;
        // `(pivot + index_count - index) % index_count` without a division (both < count).
        let mut flip = pivot + index_count - index;
        if flip >= index_count {
            flip -= index_count;
        }
        let position = index.max(flip);
        let source = hash(&[seed, &round, &((position / 256) as u32).to_le_bytes()]);
        let byte = source[((position % 256) / 8) as usize];
        let bit = (byte >> (position % 8)) & 1;
        if bit == 1 {
            index = flip;
        }
    }
    Ok(index)
}

/// `compute_proposer_index` (Electra: 16-bit random values).
pub fn compute_proposer_index(
    state: &BeaconState,
    indices: &[u64],
    seed: &[u8; 32],
) -> Result<u64> {
    ensure!(
        !indices.is_empty(),
        Check::ProposerSelection,
        "no active validators for a proposer"
    );
    const MAX_RANDOM_VALUE: u64 = (1 << 16) - 1;
    let total = indices.len() as u64;
    // `compute_shuffled_index(i % total, total, seed)` for each candidate, the round
    // hashes shared across candidates.
    let mut shuffle =
        crate::transition::shuffling::SeededShuffle::new(seed, SHUFFLE_ROUND_COUNT, total);
    let mut i: u64 = 0;
    loop {
        let shuffled = shuffle.index(i % total).ok_or_else(|| {
            TransitionError::check(
                Check::ShuffledIndex,
                format!("shuffled index {} out of range {total}", i % total),
            )
        })?;
        let candidate_index = indices[shuffled as usize];
        let random_bytes = hash(&[seed, &uint_to_bytes(i / 16)]);
        let offset = ((i % 16) * 2) as usize;
        let random_value = bytes_to_uint64(&random_bytes[offset..offset + 2]);
        let effective_balance = validator(state, candidate_index)?.effective_balance;
        if effective_balance.safe_mul(MAX_RANDOM_VALUE)?
            >= MAX_EFFECTIVE_BALANCE_ELECTRA.safe_mul(random_value)?
        {
            return Ok(candidate_index);
        }
        i = i.safe_add(1)?;
    }
}

/// The bounds `[len·index/count, len·(index+1)/count)` of committee `index` of `count` in
/// a shuffled list of `len` (shared by `compute_committee` and [`committee_in`]).
fn committee_range(len: u64, index: u64, count: u64) -> Result<std::ops::Range<usize>> {
    let start = len.safe_mul(index)?.safe_div(count)?;
    let end = len.safe_mul(index.safe_add(1)?)?.safe_div(count)?;
    ensure!(
        start <= end && end <= len,
        Check::Committee,
        "committee {index} of {count} out of range"
    );
    Ok(start as usize..end as usize)
}

/// `compute_committee`: `indices[compute_shuffled_index(i, len, seed)]` for the committee's
/// positions, read off the epoch's whole shuffling (computed once and cached in the
/// context's shuffling cache).
pub fn compute_committee(
    indices: &[u64],
    seed: &[u8; 32],
    index: u64,
    count: u64,
    ctx: &TransitionCtx,
) -> Result<Vec<u64>> {
    let range = committee_range(indices.len() as u64, index, count)?;
    let shuffled = ctx
        .shuffling()
        .shuffled_indices(seed, SHUFFLE_ROUND_COUNT, indices);
    Ok(shuffled[range].to_vec())
}

pub fn compute_time_at_slot(state: &BeaconState, slot: u64, cfg: &ChainConfig) -> Result<u64> {
    let slots_since_genesis = slot.safe_sub(GENESIS_SLOT)?;
    state
        .genesis_time
        .safe_add(slots_since_genesis.safe_mul(cfg.slot_duration_ms)? / 1000)
}

pub fn compute_epoch_at_slot(slot: u64) -> u64 {
    slot / SLOTS_PER_EPOCH_U64
}

pub fn compute_start_slot_at_epoch(epoch: u64) -> Result<u64> {
    epoch.safe_mul(SLOTS_PER_EPOCH_U64)
}

pub fn compute_activation_exit_epoch(epoch: u64) -> Result<u64> {
    epoch.safe_add(1 + MAX_SEED_LOOKAHEAD)
}

pub fn compute_fork_data_root(
    current_version: &Version,
    genesis_validators_root: &Root,
) -> Result<[u8; 32]> {
    hash_tree_root(&ForkData {
        current_version: *current_version,
        genesis_validators_root: *genesis_validators_root,
    })
}

/// `compute_domain`; `fork_version` defaults to `GENESIS_FORK_VERSION`, the root to zero.
pub fn compute_domain(
    domain_type: [u8; 4],
    fork_version: Option<&Version>,
    genesis_validators_root: Option<&Root>,
    cfg: &ChainConfig,
) -> Result<Domain> {
    let genesis_version = Version::from(cfg.genesis_fork_version);
    let zero = Root::default();
    let fork_data_root = compute_fork_data_root(
        fork_version.unwrap_or(&genesis_version),
        genesis_validators_root.unwrap_or(&zero),
    )?;
    let mut d = [0u8; 32];
    d[..4].copy_from_slice(&domain_type);
    d[4..].copy_from_slice(&fork_data_root[..28]);
    Ok(Domain::from(d))
}

/// `compute_signing_root`.
pub fn compute_signing_root<T: Merkleized + Clone>(
    ssz_object: &T,
    domain: Domain,
) -> Result<[u8; 32]> {
    let object_root = hash_tree_root(ssz_object)?;
    compute_signing_root_of(object_root, domain)
}

/// `compute_signing_root` of an object whose root is already known.
pub fn compute_signing_root_of(object_root: [u8; 32], domain: Domain) -> Result<[u8; 32]> {
    hash_tree_root(&SigningData {
        object_root: Root::from(object_root),
        domain,
    })
}

pub fn get_committee_indices(
    committee_bits: &ssz_rs::Bitvector<MAX_COMMITTEES_PER_SLOT>,
) -> Vec<u64> {
    committee_bits
        .iter()
        .by_vals()
        .enumerate()
        .filter(|(_, b)| *b)
        .map(|(i, _)| i as u64)
        .collect()
}

pub fn get_max_effective_balance(validator: &Validator) -> u64 {
    if has_compounding_withdrawal_credential(validator) {
        MAX_EFFECTIVE_BALANCE_ELECTRA
    } else {
        MIN_ACTIVATION_BALANCE
    }
}

// ---- accessors --------------------------------------------------------------------------

pub fn get_current_epoch(state: &BeaconState) -> u64 {
    compute_epoch_at_slot(state.slot)
}

pub fn get_previous_epoch(state: &BeaconState) -> u64 {
    let current_epoch = get_current_epoch(state);
    if current_epoch == GENESIS_EPOCH {
        GENESIS_EPOCH
    } else {
        current_epoch - 1
    }
}

pub fn get_block_root(state: &BeaconState, epoch: u64) -> Result<Root> {
    get_block_root_at_slot(state, compute_start_slot_at_epoch(epoch)?)
}

pub fn get_block_root_at_slot(state: &BeaconState, slot: u64) -> Result<Root> {
    ensure!(
        slot < state.slot && state.slot <= slot.saturating_add(SLOTS_PER_HISTORICAL_ROOT as u64),
        Check::BlockRootAtSlot,
        "slot {slot} is not a recent slot of state slot {}",
        state.slot
    );
    Ok(state.block_roots[(slot % SLOTS_PER_HISTORICAL_ROOT as u64) as usize])
}

pub fn get_randao_mix(state: &BeaconState, epoch: u64) -> Bytes32 {
    state.randao_mixes[(epoch % EPOCHS_PER_HISTORICAL_VECTOR as u64) as usize]
}

pub fn get_active_validator_indices(state: &BeaconState, epoch: u64) -> Vec<u64> {
    state
        .validators
        .iter()
        .enumerate()
        .filter(|(_, v)| is_active_validator(v, epoch))
        .map(|(i, _)| i as u64)
        .collect()
}

pub fn get_seed(state: &BeaconState, epoch: u64, domain_type: [u8; 4]) -> Result<[u8; 32]> {
    let mix = get_randao_mix(
        state,
        epoch
            .safe_add(EPOCHS_PER_HISTORICAL_VECTOR as u64)?
            .safe_sub(MIN_SEED_LOOKAHEAD as u64 + 1)?,
    );
    Ok(hash(&[&domain_type, &uint_to_bytes(epoch), mix.as_bytes()]))
}

pub fn get_committee_count_per_slot(state: &BeaconState, epoch: u64) -> u64 {
    let active = get_active_validator_indices(state, epoch).len() as u64;
    (active / SLOTS_PER_EPOCH_U64 / TARGET_COMMITTEE_SIZE as u64)
        .min(MAX_COMMITTEES_PER_SLOT as u64)
        .max(1)
}

/// The epoch's whole shuffled active set (`compute_committee`'s order), computed once per
/// seed and active set and cached in the context's shuffling cache: every committee of
/// the epoch is a slice of it ([`committee_in`]).
pub fn get_shuffling(
    state: &BeaconState,
    epoch: u64,
    ctx: &TransitionCtx,
) -> Result<std::sync::Arc<Vec<u64>>> {
    // Through the registry memo while the importer declares it (a whole-registry pass and
    // a digest of the active set otherwise, per call).
    ctx.registry.shuffling(epoch, state.validators.len(), || {
        let indices = get_active_validator_indices(state, epoch);
        let seed = get_seed(state, epoch, DOMAIN_BEACON_ATTESTER)?;
        Ok(ctx
            .shuffling()
            .shuffled_indices(&seed, SHUFFLE_ROUND_COUNT, &indices))
    })
}

/// `get_total_active_balance`, through the context's registry memo while it is declared
/// (see [`RegistryMemo`](crate::transition::RegistryMemo)).
pub fn get_total_active_balance_in(state: &BeaconState, ctx: &TransitionCtx) -> Result<u64> {
    ctx.registry
        .total_active_balance(get_current_epoch(state), state.validators.len(), || {
            get_total_active_balance(state)
        })
}

/// `get_beacon_committee(state, slot, index)` as a slice of the epoch's shuffling (from
/// [`get_shuffling`] of `slot`'s epoch): the same members in the same order.
pub fn committee_in(shuffling: &[u64], slot: u64, index: u64) -> Result<&[u64]> {
    let active = shuffling.len() as u64;
    let committees_per_slot = (active / SLOTS_PER_EPOCH_U64 / TARGET_COMMITTEE_SIZE as u64)
        .min(MAX_COMMITTEES_PER_SLOT as u64)
        .max(1);
    let i = (slot % SLOTS_PER_EPOCH_U64)
        .safe_mul(committees_per_slot)?
        .safe_add(index)?;
    let range = committee_range(
        active,
        i,
        committees_per_slot.safe_mul(SLOTS_PER_EPOCH_U64)?,
    )?;
    Ok(&shuffling[range])
}

pub fn get_beacon_committee(
    state: &BeaconState,
    slot: u64,
    index: u64,
    ctx: &TransitionCtx,
) -> Result<Vec<u64>> {
    let shuffling = get_shuffling(state, compute_epoch_at_slot(slot), ctx)?;
    Ok(committee_in(&shuffling, slot, index)?.to_vec())
}

/// Fulu (EIP-7917): read from `proposer_lookahead`.
pub fn get_beacon_proposer_index(state: &BeaconState) -> u64 {
    state.proposer_lookahead[(state.slot % SLOTS_PER_EPOCH_U64) as usize]
}

pub fn get_total_balance(
    state: &BeaconState,
    indices: impl IntoIterator<Item = u64>,
) -> Result<u64> {
    let mut sum: u64 = 0;
    for i in indices {
        sum = sum.safe_add(validator(state, i)?.effective_balance)?;
    }
    Ok(sum.max(EFFECTIVE_BALANCE_INCREMENT))
}

pub fn get_total_active_balance(state: &BeaconState) -> Result<u64> {
    get_total_balance(
        state,
        get_active_validator_indices(state, get_current_epoch(state)),
    )
}

pub fn get_domain(state: &BeaconState, domain_type: [u8; 4], epoch: Option<u64>) -> Result<Domain> {
    let epoch = epoch.unwrap_or_else(|| get_current_epoch(state));
    let fork_version = if epoch < state.fork.epoch {
        &state.fork.previous_version
    } else {
        &state.fork.current_version
    };
    let fork_data_root = compute_fork_data_root(fork_version, &state.genesis_validators_root)?;
    let mut d = [0u8; 32];
    d[..4].copy_from_slice(&domain_type);
    d[4..].copy_from_slice(&fork_data_root[..28]);
    Ok(Domain::from(d))
}

/// `get_attesting_indices` (Electra: over the committees `committee_bits` selects), sorted.
pub fn get_attesting_indices(
    state: &BeaconState,
    attestation: &Attestation,
    ctx: &TransitionCtx,
) -> Result<Vec<u64>> {
    let shuffling = get_shuffling(state, compute_epoch_at_slot(attestation.data.slot), ctx)?;
    get_attesting_indices_in(&shuffling, attestation)
}

/// [`get_attesting_indices`] over the epoch's shuffling already at hand.
pub fn get_attesting_indices_in(shuffling: &[u64], attestation: &Attestation) -> Result<Vec<u64>> {
    let mut output = Vec::new();
    let mut committee_offset: usize = 0;
    let bits = &attestation.aggregation_bits;
    for committee_index in get_committee_indices(&attestation.committee_bits) {
        let committee = committee_in(shuffling, attestation.data.slot, committee_index)?;
        for (i, attester_index) in committee.iter().enumerate() {
            let pos = committee_offset + i;
            ensure!(
                pos < bits.len(),
                Check::AttestingIndices,
                "aggregation bit {pos} out of range"
            );
            if bits[pos] {
                output.push(*attester_index);
            }
        }
        committee_offset += committee.len();
    }
    // The spec's set, sorted.
    output.sort_unstable();
    output.dedup();
    Ok(output)
}

pub fn get_indexed_attestation(
    state: &BeaconState,
    attestation: &Attestation,
    ctx: &TransitionCtx,
) -> Result<IndexedAttestation> {
    let attesting_indices = get_attesting_indices(state, attestation, ctx)?;
    Ok(IndexedAttestation {
        attesting_indices: to_list(attesting_indices, "attesting_indices")?,
        data: attestation.data.clone(),
        signature: attestation.signature,
    })
}

pub fn get_unslashed_participating_indices(
    state: &BeaconState,
    flag_index: usize,
    epoch: u64,
) -> Result<Vec<u64>> {
    let current = get_current_epoch(state);
    ensure!(
        epoch == get_previous_epoch(state) || epoch == current,
        Check::ParticipatingIndices,
        "epoch {epoch} is neither previous nor current"
    );
    let participation = if epoch == current {
        &state.current_epoch_participation
    } else {
        &state.previous_epoch_participation
    };
    let mut out = Vec::new();
    for i in get_active_validator_indices(state, epoch) {
        let flags = *participation
            .get(i as usize)
            .ok_or(TransitionError::IndexOutOfRange {
                what: "participation",
                index: i,
                len: participation.len(),
            })?;
        if has_flag(flags, flag_index) && !state.validators[i as usize].slashed {
            out.push(i);
        }
    }
    Ok(out)
}

pub fn has_flag(flags: u8, flag_index: usize) -> bool {
    let flag = 1u8 << flag_index;
    flags & flag == flag
}

pub fn add_flag(flags: u8, flag_index: usize) -> u8 {
    flags | (1u8 << flag_index)
}

pub fn get_base_reward_per_increment(state: &BeaconState) -> Result<u64> {
    EFFECTIVE_BALANCE_INCREMENT
        .safe_mul(BASE_REWARD_FACTOR)?
        .safe_div(integer_squareroot(get_total_active_balance(state)?))
}

pub fn get_base_reward(state: &BeaconState, index: u64) -> Result<u64> {
    let increments = validator(state, index)?.effective_balance / EFFECTIVE_BALANCE_INCREMENT;
    increments.safe_mul(get_base_reward_per_increment(state)?)
}

pub fn get_balance_churn_limit(state: &BeaconState, cfg: &ChainConfig) -> Result<u64> {
    let churn = cfg
        .min_per_epoch_churn_limit_electra
        .max(get_total_active_balance(state)?.safe_div(cfg.churn_limit_quotient)?);
    Ok(churn - churn % EFFECTIVE_BALANCE_INCREMENT)
}

pub fn get_activation_exit_churn_limit(state: &BeaconState, cfg: &ChainConfig) -> Result<u64> {
    Ok(cfg
        .max_per_epoch_activation_exit_churn_limit
        .min(get_balance_churn_limit(state, cfg)?))
}

pub fn get_consolidation_churn_limit(state: &BeaconState, cfg: &ChainConfig) -> Result<u64> {
    get_balance_churn_limit(state, cfg)?.safe_sub(get_activation_exit_churn_limit(state, cfg)?)
}

pub fn get_pending_balance_to_withdraw(state: &BeaconState, validator_index: u64) -> Result<u64> {
    let mut sum: u64 = 0;
    for w in state.pending_partial_withdrawals.iter() {
        if w.validator_index == validator_index {
            sum = sum.safe_add(w.amount)?;
        }
    }
    Ok(sum)
}

/// The index of the validator with this pubkey, if any.
pub fn find_validator_by_pubkey(state: &BeaconState, pubkey: &BLSPubkey) -> Option<u64> {
    state
        .validators
        .iter()
        .position(|v| &v.pubkey == pubkey)
        .map(|i| i as u64)
}

/// [`find_validator_by_pubkey`] through the context's pubkey index: one hash probe for a
/// known key instead of a registry scan (the same answer, see
/// [`PubkeyIndex::find_validator_index`](crate::transition::pubkey_index::PubkeyIndex)).
pub fn find_validator_by_pubkey_in(
    state: &BeaconState,
    pubkey: &BLSPubkey,
    ctx: &TransitionCtx,
) -> Option<u64> {
    ctx.pubkeys()
        .find_validator_index(&state.validators, pubkey.as_bytes())
}

/// `get_beacon_proposer_indices` (Fulu): the proposers of every slot of `epoch`.
pub fn get_beacon_proposer_indices(state: &BeaconState, epoch: u64) -> Result<Vec<u64>> {
    let indices = get_active_validator_indices(state, epoch);
    let seed = get_seed(state, epoch, DOMAIN_BEACON_PROPOSER)?;
    compute_proposer_indices(state, epoch, &seed, &indices)
}

pub fn compute_proposer_indices(
    state: &BeaconState,
    epoch: u64,
    seed: &[u8; 32],
    indices: &[u64],
) -> Result<Vec<u64>> {
    let start_slot = compute_start_slot_at_epoch(epoch)?;
    (0..SLOTS_PER_EPOCH_U64)
        .map(|i| {
            let slot_seed = hash(&[seed, &uint_to_bytes(start_slot.safe_add(i)?)]);
            compute_proposer_index(state, indices, &slot_seed)
        })
        .collect()
}

// ---- mutators ---------------------------------------------------------------------------

pub fn increase_balance(state: &mut BeaconState, index: u64, delta: u64) -> Result<()> {
    let i = checked_index("balance", index, state.balances.len())?;
    state.balances[i] = state.balances[i].safe_add(delta)?;
    Ok(())
}

pub fn decrease_balance(state: &mut BeaconState, index: u64, delta: u64) -> Result<()> {
    let i = checked_index("balance", index, state.balances.len())?;
    state.balances[i] = state.balances[i].saturating_sub(delta);
    Ok(())
}

pub fn initiate_validator_exit(
    state: &mut BeaconState,
    index: u64,
    cfg: &ChainConfig,
) -> Result<()> {
    let v = validator(state, index)?;
    if v.exit_epoch != FAR_FUTURE_EPOCH {
        return Ok(());
    }
    let effective_balance = v.effective_balance;
    let exit_queue_epoch = compute_exit_epoch_and_update_churn(state, effective_balance, cfg)?;
    let v = validator_mut(state, index)?;
    v.exit_epoch = exit_queue_epoch;
    v.withdrawable_epoch = exit_queue_epoch.safe_add(cfg.min_validator_withdrawability_delay)?;
    Ok(())
}

pub fn slash_validator(
    state: &mut BeaconState,
    slashed_index: u64,
    whistleblower_index: Option<u64>,
    cfg: &ChainConfig,
) -> Result<()> {
    let epoch = get_current_epoch(state);
    initiate_validator_exit(state, slashed_index, cfg)?;
    let v = validator_mut(state, slashed_index)?;
    v.slashed = true;
    v.withdrawable_epoch = v
        .withdrawable_epoch
        .max(epoch.safe_add(EPOCHS_PER_SLASHINGS_VECTOR as u64)?);
    let effective_balance = v.effective_balance;
    let si = (epoch % EPOCHS_PER_SLASHINGS_VECTOR as u64) as usize;
    state.slashings[si] = state.slashings[si].safe_add(effective_balance)?;
    decrease_balance(
        state,
        slashed_index,
        effective_balance / MIN_SLASHING_PENALTY_QUOTIENT_ELECTRA,
    )?;
    let proposer_index = get_beacon_proposer_index(state);
    let whistleblower_index = whistleblower_index.unwrap_or(proposer_index);
    let whistleblower_reward = effective_balance / WHISTLEBLOWER_REWARD_QUOTIENT_ELECTRA;
    let proposer_reward = whistleblower_reward.safe_mul(PROPOSER_WEIGHT)? / WEIGHT_DENOMINATOR;
    increase_balance(state, proposer_index, proposer_reward)?;
    increase_balance(
        state,
        whistleblower_index,
        whistleblower_reward.safe_sub(proposer_reward)?,
    )?;
    Ok(())
}

pub fn switch_to_compounding_validator(state: &mut BeaconState, index: u64) -> Result<()> {
    let v = validator_mut(state, index)?;
    let mut wc = *v.withdrawal_credentials.as_bytes();
    wc[0] = COMPOUNDING_WITHDRAWAL_PREFIX;
    v.withdrawal_credentials = Bytes32::from(wc);
    queue_excess_active_balance(state, index)
}

pub fn queue_excess_active_balance(state: &mut BeaconState, index: u64) -> Result<()> {
    let bal = balance(state, index)?;
    if bal > MIN_ACTIVATION_BALANCE {
        let excess_balance = bal - MIN_ACTIVATION_BALANCE;
        state.balances[index as usize] = MIN_ACTIVATION_BALANCE;
        let v = validator(state, index)?;
        let deposit = PendingDeposit {
            pubkey: v.pubkey,
            withdrawal_credentials: v.withdrawal_credentials,
            amount: excess_balance,
            signature: g2_point_at_infinity(),
            slot: GENESIS_SLOT,
        };
        push_bounded(&mut state.pending_deposits, deposit, "pending_deposits")?;
    }
    Ok(())
}

pub fn compute_exit_epoch_and_update_churn(
    state: &mut BeaconState,
    exit_balance: u64,
    cfg: &ChainConfig,
) -> Result<u64> {
    let mut earliest_exit_epoch = state
        .earliest_exit_epoch
        .max(compute_activation_exit_epoch(get_current_epoch(state))?);
    let per_epoch_churn = get_activation_exit_churn_limit(state, cfg)?;
    let mut exit_balance_to_consume = if state.earliest_exit_epoch < earliest_exit_epoch {
        per_epoch_churn
    } else {
        state.exit_balance_to_consume
    };
    if exit_balance > exit_balance_to_consume {
        let balance_to_process = exit_balance - exit_balance_to_consume;
        let additional_epochs = (balance_to_process - 1).safe_div(per_epoch_churn)? + 1;
        earliest_exit_epoch = earliest_exit_epoch.safe_add(additional_epochs)?;
        exit_balance_to_consume =
            exit_balance_to_consume.safe_add(additional_epochs.safe_mul(per_epoch_churn)?)?;
    }
    state.exit_balance_to_consume = exit_balance_to_consume.safe_sub(exit_balance)?;
    state.earliest_exit_epoch = earliest_exit_epoch;
    Ok(state.earliest_exit_epoch)
}

pub fn compute_consolidation_epoch_and_update_churn(
    state: &mut BeaconState,
    consolidation_balance: u64,
    cfg: &ChainConfig,
) -> Result<u64> {
    let mut earliest_consolidation_epoch = state
        .earliest_consolidation_epoch
        .max(compute_activation_exit_epoch(get_current_epoch(state))?);
    let per_epoch_consolidation_churn = get_consolidation_churn_limit(state, cfg)?;
    let mut balance_to_consume =
        if state.earliest_consolidation_epoch < earliest_consolidation_epoch {
            per_epoch_consolidation_churn
        } else {
            state.consolidation_balance_to_consume
        };
    if consolidation_balance > balance_to_consume {
        let balance_to_process = consolidation_balance - balance_to_consume;
        let additional_epochs =
            (balance_to_process - 1).safe_div(per_epoch_consolidation_churn)? + 1;
        earliest_consolidation_epoch = earliest_consolidation_epoch.safe_add(additional_epochs)?;
        balance_to_consume = balance_to_consume
            .safe_add(additional_epochs.safe_mul(per_epoch_consolidation_churn)?)?;
    }
    state.consolidation_balance_to_consume = balance_to_consume.safe_sub(consolidation_balance)?;
    state.earliest_consolidation_epoch = earliest_consolidation_epoch;
    Ok(state.earliest_consolidation_epoch)
}

pub fn get_validator_from_deposit(
    pubkey: &BLSPubkey,
    withdrawal_credentials: &Bytes32,
    amount: u64,
) -> Validator {
    let mut validator = Validator {
        pubkey: *pubkey,
        withdrawal_credentials: *withdrawal_credentials,
        effective_balance: 0,
        slashed: false,
        activation_eligibility_epoch: FAR_FUTURE_EPOCH,
        activation_epoch: FAR_FUTURE_EPOCH,
        exit_epoch: FAR_FUTURE_EPOCH,
        withdrawable_epoch: FAR_FUTURE_EPOCH,
    };
    let max_effective_balance = get_max_effective_balance(&validator);
    validator.effective_balance =
        (amount - amount % EFFECTIVE_BALANCE_INCREMENT).min(max_effective_balance);
    validator
}

pub fn add_validator_to_registry(
    state: &mut BeaconState,
    pubkey: &BLSPubkey,
    withdrawal_credentials: &Bytes32,
    amount: u64,
) -> Result<()> {
    let validator = get_validator_from_deposit(pubkey, withdrawal_credentials, amount);
    push_bounded(&mut state.validators, validator, "validators")?;
    push_bounded(&mut state.balances, amount, "balances")?;
    push_bounded(
        &mut state.previous_epoch_participation,
        0,
        "previous_epoch_participation",
    )?;
    push_bounded(
        &mut state.current_epoch_participation,
        0,
        "current_epoch_participation",
    )?;
    push_bounded(&mut state.inactivity_scores, 0, "inactivity_scores")?;
    Ok(())
}

/// `is_valid_deposit_signature`: the proof of possession, checked inline unless the
/// checker skips signatures (it changes state, so it is never deferred).
pub fn is_valid_deposit_signature(
    pubkey: &BLSPubkey,
    withdrawal_credentials: &Bytes32,
    amount: u64,
    signature: &BLSSignature,
    cfg: &ChainConfig,
    sigs: &crate::transition::SignatureChecker,
) -> Result<bool> {
    if sigs.strategy() == crate::transition::SignatureStrategy::Skip {
        return Ok(true);
    }
    let deposit_message = DepositMessage {
        pubkey: *pubkey,
        withdrawal_credentials: *withdrawal_credentials,
        amount,
    };
    let domain = compute_domain(DOMAIN_DEPOSIT, None, None, cfg)?;
    let signing_root = compute_signing_root(&deposit_message, domain)?;
    Ok(crate::transition::signatures::verify_single(
        pubkey,
        &signing_root,
        signature,
    ))
}
