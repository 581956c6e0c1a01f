//! `epoch_processing/<handler>` vectors (minimal preset): `pre` → the one sub-step →
//! `post` (byte-exact), or the step must fail when `post` is absent.

use std::path::Path;

use quasar::transition::minimal as t;
use quasar::transition::{ChainConfig, TransitionCtx, TransitionError};
use quasar::types::minimal as ty;
use quasar::types::Preset;

use super::spec_runner::{assert_no_failures, judge, read_ssz, read_ssz_opt, run_runner, CaseFn};

/// Handlers of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[];

fn run_step(
    case: &Path,
    step: impl FnOnce(&mut ty::BeaconState, &TransitionCtx) -> Result<(), TransitionError>,
) -> Result<(), String> {
    let mut state: ty::BeaconState = read_ssz(case, "pre")?;
    let post: Option<ty::BeaconState> = read_ssz_opt(case, "post")?;
    let ctx = TransitionCtx::new(ChainConfig::minimal());
    let result = step(&mut state, &ctx);
    judge(result, &state, post.as_ref())
}

macro_rules! step {
    ($name:ident, |$s:ident, $c:ident| $body:expr) => {
        fn $name(case: &Path) -> Result<(), String> {
            run_step(case, |$s, $c| {
                let _ = &$c;
                $body
            })
        }
    };
}

step!(justification_and_finalization, |s, c| {
    t::process_justification_and_finalization(s)
});
step!(inactivity_updates, |s, c| t::process_inactivity_updates(
    s, c
));
step!(rewards_and_penalties, |s, c| {
    t::process_rewards_and_penalties(s, c)
});
step!(registry_updates, |s, c| t::process_registry_updates(s, c));
step!(slashings, |s, c| t::process_slashings(s));
step!(eth1_data_reset, |s, c| t::process_eth1_data_reset(s));
step!(pending_deposits, |s, c| t::process_pending_deposits(s, c));
step!(pending_consolidations, |s, c| {
    t::process_pending_consolidations(s)
});
step!(effective_balance_updates, |s, c| {
    t::process_effective_balance_updates(s)
});
step!(slashings_reset, |s, c| t::process_slashings_reset(s));
step!(randao_mixes_reset, |s, c| t::process_randao_mixes_reset(s));
step!(historical_summaries_update, |s, c| {
    t::process_historical_summaries_update(s)
});
step!(participation_flag_updates, |s, c| {
    t::process_participation_flag_updates(s)
});
step!(sync_committee_updates, |s, c| {
    t::process_sync_committee_updates(s)
});
step!(proposer_lookahead, |s, c| t::process_proposer_lookahead(s));

const HANDLERS: &[(&str, CaseFn)] = &[
    (
        "justification_and_finalization",
        justification_and_finalization,
    ),
    ("inactivity_updates", inactivity_updates),
    ("rewards_and_penalties", rewards_and_penalties),
    ("registry_updates", registry_updates),
    ("slashings", slashings),
    ("eth1_data_reset", eth1_data_reset),
    ("pending_deposits", pending_deposits),
    ("pending_consolidations", pending_consolidations),
    ("effective_balance_updates", effective_balance_updates),
    ("slashings_reset", slashings_reset),
    ("randao_mixes_reset", randao_mixes_reset),
    ("historical_summaries_update", historical_summaries_update),
    ("participation_flag_updates", participation_flag_updates),
    ("sync_committee_updates", sync_committee_updates),
    ("proposer_lookahead", proposer_lookahead),
];

#[test]
fn epoch_processing_minimal() {
    let failures = run_runner(Preset::Minimal, "epoch_processing", HANDLERS, PENDING);
    assert_no_failures("epoch_processing", &failures);
}
