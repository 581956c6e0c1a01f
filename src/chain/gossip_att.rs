//! The preset's half of attestation and sync-committee gossip validation (compiled per
//! preset, see `chain::minimal` / `chain::mainnet`; the rest is in
//! `chain::gossip_attestation`): decode each message and run the spec's conditions in
//! the spec's order against the head state, up to the signature sets, which the caller
//! verifies for the whole batch at once.

use std::sync::Arc;

use super::{t, types};
use crate::chain::gossip_attestation::{
    compute_subnet_for_attestation, is_current_or_previous_epoch, is_future_slot,
    is_within_slot_range, selects_aggregator, vote_block_checks, AttestationError as E,
    AttestationGossip, BlockTree, Checked, GossipKeys, GossipMessage, PendingSet, SeenKey,
    SYNC_COMMITTEE_SUBNET_COUNT, TARGET_AGGREGATORS_PER_COMMITTEE,
    TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE,
};
use crate::chain::service::GossipTopic;
use crate::store::Checkpoint;
use crate::types::ssz::SszDecode;
use types::BeaconState;

type Root = [u8; 32];

const DOMAIN_SELECTION_PROOF: [u8; 4] = [5, 0, 0, 0];
const DOMAIN_AGGREGATE_AND_PROOF: [u8; 4] = [6, 0, 0, 0];
const DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF: [u8; 4] = [8, 0, 0, 0];
const DOMAIN_CONTRIBUTION_AND_PROOF: [u8; 4] = [9, 0, 0, 0];

const SLOTS_PER_EPOCH: u64 = types::SLOTS_PER_EPOCH as u64;

/// What one message's checks read.
struct Env<'a> {
    state: &'a BeaconState,
    g: &'a AttestationGossip,
    tree: &'a BlockTree,
    keys: &'a GossipKeys,
    slot_ms: u64,
}

fn internal(e: impl std::fmt::Display) -> E {
    E::Internal(e.to_string())
}

/// The spec's checks of every message, in order, against the head `state`; the key table
/// they were resolved against; and the clock's epoch (for the seen-cache's pruning).
pub fn check_batch(
    state: &Arc<BeaconState>,
    g: &AttestationGossip,
    tree: &BlockTree,
    msgs: &[GossipMessage],
) -> (Vec<Checked>, Arc<GossipKeys>, u64) {
    let keys = g.keys_for(state.validators.len(), |i| {
        *state.validators[i].pubkey.as_bytes()
    });
    let slot_ms = g.slot_duration_ms().max(1);
    let env = Env {
        state,
        g,
        tree,
        keys: &keys,
        slot_ms,
    };
    let now_max = msgs
        .iter()
        .map(|m| m.now.ms_since_genesis())
        .max()
        .unwrap_or(0);
    let current_epoch = now_max / slot_ms / SLOTS_PER_EPOCH;
    let checked = msgs
        .iter()
        .map(|m| {
            let now = m.now.ms_since_genesis();
            match m.topic {
                GossipTopic::BeaconAggregateAndProof => aggregate(&env, &m.message, now),
                GossipTopic::BeaconAttestation { subnet } => {
                    attestation(&env, &m.message, now, subnet)
                }
                GossipTopic::SyncCommitteeContributionAndProof => {
                    contribution(&env, &m.message, now)
                }
                GossipTopic::SyncCommittee { subnet } => {
                    sync_message(&env, &m.message, now, subnet)
                }
                other => Checked::failed(E::Internal(format!(
                    "topic {other:?} is not an attestation topic"
                ))),
            }
        })
        .collect();
    (checked, keys, current_epoch)
}

fn decode<T: SszDecode>(what: &'static str, bytes: &[u8]) -> Result<T, E> {
    T::ssz_decode(bytes).map_err(|e| E::Decode {
        what,
        reason: e.to_string(),
    })
}

/// `compute_signing_root(uint64, domain)`.
fn signing_root_of_u64(v: u64, domain: types::Domain) -> Result<Root, E> {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&v.to_le_bytes());
    t::compute_signing_root_of(root, domain).map_err(internal)
}

fn u32_index(i: u64) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A set over validators `signers`, checked against the key table: a validator whose key
/// in the table is not the state's (a fork with other deposits) is a node fault.
fn set(
    env: &Env<'_>,
    what: &'static str,
    signers: &[u64],
    signing_root: Root,
    signature: &types::BLSSignature,
) -> Result<PendingSet, E> {
    for &i in signers {
        if let Some(v) = env.state.validators.get(i as usize) {
            if !env.keys.agrees(i, v.pubkey.as_bytes()) {
                return Err(E::Internal(format!(
                    "the key table's pubkey of validator {i} is not the head state's"
                )));
            }
        }
    }
    let mut sig = [0u8; 96];
    sig.copy_from_slice(signature.as_ref());
    Ok(PendingSet {
        what,
        signers: signers.iter().map(|&i| u32_index(i)).collect(),
        signing_root,
        signature: sig,
    })
}

/// The vote block conditions (seen, valid, target ancestor, finalized ancestor).
fn block_checks(env: &Env<'_>, block_root: Root, target: Checkpoint) -> Option<E> {
    let store = env.g.store();
    let stored = |r: &Root| -> Result<Option<(u64, Root)>, String> {
        match store.get_block(r).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(bytes) => {
                let b = types::SignedBeaconBlock::ssz_decode(&bytes).map_err(|e| e.to_string())?;
                Ok(Some((b.message.slot, *b.message.parent_root.as_bytes())))
            }
        }
    };
    vote_block_checks(
        env.tree,
        block_root,
        target,
        |epoch| epoch.saturating_mul(SLOTS_PER_EPOCH),
        &stored,
    )
    .err()
}

fn checkpoint(c: &types::Checkpoint) -> Checkpoint {
    Checkpoint {
        epoch: c.epoch,
        root: *c.root.as_bytes(),
    }
}

/// The committee of (slot, index) from the head state's shuffling of the slot's epoch.
/// The committees are computed from the head state. Of a target epoch more than one
/// past the head's (the seed of epoch `e` mixes the randao of epoch `e - 2`, final only
/// from epoch `e - 1`) they are the spec's (the target checkpoint's state) only when no
/// block came after the head on the vote's chain: when the voted block is one this node
/// has not seen (it is still syncing), the head state's guess may be wrong, and the
/// message is IGNOREd ([`E::ShufflingUnknown`]; the spec IGNOREs an unseen block anyway)
/// instead of rejecting a good one.
fn shuffling_known(env: &Env<'_>, data: &types::AttestationData) -> Result<(), E> {
    let epoch = data.target.epoch;
    let state_epoch = t::get_current_epoch(env.state);
    let root = *data.beacon_block_root.as_bytes();
    let seen = env.tree.blocks.contains_key(&root) || env.tree.anchor == root;
    if epoch > state_epoch.saturating_add(1) && !seen {
        return Err(E::ShufflingUnknown { epoch, state_epoch });
    }
    Ok(())
}

fn committee(env: &Env<'_>, slot: u64, index: u64) -> Result<Vec<u64>, E> {
    t::get_beacon_committee(env.state, slot, index, env.g.ctx()).map_err(internal)
}

/// `validate_beacon_aggregate_and_proof_gossip` (Electra).
fn aggregate(env: &Env<'_>, bytes: &[u8], now: u64) -> Checked {
    let signed: types::SignedAggregateAndProof = match decode("SignedAggregateAndProof", bytes) {
        Ok(m) => m,
        Err(e) => return Checked::failed(e),
    };
    aggregate_checks(env, &signed, now).unwrap_or_else(Checked::failed)
}

fn aggregate_checks(
    env: &Env<'_>,
    signed: &types::SignedAggregateAndProof,
    now: u64,
) -> Result<Checked, E> {
    let state = env.state;
    let proof = &signed.message;
    let aggregate = &proof.aggregate;
    let data = &aggregate.data;
    let bits: Vec<bool> = aggregate.aggregation_bits.iter().map(|b| *b).collect();

    // [REJECT] The aggregate attestation's data index is zero.
    if data.index != 0 {
        return Err(E::NonZeroDataIndex { index: data.index });
    }
    // [REJECT] Exactly one committee is specified by the committee bits.
    let committees = t::get_committee_indices(&aggregate.committee_bits);
    if committees.len() != 1 {
        return Err(E::CommitteeCount {
            count: committees.len(),
        });
    }
    let index = committees[0];
    shuffling_known(env, data)?;
    // [REJECT] The committee index is within the expected range.
    let count = t::get_committee_count_per_slot(state, data.target.epoch);
    if index >= count {
        return Err(E::CommitteeIndexOutOfRange {
            index,
            committees: count,
        });
    }
    // [IGNORE] The aggregate attestation's slot is not from a future slot.
    if is_future_slot(data.slot, now, env.slot_ms) {
        return Err(E::FutureSlot {
            slot: data.slot,
            now_ms: now,
        });
    }
    // [IGNORE] The aggregate attestation's epoch is either the current or previous epoch.
    let epoch = t::compute_epoch_at_slot(data.slot);
    if !is_current_or_previous_epoch(epoch, now, env.slot_ms, SLOTS_PER_EPOCH) {
        return Err(E::NotCurrentOrPreviousEpoch { epoch, now_ms: now });
    }
    // [REJECT] The aggregate attestation's epoch matches its target.
    if data.target.epoch != epoch {
        return Err(E::TargetEpochMismatch {
            slot: data.slot,
            target_epoch: data.target.epoch,
        });
    }
    // [REJECT] The number of aggregation bits matches the committee size.
    let committee = committee(env, data.slot, index)?;
    if bits.len() != committee.len() {
        return Err(E::AggregationBitsLength {
            bits: bits.len(),
            committee: committee.len(),
        });
    }
    // [REJECT] The aggregate attestation has participants.
    let mut attesting: Vec<u64> = committee
        .iter()
        .zip(&bits)
        .filter(|(_, &b)| b)
        .map(|(&v, _)| v)
        .collect();
    attesting.sort_unstable();
    attesting.dedup();
    if attesting.is_empty() {
        return Err(E::NoParticipants);
    }
    let target_epoch = data.target.epoch;
    let data_root = t::hash_tree_root(data).map_err(internal)?;
    let mut c = Checked {
        // [IGNORE] A valid aggregate with a superset of aggregation bits has not been seen;
        // [IGNORE] this is the first valid aggregate for this epoch and aggregator.
        seen: vec![
            SeenKey::AggregateBits {
                epoch: target_epoch,
                data_root,
                committee: index,
                bits: bits.clone(),
            },
            SeenKey::Aggregator {
                epoch: target_epoch,
                aggregator: proof.aggregator_index,
            },
        ],
        ..Checked::default()
    };
    // [REJECT] The selection proof selects the validator as an aggregator.
    let modulo = (committee.len() as u64 / TARGET_AGGREGATORS_PER_COMMITTEE).max(1);
    let selection: [u8; 96] = proof
        .selection_proof
        .as_ref()
        .try_into()
        .map_err(internal)?;
    if !selects_aggregator(&selection, modulo) {
        c.late = Some(E::NotAggregator {
            validator: proof.aggregator_index,
        });
        return Ok(c);
    }
    // [REJECT] The aggregator's validator index is within the committee.
    if !committee.contains(&proof.aggregator_index) {
        c.late = Some(E::AggregatorNotInCommittee {
            aggregator: proof.aggregator_index,
        });
        return Ok(c);
    }
    // [REJECT] The selection proof, the aggregator signature and the aggregate
    // signature are valid (one batch for the whole gossip batch).
    let domain =
        t::get_domain(state, DOMAIN_SELECTION_PROOF, Some(target_epoch)).map_err(internal)?;
    c.sets.push(set(
        env,
        "selection proof",
        &[proof.aggregator_index],
        signing_root_of_u64(data.slot, domain)?,
        &proof.selection_proof,
    )?);
    let domain =
        t::get_domain(state, DOMAIN_AGGREGATE_AND_PROOF, Some(target_epoch)).map_err(internal)?;
    c.sets.push(set(
        env,
        "aggregator signature",
        &[proof.aggregator_index],
        t::compute_signing_root(proof, domain).map_err(internal)?,
        &signed.signature,
    )?);
    let domain =
        t::get_domain(state, t::DOMAIN_BEACON_ATTESTER, Some(target_epoch)).map_err(internal)?;
    c.sets.push(set(
        env,
        "aggregate signature",
        &attesting,
        t::compute_signing_root_of(data_root, domain).map_err(internal)?,
        &aggregate.signature,
    )?);
    let block_root = *data.beacon_block_root.as_bytes();
    c.post = block_checks(env, block_root, checkpoint(&data.target));
    c.votes = attesting
        .iter()
        .map(|&v| (v, block_root, target_epoch))
        .collect();
    Ok(c)
}

/// `validate_beacon_attestation_gossip` (Electra: `SingleAttestation`).
fn attestation(env: &Env<'_>, bytes: &[u8], now: u64, subnet: u64) -> Checked {
    let a: types::SingleAttestation = match decode("SingleAttestation", bytes) {
        Ok(m) => m,
        Err(e) => return Checked::failed(e),
    };
    attestation_checks(env, &a, now, subnet).unwrap_or_else(Checked::failed)
}

fn attestation_checks(
    env: &Env<'_>,
    a: &types::SingleAttestation,
    now: u64,
    subnet: u64,
) -> Result<Checked, E> {
    let state = env.state;
    let data = &a.data;
    let target_epoch = data.target.epoch;
    // [REJECT] The attestation's data index is zero.
    if data.index != 0 {
        return Err(E::NonZeroDataIndex { index: data.index });
    }
    shuffling_known(env, data)?;
    // [REJECT] The committee index is within the expected range.
    let count = t::get_committee_count_per_slot(state, target_epoch);
    if a.committee_index >= count {
        return Err(E::CommitteeIndexOutOfRange {
            index: a.committee_index,
            committees: count,
        });
    }
    // [REJECT] The attestation is for the correct subnet.
    let expected =
        compute_subnet_for_attestation(count, data.slot, a.committee_index, SLOTS_PER_EPOCH);
    if expected != subnet {
        return Err(E::WrongSubnet { subnet, expected });
    }
    // [IGNORE] The attestation's slot is not from a future slot.
    if is_future_slot(data.slot, now, env.slot_ms) {
        return Err(E::FutureSlot {
            slot: data.slot,
            now_ms: now,
        });
    }
    // [IGNORE] The attestation's epoch is either the current or previous epoch.
    let epoch = t::compute_epoch_at_slot(data.slot);
    if !is_current_or_previous_epoch(epoch, now, env.slot_ms, SLOTS_PER_EPOCH) {
        return Err(E::NotCurrentOrPreviousEpoch { epoch, now_ms: now });
    }
    // [REJECT] The attestation's epoch matches its target.
    if target_epoch != epoch {
        return Err(E::TargetEpochMismatch {
            slot: data.slot,
            target_epoch,
        });
    }
    // [REJECT] The attester is a member of the committee.
    let committee = committee(env, data.slot, a.committee_index)?;
    if !committee.contains(&a.attester_index) {
        return Err(E::AttesterNotInCommittee {
            attester: a.attester_index,
            slot: data.slot,
            index: a.committee_index,
        });
    }
    // [IGNORE] No other valid attestation seen for this target epoch and validator.
    let mut c = Checked {
        seen: vec![SeenKey::Attester {
            epoch: target_epoch,
            validator: a.attester_index,
        }],
        ..Checked::default()
    };
    // [REJECT] The attestation signature is valid.
    let domain =
        t::get_domain(state, t::DOMAIN_BEACON_ATTESTER, Some(target_epoch)).map_err(internal)?;
    c.sets.push(set(
        env,
        "attestation signature",
        &[a.attester_index],
        t::compute_signing_root(data, domain).map_err(internal)?,
        &a.signature,
    )?);
    let block_root = *data.beacon_block_root.as_bytes();
    c.post = block_checks(env, block_root, checkpoint(&data.target));
    c.votes = vec![(a.attester_index, block_root, target_epoch)];
    Ok(c)
}

/// The sync committee that signs at the slot after the head state's
/// (`get_sync_subcommittee_pubkeys`' choice).
fn signing_sync_committee(state: &BeaconState) -> &types::SyncCommittee {
    let period = |epoch: u64| epoch / types::EPOCHS_PER_SYNC_COMMITTEE_PERIOD as u64;
    let next_slot_epoch = t::compute_epoch_at_slot(state.slot.saturating_add(1));
    if period(t::get_current_epoch(state)) == period(next_slot_epoch) {
        &state.current_sync_committee
    } else {
        &state.next_sync_committee
    }
}

/// `validate_sync_committee_contribution_and_proof_gossip`.
fn contribution(env: &Env<'_>, bytes: &[u8], now: u64) -> Checked {
    let signed: types::SignedContributionAndProof =
        match decode("SignedContributionAndProof", bytes) {
            Ok(m) => m,
            Err(e) => return Checked::failed(e),
        };
    contribution_checks(env, &signed, now).unwrap_or_else(Checked::failed)
}

fn contribution_checks(
    env: &Env<'_>,
    signed: &types::SignedContributionAndProof,
    now: u64,
) -> Result<Checked, E> {
    let state = env.state;
    let proof = &signed.message;
    let contribution = &proof.contribution;
    let slot = contribution.slot;
    let sub = contribution.subcommittee_index;
    // [IGNORE] The contribution's slot is for the current slot.
    if !is_within_slot_range(slot, 0, now, env.slot_ms) {
        return Err(E::NotCurrentSlot { slot, now_ms: now });
    }
    // [REJECT] The subcommittee index is in the allowed range.
    if sub >= SYNC_COMMITTEE_SUBNET_COUNT {
        return Err(E::SubcommitteeIndexOutOfRange { index: sub });
    }
    // [REJECT] The contribution has participants.
    let bits: Vec<bool> = contribution.aggregation_bits.iter().map(|b| *b).collect();
    if !bits.iter().any(|&b| b) {
        return Err(E::NoParticipants);
    }
    // [REJECT] The selection proof selects the validator as an aggregator for the slot.
    let modulo =
        (types::SYNC_SUBCOMMITTEE_SIZE as u64 / TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE).max(1);
    let selection: [u8; 96] = proof
        .selection_proof
        .as_ref()
        .try_into()
        .map_err(internal)?;
    if !selects_aggregator(&selection, modulo) {
        return Err(E::NotAggregator {
            validator: proof.aggregator_index,
        });
    }
    // [REJECT] The aggregator index is valid.
    let validators = state.validators.len() as u64;
    if proof.aggregator_index >= validators {
        return Err(E::ValidatorIndexOutOfRange {
            index: proof.aggregator_index,
            validators,
        });
    }
    // [REJECT] The aggregator is in the declared subcommittee.
    let aggregator_pubkey = *state.validators[proof.aggregator_index as usize]
        .pubkey
        .as_bytes();
    let size = types::SYNC_SUBCOMMITTEE_SIZE;
    let from = sub as usize * size;
    let committee = signing_sync_committee(state);
    let subcommittee: Vec<[u8; 48]> = committee.pubkeys[from..from + size]
        .iter()
        .map(|p| *p.as_bytes())
        .collect();
    if !subcommittee.contains(&aggregator_pubkey) {
        return Err(E::NotInSubcommittee {
            aggregator: proof.aggregator_index,
            subcommittee: sub,
        });
    }
    let epoch = t::compute_epoch_at_slot(slot);
    let block_root = *contribution.beacon_block_root.as_bytes();
    let mut c = Checked {
        // [IGNORE] No valid contribution with a superset of these bits for (slot, block
        // root, subcommittee); [IGNORE] the first valid one of this aggregator for (slot,
        // subcommittee).
        seen: vec![
            SeenKey::ContributionBits {
                epoch,
                slot,
                block_root,
                subcommittee: sub,
                bits: bits.clone(),
            },
            SeenKey::ContributionAggregator {
                epoch,
                slot,
                aggregator: proof.aggregator_index,
                subcommittee: sub,
            },
        ],
        ..Checked::default()
    };
    // [REJECT] The selection proof, the aggregator signature and the aggregate signature.
    let selection_data = types::SyncAggregatorSelectionData {
        slot,
        subcommittee_index: sub,
    };
    let domain = t::get_domain(state, DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF, Some(epoch))
        .map_err(internal)?;
    c.sets.push(set(
        env,
        "selection proof",
        &[proof.aggregator_index],
        t::compute_signing_root(&selection_data, domain).map_err(internal)?,
        &proof.selection_proof,
    )?);
    let domain =
        t::get_domain(state, DOMAIN_CONTRIBUTION_AND_PROOF, Some(epoch)).map_err(internal)?;
    c.sets.push(set(
        env,
        "aggregator signature",
        &[proof.aggregator_index],
        t::compute_signing_root(proof, domain).map_err(internal)?,
        &signed.signature,
    )?);
    // Participants by validator index (the aggregator sums their keys from the table).
    let mut participants = Vec::new();
    for (pk, _) in subcommittee.iter().zip(&bits).filter(|(_, &b)| b) {
        match env
            .g
            .ctx()
            .pubkeys()
            .find_validator_index(&state.validators, pk)
        {
            Some(i) => participants.push(i),
            None => {
                return Err(E::Internal(
                    "a sync committee member is not in the registry".into(),
                ))
            }
        }
    }
    let domain = t::get_domain(state, t::DOMAIN_SYNC_COMMITTEE, Some(epoch)).map_err(internal)?;
    c.sets.push(set(
        env,
        "aggregate signature",
        &participants,
        t::compute_signing_root_of(block_root, domain).map_err(internal)?,
        &contribution.signature,
    )?);
    Ok(c)
}

/// `validate_sync_committee_message_gossip`.
fn sync_message(env: &Env<'_>, bytes: &[u8], now: u64, subnet: u64) -> Checked {
    let m: types::SyncCommitteeMessage = match decode("SyncCommitteeMessage", bytes) {
        Ok(m) => m,
        Err(e) => return Checked::failed(e),
    };
    sync_message_checks(env, &m, now, subnet).unwrap_or_else(Checked::failed)
}

fn sync_message_checks(
    env: &Env<'_>,
    m: &types::SyncCommitteeMessage,
    now: u64,
    subnet: u64,
) -> Result<Checked, E> {
    let state = env.state;
    // [IGNORE] The message's slot is for the current slot.
    if !is_within_slot_range(m.slot, 0, now, env.slot_ms) {
        return Err(E::NotCurrentSlot {
            slot: m.slot,
            now_ms: now,
        });
    }
    // [REJECT] The validator index is valid.
    let validators = state.validators.len() as u64;
    if m.validator_index >= validators {
        return Err(E::ValidatorIndexOutOfRange {
            index: m.validator_index,
            validators,
        });
    }
    // [REJECT] The subnet is valid for the validator
    // (`compute_subnets_for_sync_committee`).
    let pubkey = state.validators[m.validator_index as usize]
        .pubkey
        .as_bytes();
    let size = types::SYNC_SUBCOMMITTEE_SIZE;
    let in_subnet = signing_sync_committee(state)
        .pubkeys
        .iter()
        .enumerate()
        .any(|(i, pk)| pk.as_bytes() == pubkey && (i / size) as u64 == subnet);
    if !in_subnet {
        return Err(E::WrongSyncSubnet {
            subnet,
            validator: m.validator_index,
        });
    }
    let epoch = t::compute_epoch_at_slot(m.slot);
    let mut c = Checked {
        // [IGNORE] No other valid message of this validator for the slot on this subnet.
        seen: vec![SeenKey::SyncMessage {
            epoch,
            slot: m.slot,
            validator: m.validator_index,
            subnet,
        }],
        ..Checked::default()
    };
    // [REJECT] The signature is valid for the message's beacon_block_root.
    let domain = t::get_domain(state, t::DOMAIN_SYNC_COMMITTEE, Some(epoch)).map_err(internal)?;
    c.sets.push(set(
        env,
        "sync committee message signature",
        &[m.validator_index],
        t::compute_signing_root_of(*m.beacon_block_root.as_bytes(), domain).map_err(internal)?,
        &m.signature,
    )?);
    Ok(c)
}
