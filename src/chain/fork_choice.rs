//! The consensus spec's fork choice (`specs/phase0/fork-choice.md` and the later forks'
//! changes up to Fulu): the store — time, justified and finalized checkpoints, their
//! unrealized ("pulled-up") counterparts, the proposer boost, the equivocating validators —
//! and LMD-GHOST over a proto-array.
//!
//! The head is what the spec's `get_head` returns: start at the store's justified block
//! and repeatedly step to the child with the greatest weight, ties broken by the
//! lexicographically higher root, over the spec's filtered block tree (`filter_block_tree`:
//! a branch stays when one of its *leaves* is viable). A node's weight is the summed
//! effective balances (of the justified checkpoint state; 0 for an inactive or slashed
//! validator, as the caller passes them) of the non-equivocating validators whose latest
//! message is the node or a descendant, plus the proposer score (`PROPOSER_SCORE_BOOST`
//! percent of a committee's weight) when the node is the proposer-boost root or one of its
//! ancestors. The bookkeeping is the proto-array's (Lighthouse's `consensus/proto_array`,
//! Prysm's doubly-linked tree):
//!
//! * blocks live in a `Vec` in insertion order, so a parent always has a smaller index
//!   than its children, with a `HashMap` from root to index;
//! * every validator has a vote tracker (the root its weight currently sits on, the root
//!   of its latest message and that message's target epoch, whether it equivocated);
//! * [`ForkChoice::find_head`] turns the vote, balance and boost changes since the last
//!   call into per-node deltas, back-propagates them from the end of the array to the
//!   start, computes each node's viability in one forward pass, and recomputes every
//!   node's best child and best descendant in a second backward pass. The head is the
//!   justified node's best descendant (the justified block itself when no leaf under it is
//!   viable, as in the spec). The whole call is O(nodes + votes).
//!
//! What the store models, beside the votes:
//!
//! * **time** (`on_tick`, seconds): a new slot resets the proposer boost; the first slot
//!   of an epoch realizes the unrealized checkpoints (`on_tick_per_slot`). Time only moves
//!   forward (an earlier time is ignored).
//! * **`on_block`**: the spec's checks (parent known, not from the future, after the
//!   finalized epoch's first slot, descending from the finalized block at that slot), then
//!   the block's timeliness (arrived in its slot before the attestation deadline) and the
//!   proposer boost (the first timely block of the slot with the head's shuffling
//!   dependent root), the realized checkpoints of its post state and its pulled-up ones
//!   (`compute_pulled_up_tip`: the caller computes them from the post state, see
//!   `transition::…::compute_unrealized_checkpoints`), which are also realized at once for
//!   a block of a past epoch.
//! * **viability** (`filter_block_tree`): a leaf is viable when its voting source (its
//!   unrealized justification if it is from a past epoch, else its realized one) has the
//!   store's justified epoch, or is at most two epochs old (Deneb's allowance), or the
//!   store's justified epoch is the genesis epoch; and its ancestor at the finalized
//!   epoch's first slot is the finalized block (or the finalized epoch is the genesis
//!   epoch). Beyond the spec, a store whose justified checkpoint is still a non-genesis
//!   anchor's (checkpoint sync) treats every branch as justified-viable, as at genesis.
//! * **`on_attestation`**: the spec's checks (`validate_on_attestation`, with
//!   `is_from_block` skipping the target-epoch window); the caller checks the signature
//!   (`is_valid_indexed_attestation`) and gives the attesting indices.
//! * **`on_attester_slashing`**: the validators in both attestations (the caller checked
//!   the slashing) become equivocating: their weight leaves the tree at the next
//!   `find_head` and their messages never count again.
//! * **execution payload status**: [`ForkChoice::on_invalid_payload`] marks a block and
//!   its ancestors down to the latest valid payload as invalid (the optimistic-sync
//!   bookkeeping); invalid blocks and their descendants are never the head.
//!
//! Not modelled: the optional proposer-head helpers (`get_proposer_head`), queueing of
//! attestations for a later slot (a message refused as too early is the caller's to
//! resubmit). Nothing here panics on any input: bad inputs are errors or ignored votes.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::store::Checkpoint;

/// A block root.
pub type Root = [u8; 32];

/// The genesis epoch: while the store's justified checkpoint is at this epoch every block
/// passes the justification filter.
const GENESIS_EPOCH: u64 = 0;

/// `MIN_SEED_LOOKAHEAD` (both presets).
const MIN_SEED_LOOKAHEAD: u64 = 1;

/// `BASIS_POINTS`.
pub const BASIS_POINTS: u64 = 10_000;

/// `PROPOSER_SCORE_BOOST` (a percentage of a committee's weight; both configs).
pub const PROPOSER_SCORE_BOOST: u64 = 40;

/// `ATTESTATION_DUE_BPS` (both configs).
pub const ATTESTATION_DUE_BPS: u64 = 3333;

/// Votes from validator indices at or beyond this bound are ignored, so that a nonsense
/// index cannot make the vote table allocate without bound. (2^24 validators of 32 ETH
/// would stake several times all the ether there is.)
pub const MAX_VALIDATORS: usize = 1 << 24;

/// Lower-case hex with a `0x` prefix, for error messages.
struct Hex<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> fmt::Display for Hex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for byte in self.0.as_ref() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A checkpoint as `epoch E root 0x…`, for error messages.
struct Cp<'a>(&'a Checkpoint);

impl fmt::Display for Cp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {} root {}", self.0.epoch, Hex(self.0.root))
    }
}

/// The time and config values fork choice reads (preset-free: the caller gives the
/// preset's `SLOTS_PER_EPOCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkChoiceConfig {
    /// The genesis state's `genesis_time` (Unix seconds).
    pub genesis_time: u64,
    /// `SLOT_DURATION_MS`.
    pub slot_duration_ms: u64,
    /// The preset's `SLOTS_PER_EPOCH`.
    pub slots_per_epoch: u64,
    /// `ATTESTATION_DUE_BPS`.
    pub attestation_due_bps: u64,
    /// `PROPOSER_SCORE_BOOST`.
    pub proposer_score_boost: u64,
}

impl ForkChoiceConfig {
    /// The config with the spec's `ATTESTATION_DUE_BPS` and `PROPOSER_SCORE_BOOST`.
    pub fn new(genesis_time: u64, slot_duration_ms: u64, slots_per_epoch: u64) -> Self {
        ForkChoiceConfig {
            genesis_time,
            slot_duration_ms,
            slots_per_epoch,
            attestation_due_bps: ATTESTATION_DUE_BPS,
            proposer_score_boost: PROPOSER_SCORE_BOOST,
        }
    }

    fn slot_ms(&self) -> u64 {
        self.slot_duration_ms.max(1)
    }

    fn spe(&self) -> u64 {
        self.slots_per_epoch.max(1)
    }

    /// `compute_epoch_at_slot`.
    pub fn epoch_at_slot(&self, slot: u64) -> u64 {
        slot / self.spe()
    }

    /// `compute_start_slot_at_epoch` (saturating).
    pub fn start_slot(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.spe())
    }

    /// `get_attestation_due_ms`.
    pub fn attestation_due_ms(&self) -> u64 {
        self.attestation_due_bps.saturating_mul(self.slot_ms()) / BASIS_POINTS
    }

    /// The Unix time (seconds) at which `slot` starts.
    pub fn slot_start_time(&self, slot: u64) -> u64 {
        self.slot_start_ms(slot) / 1000
    }

    /// The Unix time (milliseconds) at which `slot` starts.
    pub fn slot_start_ms(&self, slot: u64) -> u64 {
        self.genesis_ms()
            .saturating_add(slot.saturating_mul(self.slot_ms()))
    }

    /// `genesis_time` in Unix milliseconds.
    pub fn genesis_ms(&self) -> u64 {
        self.genesis_time.saturating_mul(1000)
    }
}

/// Why a block or an attestation was refused, or no head could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkChoiceError {
    /// `on_block` with a parent fork choice does not know (never imported, or pruned).
    #[error("block {} (slot {slot}) has unknown parent {}", Hex(.root), Hex(.parent))]
    UnknownParent { root: Root, parent: Root, slot: u64 },
    /// A block fork choice needs (the store's justified or finalized block) is not known.
    #[error("the {role} block {} is not in fork choice", Hex(.root))]
    UnknownBlock { role: &'static str, root: Root },
    /// `on_block` for a known root, but with another parent or slot than the first time.
    #[error(
        "block {} is known at slot {known_slot} with parent {}, offered again at slot {slot} with another parent or slot",
        Hex(.root), Hex(.known_parent)
    )]
    DuplicateMismatch {
        root: Root,
        known_parent: Root,
        known_slot: u64,
        slot: u64,
    },
    /// `on_block` with a slot that is not after its parent's.
    #[error("block {} at slot {slot} is not after its parent {} at slot {parent_slot}", Hex(.root), Hex(.parent))]
    SlotNotAfterParent {
        root: Root,
        slot: u64,
        parent: Root,
        parent_slot: u64,
    },
    /// `on_block` with a block from the future (`get_current_slot(store) >= block.slot`).
    #[error("block {} at slot {slot} is from the future (the store's slot is {current_slot})", Hex(.root))]
    FutureSlot {
        root: Root,
        slot: u64,
        current_slot: u64,
    },
    /// `on_block` with a block not after the finalized epoch's first slot.
    #[error("block {} at slot {slot} is not after the finalized slot {finalized_slot}", Hex(.root))]
    BeforeFinalized {
        root: Root,
        slot: u64,
        finalized_slot: u64,
    },
    /// `on_block` with a block whose chain does not hold the finalized block at the
    /// finalized epoch's first slot.
    #[error("block {} does not descend from the finalized checkpoint ({})", Hex(.root), Cp(.finalized))]
    NotDescendantOfFinalized { root: Root, finalized: Checkpoint },
    /// `on_attestation` refused the attestation (`validate_on_attestation`).
    #[error("attestation refused: {0}")]
    InvalidAttestation(AttestationError),
    /// Applying the vote changes would take a weight below zero or past `u64::MAX` (an
    /// internal inconsistency, or balances that sum past `u64::MAX`). Nothing is changed.
    #[error("weight {weight} of block {} with delta {delta} leaves the u64 range", Hex(.root))]
    InvalidWeight {
        root: Root,
        weight: u64,
        delta: i128,
    },
}

/// The failed check of `validate_on_attestation`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    #[error(
        "target epoch {target_epoch} is neither the current epoch {current_epoch} nor the previous"
    )]
    TargetEpochNotCurrent {
        target_epoch: u64,
        current_epoch: u64,
    },
    #[error("target epoch {target_epoch} is not the epoch of slot {slot}")]
    TargetEpochSlotMismatch { target_epoch: u64, slot: u64 },
    #[error("unknown target block {}", Hex(.0))]
    UnknownTarget(Root),
    #[error("unknown head block {}", Hex(.0))]
    UnknownHeadBlock(Root),
    #[error("head block at slot {block_slot} is after the attestation's slot {slot}")]
    HeadBlockAfterSlot { block_slot: u64, slot: u64 },
    #[error("target root {} is not the head block's checkpoint block {}", Hex(.target), Hex(.expected))]
    InconsistentTarget { target: Root, expected: Root },
    #[error("attestation of slot {slot} can count from slot {} on (the store's slot is {current_slot})", .slot.saturating_add(1))]
    TooEarly { slot: u64, current_slot: u64 },
}

/// A verified block, as `on_block` takes it: its place in the tree, the justified and
/// finalized checkpoints of its post state, its pulled-up (unrealized) ones, and its
/// execution payload's block hash (zero without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkChoiceBlock {
    pub root: Root,
    pub parent_root: Root,
    pub slot: u64,
    pub justified: Checkpoint,
    pub finalized: Checkpoint,
    pub unrealized_justified: Checkpoint,
    pub unrealized_finalized: Checkpoint,
    pub execution_block_hash: Root,
}

/// The attestation data fork choice reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestationVote {
    pub slot: u64,
    pub beacon_block_root: Root,
    pub target: Checkpoint,
}

/// One block in the proto-array.
#[derive(Debug, Clone)]
struct ProtoNode {
    root: Root,
    /// The parent's root as given to `on_block` (`None` for the anchor); kept after pruning.
    parent_root: Option<Root>,
    /// The parent's index, `None` for the tree's root (the anchor, or the finalized block
    /// after pruning).
    parent: Option<usize>,
    slot: u64,
    /// The justified checkpoint of the block's post state.
    justified: Checkpoint,
    /// The finalized checkpoint of the block's post state.
    finalized: Checkpoint,
    /// The block's pulled-up checkpoints (`store.unrealized_justifications`).
    unrealized_justified: Checkpoint,
    unrealized_finalized: Checkpoint,
    execution_block_hash: Root,
    /// Its execution payload (or an ancestor's) was found invalid.
    invalid: bool,
    /// Summed balances of the votes on this block and its descendants (and the boost).
    weight: u64,
    /// The child leading to the best viable head, if any (as of the last `find_head`).
    best_child: Option<usize>,
    /// The best viable head under this node, if any (as of the last `find_head`).
    best_descendant: Option<usize>,
}

/// One block in fork choice, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkChoiceNode {
    pub slot: u64,
    pub root: Root,
    /// `None` for the anchor.
    pub parent_root: Option<Root>,
    pub justified_epoch: u64,
    pub finalized_epoch: u64,
    /// Summed balances of the votes on this block and its descendants.
    pub weight: u64,
}

/// A validator's votes: where its weight sits now, and its latest message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VoteTracker {
    /// The root the validator's weight was applied to by the last `find_head`.
    current_root: Option<Root>,
    /// The root of the validator's latest message.
    next_root: Option<Root>,
    /// The target epoch of the latest message.
    next_epoch: u64,
    /// In `store.equivocating_indices`: its weight leaves, its messages are ignored.
    equivocating: bool,
}

/// The spec's fork-choice store over a proto-array (see the module docs).
#[derive(Debug, Clone)]
pub struct ForkChoice {
    config: ForkChoiceConfig,
    /// `store.time`, kept in Unix milliseconds: with `SLOT_DURATION_MS` under a second
    /// (a local devnet) whole seconds could not tell a slot's start (the spec's
    /// `on_tick(time)` in seconds is [`ForkChoice::on_tick`], exact on that grid).
    time_ms: u64,
    nodes: Vec<ProtoNode>,
    indices: HashMap<Root, usize>,
    votes: Vec<VoteTracker>,
    /// The balances the current weights were computed with.
    balances: Vec<u64>,
    justified: Checkpoint,
    finalized: Checkpoint,
    unrealized_justified: Checkpoint,
    unrealized_finalized: Checkpoint,
    /// `store.proposer_boost_root` (`None` for the spec's `Root()`).
    proposer_boost_root: Option<Root>,
    /// The boost the current weights hold: its root and score.
    applied_boost: Option<(Root, u64)>,
    /// The checkpoint the store started from (genesis, or a checkpoint-sync anchor).
    anchor: Checkpoint,
    /// The head the last `find_head` returned (the anchor before any).
    head: Root,
}

impl ForkChoice {
    /// `get_forkchoice_store`: the anchor block (genesis, or a checkpoint-sync block) at
    /// `anchor_slot`; justified, finalized and their unrealized twins start at
    /// `anchor_checkpoint` (whose root should be `anchor_root`), the time at the anchor
    /// slot's start.
    pub fn new(
        config: ForkChoiceConfig,
        anchor_root: Root,
        anchor_slot: u64,
        anchor_checkpoint: Checkpoint,
    ) -> Self {
        let anchor = ProtoNode {
            root: anchor_root,
            parent_root: None,
            parent: None,
            slot: anchor_slot,
            justified: anchor_checkpoint,
            finalized: anchor_checkpoint,
            unrealized_justified: anchor_checkpoint,
            unrealized_finalized: anchor_checkpoint,
            execution_block_hash: [0; 32],
            invalid: false,
            weight: 0,
            best_child: None,
            best_descendant: None,
        };
        let mut indices = HashMap::new();
        indices.insert(anchor_root, 0);
        Self {
            config,
            time_ms: config.slot_start_ms(anchor_slot),
            nodes: vec![anchor],
            indices,
            votes: Vec::new(),
            balances: Vec::new(),
            justified: anchor_checkpoint,
            finalized: anchor_checkpoint,
            unrealized_justified: anchor_checkpoint,
            unrealized_finalized: anchor_checkpoint,
            proposer_boost_root: None,
            applied_boost: None,
            anchor: anchor_checkpoint,
            head: anchor_root,
        }
    }

    /// The config the store was made with.
    pub fn config(&self) -> &ForkChoiceConfig {
        &self.config
    }

    /// `store.time` (Unix seconds).
    pub fn time(&self) -> u64 {
        self.time_ms / 1000
    }

    /// `store.time` in Unix milliseconds.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Milliseconds since genesis by the store's clock.
    pub fn ms_since_genesis(&self) -> u64 {
        self.time_ms.saturating_sub(self.config.genesis_ms())
    }

    /// `get_current_slot(store)`.
    pub fn current_slot(&self) -> u64 {
        self.ms_since_genesis() / self.config.slot_ms()
    }

    /// `get_current_store_epoch(store)`.
    pub fn current_epoch(&self) -> u64 {
        self.config.epoch_at_slot(self.current_slot())
    }

    /// `on_tick(store, time)`: each new slot resets the proposer boost; reaching an
    /// epoch's first slot realizes the unrealized checkpoints. An earlier or equal time
    /// changes nothing.
    pub fn on_tick(&mut self, time: u64) {
        self.on_tick_ms(time.saturating_mul(1000));
    }

    /// [`ForkChoice::on_tick`] at a Unix time in milliseconds.
    pub fn on_tick_ms(&mut self, time_ms: u64) {
        if time_ms <= self.time_ms {
            return;
        }
        let previous_slot = self.current_slot();
        self.time_ms = time_ms;
        let current_slot = self.current_slot();
        if current_slot > previous_slot {
            self.proposer_boost_root = None;
            // The spec ticks slot by slot; the unrealized checkpoints do not change
            // between the slots, so one update covers every epoch start crossed.
            let spe = self.config.spe();
            let first_epoch_start = previous_slot / spe * spe + spe;
            if first_epoch_start <= current_slot {
                self.update_checkpoints(self.unrealized_justified, self.unrealized_finalized);
            }
        }
    }

    /// Whether a block of `slot` arriving now is timely (`record_block_timeliness`): the
    /// store is in the block's slot, before the attestation deadline.
    pub fn is_timely(&self, slot: u64) -> bool {
        let since_ms = self.ms_since_genesis();
        let into_slot = since_ms % self.config.slot_ms();
        self.current_slot() == slot && into_slot < self.config.attestation_due_ms()
    }

    /// `on_block` for a block whose transition the caller verified (see
    /// [`ForkChoiceBlock`]). Idempotent for a known root (the anchor accepts any parent
    /// and slot; another known block must come with the same parent and slot). The
    /// proposer boost compares the block's shuffling dependent root with that of the head
    /// as of the last [`ForkChoice::find_head`] (the spec computes `get_head` here: call
    /// `find_head` first to match it exactly).
    pub fn on_block(&mut self, block: &ForkChoiceBlock) -> Result<(), ForkChoiceError> {
        let root = block.root;
        let slot = block.slot;
        let parent_root = block.parent_root;
        if let Some(known) = self.node(&root) {
            return match known.parent_root {
                // The anchor: its parent was never recorded.
                None => Ok(()),
                Some(known_parent) if known_parent == parent_root && known.slot == slot => Ok(()),
                Some(known_parent) => Err(ForkChoiceError::DuplicateMismatch {
                    root,
                    known_parent,
                    known_slot: known.slot,
                    slot,
                }),
            };
        }
        let Some((parent_index, parent)) = self
            .indices
            .get(&parent_root)
            .and_then(|&i| self.nodes.get(i).map(|node| (i, node)))
        else {
            return Err(ForkChoiceError::UnknownParent {
                root,
                parent: parent_root,
                slot,
            });
        };
        let current_slot = self.current_slot();
        if slot > current_slot {
            return Err(ForkChoiceError::FutureSlot {
                root,
                slot,
                current_slot,
            });
        }
        let finalized_slot = self.config.start_slot(self.finalized.epoch);
        if slot <= finalized_slot {
            return Err(ForkChoiceError::BeforeFinalized {
                root,
                slot,
                finalized_slot,
            });
        }
        if slot <= parent.slot {
            return Err(ForkChoiceError::SlotNotAfterParent {
                root,
                slot,
                parent: parent_root,
                parent_slot: parent.slot,
            });
        }
        let (ancestor, _) = self.ancestor_at_slot(parent_index, finalized_slot);
        if self.nodes.get(ancestor).map(|n| n.root) != Some(self.finalized.root) {
            return Err(ForkChoiceError::NotDescendantOfFinalized {
                root,
                finalized: self.finalized,
            });
        }
        let head_index = self.indices.get(&self.head).copied();
        let index = self.nodes.len();
        self.nodes.push(ProtoNode {
            root,
            parent_root: Some(parent_root),
            parent: Some(parent_index),
            slot,
            justified: block.justified,
            finalized: block.finalized,
            unrealized_justified: block.unrealized_justified,
            unrealized_finalized: block.unrealized_finalized,
            execution_block_hash: block.execution_block_hash,
            invalid: false,
            weight: 0,
            best_child: None,
            best_descendant: None,
        });
        self.indices.insert(root, index);

        // record_block_timeliness, update_proposer_boost_root.
        if self.proposer_boost_root.is_none() && self.is_timely(slot) {
            let epoch = self.current_epoch();
            let same_dependent_root = match head_index {
                Some(h) => {
                    self.shuffling_dependent(h, epoch) == self.shuffling_dependent(index, epoch)
                }
                None => false,
            };
            if same_dependent_root {
                self.proposer_boost_root = Some(root);
            }
        }
        self.update_checkpoints(block.justified, block.finalized);
        // compute_pulled_up_tip.
        self.update_unrealized_checkpoints(block.unrealized_justified, block.unrealized_finalized);
        if self.config.epoch_at_slot(slot) < self.current_epoch() {
            self.update_checkpoints(block.unrealized_justified, block.unrealized_finalized);
        }
        Ok(())
    }

    /// `validate_on_attestation` (`is_from_block` skips the target-epoch window).
    pub fn validate_on_attestation(
        &self,
        data: &AttestationVote,
        is_from_block: bool,
    ) -> Result<(), AttestationError> {
        let target = data.target;
        if !is_from_block {
            let current_epoch = self.current_epoch();
            let previous_epoch = current_epoch.saturating_sub(1);
            if target.epoch != current_epoch && target.epoch != previous_epoch {
                return Err(AttestationError::TargetEpochNotCurrent {
                    target_epoch: target.epoch,
                    current_epoch,
                });
            }
        }
        if target.epoch != self.config.epoch_at_slot(data.slot) {
            return Err(AttestationError::TargetEpochSlotMismatch {
                target_epoch: target.epoch,
                slot: data.slot,
            });
        }
        if !self.indices.contains_key(&target.root) {
            return Err(AttestationError::UnknownTarget(target.root));
        }
        let Some(&block_index) = self.indices.get(&data.beacon_block_root) else {
            return Err(AttestationError::UnknownHeadBlock(data.beacon_block_root));
        };
        let block_slot = self.nodes.get(block_index).map_or(0, |n| n.slot);
        if block_slot > data.slot {
            return Err(AttestationError::HeadBlockAfterSlot {
                block_slot,
                slot: data.slot,
            });
        }
        let (ancestor, exact) =
            self.ancestor_at_slot(block_index, self.config.start_slot(target.epoch));
        let expected = self.nodes.get(ancestor).map_or([0; 32], |n| n.root);
        if !exact || expected != target.root {
            return Err(AttestationError::InconsistentTarget {
                target: target.root,
                expected,
            });
        }
        let current_slot = self.current_slot();
        if current_slot < data.slot.saturating_add(1) {
            return Err(AttestationError::TooEarly {
                slot: data.slot,
                current_slot,
            });
        }
        Ok(())
    }

    /// `on_attestation` for an attestation whose signature the caller verified, with its
    /// attesting indices: the spec's checks, then each validator's latest message.
    pub fn on_attestation(
        &mut self,
        attesting_indices: &[u64],
        data: &AttestationVote,
        is_from_block: bool,
    ) -> Result<(), ForkChoiceError> {
        self.validate_on_attestation(data, is_from_block)
            .map_err(ForkChoiceError::InvalidAttestation)?;
        let (root, epoch) = (data.beacon_block_root, data.target.epoch);
        self.update_latest_messages(attesting_indices.iter().map(|&v| (v, root, epoch)));
        Ok(())
    }

    /// A validator's latest message (`update_latest_messages`), kept only if
    /// `target_epoch` is newer than its previous one, for a message checked elsewhere (a
    /// block's attestations, gossip). Ignored for a block fork choice does not know (never
    /// imported or pruned), for an equivocating validator, and for a validator index of
    /// [`MAX_VALIDATORS`] or more. The weight moves at the next [`ForkChoice::find_head`].
    pub fn update_latest_message(
        &mut self,
        validator_index: u64,
        block_root: Root,
        target_epoch: u64,
    ) {
        if !self.indices.contains_key(&block_root) {
            return;
        }
        self.set_latest_message(validator_index, block_root, target_epoch);
    }

    /// [`ForkChoice::update_latest_message`] for each `(validator, block root, target
    /// epoch)` of a block's attestations: the same outcome, with the block looked up once
    /// per run of votes for the same root (a block's attesters mostly vote for one).
    pub fn update_latest_messages(&mut self, votes: impl IntoIterator<Item = (u64, Root, u64)>) {
        let mut known: Option<(Root, bool)> = None;
        for (v, root, epoch) in votes {
            let is_known = match known {
                Some((r, k)) if r == root => k,
                _ => {
                    let k = self.indices.contains_key(&root);
                    known = Some((root, k));
                    k
                }
            };
            if is_known {
                self.set_latest_message(v, root, epoch);
            }
        }
    }

    /// The vote update of [`ForkChoice::update_latest_message`] for a known block.
    fn set_latest_message(&mut self, validator_index: u64, block_root: Root, target_epoch: u64) {
        let Some(index) = usize::try_from(validator_index)
            .ok()
            .filter(|&i| i < MAX_VALIDATORS)
        else {
            return;
        };
        if self.votes.len() <= index {
            self.votes
                .resize(index.saturating_add(1), VoteTracker::default());
        }
        if let Some(vote) = self.votes.get_mut(index) {
            if vote.equivocating {
                return;
            }
            if vote.next_root.is_none() || target_epoch > vote.next_epoch {
                vote.next_root = Some(block_root);
                vote.next_epoch = target_epoch;
            }
        }
    }

    /// `on_attester_slashing` for a slashing the caller checked (slashable data, both
    /// indexed attestations valid): the validators in both become equivocating. Returns
    /// how many were not equivocating before.
    pub fn on_attester_slashing(&mut self, attestation_1: &[u64], attestation_2: &[u64]) -> usize {
        let first: HashSet<u64> = attestation_1.iter().copied().collect();
        let mut added = 0;
        for &v in attestation_2 {
            if !first.contains(&v) {
                continue;
            }
            let Some(index) = usize::try_from(v).ok().filter(|&i| i < MAX_VALIDATORS) else {
                continue;
            };
            if self.votes.len() <= index {
                self.votes
                    .resize(index.saturating_add(1), VoteTracker::default());
            }
            if let Some(vote) = self.votes.get_mut(index) {
                if !vote.equivocating {
                    vote.equivocating = true;
                    added += 1;
                }
            }
        }
        added
    }

    /// Whether a validator is in `store.equivocating_indices`.
    pub fn is_equivocating(&self, validator_index: u64) -> bool {
        usize::try_from(validator_index)
            .ok()
            .and_then(|i| self.votes.get(i))
            .is_some_and(|v| v.equivocating)
    }

    /// The execution engine found a payload invalid with `latest_valid_hash` the last
    /// valid one in its chain: block `root` (a known block, e.g. the invalid block's
    /// parent) and its ancestors are marked invalid up to (not including) the block whose
    /// payload is `latest_valid_hash` (or one without a payload); their descendants follow
    /// at the next [`ForkChoice::find_head`]. Returns how many blocks were marked.
    pub fn on_invalid_payload(&mut self, root: &Root, latest_valid_hash: &Root) -> usize {
        let mut marked = 0;
        let mut cursor = self.indices.get(root).copied();
        while let Some(i) = cursor {
            let Some(node) = self.nodes.get_mut(i) else {
                break;
            };
            if node.execution_block_hash == *latest_valid_hash
                || node.execution_block_hash == [0; 32]
            {
                break;
            }
            if !node.invalid {
                node.invalid = true;
                marked += 1;
            }
            cursor = node.parent;
        }
        marked
    }

    /// Whether a known block's payload (or an ancestor's) was found invalid.
    pub fn is_invalid(&self, root: &Root) -> bool {
        self.node(root).is_some_and(|n| n.invalid)
    }

    /// `update_checkpoints`: each replaces the store's only if its epoch is higher.
    pub fn update_checkpoints(&mut self, justified: Checkpoint, finalized: Checkpoint) {
        if justified.epoch > self.justified.epoch {
            self.justified = justified;
        }
        if finalized.epoch > self.finalized.epoch {
            self.finalized = finalized;
        }
    }

    /// `update_unrealized_checkpoints`.
    pub fn update_unrealized_checkpoints(&mut self, justified: Checkpoint, finalized: Checkpoint) {
        if justified.epoch > self.unrealized_justified.epoch {
            self.unrealized_justified = justified;
        }
        if finalized.epoch > self.unrealized_finalized.epoch {
            self.unrealized_finalized = finalized;
        }
    }

    /// The store's justified checkpoint.
    pub fn justified_checkpoint(&self) -> Checkpoint {
        self.justified
    }

    /// The store's finalized checkpoint.
    pub fn finalized_checkpoint(&self) -> Checkpoint {
        self.finalized
    }

    /// The store's unrealized justified checkpoint.
    pub fn unrealized_justified_checkpoint(&self) -> Checkpoint {
        self.unrealized_justified
    }

    /// The store's unrealized finalized checkpoint.
    pub fn unrealized_finalized_checkpoint(&self) -> Checkpoint {
        self.unrealized_finalized
    }

    /// `store.proposer_boost_root` (`None` for the spec's zero root).
    pub fn proposer_boost_root(&self) -> Option<Root> {
        self.proposer_boost_root
    }

    /// The head the last [`ForkChoice::find_head`] returned.
    pub fn head(&self) -> Root {
        self.head
    }

    /// Applies the vote, balance and boost changes since the last call and returns the
    /// head (`get_head`).
    ///
    /// `justified_balances[v]` is validator `v`'s effective balance in the justified
    /// checkpoint state, 0 for an inactive or slashed validator (0 beyond the slice);
    /// `total_active_balance` is that state's `get_total_active_balance` (the proposer
    /// score is `PROPOSER_SCORE_BOOST` percent of it over `SLOTS_PER_EPOCH`). Balances may
    /// change between calls: a vote's old weight leaves its old block with the old
    /// balance, its new weight lands on its new block with the new balance. On an error
    /// nothing has changed.
    pub fn find_head(
        &mut self,
        justified_balances: &[u64],
        total_active_balance: u64,
    ) -> Result<Root, ForkChoiceError> {
        let justified_index = self.index_of(&self.justified.root, "justified")?;
        let finalized_index = self.index_of(&self.finalized.root, "finalized")?;

        let boost = self.proposer_boost_root.map(|root| {
            let committee_weight = total_active_balance / self.config.spe();
            let score = u64::try_from(
                u128::from(committee_weight) * u128::from(self.config.proposer_score_boost) / 100,
            )
            .unwrap_or(u64::MAX);
            (root, score)
        });
        let mut deltas = self.compute_deltas(justified_balances);
        if let Some((root, score)) = self.applied_boost {
            if let Some(d) = self.indices.get(&root).and_then(|&i| deltas.get_mut(i)) {
                *d = d.saturating_sub(i128::from(score));
            }
        }
        if let Some((root, score)) = boost {
            if let Some(d) = self.indices.get(&root).and_then(|&i| deltas.get_mut(i)) {
                *d = d.saturating_add(i128::from(score));
            }
        }
        let weights = self.propagated_weights(deltas)?;
        for (node, weight) in self.nodes.iter_mut().zip(weights) {
            node.weight = weight;
        }
        for vote in &mut self.votes {
            vote.current_root = if vote.equivocating {
                None
            } else {
                vote.next_root
            };
        }
        self.balances.clear();
        self.balances.extend_from_slice(justified_balances);
        self.applied_boost = boost.filter(|(root, _)| self.indices.contains_key(root));

        let viable = self.viable_leaves(finalized_index);
        self.update_best_descendants(&viable);

        let head_index = self
            .nodes
            .get(justified_index)
            .and_then(|node| node.best_descendant)
            .unwrap_or(justified_index);
        let head =
            self.nodes
                .get(head_index)
                .map(|n| n.root)
                .ok_or(ForkChoiceError::UnknownBlock {
                    role: "justified",
                    root: self.justified.root,
                })?;
        self.head = head;
        Ok(head)
    }

    /// Drops every node that is not a descendant of the finalized block (the finalized
    /// block stays, as the new root of the tree) and renumbers the rest; returns how many
    /// were dropped. Votes on dropped blocks stay recorded but carry no weight.
    pub fn prune(&mut self) -> Result<usize, ForkChoiceError> {
        let finalized_index = self.index_of(&self.finalized.root, "finalized")?;
        // Old index → new index for the kept nodes. A parent precedes its children, so its
        // entry is always known when the child is reached.
        let mut new_index: Vec<Option<usize>> = Vec::with_capacity(self.nodes.len());
        let mut kept = 0usize;
        for (i, node) in self.nodes.iter().enumerate() {
            let keep = i == finalized_index
                || node
                    .parent
                    .and_then(|p| new_index.get(p).copied().flatten())
                    .is_some();
            if keep {
                new_index.push(Some(kept));
                kept = kept.saturating_add(1);
            } else {
                new_index.push(None);
            }
        }
        let remap = |index: Option<usize>| index.and_then(|i| new_index.get(i).copied().flatten());
        let old = std::mem::take(&mut self.nodes);
        let pruned = old.len().saturating_sub(kept);
        self.nodes.reserve(kept);
        for (mut node, index) in old.into_iter().zip(new_index.iter()) {
            if index.is_some() {
                node.parent = remap(node.parent);
                node.best_child = remap(node.best_child);
                node.best_descendant = remap(node.best_descendant);
                self.nodes.push(node);
            }
        }
        self.indices = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.root, i))
            .collect();
        Ok(pruned)
    }

    /// Whether fork choice knows the block.
    pub fn contains(&self, root: &Root) -> bool {
        self.indices.contains_key(root)
    }

    /// How many blocks fork choice holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether fork choice holds no block (never, after `new`: the anchor or finalized block
    /// always stays).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every block fork choice holds: (root, slot, parent root; `None` for the anchor).
    pub fn blocks(&self) -> impl Iterator<Item = (Root, u64, Option<Root>)> + '_ {
        self.nodes.iter().map(|n| (n.root, n.slot, n.parent_root))
    }

    /// A known block's slot.
    pub fn block_slot(&self, root: &Root) -> Option<u64> {
        self.node(root).map(|node| node.slot)
    }

    /// A known block's parent root (`None` for an unknown block and for the anchor).
    pub fn parent_root(&self, root: &Root) -> Option<Root> {
        self.node(root).and_then(|node| node.parent_root)
    }

    /// The justified and finalized checkpoints of a known block's post state.
    pub fn block_checkpoints(&self, root: &Root) -> Option<(Checkpoint, Checkpoint)> {
        self.node(root).map(|node| (node.justified, node.finalized))
    }

    /// The pulled-up (unrealized) justified and finalized checkpoints of a known block.
    pub fn block_unrealized_checkpoints(&self, root: &Root) -> Option<(Checkpoint, Checkpoint)> {
        self.node(root)
            .map(|node| (node.unrealized_justified, node.unrealized_finalized))
    }

    /// `get_ancestor(root, slot)` for a known block (the tree's root when the walk reaches
    /// it, as blocks before it are not held).
    pub fn ancestor_at(&self, root: &Root, slot: u64) -> Option<Root> {
        let &index = self.indices.get(root)?;
        let (ancestor, _) = self.ancestor_at_slot(index, slot);
        self.nodes.get(ancestor).map(|n| n.root)
    }

    /// Whether `root` is `ancestor` or one of its descendants (both must be known).
    pub fn is_descendant(&self, ancestor: &Root, root: &Root) -> bool {
        let (Some(&ancestor), Some(&start)) = (self.indices.get(ancestor), self.indices.get(root))
        else {
            return false;
        };
        let mut index = start;
        loop {
            if index == ancestor {
                return true;
            }
            // Parents precede children: once below the ancestor it cannot be reached.
            if index < ancestor {
                return false;
            }
            match self.nodes.get(index).and_then(|node| node.parent) {
                Some(parent) => index = parent,
                None => return false,
            }
        }
    }

    /// Every block fork choice holds, in insertion order (parents before children), as of
    /// the last [`ForkChoice::find_head`] (the Beacon API's `debug/fork_choice`).
    pub fn nodes(&self) -> Vec<ForkChoiceNode> {
        self.nodes
            .iter()
            .map(|n| ForkChoiceNode {
                slot: n.slot,
                root: n.root,
                parent_root: n.parent_root,
                justified_epoch: n.justified.epoch,
                finalized_epoch: n.finalized.epoch,
                weight: n.weight,
            })
            .collect()
    }

    /// Weight of a node as of the last [`ForkChoice::find_head`] (for tests / db info).
    pub fn weight(&self, root: &Root) -> Option<u64> {
        self.node(root).map(|node| node.weight)
    }

    /// A validator's latest message as recorded: its block root and target epoch.
    pub fn latest_vote(&self, validator_index: u64) -> Option<(Root, u64)> {
        let vote = self.votes.get(usize::try_from(validator_index).ok()?)?;
        vote.next_root.map(|root| (root, vote.next_epoch))
    }

    fn node(&self, root: &Root) -> Option<&ProtoNode> {
        self.indices.get(root).and_then(|&i| self.nodes.get(i))
    }

    fn index_of(&self, root: &Root, role: &'static str) -> Result<usize, ForkChoiceError> {
        self.indices
            .get(root)
            .copied()
            .filter(|&i| i < self.nodes.len())
            .ok_or(ForkChoiceError::UnknownBlock { role, root: *root })
    }

    /// `get_ancestor` by index: the last block at or before `slot` on the chain of node
    /// `index`, and whether it is really at or before `slot` (false when the walk stopped
    /// at the tree's root, whose slot is later).
    fn ancestor_at_slot(&self, index: usize, slot: u64) -> (usize, bool) {
        let mut i = index;
        loop {
            let Some(node) = self.nodes.get(i) else {
                return (i, false);
            };
            if node.slot <= slot {
                return (i, true);
            }
            match node.parent {
                Some(p) => i = p,
                None => return (i, false),
            }
        }
    }

    /// `get_shuffling_dependent_root` by index.
    fn shuffling_dependent(&self, index: usize, epoch: u64) -> usize {
        let slot = if epoch <= MIN_SEED_LOOKAHEAD {
            0
        } else {
            self.config
                .start_slot(epoch - MIN_SEED_LOOKAHEAD)
                .saturating_sub(1)
        };
        self.ancestor_at_slot(index, slot).0
    }

    /// Per-node weight changes from the votes and balances that changed since the last
    /// `find_head` (not yet propagated to ancestors): an equivocating validator's weight
    /// only leaves. Roots no longer known are skipped.
    fn compute_deltas(&self, new_balances: &[u64]) -> Vec<i128> {
        let mut deltas = vec![0i128; self.nodes.len()];
        for (validator, vote) in self.votes.iter().enumerate() {
            let old_balance = self.balances.get(validator).copied().unwrap_or(0);
            let new_balance = new_balances.get(validator).copied().unwrap_or(0);
            let next_root = if vote.equivocating {
                None
            } else {
                vote.next_root
            };
            if vote.current_root == next_root && old_balance == new_balance {
                continue;
            }
            if let Some(delta) = vote
                .current_root
                .and_then(|root| self.indices.get(&root))
                .and_then(|&i| deltas.get_mut(i))
            {
                *delta = delta.saturating_sub(i128::from(old_balance));
            }
            if let Some(delta) = next_root
                .and_then(|root| self.indices.get(&root))
                .and_then(|&i| deltas.get_mut(i))
            {
                *delta = delta.saturating_add(i128::from(new_balance));
            }
        }
        deltas
    }

    /// The nodes' weights after applying `deltas`, each node's delta added to all its
    /// ancestors (one backward pass). Changes nothing; fails if a weight leaves `u64`.
    fn propagated_weights(&self, mut deltas: Vec<i128>) -> Result<Vec<u64>, ForkChoiceError> {
        let mut weights = Vec::with_capacity(self.nodes.len());
        for index in (0..self.nodes.len()).rev() {
            let (Some(node), Some(&delta)) = (self.nodes.get(index), deltas.get(index)) else {
                continue;
            };
            let weight = i128::from(node.weight)
                .checked_add(delta)
                .and_then(|w| u64::try_from(w).ok())
                .ok_or(ForkChoiceError::InvalidWeight {
                    root: node.root,
                    weight: node.weight,
                    delta,
                })?;
            weights.push(weight);
            if delta != 0 {
                if let Some(parent_delta) = node.parent.and_then(|p| deltas.get_mut(p)) {
                    *parent_delta = parent_delta.saturating_add(delta);
                }
            }
        }
        weights.reverse();
        Ok(weights)
    }

    /// One forward pass: invalid payloads pass to descendants; then for every node,
    /// whether it is a leaf that `filter_block_tree` keeps (`None` for a node with
    /// children, whose fate its leaves decide).
    fn viable_leaves(&mut self, finalized_index: usize) -> Vec<Option<bool>> {
        let current_epoch = self.current_epoch();
        let justified = self.justified;
        let finalized = self.finalized;
        // Nothing justified since the anchor: like genesis, every branch may be the head.
        let any_justified = justified.epoch == GENESIS_EPOCH || justified == self.anchor;
        let any_finalized = finalized.epoch == GENESIS_EPOCH;
        let finalized_slot = self.config.start_slot(finalized.epoch);
        let mut has_child = vec![false; self.nodes.len()];
        // Each node's ancestor at the finalized slot (the tree's root when the walk
        // reaches it).
        let mut ancestor = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let (parent, slot) = match self.nodes.get(i) {
                Some(n) => (n.parent, n.slot),
                None => (None, 0),
            };
            let parent_invalid = parent
                .and_then(|p| self.nodes.get(p))
                .is_some_and(|p| p.invalid);
            let mut invalid = parent_invalid;
            if let Some(n) = self.nodes.get_mut(i) {
                n.invalid |= parent_invalid;
                invalid = n.invalid;
            }
            // Only valid children count: a block whose children are all invalid is a
            // leaf again.
            if !invalid {
                if let Some(flag) = parent.and_then(|p| has_child.get_mut(p)) {
                    *flag = true;
                }
            }
            let a = match parent {
                Some(p) if slot > finalized_slot => ancestor.get(p).copied().unwrap_or(i),
                _ => i,
            };
            ancestor.push(a);
        }
        let mut viable = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            if has_child.get(i).copied().unwrap_or(false) {
                viable.push(None);
                continue;
            }
            let voting_source = if current_epoch > self.config.epoch_at_slot(node.slot) {
                node.unrealized_justified
            } else {
                node.justified
            };
            let correct_justified = any_justified
                || voting_source.epoch == justified.epoch
                || voting_source.epoch.saturating_add(2) >= current_epoch;
            let correct_finalized =
                any_finalized || ancestor.get(i).copied() == Some(finalized_index);
            viable.push(Some(
                !node.invalid && correct_justified && correct_finalized,
            ));
        }
        viable
    }

    /// Recomputes every node's best child and best descendant in one backward pass: when a
    /// node is reached all its descendants (higher indices) are final, so it is offered to
    /// its parent with its final weight and best descendant. A node leads to a viable head
    /// when it is a viable leaf, or (valid) one of its children does.
    fn update_best_descendants(&mut self, viable: &[Option<bool>]) {
        for node in &mut self.nodes {
            node.best_child = None;
            node.best_descendant = None;
        }
        for index in (0..self.nodes.len()).rev() {
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            let leads_to_viable_head = !node.invalid
                && match viable.get(index).copied().flatten() {
                    Some(leaf) => leaf,
                    None => node.best_child.is_some(),
                };
            let Some(parent_index) = node.parent else {
                continue;
            };
            if !leads_to_viable_head {
                continue;
            }
            let key = (node.weight, node.root);
            let descendant = node.best_descendant.unwrap_or(index);
            let better = match self.nodes.get(parent_index).and_then(|p| p.best_child) {
                None => true,
                Some(best) => self
                    .nodes
                    .get(best)
                    .is_none_or(|best| key > (best.weight, best.root)),
            };
            if better {
                if let Some(parent) = self.nodes.get_mut(parent_index) {
                    parent.best_child = Some(index);
                    parent.best_descendant = Some(descendant);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashSet;

    fn r(n: u8) -> Root {
        let mut root = [0u8; 32];
        root[0] = n;
        root[31] = 0xaa;
        root
    }

    fn cp(epoch: u64, root: Root) -> Checkpoint {
        Checkpoint { epoch, root }
    }

    /// Minimal's timing: 6-second slots, 8 slots an epoch, genesis at time 0.
    fn cfg() -> ForkChoiceConfig {
        ForkChoiceConfig::new(0, 6000, 8)
    }

    trait TestExt {
        /// `on_block` at the block's slot (the store ticked to its start if behind), with
        /// the unrealized checkpoints equal to the realized ones.
        fn on_block_test(
            &mut self,
            root: Root,
            parent: Root,
            slot: u64,
            justified: Checkpoint,
            finalized: Checkpoint,
        ) -> Result<(), ForkChoiceError>;
    }

    impl TestExt for ForkChoice {
        fn on_block_test(
            &mut self,
            root: Root,
            parent: Root,
            slot: u64,
            justified: Checkpoint,
            finalized: Checkpoint,
        ) -> Result<(), ForkChoiceError> {
            // Mid-slot: past the attestation deadline, so no proposer boost.
            self.on_tick(self.config().slot_start_time(slot) + 5);
            self.on_block(&ForkChoiceBlock {
                root,
                parent_root: parent,
                slot,
                justified,
                finalized,
                unrealized_justified: justified,
                unrealized_finalized: finalized,
                execution_block_hash: [0; 32],
            })
        }
    }

    /// Genesis r(0) at slot 0, justified and finalized at epoch 0.
    fn genesis() -> ForkChoice {
        ForkChoice::new(cfg(), r(0), 0, cp(0, r(0)))
    }

    fn add(fc: &mut ForkChoice, root: u8, parent: u8, slot: u64) {
        let g = cp(0, r(0));
        fc.on_block_test(r(root), r(parent), slot, g, g)
            .expect("block");
    }

    #[test]
    fn linear_chain_head_is_tip() {
        let mut fc = genesis();
        for n in 1..=5u8 {
            add(&mut fc, n, n - 1, u64::from(n));
        }
        assert_eq!(fc.len(), 6);
        assert!(!fc.is_empty());
        assert_eq!(fc.find_head(&[], 0).unwrap(), r(5));

        // Votes on an ancestor: the tip stays the head; the weight sits on r(2) and below.
        fc.update_latest_message(0, r(2), 0);
        fc.update_latest_message(1, r(2), 0);
        assert_eq!(fc.find_head(&[10, 20], 0).unwrap(), r(5));
        assert_eq!(fc.weight(&r(0)), Some(30));
        assert_eq!(fc.weight(&r(1)), Some(30));
        assert_eq!(fc.weight(&r(2)), Some(30));
        assert_eq!(fc.weight(&r(3)), Some(0));
        assert_eq!(fc.weight(&r(5)), Some(0));

        // One vote moves to the tip.
        fc.update_latest_message(1, r(5), 1);
        assert_eq!(fc.find_head(&[10, 20], 0).unwrap(), r(5));
        assert_eq!(fc.weight(&r(2)), Some(30));
        assert_eq!(fc.weight(&r(3)), Some(20));
        assert_eq!(fc.weight(&r(5)), Some(20));

        assert!(fc.is_descendant(&r(1), &r(5)));
        assert!(fc.is_descendant(&r(3), &r(3)));
        assert!(!fc.is_descendant(&r(5), &r(1)));
        assert!(!fc.is_descendant(&r(1), &r(99)));
        assert_eq!(fc.block_slot(&r(4)), Some(4));
        assert_eq!(fc.block_slot(&r(99)), None);
        assert_eq!(fc.parent_root(&r(4)), Some(r(3)));
        assert_eq!(fc.parent_root(&r(0)), None);
    }

    /// g ─ 1 ─ 2
    ///   └ 3 ─ 4
    fn two_forks() -> ForkChoice {
        let mut fc = genesis();
        add(&mut fc, 1, 0, 1);
        add(&mut fc, 2, 1, 2);
        add(&mut fc, 3, 0, 3);
        add(&mut fc, 4, 3, 4);
        fc
    }

    fn weights(fc: &ForkChoice) -> [u64; 5] {
        [0u8, 1, 2, 3, 4].map(|n| fc.weight(&r(n)).unwrap())
    }

    #[test]
    fn votes_decide_between_forks() {
        let mut fc = two_forks();
        // No votes: equal weights, the higher root r(3) wins.
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(4));

        fc.update_latest_message(0, r(2), 1);
        fc.update_latest_message(1, r(4), 1);
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(2));
        assert_eq!(weights(&fc), [15, 10, 10, 5, 5]);

        // Validator 0 moves to the other fork: the head switches.
        fc.update_latest_message(0, r(4), 2);
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [15, 0, 0, 15, 15]);

        // A message that is not newer is ignored.
        fc.update_latest_message(0, r(2), 2);
        fc.update_latest_message(0, r(2), 1);
        assert_eq!(fc.latest_vote(0), Some((r(4), 2)));
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [15, 0, 0, 15, 15]);

        // Back to fork 1 and a new validator on fork 2.
        fc.update_latest_message(0, r(2), 3);
        fc.update_latest_message(2, r(3), 3);
        assert_eq!(fc.find_head(&[10, 5, 4], 0).unwrap(), r(2));
        assert_eq!(weights(&fc), [19, 10, 10, 9, 5]);
    }

    #[test]
    fn balance_changes_move_exact_weights() {
        let mut fc = two_forks();
        fc.update_latest_message(0, r(2), 1);
        fc.update_latest_message(1, r(4), 1);
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(2));
        assert_eq!(weights(&fc), [15, 10, 10, 5, 5]);

        // Same votes, validator 0's balance drops: fork 2 is now heavier.
        assert_eq!(fc.find_head(&[4, 5], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [9, 4, 4, 5, 5]);

        // Validator 1 beyond the slice weighs 0.
        assert_eq!(fc.find_head(&[4], 0).unwrap(), r(2));
        assert_eq!(weights(&fc), [4, 4, 4, 0, 0]);

        // A vote move and a balance change together: the old balance (4) comes off r(2),
        // the new one (7) lands on r(4); validator 1 is back with 5.
        fc.update_latest_message(0, r(4), 2);
        assert_eq!(fc.find_head(&[7, 5], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [12, 0, 0, 12, 12]);

        // Everything to zero, then back.
        assert_eq!(fc.find_head(&[], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [0; 5]);
        assert_eq!(fc.find_head(&[1, 2], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [3, 0, 0, 3, 3]);
    }

    #[test]
    fn equal_weights_tie_break_by_higher_root() {
        let mut fc = genesis();
        add(&mut fc, 1, 0, 1);
        add(&mut fc, 2, 0, 1);
        fc.update_latest_message(0, r(1), 1);
        fc.update_latest_message(1, r(2), 1);
        assert_eq!(fc.find_head(&[8, 8], 0).unwrap(), r(2));
        assert_eq!(fc.weight(&r(1)), Some(8));
        assert_eq!(fc.weight(&r(2)), Some(8));
        // One more unit on r(1) wins.
        assert_eq!(fc.find_head(&[9, 8], 0).unwrap(), r(1));
        // Equal again.
        assert_eq!(fc.find_head(&[8, 8], 0).unwrap(), r(2));
        // Order of insertion does not matter: a new, higher, equal-weight sibling wins.
        add(&mut fc, 3, 0, 2);
        fc.update_latest_message(2, r(3), 1);
        assert_eq!(fc.find_head(&[8, 8, 8], 0).unwrap(), r(3));
        // And the tie-break works below the first level too.
        add(&mut fc, 5, 3, 3);
        add(&mut fc, 4, 3, 3);
        assert_eq!(fc.find_head(&[8, 8, 8], 0).unwrap(), r(5));
    }

    #[test]
    fn branch_with_other_justification_is_not_viable() {
        // Anchor at epoch 1 (a checkpoint-sync anchor).
        let g = r(0);
        let j1 = cp(1, g);
        let j2 = cp(2, g);
        let mut fc = ForkChoice::new(cfg(), g, 32, j1);
        // Fork A keeps the anchor's justification.
        fc.on_block_test(r(1), g, 33, j1, j1).unwrap();
        fc.on_block_test(r(2), r(1), 34, j1, j1).unwrap();
        fc.update_latest_message(0, r(2), 2);
        fc.update_latest_message(1, r(2), 2);
        let balances = [10, 100];
        assert_eq!(fc.find_head(&balances, 0).unwrap(), r(2));
        // Fork B justified epoch 2: on_block realizes it in the store.
        fc.on_block_test(r(3), g, 80, j2, j1).unwrap();
        fc.on_block_test(r(4), r(3), 81, j2, j1).unwrap();
        assert_eq!(fc.justified_checkpoint(), j2);
        // A lower or equal epoch does not replace the store's checkpoints.
        fc.update_checkpoints(cp(0, r(4)), cp(1, r(4)));
        assert_eq!(fc.justified_checkpoint(), j2);
        assert_eq!(fc.finalized_checkpoint(), j1);
        // Fork A (voting source epoch 1, more than two epochs before the store's 10) is
        // not viable, whatever its votes.
        assert_eq!(fc.find_head(&balances, 0).unwrap(), r(4));
        assert_eq!(fc.weight(&r(2)), Some(110));
        assert_eq!(fc.weight(&r(4)), Some(0));
        fc.update_latest_message(1, r(4), 3);
        assert_eq!(fc.find_head(&balances, 0).unwrap(), r(4));
        assert_eq!(fc.weight(&r(2)), Some(10));
        assert_eq!(fc.weight(&r(4)), Some(100));
    }

    #[test]
    fn find_head_errors() {
        let mut fc = two_forks();
        // Justified at r(1) (epoch 1) while the blocks carry epoch 0: within two epochs of
        // the store's epoch (0) the leaves stay viable (Deneb's allowance).
        fc.update_checkpoints(cp(1, r(1)), cp(0, r(0)));
        assert_eq!(fc.find_head(&[], 0).unwrap(), r(2));
        // Ten epochs on, no leaf under r(1) is viable: the head is the justified block
        // itself, as the spec's `get_head` returns it.
        fc.on_tick(fc.config().slot_start_time(80));
        assert_eq!(fc.find_head(&[], 0).unwrap(), r(1));
        // Justified at an unknown block.
        fc.update_checkpoints(cp(2, r(77)), cp(0, r(0)));
        let err = fc.find_head(&[], 0).unwrap_err();
        assert_eq!(
            err,
            ForkChoiceError::UnknownBlock {
                role: "justified",
                root: r(77)
            }
        );
        assert!(err.to_string().contains("0x4d00"), "{err}");
    }

    fn block(
        root: Root,
        parent: Root,
        slot: u64,
        j: Checkpoint,
        uj: Checkpoint,
    ) -> ForkChoiceBlock {
        ForkChoiceBlock {
            root,
            parent_root: parent,
            slot,
            justified: j,
            finalized: cp(0, r(0)),
            unrealized_justified: uj,
            unrealized_finalized: cp(0, r(0)),
            execution_block_hash: [0; 32],
        }
    }

    #[test]
    fn on_block_checks_time_and_finality() {
        let mut fc = genesis();
        let g = cp(0, r(0));
        // From the future: the store is at slot 0.
        let err = fc.on_block(&block(r(1), r(0), 1, g, g)).unwrap_err();
        assert!(
            matches!(
                err,
                ForkChoiceError::FutureSlot {
                    slot: 1,
                    current_slot: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!fc.contains(&r(1)));
        fc.on_tick(6);
        fc.on_block(&block(r(1), r(0), 1, g, g)).unwrap();
        // Finalized at epoch 1 with root r(1) (slot 1): a block at or before slot 8 is
        // refused; one on another branch from genesis too.
        fc.on_tick(6 * 20);
        fc.on_block_test(r(2), r(0), 9, g, g).unwrap();
        fc.update_checkpoints(cp(1, r(1)), cp(1, r(1)));
        let err = fc.on_block(&block(r(3), r(1), 8, g, g)).unwrap_err();
        assert!(
            matches!(
                err,
                ForkChoiceError::BeforeFinalized {
                    finalized_slot: 8,
                    ..
                }
            ),
            "{err}"
        );
        let err = fc.on_block(&block(r(4), r(2), 10, g, g)).unwrap_err();
        assert!(
            matches!(err, ForkChoiceError::NotDescendantOfFinalized { .. }),
            "{err}"
        );
        fc.on_block(&block(r(5), r(1), 10, g, g)).unwrap();
        // A time that goes back changes nothing.
        let t = fc.time();
        fc.on_tick(t - 1);
        assert_eq!(fc.time(), t);
    }

    #[test]
    fn proposer_boost_is_timely_first_and_reset_each_slot() {
        let mut fc = genesis();
        let g = cp(0, r(0));
        // Slot 1, 1 s in (before the 1999 ms deadline): timely, boosted.
        fc.on_tick(7);
        assert!(fc.is_timely(1));
        fc.find_head(&[], 0).unwrap();
        fc.on_block(&block(r(1), r(0), 1, g, g)).unwrap();
        assert_eq!(fc.proposer_boost_root(), Some(r(1)));
        // A second timely block of the slot is not boosted.
        fc.on_block(&block(r(2), r(0), 1, g, g)).unwrap();
        assert_eq!(fc.proposer_boost_root(), Some(r(1)));
        // The boost outweighs a vote: 40% of (80 / 8).
        fc.update_latest_message(0, r(2), 0);
        assert_eq!(fc.find_head(&[3], 80).unwrap(), r(1));
        assert_eq!(fc.weight(&r(1)), Some(4));
        assert_eq!(fc.weight(&r(0)), Some(7));
        // A new slot resets it: the vote decides, and the boost leaves the weights.
        fc.on_tick(12);
        assert_eq!(fc.proposer_boost_root(), None);
        assert_eq!(fc.find_head(&[3], 80).unwrap(), r(2));
        assert_eq!(fc.weight(&r(1)), Some(0));
        assert_eq!(fc.weight(&r(0)), Some(3));
        // Late in its slot (3 s in): not timely.
        fc.on_tick(18 + 3);
        assert!(!fc.is_timely(3));
        fc.on_block(&block(r(3), r(1), 3, g, g)).unwrap();
        assert_eq!(fc.proposer_boost_root(), None);
    }

    #[test]
    fn equivocating_validators_lose_their_weight_for_good() {
        let mut fc = two_forks();
        fc.update_latest_message(0, r(2), 1);
        fc.update_latest_message(1, r(4), 1);
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(2));
        assert_eq!(fc.on_attester_slashing(&[0, 7], &[7, 0, 9]), 2);
        assert!(fc.is_equivocating(0) && fc.is_equivocating(7) && !fc.is_equivocating(9));
        assert_eq!(fc.on_attester_slashing(&[0], &[0]), 0);
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [5, 0, 0, 5, 5]);
        // Its new messages never count.
        fc.update_latest_message(0, r(2), 5);
        assert_eq!(fc.find_head(&[10, 5], 0).unwrap(), r(4));
        assert_eq!(weights(&fc), [5, 0, 0, 5, 5]);
        // Absurd indices are ignored.
        assert_eq!(fc.on_attester_slashing(&[u64::MAX], &[u64::MAX]), 0);
    }

    #[test]
    fn unrealized_justification_is_the_voting_source_of_past_epoch_tips() {
        let g = cp(0, r(0));
        let j1 = cp(1, r(1));
        let j2 = cp(2, r(1));
        let mut fc = genesis();
        fc.on_tick(fc.config().slot_start_time(9));
        fc.on_block(&block(r(1), r(0), 8, g, g)).unwrap();
        // A block of the current epoch (1) whose pulled-up justification is epoch 1: the
        // store's unrealized checkpoint moves, the realized one waits for the epoch.
        fc.on_block(&block(r(2), r(1), 9, g, j1)).unwrap();
        assert_eq!(fc.unrealized_justified_checkpoint(), j1);
        assert_eq!(fc.justified_checkpoint(), g);
        assert_eq!(
            fc.block_unrealized_checkpoints(&r(2)).map(|c| c.0),
            Some(j1)
        );
        // The next epoch's first slot realizes it.
        fc.on_tick(fc.config().slot_start_time(16));
        assert_eq!(fc.justified_checkpoint(), j1);
        // A block of a past epoch is realized at once.
        fc.on_block(&block(r(3), r(1), 10, g, j2)).unwrap();
        assert_eq!(fc.justified_checkpoint(), j2);
        // Its voting source is the pulled-up epoch 2: the only viable leaf (r(2)'s is 1,
        // and 1 + 2 < 4 once the store is in epoch 4).
        fc.on_tick(fc.config().slot_start_time(32));
        fc.update_latest_message(0, r(2), 3);
        assert_eq!(fc.find_head(&[100], 0).unwrap(), r(3));
    }

    #[test]
    fn invalid_payloads_and_their_descendants_are_never_the_head() {
        let g = cp(0, r(0));
        let mut fc = genesis();
        fc.on_tick(60);
        let with_hash = |fc: &mut ForkChoice, root: u8, parent: u8, slot: u64| {
            let mut b = block(r(root), r(parent), slot, g, g);
            b.execution_block_hash = [root; 32];
            fc.on_block(&b).unwrap();
        };
        // g ─ 1 ─ 2 ─ 3      (votes on 3)
        //       └ 4
        with_hash(&mut fc, 1, 0, 1);
        with_hash(&mut fc, 2, 1, 2);
        with_hash(&mut fc, 3, 2, 3);
        with_hash(&mut fc, 4, 1, 2);
        fc.update_latest_message(0, r(3), 0);
        assert_eq!(fc.find_head(&[10], 0).unwrap(), r(3));
        // A child of 3 is invalid, the latest valid payload being 1's: 3 and 2 are invalid.
        assert_eq!(fc.on_invalid_payload(&r(3), &[1; 32]), 2);
        assert!(fc.is_invalid(&r(2)) && fc.is_invalid(&r(3)) && !fc.is_invalid(&r(1)));
        assert_eq!(fc.find_head(&[10], 0).unwrap(), r(4));
        // A later block on the invalid branch is invalid too.
        with_hash(&mut fc, 5, 3, 4);
        assert_eq!(fc.find_head(&[10], 0).unwrap(), r(4));
        assert!(fc.is_invalid(&r(5)));
    }

    #[test]
    fn attestation_checks() {
        let g = cp(0, r(0));
        let mut fc = genesis();
        fc.on_tick(fc.config().slot_start_time(9));
        fc.on_block(&block(r(1), r(0), 3, g, g)).unwrap();
        fc.on_block(&block(r(2), r(1), 9, g, g)).unwrap();
        let vote = |slot, head, target: Checkpoint| AttestationVote {
            slot,
            beacon_block_root: head,
            target,
        };
        let err = |fc: &ForkChoice, v: AttestationVote, from_block| {
            fc.validate_on_attestation(&v, from_block).unwrap_err()
        };
        // Slot 8's attestation for r(1) with the epoch-1 checkpoint block r(1).
        assert!(fc
            .validate_on_attestation(&vote(8, r(1), cp(1, r(1))), false)
            .is_ok());
        assert!(matches!(
            err(&fc, vote(8, r(1), cp(0, r(1))), false),
            AttestationError::TargetEpochSlotMismatch { .. }
        ));
        assert!(matches!(
            err(&fc, vote(8, r(1), cp(1, r(0))), false),
            AttestationError::InconsistentTarget { .. }
        ));
        assert!(matches!(
            err(&fc, vote(8, r(1), cp(1, r(9))), false),
            AttestationError::UnknownTarget(_)
        ));
        assert!(matches!(
            err(&fc, vote(8, r(9), cp(1, r(1))), false),
            AttestationError::UnknownHeadBlock(_)
        ));
        assert!(matches!(
            err(&fc, vote(8, r(2), cp(1, r(1))), false),
            AttestationError::HeadBlockAfterSlot { .. }
        ));
        assert!(matches!(
            err(&fc, vote(9, r(2), cp(1, r(1))), false),
            AttestationError::TooEarly { .. }
        ));
        // Three epochs later, the target epoch is too old — unless it came in a block.
        fc.on_tick(fc.config().slot_start_time(30));
        assert!(matches!(
            err(&fc, vote(8, r(1), cp(1, r(1))), false),
            AttestationError::TargetEpochNotCurrent { .. }
        ));
        fc.on_attestation(&[4, 5], &vote(8, r(1), cp(1, r(1))), true)
            .unwrap();
        assert_eq!(fc.latest_vote(5), Some((r(1), 1)));
    }

    #[test]
    fn unknown_parent_and_duplicates() {
        let mut fc = two_forks();
        let g = cp(0, r(0));
        let err = fc.on_block_test(r(9), r(8), 9, g, g).unwrap_err();
        assert_eq!(
            err,
            ForkChoiceError::UnknownParent {
                root: r(9),
                parent: r(8),
                slot: 9
            }
        );
        assert!(err.to_string().contains("unknown parent"), "{err}");
        assert!(!fc.contains(&r(9)));
        assert_eq!(fc.len(), 5);

        // Duplicate: idempotent, nothing added, the tree unchanged.
        fc.update_latest_message(0, r(4), 1);
        assert_eq!(fc.find_head(&[3], 0).unwrap(), r(4));
        fc.on_block_test(r(4), r(3), 4, g, g).unwrap();
        fc.on_block_test(r(0), r(55), 0, g, g).unwrap(); // the anchor
        assert_eq!(fc.len(), 5);
        assert_eq!(fc.find_head(&[3], 0).unwrap(), r(4));
        assert_eq!(fc.weight(&r(4)), Some(3));

        // Same root, another parent or slot.
        assert!(matches!(
            fc.on_block_test(r(4), r(1), 4, g, g),
            Err(ForkChoiceError::DuplicateMismatch { .. })
        ));
        assert!(matches!(
            fc.on_block_test(r(4), r(3), 5, g, g),
            Err(ForkChoiceError::DuplicateMismatch { .. })
        ));
        // A slot not after the parent's.
        assert!(matches!(
            fc.on_block_test(r(6), r(4), 4, g, g),
            Err(ForkChoiceError::SlotNotAfterParent { .. })
        ));
        // A block that is its own parent is simply unknown.
        assert!(matches!(
            fc.on_block_test(r(7), r(7), 9, g, g),
            Err(ForkChoiceError::UnknownParent { .. })
        ));
        assert_eq!(fc.len(), 5);

        // Votes for unknown blocks and absurd validator indices are ignored.
        fc.update_latest_message(5, r(99), 1);
        fc.update_latest_message(u64::MAX, r(4), 1);
        fc.update_latest_message(MAX_VALIDATORS as u64, r(4), 1);
        assert_eq!(fc.latest_vote(5), None);
        assert_eq!(fc.latest_vote(u64::MAX), None);
        assert_eq!(fc.find_head(&[3, 0, 0, 0, 0, 50], 0).unwrap(), r(4));
        assert_eq!(fc.weight(&r(0)), Some(3));
    }

    #[test]
    fn prune_after_finalization() {
        // g ─ a1(1) ─ a2(2)
        //   └ b1(3) ─ b2(4) ─ b3(5)
        let g = r(0);
        let g0 = cp(0, g);
        let fin = cp(1, r(3));
        let mut fc = ForkChoice::new(cfg(), g, 0, g0);
        fc.on_block_test(r(1), g, 1, g0, g0).unwrap();
        fc.on_block_test(r(2), r(1), 2, g0, g0).unwrap();
        fc.on_block_test(r(3), g, 3, g0, g0).unwrap();
        fc.on_block_test(r(4), r(3), 40, fin, g0).unwrap();
        fc.on_block_test(r(5), r(4), 41, fin, g0).unwrap();
        fc.update_latest_message(0, r(2), 1);
        fc.update_latest_message(1, r(5), 1);
        fc.update_latest_message(2, r(3), 1);
        let balances = [10, 20, 5, 0];
        assert_eq!(fc.find_head(&balances, 0).unwrap(), r(5));
        assert_eq!(fc.weight(&g), Some(35));

        // Validator 2's next vote goes to a block about to be pruned.
        fc.update_latest_message(2, r(1), 2);
        fc.update_checkpoints(fin, fin);
        assert_eq!(fc.prune().unwrap(), 3);
        assert_eq!(fc.len(), 3);
        for n in [0, 1, 2] {
            assert!(!fc.contains(&r(n)));
        }
        assert!(fc.is_descendant(&r(3), &r(5)));
        assert_eq!(fc.parent_root(&r(3)), Some(g));

        // Validator 2's 5 leaves b1 (its old block), and lands nowhere.
        assert_eq!(fc.find_head(&balances, 0).unwrap(), r(5));
        assert_eq!(fc.weight(&r(3)), Some(20));
        assert_eq!(fc.weight(&r(4)), Some(20));
        assert_eq!(fc.weight(&r(5)), Some(20));

        // Validator 0 (on pruned a2) moves onto b2; its old block is gone.
        fc.update_latest_message(0, r(4), 2);
        // Votes for pruned blocks are ignored.
        fc.update_latest_message(1, r(2), 5);
        fc.update_latest_message(3, r(1), 5);
        assert_eq!(fc.latest_vote(1), Some((r(5), 1)));
        assert_eq!(fc.latest_vote(3), None);
        assert_eq!(fc.find_head(&balances, 0).unwrap(), r(5));
        assert_eq!(fc.weight(&r(3)), Some(30));
        assert_eq!(fc.weight(&r(4)), Some(30));
        assert_eq!(fc.weight(&r(5)), Some(20));

        // Indices stay consistent: blocks can be added and win.
        fc.on_block_test(r(6), r(4), 42, fin, fin).unwrap();
        assert!(fc.on_block_test(r(7), r(2), 43, fin, fin).is_err());
        fc.update_latest_message(3, r(6), 5);
        assert_eq!(fc.find_head(&[10, 20, 5, 25], 0).unwrap(), r(6));
        assert_eq!(fc.weight(&r(6)), Some(25));
        assert_eq!(fc.weight(&r(5)), Some(20));
        assert_eq!(fc.weight(&r(4)), Some(55));
        assert!(fc.is_descendant(&r(3), &r(6)));
        assert_eq!(fc.block_slot(&r(6)), Some(42));

        // Pruning again removes nothing.
        assert_eq!(fc.prune().unwrap(), 0);
        assert_eq!(fc.find_head(&[10, 20, 5, 25], 0).unwrap(), r(6));
        assert_eq!(fc.weight(&r(3)), Some(55));
    }

    /// A store modelled the spec's way (`filter_block_tree`, `get_head` by recursion over
    /// children), recomputed from scratch.
    struct Reference {
        /// root → (parent, slot, justified)
        blocks: HashMap<Root, (Option<Root>, u64, Checkpoint)>,
        votes: HashMap<u64, (Root, u64)>,
        justified: Checkpoint,
        finalized: Checkpoint,
        current_epoch: u64,
    }

    impl Reference {
        fn ancestor(&self, root: &Root, slot: u64) -> Root {
            let mut cur = *root;
            loop {
                let (parent, s, _) = self.blocks[&cur];
                match parent {
                    Some(p) if s > slot && self.blocks.contains_key(&p) => cur = p,
                    _ => return cur,
                }
            }
        }

        fn descends(&self, ancestor: &Root, root: &Root) -> bool {
            let mut cur = Some(*root);
            while let Some(c) = cur {
                if c == *ancestor {
                    return true;
                }
                cur = self.blocks.get(&c).and_then(|b| b.0);
            }
            false
        }

        fn children(&self) -> HashMap<Root, Vec<Root>> {
            let mut children: HashMap<Root, Vec<Root>> = HashMap::new();
            for (root, (parent, _, _)) in &self.blocks {
                if let Some(parent) = parent {
                    children.entry(*parent).or_default().push(*root);
                }
            }
            children
        }

        /// The spec's `on_block` checks (the time never refuses here).
        fn accepts(&self, parent: &Root, slot: u64) -> bool {
            let finalized_slot = self.finalized.epoch * 8;
            self.blocks.contains_key(parent)
                && slot > finalized_slot
                && self.ancestor(parent, finalized_slot) == self.finalized.root
        }

        fn vote(&mut self, validator: u64, root: Root, epoch: u64) {
            if !self.blocks.contains_key(&root) {
                return;
            }
            match self.votes.get(&validator) {
                Some(&(_, e)) if epoch <= e => {}
                _ => {
                    self.votes.insert(validator, (root, epoch));
                }
            }
        }

        fn weights(&self, balances: &[u64]) -> HashMap<Root, u64> {
            let mut weights: HashMap<Root, u64> = self.blocks.keys().map(|r| (*r, 0)).collect();
            for (&v, &(root, _)) in &self.votes {
                let balance = balances.get(v as usize).copied().unwrap_or(0);
                let mut cur = Some(root);
                while let Some(c) = cur {
                    match weights.get_mut(&c) {
                        Some(w) => *w += balance,
                        None => break,
                    }
                    cur = self.blocks.get(&c).and_then(|b| b.0);
                }
            }
            weights
        }

        /// `filter_block_tree`'s leaf test (unrealized = realized in these trees).
        fn leaf_viable(&self, root: &Root) -> bool {
            let (_, slot, justified) = self.blocks[root];
            let _ = slot;
            let correct_justified = self.justified.epoch == 0
                || justified.epoch == self.justified.epoch
                || justified.epoch + 2 >= self.current_epoch;
            let correct_finalized = self.finalized.epoch == 0
                || self.ancestor(root, self.finalized.epoch * 8) == self.finalized.root;
            correct_justified && correct_finalized
        }

        fn filter(
            &self,
            root: &Root,
            children: &HashMap<Root, Vec<Root>>,
            memo: &mut HashMap<Root, bool>,
        ) -> bool {
            if let Some(&known) = memo.get(root) {
                return known;
            }
            let kids = children.get(root).cloned().unwrap_or_default();
            let keep = if kids.is_empty() {
                self.leaf_viable(root)
            } else {
                let results: Vec<bool> = kids
                    .iter()
                    .map(|c| self.filter(c, children, memo))
                    .collect();
                results.into_iter().any(|x| x)
            };
            memo.insert(*root, keep);
            keep
        }

        fn head(&self, balances: &[u64]) -> Option<Root> {
            if !self.blocks.contains_key(&self.justified.root)
                || !self.blocks.contains_key(&self.finalized.root)
            {
                return None;
            }
            let weights = self.weights(balances);
            let children = self.children();
            let mut memo = HashMap::new();
            let mut head = self.justified.root;
            loop {
                let best = children
                    .get(&head)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|c| self.filter(c, &children, &mut memo))
                    .max_by_key(|c| (weights[c], *c));
                match best {
                    Some(c) => head = c,
                    None => return Some(head),
                }
            }
        }
    }

    fn random_root(rng: &mut StdRng) -> Root {
        let mut root = [0u8; 32];
        rng.fill(&mut root[..]);
        root
    }

    fn run_random(seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let validators = 64u64;
        let genesis = random_root(&mut rng);
        let g = cp(0, genesis);
        let mut fc = ForkChoice::new(cfg(), genesis, 0, g);
        let mut reference = Reference {
            blocks: HashMap::from([(genesis, (None, 0, g))]),
            votes: HashMap::new(),
            justified: g,
            finalized: g,
            current_epoch: 0,
        };
        let mut pruned: Vec<Root> = Vec::new();
        let mut epoch = 0u64;
        let mut balances: Vec<u64> = Vec::new();

        for _batch in 0..5 {
            // ~40 blocks on random parents; mostly the parent's justification, sometimes a
            // newer one (justifying one of the parent's ancestors).
            for _ in 0..40 {
                let mut roots: Vec<Root> = reference.blocks.keys().copied().collect();
                roots.sort();
                let parent = roots[rng.random_range(0..roots.len())];
                let parent_justified = reference.blocks[&parent].2;
                let justified = if rng.random_range(0..10) < 7 {
                    parent_justified
                } else {
                    let mut ancestor = parent;
                    while rng.random_range(0..3) > 0 {
                        match reference.blocks[&ancestor].0 {
                            Some(p) if reference.blocks.contains_key(&p) => ancestor = p,
                            _ => break,
                        }
                    }
                    cp(parent_justified.epoch + rng.random_range(1..=2), ancestor)
                };
                let root = random_root(&mut rng);
                let slot = reference.blocks[&parent].1 + rng.random_range(1..=4);
                let accepted = reference.accepts(&parent, slot);
                let got = fc.on_block_test(root, parent, slot, justified, reference.finalized);
                assert_eq!(got.is_ok(), accepted, "seed {seed}: {got:?}");
                if accepted {
                    reference
                        .blocks
                        .insert(root, (Some(parent), slot, justified));
                }
                // on_block realized the block's checkpoints in the store.
                reference.justified = fc.justified_checkpoint();
            }
            reference.current_epoch = fc.current_epoch();
            assert_eq!(fc.len(), reference.blocks.len(), "seed {seed}");

            for _round in 0..4 {
                epoch += 1;
                let mut roots: Vec<Root> = reference.blocks.keys().copied().collect();
                roots.sort();
                for _ in 0..rng.random_range(0..validators) {
                    let v = rng.random_range(0..validators);
                    let root = if !pruned.is_empty() && rng.random_range(0..10) == 0 {
                        pruned[rng.random_range(0..pruned.len())]
                    } else {
                        roots[rng.random_range(0..roots.len())]
                    };
                    // Sometimes a stale message, which must be ignored.
                    let target = epoch.saturating_sub(rng.random_range(0..3));
                    fc.update_latest_message(v, root, target);
                    reference.vote(v, root, target);
                }
                if balances.is_empty() || rng.random_range(0..2) == 0 {
                    let len = rng.random_range(48..=validators as usize);
                    balances = (0..len).map(|_| rng.random_range(0..=4)).collect();
                }
                // Sometimes the store moves on by epochs.
                if rng.random_range(0..3) == 0 {
                    fc.on_tick(fc.time() + 48 * rng.random_range(1..=3));
                    reference.current_epoch = fc.current_epoch();
                }

                let expected = reference.head(&balances);
                let got = fc.find_head(&balances, 0).ok();
                assert_eq!(expected, got, "seed {seed}");
                for (root, weight) in reference.weights(&balances) {
                    assert_eq!(fc.weight(&root), Some(weight), "seed {seed}");
                }

                // Sometimes finalize the justified checkpoint and prune.
                if rng.random_range(0..4) == 0
                    && reference.justified.epoch > reference.finalized.epoch
                    && reference.blocks.contains_key(&reference.justified.root)
                {
                    let finalized = reference.justified;
                    fc.update_checkpoints(finalized, finalized);
                    reference.finalized = finalized;
                    let before = reference.blocks.len();
                    let keep: HashSet<Root> = reference
                        .blocks
                        .keys()
                        .filter(|r| reference.descends(&finalized.root, r))
                        .copied()
                        .collect();
                    pruned.extend(reference.blocks.keys().filter(|r| !keep.contains(*r)));
                    reference.blocks.retain(|r, _| keep.contains(r));
                    assert_eq!(
                        fc.prune().unwrap(),
                        before - reference.blocks.len(),
                        "seed {seed}"
                    );
                    assert_eq!(fc.len(), reference.blocks.len(), "seed {seed}");
                    for r in &pruned {
                        assert!(!fc.contains(r), "seed {seed}");
                    }
                }
            }
        }
    }

    #[test]
    fn random_trees_match_reference() {
        let mut seeds = rand::rng();
        for _ in 0..40 {
            run_random(seeds.random_range(0..u64::MAX));
        }
    }
}
