//! discv5 discovery between quasar nodes on 127.0.0.1 (real discv5 and libp2p, real RocksDB
//! in temp dirs):
//! - B and C, each told only A's ENR, find each other through discovery and connect;
//! - D, on another chain (another fork digest) and booting from A too, is found by the others'
//!   lookups and never dialled, nor does it dial them;
//! - a node's ENR carries what the node is: the peer id's key, the bound TCP and UDP ports,
//!   `eth2` = the `ENRForkID` of `ForkDigests` at the wall-clock epoch, `cgc`, `attnets` and
//!   `syncnets` equal to what its MetaData v3 says, `nfd` the next fork digest;
//! - `quasar node` logs an ENR another node can boot from.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use quasar::chain::any;
use quasar::devnet;
use quasar::net::discovery::{self, DiscoveryConfig, Enr};
use quasar::net::fork_digest::ForkDigests;
use quasar::net::messages::{MetaDataV3, Protocol};
use quasar::net::service::{NetworkConfig, NetworkHandle};
use quasar::transition::ChainConfig;
use quasar::types::ssz::SszDecode;
use quasar::types::Preset;

use crate::net::{start_with, wait_for, Node};
use crate::service::runtime;

fn start(rt: &tokio::runtime::Runtime, data: &Path, chain_dir: &Path, boot: Vec<Enr>) -> Node {
    let mut cfg = NetworkConfig::local(data.to_path_buf());
    cfg.discovery = Some(DiscoveryConfig::local(boot));
    let node = start_with(rt, data, chain_dir, |c| *c = cfg);
    // The ENR gets the TCP port once the swarm has bound it.
    let net = node.net.handle();
    wait_for("the ENR's tcp port", Duration::from_secs(10), || {
        net.local_enr().and_then(|e| e.tcp4()).is_some()
    });
    node
}

fn connected(rt: &tokio::runtime::Runtime, net: &NetworkHandle, peer: PeerId) -> bool {
    rt.block_on(net.peers())
        .unwrap()
        .iter()
        .any(|p| p.peer_id == peer && p.status.is_some())
}

fn wall_clock_epoch(genesis_time: u64, cfg: &ChainConfig, slots_per_epoch: u64) -> u64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    now_ms.saturating_sub(genesis_time * 1000) / cfg.slot_duration_ms / slots_per_epoch
}

#[test]
fn nodes_find_a_peer_they_were_not_told_about_and_skip_another_fork() {
    let dir = tempfile::tempdir().unwrap();
    let chain_x = dir.path().join("x");
    let chain_y = dir.path().join("y");
    // Different validator sets: different genesis validators roots, different digests.
    crate::service::generate(Preset::Minimal, &chain_x, 64, 1);
    crate::service::generate(Preset::Minimal, &chain_y, 72, 1);
    let rt = runtime();
    let a = start(&rt, &dir.path().join("a"), &chain_x, Vec::new());
    let na = a.net.handle();
    let enr_a = na.local_enr().expect("discovery is on");
    let b = start(&rt, &dir.path().join("b"), &chain_x, vec![enr_a.clone()]);
    let c_started = std::time::Instant::now();
    let c = start(&rt, &dir.path().join("c"), &chain_x, vec![enr_a.clone()]);
    let d = start(&rt, &dir.path().join("d"), &chain_y, vec![enr_a.clone()]);
    let (nb, nc, nd) = (b.net.handle(), c.net.handle(), d.net.handle());
    let (pb, pc, pd) = (nb.local_peer_id(), nc.local_peer_id(), nd.local_peer_id());
    let enr_d = nd.local_enr().unwrap();

    // B and C only know A; they must meet through discovery (either may dial).
    wait_for("B and C to connect", Duration::from_secs(90), || {
        connected(&rt, &nb, pc) || connected(&rt, &nc, pb)
    });
    eprintln!(
        "B and C connected {:?} after C started",
        c_started.elapsed()
    );
    wait_for(
        "the B–C status exchange on both sides",
        Duration::from_secs(20),
        || connected(&rt, &nb, pc) && connected(&rt, &nc, pb),
    );
    // And both reached A, the boot node.
    wait_for("B and C to connect to A", Duration::from_secs(30), || {
        connected(&rt, &nb, na.local_peer_id()) && connected(&rt, &nc, na.local_peer_id())
    });

    // D was found: A's lookups return it (it contacted A), and it is refused for its fork
    // digest, not dialled.
    wait_for("a lookup to find D", Duration::from_secs(30), || {
        let stats = rt.block_on(na.discovery().unwrap().stats()).unwrap();
        stats.wrong_fork >= 1
    });
    let table_a = rt.block_on(na.discovery().unwrap().table()).unwrap();
    assert!(
        table_a.iter().any(|e| e.node_id() == enr_d.node_id()),
        "D is in A's routing table"
    );
    // D found A (its boot node) and whoever A returned, all on another digest.
    let stats_d = rt.block_on(nd.discovery().unwrap().stats()).unwrap();
    assert!(stats_d.wrong_fork >= 1, "{stats_d:?}");
    assert_eq!(
        stats_d.handed, 0,
        "D dials no one of another chain: {stats_d:?}"
    );
    // Give any dial a moment, then: nobody is connected to D.
    std::thread::sleep(Duration::from_secs(3));
    assert!(rt.block_on(nd.peers()).unwrap().is_empty(), "D has peers");
    for (name, n) in [("A", &na), ("B", &nb), ("C", &nc)] {
        let peers = rt.block_on(n.peers()).unwrap();
        assert!(
            peers.iter().all(|p| p.peer_id != pd),
            "{name} connected to D, a node of another fork digest"
        );
        let stats = rt.block_on(n.discovery().unwrap().stats()).unwrap();
        assert!(stats.lookups >= 1, "{name}: {stats:?}");
    }
    let stats_b = rt.block_on(nb.discovery().unwrap().stats()).unwrap();
    assert!(
        stats_b.handed >= 2,
        "B handed A and C to its swarm: {stats_b:?}"
    );

    for n in [a, b, c, d] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}

#[test]
fn the_enr_says_what_the_node_is() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    crate::service::generate(Preset::Minimal, &chain_dir, 64, 1);
    let rt = runtime();
    let a = start(&rt, &dir.path().join("a"), &chain_dir, Vec::new());
    let b = start_with(&rt, &dir.path().join("b"), &chain_dir, |_| {});
    let (na, nb) = (a.net.handle(), b.net.handle());
    assert!(nb.local_enr().is_none(), "discovery off: no ENR");
    let enr = na.local_enr().unwrap();

    // The key: the ENR's node id and the peer id are one secp256k1 key.
    assert_eq!(discovery::peer_id_of(&enr), Some(na.local_peer_id()));
    // The addresses: the bound TCP port, a UDP port, 127.0.0.1.
    let listen = na.listen_addresses()[0].to_string();
    assert_eq!(enr.ip4(), Some(std::net::Ipv4Addr::LOCALHOST));
    assert!(
        listen.starts_with(&format!("/ip4/127.0.0.1/tcp/{}/", enr.tcp4().unwrap())),
        "{listen} vs tcp {:?}",
        enr.tcp4()
    );
    assert!(enr.udp4().is_some_and(|p| p != 0));
    assert!(
        enr.get_decodable::<u16>("quic").is_none(),
        "no QUIC listener, no quic entry"
    );

    // eth2: the ENRForkID of the chain's digests at the wall-clock epoch.
    let head = a.chain.handle().head();
    let spe = any::slots_per_epoch(Preset::Minimal);
    let cfg = any::effective_fork_schedule(
        ChainConfig::minimal(),
        head.fork_version,
        head.head.slot / spe,
    );
    let digests = ForkDigests::new(head.genesis_validators_root, &cfg);
    let epoch = wall_clock_epoch(head.genesis_time, &cfg, spe);
    let f = discovery::decode_eth2(&enr).unwrap();
    let fork_id = f.fork_id.clone().unwrap();
    assert_eq!(fork_id, digests.enr_fork_id(epoch));
    assert_eq!(
        *fork_id.fork_digest.as_bytes(),
        digests.digest_at_epoch(epoch)
    );
    assert_eq!(f.next_fork_digest, Some(digests.next_fork_digest(epoch)));

    // cgc, attnets and syncnets: what the node's MetaData v3 says.
    rt.block_on(nb.dial(na.listen_addresses()[0].clone()))
        .unwrap();
    wait_for("the status exchange", Duration::from_secs(20), || {
        connected(&rt, &nb, na.local_peer_id())
    });
    let md = rt
        .block_on(nb.request(na.local_peer_id(), Protocol::MetaDataV3, Vec::new()))
        .unwrap();
    let md = MetaDataV3::ssz_decode(&md[0].payload).unwrap();
    assert_eq!(f.custody_group_count, Some(md.custody_group_count));
    assert_eq!(f.attnets.as_ref(), Some(&md.attnets));
    assert_eq!(f.syncnets.as_ref(), Some(&md.syncnets));
    let raw = |k: &str| {
        enr.get_decodable::<alloy_rlp::Bytes>(k)
            .unwrap()
            .unwrap()
            .to_vec()
    };
    assert_eq!(raw("attnets").len(), 8, "Bitvector[64]");
    assert_eq!(raw("syncnets").len(), 1, "Bitvector[4]");
    assert_eq!(raw("eth2").len(), 16);
    let cgc = md.custody_group_count.to_be_bytes();
    let first = cgc.iter().position(|&x| x != 0).unwrap_or(8);
    assert_eq!(
        raw("cgc"),
        cgc[first..].to_vec(),
        "big-endian, no leading zeros"
    );

    // The ENR is kept: a restart keeps the node id and does not lower the sequence number.
    let seq = enr.seq();
    let data_a = dir.path().join("a");
    rt.block_on(a.net.shutdown());
    a.chain.shutdown();
    let saved: Enr = std::fs::read_to_string(data_a.join(discovery::ENR_FILE))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(saved.node_id(), enr.node_id());
    let a2 = start(&rt, &data_a, &chain_dir, Vec::new());
    let enr2 = a2.net.handle().local_enr().unwrap();
    assert_eq!(enr2.node_id(), enr.node_id());
    assert!(
        enr2.seq() > seq,
        "new ports, a higher sequence number: {} vs {seq}",
        enr2.seq()
    );
    for n in [a2, b] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}

/// Reads stderr lines of a child until `pred` finds one, returning all read so far.
fn read_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    mut pred: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = pred(&line);
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("not found in:\n{}", seen.join("\n"));
}

#[test]
fn quasar_node_logs_an_enr_another_node_boots_from() {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    crate::service::generate(Preset::Minimal, &chain_dir, 64, 1);
    let node = |data: &Path, boot: Option<&str>| -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quasar"));
        cmd.args(["--log", "info", "node", "--port", "0", "--disable-quic"])
            .args(["--listen-address", "127.0.0.1", "--target-peers", "4"])
            .arg("--datadir")
            .arg(data)
            .arg("--genesis")
            .arg(devnet::genesis_path(&chain_dir))
            .stderr(Stdio::piped());
        if let Some(b) = boot {
            cmd.args(["--boot-nodes", b]);
        }
        cmd.spawn().unwrap()
    };
    let mut first = node(&dir.path().join("one"), None);
    let mut lines1 = BufReader::new(first.stderr.take().unwrap()).lines();
    let seen = read_until(&mut lines1, |l| l.starts_with("enr enr:"));
    let enr_text = seen.last().unwrap().trim_start_matches("enr ").to_string();
    let enr: Enr = enr_text.parse().expect("the logged ENR parses");
    let listen = seen
        .iter()
        .find(|l| l.starts_with("listening on /ip4/127.0.0.1/tcp/"))
        .expect("a listen address");
    assert!(
        listen.contains(&format!("/tcp/{}/p2p/", enr.tcp4().unwrap())),
        "{listen} vs {enr_text}"
    );
    let peer = discovery::peer_id_of(&enr).unwrap().to_string();
    assert!(
        seen.iter().any(|l| l.contains(&format!("peer id {peer}"))),
        "{}",
        seen.join("\n")
    );

    // A second node boots from that ENR text (an ENR and a bad entry are told apart).
    let bad = Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args(["node", "--boot-nodes", "enr:-notanenr", "--datadir"])
        .arg(dir.path().join("bad"))
        .arg("--genesis")
        .arg(devnet::genesis_path(&chain_dir))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an ENR"));
    let mut second = node(&dir.path().join("two"), Some(&enr_text));
    let mut lines2 = BufReader::new(second.stderr.take().unwrap()).lines();
    read_until(&mut lines2, |l| l.starts_with("enr enr:"));
    for child in [&mut first, &mut second] {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    // Drain both logs so neither blocks on a full pipe, then both exit 0.
    let rest1: Vec<String> = lines1.map_while(Result::ok).collect();
    let rest2: Vec<String> = lines2.map_while(Result::ok).collect();
    assert_eq!(
        first.wait().unwrap().code(),
        Some(0),
        "{}",
        rest1.join("\n")
    );
    assert_eq!(
        second.wait().unwrap().code(),
        Some(0),
        "{}",
        rest2.join("\n")
    );
}
