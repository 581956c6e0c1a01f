//! `networking/gossip_{beacon_aggregate_and_proof,beacon_attestation,
//! sync_committee_contribution_and_proof,sync_committee_message}` vectors (minimal preset)
//! through the real chain service (`tests/formats/networking/gossip_validation.md` of
//! consensus-specs): each case's `state.ssz_snappy` anchors a fresh `ChainService`; its
//! `blocks` after the anchor are imported (`failed: true` ones marked invalid) and its
//! `finalized_checkpoint` applied, as for `beacon_block` (`gossip_vectors::prepare`); then
//! each message is validated in order at `current_time_ms + offset_ms` (on `subnet_id`
//! for the subnet topics) through `ChainHandle::validate_gossip`, and its verdict
//! compared with `expected`. Cases quasar cannot honour would be in [`PENDING`] with the
//! reason; one that starts to pass is a failure until it leaves the list.

use std::path::Path;

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{BlockSource, ChainService, GossipClock, GossipTopic, GossipVerdict};
use quasar::transition::ChainConfig;
use quasar::types::Preset;

use super::gossip_vectors::{prepare, read_snappy};
use super::light_client::yaml;
use super::spec_runner::{file_name, runner_dir, sorted_subdirs};

/// Cases that cannot be honoured, with the reason.
const PENDING: &[(&str, &str)] = &[];

fn spec_result(v: &GossipVerdict) -> &'static str {
    match v {
        GossipVerdict::Accept | GossipVerdict::Invalid(_) => "valid",
        GossipVerdict::Ignore(_) => "ignore",
        GossipVerdict::Reject(_) => "reject",
    }
}

fn describe(v: &GossipVerdict) -> String {
    match v {
        GossipVerdict::Accept => "valid".into(),
        GossipVerdict::Invalid(e) => format!("invalid ({e})"),
        GossipVerdict::Ignore(e) => format!("ignore ({e})"),
        GossipVerdict::Reject(e) => format!("reject ({e})"),
    }
}

/// The handler's topic name in `meta.yaml`, and the chain's topic for a message.
fn topic_of(handler: &str, subnet: Option<u64>) -> Result<(&'static str, GossipTopic), String> {
    let need = || subnet.ok_or_else(|| format!("{handler}: a message without subnet_id"));
    Ok(match handler {
        "gossip_beacon_aggregate_and_proof" => (
            "beacon_aggregate_and_proof",
            GossipTopic::BeaconAggregateAndProof,
        ),
        "gossip_beacon_attestation" => (
            "beacon_attestation",
            GossipTopic::BeaconAttestation { subnet: need()? },
        ),
        "gossip_sync_committee_contribution_and_proof" => (
            "sync_committee_contribution_and_proof",
            GossipTopic::SyncCommitteeContributionAndProof,
        ),
        "gossip_sync_committee_message" => (
            "sync_committee",
            GossipTopic::SyncCommittee { subnet: need()? },
        ),
        other => return Err(format!("unknown handler {other}")),
    })
}

/// Run one case; `Ok` with one line per message, `Err` at the first mismatch.
fn run_case(
    rt: &tokio::runtime::Runtime,
    handler: &str,
    case: &Path,
) -> Result<Vec<String>, String> {
    let meta = yaml::read(case, "meta.yaml")?;
    let topic = meta.req("topic")?.as_str()?;
    let (expected_topic, _) = topic_of(handler, Some(0))?;
    if topic != expected_topic {
        return Err(format!("topic {topic:?}, expected {expected_topic}"));
    }
    let state = read_snappy(&case.join("state.ssz_snappy"))?;
    let cfg = match std::fs::read_to_string(case.join("config.yaml")) {
        Ok(text) => Some(ChainConfig::from_yaml(&text).map_err(|e| e.to_string())?),
        Err(_) => None,
    };
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let opts = ImportOptions {
        preload: false,
        ..ImportOptions::default()
    };
    let service = ChainService::open_with_config(
        &tmp.path().join("data"),
        Some(&state),
        cfg,
        opts,
        Box::new(CpuAggregator),
    )
    .map_err(|e| format!("open: {e}"))?;
    let handle = service.handle();
    let result = rt.block_on(async {
        prepare(case, &meta, &handle).await?;
        let base = meta.req("current_time_ms")?.as_u64()?;
        let mut lines = Vec::new();
        for (i, m) in meta.req("messages")?.as_list()?.iter().enumerate() {
            let name = m.req("message")?.as_str()?;
            let offset = m.req("offset_ms")?.as_u64()?;
            let expected = m.req("expected")?.as_str()?;
            let reason = m.get("reason").map(|r| r.as_str()).transpose()?;
            let subnet = m.get("subnet_id").map(|s| s.as_u64()).transpose()?;
            let (_, topic) = topic_of(handler, subnet)?;
            let bytes = read_snappy(&case.join(format!("{name}.ssz_snappy")))?;
            let now = GossipClock::from_ms_since_genesis(base).plus_ms(offset);
            let verdict = handle
                .validate_gossip(topic, bytes, BlockSource::Gossip("vector".into()), now)
                .await
                .map_err(|e| format!("message {i}: {e}"))?;
            let line = format!(
                "message {i} at {} ms: expected {expected}{}, got {}",
                now.ms_since_genesis(),
                reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                describe(&verdict)
            );
            if !["valid", "ignore", "reject"].contains(&expected) {
                return Err(format!("unknown expected result {expected:?}"));
            }
            if spec_result(&verdict) != expected || matches!(verdict, GossipVerdict::Invalid(_)) {
                return Err(line);
            }
            lines.push(line);
        }
        Ok(lines)
    });
    drop(handle);
    service.shutdown();
    result
}

fn run_handler(handler: &str) {
    let dir = runner_dir(Preset::Minimal, "networking")
        .join(handler)
        .join("pyspec_tests");
    assert!(
        dir.is_dir(),
        "FAILURE: vector folder {} is missing",
        dir.display()
    );
    let cases = sorted_subdirs(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cases.is_empty(), "no cases under {}", dir.display());
    for (name, _) in PENDING {
        if name.starts_with(&format!("{handler}__")) {
            assert!(
                cases.iter().any(|c| file_name(c) == *name),
                "PENDING names {name}, which is not a case under {}",
                dir.display()
            );
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut passed, mut pending, mut failures) = (0, 0, Vec::new());
    for case in &cases {
        let name = file_name(case);
        let result = run_case(&rt, handler, case);
        match (PENDING.iter().find(|(n, _)| *n == name), result) {
            (None, Ok(lines)) => {
                passed += 1;
                println!("{handler} {name}: pass");
                for l in lines {
                    println!("    {l}");
                }
            }
            (None, Err(e)) => failures.push(format!("{name}: {e}")),
            (Some((_, why)), Err(e)) => {
                pending += 1;
                println!("{handler} {name}: PENDING ({why})");
                println!("    {e}");
            }
            (Some(_), Ok(_)) => {
                failures.push(format!("{name}: passes now; take it out of PENDING"))
            }
        }
    }
    println!(
        "networking minimal {handler}: {passed} passed, {pending} pending, {} failed",
        failures.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(passed + pending, cases.len());
}

#[test]
fn gossip_beacon_aggregate_and_proof_vectors() {
    run_handler("gossip_beacon_aggregate_and_proof");
}

#[test]
fn gossip_beacon_attestation_vectors() {
    run_handler("gossip_beacon_attestation");
}

#[test]
fn gossip_sync_committee_contribution_and_proof_vectors() {
    run_handler("gossip_sync_committee_contribution_and_proof");
}

#[test]
fn gossip_sync_committee_message_vectors() {
    run_handler("gossip_sync_committee_message");
}
