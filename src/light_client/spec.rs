//! The light-client sync protocol for one preset (`super::types`).

use super::types::*;
use crate::light_client::{ForkSchedule, LightClientError};
use crate::merkle::proof::{
    compute_merkle_proof, floorlog2, get_subtree_index, is_valid_merkle_branch,
    is_valid_normalized_merkle_branch, root_of, Chunk, MerkleProof, ProofError,
};

pub type Result<T> = std::result::Result<T, LightClientError>;

/// `MIN_SYNC_COMMITTEE_PARTICIPANTS`.
pub const MIN_SYNC_COMMITTEE_PARTICIPANTS: u64 = 1;
/// `UPDATE_TIMEOUT`: one sync committee period, in slots.
pub const UPDATE_TIMEOUT: u64 = (SLOTS_PER_EPOCH * EPOCHS_PER_SYNC_COMMITTEE_PERIOD) as u64;
/// `GENESIS_SLOT`.
pub const GENESIS_SLOT: u64 = 0;
/// `DOMAIN_SYNC_COMMITTEE`.
pub const DOMAIN_SYNC_COMMITTEE: [u8; 4] = [7, 0, 0, 0];

fn root<T: ssz_rs::Merkleized + Clone>(value: &T) -> Result<Chunk> {
    root_of(&mut value.clone()).map_err(|e| LightClientError::Internal(e.to_string()))
}

fn branch_chunks(branch: &[Bytes32]) -> Vec<Chunk> {
    branch.iter().map(|b| *b.as_bytes()).collect()
}

fn proof_error(e: ProofError) -> LightClientError {
    LightClientError::Internal(e.to_string())
}

pub fn compute_epoch_at_slot(slot: u64) -> u64 {
    slot / SLOTS_PER_EPOCH as u64
}

pub fn compute_sync_committee_period(epoch: u64) -> u64 {
    epoch / EPOCHS_PER_SYNC_COMMITTEE_PERIOD as u64
}

pub fn compute_sync_committee_period_at_slot(slot: u64) -> u64 {
    compute_sync_committee_period(compute_epoch_at_slot(slot))
}

/// `finalized_root_gindex_at_slot` (Electra onward).
pub fn finalized_root_gindex_at_slot(_slot: u64) -> u64 {
    FINALIZED_ROOT_GINDEX_ELECTRA
}

/// `current_sync_committee_gindex_at_slot` (Electra onward).
pub fn current_sync_committee_gindex_at_slot(_slot: u64) -> u64 {
    CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA
}

/// `next_sync_committee_gindex_at_slot` (Electra onward).
pub fn next_sync_committee_gindex_at_slot(_slot: u64) -> u64 {
    NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA
}

fn sum_bits(aggregate: &SyncAggregate) -> u64 {
    aggregate.sync_committee_bits.iter().filter(|b| **b).count() as u64
}

/// `is_sync_committee_update`: the update carries a next sync committee.
pub fn is_sync_committee_update(update: &LightClientUpdate) -> bool {
    update
        .next_sync_committee_branch
        .iter()
        .any(|b| b != &Bytes32::default())
}

/// `is_finality_update`: the update carries a finality proof.
pub fn is_finality_update(update: &LightClientUpdate) -> bool {
    update
        .finality_branch
        .iter()
        .any(|b| b != &Bytes32::default())
}

/// `is_better_update(new_update, old_update)`: whether `new_update` ranks above.
pub fn is_better_update(new_update: &LightClientUpdate, old_update: &LightClientUpdate) -> bool {
    // Compare supermajority (> 2/3) sync committee participation.
    let max_active_participants = new_update.sync_aggregate.sync_committee_bits.len() as u64;
    let new_num = sum_bits(&new_update.sync_aggregate);
    let old_num = sum_bits(&old_update.sync_aggregate);
    let new_super = new_num * 3 >= max_active_participants * 2;
    let old_super = old_num * 3 >= max_active_participants * 2;
    if new_super != old_super {
        return new_super;
    }
    if !new_super && new_num != old_num {
        return new_num > old_num;
    }

    // Compare presence of relevant sync committee.
    let relevant = |u: &LightClientUpdate| {
        is_sync_committee_update(u)
            && compute_sync_committee_period_at_slot(u.attested_header.beacon.slot)
                == compute_sync_committee_period_at_slot(u.signature_slot)
    };
    let (new_rel, old_rel) = (relevant(new_update), relevant(old_update));
    if new_rel != old_rel {
        return new_rel;
    }

    // Compare indication of any finality.
    let new_fin = is_finality_update(new_update);
    let old_fin = is_finality_update(old_update);
    if new_fin != old_fin {
        return new_fin;
    }

    // Compare sync committee finality.
    if new_fin {
        let sc_finality = |u: &LightClientUpdate| {
            compute_sync_committee_period_at_slot(u.finalized_header.beacon.slot)
                == compute_sync_committee_period_at_slot(u.attested_header.beacon.slot)
        };
        let (n, o) = (sc_finality(new_update), sc_finality(old_update));
        if n != o {
            return n;
        }
    }

    // Tiebreaker 1: sync committee participation beyond supermajority.
    if new_num != old_num {
        return new_num > old_num;
    }
    // Tiebreaker 2: prefer older data (fewer changes to best).
    if new_update.attested_header.beacon.slot != old_update.attested_header.beacon.slot {
        return new_update.attested_header.beacon.slot < old_update.attested_header.beacon.slot;
    }
    // Tiebreaker 3: prefer updates with earlier signature slots.
    new_update.signature_slot < old_update.signature_slot
}

/// `get_lc_execution_root(header)`.
pub fn get_lc_execution_root(header: &LightClientHeader, forks: &ForkSchedule) -> Result<Chunk> {
    if compute_epoch_at_slot(header.beacon.slot) >= forks.capella_fork_epoch {
        root(&header.execution)
    } else {
        Ok([0u8; 32])
    }
}

/// `is_valid_light_client_header(header)`.
pub fn is_valid_light_client_header(
    header: &LightClientHeader,
    forks: &ForkSchedule,
) -> Result<bool> {
    let epoch = compute_epoch_at_slot(header.beacon.slot);
    if epoch < forks.deneb_fork_epoch
        && (header.execution.blob_gas_used != 0 || header.execution.excess_blob_gas != 0)
    {
        return Ok(false);
    }
    if epoch < forks.capella_fork_epoch {
        return Ok(header.execution == ExecutionPayloadHeader::default()
            && header
                .execution_branch
                .iter()
                .all(|b| b == &Bytes32::default()));
    }
    Ok(is_valid_merkle_branch(
        &get_lc_execution_root(header, forks)?,
        &branch_chunks(&header.execution_branch[..]),
        u64::from(floorlog2(EXECUTION_PAYLOAD_GINDEX)),
        get_subtree_index(EXECUTION_PAYLOAD_GINDEX),
        header.beacon.body_root.as_bytes(),
    ))
}

/// `LightClientStore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LightClientStore {
    pub finalized_header: LightClientHeader,
    pub current_sync_committee: SyncCommittee,
    pub next_sync_committee: SyncCommittee,
    pub best_valid_update: Option<LightClientUpdate>,
    pub optimistic_header: LightClientHeader,
    pub previous_max_active_participants: u64,
    pub current_max_active_participants: u64,
}

/// `is_next_sync_committee_known(store)`.
pub fn is_next_sync_committee_known(store: &LightClientStore) -> bool {
    store.next_sync_committee != SyncCommittee::default()
}

/// `get_safety_threshold(store)`.
pub fn get_safety_threshold(store: &LightClientStore) -> u64 {
    store
        .previous_max_active_participants
        .max(store.current_max_active_participants)
        / 2
}

/// `initialize_light_client_store(trusted_block_root, bootstrap)`.
pub fn initialize_light_client_store(
    trusted_block_root: &Root,
    bootstrap: &LightClientBootstrap,
    forks: &ForkSchedule,
) -> Result<LightClientStore> {
    if !is_valid_light_client_header(&bootstrap.header, forks)? {
        return Err(LightClientError::InvalidHeader("bootstrap header"));
    }
    if &root(&bootstrap.header.beacon)? != trusted_block_root.as_bytes() {
        return Err(LightClientError::UntrustedBootstrap);
    }
    if !is_valid_normalized_merkle_branch(
        &root(&bootstrap.current_sync_committee)?,
        &branch_chunks(&bootstrap.current_sync_committee_branch[..]),
        current_sync_committee_gindex_at_slot(bootstrap.header.beacon.slot),
        bootstrap.header.beacon.state_root.as_bytes(),
    ) {
        return Err(LightClientError::InvalidBranch("current sync committee"));
    }
    Ok(LightClientStore {
        finalized_header: bootstrap.header.clone(),
        current_sync_committee: bootstrap.current_sync_committee.clone(),
        next_sync_committee: SyncCommittee::default(),
        best_valid_update: None,
        optimistic_header: bootstrap.header.clone(),
        previous_max_active_participants: 0,
        current_max_active_participants: 0,
    })
}

fn ensure(cond: bool, what: &'static str) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(LightClientError::InvalidUpdate(what))
    }
}

/// `validate_light_client_update(store, update, current_slot, genesis_validators_root)`.
pub fn validate_light_client_update(
    store: &LightClientStore,
    update: &LightClientUpdate,
    current_slot: u64,
    genesis_validators_root: &Root,
    forks: &ForkSchedule,
) -> Result<()> {
    // Verify sync committee has sufficient participants.
    let sync_aggregate = &update.sync_aggregate;
    ensure(
        sum_bits(sync_aggregate) >= MIN_SYNC_COMMITTEE_PARTICIPANTS,
        "too few sync committee participants",
    )?;

    // Verify update does not skip a sync committee period.
    if !is_valid_light_client_header(&update.attested_header, forks)? {
        return Err(LightClientError::InvalidHeader("attested header"));
    }
    let update_attested_slot = update.attested_header.beacon.slot;
    let update_finalized_slot = update.finalized_header.beacon.slot;
    ensure(
        current_slot >= update.signature_slot
            && update.signature_slot > update_attested_slot
            && update_attested_slot >= update_finalized_slot,
        "slots out of order",
    )?;
    let store_period = compute_sync_committee_period_at_slot(store.finalized_header.beacon.slot);
    let update_signature_period = compute_sync_committee_period_at_slot(update.signature_slot);
    if is_next_sync_committee_known(store) {
        ensure(
            update_signature_period == store_period || update_signature_period == store_period + 1,
            "signature period is not the store's or the next",
        )?;
    } else {
        ensure(
            update_signature_period == store_period,
            "signature period is not the store's",
        )?;
    }

    // Verify update is relevant.
    let update_attested_period = compute_sync_committee_period_at_slot(update_attested_slot);
    let update_has_next_sync_committee = !is_next_sync_committee_known(store)
        && is_sync_committee_update(update)
        && update_attested_period == store_period;
    ensure(
        update_attested_slot > store.finalized_header.beacon.slot || update_has_next_sync_committee,
        "update is not relevant",
    )?;

    // Verify that the `finality_branch`, if present, confirms `finalized_header`.
    if !is_finality_update(update) {
        ensure(
            update.finalized_header == LightClientHeader::default(),
            "finalized header without finality branch",
        )?;
    } else {
        let finalized_root = if update_finalized_slot == GENESIS_SLOT {
            ensure(
                update.finalized_header == LightClientHeader::default(),
                "genesis finalized header must be empty",
            )?;
            [0u8; 32]
        } else {
            if !is_valid_light_client_header(&update.finalized_header, forks)? {
                return Err(LightClientError::InvalidHeader("finalized header"));
            }
            root(&update.finalized_header.beacon)?
        };
        if !is_valid_normalized_merkle_branch(
            &finalized_root,
            &branch_chunks(&update.finality_branch[..]),
            finalized_root_gindex_at_slot(update.attested_header.beacon.slot),
            update.attested_header.beacon.state_root.as_bytes(),
        ) {
            return Err(LightClientError::InvalidBranch("finality"));
        }
    }

    // Verify that the `next_sync_committee`, if present, actually is the next sync committee.
    if !is_sync_committee_update(update) {
        ensure(
            update.next_sync_committee == SyncCommittee::default(),
            "next sync committee without branch",
        )?;
    } else {
        if update_attested_period == store_period && is_next_sync_committee_known(store) {
            ensure(
                update.next_sync_committee == store.next_sync_committee,
                "next sync committee differs from the known one",
            )?;
        }
        if !is_valid_normalized_merkle_branch(
            &root(&update.next_sync_committee)?,
            &branch_chunks(&update.next_sync_committee_branch[..]),
            next_sync_committee_gindex_at_slot(update.attested_header.beacon.slot),
            update.attested_header.beacon.state_root.as_bytes(),
        ) {
            return Err(LightClientError::InvalidBranch("next sync committee"));
        }
    }

    // Verify sync committee aggregate signature.
    let sync_committee = if update_signature_period == store_period {
        &store.current_sync_committee
    } else {
        &store.next_sync_committee
    };
    let mut participant_pubkeys = Vec::new();
    for (bit, pubkey) in sync_aggregate
        .sync_committee_bits
        .iter()
        .zip(sync_committee.pubkeys.iter())
    {
        if *bit {
            let key = crate::bls::parse_pubkey(pubkey.as_ref())
                .map_err(|_| LightClientError::InvalidSignature)?;
            participant_pubkeys.push(key);
        }
    }
    let fork_version_slot = update.signature_slot.max(1) - 1;
    let fork_version = forks.compute_fork_version(compute_epoch_at_slot(fork_version_slot));
    let fork_data_root = root(&ForkData {
        current_version: fork_version,
        genesis_validators_root: *genesis_validators_root,
    })?;
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&DOMAIN_SYNC_COMMITTEE);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    let signing_root = root(&SigningData {
        object_root: root(&update.attested_header.beacon)?.into(),
        domain: domain.into(),
    })?;
    let signature = crate::bls::parse_signature(sync_aggregate.sync_committee_signature.as_ref())
        .map_err(|_| LightClientError::InvalidSignature)?;
    if !crate::transition::signatures::verify_fast_aggregate(
        &participant_pubkeys,
        &signing_root,
        &signature,
    ) {
        return Err(LightClientError::InvalidSignature);
    }
    Ok(())
}

/// `apply_light_client_update(store, update)`.
pub fn apply_light_client_update(
    store: &mut LightClientStore,
    update: &LightClientUpdate,
) -> Result<()> {
    let store_period = compute_sync_committee_period_at_slot(store.finalized_header.beacon.slot);
    let update_finalized_period =
        compute_sync_committee_period_at_slot(update.finalized_header.beacon.slot);
    if !is_next_sync_committee_known(store) {
        ensure(
            update_finalized_period == store_period,
            "finalized period is not the store's",
        )?;
        store.next_sync_committee = update.next_sync_committee.clone();
    } else if update_finalized_period == store_period + 1 {
        store.current_sync_committee = std::mem::take(&mut store.next_sync_committee);
        store.next_sync_committee = update.next_sync_committee.clone();
        store.previous_max_active_participants = store.current_max_active_participants;
        store.current_max_active_participants = 0;
    }
    if update.finalized_header.beacon.slot > store.finalized_header.beacon.slot {
        store.finalized_header = update.finalized_header.clone();
        if store.finalized_header.beacon.slot > store.optimistic_header.beacon.slot {
            store.optimistic_header = store.finalized_header.clone();
        }
    }
    Ok(())
}

/// `process_light_client_store_force_update(store, current_slot)`.
pub fn process_light_client_store_force_update(
    store: &mut LightClientStore,
    current_slot: u64,
) -> Result<()> {
    let timeout_slot = store
        .finalized_header
        .beacon
        .slot
        .saturating_add(UPDATE_TIMEOUT);
    if current_slot > timeout_slot {
        if let Some(mut best) = store.best_valid_update.take() {
            // The attested header may stand in for the finalized one in long non-finality.
            if best.finalized_header.beacon.slot <= store.finalized_header.beacon.slot {
                best.finalized_header = best.attested_header.clone();
            }
            apply_light_client_update(store, &best)?;
        }
    }
    Ok(())
}

/// `process_light_client_update(store, update, current_slot, genesis_validators_root)`.
pub fn process_light_client_update(
    store: &mut LightClientStore,
    update: &LightClientUpdate,
    current_slot: u64,
    genesis_validators_root: &Root,
    forks: &ForkSchedule,
) -> Result<()> {
    validate_light_client_update(store, update, current_slot, genesis_validators_root, forks)?;
    let participants = sum_bits(&update.sync_aggregate);
    let committee_size = update.sync_aggregate.sync_committee_bits.len() as u64;

    // Update the best update in case we have to force-update to it if the timeout elapses.
    let better = match &store.best_valid_update {
        None => true,
        Some(best) => is_better_update(update, best),
    };
    if better {
        store.best_valid_update = Some(update.clone());
    }

    // Track the maximum number of active participants in the committee signatures.
    store.current_max_active_participants = store.current_max_active_participants.max(participants);

    // Update the optimistic header.
    if participants > get_safety_threshold(store)
        && update.attested_header.beacon.slot > store.optimistic_header.beacon.slot
    {
        store.optimistic_header = update.attested_header.clone();
    }

    // Update finalized header.
    let update_has_finalized_next_sync_committee = !is_next_sync_committee_known(store)
        && is_sync_committee_update(update)
        && is_finality_update(update)
        && compute_sync_committee_period_at_slot(update.finalized_header.beacon.slot)
            == compute_sync_committee_period_at_slot(update.attested_header.beacon.slot);
    if participants * 3 >= committee_size * 2
        && (update.finalized_header.beacon.slot > store.finalized_header.beacon.slot
            || update_has_finalized_next_sync_committee)
    {
        // Normal update through 2/3 threshold.
        apply_light_client_update(store, update)?;
        store.best_valid_update = None;
    }
    Ok(())
}

// ---- full-node side: the proofs a light client is served ---------------------------------

/// The branch of `state.current_sync_committee` (gindex 86).
pub fn compute_current_sync_committee_proof(state: &BeaconState) -> Result<MerkleProof> {
    compute_merkle_proof(
        &mut state.clone(),
        current_sync_committee_gindex_at_slot(state.slot),
    )
    .map_err(proof_error)
}

/// The branch of `state.next_sync_committee` (gindex 87).
pub fn compute_next_sync_committee_proof(state: &BeaconState) -> Result<MerkleProof> {
    compute_merkle_proof(
        &mut state.clone(),
        next_sync_committee_gindex_at_slot(state.slot),
    )
    .map_err(proof_error)
}

/// The branch of `state.finalized_checkpoint.root` (gindex 169).
pub fn compute_finality_proof(state: &BeaconState) -> Result<MerkleProof> {
    compute_merkle_proof(
        &mut state.clone(),
        finalized_root_gindex_at_slot(state.slot),
    )
    .map_err(proof_error)
}

/// The branch of `body.execution_payload` (gindex 25).
pub fn compute_execution_proof(body: &BeaconBlockBody) -> Result<MerkleProof> {
    compute_merkle_proof(&mut body.clone(), EXECUTION_PAYLOAD_GINDEX).map_err(proof_error)
}
