//! `sanity/slots` and `sanity/blocks` vectors (minimal preset). Blocks run the full
//! `state_transition` (state root checked) with signatures collected per block and
//! verified in one batch, so the collecting path is what the vectors exercise.

use std::path::Path;

use quasar::transition::minimal as t;
use quasar::transition::{ChainConfig, SignatureStrategy, TransitionError};
use quasar::types::minimal as ty;
use quasar::types::Preset;

use super::spec_runner::{
    assert_no_failures, checker_for, judge, read_ssz, read_ssz_opt, run_runner, verify_collected,
    yaml_u64, CaseFn,
};

/// Handlers of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[];

fn slots(case: &Path) -> Result<(), String> {
    let mut state: ty::BeaconState = read_ssz(case, "pre")?;
    let post: Option<ty::BeaconState> = read_ssz_opt(case, "post")?;
    let n = yaml_u64(case, "slots.yaml", None)?.ok_or("slots.yaml: no slot count")?;
    let cfg = ChainConfig::minimal();
    let target = state.slot.checked_add(n).ok_or("slot overflow")?;
    let result = t::process_slots(&mut state, target, &cfg);
    judge(result, &state, post.as_ref())
}

fn blocks(case: &Path) -> Result<(), String> {
    let mut state: ty::BeaconState = read_ssz(case, "pre")?;
    let post: Option<ty::BeaconState> = read_ssz_opt(case, "post")?;
    let count =
        yaml_u64(case, "meta.yaml", Some("blocks_count"))?.ok_or("meta.yaml: no blocks_count")?;
    let cfg = ChainConfig::minimal();
    let mut result = Ok(());
    for i in 0..count {
        let block: ty::SignedBeaconBlock = read_ssz(case, &format!("blocks_{i}"))?;
        let mut sigs = checker_for(case, true)?;
        let r = t::state_transition(&mut state, &block, true, &cfg, &mut sigs);
        let r = r.and_then(|()| {
            if sigs.strategy() != SignatureStrategy::Collect {
                return Ok(());
            }
            let (sets, _labels) = sigs.take_sets();
            verify_collected(sets, |i| {
                state
                    .validators
                    .get(i as usize)
                    .map(|v| *v.pubkey.as_bytes())
            })
            .map_err(|e| TransitionError::Signature {
                what: "block batch",
                reason: e,
            })
        });
        if r.is_err() {
            result = r;
            break;
        }
    }
    judge(result, &state, post.as_ref())
}

const HANDLERS: &[(&str, CaseFn)] = &[("slots", slots), ("blocks", blocks)];

#[test]
fn sanity_minimal() {
    let failures = run_runner(Preset::Minimal, "sanity", HANDLERS, PENDING);
    assert_no_failures("sanity", &failures);
}
