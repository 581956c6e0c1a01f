//! Checkpoint sync between real quasar nodes on 127.0.0.1 (real libp2p, real RocksDB, real
//! blst, real HTTP): node B anchors a new datadir at node A's finalized checkpoint fetched
//! from A's Beacon API, reaches A's head by range sync, and backfills every older block
//! down to genesis — restarted mid-backfill, it resumes from its oldest block. Every block
//! root at every slot is A's, and B serves the blocks byte-identical. A URL answering
//! garbage, an HTTP error, a state that is not at an epoch boundary or whose root does not
//! match the block: the typed error, and the datadir left without an anchor.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::service::BlockSource;
use quasar::chain::OldestBlock;
use quasar::devnet;
use quasar::net::codec::ResponseCode;
use quasar::net::NetError;
use quasar::node::{Node, NodeConfig, NodeError};
use quasar::sync::checkpoint::{checkpoint_sync_blocking, CheckpointConfig, CheckpointError};
use quasar::types::minimal as ty;
use quasar::types::ssz::{ssz_encode, SszDecode};
use quasar::types::Preset;

use crate::net::wait_for;
use crate::service::{generate, read, runtime};

const SLOTS: u64 = 200;

/// A one-route-table HTTP/1.1 server on 127.0.0.1: `route(path)` gives the status, the
/// content type and the body of each answer.
fn serve(route: impl Fn(&str) -> (u16, &'static str, Vec<u8>) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let route = Arc::new(route);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let route = route.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, ctype, body) = route(&path);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            });
        }
    });
    format!("http://{addr}/")
}

fn node_config(data: &Path, genesis: Option<Vec<u8>>, url: Option<String>) -> NodeConfig {
    let mut cfg = NodeConfig::local(data.to_path_buf(), genesis, Box::new(CpuAggregator));
    cfg.checkpoint_sync_url = url;
    cfg
}

/// No chain in the datadir: no preset, no anchor.
fn assert_unanchored(data: &Path) {
    assert_eq!(
        quasar::chain::any::datadir_preset(data).unwrap(),
        None,
        "{} holds no chain",
        data.display()
    );
}

#[test]
fn a_node_checkpoint_syncs_reaches_the_head_and_backfills_to_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(Preset::Minimal, &chain_dir, 64, SLOTS);
    let genesis = read(&devnet::genesis_path(&chain_dir));
    let rt = runtime();

    // A: the devnet chain imported, the Beacon API on a free port.
    let mut cfg = node_config(&dir.path().join("a"), Some(genesis.clone()), None);
    cfg.http = Some("127.0.0.1:0".parse().unwrap());
    let a = rt.block_on(Node::start(cfg)).expect("A starts");
    let blocks: Vec<Vec<u8>> = (1..=SLOTS)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    for part in blocks.chunks(64) {
        let out = rt
            .block_on(a.chain().import_segment(part.to_vec(), BlockSource::Local))
            .unwrap();
        assert!(out.failed.is_none(), "{:?}", out.failed);
    }
    let want = a.chain().head();
    assert_eq!(want.head.slot, SLOTS);
    assert!(
        want.finalized.epoch >= 16,
        "the chain finalizes: {:?}",
        want.finalized
    );
    let url = format!("http://{}/", a.api_addr().unwrap());
    wait_for("A listens", Duration::from_secs(10), || {
        !a.net().listen_addresses().is_empty()
    });
    let a_addr = a.net().listen_addresses()[0].clone();
    let a_reader = a.chain().reader().clone();

    // --- Failures: the typed error, nothing written. ---
    let fin_slot = want.finalized.epoch * 8;
    let fin_state = a_reader.state_at_slot(fin_slot).unwrap().expect("held");
    let fin_block = a_reader
        .block_by_root(&want.finalized.root)
        .unwrap()
        .expect("held");
    let try_url = |name: &str, url: String| {
        let data = dir.path().join(name);
        let r = checkpoint_sync_blocking(
            &CheckpointConfig::new(url),
            &data,
            Some(Preset::Minimal),
            Some(&genesis),
        );
        assert_unanchored(&data);
        r.expect_err("refused")
    };
    // Garbage with the SSZ media type.
    let garbage = serve(|_| (200, "application/octet-stream", b"garbage".to_vec()));
    let e = try_url("garbage", garbage);
    assert!(
        matches!(e, CheckpointError::Decode { what: "state", .. }),
        "{e}"
    );
    // Not SSZ at all.
    let html = serve(|_| (200, "text/html", b"<html>hello</html>".to_vec()));
    let e = try_url("html", html);
    assert!(matches!(e, CheckpointError::NotSsz { .. }), "{e}");
    // The API's error body.
    let missing = serve(|_| {
        (
            404,
            "application/json",
            br#"{"code":404,"message":"no state at slot 7"}"#.to_vec(),
        )
    });
    let e = try_url("http-error", missing);
    assert!(
        matches!(&e, CheckpointError::Http { status: 404, message, .. } if message == "no state at slot 7"),
        "{e}"
    );
    // Nobody listening.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        format!("http://{a}/")
    };
    let e = try_url("unreachable", closed);
    assert!(matches!(e, CheckpointError::Unreachable { .. }), "{e}");
    // A state off the epoch boundary (A's head state, slot 200 − 3).
    let off = a_reader.state_at_slot(SLOTS - 3).unwrap().expect("held");
    let off_url = serve(move |_| (200, "application/octet-stream", off.clone()));
    let e = try_url("off-boundary", off_url);
    assert!(
        matches!(e, CheckpointError::NotEpochBoundary { slot, .. } if slot == SLOTS - 3),
        "{e}"
    );
    // A state whose root is not the block's state_root (one balance changed), with the
    // real finalized block served for any block id.
    let mut tampered = ty::BeaconState::ssz_decode(&fin_state).unwrap();
    tampered.balances[0] += 1;
    let tampered = ssz_encode(&tampered).unwrap();
    let (fb, ts) = (fin_block.clone(), tampered);
    let tampered_url = serve(move |path| {
        if path.contains("/beacon/blocks/") {
            (200, "application/octet-stream", fb.clone())
        } else {
            (200, "application/octet-stream", ts.clone())
        }
    });
    let e = try_url("tampered", tampered_url.clone());
    assert!(matches!(e, CheckpointError::RootMismatch { .. }), "{e}");
    // Through the node: the same error, the node not started, the datadir unanchored.
    let data = dir.path().join("tampered-node");
    match rt.block_on(Node::start(node_config(&data, None, Some(tampered_url)))) {
        Err(NodeError::Checkpoint(CheckpointError::RootMismatch { .. })) => {}
        Err(e) => panic!("not a root mismatch: {e}"),
        Ok(_) => panic!("a tampered checkpoint was accepted"),
    }
    assert_unanchored(&data);

    // --- B: checkpoint sync from A's API (no genesis given: the preset is the state's),
    // A as boot node, backfill slowed by its pacing (32 blocks, then 4 per second) so that
    // it can be stopped half way. ---
    let b_dir = dir.path().join("b");
    let mut cfg = node_config(&b_dir, None, Some(url.clone()));
    cfg.network.boot_nodes = vec![a_addr.clone()];
    cfg.sync.batch_slots = 16;
    cfg.sync.pacing.blocks_by_range.max_tokens = 32;
    cfg.sync.pacing.blocks_by_range.replenish_all_every = Duration::from_secs(8);
    let b = rt.block_on(Node::start(cfg)).expect("B checkpoint-syncs");
    let anchored = b.chain().head();
    assert_eq!(
        anchored.head.root, want.finalized.root,
        "B's anchor is A's finalized block"
    );
    assert_eq!(anchored.finalized, want.finalized);
    let anchor_block_slot = a_reader
        .block_by_root(&want.finalized.root)
        .map(|b| quasar::store::schema::signed_block_slot(&b.unwrap()).unwrap())
        .unwrap();
    assert_eq!(anchored.earliest_available_slot, anchor_block_slot);
    let backfill = b.backfill().expect("B backfills");
    wait_for("B at A's head", Duration::from_secs(60), || {
        b.chain().head().head.root == want.head.root
    });
    assert_eq!(b.chain().head().head_state_root, want.head_state_root);
    wait_for("a first backfilled batch", Duration::from_secs(60), || {
        backfill.status().oldest_slot < anchor_block_slot
    });
    // Mid-backfill, B does not claim blocks it does not hold.
    let b_id = b.net().local_peer_id();
    wait_for("A sees B", Duration::from_secs(30), || {
        rt.block_on(a.net().peers())
            .unwrap()
            .iter()
            .any(|p| p.peer_id == b_id && p.status.is_some())
    });
    match rt.block_on(a.net().blocks_by_range(b_id, 0, 16)) {
        Err(NetError::Response {
            code: ResponseCode::ResourceUnavailable,
            ..
        }) => {}
        other => panic!("a range below B's oldest block: {other:?}"),
    }
    let first = backfill.status();
    assert!(!first.complete, "stopped half way: {first:?}");
    rt.block_on(b.shutdown()).expect("B stops");
    let resumed_from = {
        let store = quasar::store::Store::open(b_dir.join("db")).unwrap();
        OldestBlock::read(&store).unwrap().expect("recorded")
    };
    assert!(
        resumed_from.slot > 0 && resumed_from.slot < anchor_block_slot,
        "{resumed_from:?}"
    );
    assert_eq!(
        a_reader.block_root_at_slot(resumed_from.slot).unwrap(),
        b_reader_root(&b_dir, resumed_from.slot),
    );

    // --- B again: the URL is ignored (the datadir's anchor stays), the genesis state is
    // checked to be of its chain, backfill resumes from the oldest block and ends at
    // genesis. ---
    let mut cfg = node_config(&b_dir, Some(genesis.clone()), Some(url));
    cfg.network.boot_nodes = vec![a_addr];
    let b = rt.block_on(Node::start(cfg)).expect("B restarts");
    assert_eq!(b.chain().head().head.root, want.head.root);
    let backfill = b.backfill().expect("B backfills");
    wait_for("backfill to genesis", Duration::from_secs(120), || {
        backfill.status().complete
    });
    let done = backfill.status();
    eprintln!("backfill: first run {first:?}, second run {done:?}");
    let below: u64 = (0..resumed_from.slot)
        .filter(|s| a_reader.block_root_at_slot(*s).unwrap().is_some())
        .count() as u64;
    assert_eq!(
        done.imported, below,
        "the second run fetched only what was missing"
    );
    assert_eq!(done.oldest_slot, 0);
    assert_eq!(b.chain().head().earliest_available_slot, 0);

    // Every slot's block root is A's, every block byte-identical, served by B.
    let b_reader = b.chain().reader().clone();
    let mut roots = Vec::new();
    for slot in 0..=SLOTS {
        let root = a_reader.block_root_at_slot(slot).unwrap();
        assert_eq!(
            b_reader.block_root_at_slot(slot).unwrap(),
            root,
            "slot {slot}"
        );
        if let Some(r) = root {
            roots.push(r);
        }
    }
    assert_eq!(
        roots.len() as u64,
        SLOTS + 1,
        "a block at every slot, genesis included"
    );
    let b_id = b.net().local_peer_id();
    wait_for("A sees B again", Duration::from_secs(30), || {
        rt.block_on(a.net().peers())
            .unwrap()
            .iter()
            .any(|p| p.peer_id == b_id && p.status.is_some())
    });
    for (root, slot) in roots.iter().zip(0..) {
        assert_eq!(
            b_reader.block_by_root(root).unwrap(),
            a_reader.block_by_root(root).unwrap(),
            "block at slot {slot}"
        );
    }
    // Over the wire (within B's inbound quota of blocks by root): the genesis block and
    // the backfilled ones after it, the anchor block, the head block.
    let mut asked = roots[..64].to_vec();
    asked.push(want.finalized.root);
    asked.push(want.head.root);
    let got = rt
        .block_on(a.net().blocks_by_root(b_id, asked.clone()))
        .unwrap();
    let expected: Vec<Vec<u8>> = asked
        .iter()
        .map(|r| a_reader.block_by_root(r).unwrap().expect("A holds it"))
        .collect();
    assert_eq!(got, expected, "blocks by root from B");
    let status = rt.block_on(a.net().status(b_id)).unwrap();
    assert_eq!(status.earliest_available_slot, Some(0));
    rt.block_on(b.shutdown()).expect("B stops");
    rt.block_on(a.shutdown()).expect("A stops");
}

/// The block root B's stopped datadir records at `slot`.
fn b_reader_root(data: &Path, slot: u64) -> Option<[u8; 32]> {
    quasar::store::Store::open(data.join("db"))
        .unwrap()
        .block_root_at_slot(slot)
        .unwrap()
}
