//! The peer manager over real libp2p on 127.0.0.1 (real RocksDB, real blst):
//! - bad input — an oversized varint, a length that lies, corrupt snappy, a request for
//!   more than the protocol allows, an unknown protocol, garbage on a gossip topic — gets
//!   the spec's error or verdict, the sender's score drops, and the node keeps serving its
//!   other peers; ping / metadata keep-alive fills in a peer's MetaData; `report_peer`
//!   below the disconnect threshold gets the peer Goodbye (bad score) and dropped;
//! - a flooding peer is rate-limited, then banned and refused on redial, while another
//!   peer's blocks-by-range requests to the same node are answered in full (measured).
//!
//! The malformed frames come from a raw libp2p peer (TCP, noise, yamux and a
//! request-response codec that writes the bytes it is given and reads the answer raw).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::prelude::*;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use quasar::chain::service::{BlockSource, GossipVerdict};
use quasar::devnet;
use quasar::net::codec::{self, ResponseChunk, ResponseCode};
use quasar::net::messages::{goodbye, BeaconBlocksByRangeRequestV2, Protocol};
use quasar::net::peer_manager::PeerAction;
use quasar::net::rate_limit::Quota;
use quasar::net::service::{NetEvent, NetworkHandle};
use quasar::types::ssz::ssz_encode;
use tokio::sync::{mpsc, oneshot};

use crate::net::{generate, start_with, wait_for, Node};
use crate::service::{read, runtime};

/// Writes the request bytes as given; reads the whole response raw.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await?;
        io.close().await
    }
}

type RawReply = oneshot::Sender<Result<Vec<u8>, String>>;

/// A libp2p peer that speaks one protocol id, with bytes of the test's choosing, and
/// nothing else (no status, ping, metadata or gossip).
struct RawPeer {
    id: PeerId,
    tx: mpsc::Sender<(Vec<u8>, RawReply)>,
    task: tokio::task::JoinHandle<()>,
}

impl RawPeer {
    fn spawn(rt: &tokio::runtime::Runtime, protocol: &str, target: &NetworkHandle) -> RawPeer {
        let protocol = StreamProtocol::try_from_owned(protocol.to_string()).unwrap();
        let addr: Multiaddr = target.listen_addresses()[0].clone();
        let target = target.local_peer_id();
        let _guard = rt.enter();
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    RawCodec,
                    [(protocol, ProtocolSupport::Outbound)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(15)),
                )
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        let id = *swarm.local_peer_id();
        swarm.dial(addr).unwrap();
        let (tx, mut rx) = mpsc::channel::<(Vec<u8>, RawReply)>(8);
        let task = tokio::spawn(async move {
            let mut connected = false;
            let mut queued: Vec<(Vec<u8>, RawReply)> = Vec::new();
            let mut waiting = std::collections::HashMap::new();
            loop {
                tokio::select! {
                    ev = swarm.select_next_some() => match ev {
                        SwarmEvent::ConnectionEstablished { .. } => {
                            connected = true;
                            for (bytes, reply) in queued.drain(..) {
                                let id = swarm.behaviour_mut().send_request(&target, bytes);
                                waiting.insert(id, reply);
                            }
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            message: request_response::Message::Response { request_id, response },
                            ..
                        }) => {
                            if let Some(r) = waiting.remove(&request_id) {
                                let _ = r.send(Ok(response));
                            }
                        }
                        SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                            request_id, error, ..
                        }) => {
                            if let Some(r) = waiting.remove(&request_id) {
                                let _ = r.send(Err(format!("{error:?}")));
                            }
                        }
                        _ => {}
                    },
                    cmd = rx.recv() => match cmd {
                        Some((bytes, reply)) if connected => {
                            let id = swarm.behaviour_mut().send_request(&target, bytes);
                            waiting.insert(id, reply);
                        }
                        Some(q) => queued.push(q),
                        None => return,
                    },
                }
            }
        });
        RawPeer { id, tx, task }
    }

    fn request(&self, rt: &tokio::runtime::Runtime, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        rt.block_on(async {
            let (reply, rx) = oneshot::channel();
            self.tx.send((bytes, reply)).await.unwrap();
            tokio::time::timeout(Duration::from_secs(30), rx)
                .await
                .expect("an answer in time")
                .unwrap()
        })
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The one chunk of an error response, decoded as the spec frames it.
fn error_chunk(bytes: &[u8]) -> (ResponseCode, String) {
    let chunks = codec::decode_response(false, |_| Ok((0, 256)), bytes)
        .unwrap_or_else(|e| panic!("response {bytes:02x?} does not decode: {e}"));
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    match &chunks[0] {
        ResponseChunk::Error { code, message } => {
            (*code, String::from_utf8_lossy(message).into_owned())
        }
        c => panic!("not an error: {c:?}"),
    }
}

fn score_of(rt: &tokio::runtime::Runtime, net: &NetworkHandle, peer: PeerId) -> Option<f64> {
    rt.block_on(net.peers())
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == peer)
        .map(|p| p.score)
}

fn range_request(start_slot: u64, count: u64) -> Vec<u8> {
    ssz_encode(&BeaconBlocksByRangeRequestV2 {
        start_slot,
        count,
        step: 1,
    })
    .unwrap()
}

#[test]
fn bad_input_gets_the_spec_answers_costs_score_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(&chain_dir, 64, 8);
    let rt = runtime();
    let ping_interval = Duration::from_secs(6);
    let a = start_with(&rt, &dir.path().join("a"), &chain_dir, |c| {
        c.peers.ping_interval = ping_interval
    });
    let b: Node = start_with(&rt, &dir.path().join("b"), &chain_dir, |_| {});
    let blocks: Vec<Vec<u8>> = (1..=8)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    rt.block_on(a.chain.handle().import_segment(blocks, BlockSource::Local))
        .unwrap();
    let want = a.chain.handle().reader().blocks_by_range(1, 8).unwrap();
    let (na, nb) = (a.net.handle(), b.net.handle());
    let (ida, idb) = (na.local_peer_id(), nb.local_peer_id());
    let mut events_a = na.subscribe();
    rt.block_on(nb.dial(na.listen_addresses()[0].clone()))
        .unwrap();
    wait_for("the status exchange", Duration::from_secs(20), || {
        rt.block_on(nb.peers())
            .unwrap()
            .iter()
            .any(|p| p.status.is_some())
    });
    let b_is_served = |case: &str| {
        let got = rt
            .block_on(nb.blocks_by_range(ida, 1, 8))
            .unwrap_or_else(|e| panic!("after {case}: {e}"));
        assert_eq!(got.len(), 8, "after {case}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, &w.ssz, "after {case}: slot {}", w.slot);
        }
    };
    b_is_served("start");

    let bbr = Protocol::BeaconBlocksByRangeV2.protocol_id();
    let valid = codec::encode_request(&range_request(1, 8));
    // Each malformed request: the spec's InvalidRequest with a reason, and a score drop.
    let mut oversized_varint = vec![0x80u8; 10];
    oversized_varint.push(0x01);
    let mut lying_length = Vec::new();
    codec::encode_varint(24, &mut lying_length);
    codec::encode_snappy_frames(&[0u8; 16], &mut lying_length);
    let mut corrupt_snappy = valid.clone();
    // varint (1 byte), stream identifier (10), chunk type and length (4): the CRC.
    corrupt_snappy[1 + 10 + 4] ^= 0xff;
    let too_many = codec::encode_request(&range_request(1, 129));
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "an oversized varint",
            oversized_varint,
            "length prefix longer",
        ),
        (
            "a length that lies",
            lying_length,
            "stream ended after 16 of 24",
        ),
        ("corrupt snappy", corrupt_snappy, "checksum"),
        (
            "count > MAX_REQUEST_BLOCKS_DENEB",
            too_many,
            "MAX_REQUEST_BLOCKS_DENEB",
        ),
    ];
    for (case, bytes, reason) in cases {
        let raw = RawPeer::spawn(&rt, bbr, &na);
        let t = Instant::now();
        let response = raw
            .request(&rt, bytes)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let (code, message) = error_chunk(&response);
        assert_eq!(code, ResponseCode::InvalidRequest, "{case}: {message}");
        assert!(message.contains(reason), "{case}: {message}");
        let score = score_of(&rt, &na, raw.id).unwrap_or_else(|| panic!("{case}: peer gone"));
        eprintln!(
            "{case}: {code:?} \"{message}\" in {:?}, score {score}",
            t.elapsed()
        );
        assert!(score <= -10.0 && score > -20.0, "{case}: score {score}");
        drop(raw);
        b_is_served(case);
    }
    // The same raw peer sending a valid request is served (the codec is not the problem).
    let raw = RawPeer::spawn(&rt, bbr, &na);
    let response = raw.request(&rt, valid).unwrap();
    assert_eq!(response[0], 0, "a valid raw request is answered Success");
    drop(raw);

    // An unknown protocol: multistream-select answers "na" (the peer learns the node does
    // not speak it) and the node stays up. The peer does not speak the protocols the
    // spec requires either: the keep-alive ping finds that out and costs it score.
    let raw = RawPeer::spawn(
        &rt,
        "/eth2/beacon_chain/req/no_such_method/1/ssz_snappy",
        &na,
    );
    let r = raw.request(&rt, codec::encode_request(&[0u8; 8]));
    assert_eq!(r, Err("UnsupportedProtocols".to_string()));
    assert_eq!(score_of(&rt, &na, raw.id), Some(0.0));
    wait_for(
        "the unknown-protocol peer's score to drop",
        ping_interval * 3,
        || score_of(&rt, &na, raw.id).is_some_and(|s| s <= -10.0),
    );
    drop(raw);
    b_is_served("an unknown protocol");

    // Keep-alive: A pinged B, saw its seq_number and fetched its MetaData v3.
    wait_for("B's MetaData at A", ping_interval * 3, || {
        rt.block_on(na.peers()).unwrap().iter().any(|p| {
            p.peer_id == idb && p.metadata_seq == Some(1) && p.custody_group_count == Some(4)
        })
    });
    assert_eq!(score_of(&rt, &na, idb), Some(0.0), "B behaved");

    // Garbage on the beacon_block topic: REJECT, and B (who sent it) pays.
    wait_for("gossip meshes", Duration::from_secs(30), || {
        rt.block_on(nb.gossip_peers()).unwrap() >= 1
    });
    rt.block_on(nb.publish_block(b"not a signed beacon block".to_vec()))
        .unwrap();
    let t = Instant::now();
    let verdict = loop {
        assert!(t.elapsed() < Duration::from_secs(20), "no gossip verdict");
        match events_a.try_recv() {
            Ok(NetEvent::GossipBlock { from, verdict }) => {
                assert_eq!(from, idb);
                break verdict;
            }
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(matches!(verdict, GossipVerdict::Reject(_)), "{verdict:?}");
    wait_for("B's score to drop", Duration::from_secs(5), || {
        score_of(&rt, &na, idb).is_some_and(|s| s <= -10.0)
    });
    b_is_served("garbage on gossip");

    // Sync's reports: B below −20 (scores decay, so two more) is sent Goodbye (bad
    // score) and disconnected, not banned.
    for _ in 0..2 {
        rt.block_on(na.report_peer(idb, PeerAction::LowToleranceError, "test: bad segment"))
            .unwrap();
    }
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(20), "no goodbye to B");
        match events_a.try_recv() {
            Ok(NetEvent::SentGoodbye { peer, reason }) if peer == idb => {
                assert_eq!(reason, goodbye::BAD_SCORE);
                break;
            }
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    wait_for("B to be dropped", Duration::from_secs(10), || {
        score_of(&rt, &na, idb).is_none()
    });
    for n in [a, b] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}

#[test]
fn a_flooding_peer_is_rate_limited_then_banned_while_another_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(&chain_dir, 64, 32);
    let rt = runtime();
    // 512 blocks per second per peer: C's steady 160 blocks/s fit, B's flood does not.
    let a = start_with(&rt, &dir.path().join("a"), &chain_dir, |c| {
        c.peers.rate_limits.blocks_by_range = Quota {
            max_tokens: 512,
            replenish_all_every: Duration::from_secs(1),
        };
    });
    let b = start_with(&rt, &dir.path().join("b"), &chain_dir, |_| {});
    let c = start_with(&rt, &dir.path().join("c"), &chain_dir, |_| {});
    let blocks: Vec<Vec<u8>> = (1..=32)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    rt.block_on(a.chain.handle().import_segment(blocks, BlockSource::Local))
        .unwrap();
    let want: Vec<Vec<u8>> = a
        .chain
        .handle()
        .reader()
        .blocks_by_range(1, 8)
        .unwrap()
        .into_iter()
        .map(|b| b.ssz)
        .collect();
    let (na, nb, nc) = (a.net.handle(), b.net.handle(), c.net.handle());
    let (ida, idb) = (na.local_peer_id(), nb.local_peer_id());
    let addr_a = na.listen_addresses()[0].clone();
    rt.block_on(nb.dial(addr_a.clone())).unwrap();
    rt.block_on(nc.dial(addr_a.clone())).unwrap();
    for (name, n) in [("B", &nb), ("C", &nc)] {
        wait_for(
            &format!("{name}'s status exchange"),
            Duration::from_secs(20),
            || {
                rt.block_on(n.peers())
                    .unwrap()
                    .iter()
                    .any(|p| p.peer_id == ida && p.status.is_some())
            },
        );
    }
    let mut events_a = na.subscribe();

    // C's steady requests: 8 blocks every 50 ms, each timed.
    let c_request = move |nc: NetworkHandle, want: Vec<Vec<u8>>| async move {
        let t = Instant::now();
        let got = nc.blocks_by_range(ida, 1, 8).await;
        let ok = matches!(&got, Ok(g) if *g == want);
        (t, t.elapsed(), ok, got.err().map(|e| e.to_string()))
    };
    let baseline: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..10 {
            let (_, dt, ok, err) = c_request(nc.clone(), want.clone()).await;
            assert!(ok, "baseline: {err:?}");
            v.push(dt);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        v
    });

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let refused_other = Arc::new(AtomicU64::new(0));
    let redials = Arc::new(AtomicU64::new(0));
    let flood_start = Instant::now();
    // B: four loops of 64-block requests as fast as answers come (over quota, and over
    // the two concurrent requests the spec allows), redialling whenever dropped.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (nb, stop, served, limited, other) = (
            nb.clone(),
            stop.clone(),
            served.clone(),
            limited.clone(),
            refused_other.clone(),
        );
        tasks.push(rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match nb.blocks_by_range(ida, 1, 64).await {
                    Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e.to_string().contains("ResourceUnavailable") => {
                        limited.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        other.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    {
        let (nb, stop, redials, addr_a) =
            (nb.clone(), stop.clone(), redials.clone(), addr_a.clone());
        tasks.push(rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let connected = nb
                    .peers()
                    .await
                    .map(|ps| ps.iter().any(|p| p.peer_id == ida))
                    .unwrap_or(false);
                if !connected && nb.dial(addr_a.clone()).await.is_ok() {
                    redials.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    let c_task = {
        let (nc, stop, want) = (nc.clone(), stop.clone(), want.clone());
        rt.spawn(async move {
            let mut v = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                v.push(c_request(nc.clone(), want.clone()).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            v
        })
    };

    // A bans B; B keeps redialling and is refused.
    let mut banned_at = None;
    let mut goodbye_banned = false;
    let mut denied_after_ban = 0;
    let mut b_listed_after_ban = false;
    let t = Instant::now();
    loop {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "B was never banned (served {}, limited {})",
            served.load(Ordering::Relaxed),
            limited.load(Ordering::Relaxed)
        );
        while let Ok(ev) = events_a.try_recv().or_else(|e| match e {
            tokio::sync::broadcast::error::TryRecvError::Lagged(_) => events_a.try_recv(),
            e => Err(e),
        }) {
            match ev {
                NetEvent::PeerBanned { peer } if peer == idb => {
                    banned_at.get_or_insert(flood_start.elapsed());
                }
                NetEvent::SentGoodbye { peer, reason } if peer == idb => {
                    goodbye_banned |= reason == goodbye::BANNED;
                }
                NetEvent::ConnectionDenied { peer: Some(p) } if p == idb && banned_at.is_some() => {
                    denied_after_ban += 1;
                }
                _ => {}
            }
        }
        if let Some(at) = banned_at {
            let since = flood_start.elapsed() - at;
            if since > Duration::from_millis(500) {
                b_listed_after_ban |= score_of(&rt, &na, idb).is_some();
            }
            if since > Duration::from_secs(4) && denied_after_ban > 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let flood_total = flood_start.elapsed();
    for task in tasks {
        rt.block_on(task).unwrap();
    }
    let c_results = rt.block_on(c_task).unwrap();
    let banned_at = banned_at.unwrap();
    let (served, limited, other, redials) = (
        served.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
        refused_other.load(Ordering::Relaxed),
        redials.load(Ordering::Relaxed),
    );
    let c_ok = c_results.iter().filter(|r| r.2).count();
    let c_max = c_results.iter().map(|r| r.1).max().unwrap_or_default();
    let during_ban_window: Vec<Duration> = c_results
        .iter()
        .filter(|r| r.0.duration_since(flood_start) <= banned_at)
        .map(|r| r.1)
        .collect();
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    eprintln!(
        "flood: B banned after {banned_at:?} ({served} of its requests served, {limited} \
         rate-limited, {other} failed otherwise, {redials} redials; {denied_after_ban} \
         connections refused after the ban); C: {} requests in {flood_total:?} \
         ({:.1}/s), {c_ok} answered in full, median {:?} (before the flood {:?}), max \
         {c_max:?}; {} of them before the ban, max {:?}",
        c_results.len(),
        c_results.len() as f64 / flood_total.as_secs_f64(),
        median(&c_results.iter().map(|r| r.1).collect::<Vec<_>>()),
        median(&baseline),
        during_ban_window.len(),
        during_ban_window.iter().max().copied().unwrap_or_default(),
    );
    assert!(limited > 0, "B was never rate-limited");
    assert!(goodbye_banned, "B was not sent Goodbye (banned)");
    assert!(denied_after_ban > 0, "B's redial was not refused");
    assert!(!b_listed_after_ban, "B was connected to A after its ban");
    // C was not starved: every request answered completely, none slow.
    for (i, (_, dt, ok, err)) in c_results.iter().enumerate() {
        assert!(ok, "C's request {i} was not answered in full: {err:?}");
        assert!(*dt < Duration::from_secs(5), "C's request {i} took {dt:?}");
    }
    assert!(c_results.len() >= 10, "C made too few requests");
    assert!(
        score_of(&rt, &na, nc.local_peer_id()) == Some(0.0),
        "C kept its score"
    );
    for n in [a, b, c] {
        rt.block_on(n.net.shutdown());
        n.chain.shutdown();
    }
}
