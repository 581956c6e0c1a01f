//! `quasar dev`, the live devnet (real nodes on 127.0.0.1: libp2p, RocksDB, blst):
//! - the producer's aggregates follow the spec's aggregator selection, and a chain's gossip
//!   validation accepts them (the first of each committee; the copies are IGNOREd as
//!   already seen; a forged one is REJECTed);
//! - a short devnet of three nodes ends with every head equal, finalized, the late nodes
//!   caught up by range sync and accepting the producer's aggregates on gossip;
//! - `quasar dev --help` lists the flags; the command runs end to end with `--json`, and
//!   refuses bad parameters.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use quasar::accel::aggregate::{CpuAggregator, PubkeyAggregator};
use quasar::chain::gossip_attestation::selects_aggregator;
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{
    BlockSource, ChainService, GossipAcceptance, GossipClock, GossipTopic,
};
use quasar::dev::{DevOptions, DevSummary};
use quasar::devnet::{self, InteropKeys};
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::ssz::SszDecode;
use quasar::types::Preset;

use crate::service::runtime;

#[test]
fn aggregates_follow_the_selection_rule_and_pass_gossip_validation() {
    // 1024 validators: 4 committees of 32 per slot, so `is_aggregator` selects about
    // half of each committee (modulo 32 / 16 = 2), not everyone.
    let keys = InteropKeys::generate(1024).unwrap();
    let cfg = ChainConfig::minimal();
    let (genesis, mut producer) =
        devnet::live_producer(Preset::Minimal, &keys, &cfg, devnet::DEFAULT_GENESIS_TIME).unwrap();
    let (slot, block) = producer.next_block_ssz().unwrap();
    assert_eq!(slot, 1);
    let aggregates = producer.head_aggregates_ssz().unwrap();

    let mut by_committee: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for a in &aggregates {
        assert_eq!(a.slot, 1);
        let signed = ty::SignedAggregateAndProof::ssz_decode(&a.ssz).unwrap();
        assert_eq!(signed.message.aggregator_index, a.aggregator);
        let proof: [u8; 96] = signed.message.selection_proof.as_ref().try_into().unwrap();
        assert!(
            selects_aggregator(&proof, 2),
            "{} is selected",
            a.aggregator
        );
        assert!(signed.message.aggregate.aggregation_bits.iter().all(|b| *b));
        assert_eq!(signed.message.aggregate.aggregation_bits.len(), 32);
        by_committee
            .entry(a.committee)
            .or_default()
            .push(a.aggregator);
    }
    assert_eq!(
        by_committee.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "every committee has an aggregator"
    );
    let selected: BTreeSet<u64> = aggregates.iter().map(|a| a.aggregator).collect();
    assert_eq!(
        selected.len(),
        aggregates.len(),
        "one aggregate per aggregator"
    );
    assert!(
        aggregates.len() < 128 && aggregates.len() > 16,
        "about half of the slot's 128 attesters are selected: {}",
        aggregates.len()
    );

    // A chain at the producer's block validates them with the spec's rules.
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let chain = ChainService::open(
        dir.path(),
        Some(&genesis),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .unwrap();
    let h = chain.handle();
    let out = rt
        .block_on(h.import_segment(vec![block], BlockSource::Local))
        .unwrap();
    assert_eq!(out.imported, 1, "{:?}", out.failed);
    let now = h.slot_start(1).plus_ms(h.slot_duration_ms() * 2 / 3);
    let verdict = |ssz: Vec<u8>, now: GossipClock| {
        rt.block_on(h.validate_gossip(
            GossipTopic::BeaconAggregateAndProof,
            ssz,
            BlockSource::Gossip("peer".into()),
            now,
        ))
        .unwrap()
    };
    // A forged copy first (the aggregator signature's last byte changed): REJECT.
    let mut forged = aggregates[0].ssz.clone();
    let n = forged.len();
    forged[n - 1] ^= 0x01;
    let v = verdict(forged, now);
    assert_eq!(v.acceptance(), GossipAcceptance::Reject, "{v:?}");
    let mut accepted = BTreeMap::new();
    for a in &aggregates {
        let v = verdict(a.ssz.clone(), now);
        let first = !accepted.contains_key(&a.committee);
        if first {
            assert_eq!(v.acceptance(), GossipAcceptance::Accept, "{v:?}");
            accepted.insert(a.committee, a.aggregator);
        } else {
            // The same bits for the same data were seen: IGNORE, no penalty.
            assert_eq!(v.acceptance(), GossipAcceptance::Ignore, "{v:?}");
        }
    }
    assert_eq!(accepted.len(), 4);
    chain.shutdown();
}

fn dev_opts() -> DevOptions {
    DevOptions {
        preset: Preset::Minimal,
        validators: 64,
        nodes: 3,
        // Finality needs four epochs (finalized epoch 2 at slot 32); the checkpoint-synced
        // node starts at slot 33, anchored there.
        slots: 41,
        slot_ms: 600,
        // Twice the by-root lookup depth (8): at least 8 blocks must come by range sync.
        late_slots: 16,
        datadir: None,
    }
}

#[test]
fn a_live_devnet_converges_finalizes_and_its_late_nodes_range_sync() {
    let rt = runtime();
    let stop = AtomicBool::new(false);
    let opts = dev_opts();
    let mut lines = Vec::new();
    let summary: DevSummary = quasar::dev::run(
        &opts,
        rt.handle(),
        &mut || Ok(Box::new(CpuAggregator) as Box<dyn PubkeyAggregator>),
        &stop,
        &mut |l| {
            eprintln!("{l}");
            lines.push(l.to_string())
        },
    )
    .expect("the devnet runs");
    for l in summary.lines() {
        eprintln!("{l}");
    }
    assert!(summary.ok(), "{:?}", summary.problems);
    assert!(summary.heads_equal);
    assert_eq!(summary.head_slot, opts.slots);
    assert_eq!(summary.nodes.len(), 3);
    assert!(
        summary.finalized_epoch >= 2,
        "finalized epoch {}",
        summary.finalized_epoch
    );
    assert_eq!(summary.producer.blocks, opts.slots);
    assert_eq!(summary.producer.committees_without_aggregator, 0);
    assert!(summary.producer.aggregates_published > 0);
    for n in &summary.nodes[1..] {
        assert_eq!(n.head_root, summary.nodes[0].head_root);
        let s = n.range_sync.as_ref().expect("a late node's range sync");
        assert!(
            s.imported >= opts.late_slots - 8,
            "node {} caught up by range sync: {s:?}",
            n.index
        );
        assert!(s.blocks_per_second > 0.0, "{s:?}");
        assert!(s.caught_up_at_slot.is_some(), "{s:?}");
        let g = &n.gossip;
        assert!(
            g.blocks_accepted > 0,
            "node {} follows gossip: {g:?}",
            n.index
        );
        assert!(
            g.aggregates_accepted > 0,
            "node {} accepts aggregates: {g:?}",
            n.index
        );
        assert_eq!(g.aggregates_rejected, 0, "{g:?}");
        assert_eq!(g.blocks_rejected, 0, "{g:?}");
    }
    // The last late node anchored at the producer's finalized checkpoint from its Beacon
    // API and backfilled to genesis; the others started from genesis.
    let cp = &summary.nodes[2];
    assert_eq!(cp.checkpoint_sync_from, Some(0), "{cp:?}");
    assert!(
        cp.anchor_slot >= 8 && cp.anchor_slot % 8 == 0,
        "anchored at a finalized epoch boundary past genesis: {cp:?}"
    );
    let b = cp.backfill.as_ref().expect("backfill status");
    assert!(b.complete && b.oldest_slot == 0, "{b:?}");
    assert_eq!(summary.nodes[1].checkpoint_sync_from, None);
    assert_eq!(summary.nodes[1].anchor_slot, 0);
    assert_eq!(
        summary.aggregates_accepted,
        summary.nodes[1..]
            .iter()
            .map(|n| n.gossip.aggregates_accepted)
            .sum::<u64>()
    );
    // A status line every two slots (slots under a second), naming every node once they
    // run.
    let status_lines = lines.iter().filter(|l| l.starts_with("slot ")).count() as u64;
    assert!(status_lines >= opts.slots / 2 - 1, "{status_lines} lines");
    assert!(lines.iter().any(|l| l.contains("n2 head")));
}

fn quasar(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args(args)
        .output()
        .expect("running quasar")
}

#[test]
fn quasar_dev_help_lists_its_flags_and_bad_parameters_are_refused() {
    let out = quasar(&["dev", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--preset",
        "--validators",
        "--nodes",
        "--slots",
        "--slot-ms",
        "--late-slots",
        "--datadir",
        "--backend",
        "--json",
    ] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
    for (args, needle) in [
        (&["dev", "--nodes", "1"][..], "--nodes"),
        (
            &["dev", "--slots", "4", "--late-slots", "4"][..],
            "--late-slots",
        ),
        (&["dev", "--validators", "0"][..], "--validators"),
    ] {
        let out = quasar(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn quasar_dev_runs_end_to_end_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let out = quasar(&[
        "dev",
        "--nodes",
        "2",
        "--slots",
        "6",
        "--late-slots",
        "3",
        "--slot-ms",
        "500",
        "--backend",
        "cpu",
        "--datadir",
        data.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["heads_equal"], true, "{v}");
    assert_eq!(v["head_slot"], 6, "{v}");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    assert!(stderr.contains("summary:"), "{stderr}");
    // --datadir keeps the nodes' stores, and a second run there is refused.
    assert!(data.join("node-0").join("db").exists());
    assert!(data.join("node-1").join("db").exists());
    let again = quasar(&["dev", "--datadir", data.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a devnet"));
}
