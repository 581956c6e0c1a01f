//! LMD-GHOST fork choice over a proto-array, with justification and finalization
//! filtering.
//!
//! The head is what the consensus spec's `get_head` returns: start at the store's
//! justified block and repeatedly step to the child with the greatest weight (the summed
//! effective balances of the validators whose latest message is that child or one of its
//! descendants), ties broken by the lexicographically higher root, considering only
//! children under which a block *viable for head* exists. The bookkeeping is the
//! proto-array's (Lighthouse's `consensus/proto_array`, Prysm's doubly-linked tree):
//!
//! * blocks live in a `Vec` in insertion order, so a parent always has a smaller index
//!   than its children, with a `HashMap` from root to index;
//! * every validator has a vote tracker (the root its weight currently sits on, the root
//!   of its latest message and that message's target epoch);
//! * [`ForkChoice::find_head`] turns the vote and balance changes since the last call into
//!   per-node deltas (the old balance comes off the old root, the new balance goes onto the
//!   new root), back-propagates them from the end of the array to the start, and then, in
//!   a second backward pass, recomputes every node's best child and best descendant. The
//!   head is the justified node's best descendant. The whole call is O(nodes + votes).
//!
//! A node is viable for head when its post state's justified checkpoint equals the
//! store's (or the store's justified checkpoint is still the anchor's — the genesis epoch
//! 0, or a non-genesis anchor such as a checkpoint-sync state) and it descends from
//! (or is) the finalized block. As in proto-array, a node "leads to a viable head" when it
//! is viable itself or one of its descendants is. Best children are recomputed from
//! scratch on every call rather than patched: patching compares a child against a sibling
//! whose best descendant may not be updated yet, which can leave a stale choice when
//! viability changes.
//!
//! Not modelled (the node does not need them for verification): proposer boost,
//! unrealized justification ("pull-up" of tips), equivocating validators, the
//! execution-payload status. Votes for blocks fork choice does not know are ignored, as
//! the spec's `on_attestation` refuses them; the caller re-submits them once the block is
//! imported. Nothing here panics on any input: bad inputs are errors or ignored votes.

use std::collections::HashMap;
use std::fmt;

use crate::store::Checkpoint;

/// A block root.
pub type Root = [u8; 32];

/// The genesis epoch: while the store's justified checkpoint is at this epoch every block
/// passes the justification filter.
const GENESIS_EPOCH: u64 = 0;

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

/// Why fork choice refused a block or could not find a head.
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
    /// Nothing under the justified block is viable for head (the store's checkpoints do not
    /// match any block's, or the justified block does not descend from the finalized one).
    #[error(
        "best node {} under the justified checkpoint ({}) is not viable for head (its own justified epoch is {head_justified_epoch}, or it does not descend from the finalized block)",
        Hex(.head), Cp(.justified)
    )]
    InvalidBestNode {
        justified: Checkpoint,
        head: Root,
        head_justified_epoch: u64,
    },
    /// Applying the vote changes would take a weight below zero or past `u64::MAX` (an
    /// internal inconsistency, or balances that sum past `u64::MAX`). Nothing is changed.
    #[error("weight {weight} of block {} with delta {delta} leaves the u64 range", Hex(.root))]
    InvalidWeight {
        root: Root,
        weight: u64,
        delta: i128,
    },
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
    /// Summed balances of the votes on this block and its descendants.
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
}

/// Proto-array LMD-GHOST fork choice (see the module docs).
#[derive(Debug, Clone)]
pub struct ForkChoice {
    nodes: Vec<ProtoNode>,
    indices: HashMap<Root, usize>,
    votes: Vec<VoteTracker>,
    /// The balances the current weights were computed with.
    balances: Vec<u64>,
    justified: Checkpoint,
    finalized: Checkpoint,
    /// The checkpoint the store started from (genesis, or a checkpoint-sync anchor).
    anchor: Checkpoint,
}

impl ForkChoice {
    /// Anchor = the genesis/finalized block; justified and finalized start at the anchor
    /// checkpoint (whose root should be `anchor_root`).
    pub fn new(anchor_root: Root, anchor_slot: u64, anchor_epoch_checkpoint: Checkpoint) -> Self {
        let anchor = ProtoNode {
            root: anchor_root,
            parent_root: None,
            parent: None,
            slot: anchor_slot,
            justified: anchor_epoch_checkpoint,
            finalized: anchor_epoch_checkpoint,
            weight: 0,
            best_child: None,
            best_descendant: None,
        };
        let mut indices = HashMap::new();
        indices.insert(anchor_root, 0);
        Self {
            nodes: vec![anchor],
            indices,
            votes: Vec::new(),
            balances: Vec::new(),
            justified: anchor_epoch_checkpoint,
            finalized: anchor_epoch_checkpoint,
            anchor: anchor_epoch_checkpoint,
        }
    }

    /// A verified block with the justified/finalized checkpoints of its post state.
    /// Idempotent for a known root (the anchor accepts any parent and slot; another known
    /// block must come with the same parent and slot). The store's checkpoints are not
    /// changed here: the node passes them to [`ForkChoice::update_checkpoints`].
    pub fn on_block(
        &mut self,
        root: Root,
        parent_root: Root,
        slot: u64,
        justified: Checkpoint,
        finalized: Checkpoint,
    ) -> Result<(), ForkChoiceError> {
        if let Some(known) = self.indices.get(&root).and_then(|&i| self.nodes.get(i)) {
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
        if slot <= parent.slot {
            return Err(ForkChoiceError::SlotNotAfterParent {
                root,
                slot,
                parent: parent_root,
                parent_slot: parent.slot,
            });
        }
        let index = self.nodes.len();
        self.nodes.push(ProtoNode {
            root,
            parent_root: Some(parent_root),
            parent: Some(parent_index),
            slot,
            justified,
            finalized,
            weight: 0,
            best_child: None,
            best_descendant: None,
        });
        self.indices.insert(root, index);
        Ok(())
    }

    /// Latest message of a validator (kept only if `target_epoch` is newer than its
    /// previous vote). Ignored for a block fork choice does not know (never imported or
    /// pruned) and for a validator index of [`MAX_VALIDATORS`] or more. The weight moves at
    /// the next [`ForkChoice::find_head`].
    pub fn on_attestation(&mut self, validator_index: u64, block_root: Root, target_epoch: u64) {
        let Ok(index) = usize::try_from(validator_index) else {
            return;
        };
        if index >= MAX_VALIDATORS || !self.indices.contains_key(&block_root) {
            return;
        }
        if self.votes.len() <= index {
            self.votes
                .resize(index.saturating_add(1), VoteTracker::default());
        }
        if let Some(vote) = self.votes.get_mut(index) {
            if vote.next_root.is_none() || target_epoch > vote.next_epoch {
                vote.next_root = Some(block_root);
                vote.next_epoch = target_epoch;
            }
        }
    }

    /// The store's checkpoints (the node passes the best justified/finalized it has seen);
    /// each replaces the current one only if its epoch is higher.
    pub fn update_checkpoints(&mut self, justified: Checkpoint, finalized: Checkpoint) {
        if justified.epoch > self.justified.epoch {
            self.justified = justified;
        }
        if finalized.epoch > self.finalized.epoch {
            self.finalized = finalized;
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

    /// Applies the vote changes since the last call and returns the head.
    ///
    /// `justified_balances[v]` is validator `v`'s effective balance in the justified state
    /// (0 beyond the slice). Balances may change between calls: a vote's old weight leaves
    /// its old block with the old balance, its new weight lands on its new block with the
    /// new balance. The head is the best descendant of the justified block among the nodes
    /// viable for head (see the module docs); ties go to the higher root. On an error
    /// nothing has changed, except after [`ForkChoiceError::InvalidBestNode`], where the
    /// weights are updated but no head is viable.
    pub fn find_head(&mut self, justified_balances: &[u64]) -> Result<Root, ForkChoiceError> {
        let justified_index = self.index_of(&self.justified.root, "justified")?;
        let finalized_index = self.index_of(&self.finalized.root, "finalized")?;

        let deltas = self.compute_deltas(justified_balances);
        let weights = self.propagated_weights(deltas)?;
        for (node, weight) in self.nodes.iter_mut().zip(weights) {
            node.weight = weight;
        }
        for vote in &mut self.votes {
            vote.current_root = vote.next_root;
        }
        self.balances.clear();
        self.balances.extend_from_slice(justified_balances);

        let viable = self.viable_for_head(finalized_index);
        self.update_best_descendants(&viable);

        let head_index = self
            .nodes
            .get(justified_index)
            .and_then(|node| node.best_descendant)
            .unwrap_or(justified_index);
        let Some(head) = self.nodes.get(head_index) else {
            return Err(ForkChoiceError::UnknownBlock {
                role: "justified",
                root: self.justified.root,
            });
        };
        if viable.get(head_index).copied().unwrap_or(false) {
            Ok(head.root)
        } else {
            Err(ForkChoiceError::InvalidBestNode {
                justified: self.justified,
                head: head.root,
                head_justified_epoch: head.justified.epoch,
            })
        }
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

    /// Per-node weight changes from the votes and balances that changed since the last
    /// `find_head` (not yet propagated to ancestors). Roots no longer known are skipped.
    fn compute_deltas(&self, new_balances: &[u64]) -> Vec<i128> {
        let mut deltas = vec![0i128; self.nodes.len()];
        for (validator, vote) in self.votes.iter().enumerate() {
            let old_balance = self.balances.get(validator).copied().unwrap_or(0);
            let new_balance = new_balances.get(validator).copied().unwrap_or(0);
            if vote.current_root == vote.next_root && old_balance == new_balance {
                continue;
            }
            if let Some(delta) = vote
                .current_root
                .and_then(|root| self.indices.get(&root))
                .and_then(|&i| deltas.get_mut(i))
            {
                *delta = delta.saturating_sub(i128::from(old_balance));
            }
            if let Some(delta) = vote
                .next_root
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

    /// For every node: viable for head (the justification filter, and descends from the
    /// finalized block).
    fn viable_for_head(&self, finalized_index: usize) -> Vec<bool> {
        // Nothing justified since the anchor: like genesis, every branch may be the head
        // (blocks after a non-genesis anchor carry the older justification of its state).
        let any_justified = self.justified.epoch == GENESIS_EPOCH || self.justified == self.anchor;
        let mut descends: Vec<bool> = Vec::with_capacity(self.nodes.len());
        let mut viable = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let from_finalized = i == finalized_index
                || node
                    .parent
                    .and_then(|p| descends.get(p).copied())
                    .unwrap_or(false);
            descends.push(from_finalized);
            viable.push(from_finalized && (any_justified || node.justified == self.justified));
        }
        viable
    }

    /// Recomputes every node's best child and best descendant in one backward pass: when a
    /// node is reached all its descendants (higher indices) are final, so it is offered to
    /// its parent with its final weight and best descendant.
    fn update_best_descendants(&mut self, viable: &[bool]) {
        for node in &mut self.nodes {
            node.best_child = None;
            node.best_descendant = None;
        }
        for index in (0..self.nodes.len()).rev() {
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            let leads_to_viable_head =
                viable.get(index).copied().unwrap_or(false) || node.best_child.is_some();
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

    /// Genesis r(0) at slot 0, justified and finalized at epoch 0.
    fn genesis() -> ForkChoice {
        ForkChoice::new(r(0), 0, cp(0, r(0)))
    }

    fn add(fc: &mut ForkChoice, root: u8, parent: u8, slot: u64) {
        let g = cp(0, r(0));
        fc.on_block(r(root), r(parent), slot, g, g).expect("block");
    }

    #[test]
    fn linear_chain_head_is_tip() {
        let mut fc = genesis();
        for n in 1..=5u8 {
            add(&mut fc, n, n - 1, u64::from(n));
        }
        assert_eq!(fc.len(), 6);
        assert!(!fc.is_empty());
        assert_eq!(fc.find_head(&[]).unwrap(), r(5));

        // Votes on an ancestor: the tip stays the head; the weight sits on r(2) and below.
        fc.on_attestation(0, r(2), 0);
        fc.on_attestation(1, r(2), 0);
        assert_eq!(fc.find_head(&[10, 20]).unwrap(), r(5));
        assert_eq!(fc.weight(&r(0)), Some(30));
        assert_eq!(fc.weight(&r(1)), Some(30));
        assert_eq!(fc.weight(&r(2)), Some(30));
        assert_eq!(fc.weight(&r(3)), Some(0));
        assert_eq!(fc.weight(&r(5)), Some(0));

        // One vote moves to the tip.
        fc.on_attestation(1, r(5), 1);
        assert_eq!(fc.find_head(&[10, 20]).unwrap(), r(5));
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
        assert_eq!(fc.find_head(&[10, 5]).unwrap(), r(4));

        fc.on_attestation(0, r(2), 1);
        fc.on_attestation(1, r(4), 1);
        assert_eq!(fc.find_head(&[10, 5]).unwrap(), r(2));
        assert_eq!(weights(&fc), [15, 10, 10, 5, 5]);

        // Validator 0 moves to the other fork: the head switches.
        fc.on_attestation(0, r(4), 2);
        assert_eq!(fc.find_head(&[10, 5]).unwrap(), r(4));
        assert_eq!(weights(&fc), [15, 0, 0, 15, 15]);

        // A message that is not newer is ignored.
        fc.on_attestation(0, r(2), 2);
        fc.on_attestation(0, r(2), 1);
        assert_eq!(fc.latest_vote(0), Some((r(4), 2)));
        assert_eq!(fc.find_head(&[10, 5]).unwrap(), r(4));
        assert_eq!(weights(&fc), [15, 0, 0, 15, 15]);

        // Back to fork 1 and a new validator on fork 2.
        fc.on_attestation(0, r(2), 3);
        fc.on_attestation(2, r(3), 3);
        assert_eq!(fc.find_head(&[10, 5, 4]).unwrap(), r(2));
        assert_eq!(weights(&fc), [19, 10, 10, 9, 5]);
    }

    #[test]
    fn balance_changes_move_exact_weights() {
        let mut fc = two_forks();
        fc.on_attestation(0, r(2), 1);
        fc.on_attestation(1, r(4), 1);
        assert_eq!(fc.find_head(&[10, 5]).unwrap(), r(2));
        assert_eq!(weights(&fc), [15, 10, 10, 5, 5]);

        // Same votes, validator 0's balance drops: fork 2 is now heavier.
        assert_eq!(fc.find_head(&[4, 5]).unwrap(), r(4));
        assert_eq!(weights(&fc), [9, 4, 4, 5, 5]);

        // Validator 1 beyond the slice weighs 0.
        assert_eq!(fc.find_head(&[4]).unwrap(), r(2));
        assert_eq!(weights(&fc), [4, 4, 4, 0, 0]);

        // A vote move and a balance change together: the old balance (4) comes off r(2),
        // the new one (7) lands on r(4); validator 1 is back with 5.
        fc.on_attestation(0, r(4), 2);
        assert_eq!(fc.find_head(&[7, 5]).unwrap(), r(4));
        assert_eq!(weights(&fc), [12, 0, 0, 12, 12]);

        // Everything to zero, then back.
        assert_eq!(fc.find_head(&[]).unwrap(), r(4));
        assert_eq!(weights(&fc), [0; 5]);
        assert_eq!(fc.find_head(&[1, 2]).unwrap(), r(4));
        assert_eq!(weights(&fc), [3, 0, 0, 3, 3]);
    }

    #[test]
    fn equal_weights_tie_break_by_higher_root() {
        let mut fc = genesis();
        add(&mut fc, 1, 0, 1);
        add(&mut fc, 2, 0, 1);
        fc.on_attestation(0, r(1), 1);
        fc.on_attestation(1, r(2), 1);
        assert_eq!(fc.find_head(&[8, 8]).unwrap(), r(2));
        assert_eq!(fc.weight(&r(1)), Some(8));
        assert_eq!(fc.weight(&r(2)), Some(8));
        // One more unit on r(1) wins.
        assert_eq!(fc.find_head(&[9, 8]).unwrap(), r(1));
        // Equal again.
        assert_eq!(fc.find_head(&[8, 8]).unwrap(), r(2));
        // Order of insertion does not matter: a new, higher, equal-weight sibling wins.
        add(&mut fc, 3, 0, 2);
        fc.on_attestation(2, r(3), 1);
        assert_eq!(fc.find_head(&[8, 8, 8]).unwrap(), r(3));
        // And the tie-break works below the first level too.
        add(&mut fc, 5, 3, 3);
        add(&mut fc, 4, 3, 3);
        assert_eq!(fc.find_head(&[8, 8, 8]).unwrap(), r(5));
    }

    #[test]
    fn branch_with_other_justification_is_not_viable() {
        // Anchor at epoch 1 (a checkpoint-sync anchor).
        let g = r(0);
        let j1 = cp(1, g);
        let j2 = cp(2, g);
        let mut fc = ForkChoice::new(g, 32, j1);
        // Fork A keeps the anchor's justification; fork B justified epoch 2.
        fc.on_block(r(1), g, 33, j1, j1).unwrap();
        fc.on_block(r(2), r(1), 34, j1, j1).unwrap();
        fc.on_block(r(3), g, 80, j2, j1).unwrap();
        fc.on_block(r(4), r(3), 81, j2, j1).unwrap();
        fc.on_attestation(0, r(2), 2);
        fc.on_attestation(1, r(4), 2);
        let balances = [10, 100];
        // While the store's justified checkpoint is still the anchor's, both forks are
        // viable (as from genesis): the heavier one leads.
        assert_eq!(fc.find_head(&balances).unwrap(), r(4));
        assert_eq!(fc.weight(&r(4)), Some(100));
        assert_eq!(fc.weight(&r(2)), Some(10));

        // A lower or equal epoch does not replace the store's checkpoints.
        fc.update_checkpoints(cp(0, r(4)), cp(1, r(4)));
        assert_eq!(fc.justified_checkpoint(), j1);
        assert_eq!(fc.finalized_checkpoint(), j1);

        fc.update_checkpoints(j2, j1);
        assert_eq!(fc.justified_checkpoint(), j2);
        assert_eq!(fc.find_head(&balances).unwrap(), r(4));

        // Now fork A is the non-viable one, whatever its votes.
        fc.on_attestation(1, r(2), 3);
        assert_eq!(fc.find_head(&balances).unwrap(), r(4));
        assert_eq!(fc.weight(&r(2)), Some(110));
        assert_eq!(fc.weight(&r(4)), Some(0));
    }

    #[test]
    fn find_head_errors() {
        let mut fc = two_forks();
        // Justified at a known block whose subtree has no block with that justification.
        fc.update_checkpoints(cp(1, r(1)), cp(0, r(0)));
        let err = fc.find_head(&[]).unwrap_err();
        assert!(
            matches!(err, ForkChoiceError::InvalidBestNode { head, .. } if head == r(1)),
            "{err}"
        );
        assert!(err.to_string().contains("not viable"), "{err}");
        // Justified at an unknown block.
        fc.update_checkpoints(cp(2, r(77)), cp(0, r(0)));
        let err = fc.find_head(&[]).unwrap_err();
        assert_eq!(
            err,
            ForkChoiceError::UnknownBlock {
                role: "justified",
                root: r(77)
            }
        );
        assert!(err.to_string().contains("0x4d00"), "{err}");
    }

    #[test]
    fn unknown_parent_and_duplicates() {
        let mut fc = two_forks();
        let g = cp(0, r(0));
        let err = fc.on_block(r(9), r(8), 9, g, g).unwrap_err();
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
        fc.on_attestation(0, r(4), 1);
        assert_eq!(fc.find_head(&[3]).unwrap(), r(4));
        fc.on_block(r(4), r(3), 4, g, g).unwrap();
        fc.on_block(r(0), r(55), 0, g, g).unwrap(); // the anchor
        assert_eq!(fc.len(), 5);
        assert_eq!(fc.find_head(&[3]).unwrap(), r(4));
        assert_eq!(fc.weight(&r(4)), Some(3));

        // Same root, another parent or slot.
        assert!(matches!(
            fc.on_block(r(4), r(1), 4, g, g),
            Err(ForkChoiceError::DuplicateMismatch { .. })
        ));
        assert!(matches!(
            fc.on_block(r(4), r(3), 5, g, g),
            Err(ForkChoiceError::DuplicateMismatch { .. })
        ));
        // A slot not after the parent's.
        assert!(matches!(
            fc.on_block(r(6), r(4), 4, g, g),
            Err(ForkChoiceError::SlotNotAfterParent { .. })
        ));
        // A block that is its own parent is simply unknown.
        assert!(matches!(
            fc.on_block(r(7), r(7), 9, g, g),
            Err(ForkChoiceError::UnknownParent { .. })
        ));
        assert_eq!(fc.len(), 5);

        // Votes for unknown blocks and absurd validator indices are ignored.
        fc.on_attestation(5, r(99), 1);
        fc.on_attestation(u64::MAX, r(4), 1);
        fc.on_attestation(MAX_VALIDATORS as u64, r(4), 1);
        assert_eq!(fc.latest_vote(5), None);
        assert_eq!(fc.latest_vote(u64::MAX), None);
        assert_eq!(fc.find_head(&[3, 0, 0, 0, 0, 50]).unwrap(), r(4));
        assert_eq!(fc.weight(&r(0)), Some(3));
    }

    #[test]
    fn prune_after_finalization() {
        // g ─ a1(1) ─ a2(2)
        //   └ b1(3) ─ b2(4) ─ b3(5)
        let g = r(0);
        let g0 = cp(0, g);
        let fin = cp(1, r(3));
        let mut fc = ForkChoice::new(g, 0, g0);
        fc.on_block(r(1), g, 1, g0, g0).unwrap();
        fc.on_block(r(2), r(1), 2, g0, g0).unwrap();
        fc.on_block(r(3), g, 3, g0, g0).unwrap();
        fc.on_block(r(4), r(3), 40, fin, g0).unwrap();
        fc.on_block(r(5), r(4), 41, fin, g0).unwrap();
        fc.on_attestation(0, r(2), 1);
        fc.on_attestation(1, r(5), 1);
        fc.on_attestation(2, r(3), 1);
        let balances = [10, 20, 5, 0];
        assert_eq!(fc.find_head(&balances).unwrap(), r(5));
        assert_eq!(fc.weight(&g), Some(35));

        // Validator 2's next vote goes to a block about to be pruned.
        fc.on_attestation(2, r(1), 2);
        fc.update_checkpoints(fin, fin);
        assert_eq!(fc.prune().unwrap(), 3);
        assert_eq!(fc.len(), 3);
        for n in [0, 1, 2] {
            assert!(!fc.contains(&r(n)));
        }
        assert!(fc.is_descendant(&r(3), &r(5)));
        assert_eq!(fc.parent_root(&r(3)), Some(g));

        // Validator 2's 5 leaves b1 (its old block), and lands nowhere.
        assert_eq!(fc.find_head(&balances).unwrap(), r(5));
        assert_eq!(fc.weight(&r(3)), Some(20));
        assert_eq!(fc.weight(&r(4)), Some(20));
        assert_eq!(fc.weight(&r(5)), Some(20));

        // Validator 0 (on pruned a2) moves onto b2; its old block is gone.
        fc.on_attestation(0, r(4), 2);
        // Votes for pruned blocks are ignored.
        fc.on_attestation(1, r(2), 5);
        fc.on_attestation(3, r(1), 5);
        assert_eq!(fc.latest_vote(1), Some((r(5), 1)));
        assert_eq!(fc.latest_vote(3), None);
        assert_eq!(fc.find_head(&balances).unwrap(), r(5));
        assert_eq!(fc.weight(&r(3)), Some(30));
        assert_eq!(fc.weight(&r(4)), Some(30));
        assert_eq!(fc.weight(&r(5)), Some(20));

        // Indices stay consistent: blocks can be added and win.
        fc.on_block(r(6), r(4), 42, fin, fin).unwrap();
        assert!(fc.on_block(r(7), r(2), 43, fin, fin).is_err());
        fc.on_attestation(3, r(6), 5);
        assert_eq!(fc.find_head(&[10, 20, 5, 25]).unwrap(), r(6));
        assert_eq!(fc.weight(&r(6)), Some(25));
        assert_eq!(fc.weight(&r(5)), Some(20));
        assert_eq!(fc.weight(&r(4)), Some(55));
        assert!(fc.is_descendant(&r(3), &r(6)));
        assert_eq!(fc.block_slot(&r(6)), Some(42));

        // Pruning again removes nothing.
        assert_eq!(fc.prune().unwrap(), 0);
        assert_eq!(fc.find_head(&[10, 20, 5, 25]).unwrap(), r(6));
        assert_eq!(fc.weight(&r(3)), Some(55));
    }

    /// A store modelled the spec's way, recomputed from scratch.
    struct Reference {
        blocks: HashMap<Root, (Option<Root>, Checkpoint)>,
        votes: HashMap<u64, (Root, u64)>,
        justified: Checkpoint,
        finalized: Checkpoint,
    }

    #[derive(Debug, PartialEq)]
    enum RefError {
        UnknownJustified,
        UnknownFinalized,
        InvalidBest(Root),
    }

    impl Reference {
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
            for (root, (parent, _)) in &self.blocks {
                if let Some(parent) = parent {
                    children.entry(*parent).or_default().push(*root);
                }
            }
            children
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

        fn viable(&self, root: &Root) -> bool {
            let justified = self.blocks[root].1;
            (self.justified.epoch == 0 || justified == self.justified)
                && self.descends(&self.finalized.root, root)
        }

        /// Viable, or some descendant is (memoized).
        fn leads(
            &self,
            root: &Root,
            children: &HashMap<Root, Vec<Root>>,
            memo: &mut HashMap<Root, bool>,
        ) -> bool {
            if let Some(&known) = memo.get(root) {
                return known;
            }
            let mut leads = self.viable(root);
            for child in children.get(root).into_iter().flatten() {
                leads |= self.leads(child, children, memo);
            }
            memo.insert(*root, leads);
            leads
        }

        fn head(&self, balances: &[u64]) -> Result<Root, RefError> {
            if !self.blocks.contains_key(&self.justified.root) {
                return Err(RefError::UnknownJustified);
            }
            if !self.blocks.contains_key(&self.finalized.root) {
                return Err(RefError::UnknownFinalized);
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
                    .filter(|c| self.leads(c, &children, &mut memo))
                    .max_by_key(|c| (weights[c], *c));
                match best {
                    Some(c) => head = c,
                    None => break,
                }
            }
            if self.viable(&head) {
                Ok(head)
            } else {
                Err(RefError::InvalidBest(head))
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
        let mut fc = ForkChoice::new(genesis, 0, g);
        let mut reference = Reference {
            blocks: HashMap::from([(genesis, (None, g))]),
            votes: HashMap::new(),
            justified: g,
            finalized: g,
        };
        let mut slots: HashMap<Root, u64> = HashMap::from([(genesis, 0)]);
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
                let parent_justified = reference.blocks[&parent].1;
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
                let slot = slots[&parent] + rng.random_range(1..=4);
                fc.on_block(root, parent, slot, justified, reference.finalized)
                    .unwrap();
                reference.blocks.insert(root, (Some(parent), justified));
                slots.insert(root, slot);
            }
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
                    fc.on_attestation(v, root, target);
                    reference.vote(v, root, target);
                }
                if balances.is_empty() || rng.random_range(0..2) == 0 {
                    let len = rng.random_range(48..=validators as usize);
                    balances = (0..len).map(|_| rng.random_range(0..=4)).collect();
                }
                // Sometimes a newer justified checkpoint (under the finalized block).
                if rng.random_range(0..3) == 0 {
                    let mut candidates: Vec<Checkpoint> = reference
                        .blocks
                        .values()
                        .map(|b| b.1)
                        .filter(|c| {
                            c.epoch > reference.justified.epoch
                                && reference.blocks.contains_key(&c.root)
                                && reference.descends(&reference.finalized.root, &c.root)
                        })
                        .collect::<HashSet<_>>()
                        .into_iter()
                        .collect();
                    candidates.sort_by_key(|c| (c.epoch, c.root));
                    if !candidates.is_empty() {
                        let justified = candidates[rng.random_range(0..candidates.len())];
                        fc.update_checkpoints(justified, reference.finalized);
                        reference.justified = justified;
                    }
                }

                let expected = reference.head(&balances);
                let got = fc.find_head(&balances);
                match (&expected, &got) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "seed {seed}"),
                    (
                        Err(RefError::InvalidBest(a)),
                        Err(ForkChoiceError::InvalidBestNode { head, .. }),
                    ) => {
                        assert_eq!(a, head, "seed {seed}")
                    }
                    _ => panic!("seed {seed}: reference {expected:?}, fork choice {got:?}"),
                }
                for (root, weight) in reference.weights(&balances) {
                    assert_eq!(fc.weight(&root), Some(weight), "seed {seed}");
                }

                // Sometimes finalize the justified checkpoint and prune.
                if rng.random_range(0..4) == 0
                    && reference.justified.epoch > reference.finalized.epoch
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
