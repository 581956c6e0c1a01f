//! Range sync between real quasar nodes on 127.0.0.1 (real libp2p, real RocksDB, real
//! blst): a fresh node syncs a chain of more than 1,000 blocks from three peers at once,
//! while one peer serves corrupted blocks (it is penalised and its batches are fetched
//! from the others) and another leaves mid-sync; it ends on the serving nodes' head block
//! and state root. Then it follows the head by gossip: a block whose parent it lacks
//! makes it fetch the missing ancestors by root and the peer's new Status.

use std::path::Path;
use std::time::Duration;

use quasar::chain::service::BlockSource;
use quasar::devnet;
use quasar::sync::{RangeSync, SyncConfig};

use crate::net::{start, wait_for, Node};
use crate::service::{generate, read, runtime};

const SLOTS: u64 = 1056;
/// Blocks the serving node gets after the sync, the last one published on gossip.
const EXTRA: u64 = 5;

/// Import blocks 1 ..= `slots` of `chain_dir` into `node` through its chain handle.
pub fn import_all(rt: &tokio::runtime::Runtime, node: &Node, chain_dir: &Path, slots: u64) {
    let blocks: Vec<Vec<u8>> = (1..=slots)
        .map(|s| read(&devnet::block_path(chain_dir, s)))
        .collect();
    for part in blocks.chunks(256) {
        let out = rt
            .block_on(
                node.chain
                    .handle()
                    .import_segment(part.to_vec(), BlockSource::Local),
            )
            .unwrap();
        assert!(out.failed.is_none(), "{:?}", out.failed);
    }
}

#[test]
fn a_node_syncs_from_three_peers_past_a_corrupt_one_and_a_leaving_one() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(
        quasar::types::Preset::Minimal,
        &chain_dir,
        64,
        SLOTS + EXTRA,
    );
    let rt = runtime();
    let servers: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| start(&rt, &dir.path().join(n), &chain_dir))
        .collect();
    for s in &servers {
        import_all(&rt, s, &chain_dir, SLOTS);
    }
    let want = servers[0].chain.handle().head();
    assert_eq!(want.head.slot, SLOTS);

    // c's store gets a corrupted copy of one block in every 64-slot range: a signature
    // byte flipped, so the block still links (its root is over the message) but fails
    // verification.
    let reader = servers[2].chain.handle().reader().clone();
    let mut batch = reader.store().batch();
    let mut corrupted = 0;
    for slot in (10..=SLOTS).step_by(64) {
        let root = reader.block_root_at_slot(slot).unwrap().expect("stored");
        let mut ssz = reader.block_by_root(&root).unwrap().expect("stored");
        ssz[4 + 40] ^= 0x01;
        batch.put_block(&root, &ssz).unwrap();
        corrupted += 1;
    }
    batch.commit().unwrap();
    assert!(corrupted >= 16);

    let d = start(&rt, &dir.path().join("d"), &chain_dir);
    let nd = d.net.handle();
    for s in &servers {
        rt.block_on(nd.dial(s.net.handle().listen_addresses()[0].clone()))
            .unwrap();
    }
    wait_for("three peers with a Status", Duration::from_secs(30), || {
        rt.block_on(nd.peers())
            .unwrap()
            .iter()
            .filter(|p| p.status.is_some())
            .count()
            == 3
    });
    let sync = {
        let _guard = rt.enter();
        RangeSync::start(
            nd.clone(),
            d.chain.handle(),
            SyncConfig {
                batch_slots: 32,
                ..SyncConfig::default()
            },
        )
    };
    // b leaves once a third of the chain is in.
    let mut servers = servers;
    wait_for("a third of the chain", Duration::from_secs(120), || {
        d.chain.handle().head().head.slot >= SLOTS / 3
    });
    let b = servers.remove(1);
    rt.block_on(b.net.shutdown());
    b.chain.shutdown();
    wait_for("the servers' head", Duration::from_secs(240), || {
        d.chain.handle().head().head.slot >= SLOTS
    });
    let got = d.chain.handle().head();
    assert_eq!(got.head.root, want.head.root, "the same head block");
    assert_eq!(got.head_state_root, want.head_state_root, "the same state");
    let status = sync.status();
    eprintln!("sync: {status:?}");
    assert!(status.imported >= 1000, "{status:?}");
    assert!(
        status.penalties >= 1,
        "the corrupt peer was penalised: {status:?}"
    );
    assert!(status.retried_batches >= 1, "{status:?}");
    let c_id = servers[1].net.handle().local_peer_id();
    let c_score = rt
        .block_on(nd.peers())
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == c_id)
        .map(|p| p.score);
    assert!(
        c_score.is_none_or(|s| s < 0.0),
        "the corrupt peer's score fell (or it was dropped): {c_score:?}"
    );
    assert!(!status.syncing || status.head_slot >= status.target_slot);

    // Head sync: a imports EXTRA more blocks and publishes the last on gossip; d has no
    // parent for it, looks the ancestors up by root from a, and asks a for its Status.
    let a = &servers[0];
    wait_for("a gossip mesh", Duration::from_secs(30), || {
        rt.block_on(a.net.handle().gossip_peers()).unwrap() >= 1
    });
    let extra: Vec<Vec<u8>> = (SLOTS + 1..=SLOTS + EXTRA)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    let out = rt
        .block_on(
            a.chain
                .handle()
                .import_segment(extra.clone(), BlockSource::Local),
        )
        .unwrap();
    assert!(out.failed.is_none());
    rt.block_on(a.net.handle().publish_block(extra.last().unwrap().clone()))
        .unwrap();
    wait_for("the gossip head", Duration::from_secs(60), || {
        d.chain.handle().head().head.slot == SLOTS + EXTRA
    });
    assert_eq!(
        d.chain.handle().head().head.root,
        a.chain.handle().head().head.root
    );
    rt.block_on(sync.stop()).unwrap();
    for n in servers.into_iter().chain([d]) {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}
