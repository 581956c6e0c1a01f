//! `hash_tree_root(BeaconState)` through the [`BatchHasher`], cold ([`state_root`]) and
//! cached ([`CachedStateRoot`]), for both presets; bit for bit the root `ssz_rs` gives.
//!
//! The state's 38 fields split in two:
//! - the big lists and vectors (validators, balances, participation, inactivity scores,
//!   randao mixes, block and state roots, historical roots and summaries, slashings, the
//!   pending deposits, partial withdrawals and consolidations) go through the hasher: the
//!   elements' roots in big batches (all validators' field chunks side by side, reduced
//!   level by level with `hash_pairs`, see `elements`), then the list's tree with
//!   `merkleize` (one GPU submission when the backend picks the GPU);
//! - the small fields (checkpoints, sync committees, the payload header, …) through
//!   `ssz_rs`, each remembered by its encoding so the cache rehashes it only on change.
//!
//! [`CachedStateRoot`] keeps every level of the big fields' trees (see `tree`) and a copy
//! of their container elements. An update compares the state's leaves with the cached
//! ones (packing and comparing is cheap next to hashing), rehashes only the changed
//! elements and the dirty paths, one batch per tree level across all lists, and returns
//! the new root. A [`Dirty`] hint can name the validators that may have changed, which
//! skips comparing the whole registry.

use rayon::prelude::*;
use ssz_rs::SimpleSerialize;

use super::elements::{element_roots, element_roots_at, BatchRoots};
use super::tree::{pad_natural, rehash, LeafTree};
use super::{merkleize, mix_in_length, pack, Chunk, MerkleError};
use crate::accel::hash::BatchHasher;
use crate::accel::resident::{ResidentTrees, TreeUpdate};
use crate::types::common::{
    HistoricalSummary, PendingConsolidation, PendingDeposit, PendingPartialWithdrawal, Validator,
};
use crate::types::primitives::{
    Bytes32, Root, HISTORICAL_ROOTS_LIMIT, PENDING_DEPOSITS_LIMIT, VALIDATOR_REGISTRY_LIMIT,
};
use crate::types::ssz::{hash_tree_root, ssz_encode};

/// Fields of the Fulu `BeaconState`.
pub const STATE_FIELDS: usize = 38;
/// Fields hashed through the batch hasher (see [`BIG_POSITIONS`]).
pub const BIG_FIELDS: usize = 14;
/// Fields hashed through `ssz_rs`.
pub const SMALL_FIELDS: usize = STATE_FIELDS - BIG_FIELDS;

/// Positions in the state of the big fields, in the order of the `BIG_*` indices.
const BIG_POSITIONS: [usize; BIG_FIELDS] = [5, 6, 7, 11, 12, 13, 14, 15, 16, 21, 27, 34, 35, 36];

const BLOCK_ROOTS: usize = 0;
const STATE_ROOTS: usize = 1;
const HISTORICAL_ROOTS: usize = 2;
const VALIDATORS: usize = 3;
const BALANCES: usize = 4;
const RANDAO_MIXES: usize = 5;
const SLASHINGS: usize = 6;
const PREVIOUS_PARTICIPATION: usize = 7;
const CURRENT_PARTICIPATION: usize = 8;
const INACTIVITY_SCORES: usize = 9;
const HISTORICAL_SUMMARIES: usize = 10;
const PENDING_DEPOSITS: usize = 11;
const PENDING_PARTIAL_WITHDRAWALS: usize = 12;
const PENDING_CONSOLIDATIONS: usize = 13;

/// The big fields whose leaves are the field's own chunks (no element roots).
const LEAF_FIELDS: [usize; 9] = [
    BLOCK_ROOTS,
    STATE_ROOTS,
    HISTORICAL_ROOTS,
    BALANCES,
    RANDAO_MIXES,
    SLASHINGS,
    PREVIOUS_PARTICIPATION,
    CURRENT_PARTICIPATION,
    INACTIVITY_SCORES,
];

/// Below this many elements a diff runs on the calling thread.
const PAR_DIFF: usize = 1 << 14;

#[derive(Debug, thiserror::Error)]
pub enum StateRootError {
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    #[error("BeaconState.{field}: {message}")]
    Ssz {
        field: &'static str,
        message: String,
    },
}

/// The big fields of a state, borrowed, with the bounds that differ between presets.
pub struct StateLists<'a> {
    pub block_roots: &'a [Root],
    pub state_roots: &'a [Root],
    pub historical_roots: &'a [Root],
    pub validators: &'a [Validator],
    pub balances: &'a [u64],
    pub randao_mixes: &'a [Bytes32],
    pub slashings: &'a [u64],
    pub previous_epoch_participation: &'a [u8],
    pub current_epoch_participation: &'a [u8],
    pub inactivity_scores: &'a [u64],
    pub historical_summaries: &'a [HistoricalSummary],
    pub pending_deposits: &'a [PendingDeposit],
    pub pending_partial_withdrawals: &'a [PendingPartialWithdrawal],
    pub pending_consolidations: &'a [PendingConsolidation],
    pub pending_partial_withdrawals_limit: u64,
    pub pending_consolidations_limit: u64,
}

impl StateLists<'_> {
    /// For each big field: the chunk limit of its tree and, for lists, the length mixed in.
    fn shapes(&self) -> [(u64, Option<u64>); BIG_FIELDS] {
        let len = |n: usize| Some(n as u64);
        let vrl = VALIDATOR_REGISTRY_LIMIT as u64;
        let hrl = HISTORICAL_ROOTS_LIMIT as u64;
        [
            (self.block_roots.len() as u64, None),
            (self.state_roots.len() as u64, None),
            (hrl, len(self.historical_roots.len())),
            (vrl, len(self.validators.len())),
            (vrl / 4, len(self.balances.len())),
            (self.randao_mixes.len() as u64, None),
            (self.slashings.len().div_ceil(4) as u64, None),
            (vrl / 32, len(self.previous_epoch_participation.len())),
            (vrl / 32, len(self.current_epoch_participation.len())),
            (vrl / 4, len(self.inactivity_scores.len())),
            (hrl, len(self.historical_summaries.len())),
            (
                PENDING_DEPOSITS_LIMIT as u64,
                len(self.pending_deposits.len()),
            ),
            (
                self.pending_partial_withdrawals_limit,
                len(self.pending_partial_withdrawals.len()),
            ),
            (
                self.pending_consolidations_limit,
                len(self.pending_consolidations.len()),
            ),
        ]
    }

    /// Diff one of the [`LEAF_FIELDS`] against `tree`'s leaves in place (no copy of the
    /// field's chunks): the dirty leaf indices.
    fn diff_leaf_field(&self, field: usize, tree: &mut LeafTree) -> Vec<usize> {
        fn roots(tree: &mut LeafTree, r: &[Bytes32]) -> Vec<usize> {
            tree.diff_leaves_by(r.len(), |i| r[i].0)
        }
        fn packed_u64(tree: &mut LeafTree, v: &[u64]) -> Vec<usize> {
            tree.diff_leaves_by(v.len().div_ceil(4), |i| {
                let mut c = [0u8; 32];
                for (k, x) in v[4 * i..(4 * i + 4).min(v.len())].iter().enumerate() {
                    c[8 * k..8 * k + 8].copy_from_slice(&x.to_le_bytes());
                }
                c
            })
        }
        fn packed_u8(tree: &mut LeafTree, v: &[u8]) -> Vec<usize> {
            tree.diff_leaves_by(v.len().div_ceil(32), |i| {
                let mut c = [0u8; 32];
                let part = &v[32 * i..(32 * i + 32).min(v.len())];
                c[..part.len()].copy_from_slice(part);
                c
            })
        }
        match field {
            BLOCK_ROOTS => roots(tree, self.block_roots),
            STATE_ROOTS => roots(tree, self.state_roots),
            HISTORICAL_ROOTS => roots(tree, self.historical_roots),
            BALANCES => packed_u64(tree, self.balances),
            RANDAO_MIXES => roots(tree, self.randao_mixes),
            SLASHINGS => packed_u64(tree, self.slashings),
            PREVIOUS_PARTICIPATION => packed_u8(tree, self.previous_epoch_participation),
            CURRENT_PARTICIPATION => packed_u8(tree, self.current_epoch_participation),
            INACTIVITY_SCORES => packed_u64(tree, self.inactivity_scores),
            _ => unreachable!("field {field} is not a leaf field"),
        }
    }

    /// The leaf chunks of one of the [`LEAF_FIELDS`].
    fn leaf_chunks(&self, field: usize) -> Vec<Chunk> {
        let roots = |r: &[Bytes32]| r.iter().map(|x| x.0).collect::<Vec<Chunk>>();
        match field {
            BLOCK_ROOTS => roots(self.block_roots),
            STATE_ROOTS => roots(self.state_roots),
            HISTORICAL_ROOTS => roots(self.historical_roots),
            BALANCES => pack(self.balances),
            RANDAO_MIXES => roots(self.randao_mixes),
            SLASHINGS => pack(self.slashings),
            PREVIOUS_PARTICIPATION => pack(self.previous_epoch_participation),
            CURRENT_PARTICIPATION => pack(self.current_epoch_participation),
            INACTIVITY_SCORES => pack(self.inactivity_scores),
            _ => unreachable!("field {field} is not a leaf field"),
        }
    }
}

/// Roots of the small fields, each remembered with the encoding it was computed from.
#[derive(Clone, Debug, Default)]
pub struct SmallRoots {
    entries: Vec<Option<(Vec<u8>, Chunk)>>,
}

impl SmallRoots {
    /// The root of small field number `i` (`name` for errors): the remembered one when
    /// the value encodes as before, else computed by `ssz_rs`.
    pub fn root_of<T: SimpleSerialize + Clone>(
        &mut self,
        i: usize,
        name: &'static str,
        value: &T,
    ) -> Result<Chunk, StateRootError> {
        let err = |message: String| StateRootError::Ssz {
            field: name,
            message,
        };
        let enc = ssz_encode(value).map_err(|e| err(e.to_string()))?;
        if self.entries.len() <= i {
            self.entries.resize(i + 1, None);
        }
        if let Some((old, root)) = &self.entries[i] {
            if *old == enc {
                return Ok(*root);
            }
        }
        let root = hash_tree_root(&mut value.clone()).map_err(|e| err(e.to_string()))?;
        self.entries[i] = Some((enc, root));
        Ok(root)
    }
}

/// A `BeaconState` of either preset, as the state root sees it.
pub trait StateRootFields: Sync {
    /// The big fields.
    fn lists(&self) -> StateLists<'_>;
    /// The roots of the other fields, in state order, through (and into) `cache`.
    fn small_roots(&self, cache: &mut SmallRoots) -> Result<[Chunk; SMALL_FIELDS], StateRootError>;
}

macro_rules! small_roots {
    ($self:ident, $cache:ident, $($field:ident),* $(,)?) => {{
        let mut out = [[0u8; 32]; SMALL_FIELDS];
        let mut i = 0;
        $(
            out[i] = $cache.root_of(i, stringify!($field), &$self.$field)?;
            i += 1;
        )*
        debug_assert_eq!(i, SMALL_FIELDS);
        out
    }};
}

macro_rules! impl_state_root_fields {
    ($preset:ident) => {
        impl StateRootFields for crate::types::$preset::BeaconState {
            fn lists(&self) -> StateLists<'_> {
                StateLists {
                    block_roots: &self.block_roots[..],
                    state_roots: &self.state_roots[..],
                    historical_roots: &self.historical_roots[..],
                    validators: &self.validators[..],
                    balances: &self.balances[..],
                    randao_mixes: &self.randao_mixes[..],
                    slashings: &self.slashings[..],
                    previous_epoch_participation: &self.previous_epoch_participation[..],
                    current_epoch_participation: &self.current_epoch_participation[..],
                    inactivity_scores: &self.inactivity_scores[..],
                    historical_summaries: &self.historical_summaries[..],
                    pending_deposits: &self.pending_deposits[..],
                    pending_partial_withdrawals: &self.pending_partial_withdrawals[..],
                    pending_consolidations: &self.pending_consolidations[..],
                    pending_partial_withdrawals_limit:
                        crate::types::$preset::PENDING_PARTIAL_WITHDRAWALS_LIMIT as u64,
                    pending_consolidations_limit:
                        crate::types::$preset::PENDING_CONSOLIDATIONS_LIMIT as u64,
                }
            }

            fn small_roots(
                &self,
                cache: &mut SmallRoots,
            ) -> Result<[Chunk; SMALL_FIELDS], StateRootError> {
                Ok(small_roots!(
                    self,
                    cache,
                    genesis_time,
                    genesis_validators_root,
                    slot,
                    fork,
                    latest_block_header,
                    eth1_data,
                    eth1_data_votes,
                    eth1_deposit_index,
                    justification_bits,
                    previous_justified_checkpoint,
                    current_justified_checkpoint,
                    finalized_checkpoint,
                    current_sync_committee,
                    next_sync_committee,
                    latest_execution_payload_header,
                    next_withdrawal_index,
                    next_withdrawal_validator_index,
                    deposit_requests_start_index,
                    deposit_balance_to_consume,
                    exit_balance_to_consume,
                    earliest_exit_epoch,
                    consolidation_balance_to_consume,
                    earliest_consolidation_epoch,
                    proposer_lookahead,
                ))
            }
        }
    };
}

impl_state_root_fields!(minimal);
impl_state_root_fields!(mainnet);

/// The state root from the big fields' roots and the small fields' roots.
fn assemble(
    hasher: &dyn BatchHasher,
    big: &[Chunk; BIG_FIELDS],
    small: &[Chunk; SMALL_FIELDS],
) -> Result<Chunk, StateRootError> {
    let mut fields = [[0u8; 32]; STATE_FIELDS];
    let mut small_iter = small.iter();
    let mut big_i = 0;
    for (pos, f) in fields.iter_mut().enumerate() {
        if big_i < BIG_FIELDS && BIG_POSITIONS[big_i] == pos {
            *f = big[big_i];
            big_i += 1;
        } else if let Some(s) = small_iter.next() {
            *f = *s;
        }
    }
    Ok(merkleize(hasher, &fields, None)?)
}

fn finish(root: Chunk, length: Option<u64>) -> Chunk {
    match length {
        Some(n) => mix_in_length(&root, n),
        None => root,
    }
}

/// `hash_tree_root(state)`, every big field through `hasher` (the GPU when it picks the
/// GPU), from scratch.
pub fn state_root<S: StateRootFields + ?Sized>(
    hasher: &dyn BatchHasher,
    state: &S,
) -> Result<Chunk, StateRootError> {
    let l = state.lists();
    let shapes = l.shapes();
    let mut big = [[0u8; 32]; BIG_FIELDS];
    for (i, root) in big.iter_mut().enumerate() {
        let leaves = match i {
            VALIDATORS => element_roots(hasher, l.validators)?,
            HISTORICAL_SUMMARIES => element_roots(hasher, l.historical_summaries)?,
            PENDING_DEPOSITS => element_roots(hasher, l.pending_deposits)?,
            PENDING_PARTIAL_WITHDRAWALS => element_roots(hasher, l.pending_partial_withdrawals)?,
            PENDING_CONSOLIDATIONS => element_roots(hasher, l.pending_consolidations)?,
            _ => l.leaf_chunks(i),
        };
        let (limit, length) = shapes[i];
        *root = finish(merkleize(hasher, &leaves, Some(limit))?, length);
    }
    let small = state.small_roots(&mut SmallRoots::default())?;
    assemble(hasher, &big, &small)
}

/// What may have changed since the last update; the default, "anything", compares every
/// field with the cache.
#[derive(Clone, Debug, Default)]
pub struct Dirty {
    /// `Some(indices)`: only these validators (and any appended or removed at the end)
    /// may have changed, so only they are compared. A validator changed but not named
    /// here keeps its old root: the caller vouches for the list.
    pub validators: Option<Vec<usize>>,
}

/// A state root that remembers the big fields' trees and rehashes only what changed.
///
/// The trees' upper levels live on the host (in `trees`, rehashed through the hasher) or,
/// with [`with_resident`](Self::with_resident), in device memory ([`ResidentTrees`]: only
/// the changed leaves go up, the device rehashes the dirty paths of all fourteen trees in
/// one submission, fourteen roots come back); the host then keeps only the leaves. Both
/// are given the same dirty sets and give the same root (`tests/it/state_root.rs`). A
/// device failure drops the device trees and rebuilds the levels on the host, once.
#[derive(Debug)]
pub struct CachedStateRoot {
    trees: [LeafTree; BIG_FIELDS],
    validators: Vec<Validator>,
    historical_summaries: Vec<HistoricalSummary>,
    pending_deposits: Vec<PendingDeposit>,
    pending_partial_withdrawals: Vec<PendingPartialWithdrawal>,
    pending_consolidations: Vec<PendingConsolidation>,
    small: SmallRoots,
    root: Option<Chunk>,
    /// The trees' levels on the device, when resident.
    resident: Option<ResidentTrees>,
    /// Whether `trees` hold current upper levels (not while resident, nor in a clone of a
    /// resident cache): when not, the next host rehash rebuilds every level.
    host_levels: bool,
}

impl Default for CachedStateRoot {
    fn default() -> Self {
        CachedStateRoot {
            trees: Default::default(),
            validators: Vec::new(),
            historical_summaries: Vec::new(),
            pending_deposits: Vec::new(),
            pending_partial_withdrawals: Vec::new(),
            pending_consolidations: Vec::new(),
            small: SmallRoots::default(),
            root: None,
            resident: None,
            host_levels: true,
        }
    }
}

/// A clone keeps the leaves and element copies but not the device trees (a device buffer
/// has one owner): a clone of a resident cache rebuilds its levels on the host when first
/// updated.
impl Clone for CachedStateRoot {
    fn clone(&self) -> Self {
        CachedStateRoot {
            trees: self.trees.clone(),
            validators: self.validators.clone(),
            historical_summaries: self.historical_summaries.clone(),
            pending_deposits: self.pending_deposits.clone(),
            pending_partial_withdrawals: self.pending_partial_withdrawals.clone(),
            pending_consolidations: self.pending_consolidations.clone(),
            small: self.small.clone(),
            root: self.root,
            resident: None,
            host_levels: self.host_levels && self.resident.is_none(),
        }
    }
}

/// Compares `new` with the cached copy (only at `hint`'s indices when given), recomputes
/// the changed and appended elements' roots in one batch, and sets them as the tree's
/// leaves; returns the tree's dirty leaves.
fn diff_elements<T: BatchRoots>(
    hasher: &dyn BatchHasher,
    copy: &mut Vec<T>,
    tree: &mut LeafTree,
    new: &[T],
    hint: Option<&[usize]>,
) -> Result<Vec<usize>, StateRootError> {
    let common = copy.len().min(new.len());
    let mut indices: Vec<usize> = match hint {
        Some(hint) => {
            let mut v: Vec<usize> = hint
                .iter()
                .copied()
                .filter(|&i| i < common && copy[i] != new[i])
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
        None if common >= PAR_DIFF => (0..common)
            .into_par_iter()
            .filter(|&i| copy[i] != new[i])
            .collect(),
        None => (0..common).filter(|&i| copy[i] != new[i]).collect(),
    };
    for &i in &indices {
        copy[i] = new[i].clone();
    }
    copy.truncate(new.len());
    copy.extend_from_slice(&new[common..]);
    indices.extend(common..new.len());
    let roots = element_roots_at(hasher, new, &indices)?;
    Ok(tree.set_leaves(new.len(), &indices, &roots))
}

impl CachedStateRoot {
    /// A cache built from `state` (as costly as a cold root, plus keeping the levels).
    pub fn new<S: StateRootFields + ?Sized>(
        hasher: &dyn BatchHasher,
        state: &S,
    ) -> Result<Self, StateRootError> {
        let mut cache = Self::default();
        cache.update(hasher, state)?;
        Ok(cache)
    }

    /// The root of the last update, if any.
    pub fn root(&self) -> Option<Chunk> {
        self.root
    }

    /// This cache with its trees' levels on the device from the next update on (which
    /// uploads every leaf once); the host keeps only the leaves.
    pub fn with_resident(mut self, resident: ResidentTrees) -> Self {
        self.set_resident(Some(resident));
        self
    }

    /// Moves the trees' levels to the device (`Some`) or back to the host (`None`, the
    /// next update rebuilds them there).
    pub fn set_resident(&mut self, resident: Option<ResidentTrees>) {
        if let Some(mut r) = resident {
            r.reset();
            for t in &mut self.trees {
                t.drop_upper_levels();
            }
            self.resident = Some(r);
        } else if self.resident.take().is_some() {
            self.host_levels = false;
        }
        if self.resident.is_some() {
            self.host_levels = false;
        }
    }

    /// The device trees, when resident.
    pub fn resident(&self) -> Option<&ResidentTrees> {
        self.resident.as_ref()
    }

    /// Takes the device trees out (the host rebuilds its levels on the next update).
    pub fn take_resident(&mut self) -> Option<ResidentTrees> {
        let r = self.resident.take();
        if r.is_some() {
            self.host_levels = false;
        }
        r
    }

    /// The natural roots of the trees after `dirty` changed, on the device when resident
    /// (falling back to the host, for good, on a device failure), else on the host.
    fn rehash_trees(
        &mut self,
        hasher: &dyn BatchHasher,
        mut dirty: Vec<Vec<usize>>,
    ) -> Result<[Chunk; BIG_FIELDS], StateRootError> {
        if let Some(resident) = self.resident.as_mut() {
            let updates: Vec<TreeUpdate<'_>> = self
                .trees
                .iter()
                .zip(&dirty)
                .map(|(t, d)| TreeUpdate {
                    leaves: t.leaves(),
                    dirty: d,
                })
                .collect();
            match resident.update(&updates) {
                Ok(roots) => {
                    let mut out = [[0u8; 32]; BIG_FIELDS];
                    out.copy_from_slice(&roots);
                    return Ok(out);
                }
                Err(e) => {
                    tracing::warn!(
                        "state root: the resident GPU trees failed ({e}); rebuilding them on the CPU"
                    );
                    self.resident = None;
                    self.host_levels = false;
                }
            }
        }
        if !self.host_levels {
            for (t, d) in self.trees.iter().zip(dirty.iter_mut()) {
                *d = (0..t.leaves().len()).collect();
            }
        }
        {
            let mut trees: Vec<&mut LeafTree> = self.trees.iter_mut().collect();
            rehash(hasher, &mut trees, dirty)?;
        }
        self.host_levels = true;
        let mut out = [[0u8; 32]; BIG_FIELDS];
        for (o, t) in out.iter_mut().zip(&self.trees) {
            *o = t.natural_root();
        }
        Ok(out)
    }

    /// The root of `state`, comparing every field with the cache and rehashing only the
    /// changed elements and dirty paths.
    pub fn update<S: StateRootFields + ?Sized>(
        &mut self,
        hasher: &dyn BatchHasher,
        state: &S,
    ) -> Result<Chunk, StateRootError> {
        self.update_with(hasher, state, &Dirty::default())
    }

    /// Like [`update`](Self::update), comparing only what `dirty` says may have changed.
    pub fn update_with<S: StateRootFields + ?Sized>(
        &mut self,
        hasher: &dyn BatchHasher,
        state: &S,
        dirty: &Dirty,
    ) -> Result<Chunk, StateRootError> {
        let l = state.lists();
        let shapes = l.shapes();
        let mut dirty_leaves: Vec<Vec<usize>> = vec![Vec::new(); BIG_FIELDS];
        for f in LEAF_FIELDS {
            dirty_leaves[f] = l.diff_leaf_field(f, &mut self.trees[f]);
        }
        dirty_leaves[VALIDATORS] = diff_elements(
            hasher,
            &mut self.validators,
            &mut self.trees[VALIDATORS],
            l.validators,
            dirty.validators.as_deref(),
        )?;
        dirty_leaves[HISTORICAL_SUMMARIES] = diff_elements(
            hasher,
            &mut self.historical_summaries,
            &mut self.trees[HISTORICAL_SUMMARIES],
            l.historical_summaries,
            None,
        )?;
        dirty_leaves[PENDING_DEPOSITS] = diff_elements(
            hasher,
            &mut self.pending_deposits,
            &mut self.trees[PENDING_DEPOSITS],
            l.pending_deposits,
            None,
        )?;
        dirty_leaves[PENDING_PARTIAL_WITHDRAWALS] = diff_elements(
            hasher,
            &mut self.pending_partial_withdrawals,
            &mut self.trees[PENDING_PARTIAL_WITHDRAWALS],
            l.pending_partial_withdrawals,
            None,
        )?;
        dirty_leaves[PENDING_CONSOLIDATIONS] = diff_elements(
            hasher,
            &mut self.pending_consolidations,
            &mut self.trees[PENDING_CONSOLIDATIONS],
            l.pending_consolidations,
            None,
        )?;
        let naturals = self.rehash_trees(hasher, dirty_leaves)?;
        let mut big = [[0u8; 32]; BIG_FIELDS];
        for (i, root) in big.iter_mut().enumerate() {
            let (limit, length) = shapes[i];
            let padded = pad_natural(naturals[i], self.trees[i].depth(), limit);
            *root = finish(padded, length);
        }
        let small = state.small_roots(&mut self.small)?;
        let root = assemble(hasher, &big, &small)?;
        self.root = Some(root);
        Ok(root)
    }
}

// ---- a cache carried through the state transition -----------------------------------------

/// The state-root cache carried through the transition from block to block, with the two
/// declarations the importer makes about the next root. A plain value, owned by whoever
/// runs the transition (the transition context) and mutated through `&mut`: nothing is
/// shared between two owners.
///
/// [`root`](Self::root) updates the cache instead of hashing the state from scratch, so a
/// slot costs what changed in it, not the whole registry. Without a hint a full compare is
/// used, so the cache may have been built from any state: the root is always the state's
/// own, held equal to the cold root by the tests.
#[derive(Default)]
pub struct RootCarry {
    /// The carried cache (empty until the first root).
    pub cache: CachedStateRoot,
    /// The root of the state as it stands now, declared by the caller: the next
    /// [`root`](Self::root) returns it without hashing (the spec's `process_slot` re-hashes
    /// the state a block just left, whose root the importer has just checked against the
    /// block), and clears it. The caller vouches that the next state rooted is that state.
    pub known: Option<Chunk>,
    /// Declares that no existing validator changed since the cache's last update
    /// (validators may only have been appended): the next update skips comparing the
    /// registry, and clears it. The importer declares it for a block with no operation
    /// that touches a validator, in an epoch whose boundary was not crossed since the last
    /// root.
    pub unchanged_validators: bool,
}

impl std::fmt::Debug for RootCarry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCarry")
            .field("root", &self.cache.root())
            .field("known", &self.known.is_some())
            .field("unchanged_validators", &self.unchanged_validators)
            .finish()
    }
}

impl RootCarry {
    /// The root of `state`: the declared known root if there is one, else through the
    /// carried cache. A failed update drops the cache (the next update rebuilds it), never
    /// leaving it half-updated.
    pub fn root<S: StateRootFields + ?Sized>(
        &mut self,
        hasher: &dyn BatchHasher,
        state: &S,
    ) -> Result<Chunk, StateRootError> {
        if let Some(root) = self.known.take() {
            return Ok(root);
        }
        let mut cache = std::mem::take(&mut self.cache);
        let out = if std::mem::take(&mut self.unchanged_validators) {
            // Only appended validators can differ from the cache's copy.
            cache.update_with(
                hasher,
                state,
                &Dirty {
                    validators: Some(Vec::new()),
                },
            )
        } else {
            cache.update(hasher, state)
        };
        if out.is_ok() {
            self.cache = cache;
        } else if let Some(resident) = cache.take_resident() {
            // The device trees stay with the carry; the rebuilt cache re-lays them out.
            self.cache.set_resident(Some(resident));
        }
        out
    }

    /// Keeps the carried cache's trees on the device (see [`CachedStateRoot::with_resident`]).
    pub fn set_resident(&mut self, resident: Option<ResidentTrees>) {
        self.cache.set_resident(resident);
    }

    /// Drop both declarations (they hold for the next root only).
    pub fn clear_declarations(&mut self) {
        self.known = None;
        self.unchanged_validators = false;
    }
}
