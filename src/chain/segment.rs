//! Apply a chain segment with batched signature verification (compiled once per preset,
//! see `chain::minimal` / `chain::mainnet`).

use super::{t, types};
use crate::accel::aggregate::PubkeyAggregator;
use crate::chain::resolve::{resolve_sets, SetOwner};
use crate::chain::SegmentError;
use crate::transition::{ChainConfig, SignatureChecker, TransitionCtx};
use crate::types::ssz::{ssz_encode, SszDecode};

/// Apply `blocks` to `state` in order through `ctx` (its root cache carried from block to
/// block), collecting every signature set; then aggregate all sets' pubkeys in one
/// `aggregator` call and verify them in one batch. On an error the state is left part-way:
/// callers apply segments to a copy and keep it only on success.
pub fn apply_segment(
    state: &mut types::BeaconState,
    blocks: &[types::SignedBeaconBlock],
    ctx: &mut TransitionCtx,
    aggregator: &dyn PubkeyAggregator,
) -> Result<(), SegmentError> {
    let mut sets = Vec::new();
    let mut owners = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let slot = block.message.slot;
        let mut sigs = SignatureChecker::collect();
        t::state_transition(state, block, true, ctx, &mut sigs)
            .map_err(|error| SegmentError::Block { index, slot, error })?;
        let (block_sets, labels) = sigs.take_sets();
        owners.extend(labels.into_iter().map(|what| SetOwner {
            block: index,
            slot,
            what,
        }));
        sets.extend(block_sets);
    }
    // Validators only ever join, and a pubkey never changes: the final state's registry
    // holds every key any set refers to.
    let pubkey_of = |i: u32| {
        state
            .validators
            .get(i as usize)
            .map(|v| *v.pubkey.as_bytes())
    };
    resolve_sets(sets, &owners, pubkey_of, aggregator)
}

/// The post state of `quasar tool transition`, as SSZ bytes, and its root.
pub struct PostState {
    pub ssz: Vec<u8>,
    pub root: [u8; 32],
}

/// `quasar tool transition`: decode the pre state and the blocks (plain SSZ), apply the
/// blocks as one segment (signatures batched), then advance to `slots` if given; the post
/// state's cold root through `auto`'s hasher.
pub fn transition_bytes(
    pre: &[u8],
    blocks: &[Vec<u8>],
    slots: Option<u64>,
    cfg: &ChainConfig,
    aggregator: &dyn PubkeyAggregator,
) -> Result<PostState, SegmentError> {
    let hasher = crate::accel::hash::AutoHasher::new();
    transition_bytes_with(pre, blocks, slots, cfg, aggregator, &hasher)
}

/// [`transition_bytes`] with the post state's root through `hasher` (the `--backend`'s).
pub fn transition_bytes_with(
    pre: &[u8],
    blocks: &[Vec<u8>],
    slots: Option<u64>,
    cfg: &ChainConfig,
    aggregator: &dyn PubkeyAggregator,
    hasher: &dyn crate::accel::hash::BatchHasher,
) -> Result<PostState, SegmentError> {
    let mut state = types::BeaconState::ssz_decode(pre).map_err(|error| SegmentError::Decode {
        what: "pre state".into(),
        error,
    })?;
    let blocks = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            types::SignedBeaconBlock::ssz_decode(b).map_err(|error| SegmentError::Decode {
                what: format!("block {i}"),
                error,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut ctx = TransitionCtx::new(cfg.clone());
    apply_segment(&mut state, &blocks, &mut ctx, aggregator)?;
    if let Some(slot) = slots {
        t::process_slots(&mut state, slot, &mut ctx)
            .map_err(|error| SegmentError::Slots { slot, error })?;
    }
    let ssz = ssz_encode(&state).map_err(|e| SegmentError::Internal(e.to_string()))?;
    // The cold root of the whole state through the batch hasher (the GPU when `auto`
    // calibrated it faster for trees this big).
    let root = crate::merkle::state_root(hasher, &state)
        .map_err(|e| SegmentError::Internal(e.to_string()))?;
    Ok(PostState { ssz, root })
}
