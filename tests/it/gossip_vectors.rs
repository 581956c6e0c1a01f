//! `networking/gossip_beacon_block` vectors (minimal preset) through the real chain service
//! (`tests/formats/networking/gossip_validation.md` of consensus-specs): each case's
//! `state.ssz_snappy` anchors a fresh `ChainService` in a temp datadir (with the case's
//! `config.yaml` when it has one); the first of `blocks` is the anchor block (checked
//! against the anchor root, not imported), the others are imported through the handle
//! (`failed: true` ones are marked invalid instead, as the format says: seen, no post
//! state); a `finalized_checkpoint` replaces fork choice's in the gossip checks; then each
//! message is validated at `current_time_ms + offset_ms` and its verdict compared with
//! `expected`: `valid` is [`GossipVerdict::Accept`], or [`GossipVerdict::Invalid`] for a
//! block that meets every gossip condition but fails the full verification the vectors do
//! not run (two vectors' hand-built children carry no valid sync aggregate). Cases quasar
//! cannot honour are in [`PENDING`] with the reason; they still run, and one that starts to
//! pass is a failure until it leaves the list.

use std::path::Path;

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{
    BlockSource, ChainHandle, ChainService, GossipClock, GossipTopic, GossipVerdict,
};
use quasar::store::Checkpoint;
use quasar::transition::minimal as t;
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::ssz::SszDecode;
use quasar::types::ssz_static::{decompress_snappy, MAX_DECOMPRESSED_LEN};
use quasar::types::Preset;

use super::light_client::yaml::{self, Yaml};
use super::spec_runner::{file_name, runner_dir, sorted_subdirs};

const NO_EXECUTION_ENGINE: &str = "quasar runs without an execution engine and trusts every \
     payload optimistically (README), so every parent's payload status is NOT_VALIDATED";

/// Cases that cannot be honoured, with the reason.
const PENDING: &[(&str, &str)] = &[
    (
        "gossip_beacon_block__ignore_parent_consensus_failed_execution_known",
        "expects IGNORE because the failed parent's payload was processed by an execution \
         engine (payload_status VALID); without one that status is never known, and the \
         spec's optimistic branch applies: REJECT (the parent failed validation)",
    ),
    (
        "gossip_beacon_block__ignore_parent_execution_verified_invalid",
        "expects IGNORE because an execution engine found the parent's payload invalid \
         (payload_status INVALIDATED); without one the parent is imported optimistically \
         and the child meets every gossip condition (valid)",
    ),
];

pub(super) fn read_snappy(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decompress_snappy(&raw, MAX_DECOMPRESSED_LEN).map_err(|e| format!("{}: {e}", path.display()))
}

/// A block file of the case: its SSZ and root.
pub(super) fn block_file(case: &Path, name: &str) -> Result<(Vec<u8>, [u8; 32]), String> {
    let bytes = read_snappy(&case.join(format!("{name}.ssz_snappy")))?;
    let block = ty::SignedBeaconBlock::ssz_decode(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let root = t::hash_tree_root(&block.message).map_err(|e| format!("{name}: {e}"))?;
    Ok((bytes, root))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn root_of(s: &str) -> Result<[u8; 32], String> {
    yaml::hex(s)?
        .try_into()
        .map_err(|_| format!("{s:?} is not a 32-byte root"))
}

pub(super) fn flag(entry: &Yaml, key: &str) -> Result<bool, String> {
    match entry.get(key) {
        None => Ok(false),
        Some(v) => match v.as_str()? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("{key}: {other:?} is not a bool")),
        },
    }
}

/// The vector's result of a verdict: what the spec's gossip conditions decided. A block
/// that meets them all is `valid` there even when its full verification (which the
/// vectors do not run) refuses it: [`GossipVerdict::Invalid`] says exactly that, typed.
pub(super) fn spec_result(v: &GossipVerdict) -> &'static str {
    match v {
        GossipVerdict::Accept | GossipVerdict::Invalid(_) => "valid",
        GossipVerdict::Ignore(_) => "ignore",
        GossipVerdict::Reject(_) => "reject",
    }
}

pub(super) fn describe(v: &GossipVerdict) -> String {
    match v {
        GossipVerdict::Accept => "valid (imported)".into(),
        GossipVerdict::Invalid(e) => format!(
            "valid by the gossip conditions, then refused by the full verification, told \
             to gossipsub as {:?} ({e})",
            v.acceptance()
        ),
        GossipVerdict::Ignore(e) => format!("ignore ({e})"),
        GossipVerdict::Reject(e) => format!("reject ({e})"),
    }
}

/// Import the case's `blocks` after the anchor, and apply its `finalized_checkpoint`.
pub(super) async fn prepare(case: &Path, meta: &Yaml, handle: &ChainHandle) -> Result<(), String> {
    let blocks = meta.req("blocks")?.as_list()?;
    let (anchor, rest) = blocks
        .split_first()
        .ok_or("`blocks` is empty: no anchor block")?;
    let (_, anchor_root) = block_file(case, anchor.req("block")?.as_str()?)?;
    let head = handle.head().head;
    if head.root != anchor_root {
        return Err(format!(
            "the anchor block 0x{} is not the anchor state's block 0x{}",
            hex(&anchor_root),
            hex(&head.root)
        ));
    }
    for entry in rest {
        let name = entry.req("block")?.as_str()?;
        let (bytes, root) = block_file(case, name)?;
        if flag(entry, "pending")? {
            return Err(format!(
                "{name}: `pending` blocks (seen, queued, not imported) are not supported"
            ));
        }
        if flag(entry, "failed")? {
            handle.mark_invalid(root).await.map_err(|e| e.to_string())?;
            continue;
        }
        let outcome = handle
            .import_segment(vec![bytes], BlockSource::File)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        if outcome.imported != 1 {
            return Err(format!("{name}: not imported: {:?}", outcome.failed));
        }
    }
    if let Some(cp) = meta.get("finalized_checkpoint") {
        let epoch = cp.req("epoch")?.as_u64()?;
        let root = match (cp.get("root"), cp.get("block")) {
            (Some(r), None) => root_of(r.as_str()?)?,
            (None, Some(b)) => block_file(case, b.as_str()?)?.1,
            _ => return Err("finalized_checkpoint needs exactly one of root, block".into()),
        };
        handle
            .override_gossip_finality(Some(Checkpoint { epoch, root }))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Run one case; `Ok` with one line per message, `Err` at the first mismatch.
fn run_case(rt: &tokio::runtime::Runtime, case: &Path) -> Result<Vec<String>, String> {
    let meta = yaml::read(case, "meta.yaml")?;
    let topic = meta.req("topic")?.as_str()?;
    if topic != "beacon_block" {
        return Err(format!("topic {topic:?}, expected beacon_block"));
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
            let (bytes, _) = block_file(case, name)?;
            let now = GossipClock::from_ms_since_genesis(base).plus_ms(offset);
            let verdict = handle
                .validate_gossip(
                    GossipTopic::BeaconBlock,
                    bytes,
                    BlockSource::Gossip("vector".into()),
                    now,
                )
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
            if spec_result(&verdict) != expected {
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

#[test]
fn gossip_beacon_block_vectors() {
    let dir = runner_dir(Preset::Minimal, "networking")
        .join("gossip_beacon_block")
        .join("pyspec_tests");
    assert!(
        dir.is_dir(),
        "FAILURE: vector folder {} is missing",
        dir.display()
    );
    let cases = sorted_subdirs(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cases.is_empty(), "no cases under {}", dir.display());
    for (name, _) in PENDING {
        assert!(
            cases.iter().any(|c| file_name(c) == *name),
            "PENDING names {name}, which is not a case under {}",
            dir.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut passed, mut pending, mut failures) = (0, 0, Vec::new());
    for case in &cases {
        let name = file_name(case);
        let result = run_case(&rt, case);
        match (PENDING.iter().find(|(n, _)| *n == name), result) {
            (None, Ok(lines)) => {
                passed += 1;
                println!("gossip_beacon_block {name}: pass");
                for l in lines {
                    println!("    {l}");
                }
            }
            (None, Err(e)) => failures.push(format!("{name}: {e}")),
            (Some((_, why)), Err(e)) => {
                pending += 1;
                println!("gossip_beacon_block {name}: PENDING ({why}; {NO_EXECUTION_ENGINE})");
                println!("    {e}");
            }
            (Some(_), Ok(_)) => {
                failures.push(format!("{name}: passes now; take it out of PENDING"))
            }
        }
    }
    println!(
        "networking minimal gossip_beacon_block: {passed} passed, {pending} pending, {} failed",
        failures.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(passed + pending, cases.len());
}
