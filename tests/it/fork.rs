//! `fork/fork` vectors (minimal preset): an Electra pre state (`meta.yaml` `fork: fulu`)
//! upgraded with `upgrade_to_fulu`, compared byte for byte with the Fulu post state.

use std::path::Path;

use quasar::transition::minimal as t;
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::Preset;

use super::spec_runner::{assert_no_failures, compare_states, read_ssz, run_runner, CaseFn};

/// Handlers of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[];

/// The `fork` value of `meta.yaml` (the fork upgraded to).
fn meta_fork(case: &Path) -> Result<String, String> {
    let path = case.join("meta.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text.replace(['{', '}'], "\n").replace(',', "\n");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("fork:").map(|v| v.trim().to_string()))
        .ok_or_else(|| format!("{}: no fork", path.display()))
}

fn fork(case: &Path) -> Result<(), String> {
    let target = meta_fork(case)?;
    if target != "fulu" {
        return Err(format!("meta.yaml: fork {target:?}, only fulu is known"));
    }
    let pre: t::electra::BeaconState = read_ssz(case, "pre")?;
    let post: ty::BeaconState = read_ssz(case, "post")?;
    let got = t::upgrade_to_fulu(pre, &ChainConfig::minimal()).map_err(|e| e.to_string())?;
    compare_states(&got, &post)
}

const HANDLERS: &[(&str, CaseFn)] = &[("fork", fork)];

#[test]
fn fork_minimal() {
    let failures = run_runner(Preset::Minimal, "fork", HANDLERS, PENDING);
    assert_no_failures("fork", &failures);
}
