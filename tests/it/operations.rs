//! `operations/<handler>` vectors (minimal preset): `pre` + the operation → `post`, or the
//! operation must fail when `post` is absent.

use std::path::Path;

use quasar::transition::minimal as t;
use quasar::transition::{ChainConfig, SignatureChecker, TransitionCtx, TransitionError};
use quasar::types::minimal as ty;
use quasar::types::Preset;

use super::spec_runner::{
    assert_no_failures, checker_for, judge, read_ssz, read_ssz_opt, run_runner, yaml_bool, CaseFn,
};

/// Handlers of the tree not implemented, with the reason.
const PENDING: &[(&str, &str)] = &[];

/// Runs `op` on the case's `pre` state with the operation read from `<input>.ssz_snappy`.
fn run_op<O: quasar::types::ssz::SszDecode>(
    case: &Path,
    input: &str,
    op: impl FnOnce(
        &mut ty::BeaconState,
        &O,
        &TransitionCtx,
        &mut SignatureChecker,
    ) -> Result<(), TransitionError>,
) -> Result<(), String> {
    let mut state: ty::BeaconState = read_ssz(case, "pre")?;
    let operation: O = read_ssz(case, input)?;
    let post: Option<ty::BeaconState> = read_ssz_opt(case, "post")?;
    let ctx = TransitionCtx::new(ChainConfig::minimal());
    let mut sigs = checker_for(case, false)?;
    let result = op(&mut state, &operation, &ctx, &mut sigs);
    judge(result, &state, post.as_ref())
}

fn attestation(case: &Path) -> Result<(), String> {
    run_op(case, "attestation", |s, o: &ty::Attestation, c, sg| {
        t::process_attestation(s, o, c, sg)
    })
}

fn attester_slashing(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "attester_slashing",
        |s, o: &ty::AttesterSlashing, c, sg| t::process_attester_slashing(s, o, c, sg),
    )
}

fn block_header(case: &Path) -> Result<(), String> {
    run_op(case, "block", |s, o: &ty::BeaconBlock, _c, _sg| {
        t::process_block_header(s, o)
    })
}

fn bls_to_execution_change(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "address_change",
        |s, o: &ty::SignedBLSToExecutionChange, c, sg| {
            t::process_bls_to_execution_change(s, o, c, sg)
        },
    )
}

fn consolidation_request(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "consolidation_request",
        |s, o: &ty::ConsolidationRequest, c, _sg| t::process_consolidation_request(s, o, c),
    )
}

fn deposit_request(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "deposit_request",
        |s, o: &ty::DepositRequest, _c, _sg| t::process_deposit_request(s, o),
    )
}

fn execution_payload(case: &Path) -> Result<(), String> {
    let execution_valid = yaml_bool(case, "execution.yaml", "execution_valid")?.unwrap_or(true);
    run_op(case, "body", |s, o: &ty::BeaconBlockBody, c, _sg| {
        t::process_execution_payload(s, o, c, execution_valid)
    })
}

fn proposer_slashing(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "proposer_slashing",
        |s, o: &ty::ProposerSlashing, c, sg| t::process_proposer_slashing(s, o, c, sg),
    )
}

fn sync_aggregate(case: &Path) -> Result<(), String> {
    run_op(case, "sync_aggregate", |s, o: &ty::SyncAggregate, c, sg| {
        t::process_sync_aggregate(s, o, c, sg)
    })
}

fn voluntary_exit(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "voluntary_exit",
        |s, o: &ty::SignedVoluntaryExit, c, sg| t::process_voluntary_exit(s, o, c, sg),
    )
}

fn withdrawal_request(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "withdrawal_request",
        |s, o: &ty::WithdrawalRequest, c, _sg| t::process_withdrawal_request(s, o, c),
    )
}

fn withdrawals(case: &Path) -> Result<(), String> {
    run_op(
        case,
        "execution_payload",
        |s, o: &ty::ExecutionPayload, _c, _sg| t::process_withdrawals(s, o),
    )
}

const HANDLERS: &[(&str, CaseFn)] = &[
    ("attestation", attestation),
    ("attester_slashing", attester_slashing),
    ("block_header", block_header),
    ("bls_to_execution_change", bls_to_execution_change),
    ("consolidation_request", consolidation_request),
    ("deposit_request", deposit_request),
    ("execution_payload", execution_payload),
    ("proposer_slashing", proposer_slashing),
    ("sync_aggregate", sync_aggregate),
    ("voluntary_exit", voluntary_exit),
    ("withdrawal_request", withdrawal_request),
    ("withdrawals", withdrawals),
];

#[test]
fn operations_minimal() {
    let failures = run_runner(Preset::Minimal, "operations", HANDLERS, PENDING);
    assert_no_failures("operations", &failures);
}
