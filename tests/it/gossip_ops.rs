//! Operation gossip through the chain service and between quasar nodes (real RocksDB in
//! temp dirs, real blst, real libp2p on 127.0.0.1):
//! - an operation is validated while a long import runs, and answered before it ends (it
//!   never queues behind the chain thread);
//! - in a line A — B — C: a proposer slashing published by A is
//!   validated by B (ACCEPT: marked seen, pooled) and relayed to C, which is connected to
//!   B only and accepts it too; garbage on `attester_slashing` from A is REJECTed by B and
//!   reaches neither pool.

use std::path::Path;
use std::time::{Duration, Instant};

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::error::BlockError;
use quasar::chain::gossip_ops::OperationError;
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{BlockSource, ChainService, GossipClock, GossipTopic, GossipVerdict};
use quasar::devnet;
use quasar::net::gossip::GossipKind;
use quasar::net::service::{NetEvent, NetworkConfig, NetworkService};
use quasar::transition::minimal as t;
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::ssz::{ssz_encode, SszDecode};
use quasar::types::Preset;

use crate::service::{read, runtime};

struct Node {
    chain: ChainService,
    net: NetworkService,
}

fn start(rt: &tokio::runtime::Runtime, data: &Path, genesis: &[u8]) -> Node {
    let chain = ChainService::open(
        data,
        Some(genesis),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .expect("chain opens");
    let net = rt
        .block_on(NetworkService::start(
            NetworkConfig::local(data.to_path_buf()),
            chain.handle(),
            ChainConfig::minimal(),
        ))
        .expect("network starts");
    wait_for("listening", Duration::from_secs(10), || {
        !net.handle().listen_addresses().is_empty()
    });
    Node { chain, net }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A valid proposer slashing of `proposer` (an interop validator): two different
/// headers for slot 1, both signed with its key under the genesis state's domain.
fn proposer_slashing(genesis: &ty::BeaconState, proposer: u64) -> Vec<u8> {
    let sk = devnet::interop_secret_key(proposer).unwrap();
    let signed = |body: u8| {
        let message = ty::BeaconBlockHeader {
            slot: 1,
            proposer_index: proposer,
            parent_root: Default::default(),
            state_root: Default::default(),
            body_root: ty::Root::from([body; 32]),
        };
        let domain = t::get_domain(genesis, t::DOMAIN_BEACON_PROPOSER, Some(0)).unwrap();
        let root = t::compute_signing_root(&message, domain).unwrap();
        ty::SignedBeaconBlockHeader {
            message,
            signature: ty::BLSSignature::from(sk.sign(&root, quasar::bls::DST, &[]).compress()),
        }
    };
    ssz_encode(&ty::ProposerSlashing {
        signed_header_1: signed(1),
        signed_header_2: signed(2),
    })
    .unwrap()
}

/// Publish until gossipsub has a peer for the topic.
fn publish(rt: &tokio::runtime::Runtime, node: &Node, kind: GossipKind, ssz: &[u8]) {
    let t = Instant::now();
    while rt
        .block_on(node.net.handle().publish(kind, ssz.to_vec()))
        .is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "publish never succeeded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn operation_gossip_is_validated_relayed_and_garbage_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    crate::service::generate(Preset::Minimal, &chain_dir, 64, 1);
    let genesis_ssz = read(&devnet::genesis_path(&chain_dir));
    let genesis = ty::BeaconState::ssz_decode(&genesis_ssz).unwrap();
    let rt = runtime();
    let a = start(&rt, &dir.path().join("a"), &genesis_ssz);
    let b = start(&rt, &dir.path().join("b"), &genesis_ssz);
    let c = start(&rt, &dir.path().join("c"), &genesis_ssz);
    let (na, nb, nc) = (a.net.handle(), b.net.handle(), c.net.handle());
    let mut b_events = nb.subscribe();

    // A line: B dials A, C dials B.
    rt.block_on(nb.dial(na.listen_addresses()[0].clone()))
        .unwrap();
    rt.block_on(nc.dial(nb.listen_addresses()[0].clone()))
        .unwrap();
    wait_for("gossip meshes", Duration::from_secs(30), || {
        rt.block_on(nb.gossip_peers()).unwrap() >= 2 && rt.block_on(na.gossip_peers()).unwrap() >= 1
    });
    let peers_of = |n: &quasar::net::service::NetworkHandle| {
        rt.block_on(n.peers())
            .unwrap()
            .into_iter()
            .map(|p| p.peer_id)
            .collect::<Vec<_>>()
    };
    assert!(
        !peers_of(&nc).contains(&na.local_peer_id()),
        "C must reach A only through B"
    );

    // A valid proposer slashing from A: B accepts and relays it, C accepts it.
    let slashing = proposer_slashing(&genesis, 5);
    publish(&rt, &a, GossipKind::ProposerSlashing, &slashing);
    for (name, node) in [("B", &b), ("C", &c)] {
        wait_for(
            &format!("{name} to pool the relayed proposer slashing"),
            Duration::from_secs(30),
            || {
                node.chain
                    .handle()
                    .operations()
                    .with_pool(|p| p.proposer_slashings.get(&5) == Some(&slashing))
            },
        );
        assert!(node
            .chain
            .handle()
            .operations()
            .with_seen(|s| s.proposer_slashing_indices.contains(5)));
    }
    // B told gossipsub ACCEPT for A's message.
    let from_a = |e: &NetEvent| match e {
        NetEvent::Gossip { from, verdict, .. } if *from == na.local_peer_id() => {
            Some(verdict.clone())
        }
        _ => None,
    };
    let verdict = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(v) = from_a(&b_events.recv().await.unwrap()) {
                    return v;
                }
            }
        })
        .await
        .expect("B reports the verdict")
    });
    assert_eq!(verdict, GossipVerdict::Accept);

    // Garbage on attester_slashing: B rejects it (undecodable), nobody pools it.
    publish(
        &rt,
        &a,
        GossipKind::AttesterSlashing,
        &[0xde, 0xad, 0xbe, 0xef],
    );
    let verdict = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(v) = from_a(&b_events.recv().await.unwrap()) {
                    return v;
                }
            }
        })
        .await
        .expect("B reports the verdict")
    });
    assert!(
        matches!(
            verdict,
            GossipVerdict::Reject(BlockError::Operation(OperationError::Decode { .. }))
        ),
        "{verdict:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    for node in [&b, &c] {
        assert!(node
            .chain
            .handle()
            .operations()
            .with_pool(|p| p.attester_slashings.is_empty()));
    }
    // Both nodes keep serving: B still answers A's Status.
    assert!(rt.block_on(na.status(nb.local_peer_id())).is_ok());

    for n in [a, b, c] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}

#[test]
fn operations_are_validated_while_an_import_runs() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    crate::service::generate(Preset::Minimal, &chain_dir, 64, 256);
    let genesis_ssz = read(&devnet::genesis_path(&chain_dir));
    let genesis = ty::BeaconState::ssz_decode(&genesis_ssz).unwrap();
    let service = ChainService::open(
        &dir.path().join("data"),
        Some(&genesis_ssz),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .unwrap();
    let handle = service.handle();
    let blocks: Vec<Vec<u8>> = (1..=256)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    let rt = runtime();
    let (import_ms, validations) = rt.block_on(async {
        let started = Instant::now();
        let import = {
            let handle = handle.clone();
            tokio::spawn(async move {
                let outcome = handle
                    .import_segment(blocks, BlockSource::Local)
                    .await
                    .unwrap();
                assert_eq!(outcome.imported, 256, "{:?}", outcome.failed);
                started.elapsed()
            })
        };
        // Give the import a head start, then validate slashings of 8 proposers.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut validations = Vec::new();
        for proposer in 0..8 {
            let t = Instant::now();
            let verdict = handle
                .validate_gossip(
                    GossipTopic::ProposerSlashing,
                    proposer_slashing(&genesis, proposer),
                    BlockSource::Gossip("test".into()),
                    GossipClock::from_ms_since_genesis(0),
                )
                .await
                .unwrap();
            assert_eq!(verdict, GossipVerdict::Accept);
            validations.push((started.elapsed(), t.elapsed()));
        }
        (import.await.unwrap(), validations)
    });
    let (last_done, _) = *validations.last().unwrap();
    let worst = validations.iter().map(|v| v.1).max().unwrap();
    println!(
        "import of 256 blocks: {} ms; 8 proposer slashings validated during it, the last \
         done at {} ms, worst latency {} us",
        import_ms.as_millis(),
        last_done.as_millis(),
        worst.as_micros()
    );
    assert!(
        last_done < import_ms,
        "the validations ({last_done:?}) waited for the import ({import_ms:?})"
    );
    assert_eq!(
        handle
            .operations()
            .with_pool(|p| p.proposer_slashings.len()),
        8
    );
    drop(handle);
    service.shutdown();
}
