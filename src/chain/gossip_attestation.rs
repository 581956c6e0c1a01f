//! Gossip validation of attestations and sync-committee messages, off the chain thread:
//! `beacon_aggregate_and_proof`, `beacon_attestation_{subnet_id}` (Electra's
//! `SingleAttestation`), `sync_committee_contribution_and_proof` and
//! `sync_committee_{subnet_id}`, with the rules of `specs/*/p2p-interface.md` (phase0 as
//! Altair, Deneb and Electra modify it) in the spec's order.
//!
//! ```text
//!  messages (a batch) ──▶ preset checks (`gossip_att.rs`, head state, published block tree)
//!       │                     per message: early checks │ seen keys │ late checks │
//!       │                                  signature sets │ block checks
//!       ├──▶ seen-cache pre-filter (already seen: no signature work)
//!       ├──▶ every remaining set of every message: one pubkey aggregation
//!       │    (`PubkeyAggregator`), one blst batch, bisected on failure
//!       └──▶ in message order, under the seen-cache lock: the first failed check in the
//!            spec's order decides; an accepted message is marked seen and its votes go
//!            to fork choice (fire-and-forget, bounded)
//! ```
//!
//! Deciding in message order, after the signatures, gives the spec's sequential verdicts
//! even within one batch: the checks before a seen check never read the seen-cache, so a
//! duplicate later in the batch meets the seen key its earlier twin left.
//!
//! Nothing here queues behind block import: the state is the published head
//! ([`HeadSnapshot`]), the fork-choice facts come from the [`BlockTree`] the chain thread
//! publishes after each import, and the seen-cache is a value of the chain service.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};

use blst::min_pk::AggregatePublicKey;

use super::error::Fault;
use super::pipeline::hex;
use super::service::{AnyState, GossipClock, GossipTopic, GossipVerdict, HeadSnapshot};
use crate::accel::aggregate::{CpuAggregator, PubkeyAggregator, PubkeyTable};
use crate::bls::sets::ResolvedSet;
use crate::bls::{parse_pubkey, parse_signature, verify_each};
use crate::store::{Checkpoint, Store};
use crate::transition::TransitionCtx;

type Root = [u8; 32];

/// `ATTESTATION_SUBNET_COUNT`.
pub const ATTESTATION_SUBNET_COUNT: u64 = 64;
/// `SYNC_COMMITTEE_SUBNET_COUNT`.
pub const SYNC_COMMITTEE_SUBNET_COUNT: u64 = 4;
/// `SUBNETS_PER_NODE`.
pub const SUBNETS_PER_NODE: u64 = 2;
/// `EPOCHS_PER_SUBNET_SUBSCRIPTION`.
pub const EPOCHS_PER_SUBNET_SUBSCRIPTION: u64 = 256;
/// `ATTESTATION_SUBNET_EXTRA_BITS`.
pub const ATTESTATION_SUBNET_EXTRA_BITS: u64 = 0;
/// `TARGET_AGGREGATORS_PER_COMMITTEE`.
pub const TARGET_AGGREGATORS_PER_COMMITTEE: u64 = 16;
/// `TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE`.
pub const TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE: u64 = 16;

/// Vote batches queued for fork choice before new ones are dropped (and counted).
pub const VOTE_QUEUE: usize = 1024;
/// Participation bitsets kept per aggregate (or contribution) data key: past this, a new
/// one is not remembered (a later subset of it is then validated again, never wrongly
/// refused).
pub const MAX_BITSETS_PER_KEY: usize = 64;
/// Seen entries kept per epoch (every validator attests once per epoch; mainnet's
/// registry fits well below this). Past it, new entries of the epoch are not remembered.
pub const MAX_SEEN_PER_EPOCH: usize = 1 << 22;

/// Why an attestation or sync-committee message was not accepted; [`fault`](Self::fault)
/// maps each to the spec's IGNORE ([`Fault::Nobody`], [`Fault::Node`]) or REJECT
/// ([`Fault::Peer`]). The variants are named after the spec's conditions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// The bytes are not the topic's SSZ type (or over its size bound).
    #[error("undecodable {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// Electra: `data.index` must be zero (the committee is named elsewhere).
    #[error("attestation data index {index} is not zero")]
    NonZeroDataIndex { index: u64 },
    /// Electra: the aggregate's `committee_bits` must select exactly one committee.
    #[error("committee bits select {count} committees, not exactly one")]
    CommitteeCount { count: usize },
    /// The committee index is not below `get_committee_count_per_slot`.
    #[error("committee index {index} out of range ({committees} committees per slot)")]
    CommitteeIndexOutOfRange { index: u64, committees: u64 },
    /// The attestation is not for the subnet it arrived on.
    #[error("attestation for subnet {expected} arrived on subnet {subnet}")]
    WrongSubnet { subnet: u64, expected: u64 },
    /// The slot starts later than now plus `MAXIMUM_GOSSIP_CLOCK_DISPARITY`.
    #[error("slot {slot} is in the future (now {now_ms} ms since genesis)")]
    FutureSlot { slot: u64, now_ms: u64 },
    /// Deneb: the attestation's epoch is neither the current nor the previous one.
    #[error("epoch {epoch} is neither the current nor the previous epoch (now {now_ms} ms)")]
    NotCurrentOrPreviousEpoch { epoch: u64, now_ms: u64 },
    /// The target epoch is not the epoch of the attestation's slot.
    #[error("target epoch {target_epoch} is not the epoch of slot {slot}")]
    TargetEpochMismatch { slot: u64, target_epoch: u64 },
    /// `len(aggregation_bits)` is not the committee's size.
    #[error("{bits} aggregation bits for a committee of {committee}")]
    AggregationBitsLength { bits: usize, committee: usize },
    /// The aggregate (or contribution) has no participant.
    #[error("no participants")]
    NoParticipants,
    /// Electra: the single attestation's attester is not in the committee.
    #[error("attester {attester} is not in committee {index} of slot {slot}")]
    AttesterNotInCommittee {
        attester: u64,
        slot: u64,
        index: u64,
    },
    /// A valid aggregate whose bits are a superset was already seen.
    #[error("an aggregate with a superset of these bits was already seen")]
    AggregateAlreadySeen,
    /// A valid aggregate of this aggregator for this target epoch was already seen.
    #[error("aggregator {aggregator} already aggregated for epoch {epoch}")]
    AggregatorAlreadySeen { epoch: u64, aggregator: u64 },
    /// A valid attestation of this validator for this target epoch was already seen.
    #[error("validator {validator} already attested for epoch {epoch}")]
    AttesterAlreadySeen { epoch: u64, validator: u64 },
    /// The selection proof does not select the validator as an aggregator.
    #[error("validator {validator} is not selected as an aggregator")]
    NotAggregator { validator: u64 },
    /// The aggregator is not in the committee it aggregates.
    #[error("aggregator {aggregator} is not in the committee")]
    AggregatorNotInCommittee { aggregator: u64 },
    /// One of the message's signatures does not verify: `set` names it (`"selection
    /// proof"`, `"aggregator signature"`, `"aggregate signature"`, `"attestation
    /// signature"`, `"sync committee message signature"`).
    #[error("invalid {set}: {reason}")]
    InvalidSignature { set: &'static str, reason: String },
    /// The block voted for has not been seen (fetch it).
    #[error("the block voted for, 0x{}, has not been seen", hex(root))]
    UnknownBlock { root: Root },
    /// The target epoch's committees cannot be computed from the head state yet: it is
    /// more than one epoch behind (the seed of epoch `e` is final from epoch `e - 1`), so
    /// this node lags (still syncing) and cannot judge the message.
    #[error("the committees of epoch {epoch} are not known yet (the head state is in epoch {state_epoch})")]
    ShufflingUnknown { epoch: u64, state_epoch: u64 },
    /// The block voted for failed validation.
    #[error("the block voted for, 0x{}, failed validation", hex(root))]
    BlockFailedValidation { root: Root },
    /// The target is not the vote block's ancestor at the target epoch.
    #[error(
        "target (epoch {epoch}, 0x{}) is not an ancestor of the vote block",
        hex(root)
    )]
    TargetNotAncestor { epoch: u64, root: Root },
    /// The finalized checkpoint is not an ancestor of the vote block.
    #[error("the finalized checkpoint (epoch {epoch}) is not an ancestor of the vote block")]
    FinalizedNotAncestor { epoch: u64 },
    /// Altair: the message's slot is not the current slot.
    #[error("slot {slot} is not the current slot (now {now_ms} ms since genesis)")]
    NotCurrentSlot { slot: u64, now_ms: u64 },
    /// The sync subcommittee index is not below `SYNC_COMMITTEE_SUBNET_COUNT`.
    #[error("subcommittee index {index} out of range")]
    SubcommitteeIndexOutOfRange { index: u64 },
    /// A validator index (aggregator, sync committee member) beyond the registry.
    #[error("validator index {index} out of range ({validators} validators)")]
    ValidatorIndexOutOfRange { index: u64, validators: u64 },
    /// The aggregator is not in the declared sync subcommittee.
    #[error("aggregator {aggregator} is not in sync subcommittee {subcommittee}")]
    NotInSubcommittee { aggregator: u64, subcommittee: u64 },
    /// The sync committee message's subnet is not one of the validator's.
    #[error("subnet {subnet} is not a sync subnet of validator {validator}")]
    WrongSyncSubnet { subnet: u64, validator: u64 },
    /// A valid contribution whose bits are a superset was already seen.
    #[error("a contribution with a superset of these bits was already seen")]
    ContributionAlreadySeen,
    /// A valid contribution of this aggregator, slot and subcommittee was already seen.
    #[error(
        "aggregator {aggregator} already contributed at slot {slot} (subcommittee {subcommittee})"
    )]
    ContributionAggregatorAlreadySeen {
        slot: u64,
        aggregator: u64,
        subcommittee: u64,
    },
    /// A valid message of this validator for this slot and subnet was already seen.
    #[error("validator {validator} already sent a message for slot {slot} on subnet {subnet}")]
    SyncMessageAlreadySeen {
        slot: u64,
        validator: u64,
        subnet: u64,
    },
    /// The validation pool's queue is full: the message is dropped unvalidated.
    #[error("validation queue full: dropped")]
    Overloaded,
    /// The node failed (a shuffling, a store read): the message may be fine.
    #[error("internal: {0}")]
    Internal(String),
}

impl AttestationError {
    /// Whose fault the refusal is: the sender's (REJECT), nobody's or this node's (IGNORE).
    pub fn fault(&self) -> Fault {
        use AttestationError as E;
        match self {
            E::Decode { .. }
            | E::NonZeroDataIndex { .. }
            | E::CommitteeCount { .. }
            | E::CommitteeIndexOutOfRange { .. }
            | E::WrongSubnet { .. }
            | E::TargetEpochMismatch { .. }
            | E::AggregationBitsLength { .. }
            | E::NoParticipants
            | E::AttesterNotInCommittee { .. }
            | E::NotAggregator { .. }
            | E::AggregatorNotInCommittee { .. }
            | E::InvalidSignature { .. }
            | E::BlockFailedValidation { .. }
            | E::TargetNotAncestor { .. }
            | E::SubcommitteeIndexOutOfRange { .. }
            | E::ValidatorIndexOutOfRange { .. }
            | E::NotInSubcommittee { .. }
            | E::WrongSyncSubnet { .. } => Fault::Peer,
            E::Internal(_) => Fault::Node,
            E::FutureSlot { .. }
            | E::NotCurrentOrPreviousEpoch { .. }
            | E::AggregateAlreadySeen
            | E::AggregatorAlreadySeen { .. }
            | E::AttesterAlreadySeen { .. }
            | E::UnknownBlock { .. }
            | E::ShufflingUnknown { .. }
            | E::FinalizedNotAncestor { .. }
            | E::NotCurrentSlot { .. }
            | E::ContributionAlreadySeen
            | E::ContributionAggregatorAlreadySeen { .. }
            | E::SyncMessageAlreadySeen { .. }
            | E::Overloaded => Fault::Nobody,
        }
    }
}

/// A gossip message for [`AttestationGossip::validate_batch`]: its topic, its SSZ bytes
/// (decompressed), and when it arrived.
#[derive(Debug, Clone)]
pub struct GossipMessage {
    pub topic: GossipTopic,
    pub message: Vec<u8>,
    pub now: GossipClock,
}

// ---- the seen-cache ---------------------------------------------------------------------

/// One entry of the spec's `Seen` (Altair's and Electra's fields of it), with the epoch it
/// belongs to (the target epoch; for sync messages the slot's epoch), so that the cache
/// can forget whole epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeenKey {
    /// `aggregate_data_roots[(hash_tree_root(data), committee_index)]` ∋ bits.
    AggregateBits {
        epoch: u64,
        data_root: Root,
        committee: u64,
        bits: Vec<bool>,
    },
    /// `aggregator_epochs` ∋ (target epoch, aggregator).
    Aggregator { epoch: u64, aggregator: u64 },
    /// `attestation_validator_epochs` ∋ (target epoch, validator).
    Attester { epoch: u64, validator: u64 },
    /// `sync_contribution_data[(slot, block root, subcommittee)]` ∋ bits.
    ContributionBits {
        epoch: u64,
        slot: u64,
        block_root: Root,
        subcommittee: u64,
        bits: Vec<bool>,
    },
    /// `sync_contribution_aggregator_slots` ∋ (slot, aggregator, subcommittee).
    ContributionAggregator {
        epoch: u64,
        slot: u64,
        aggregator: u64,
        subcommittee: u64,
    },
    /// `sync_message_validator_slots` ∋ (slot, validator, subnet).
    SyncMessage {
        epoch: u64,
        slot: u64,
        validator: u64,
        subnet: u64,
    },
}

impl SeenKey {
    fn epoch(&self) -> u64 {
        match self {
            SeenKey::AggregateBits { epoch, .. }
            | SeenKey::Aggregator { epoch, .. }
            | SeenKey::Attester { epoch, .. }
            | SeenKey::ContributionBits { epoch, .. }
            | SeenKey::ContributionAggregator { epoch, .. }
            | SeenKey::SyncMessage { epoch, .. } => *epoch,
        }
    }
}

#[derive(Debug, Default)]
struct EpochSeen {
    aggregate_bits: HashMap<(Root, u64), Vec<Vec<bool>>>,
    aggregators: HashSet<u64>,
    attesters: HashSet<u64>,
    contribution_bits: HashMap<(u64, Root, u64), Vec<Vec<bool>>>,
    contribution_aggregators: HashSet<(u64, u64, u64)>,
    sync_messages: HashSet<(u64, u64, u64)>,
    entries: usize,
}

/// `is_non_strict_superset`: some prior bitset has every bit `new` has.
pub fn is_non_strict_superset(seen: &[Vec<bool>], new: &[bool]) -> bool {
    seen.iter()
        .any(|prior| prior.len() == new.len() && prior.iter().zip(new).all(|(&p, &n)| p || !n))
}

/// The spec's `Seen` for these topics, by epoch: epochs before the previous one (by the
/// clock) are forgotten, since their messages are IGNOREd before any seen check.
#[derive(Debug, Default)]
pub struct Seen {
    epochs: BTreeMap<u64, EpochSeen>,
}

impl Seen {
    /// The refusal a seen `key` earns, if it is seen.
    pub fn check(&self, key: &SeenKey) -> Option<AttestationError> {
        let e = self.epochs.get(&key.epoch())?;
        match key {
            SeenKey::AggregateBits {
                data_root,
                committee,
                bits,
                ..
            } => e
                .aggregate_bits
                .get(&(*data_root, *committee))
                .filter(|seen| is_non_strict_superset(seen, bits))
                .map(|_| AttestationError::AggregateAlreadySeen),
            SeenKey::Aggregator { epoch, aggregator } => e
                .aggregators
                .contains(aggregator)
                .then_some(AttestationError::AggregatorAlreadySeen {
                    epoch: *epoch,
                    aggregator: *aggregator,
                }),
            SeenKey::Attester { epoch, validator } => {
                e.attesters
                    .contains(validator)
                    .then_some(AttestationError::AttesterAlreadySeen {
                        epoch: *epoch,
                        validator: *validator,
                    })
            }
            SeenKey::ContributionBits {
                slot,
                block_root,
                subcommittee,
                bits,
                ..
            } => e
                .contribution_bits
                .get(&(*slot, *block_root, *subcommittee))
                .filter(|seen| is_non_strict_superset(seen, bits))
                .map(|_| AttestationError::ContributionAlreadySeen),
            SeenKey::ContributionAggregator {
                slot,
                aggregator,
                subcommittee,
                ..
            } => e
                .contribution_aggregators
                .contains(&(*slot, *aggregator, *subcommittee))
                .then_some(AttestationError::ContributionAggregatorAlreadySeen {
                    slot: *slot,
                    aggregator: *aggregator,
                    subcommittee: *subcommittee,
                }),
            SeenKey::SyncMessage {
                slot,
                validator,
                subnet,
                ..
            } => e
                .sync_messages
                .contains(&(*slot, *validator, *subnet))
                .then_some(AttestationError::SyncMessageAlreadySeen {
                    slot: *slot,
                    validator: *validator,
                    subnet: *subnet,
                }),
        }
    }

    /// The first seen key's refusal, in order.
    pub fn first_seen(&self, keys: &[SeenKey]) -> Option<AttestationError> {
        keys.iter().find_map(|k| self.check(k))
    }

    /// Mark `key` seen (bounded: see [`MAX_SEEN_PER_EPOCH`], [`MAX_BITSETS_PER_KEY`]).
    pub fn mark(&mut self, key: SeenKey) {
        let e = self.epochs.entry(key.epoch()).or_default();
        if e.entries >= MAX_SEEN_PER_EPOCH {
            return;
        }
        e.entries += 1;
        let push_bits = |v: &mut Vec<Vec<bool>>, bits: Vec<bool>| {
            if v.len() < MAX_BITSETS_PER_KEY {
                v.push(bits);
            }
        };
        match key {
            SeenKey::AggregateBits {
                data_root,
                committee,
                bits,
                ..
            } => push_bits(
                e.aggregate_bits.entry((data_root, committee)).or_default(),
                bits,
            ),
            SeenKey::Aggregator { aggregator, .. } => {
                e.aggregators.insert(aggregator);
            }
            SeenKey::Attester { validator, .. } => {
                e.attesters.insert(validator);
            }
            SeenKey::ContributionBits {
                slot,
                block_root,
                subcommittee,
                bits,
                ..
            } => push_bits(
                e.contribution_bits
                    .entry((slot, block_root, subcommittee))
                    .or_default(),
                bits,
            ),
            SeenKey::ContributionAggregator {
                slot,
                aggregator,
                subcommittee,
                ..
            } => {
                e.contribution_aggregators
                    .insert((slot, aggregator, subcommittee));
            }
            SeenKey::SyncMessage {
                slot,
                validator,
                subnet,
                ..
            } => {
                e.sync_messages.insert((slot, validator, subnet));
            }
        }
    }

    /// Forget the epochs before `current_epoch - 1`.
    pub fn prune(&mut self, current_epoch: u64) {
        let keep = current_epoch.saturating_sub(1);
        self.epochs = self.epochs.split_off(&keep);
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.epochs.values().map(|e| e.entries).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---- the published block tree -----------------------------------------------------------

/// Reads a stored block's (slot, parent root) by its root (`None`: not stored).
pub type StoredBlocks<'a> = &'a dyn Fn(&Root) -> Result<Option<(u64, Root)>, String>;

/// A block of the [`BlockTree`]: its slot and parent (`None` for the tree's root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeBlock {
    pub slot: u64,
    pub parent: Option<Root>,
}

/// The fork-choice facts gossip validation reads, published by the chain thread after
/// each import (and after `mark_invalid` / the finality override): the blocks fork choice
/// holds (imported, with a post state), the anchor, the roots refused for their own fault
/// (seen, no post state), and the finalized checkpoint. Blocks below fork choice's root
/// are in the store (imported and finalized).
#[derive(Debug, Clone, Default)]
pub struct BlockTree {
    pub blocks: HashMap<Root, TreeBlock>,
    pub anchor: Root,
    pub anchor_slot: u64,
    pub refused: HashSet<Root>,
    pub finalized: Checkpoint,
}

impl BlockTree {
    /// `get_checkpoint_block(store, root, epoch)` (`get_ancestor` at the epoch's first
    /// slot `start_slot`), walked through the tree and below it through `stored`, which
    /// reads a stored block's (slot, parent). `None`: the walk left the known chain.
    pub fn checkpoint_block(
        &self,
        root: Root,
        start_slot: u64,
        stored: StoredBlocks<'_>,
    ) -> Result<Option<Root>, AttestationError> {
        let mut r = root;
        // Bounded by the chain's length: every step goes to a lower slot.
        loop {
            let (slot, parent) = match self.blocks.get(&r) {
                Some(b) if r == self.anchor => (b.slot, None),
                Some(b) => match b.parent {
                    Some(p) => (b.slot, Some(p)),
                    None => (
                        b.slot,
                        stored(&r)
                            .map_err(AttestationError::Internal)?
                            .map(|(_, p)| p),
                    ),
                },
                None if r == self.anchor => (self.anchor_slot, None),
                None => match stored(&r).map_err(AttestationError::Internal)? {
                    Some((slot, p)) => (slot, Some(p)),
                    None => return Ok(None),
                },
            };
            if slot <= start_slot {
                return Ok(Some(r));
            }
            match parent {
                Some(p) => r = p,
                None => return Ok(None),
            }
        }
    }
}

/// The spec's four block conditions of a vote, in order: the block voted for was seen
/// (IGNORE), passed validation (REJECT), the target is its ancestor at the target epoch
/// (REJECT), and so is the finalized checkpoint (IGNORE). `start_slot` maps an epoch to
/// its first slot; `stored` reads stored blocks (see [`BlockTree::checkpoint_block`]).
pub fn vote_block_checks(
    tree: &BlockTree,
    block_root: Root,
    target: Checkpoint,
    start_slot: impl Fn(u64) -> u64,
    stored: StoredBlocks<'_>,
) -> Result<(), AttestationError> {
    let imported = tree.blocks.contains_key(&block_root)
        || block_root == tree.anchor
        || stored(&block_root)
            .map_err(AttestationError::Internal)?
            .is_some();
    if !imported {
        if tree.refused.contains(&block_root) {
            return Err(AttestationError::BlockFailedValidation { root: block_root });
        }
        return Err(AttestationError::UnknownBlock { root: block_root });
    }
    if tree.checkpoint_block(block_root, start_slot(target.epoch), stored)? != Some(target.root) {
        return Err(AttestationError::TargetNotAncestor {
            epoch: target.epoch,
            root: target.root,
        });
    }
    let finalized = tree.finalized;
    if tree.checkpoint_block(block_root, start_slot(finalized.epoch), stored)?
        != Some(finalized.root)
    {
        return Err(AttestationError::FinalizedNotAncestor {
            epoch: finalized.epoch,
        });
    }
    Ok(())
}

// ---- signature sets ---------------------------------------------------------------------

/// One signature of a message: its signers (validator indices, summed by the
/// aggregator), the signing root and the compressed signature.
#[derive(Debug, Clone)]
pub struct PendingSet {
    /// The spec's name of the check (`"selection proof"` …).
    pub what: &'static str,
    pub signers: Vec<u32>,
    pub signing_root: Root,
    pub signature: [u8; 96],
}

/// A fork-choice vote: (validator, block root, target epoch).
pub type Vote = (u64, Root, u64);

/// What the preset checks found for one message, in the spec's order: the checks before
/// the seen checks, the seen keys, the checks between the seen checks and the signatures,
/// the signature sets, the checks after the signatures; and the votes it casts.
#[derive(Debug, Default)]
pub struct Checked {
    pub early: Option<AttestationError>,
    pub seen: Vec<SeenKey>,
    pub late: Option<AttestationError>,
    pub sets: Vec<PendingSet>,
    pub post: Option<AttestationError>,
    pub votes: Vec<Vote>,
}

impl Checked {
    pub fn failed(e: AttestationError) -> Self {
        Checked {
            early: Some(e),
            ..Checked::default()
        }
    }
}

/// Every validator's key at its index, KeyValidate'd once, for the aggregator: grown from
/// the head state's registry as validators join (a copy-on-grow `Arc`, so a batch reads
/// it without a lock). `compressed` checks a registry against it per index.
#[derive(Default)]
pub struct GossipKeys {
    table: PubkeyTable,
    compressed: Vec<[u8; 48]>,
    unusable: HashSet<u32>,
}

impl GossipKeys {
    pub fn len(&self) -> usize {
        self.compressed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.compressed.is_empty()
    }

    /// These keys plus `fresh` (the registry's keys from `self.len()` on).
    fn extended(&self, fresh: &[[u8; 48]]) -> GossipKeys {
        use rayon::prelude::*;
        let parsed: Vec<Option<blst::blst_p1_affine>> = fresh
            .par_iter()
            .map(|b| parse_pubkey(b).ok().map(blst::blst_p1_affine::from))
            .collect();
        let mut out = GossipKeys {
            table: self.table.clone(),
            compressed: self.compressed.clone(),
            unusable: self.unusable.clone(),
        };
        for (b, p) in fresh.iter().zip(parsed) {
            let i = out.compressed.len() as u32;
            match p {
                Some(p) => out.table.push(p),
                None => {
                    out.unusable.insert(i);
                    out.table.push(blst::blst_p1_affine::default());
                }
            }
            out.compressed.push(*b);
        }
        out
    }

    /// Whether the table's key of validator `i` is `pubkey` (or the table has none).
    pub fn agrees(&self, i: u64, pubkey: &[u8; 48]) -> bool {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.compressed.get(i))
            .is_none_or(|k| k == pubkey)
    }

    /// Whether validator `i` has a usable key equal to `pubkey`.
    pub fn usable(&self, i: u64, pubkey: &[u8; 48]) -> bool {
        u32::try_from(i).is_ok_and(|i| {
            self.compressed.get(i as usize) == Some(pubkey) && !self.unusable.contains(&i)
        })
    }
}

/// Verify `sets` in one batch: one aggregator call for every set's signers, one blst
/// batch, bisected on failure. Per set: `Ok`, or why it failed. `usable` checks a signer
/// (its key in the table equals the state's).
pub fn verify_pending_sets(
    keys: &GossipKeys,
    aggregator: &dyn PubkeyAggregator,
    sets: &[&PendingSet],
) -> Vec<Result<(), String>> {
    use rayon::prelude::*;
    let mut out: Vec<Result<(), String>> = vec![Ok(()); sets.len()];
    let table_len = keys.len();
    // Signatures decompressed and subgroup-checked in parallel.
    let sigs: Vec<Result<blst::min_pk::Signature, String>> = sets
        .par_iter()
        .map(|s| parse_signature(&s.signature).map_err(|e| e.to_string()))
        .collect();
    let mut ready = Vec::new();
    for (i, (s, sig)) in sets.iter().zip(sigs).enumerate() {
        if s.signers.is_empty() {
            out[i] = Err("no signers".into());
            continue;
        }
        if let Some(v) = s
            .signers
            .iter()
            .find(|&&v| v as usize >= table_len || keys.unusable.contains(&v))
        {
            out[i] = Err(format!("validator {v} has no usable pubkey"));
            continue;
        }
        match sig {
            Ok(sig) => ready.push((i, sig)),
            Err(e) => out[i] = Err(e),
        }
    }
    let lists: Vec<&[u32]> = ready
        .iter()
        .map(|(i, _)| sets[*i].signers.as_slice())
        .collect();
    let sums = match aggregator.aggregate(&keys.table, &lists) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%e, "gossip pubkey aggregation failed; the CPU aggregates");
            match CpuAggregator.aggregate(&keys.table, &lists) {
                Ok(s) => s,
                Err(e) => {
                    for (i, _) in &ready {
                        out[*i] = Err(format!("aggregation: {e}"));
                    }
                    return out;
                }
            }
        }
    };
    let mut resolved = Vec::with_capacity(ready.len());
    let mut owners = Vec::with_capacity(ready.len());
    for ((i, sig), p) in ready.into_iter().zip(sums) {
        if quasar_kernels::bls::p1_is_inf(&p) {
            out[i] = Err("aggregate pubkey is the point at infinity".into());
            continue;
        }
        resolved.push(ResolvedSet {
            pubkey: AggregatePublicKey::from(p).to_public_key(),
            signing_root: sets[i].signing_root,
            signature: sig,
        });
        owners.push(i);
    }
    let outcome = verify_each(&resolved);
    for (ok, i) in outcome.valid.into_iter().zip(owners) {
        if !ok {
            out[i] = Err("signature does not verify".into());
        }
    }
    out
}

// ---- the service side -------------------------------------------------------------------

/// What the chain service's gossip validation of these topics owns: the seen-cache, the
/// published block tree, the key table, a transition context (the chain's shuffling
/// cache), the store, the aggregator, and the queue of votes to fork choice.
pub struct AttestationGossip {
    seen: Mutex<Seen>,
    tree: RwLock<Arc<BlockTree>>,
    keys: RwLock<Arc<GossipKeys>>,
    ctx: TransitionCtx,
    store: Arc<Store>,
    aggregator: Box<dyn PubkeyAggregator>,
    slot_duration_ms: u64,
    votes: SyncSender<Vec<Vote>>,
    stats: GossipStats,
}

/// Counters of [`AttestationGossip`].
#[derive(Debug, Default)]
pub struct GossipStats {
    /// Messages validated.
    pub messages: AtomicU64,
    /// Accepted.
    pub accepted: AtomicU64,
    /// Batch verifications run.
    pub batches: AtomicU64,
    /// Signature sets verified.
    pub sets: AtomicU64,
    /// Vote batches dropped because fork choice's queue was full.
    pub votes_dropped: AtomicU64,
}

impl AttestationGossip {
    /// A new validator; the receiver is the chain thread's end of the vote queue.
    pub fn new(
        ctx: TransitionCtx,
        store: Arc<Store>,
        slot_duration_ms: u64,
        tree: BlockTree,
    ) -> (Self, Receiver<Vec<Vote>>) {
        let (votes, rx) = std::sync::mpsc::sync_channel(VOTE_QUEUE);
        (
            AttestationGossip {
                seen: Mutex::new(Seen::default()),
                tree: RwLock::new(Arc::new(tree)),
                keys: RwLock::new(Arc::new(GossipKeys::default())),
                ctx,
                store,
                aggregator: Box::new(CpuAggregator),
                slot_duration_ms,
                votes,
                stats: GossipStats::default(),
            },
            rx,
        )
    }

    /// Publish a new block tree (the chain thread, after an import).
    pub fn publish_tree(&self, tree: BlockTree) {
        *self.tree.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tree);
    }

    pub fn tree(&self) -> Arc<BlockTree> {
        self.tree.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn stats(&self) -> &GossipStats {
        &self.stats
    }

    pub fn seen_len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn slot_duration_ms(&self) -> u64 {
        self.slot_duration_ms
    }

    pub fn ctx(&self) -> &TransitionCtx {
        &self.ctx
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The key table, grown to the registry `pubkeys` reads (`count` validators).
    pub fn keys_for(&self, count: usize, pubkey: impl Fn(usize) -> [u8; 48]) -> Arc<GossipKeys> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        if keys.len() >= count {
            return keys;
        }
        let mut w = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if w.len() < count {
            let fresh: Vec<[u8; 48]> = (w.len()..count).map(pubkey).collect();
            *w = Arc::new(w.extended(&fresh));
        }
        w.clone()
    }

    /// Validate a batch of messages against the head: the spec's verdict of each, in
    /// order, with every signature of the batch in one verification.
    pub fn validate_batch(
        &self,
        head: &HeadSnapshot,
        msgs: &[GossipMessage],
    ) -> Vec<GossipVerdict> {
        if msgs.is_empty() {
            return Vec::new();
        }
        let tree = self.tree();
        let (checked, keys, current_epoch) = match &head.state {
            AnyState::Minimal(s) => super::minimal::gossip_att::check_batch(s, self, &tree, msgs),
            AnyState::Mainnet(s) => super::mainnet::gossip_att::check_batch(s, self, &tree, msgs),
        };
        self.finish(checked, &keys, current_epoch)
    }

    fn finish(
        &self,
        checked: Vec<Checked>,
        keys: &GossipKeys,
        current_epoch: u64,
    ) -> Vec<GossipVerdict> {
        self.stats
            .messages
            .fetch_add(checked.len() as u64, Ordering::Relaxed);
        // Messages worth their signature work: nothing failed before them, not seen.
        let needs_sigs: Vec<bool> = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            checked
                .iter()
                .map(|c| {
                    c.early.is_none() && c.late.is_none() && seen.first_seen(&c.seen).is_none()
                })
                .collect()
        };
        let mut refs = Vec::new();
        let mut owner = Vec::new();
        for (m, c) in checked.iter().enumerate() {
            if needs_sigs[m] {
                for s in &c.sets {
                    refs.push(s);
                    owner.push(m);
                }
            }
        }
        let results = if refs.is_empty() {
            Vec::new()
        } else {
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.stats
                .sets
                .fetch_add(refs.len() as u64, Ordering::Relaxed);
            verify_pending_sets(keys, self.aggregator.as_ref(), &refs)
        };
        // The first failed set of each message (sets are in the spec's order).
        let mut bad_sig: Vec<Option<AttestationError>> = vec![None; checked.len()];
        for ((r, &m), s) in results.into_iter().zip(&owner).zip(&refs) {
            if let Err(reason) = r {
                if bad_sig[m].is_none() {
                    bad_sig[m] = Some(AttestationError::InvalidSignature {
                        set: s.what,
                        reason,
                    });
                }
            }
        }
        let mut verdicts = Vec::with_capacity(checked.len());
        let mut votes = Vec::new();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.prune(current_epoch);
            for (c, sig) in checked.into_iter().zip(bad_sig) {
                let error = c
                    .early
                    .or_else(|| seen.first_seen(&c.seen))
                    .or(c.late)
                    .or(sig)
                    .or(c.post);
                match error {
                    Some(e) => verdicts.push(refused(e)),
                    None => {
                        for k in c.seen {
                            seen.mark(k);
                        }
                        votes.extend(c.votes);
                        verdicts.push(GossipVerdict::Accept);
                    }
                }
            }
        }
        let accepted = verdicts
            .iter()
            .filter(|v| matches!(v, GossipVerdict::Accept))
            .count();
        self.stats
            .accepted
            .fetch_add(accepted as u64, Ordering::Relaxed);
        if !votes.is_empty() {
            match self.votes.try_send(votes) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.stats.votes_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        verdicts
    }
}

/// The verdict of a refused message: REJECT when the sender is at fault, IGNORE otherwise.
pub fn refused(e: AttestationError) -> GossipVerdict {
    GossipVerdict::refused(super::error::BlockError::Attestation(e))
}

// ---- timing helpers (the spec's, in ms since genesis) -------------------------------------

/// `MAXIMUM_GOSSIP_CLOCK_DISPARITY` in ms.
const DISPARITY_MS: u64 = super::service::MAXIMUM_GOSSIP_CLOCK_DISPARITY_MS;

/// `is_within_slot_range(store, slot, slot_range, now)`.
pub fn is_within_slot_range(slot: u64, slot_range: u64, now_ms: u64, slot_ms: u64) -> bool {
    let start = slot.saturating_mul(slot_ms);
    if now_ms.saturating_add(DISPARITY_MS) < start {
        return false;
    }
    let end = slot
        .saturating_add(slot_range)
        .saturating_add(1)
        .saturating_mul(slot_ms);
    end.saturating_add(DISPARITY_MS) >= now_ms
}

/// `is_future_slot(store, slot, now)`.
pub fn is_future_slot(slot: u64, now_ms: u64, slot_ms: u64) -> bool {
    now_ms.saturating_add(DISPARITY_MS) < slot.saturating_mul(slot_ms)
}

/// `is_current_or_previous_epoch(store, epoch, now)` (`is_within_epoch` of the epoch or
/// the next).
pub fn is_current_or_previous_epoch(
    epoch: u64,
    now_ms: u64,
    slot_ms: u64,
    slots_per_epoch: u64,
) -> bool {
    let within = |e: u64| {
        is_within_slot_range(
            e.saturating_mul(slots_per_epoch),
            slots_per_epoch - 1,
            now_ms,
            slot_ms,
        )
    };
    within(epoch) || within(epoch.saturating_add(1))
}

/// `compute_subnet_for_attestation(committees_per_slot, slot, committee_index)`.
pub fn compute_subnet_for_attestation(
    committees_per_slot: u64,
    slot: u64,
    committee_index: u64,
    slots_per_epoch: u64,
) -> u64 {
    let since_epoch_start = slot % slots_per_epoch;
    committees_per_slot
        .wrapping_mul(since_epoch_start)
        .wrapping_add(committee_index)
        % ATTESTATION_SUBNET_COUNT
}

/// `bytes_to_uint64(hash(signature)[0:8]) % modulo == 0` (`is_aggregator`,
/// `is_sync_committee_aggregator`).
pub fn selects_aggregator(signature: &[u8; 96], modulo: u64) -> bool {
    let h = crate::transition::math::hash(&[signature]);
    crate::transition::math::bytes_to_uint64(&h[..8]) % modulo.max(1) == 0
}

// ---- subnet subscriptions ---------------------------------------------------------------

/// `compute_subscribed_subnets(node_id, epoch)`: the `SUBNETS_PER_NODE` long-lived
/// attestation subnets of a node (`node_id`: the uint256 as 32 little-endian bytes).
/// The preset sets `compute_shuffled_index`'s `SHUFFLE_ROUND_COUNT`.
pub fn compute_subscribed_subnets(
    preset: crate::types::Preset,
    node_id: &[u8; 32],
    epoch: u64,
) -> Vec<u64> {
    // Every index shares the permutated prefix: computed once.
    let first = compute_subscribed_subnet(preset, node_id, epoch, 0);
    (0..SUBNETS_PER_NODE)
        .map(|i| (first + i) % ATTESTATION_SUBNET_COUNT)
        .collect()
}

/// `compute_subscribed_subnet(node_id, epoch, index)`.
pub fn compute_subscribed_subnet(
    preset: crate::types::Preset,
    node_id: &[u8; 32],
    epoch: u64,
    index: u64,
) -> u64 {
    // ceillog2(ATTESTATION_SUBNET_COUNT) + ATTESTATION_SUBNET_EXTRA_BITS
    let prefix_bits = (64 - (ATTESTATION_SUBNET_COUNT - 1).leading_zeros()) as u64
        + ATTESTATION_SUBNET_EXTRA_BITS;
    // node_id >> (256 - prefix_bits): the top bits, from the most significant byte (le[31]).
    let top = u64::from_be_bytes([
        node_id[31],
        node_id[30],
        node_id[29],
        node_id[28],
        node_id[27],
        node_id[26],
        node_id[25],
        node_id[24],
    ]);
    let node_id_prefix = if prefix_bits == 0 {
        0
    } else {
        top >> (64 - prefix_bits)
    };
    // node_id % EPOCHS_PER_SUBNET_SUBSCRIPTION (a power of two: the low bits).
    let low = u64::from_le_bytes(node_id[..8].try_into().unwrap_or([0; 8]));
    let node_offset = low % EPOCHS_PER_SUBNET_SUBSCRIPTION;
    let seed = crate::transition::math::hash(&[&(epoch.saturating_add(node_offset)
        / EPOCHS_PER_SUBNET_SUBSCRIPTION)
        .to_le_bytes()]);
    let count = 1u64 << prefix_bits;
    let permutated = match preset {
        crate::types::Preset::Minimal => {
            crate::transition::minimal::compute_shuffled_index(node_id_prefix, count, &seed)
        }
        crate::types::Preset::Mainnet => {
            crate::transition::mainnet::compute_shuffled_index(node_id_prefix, count, &seed)
        }
    }
    .unwrap_or(node_id_prefix);
    (permutated + index) % ATTESTATION_SUBNET_COUNT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_keys_follow_the_spec() {
        let mut s = Seen::default();
        let bits = |b: &[u8]| b.iter().map(|&x| x == 1).collect::<Vec<_>>();
        let k = |b: &[u8]| SeenKey::AggregateBits {
            epoch: 3,
            data_root: [1; 32],
            committee: 0,
            bits: bits(b),
        };
        assert!(s.check(&k(&[1, 0, 1])).is_none());
        s.mark(k(&[1, 0, 1]));
        assert_eq!(
            s.check(&k(&[1, 0, 0])),
            Some(AttestationError::AggregateAlreadySeen)
        );
        assert_eq!(
            s.check(&k(&[1, 0, 1])),
            Some(AttestationError::AggregateAlreadySeen)
        );
        assert!(s.check(&k(&[0, 1, 0])).is_none(), "not a subset");
        let a = SeenKey::Aggregator {
            epoch: 3,
            aggregator: 7,
        };
        s.mark(a.clone());
        assert!(s
            .check(&SeenKey::Aggregator {
                epoch: 4,
                aggregator: 7
            })
            .is_none());
        assert!(s.check(&a).is_some());
        s.prune(5);
        assert!(s.check(&a).is_none(), "epoch 3 is forgotten at epoch 5");
        assert!(s.is_empty());
    }

    #[test]
    fn faults_are_the_spec_verdicts() {
        assert_eq!(
            AttestationError::AggregateAlreadySeen.fault(),
            Fault::Nobody
        );
        assert_eq!(
            AttestationError::UnknownBlock { root: [0; 32] }.fault(),
            Fault::Nobody
        );
        assert_eq!(
            AttestationError::BlockFailedValidation { root: [0; 32] }.fault(),
            Fault::Peer
        );
        assert_eq!(AttestationError::NoParticipants.fault(), Fault::Peer);
        assert_eq!(AttestationError::Internal("x".into()).fault(), Fault::Node);
    }

    #[test]
    fn slot_windows() {
        // 6 s slots: slot 1 starts at 6000 ms.
        assert!(is_future_slot(1, 5499, 6000));
        assert!(!is_future_slot(1, 5500, 6000));
        assert!(is_within_slot_range(1, 0, 12_500, 6000));
        assert!(!is_within_slot_range(1, 0, 12_501, 6000));
        assert_eq!(compute_subnet_for_attestation(4, 9, 3, 8), 7);
    }

    #[test]
    fn subscribed_subnets_are_two_consecutive_subnets() {
        let id = [0x5a; 32];
        let p = crate::types::Preset::Mainnet;
        let s = compute_subscribed_subnets(p, &id, 0);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|&x| x < ATTESTATION_SUBNET_COUNT));
        assert_eq!(s[1], (s[0] + 1) % ATTESTATION_SUBNET_COUNT);
        // Stable within a subscription period of the node's offset.
        let offset = u64::from_le_bytes(id[..8].try_into().unwrap()) % 256;
        let start = 256 - offset;
        assert_eq!(
            compute_subscribed_subnets(p, &id, start),
            compute_subscribed_subnets(p, &id, start + 255)
        );
    }
}
