//! `networking/<handler>` vectors (minimal preset): the Fulu das-core custody helpers
//! (`get_custody_groups`, `compute_columns_for_custody_group`) against `meta.yaml`.
//! The gossip-validation handlers run in their own runners (listed in PENDING with where);
//! the data-column ones are PENDING with the reason.

use std::path::Path;

use quasar::net::custody::{compute_columns_for_custody_group, get_custody_groups, NodeId};
use quasar::types::Preset;

use super::light_client::yaml;
use super::spec_runner::{assert_no_failures, run_runner, CaseFn};

const OPS: &str = "run through the chain service by tests/it/gossip_ops_vectors.rs";
const ATT: &str = "run through the chain service by tests/it/gossip_att_vectors.rs";
const COLUMNS: &str = "quasar keeps no data column sidecars and does not subscribe to \
                       data_column_sidecar_{subnet_id}: their validation needs KZG cell-proof \
                       batch verification (c-kzg or rust-eth-kzg), not integrated yet";

/// Handlers of the tree not run by this runner, with the reason.
const PENDING: &[(&str, &str)] = &[
    ("gossip_attester_slashing", OPS),
    ("gossip_beacon_aggregate_and_proof", ATT),
    ("gossip_beacon_attestation", ATT),
    (
        "gossip_beacon_block",
        "run through the chain service by tests/it/gossip_vectors.rs",
    ),
    ("gossip_bls_to_execution_change", OPS),
    ("gossip_data_column_sidecar", COLUMNS),
    ("gossip_partial_data_column_sidecar", COLUMNS),
    ("gossip_proposer_slashing", OPS),
    ("gossip_sync_committee_contribution_and_proof", ATT),
    ("gossip_sync_committee_message", ATT),
    ("gossip_voluntary_exit", OPS),
];

fn u64_list(y: &yaml::Yaml) -> Result<Vec<u64>, String> {
    y.as_list()?.iter().map(|v| v.as_u64()).collect()
}

fn compare(got: &[u64], want: &[u64]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, expected {want:?}"))
    }
}

fn compute_columns(case: &Path) -> Result<(), String> {
    let meta = yaml::read(case, "meta.yaml")?;
    let group = meta.req("custody_group")?.as_u64()?;
    let want = u64_list(meta.req("result")?)?;
    let got = compute_columns_for_custody_group(group).map_err(|e| e.to_string())?;
    compare(&got, &want)
}

fn custody_groups(case: &Path) -> Result<(), String> {
    let meta = yaml::read(case, "meta.yaml")?;
    let node_id =
        NodeId::from_decimal(meta.req("node_id")?.as_str()?).map_err(|e| e.to_string())?;
    let count = meta.req("custody_group_count")?.as_u64()?;
    let want = u64_list(meta.req("result")?)?;
    let got = get_custody_groups(node_id, count).map_err(|e| e.to_string())?;
    compare(&got, &want)
}

const HANDLERS: &[(&str, CaseFn)] = &[
    ("compute_columns_for_custody_group", compute_columns),
    ("get_custody_groups", custody_groups),
];

#[test]
fn networking_minimal() {
    let failures = run_runner(Preset::Minimal, "networking", HANDLERS, PENDING);
    assert_no_failures("networking", &failures);
}
