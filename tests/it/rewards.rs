//! `rewards/*` vectors (minimal preset): from the pre state, the per-flag deltas
//! (`get_flag_index_deltas` for source, target and head) and the inactivity penalty
//! deltas (`get_inactivity_penalty_deltas`), each compared with the vector's `Deltas`.

use std::path::Path;

use quasar::transition::minimal as t;
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::primitives::{Gwei, VALIDATOR_REGISTRY_LIMIT};
use quasar::types::Preset;
use ssz_rs::List;

use super::spec_runner::{assert_no_failures, read_ssz, run_runner, CaseFn};

quasar::ssz_container! {
    /// The rewards format's `Deltas`.
    pub struct Deltas {
        pub rewards: List<Gwei, VALIDATOR_REGISTRY_LIMIT>,
        pub penalties: List<Gwei, VALIDATOR_REGISTRY_LIMIT>,
    }
}

/// Handlers of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[];

fn check(case: &Path, name: &str, got: (Vec<u64>, Vec<u64>)) -> Result<(), String> {
    let expected: Deltas = read_ssz(case, name)?;
    let (rewards, penalties) = got;
    for (what, got, want) in [
        ("rewards", &rewards, &expected.rewards),
        ("penalties", &penalties, &expected.penalties),
    ] {
        if got.len() != want.len() {
            return Err(format!(
                "{name}: {what}: {} entries, expected {}",
                got.len(),
                want.len()
            ));
        }
        if let Some(i) = got.iter().zip(want.iter()).position(|(a, b)| a != b) {
            return Err(format!(
                "{name}: {what}[{i}] = {}, expected {}",
                got[i], want[i]
            ));
        }
    }
    Ok(())
}

fn deltas(case: &Path) -> Result<(), String> {
    let state: ty::BeaconState = read_ssz(case, "pre")?;
    let cfg = ChainConfig::minimal();
    let flags = [
        ("source_deltas", t::TIMELY_SOURCE_FLAG_INDEX),
        ("target_deltas", t::TIMELY_TARGET_FLAG_INDEX),
        ("head_deltas", t::TIMELY_HEAD_FLAG_INDEX),
    ];
    for (name, flag) in flags {
        let got = t::get_flag_index_deltas(&state, flag).map_err(|e| format!("{name}: {e}"))?;
        check(case, name, got)?;
    }
    let got = t::get_inactivity_penalty_deltas(&state, &cfg)
        .map_err(|e| format!("inactivity_penalty_deltas: {e}"))?;
    check(case, "inactivity_penalty_deltas", got)
}

const HANDLERS: &[(&str, CaseFn)] = &[
    ("basic", deltas),
    ("inactivity_scores", deltas),
    ("leak", deltas),
    ("random", deltas),
];

#[test]
fn rewards_minimal() {
    let failures = run_runner(Preset::Minimal, "rewards", HANDLERS, PENDING);
    assert_no_failures("rewards", &failures);
}
