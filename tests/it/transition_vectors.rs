//! `transition/core` vectors (minimal preset): blocks across the Electra → Fulu fork.
//! `meta.yaml` gives `post_fork` (fulu), `fork_epoch`, `blocks_count` and, optionally,
//! `fork_block`: the index of the last block on Electra (without it every block is a
//! Fulu block). Slots are processed with Electra's rules up to the first slot of
//! `fork_epoch`, where `upgrade_to_fulu` runs, then with Fulu's. Each block's signatures
//! are collected and verified in one batch (skipped for `bls_setting: 2`), and its state
//! root is checked.

use std::path::Path;

use quasar::transition::minimal as t;
use quasar::transition::{
    ChainConfig, Check, SignatureChecker, SignatureStrategy, TransitionCtx, TransitionError,
};
use quasar::types::minimal as ty;
use quasar::types::Preset;

use super::spec_runner::{
    assert_no_failures, checker_for, judge, read_ssz, read_ssz_opt, run_runner, verify_collected,
    yaml_u64, CaseFn,
};

/// Handlers of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[];

/// A string value of `meta.yaml`.
fn meta_str(case: &Path, key: &str) -> Result<Option<String>, String> {
    let path = case.join("meta.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text.replace(['{', '}'], "\n").replace(',', "\n");
    Ok(text.lines().find_map(|l| {
        l.trim()
            .strip_prefix(key)
            .and_then(|r| r.trim().strip_prefix(':'))
            .map(|v| v.trim().to_string())
    }))
}

/// Verifies the sets a block's checker collected, against the registry after the block.
fn verify_sets(
    sigs: &mut SignatureChecker,
    validators: &[quasar::types::common::Validator],
) -> Result<(), TransitionError> {
    if sigs.strategy() != SignatureStrategy::Collect {
        return Ok(());
    }
    let (sets, _labels) = sigs.take_sets();
    verify_collected(sets, |i| {
        validators.get(i as usize).map(|v| *v.pubkey.as_bytes())
    })
    .map_err(|e| TransitionError::Signature {
        what: "block batch",
        reason: e,
    })
}

/// A Fulu block on a Fulu state already at the block's slot: `state_transition` after
/// its `process_slots`.
fn apply_fulu_block(
    state: &mut ty::BeaconState,
    block: &ty::SignedBeaconBlock,
    ctx: &TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<(), TransitionError> {
    t::verify_block_signature(state, block, sigs)?;
    t::process_block(state, &block.message, ctx, sigs)?;
    let root = t::hash_tree_root_mut(state)?;
    if block.message.state_root.as_bytes() != &root {
        return Err(TransitionError::check(
            Check::StateRoot,
            "block state root does not match the post state",
        ));
    }
    Ok(())
}

fn apply_block(
    state: &mut t::ForkState,
    i: u64,
    block: &ty::SignedBeaconBlock,
    fork_block: Option<u64>,
    fork_epoch: u64,
    ctx: &mut TransitionCtx,
    sigs: &mut SignatureChecker,
) -> Result<(), TransitionError> {
    let slot = block.message.slot;
    if fork_block.is_some_and(|fb| i <= fb) {
        let t::ForkState::Electra(s) = state else {
            return Err(TransitionError::check(
                Check::ForkBoundary,
                format!("block {i} is an Electra block but the state has forked"),
            ));
        };
        if slot >= t::compute_start_slot_at_epoch(fork_epoch)? {
            return Err(TransitionError::check(
                Check::ForkBoundary,
                format!("Electra block {i} at slot {slot} is not before the fork"),
            ));
        }
        t::electra::state_transition(s, block, true, ctx, sigs)?;
        return verify_sets(sigs, &s.validators);
    }
    if state.slot() > slot {
        return Err(TransitionError::check(
            Check::SlotNotNewer,
            format!("block {i} at slot {slot} is behind the state"),
        ));
    }
    t::process_slots_across_fork(state, slot, fork_epoch, ctx)?;
    let t::ForkState::Fulu(s) = state else {
        return Err(TransitionError::check(
            Check::ForkBoundary,
            format!("Fulu block {i} at slot {slot} comes before the fork epoch {fork_epoch}"),
        ));
    };
    apply_fulu_block(s, block, ctx, sigs)?;
    verify_sets(sigs, &s.validators)
}

fn core(case: &Path) -> Result<(), String> {
    let post_fork = meta_str(case, "post_fork")?.ok_or("meta.yaml: no post_fork")?;
    if post_fork != "fulu" {
        return Err(format!(
            "meta.yaml: post_fork {post_fork:?}, only fulu is known"
        ));
    }
    let fork_epoch =
        yaml_u64(case, "meta.yaml", Some("fork_epoch"))?.ok_or("meta.yaml: no fork_epoch")?;
    let fork_block = yaml_u64(case, "meta.yaml", Some("fork_block"))?;
    let count =
        yaml_u64(case, "meta.yaml", Some("blocks_count"))?.ok_or("meta.yaml: no blocks_count")?;
    let pre: t::electra::BeaconState = read_ssz(case, "pre")?;
    let post: Option<ty::BeaconState> = read_ssz_opt(case, "post")?;
    let mut ctx = TransitionCtx::new(ChainConfig::minimal());
    let mut state = t::ForkState::Electra(pre);
    let mut result = Ok(());
    for i in 0..count {
        let block: ty::SignedBeaconBlock = read_ssz(case, &format!("blocks_{i}"))?;
        let mut sigs = checker_for(case, true)?;
        let r = apply_block(
            &mut state, i, &block, fork_block, fork_epoch, &mut ctx, &mut sigs,
        )
        .map_err(|e| match e {
            TransitionError::Check { check, detail } => TransitionError::Check {
                check,
                detail: format!("block {i}: {detail}"),
            },
            other => other,
        });
        if r.is_err() {
            result = r;
            break;
        }
    }
    match state {
        t::ForkState::Fulu(s) => judge(result, &s, post.as_ref()),
        t::ForkState::Electra(_) => match (result, post) {
            (Err(_), None) => Ok(()),
            (Err(e), Some(_)) => Err(format!("failed but a post state was expected: {e}")),
            (Ok(()), _) => Err("the state never reached the fork".into()),
        },
    }
}

const HANDLERS: &[(&str, CaseFn)] = &[("core", core)];

#[test]
fn transition_minimal() {
    let failures = run_runner(Preset::Minimal, "transition", HANDLERS, PENDING);
    assert_no_failures("transition", &failures);
}
