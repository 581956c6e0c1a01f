//! `quasar db info` and `quasar db verify` for one preset (compiled per preset).

use std::collections::HashMap;

use super::{t, types};
use crate::chain::pipeline::hex;
use crate::chain::{Anchor, META_ANCHOR};
use crate::store::Store;
use crate::transition::{ChainConfig, SignatureChecker, TransitionCtx};
use crate::types::ssz::SszDecode;
use types::{BeaconState, SignedBeaconBlock};

type Root = [u8; 32];

/// What `db info` prints.
#[derive(Debug, Clone, Default)]
pub struct DbInfo {
    pub preset: String,
    pub schema_version: u64,
    pub anchor_slot: u64,
    pub anchor_root: Root,
    pub head_slot: u64,
    pub head_root: Root,
    pub head_state_root: Root,
    pub justified: (u64, Root),
    pub finalized: (u64, Root),
    pub blocks: usize,
    pub state_snapshots: usize,
    pub state_summaries: usize,
    pub canonical_slots: usize,
    /// Slots of the stored snapshots, ascending.
    pub snapshot_slots: Vec<u64>,
}

impl std::fmt::Display for DbInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "preset            {}", self.preset)?;
        writeln!(f, "schema version    {}", self.schema_version)?;
        writeln!(
            f,
            "anchor            slot {} root 0x{}",
            self.anchor_slot,
            hex(&self.anchor_root)
        )?;
        writeln!(
            f,
            "head              slot {} root 0x{}",
            self.head_slot,
            hex(&self.head_root)
        )?;
        writeln!(f, "head state root   0x{}", hex(&self.head_state_root))?;
        writeln!(
            f,
            "justified         epoch {} root 0x{}",
            self.justified.0,
            hex(&self.justified.1)
        )?;
        writeln!(
            f,
            "finalized         epoch {} root 0x{}",
            self.finalized.0,
            hex(&self.finalized.1)
        )?;
        writeln!(f, "blocks            {}", self.blocks)?;
        writeln!(f, "canonical slots   {}", self.canonical_slots)?;
        writeln!(f, "state summaries   {}", self.state_summaries)?;
        write!(
            f,
            "state snapshots   {} (slots {:?})",
            self.state_snapshots, self.snapshot_slots
        )
    }
}

fn anchor(store: &Store) -> Result<Anchor, String> {
    let bytes = store
        .get_metadata(META_ANCHOR)
        .map_err(|e| e.to_string())?
        .ok_or("no anchor: not a quasar datadir, or never imported into")?;
    Anchor::decode(&bytes)
}

/// `db info`.
pub fn db_info(store: &Store) -> Result<DbInfo, String> {
    let e = |e: crate::store::StoreError| e.to_string();
    let anchor = anchor(store)?;
    let head = store.head().map_err(e)?.ok_or("no head")?;
    let justified = store.justified_checkpoint().map_err(e)?.unwrap_or_default();
    let finalized = store.finalized_checkpoint().map_err(e)?.unwrap_or_default();
    let head_state_root = if head.root == anchor.root {
        anchor.state_root
    } else {
        let b = store
            .get_block(&head.root)
            .map_err(e)?
            .ok_or("head block missing")?;
        let b = SignedBeaconBlock::ssz_decode(&b).map_err(|e| e.to_string())?;
        *b.message.state_root.as_bytes()
    };
    let mut snapshot_slots = Vec::new();
    for root in store.state_roots().map_err(e)? {
        if let Some(s) = store.get_state_summary(&root).map_err(e)? {
            snapshot_slots.push(s.slot);
        }
    }
    snapshot_slots.sort_unstable();
    use crate::store::schema::{CF_BLOCKS, CF_BLOCK_SLOTS, CF_STATES, CF_STATE_SUMMARIES};
    Ok(DbInfo {
        preset: super::PRESET.name().into(),
        schema_version: store.schema_version().map_err(e)?,
        anchor_slot: anchor.slot,
        anchor_root: anchor.root,
        head_slot: head.slot,
        head_root: head.root,
        head_state_root,
        justified: (justified.epoch, justified.root),
        finalized: (finalized.epoch, finalized.root),
        blocks: store.count(CF_BLOCKS).map_err(e)?,
        state_snapshots: store.count(CF_STATES).map_err(e)?,
        state_summaries: store.count(CF_STATE_SUMMARIES).map_err(e)?,
        canonical_slots: store.count(CF_BLOCK_SLOTS).map_err(e)?,
        snapshot_slots,
    })
}

/// `db verify`: walk the whole store and report every inconsistency found (empty: clean).
/// Checks each block (decodes strictly, its key is its root, its parent and its state
/// summary are stored), each snapshot (decodes, its key is its root), each summary and
/// canonical-index entry (points at a stored block of that slot), the head chain back to
/// the anchor (every block on it indexed at its slot, nothing else indexed), that the
/// checkpoints lie on it, and finally replays the blocks from the head chain's latest
/// snapshot to the head and compares the state root with the head block's.
pub fn db_verify(store: &Store, cfg: &ChainConfig) -> Result<Vec<String>, String> {
    let e = |e: crate::store::StoreError| e.to_string();
    let mut problems = Vec::new();
    let anchor = anchor(store)?;
    // Blocks.
    let mut blocks: HashMap<Root, SignedBeaconBlock> = HashMap::new();
    for root in store.block_roots().map_err(e)? {
        let Some(bytes) = store.get_block(&root).map_err(e)? else {
            continue;
        };
        match SignedBeaconBlock::ssz_decode(&bytes) {
            Ok(b) => {
                match t::hash_tree_root(&b.message) {
                    Ok(r) if r == root => {}
                    Ok(r) => problems.push(format!(
                        "block 0x{} is stored under another root (its root is 0x{})",
                        hex(&root),
                        hex(&r)
                    )),
                    Err(err) => problems.push(format!("block 0x{}: {err}", hex(&root))),
                }
                blocks.insert(root, b);
            }
            Err(err) => problems.push(format!("block 0x{} does not decode: {err}", hex(&root))),
        }
    }
    for (root, b) in &blocks {
        let parent = *b.message.parent_root.as_bytes();
        if parent != anchor.root && !blocks.contains_key(&parent) {
            problems.push(format!(
                "block 0x{} (slot {}): parent 0x{} is not stored",
                hex(root),
                b.message.slot,
                hex(&parent)
            ));
        }
        match store
            .get_state_summary(b.message.state_root.as_bytes())
            .map_err(e)?
        {
            Some(s) if s.slot == b.message.slot && s.latest_block_root == *root => {}
            Some(s) => problems.push(format!(
                "block 0x{} (slot {}): its state summary says slot {} block 0x{}",
                hex(root),
                b.message.slot,
                s.slot,
                hex(&s.latest_block_root)
            )),
            None => problems.push(format!(
                "block 0x{} (slot {}): no summary of its post state",
                hex(root),
                b.message.slot
            )),
        }
    }
    // Snapshots and summaries.
    let mut snapshots: HashMap<Root, u64> = HashMap::new();
    for root in store.state_roots().map_err(e)? {
        let Some(bytes) = store.get_state(&root).map_err(e)? else {
            continue;
        };
        match BeaconState::ssz_decode(&bytes) {
            Ok(s) => {
                match t::state_root_of(&s) {
                    Ok(r) if r == root => {}
                    Ok(r) => problems.push(format!(
                        "state snapshot 0x{} is stored under another root (its root is 0x{})",
                        hex(&root),
                        hex(&r)
                    )),
                    Err(err) => problems.push(format!("state 0x{}: {err}", hex(&root))),
                }
                snapshots.insert(root, s.slot);
            }
            Err(err) => problems.push(format!("state 0x{} does not decode: {err}", hex(&root))),
        }
        if store.get_state_summary(&root).map_err(e)?.is_none() {
            problems.push(format!("state snapshot 0x{} has no summary", hex(&root)));
        }
    }
    if !snapshots.contains_key(&anchor.state_root) {
        problems.push("the anchor state snapshot is missing".into());
    }
    for (root, s) in store.state_summaries().map_err(e)? {
        if s.latest_block_root != anchor.root && !blocks.contains_key(&s.latest_block_root) {
            problems.push(format!(
                "state summary 0x{} names block 0x{}, which is not stored",
                hex(&root),
                hex(&s.latest_block_root)
            ));
        }
    }
    // The canonical index and the head chain.
    let mut indexed: HashMap<u64, Root> = HashMap::new();
    for item in store.block_roots_in_range(0, u64::MAX).map_err(e)? {
        let (slot, root) = item.map_err(e)?;
        let ok = if root == anchor.root {
            slot == anchor.slot
        } else {
            blocks.get(&root).is_some_and(|b| b.message.slot == slot)
        };
        if !ok {
            problems.push(format!(
                "canonical index: slot {slot} names 0x{}, not a stored block of that slot",
                hex(&root)
            ));
        }
        indexed.insert(slot, root);
    }
    let head = store.head().map_err(e)?.ok_or("no head")?;
    let mut chain = Vec::new();
    let mut r = head.root;
    while r != anchor.root {
        let Some(b) = blocks.get(&r) else {
            problems.push(format!("head chain: block 0x{} is not stored", hex(&r)));
            break;
        };
        chain.push(r);
        r = *b.message.parent_root.as_bytes();
    }
    let on_chain: std::collections::HashSet<Root> =
        chain.iter().copied().chain([anchor.root]).collect();
    for root in &chain {
        let slot = blocks[root].message.slot;
        if indexed.get(&slot) != Some(root) {
            problems.push(format!(
                "canonical index: slot {slot} should name head-chain block 0x{}",
                hex(root)
            ));
        }
    }
    let head_slot = blocks
        .get(&head.root)
        .map_or(anchor.slot, |b| b.message.slot);
    if head_slot != head.slot {
        problems.push(format!(
            "head record says slot {}, the head block is at slot {head_slot}",
            head.slot
        ));
    }
    for (slot, root) in &indexed {
        if !on_chain.contains(root) {
            problems.push(format!(
                "canonical index: slot {slot} names 0x{}, which is not on the head chain",
                hex(root)
            ));
        }
    }
    for (what, c) in [
        ("justified", store.justified_checkpoint().map_err(e)?),
        ("finalized", store.finalized_checkpoint().map_err(e)?),
    ] {
        match c {
            Some(c) if on_chain.contains(&c.root) => {}
            Some(c) => problems.push(format!(
                "{what} checkpoint (epoch {}, 0x{}) is not on the head chain",
                c.epoch,
                hex(&c.root)
            )),
            None => problems.push(format!("no {what} checkpoint")),
        }
    }
    // Replay from the head chain's latest snapshot to the head.
    if problems.is_empty() {
        let mut replay = Vec::new();
        let mut base = None;
        for root in chain.iter() {
            let b = &blocks[root];
            if snapshots.contains_key(b.message.state_root.as_bytes()) {
                base = Some(*b.message.state_root.as_bytes());
                break;
            }
            replay.push(b);
        }
        let base = base.unwrap_or(anchor.state_root);
        let bytes = store
            .get_state(&base)
            .map_err(e)?
            .ok_or("snapshot vanished")?;
        let mut state = BeaconState::ssz_decode(&bytes).map_err(|e| e.to_string())?;
        // The roots through one carried cache, from block to block.
        let mut ctx = TransitionCtx::new(cfg.clone());
        let replayed = (|| -> Result<(), String> {
            for b in replay.iter().rev() {
                if state.slot < b.message.slot {
                    t::process_slots(&mut state, b.message.slot, &mut ctx)
                        .map_err(|e| e.to_string())?;
                }
                t::process_block(&mut state, &b.message, &ctx, &mut SignatureChecker::skip())
                    .map_err(|e| e.to_string())?;
                let root = ctx.state_root(&state).map_err(|e| e.to_string())?;
                if &root != b.message.state_root.as_bytes() {
                    return Err(format!(
                        "replaying block at slot {} gives state root 0x{}, the block says 0x{}",
                        b.message.slot,
                        hex(&root),
                        hex(b.message.state_root.as_bytes())
                    ));
                }
            }
            Ok(())
        })();
        if let Err(err) = replayed {
            problems.push(format!("replay to the head: {err}"));
        }
    }
    Ok(problems)
}
