//! `networking/gossip_{voluntary_exit,proposer_slashing,attester_slashing,
//! bls_to_execution_change}` vectors (minimal preset) through the real chain service
//! (`tests/formats/networking/gossip_validation.md`): each case's `state.ssz_snappy`
//! anchors a fresh `ChainService` in a temp datadir (with the case's `config.yaml` when it
//! has one), and its messages go, in order, through `ChainHandle::validate_gossip` at
//! `current_time_ms + offset_ms`; each verdict is compared with `expected` (and its typed
//! refusal with the condition the vector's `reason` names), and the
//! service's seen-caches and operation pool with what the verdict implies (an accepted
//! message marks its keys seen and is pooled; an ignored or rejected one changes neither),
//! so a case's later messages see what its earlier ones left. Cases quasar cannot honour
//! would be in a `PENDING` list with the reason (none are); one that starts to pass is a
//! failure until it leaves the list.

use std::path::Path;

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::error::BlockError;
use quasar::chain::gossip_ops::{GossipOps, OperationError, OperationKind};
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{BlockSource, ChainService, GossipClock, GossipTopic, GossipVerdict};
use quasar::transition::{ChainConfig, Check, TransitionError};
use quasar::types::minimal as ty;
use quasar::types::ssz::SszDecode;
use quasar::types::Preset;

use super::gossip_vectors::{describe as describe_block, read_snappy, spec_result};
use super::light_client::yaml;
use super::spec_runner::{file_name, runner_dir, sorted_subdirs};

/// The handlers: (folder, topic, message file prefix, chain topic).
const HANDLERS: &[(&str, &str, GossipTopic)] = &[
    (
        "gossip_voluntary_exit",
        "voluntary_exit",
        GossipTopic::VoluntaryExit,
    ),
    (
        "gossip_proposer_slashing",
        "proposer_slashing",
        GossipTopic::ProposerSlashing,
    ),
    (
        "gossip_attester_slashing",
        "attester_slashing",
        GossipTopic::AttesterSlashing,
    ),
    (
        "gossip_bls_to_execution_change",
        "bls_to_execution_change",
        GossipTopic::BlsToExecutionChange,
    ),
];

/// Cases that cannot be honoured, with the reason: none.
const PENDING: &[(&str, &str)] = &[];

/// The seen-cache keys of a message (decoded here independently of the validation):
/// the validator or proposer index, or an attester slashing's intersection.
fn seen_keys(kind: OperationKind, ssz: &[u8]) -> Result<Vec<u64>, String> {
    Ok(match kind {
        OperationKind::VoluntaryExit => vec![
            ty::SignedVoluntaryExit::ssz_decode(ssz)
                .map_err(|e| e.to_string())?
                .message
                .validator_index,
        ],
        OperationKind::ProposerSlashing => vec![
            ty::ProposerSlashing::ssz_decode(ssz)
                .map_err(|e| e.to_string())?
                .signed_header_1
                .message
                .proposer_index,
        ],
        OperationKind::BlsToExecutionChange => vec![
            ty::SignedBLSToExecutionChange::ssz_decode(ssz)
                .map_err(|e| e.to_string())?
                .message
                .validator_index,
        ],
        OperationKind::AttesterSlashing => {
            let s = ty::AttesterSlashing::ssz_decode(ssz).map_err(|e| e.to_string())?;
            let second: std::collections::BTreeSet<u64> =
                s.attestation_2.attesting_indices.iter().copied().collect();
            let mut v: Vec<u64> = s
                .attestation_1
                .attesting_indices
                .iter()
                .copied()
                .filter(|i| second.contains(i))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    })
}

/// Whether the typed refusal is the one the spec's `reason` names (the spec functions'
/// reasons for these four topics; an unknown reason is an error, so a new vector is seen).
fn reason_matches(reason: &str, verdict: &GossipVerdict) -> Result<bool, String> {
    use OperationError as E;
    let Some(BlockError::Operation(e)) = verdict.error() else {
        return Ok(false);
    };
    let check = |c: Check, detail: &str| {
        matches!(e, E::Invalid { error: TransitionError::Check { check, detail: d }, .. }
            if *check == c && d == detail)
    };
    let signature = |set: &str| {
        matches!(e, E::Invalid { error: TransitionError::Signature { what, .. }, .. }
            if *what == set)
    };
    let out_of_range = matches!(
        e,
        E::Invalid {
            error: TransitionError::IndexOutOfRange { .. },
            ..
        }
    );
    Ok(match reason {
        "already seen voluntary exit for this validator" => {
            matches!(e, E::ExitAlreadySeen { .. })
        }
        "already seen proposer slashing for this proposer" => {
            matches!(e, E::ProposerSlashingAlreadySeen { .. })
        }
        "all attester slashing indices already seen" => {
            matches!(e, E::NoNewSlashableIndices { .. })
        }
        "already seen BLS to execution change for this validator" => {
            matches!(e, E::BlsChangeAlreadySeen { .. })
        }
        "current epoch is pre-capella" => matches!(e, E::PreCapella { .. }),
        "validator index out of range"
        | "proposer index out of range"
        | "validator index out of range in indexed attestation 1"
        | "validator index out of range in indexed attestation 2" => out_of_range,
        "validator is not active" => check(Check::VoluntaryExit, "validator is not active"),
        "validator has already initiated exit" => {
            check(Check::VoluntaryExit, "validator already exiting")
        }
        "voluntary exit epoch is in the future" => {
            check(Check::VoluntaryExit, "exit epoch is in the future")
        }
        "validator has not been active long enough" => check(
            Check::VoluntaryExit,
            "validator has not been active long enough",
        ),
        "invalid voluntary exit signature" => signature("voluntary exit"),
        "header slots do not match" => check(Check::ProposerSlashing, "header slots differ"),
        "header proposer indices do not match" => {
            check(Check::ProposerSlashing, "header proposer indices differ")
        }
        "headers are not different" => check(Check::ProposerSlashing, "headers are equal"),
        "proposer is not slashable" => check(Check::ProposerSlashing, "proposer is not slashable"),
        "invalid proposer slashing signature" => signature("proposer slashing header"),
        "attestation data is not slashable" => check(
            Check::AttesterSlashing,
            "attestation data are not slashable",
        ),
        "invalid indexed attestation 1" | "invalid indexed attestation 2" => {
            signature("attestation")
                || matches!(e, E::Invalid { error: TransitionError::Check { check, .. }, .. }
                    if *check == Check::IndexedAttestation)
        }
        "no slashable validators in intersection" => {
            check(Check::AttesterSlashing, "attester slashing slashed nobody")
        }
        "validator does not have BLS withdrawal credentials" => check(
            Check::BlsToExecutionChange,
            "withdrawal credentials are not BLS",
        ),
        "pubkey does not match validator withdrawal credentials" => check(
            Check::BlsToExecutionChange,
            "from_bls_pubkey does not match the withdrawal credentials",
        ),
        "invalid BLS to execution change signature" => signature("bls to execution change"),
        other => return Err(format!("unknown reason {other:?}")),
    })
}

fn describe(v: &GossipVerdict) -> String {
    match v {
        GossipVerdict::Accept => "valid (marked seen, pooled)".into(),
        v => describe_block(v),
    }
}

/// (pool size, which of `keys` are seen) in the service's caches.
fn observe(ops: &GossipOps, kind: OperationKind, keys: &[u64]) -> (usize, Vec<bool>) {
    let pool = ops.with_pool(|p| p.len());
    let seen = ops.with_seen(|s| {
        let set = match kind {
            OperationKind::VoluntaryExit => &s.voluntary_exit_indices,
            OperationKind::ProposerSlashing => &s.proposer_slashing_indices,
            OperationKind::AttesterSlashing => &s.attester_slashing_indices,
            OperationKind::BlsToExecutionChange => &s.bls_to_execution_change_indices,
        };
        keys.iter().map(|&k| set.contains(k)).collect()
    });
    (pool, seen)
}

fn run_case(
    rt: &tokio::runtime::Runtime,
    case: &Path,
    want_topic: &str,
    topic: GossipTopic,
) -> Result<Vec<String>, String> {
    let meta = yaml::read(case, "meta.yaml")?;
    let t = meta.req("topic")?.as_str()?;
    if t != want_topic {
        return Err(format!("topic {t:?}, expected {want_topic}"));
    }
    for key in ["blocks", "finalized_checkpoint"] {
        if meta.get(key).is_some() {
            return Err(format!("`{key}` is not expected in an operation vector"));
        }
    }
    let kind = OperationKind::of_topic(topic).ok_or("not an operation topic")?;
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
        let base = match meta.get("current_time_ms") {
            Some(v) => v.as_u64()?,
            None => 0,
        };
        let mut lines = Vec::new();
        for (i, m) in meta.req("messages")?.as_list()?.iter().enumerate() {
            let name = m.req("message")?.as_str()?;
            let offset = match m.get("offset_ms") {
                Some(v) => v.as_u64()?,
                None => 0,
            };
            let expected = m.req("expected")?.as_str()?;
            if !["valid", "ignore", "reject"].contains(&expected) {
                return Err(format!("unknown expected result {expected:?}"));
            }
            let reason = m.get("reason").map(|r| r.as_str()).transpose()?;
            let bytes = read_snappy(&case.join(format!("{name}.ssz_snappy")))?;
            let keys = seen_keys(kind, &bytes).map_err(|e| format!("{name}: {e}"))?;
            let (pool_before, seen_before) = observe(handle.operations(), kind, &keys);
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
            if spec_result(&verdict) != expected {
                return Err(line);
            }
            // The typed refusal is the condition the vector names.
            if let Some(reason) = reason {
                if !reason_matches(reason, &verdict)? {
                    return Err(format!("{line}: not the refusal the reason names"));
                }
            }
            // The caches: ACCEPT marks every key seen and pools the message; IGNORE and
            // REJECT leave both as they were.
            let (pool_after, seen_after) = observe(handle.operations(), kind, &keys);
            let caches_ok = match verdict {
                GossipVerdict::Accept => {
                    pool_after == pool_before + 1 && seen_after.iter().all(|&s| s)
                }
                _ => pool_after == pool_before && seen_after == seen_before,
            };
            if !caches_ok {
                return Err(format!(
                    "{line}; caches: pool {pool_before} -> {pool_after}, seen {seen_before:?} \
                     -> {seen_after:?}"
                ));
            }
            lines.push(line);
        }
        Ok(lines)
    });
    drop(handle);
    service.shutdown();
    result
}

#[test]
fn gossip_operation_vectors() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    let mut all_cases = Vec::new();
    for &(handler, topic_name, topic) in HANDLERS {
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
        let (mut passed, mut pending, mut failed) = (0, 0, 0);
        for case in &cases {
            let name = file_name(case);
            all_cases.push(name.to_string());
            let result = run_case(&rt, case, topic_name, topic);
            match (PENDING.iter().find(|(n, _)| *n == name), result) {
                (None, Ok(lines)) => {
                    passed += 1;
                    println!("{handler} {name}: pass");
                    for l in lines {
                        println!("    {l}");
                    }
                }
                (None, Err(e)) => {
                    failed += 1;
                    failures.push(format!("{name}: {e}"));
                }
                (Some((_, why)), Err(e)) => {
                    pending += 1;
                    println!("{handler} {name}: PENDING ({why})");
                    println!("    {e}");
                }
                (Some(_), Ok(_)) => {
                    failed += 1;
                    failures.push(format!("{name}: passes now; take it out of PENDING"))
                }
            }
        }
        assert_eq!(passed + pending + failed, cases.len());
        summary.push(format!(
            "networking minimal {handler}: {passed} passed, {pending} pending, {failed} failed"
        ));
    }
    for (name, _) in PENDING {
        assert!(
            all_cases.iter().any(|c| c == name),
            "PENDING names {name}, which is not a case"
        );
    }
    for s in &summary {
        println!("{s}");
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
