//! Real libp2p between quasar nodes on 127.0.0.1 (real RocksDB in temp dirs, real blst):
//! - Status is exchanged on connect;
//! - blocks by range and by root come back byte-identical to the serving node's store;
//! - a block published on gossip by one node is validated and imported by the others;
//! - a peer on another fork digest is sent Goodbye (irrelevant network) and dropped.

use std::path::Path;
use std::time::{Duration, Instant};

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{BlockSource, ChainService};
use quasar::devnet;
use quasar::net::service::{NetEvent, NetworkConfig, NetworkService, GOODBYE_IRRELEVANT_NETWORK};
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::ssz::SszDecode;
use quasar::types::Preset;

use crate::service::{read, runtime};

fn generate(dir: &Path, validators: usize, slots: u64) -> quasar::devnet::DevnetSummary {
    crate::service::generate(Preset::Minimal, dir, validators, slots)
}

pub struct Node {
    pub chain: ChainService,
    pub net: NetworkService,
}

fn start(rt: &tokio::runtime::Runtime, data: &Path, chain_dir: &Path) -> Node {
    start_with(
        rt,
        data,
        chain_dir,
        NetworkConfig::local(data.to_path_buf()),
    )
}

/// A node of the chain in `chain_dir`, its data in `data`, on the network `config` says.
pub fn start_with(
    rt: &tokio::runtime::Runtime,
    data: &Path,
    chain_dir: &Path,
    config: NetworkConfig,
) -> Node {
    let genesis = read(&devnet::genesis_path(chain_dir));
    let chain = ChainService::open(
        data,
        Some(&genesis),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .expect("chain opens");
    let net = rt
        .block_on(NetworkService::start(
            config,
            chain.handle(),
            ChainConfig::minimal(),
        ))
        .expect("network starts");
    // Wait until it listens.
    let t = Instant::now();
    while net.handle().listen_addresses().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    Node { chain, net }
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_nodes_exchange_status_serve_blocks_and_relay_gossip() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let summary = generate(&chain_dir, 64, 40);
    let rt = runtime();
    let a = start(&rt, &dir.path().join("a"), &chain_dir);
    let b = start(&rt, &dir.path().join("b"), &chain_dir);
    let c = start(&rt, &dir.path().join("c"), &chain_dir);
    let (na, nb, nc) = (a.net.handle(), b.net.handle(), c.net.handle());

    // A has blocks 1 … 39.
    let blocks: Vec<Vec<u8>> = (1..=39)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    let outcome = rt
        .block_on(a.chain.handle().import_segment(blocks, BlockSource::Local))
        .unwrap();
    assert_eq!(outcome.imported, 39);

    // B and C dial A; C dials B too.
    let addr_a = na.listen_addresses()[0].clone();
    let addr_b = nb.listen_addresses()[0].clone();
    rt.block_on(nb.dial(addr_a.clone())).unwrap();
    rt.block_on(nc.dial(addr_a)).unwrap();
    rt.block_on(nc.dial(addr_b)).unwrap();

    // Status: B learns A's head as A reports it.
    wait_for("B to see A's status", Duration::from_secs(20), || {
        rt.block_on(nb.peers())
            .unwrap()
            .iter()
            .any(|p| p.peer_id == na.local_peer_id() && p.status.is_some())
    });
    let status = rt.block_on(nb.status(na.local_peer_id())).unwrap();
    let head_a = a.chain.handle().head();
    assert_eq!(status.head_slot, 39);
    assert_eq!(status.head_root, head_a.head.root);
    assert_eq!(status.finalized_epoch, head_a.finalized.epoch);
    assert_eq!(status.earliest_available_slot, Some(0));

    // Blocks by range: byte-identical to A's store.
    let got = rt
        .block_on(nb.blocks_by_range(na.local_peer_id(), 1, 39))
        .unwrap();
    let want = a.chain.handle().reader().blocks_by_range(1, 39).unwrap();
    assert_eq!(got.len(), 39);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, &w.ssz, "slot {}", w.slot);
    }
    // By root: a few roots, one unknown (skipped, as the spec says).
    let roots = vec![want[4].root, [0x77; 32], want[20].root];
    let got_roots = rt
        .block_on(nc.blocks_by_root(na.local_peer_id(), roots))
        .unwrap();
    assert_eq!(got_roots, vec![want[4].ssz.clone(), want[20].ssz.clone()]);
    // A range beyond the head: only what exists.
    let beyond = rt
        .block_on(nb.blocks_by_range(na.local_peer_id(), 35, 20))
        .unwrap();
    assert_eq!(beyond.len(), 5);

    // B and C import what they fetched.
    for node in [&b, &c] {
        let outcome = rt
            .block_on(node.chain.handle().import_segment(
                got.clone(),
                BlockSource::Peer(na.local_peer_id().to_string()),
            ))
            .unwrap();
        assert_eq!(outcome.imported, 39, "{:?}", outcome.failed);
    }

    // Gossip: A imports block 40 and publishes it; B and C validate and import it.
    let b40 = read(&devnet::block_path(&chain_dir, 40));
    rt.block_on(
        a.chain
            .handle()
            .import_segment(vec![b40.clone()], BlockSource::Local),
    )
    .unwrap();
    wait_for("gossip meshes", Duration::from_secs(30), || {
        rt.block_on(na.gossip_peers()).unwrap() >= 2
    });
    let mut published = false;
    let t = Instant::now();
    while !published {
        published = rt.block_on(na.publish_block(b40.clone())).is_ok();
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "publish never succeeded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (name, node) in [("B", &b), ("C", &c)] {
        wait_for(
            &format!("{name} to import the gossip block"),
            Duration::from_secs(30),
            || node.chain.handle().head().head.root == summary.head_root,
        );
    }
    let decoded = ty::SignedBeaconBlock::ssz_decode(&b40).unwrap();
    assert_eq!(b.chain.handle().head().head.slot, decoded.message.slot);

    for n in [a, b, c] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}

#[test]
fn a_peer_on_another_fork_digest_gets_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let chain_x = dir.path().join("x");
    let chain_y = dir.path().join("y");
    // Different validator sets: different genesis validators roots, different digests.
    generate(&chain_x, 64, 1);
    generate(&chain_y, 72, 1);
    let rt = runtime();
    let a = start(&rt, &dir.path().join("a"), &chain_x);
    let d = start(&rt, &dir.path().join("d"), &chain_y);
    let (na, nd) = (a.net.handle(), d.net.handle());
    let mut events_a = na.subscribe();
    let mut events_d = nd.subscribe();
    rt.block_on(nd.dial(na.listen_addresses()[0].clone()))
        .unwrap();
    let mut goodbye_seen = false;
    let t = Instant::now();
    while !goodbye_seen {
        assert!(t.elapsed() < Duration::from_secs(20), "no goodbye");
        for ev in std::iter::from_fn(|| events_a.try_recv().ok())
            .chain(std::iter::from_fn(|| events_d.try_recv().ok()))
        {
            match ev {
                NetEvent::SentGoodbye { reason, .. } | NetEvent::Goodbye { reason, .. } => {
                    assert_eq!(reason, GOODBYE_IRRELEVANT_NETWORK);
                    goodbye_seen = true;
                }
                NetEvent::PeerReady { .. } => panic!("a peer on another network was accepted"),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for(
        "the irrelevant peer to be dropped",
        Duration::from_secs(20),
        || rt.block_on(na.peers()).unwrap().is_empty(),
    );
    for n in [a, d] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}

#[test]
fn bad_requests_get_the_spec_errors_and_the_node_keeps_serving() {
    use quasar::net::codec::ResponseCode;
    use quasar::net::messages::Protocol;
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(&chain_dir, 64, 8);
    let rt = runtime();
    let a = start(&rt, &dir.path().join("a"), &chain_dir);
    let b = start(&rt, &dir.path().join("b"), &chain_dir);
    let blocks: Vec<Vec<u8>> = (1..=8)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    rt.block_on(a.chain.handle().import_segment(blocks, BlockSource::Local))
        .unwrap();
    let (na, nb) = (a.net.handle(), b.net.handle());
    rt.block_on(nb.dial(na.listen_addresses()[0].clone()))
        .unwrap();
    wait_for("the status exchange", Duration::from_secs(20), || {
        rt.block_on(nb.peers())
            .unwrap()
            .iter()
            .any(|p| p.status.is_some())
    });
    let peer = na.local_peer_id();
    // More blocks than MAX_REQUEST_BLOCKS_DENEB: InvalidRequest.
    let mut req = Vec::new();
    for v in [1u64, 129, 1] {
        req.extend_from_slice(&v.to_le_bytes());
    }
    let chunks = rt
        .block_on(nb.request(peer, Protocol::BeaconBlocksByRangeV2, req))
        .unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        chunks[0].code,
        ResponseCode::InvalidRequest,
        "{}",
        chunks[0].message()
    );
    // A request whose SSZ length is outside the type's bounds: the stream is refused.
    let r = rt.block_on(nb.request(peer, Protocol::BeaconBlocksByRangeV2, vec![1, 2, 3]));
    assert!(r.is_err() || r.unwrap().iter().all(|c| c.code != ResponseCode::Success));
    // Ping and metadata answer.
    let pong = rt
        .block_on(nb.request(peer, Protocol::PingV1, 7u64.to_le_bytes().to_vec()))
        .unwrap();
    assert_eq!(pong[0].code, ResponseCode::Success);
    assert_eq!(pong[0].payload.len(), 8);
    let md = rt
        .block_on(nb.request(peer, Protocol::MetaDataV3, Vec::new()))
        .unwrap();
    assert_eq!(md[0].code, ResponseCode::Success);
    assert_eq!(md[0].payload.len(), 8 + 8 + 1 + 8, "MetaData v3");
    // And the node still serves a good request.
    let got = rt.block_on(nb.blocks_by_range(peer, 1, 8)).unwrap();
    assert_eq!(got.len(), 8);
    for n in [a, b] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}

#[test]
fn quasar_node_runs_until_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(&chain_dir, 64, 4);
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args([
            "--log",
            "info",
            "node",
            "--port",
            "0",
            "--disable-quic",
            "--listen-address",
            "127.0.0.1",
        ])
        .arg("--datadir")
        .arg(&data)
        .arg("--genesis")
        .arg(devnet::genesis_path(&chain_dir))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let mut listening = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("listening on /ip4/127.0.0.1/tcp/") && line.contains("/p2p/") {
            listening = true;
            break;
        }
    }
    assert!(listening, "no listen address logged:\n{}", seen.join("\n"));
    assert!(
        seen.iter().any(|l| l.contains("peer id 16U")),
        "{}",
        seen.join("\n")
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", rest.join("\n"));
    // The identity is kept: the key file exists.
    assert!(data.join("network/key").exists());
}
