//! The transition's caches are values their owner passes in (issue 9): two contexts share
//! nothing (each has its own shufflings, hit/miss counts, pubkey map and root carry), a
//! sibling shares its chain's caches but not its carry, and threads each running a
//! transition with their own context get the right roots. Failed checks are named.

use quasar::devnet::minimal::{interop_genesis_state, Generator};
use quasar::devnet::InteropKeys;
use quasar::transition::minimal as t;
use quasar::transition::{ChainConfig, Check, SignatureChecker, TransitionCtx, TransitionError};
use quasar::types::minimal as ty;

/// A generated chain (minimal preset): its genesis state and `slots` blocks.
fn chain(validators: usize, slots: u64) -> (ty::BeaconState, Vec<ty::SignedBeaconBlock>) {
    let keys = InteropKeys::generate(validators).expect("keys");
    let cfg = ChainConfig::minimal();
    let genesis = interop_genesis_state(&keys, 1_700_000_000, &cfg).expect("genesis");
    let mut gen = Generator::new(&keys, &cfg, genesis.clone()).expect("generator");
    let blocks = (0..slots)
        .map(|_| gen.next_block().expect("block"))
        .collect();
    (genesis, blocks)
}

/// Every block through `state_transition` with `ctx` (state roots checked, signatures
/// skipped); the post state.
fn apply(
    ctx: &mut TransitionCtx,
    genesis: &ty::BeaconState,
    blocks: &[ty::SignedBeaconBlock],
) -> ty::BeaconState {
    let mut state = genesis.clone();
    for b in blocks {
        t::state_transition(&mut state, b, true, ctx, &mut SignatureChecker::skip())
            .unwrap_or_else(|e| panic!("block at slot {}: {e}", b.message.slot));
    }
    state
}

#[test]
fn two_contexts_share_nothing() {
    // Two chains of different sizes, past an epoch boundary (slot 8).
    let (genesis_a, blocks_a) = chain(64, 10);
    let (genesis_b, blocks_b) = chain(72, 10);
    let mut a = TransitionCtx::new(ChainConfig::minimal());
    let mut b = TransitionCtx::new(ChainConfig::minimal());
    assert!(!a.shares_caches_with(&b));

    let post_a = apply(&mut a, &genesis_a, &blocks_a);
    let stats_a = a.shuffling().stats();
    assert!(
        stats_a.1 > 0,
        "chain A computed its shufflings: {stats_a:?}"
    );
    assert!(stats_a.0 > 0, "and found them again: {stats_a:?}");
    assert_eq!(a.pubkeys().len(), 64, "A's registry is indexed");
    assert_eq!(b.shuffling().stats(), (0, 0), "B saw none of A's lookups");
    assert!(b.pubkeys().is_empty(), "B's pubkey map is its own");
    assert_eq!(b.roots.cache.root(), None, "B's carry is its own");

    let post_b = apply(&mut b, &genesis_b, &blocks_b);
    assert_eq!(a.shuffling().stats(), stats_a, "B's lookups are not A's");
    assert_eq!(a.pubkeys().len(), 64);
    assert_eq!(b.pubkeys().len(), 72);
    let misses_b = b.shuffling().stats().1;
    assert!(misses_b > 0);

    // Each carry ends on its own chain's post state.
    let root_a = t::state_root_of(&post_a).unwrap();
    let root_b = t::state_root_of(&post_b).unwrap();
    assert_ne!(root_a, root_b);
    assert_eq!(a.roots.cache.root(), Some(root_a));
    assert_eq!(b.roots.cache.root(), Some(root_b));
    assert_eq!(
        blocks_a.last().unwrap().message.state_root.as_bytes(),
        &root_a
    );
    assert_eq!(
        blocks_b.last().unwrap().message.state_root.as_bytes(),
        &root_b
    );

    // A sibling shares its chain's caches (a shuffling A computed is a hit), not its carry.
    let sibling = a.sibling();
    assert!(sibling.shares_caches_with(&a) && !sibling.shares_caches_with(&b));
    assert_eq!(sibling.roots.cache.root(), None);
    let epoch = t::get_current_epoch(&post_a);
    let hits = a.shuffling().stats().0;
    let from_sibling = t::get_shuffling(&post_a, epoch, &sibling).unwrap();
    assert_eq!(
        a.shuffling().stats().0,
        hits + 1,
        "the sibling's lookup hit A's cache"
    );
    assert_eq!(
        b.shuffling().stats().1,
        misses_b,
        "and B's cache saw nothing"
    );
    // The same committees through a fresh context (computed again, equal).
    let fresh = TransitionCtx::new(ChainConfig::minimal());
    assert_eq!(
        *t::get_shuffling(&post_a, epoch, &fresh).unwrap(),
        *from_sibling
    );
    assert_eq!(fresh.shuffling().stats(), (0, 1));
}

#[test]
fn threads_with_their_own_contexts_get_correct_roots() {
    let (genesis_a, blocks_a) = chain(64, 12);
    let (genesis_b, blocks_b) = chain(80, 12);
    let want_a = *blocks_a.last().unwrap().message.state_root.as_bytes();
    let want_b = *blocks_b.last().unwrap().message.state_root.as_bytes();
    // Four threads at once: two per chain, each with its own context (every block's state
    // root is checked by `state_transition` through that context's carried cache), and
    // one of them a sibling of a context another thread is using.
    let shared = TransitionCtx::new(ChainConfig::minimal());
    let roots: Vec<[u8; 32]> = std::thread::scope(|s| {
        let jobs = [
            (
                TransitionCtx::new(ChainConfig::minimal()),
                &genesis_a,
                &blocks_a,
            ),
            (
                TransitionCtx::new(ChainConfig::minimal()),
                &genesis_b,
                &blocks_b,
            ),
            (shared.sibling(), &genesis_a, &blocks_a),
            (shared.sibling(), &genesis_b, &blocks_b),
        ];
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(mut ctx, genesis, blocks)| {
                s.spawn(move || {
                    let post = apply(&mut ctx, genesis, blocks);
                    let carried = ctx.roots.cache.root().expect("a carried root");
                    assert_eq!(carried, t::state_root_of(&post).unwrap(), "carried = cold");
                    carried
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(roots, vec![want_a, want_b, want_a, want_b]);
}

#[test]
fn failed_checks_are_named() {
    let (genesis, blocks) = chain(64, 2);
    let mut ctx = TransitionCtx::new(ChainConfig::minimal());
    let skip = || SignatureChecker::skip();

    // A wrong state root.
    let mut bad = blocks[0].clone();
    bad.message.state_root.0[0] ^= 1;
    let err =
        t::state_transition(&mut genesis.clone(), &bad, true, &mut ctx, &mut skip()).unwrap_err();
    assert_eq!(err.failed_check(), Some(Check::StateRoot), "{err}");
    assert!(err.to_string().contains("state root"), "{err}");
    assert!(err.is_input_fault());

    // The wrong proposer.
    let mut bad = blocks[0].clone();
    bad.message.proposer_index ^= 1;
    let err =
        t::state_transition(&mut genesis.clone(), &bad, false, &mut ctx, &mut skip()).unwrap_err();
    assert!(
        matches!(
            err,
            TransitionError::Check {
                check: Check::ProposerIndex,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("check failed: process_block_header: proposer_index: "),
        "{err}"
    );

    // A block for a slot the state has passed.
    let mut state = genesis.clone();
    t::state_transition(&mut state, &blocks[0], true, &mut ctx, &mut skip()).unwrap();
    t::state_transition(&mut state, &blocks[1], true, &mut ctx, &mut skip()).unwrap();
    let err = t::state_transition(&mut state, &blocks[0], true, &mut ctx, &mut skip()).unwrap_err();
    assert_eq!(err.failed_check(), Some(Check::SlotNotNewer), "{err}");

    // The names.
    assert_eq!(Check::Attestation.name(), "process_attestation");
    assert_eq!(Check::Attestation.to_string(), "process_attestation");
    assert_eq!(Check::BlockSlot.spec_function(), "process_block_header");
    assert_eq!(Check::StateRoot.to_string(), "state_transition: state_root");
}
