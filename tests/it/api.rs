//! The Beacon API and `/metrics` over real HTTP on 127.0.0.1 (a real chain service on
//! RocksDB in a temp dir, a real libp2p network with a second node connected, a real HTTP
//! client): every endpoint's answer checked against the store and the handles, SSZ bodies
//! byte for byte, SSE delivering a head event after an import, bad ids → 400, unknown ids
//! → 404 with the API's error body, and the metrics parsed and named
//! `quasar_<area>_<what>_<unit>`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use quasar::accel::aggregate::CpuAggregator;
use quasar::api::metrics::NodeMetrics;
use quasar::api::{serve_api, serve_metrics, ApiContext};
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{BlockSource, ChainService};
use quasar::devnet;
use quasar::net::service::{NetworkConfig, NetworkService};
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::ssz::{hash_tree_root, SszDecode};
use quasar::types::Preset;
use serde_json::Value;

use crate::service::{generate, read, runtime};

fn hex(b: &[u8]) -> String {
    let mut s = String::from("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

struct Reply {
    status: u16,
    version: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }
}

fn get_with(agent: &ureq::Agent, url: &str, accept: Option<&str>) -> Reply {
    let mut req = agent.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let version = header("eth-consensus-version");
    let content_type = header("content-type");
    let body = resp
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    Reply {
        status,
        version,
        content_type,
        body,
    }
}

/// An error answer: the status and the API's `{"code","message"}` body.
fn assert_error(agent: &ureq::Agent, url: &str, code: u16) {
    let r = get_with(agent, url, None);
    assert_eq!(r.status, code, "{url}");
    let j = r.json();
    assert_eq!(j["code"], code, "{url}: {j}");
    assert!(
        j["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{url}: {j}"
    );
}

fn start_network(
    rt: &tokio::runtime::Runtime,
    data: &Path,
    chain: &ChainService,
) -> NetworkService {
    let net = rt
        .block_on(NetworkService::start(
            NetworkConfig::local(data.to_path_buf()),
            chain.handle(),
            ChainConfig::minimal(),
        ))
        .expect("network starts");
    let t = Instant::now();
    while net.handle().listen_addresses().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    net
}

fn open(data: &Path, chain_dir: &Path) -> ChainService {
    let genesis = read(&devnet::genesis_path(chain_dir));
    ChainService::open(
        data,
        Some(&genesis),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .expect("chain opens")
}

fn blocks(chain_dir: &Path, slots: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
    slots
        .map(|s| read(&devnet::block_path(chain_dir, s)))
        .collect()
}

#[test]
fn beacon_api_answers_from_the_store_and_the_handles() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let validators = 64;
    generate(Preset::Minimal, &chain_dir, validators, 48);
    let rt = runtime();
    let service = open(&dir.path().join("a"), &chain_dir);
    let chain = service.handle();
    let outcome = rt
        .block_on(chain.import_segment(blocks(&chain_dir, 1..=40), BlockSource::Local))
        .unwrap();
    assert_eq!(outcome.imported, 40);
    let net = start_network(&rt, &dir.path().join("a"), &service);
    // A second node connects, so the peer endpoints have a peer to show.
    let other = open(&dir.path().join("b"), &chain_dir);
    let other_net = start_network(&rt, &dir.path().join("b"), &other);
    rt.block_on(
        other_net
            .handle()
            .dial(net.handle().listen_addresses()[0].clone()),
    )
    .unwrap();

    let cfg = ChainConfig::minimal();
    let ctx = ApiContext::new(chain.clone(), Some(net.handle()), cfg.clone());
    let server = rt
        .block_on(serve_api(ctx, SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let url = |p: &str| format!("{base}{p}");
    let a = agent();
    let get = |p: &str| get_with(&a, &url(p), None);
    let reader = chain.reader();
    let head = chain.head();
    assert_eq!(head.head.slot, 40);
    assert!(head.finalized.epoch >= 1, "the devnet chain finalizes");

    // --- genesis
    let genesis_ssz = read(&devnet::genesis_path(&chain_dir));
    let mut genesis_state = ty::BeaconState::ssz_decode(&genesis_ssz).unwrap();
    let g = get("/eth/v1/beacon/genesis").json();
    assert_eq!(
        g["data"]["genesis_time"],
        genesis_state.genesis_time.to_string()
    );
    assert_eq!(
        g["data"]["genesis_validators_root"],
        hex(genesis_state.genesis_validators_root.as_bytes())
    );
    assert_eq!(
        g["data"]["genesis_fork_version"],
        hex(&cfg.genesis_fork_version)
    );

    // --- blocks: SSZ byte-identical to the store, JSON fields equal to the decoded block
    let root5 = reader.block_root_at_slot(5).unwrap().unwrap();
    let stored5 = reader.block_by_root(&root5).unwrap().unwrap();
    let block5 = ty::SignedBeaconBlock::ssz_decode(&stored5).unwrap();
    for id in ["5".to_string(), hex(&root5)] {
        let r = get_with(
            &a,
            &url(&format!("/eth/v2/beacon/blocks/{id}")),
            Some("application/octet-stream"),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.version.as_deref(), Some("fulu"));
        assert_eq!(r.content_type.as_deref(), Some("application/octet-stream"));
        assert!(
            r.body == stored5,
            "block {id}: SSZ differs from the store's"
        );
    }
    let head_ssz = get_with(
        &a,
        &url("/eth/v2/beacon/blocks/head"),
        Some("application/octet-stream;q=1, application/json;q=0.9"),
    );
    assert!(head_ssz.body == reader.block_by_root(&head.head.root).unwrap().unwrap());
    let r = get("/eth/v2/beacon/blocks/5");
    assert_eq!(r.version.as_deref(), Some("fulu"));
    let j = r.json();
    assert_eq!(j["version"], "fulu");
    assert_eq!(j["execution_optimistic"], true);
    assert_eq!(
        j["finalized"], true,
        "slot 5 is finalized: {}",
        head.finalized.epoch
    );
    let m = &j["data"]["message"];
    assert_eq!(m["slot"], "5");
    assert_eq!(
        m["proposer_index"],
        block5.message.proposer_index.to_string()
    );
    assert_eq!(m["parent_root"], hex(block5.message.parent_root.as_bytes()));
    assert_eq!(m["state_root"], hex(block5.message.state_root.as_bytes()));
    assert_eq!(j["data"]["signature"], hex(block5.signature.as_bytes()));
    let body = &block5.message.body;
    assert_eq!(
        m["body"]["attestations"].as_array().unwrap().len(),
        body.attestations.len()
    );
    assert_eq!(
        m["body"]["sync_aggregate"]["sync_committee_signature"],
        hex(body.sync_aggregate.sync_committee_signature.as_bytes())
    );
    let payload = &m["body"]["execution_payload"];
    assert_eq!(
        payload["block_hash"],
        hex(body.execution_payload.block_hash.as_bytes())
    );
    assert_eq!(
        payload["timestamp"],
        body.execution_payload.timestamp.to_string()
    );
    // A uint256 as a decimal string, a byte list as hex.
    assert!(payload["base_fee_per_gas"]
        .as_str()
        .unwrap()
        .bytes()
        .all(|b| b.is_ascii_digit()));
    assert!(payload["extra_data"].as_str().unwrap().starts_with("0x"));
    // The genesis block is the spec's, its root the anchor's.
    let gb = get_with(
        &a,
        &url("/eth/v2/beacon/blocks/genesis"),
        Some("application/octet-stream"),
    );
    assert_eq!(gb.status, 200);
    let mut gblock = ty::SignedBeaconBlock::ssz_decode(&gb.body).unwrap();
    assert_eq!(
        hash_tree_root(&mut gblock.message).unwrap(),
        reader.block_root_at_slot(0).unwrap().unwrap()
    );

    // --- block roots
    let root_of = |id: &str| get(&format!("/eth/v1/beacon/blocks/{id}/root")).json();
    assert_eq!(root_of("head")["data"]["root"], hex(&head.head.root));
    assert_eq!(root_of("head")["finalized"], false);
    assert_eq!(root_of("5")["data"]["root"], hex(&root5));
    assert_eq!(
        root_of("finalized")["data"]["root"],
        hex(&head.finalized.root)
    );
    assert_eq!(
        root_of("justified")["data"]["root"],
        hex(&head.justified.root)
    );
    assert_eq!(root_of(&hex(&root5))["data"]["root"], hex(&root5));

    // --- headers
    let h = get("/eth/v1/beacon/headers/5").json();
    assert_eq!(h["data"]["root"], hex(&root5));
    assert_eq!(h["data"]["canonical"], true);
    let hm = &h["data"]["header"]["message"];
    assert_eq!(hm["slot"], "5");
    assert_eq!(hm["state_root"], hex(block5.message.state_root.as_bytes()));
    let mut body5 = block5.message.body.clone();
    assert_eq!(hm["body_root"], hex(&hash_tree_root(&mut body5).unwrap()));
    assert_eq!(
        h["data"]["header"]["signature"],
        hex(block5.signature.as_bytes())
    );
    let hs = get("/eth/v1/beacon/headers").json();
    assert_eq!(hs["data"][0]["root"], hex(&head.head.root));
    let hs = get("/eth/v1/beacon/headers?slot=5").json();
    assert_eq!(hs["data"].as_array().unwrap().len(), 1);
    assert_eq!(hs["data"][0]["root"], hex(&root5));
    // The child of the head's parent is the head.
    let head_block =
        ty::SignedBeaconBlock::ssz_decode(&reader.block_by_root(&head.head.root).unwrap().unwrap())
            .unwrap();
    let hs = get(&format!(
        "/eth/v1/beacon/headers?parent_root={}",
        hex(head_block.message.parent_root.as_bytes())
    ))
    .json();
    assert_eq!(hs["data"].as_array().unwrap().len(), 1, "{hs}");
    assert_eq!(hs["data"][0]["root"], hex(&head.head.root));

    // --- states
    let state_root = |id: &str| get(&format!("/eth/v1/beacon/states/{id}/root")).json();
    assert_eq!(
        state_root("head")["data"]["root"],
        hex(&head.head_state_root)
    );
    assert_eq!(
        state_root("5")["data"]["root"],
        hex(block5.message.state_root.as_bytes())
    );
    let genesis_root = hash_tree_root(&mut genesis_state).unwrap();
    assert_eq!(state_root("genesis")["data"]["root"], hex(&genesis_root));
    assert_eq!(state_root("genesis")["finalized"], true);
    assert_eq!(
        state_root(&hex(block5.message.state_root.as_bytes()))["data"]["root"],
        hex(block5.message.state_root.as_bytes())
    );
    let f = get("/eth/v1/beacon/states/head/fork").json();
    assert_eq!(f["data"]["current_version"], hex(&head.fork_version));
    let fc = get("/eth/v1/beacon/states/head/finality_checkpoints").json();
    assert_eq!(
        fc["data"]["finalized"]["epoch"],
        head.finalized.epoch.to_string()
    );
    assert_eq!(fc["data"]["finalized"]["root"], hex(&head.finalized.root));
    assert_eq!(
        fc["data"]["current_justified"]["root"],
        hex(&head.justified.root)
    );

    // --- validators, with filters
    let v = get("/eth/v1/beacon/states/head/validators").json();
    let all = v["data"].as_array().unwrap();
    assert_eq!(all.len(), validators);
    assert!(all.iter().all(|x| x["status"] == "active_ongoing"));
    let pubkey7 = genesis_state.validators[7].pubkey.as_bytes().to_vec();
    let v = get(&format!(
        "/eth/v1/beacon/states/head/validators?id=5,0&id={}",
        hex(&pubkey7)
    ))
    .json();
    let got: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["index"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["0", "5", "7"]);
    assert_eq!(v["data"][2]["validator"]["pubkey"], hex(&pubkey7));
    let head_state_ssz = head.state.to_ssz().unwrap();
    let head_state = ty::BeaconState::ssz_decode(&head_state_ssz).unwrap();
    assert_eq!(v["data"][1]["balance"], head_state.balances[5].to_string());
    let active = get("/eth/v1/beacon/states/head/validators?status=active").json();
    assert_eq!(active["data"].as_array().unwrap().len(), validators);
    let exited = get("/eth/v1/beacon/states/head/validators?status=exited,pending_queued").json();
    assert_eq!(exited["data"].as_array().unwrap().len(), 0);

    // --- debug states: SSZ equal to the chain's, JSON of the same state
    let s = get_with(
        &a,
        &url("/eth/v2/debug/beacon/states/head"),
        Some("application/octet-stream"),
    );
    assert_eq!(s.version.as_deref(), Some("fulu"));
    assert!(s.body == head_state_ssz, "head state SSZ differs");
    let s8 = get_with(
        &a,
        &url("/eth/v2/debug/beacon/states/8"),
        Some("application/octet-stream"),
    );
    let mut st8 = ty::BeaconState::ssz_decode(&s8.body).unwrap();
    assert_eq!(st8.slot, 8);
    assert_eq!(
        hex(&hash_tree_root(&mut st8).unwrap()),
        state_root("8")["data"]["root"].as_str().unwrap()
    );
    let sj = get("/eth/v2/debug/beacon/states/head").json();
    assert_eq!(sj["version"], "fulu");
    assert_eq!(sj["data"]["slot"], "40");
    assert_eq!(
        sj["data"]["validators"].as_array().unwrap().len(),
        validators
    );
    assert_eq!(
        sj["data"]["balances"][3],
        head_state.balances[3].to_string()
    );
    assert_eq!(
        sj["data"]["current_epoch_participation"]
            .as_array()
            .unwrap()
            .len(),
        validators
    );
    assert_eq!(
        sj["data"]["latest_block_header"]["slot"],
        head_state.latest_block_header.slot.to_string()
    );

    // --- fork choice
    let fcj = get("/eth/v1/debug/fork_choice").json();
    assert_eq!(
        fcj["justified_checkpoint"]["root"],
        hex(&head.justified.root)
    );
    let nodes = fcj["fork_choice_nodes"].as_array().unwrap();
    let head_node = nodes
        .iter()
        .find(|n| n["block_root"] == hex(&head.head.root))
        .expect("the head is in fork choice");
    assert_eq!(head_node["slot"], "40");
    assert_eq!(
        head_node["execution_block_hash"],
        hex(head_block
            .message
            .body
            .execution_payload
            .block_hash
            .as_bytes())
    );

    // --- config
    let spec = get("/eth/v1/config/spec").json();
    assert_eq!(spec["data"]["SLOTS_PER_EPOCH"], "8");
    assert_eq!(spec["data"]["PRESET_BASE"], "minimal");
    assert_eq!(
        spec["data"]["SLOT_DURATION_MS"],
        cfg.slot_duration_ms.to_string()
    );
    assert_eq!(
        spec["data"]["FULU_FORK_VERSION"],
        hex(&cfg.fulu_fork_version)
    );
    let sched = get("/eth/v1/config/fork_schedule").json();
    let sched = sched["data"].as_array().unwrap();
    assert_eq!(sched.len(), 7);
    assert_eq!(sched[0]["current_version"], hex(&cfg.genesis_fork_version));
    assert_eq!(sched[6]["current_version"], hex(&cfg.fulu_fork_version));
    assert_eq!(sched[6]["previous_version"], hex(&cfg.electra_fork_version));
    // A devnet chain is at Fulu from genesis: the schedule it follows has every fork at 0.
    let effective = quasar::chain::any::effective_fork_schedule(cfg.clone(), head.fork_version, 5);
    assert_eq!(sched[6]["epoch"], effective.fulu_fork_epoch.to_string());
    assert_eq!(sched[6]["current_version"], hex(&head.fork_version));
    let dc = get("/eth/v1/config/deposit_contract").json();
    assert_eq!(
        dc["data"]["address"],
        "0x1234567890123456789012345678901234567890"
    );
    assert_eq!(dc["data"]["chain_id"], "5");

    // --- node
    let id = get("/eth/v1/node/identity").json();
    assert_eq!(
        id["data"]["peer_id"],
        net.handle().local_peer_id().to_string()
    );
    assert_eq!(
        id["data"]["p2p_addresses"][0],
        net.handle().listen_addresses()[0].to_string()
    );
    let t = Instant::now();
    loop {
        let pc = get("/eth/v1/node/peer_count").json();
        if pc["data"]["connected"] == "1" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "peer never counted: {pc}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let peers = get("/eth/v1/node/peers").json();
    assert_eq!(peers["meta"]["count"], 1);
    assert_eq!(
        peers["data"][0]["peer_id"],
        other_net.handle().local_peer_id().to_string()
    );
    assert_eq!(peers["data"][0]["direction"], "inbound");
    let sy = get("/eth/v1/node/syncing").json();
    assert_eq!(sy["data"]["head_slot"], "40");
    let syncing = sy["data"]["is_syncing"].as_bool().unwrap();
    let health = get("/eth/v1/node/health").status;
    assert_eq!(health, if syncing { 206 } else { 200 });
    let ver = get("/eth/v1/node/version").json();
    assert!(ver["data"]["version"]
        .as_str()
        .unwrap()
        .starts_with("quasar/v"));

    // --- bad ids: 400; unknown: 404; both with the error body
    for p in [
        "/eth/v2/beacon/blocks/0xzz",
        "/eth/v2/beacon/blocks/abc",
        "/eth/v2/beacon/blocks/-1",
        "/eth/v2/beacon/blocks/18446744073709551616",
        "/eth/v1/beacon/headers/0x1234",
        "/eth/v1/beacon/states/nope/root",
        "/eth/v1/beacon/states/head/validators?id=xyz",
        "/eth/v1/beacon/states/head/validators?id=0x1234",
        "/eth/v1/beacon/states/head/validators?status=sleeping",
        "/eth/v1/beacon/headers?slot=x",
        "/eth/v1/beacon/headers?parent_root=0x12",
        "/eth/v1/beacon/states/head/validators?id=%zz",
        "/eth/v1/events?topics=attestation",
        "/eth/v1/events",
    ] {
        assert_error(&a, &url(p), 400);
    }
    let zero = hex(&[0u8; 32]);
    for p in [
        "/eth/v2/beacon/blocks/99999".to_string(),
        format!("/eth/v2/beacon/blocks/{zero}"),
        format!("/eth/v1/beacon/blocks/{zero}/root"),
        "/eth/v1/beacon/headers/41".to_string(),
        "/eth/v1/beacon/states/41/root".to_string(),
        format!("/eth/v1/beacon/states/{zero}/fork"),
        format!("/eth/v2/debug/beacon/states/{zero}"),
        "/eth/v1/no/such/endpoint".to_string(),
    ] {
        assert_error(&a, &url(&p), 404);
    }
    // Unknown validator ids are left out, not an error.
    let none = get("/eth/v1/beacon/states/head/validators?id=100000").json();
    assert_eq!(none["data"].as_array().unwrap().len(), 0);

    rt.block_on(server.shutdown());
    rt.block_on(other_net.shutdown());
    rt.block_on(net.shutdown());
}

#[test]
fn events_stream_heads_and_metrics_are_named_and_parse() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(Preset::Minimal, &chain_dir, 64, 24);
    let rt = runtime();
    let service = open(&dir.path().join("a"), &chain_dir);
    let chain = service.handle();
    rt.block_on(chain.import_segment(blocks(&chain_dir, 1..=16), BlockSource::Local))
        .unwrap();
    let ctx = ApiContext::new(chain.clone(), None, ChainConfig::minimal());
    let server = rt
        .block_on(serve_api(ctx, SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    let metrics = NodeMetrics::new(chain.clone(), None, "cpu(blst)");
    let metrics_server = rt
        .block_on(serve_metrics(
            std::sync::Arc::new(metrics),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .unwrap();
    let a = agent();
    // No network in this process: the node endpoints that need one say so.
    assert_error(
        &a,
        &format!("http://{}/eth/v1/node/identity", server.local_addr()),
        503,
    );

    // SSE: subscribe, import, read the head event.
    let url = format!(
        "http://{}/eth/v1/events?topics=head,block",
        server.local_addr()
    );
    let resp = a
        .get(&url)
        .header("Accept", "text/event-stream")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let (tx, rx) = mpsc::channel::<(String, Value)>();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
        let mut event = String::new();
        while let Some(Ok(line)) = lines.next() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                let v: Value = serde_json::from_str(d.trim()).unwrap();
                if tx.send((event.clone(), v)).is_err() {
                    return;
                }
            }
        }
    });
    // The subscription is made when the request is answered; then import.
    let outcome = rt
        .block_on(chain.import_segment(blocks(&chain_dir, 17..=20), BlockSource::Local))
        .unwrap();
    assert_eq!(outcome.imported, 4);
    let head = chain.head();
    let mut seen_blocks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let head_event = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (name, v) = rx.recv_timeout(left).expect("a head event within 20 s");
        match name.as_str() {
            "block" => seen_blocks.push(v["slot"].as_str().unwrap().to_string()),
            "head" => break v,
            other => panic!("unexpected event {other}"),
        }
    };
    assert_eq!(seen_blocks, vec!["17", "18", "19", "20"]);
    assert_eq!(head_event["slot"], "20");
    assert_eq!(head_event["block"], hex(&head.head.root));
    assert_eq!(head_event["state"], hex(&head.head_state_root));
    // Epoch 2's duties depend on the block at slot 15, epoch 1's on slot 7's.
    let root_at = |s: u64| hex(&chain.reader().block_root_at_slot(s).unwrap().unwrap());
    assert_eq!(head_event["current_duty_dependent_root"], root_at(15));
    assert_eq!(head_event["previous_duty_dependent_root"], root_at(7));
    assert_eq!(head_event["epoch_transition"], false);

    // Metrics: OpenMetrics text, every family quasar_…, values equal to the handles'.
    let m = get_with(
        &a,
        &format!("http://{}/metrics", metrics_server.local_addr()),
        None,
    );
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name.starts_with("quasar_"), "family {name}");
            let parts: Vec<&str> = name.split('_').collect();
            assert!(parts.len() >= 3, "{name}: quasar_<area>_<what>[_<unit>]");
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad sample {line}"));
        assert!(key.starts_with("quasar_"), "{line}");
        samples.insert(key.to_string(), value);
    }
    assert_eq!(samples["quasar_chain_head_slot"], 20.0);
    assert_eq!(
        samples["quasar_chain_finalized_epoch"],
        head.finalized.epoch as f64
    );
    assert_eq!(samples["quasar_chain_head_validators"], 64.0);
    assert_eq!(samples["quasar_chain_blocks_imported_total"], 20.0);
    assert_eq!(
        samples["quasar_chain_blocks_imported_total"],
        chain.chain_metrics().blocks_imported() as f64
    );
    assert_eq!(
        samples["quasar_accel_backend_info{backend=\"cpu(blst)\"}"],
        1.0
    );
    assert!(samples["quasar_chain_transition_seconds_count"] >= 1.0);
    assert!(samples.contains_key("quasar_chain_signature_verification_seconds_sum"));
    assert!(text.contains("# TYPE quasar_cache_hits counter"), "{text}");

    rt.block_on(metrics_server.shutdown());
    // The event stream ends with the server.
    rt.block_on(server.shutdown());
}

/// `quasar node --http --metrics` (ports 0: any free one) serves both until SIGTERM.
#[test]
fn quasar_node_serves_the_api_and_metrics() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(Preset::Minimal, &chain_dir, 64, 4);
    let mut child = Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args([
            "node",
            "--port",
            "0",
            "--disable-quic",
            "--listen-address",
            "127.0.0.1",
            "--http",
            "--http-port",
            "0",
            "--metrics",
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            "0",
        ])
        .arg("--datadir")
        .arg(dir.path().join("data"))
        .arg("--genesis")
        .arg(devnet::genesis_path(&chain_dir))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut api, mut metrics, mut seen) = (None, None, Vec::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if let Some(a) = line.strip_prefix("Beacon API on ") {
            api = Some(a.to_string());
        }
        if let Some(m) = line.strip_prefix("metrics on ") {
            metrics = Some(m.to_string());
            break;
        }
    }
    let (Some(api), Some(metrics)) = (api, metrics) else {
        let _ = child.kill();
        panic!("no server addresses logged:\n{}", seen.join("\n"));
    };
    assert!(api.starts_with("http://127.0.0.1:"), "{api}");
    let a = agent();
    let v = get_with(&a, &format!("{api}/eth/v1/node/version"), None).json();
    assert!(v["data"]["version"]
        .as_str()
        .unwrap()
        .starts_with("quasar/"));
    let id = get_with(&a, &format!("{api}/eth/v1/node/identity"), None).json();
    assert!(
        id["data"]["peer_id"].as_str().unwrap().starts_with("16U"),
        "{id}"
    );
    let root = get_with(&a, &format!("{api}/eth/v1/beacon/blocks/head/root"), None).json();
    assert!(root["data"]["root"].as_str().unwrap().starts_with("0x"));
    let m = get_with(&a, &metrics, None);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("quasar_chain_head_slot 0"), "{text}");
    assert!(text.contains("quasar_net_peers_connected 0"), "{text}");
    for line in [
        "quasar_pool_gossip_queue_depth 0",
        "quasar_pool_gossip_dropped_total 0",
        "quasar_sync_distance_slots 0",
        "quasar_sync_imported_blocks_total 0",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    assert!(
        text.contains("quasar_accel_backend_info{backend="),
        "{text}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{}", rest.join("\n"));
}
