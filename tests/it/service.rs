//! The chain service through its handle (real RocksDB in temp dirs, real blst):
//! - readers (head, blocks by range and by root, state by root) running while an import
//!   runs get consistent committed answers and are never held up behind an import batch;
//! - two services of two chains — one minimal, one mainnet preset — import concurrently in
//!   one process and both reach their right heads;
//! - a segment with a bad signature in block k imports exactly k-1 blocks and names the
//!   set, as the peer's fault; a block with an unknown parent is nobody's fault;
//! - gossip validation answers ACCEPT / IGNORE / REJECT by the spec's rules;
//! - events announce blocks, heads and finality;
//! - SIGTERM during `quasar import` exits 0 with a clean `db verify`, and the re-run
//!   reaches the head.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::error::{BlockError, Fault};
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{
    BlockSource, ChainEvent, ChainService, GossipAcceptance, GossipClock, GossipTopic,
    GossipVerdict,
};
use quasar::devnet::{self, DevnetOptions, DevnetSummary, SigningMode};
use quasar::transition::minimal as t;
use quasar::types::minimal as ty;
use quasar::types::ssz::{ssz_encode, SszDecode};
use quasar::types::ssz_static::{decompress_snappy, MAX_DECOMPRESSED_LEN};
use quasar::types::Preset;

pub fn generate(preset: Preset, dir: &Path, validators: usize, slots: u64) -> DevnetSummary {
    let opts = DevnetOptions {
        validators,
        slots,
        genesis_time: devnet::DEFAULT_GENESIS_TIME,
        signing: SigningMode::Summed,
    };
    devnet::run(preset, &opts, dir, &mut |_| {}).expect("devnet generates")
}

pub fn read(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decompress_snappy(&raw, MAX_DECOMPRESSED_LEN).expect("snappy")
}

fn block_bytes(chain_dir: &Path, slots: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
    slots
        .map(|s| read(&devnet::block_path(chain_dir, s)))
        .collect()
}

fn open(data: &Path, chain_dir: &Path) -> ChainService {
    let genesis = read(&devnet::genesis_path(chain_dir));
    ChainService::open(
        data,
        Some(&genesis),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .expect("service opens")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn readers_get_committed_answers_while_an_import_runs() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let slots = 192;
    let summary = generate(Preset::Minimal, &chain_dir, 256, slots);
    let service = open(&dir.path().join("data"), &chain_dir);
    let handle = service.handle();
    let anchor_root = handle.head().head.root;
    assert_eq!(handle.head().head.slot, 0);

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let reader = handle.reader().clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut cheap_max = Duration::ZERO;
            let mut reads = 0u64;
            let mut heads_seen = std::collections::BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let head = reader.head();
                // The head block is committed when the head is published.
                let head_block = if head.head.root == anchor_root {
                    None
                } else {
                    Some(
                        reader
                            .block_by_root(&head.head.root)
                            .unwrap()
                            .expect("the published head block is in the store"),
                    )
                };
                cheap_max = cheap_max.max(t0.elapsed());
                if let Some(b) = head_block {
                    let b = ty::SignedBeaconBlock::ssz_decode(&b).unwrap();
                    assert_eq!(b.message.slot, head.head.slot);
                    assert_eq!(*b.message.state_root.as_bytes(), head.head_state_root);
                }
                heads_seen.insert(head.head.slot);
                // Blocks by range: a chain linked from the anchor, each stored under its root.
                let blocks = reader.blocks_by_range(1, 64).unwrap();
                let mut parent = anchor_root;
                let mut last_slot = 0;
                for sb in &blocks {
                    let b = ty::SignedBeaconBlock::ssz_decode(&sb.ssz).unwrap();
                    assert_eq!(t::hash_tree_root(&b.message).unwrap(), sb.root);
                    assert_eq!(b.message.slot, sb.slot);
                    assert!(sb.slot > last_slot, "ascending");
                    assert_eq!(*b.message.parent_root.as_bytes(), parent, "linked");
                    parent = sb.root;
                    last_slot = sb.slot;
                }
                // The head state by its root hashes to that root.
                if reads % 16 == 0 {
                    let ssz = reader
                        .state_by_root(&head.head_state_root)
                        .unwrap()
                        .expect("head state");
                    let state = ty::BeaconState::ssz_decode(&ssz).unwrap();
                    assert_eq!(t::state_root_of(&state).unwrap(), head.head_state_root);
                }
                reads += 1;
            }
            (cheap_max, reads, heads_seen.len())
        })
    };

    // The import: segments of 32 blocks, two in flight, each one's round trip timed.
    let mut round_trips = Vec::new();
    let mut pending = std::collections::VecDeque::new();
    for start in (1..=slots).step_by(32) {
        let blocks = block_bytes(&chain_dir, start..=(start + 31).min(slots));
        let t0 = Instant::now();
        let reply = handle
            .blocking_submit_segment(blocks, BlockSource::Local, start + 32 <= slots)
            .unwrap();
        pending.push_back((t0, reply));
        if pending.len() == 2 {
            let (t0, r) = pending.pop_front().unwrap();
            let outcome = r.blocking_wait().unwrap();
            assert!(outcome.failed.is_none(), "{:?}", outcome.failed);
            round_trips.push(t0.elapsed());
        }
    }
    while let Some((t0, r)) = pending.pop_front() {
        let outcome = r.blocking_wait().unwrap();
        assert!(outcome.failed.is_none(), "{:?}", outcome.failed);
        round_trips.push(t0.elapsed());
    }
    done.store(true, Ordering::Relaxed);
    let (cheap_max, reads, heads) = reader.join().expect("reader thread");
    assert_eq!(handle.head().head.root, summary.head_root);
    let fastest_segment = round_trips.iter().min().copied().unwrap();
    eprintln!(
        "{reads} reads during the import, {heads} distinct heads seen; slowest head+block read {cheap_max:?}, fastest 32-block segment {fastest_segment:?}"
    );
    assert!(reads > 10, "reads ran during the import");
    assert!(heads > 2, "readers saw the head move");
    assert!(
        cheap_max < fastest_segment,
        "a read ({cheap_max:?}) waited as long as a whole segment ({fastest_segment:?})"
    );
    drop(handle);
    service.shutdown();
}

#[test]
fn two_services_of_two_presets_import_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let min_dir = dir.path().join("minimal");
    let main_dir = dir.path().join("mainnet");
    let min_summary = generate(Preset::Minimal, &min_dir, 64, 48);
    let main_summary = generate(Preset::Mainnet, &main_dir, 64, 40);
    let a = open(&dir.path().join("data-min"), &min_dir);
    let b = open(&dir.path().join("data-main"), &main_dir);
    assert_eq!(a.handle().preset(), Preset::Minimal);
    assert_eq!(b.handle().preset(), Preset::Mainnet);
    let (ha, hb) = (a.handle(), b.handle());
    let ta = std::thread::spawn({
        let d = min_dir.clone();
        move || crate::import::import_via(&ha, &d)
    });
    let tb = std::thread::spawn({
        let d = main_dir.clone();
        move || crate::import::import_via(&hb, &d)
    });
    let (ra, resa) = ta.join().unwrap();
    let (rb, resb) = tb.join().unwrap();
    resa.expect("minimal chain imports");
    resb.expect("mainnet chain imports");
    assert_eq!(ra.imported, 48);
    assert_eq!(rb.imported, 40);
    assert_eq!(a.handle().head().head.root, min_summary.head_root);
    assert_eq!(b.handle().head().head.root, main_summary.head_root);
    assert_eq!(a.handle().head().head_state_root, min_summary.state_root);
    assert_eq!(b.handle().head().head_state_root, main_summary.state_root);
    a.shutdown();
    b.shutdown();
}

#[test]
fn segment_faults_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(Preset::Minimal, &chain_dir, 64, 24);
    let service = open(&dir.path().join("data"), &chain_dir);
    let handle = service.handle();
    let rt = runtime();

    // Block 12's signature replaced by another valid point: blocks 1 … 11 import.
    let mut blocks = block_bytes(&chain_dir, 1..=16);
    let mut bad = ty::SignedBeaconBlock::ssz_decode(&blocks[11]).unwrap();
    bad.signature = bad.message.body.randao_reveal;
    blocks[11] = ssz_encode(&bad).unwrap();
    let outcome = rt
        .block_on(handle.import_segment(blocks, BlockSource::Peer("peer-a".into())))
        .unwrap();
    assert_eq!(
        outcome.imported, 11,
        "exactly the blocks before the bad one"
    );
    let failed = outcome.failed.expect("the bad block is named");
    assert_eq!(failed.index, 11);
    assert_eq!(failed.slot, 12);
    assert_eq!(failed.fault(), Fault::Peer);
    match &failed.error {
        BlockError::InvalidSignature { set, .. } => assert_eq!(*set, "block signature"),
        e => panic!("expected an invalid signature, got {e:?}"),
    }
    assert_eq!(handle.head().head.slot, 11);

    // A block whose parent the chain does not know: nobody's fault (fetch the parent).
    let orphan = block_bytes(&chain_dir, 14..=14);
    let outcome = rt
        .block_on(handle.import_segment(orphan, BlockSource::Peer("peer-b".into())))
        .unwrap();
    assert_eq!(outcome.imported, 0);
    let failed = outcome.failed.expect("refused");
    assert!(
        matches!(failed.error, BlockError::UnknownParent { .. }),
        "{:?}",
        failed.error
    );
    assert_eq!(failed.fault(), Fault::Nobody);

    // Garbage: undecodable, the sender's fault; the blocks before it import.
    let mut blocks = block_bytes(&chain_dir, 12..=13);
    blocks.push(vec![0xff; 100]);
    let outcome = rt
        .block_on(handle.import_segment(blocks, BlockSource::Peer("peer-c".into())))
        .unwrap();
    assert_eq!(outcome.imported, 2);
    let failed = outcome.failed.expect("garbage refused");
    assert_eq!(failed.index, 2);
    assert!(matches!(failed.error, BlockError::Decode(_)));
    assert_eq!(failed.fault(), Fault::Peer);

    // Already known: skipped, not refused.
    let outcome = rt
        .block_on(handle.import_segment(block_bytes(&chain_dir, 1..=13), BlockSource::Local))
        .unwrap();
    assert_eq!((outcome.imported, outcome.skipped), (0, 13));
    assert!(outcome.failed.is_none());
    drop(handle);
    service.shutdown();
}

#[test]
fn gossip_blocks_get_spec_verdicts_and_events_follow() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let summary = generate(Preset::Minimal, &chain_dir, 64, 48);
    let service = open(&dir.path().join("data"), &chain_dir);
    let handle = service.handle();
    let rt = runtime();
    let mut events = handle.subscribe();
    let peer = || BlockSource::Gossip("peer-g".into());

    let outcome = rt
        .block_on(handle.import_segment(block_bytes(&chain_dir, 1..=36), BlockSource::Local))
        .unwrap();
    assert_eq!(outcome.imported, 36);
    let b37 = block_bytes(&chain_dir, 37..=37).remove(0);
    // Messages arrive at the start of a slot (the gossip clock is in milliseconds).
    let validate = |bytes: Vec<u8>, slot: u64| {
        rt.block_on(handle.validate_gossip(
            GossipTopic::BeaconBlock,
            bytes,
            peer(),
            handle.slot_start(slot),
        ))
        .unwrap()
    };
    // From the future: IGNORE (a slot ahead, beyond MAXIMUM_GOSSIP_CLOCK_DISPARITY).
    assert!(matches!(
        validate(b37.clone(), 36),
        GossipVerdict::Ignore(BlockError::FutureSlot { slot: 37, .. })
    ));
    // Within the disparity (500 ms before slot 37 starts): not from the future.
    let early = handle.slot_start(37).ms_since_genesis() - 500;
    let mut bad = ty::SignedBeaconBlock::ssz_decode(&b37).unwrap();
    bad.signature = bad.message.body.randao_reveal;
    let verdict = rt
        .block_on(handle.validate_gossip(
            GossipTopic::BeaconBlock,
            ssz_encode(&bad).unwrap(),
            peer(),
            GossipClock::from_ms_since_genesis(early),
        ))
        .unwrap();
    // A bad signature: REJECT (and the proposal is not marked seen).
    assert!(
        matches!(
            &verdict,
            GossipVerdict::Reject(BlockError::InvalidSignature {
                set: "block signature",
                ..
            })
        ),
        "{verdict:?}"
    );
    assert_eq!(verdict.acceptance(), GossipAcceptance::Reject);
    // Garbage: REJECT.
    assert!(matches!(
        validate(vec![1, 2, 3], 37),
        GossipVerdict::Reject(BlockError::Decode(_))
    ));
    // The real one: ACCEPT, and imported; again: IGNORE (its proposal was seen).
    assert_eq!(validate(b37.clone(), 37), GossipVerdict::Accept);
    assert_eq!(handle.head().head.slot, 37);
    assert!(matches!(
        validate(b37, 38),
        GossipVerdict::Ignore(BlockError::RepeatProposal { slot: 37, .. })
    ));
    // Unknown parent (block 39 before 38): IGNORE, fetch the parent.
    let b39 = block_bytes(&chain_dir, 39..=39).remove(0);
    let verdict = validate(b39, 39);
    assert!(
        matches!(
            verdict,
            GossipVerdict::Ignore(BlockError::UnknownParent { .. })
        ),
        "{verdict:?}"
    );
    // Below finalization: IGNORE.
    let finalized_slot = handle.head().finalized_slot;
    assert!(finalized_slot > 0, "the chain finalized");
    let old = block_bytes(&chain_dir, 1..=1).remove(0);
    assert!(matches!(
        validate(old, 38),
        GossipVerdict::Ignore(BlockError::WouldRevertFinalized { slot: 1, .. })
    ));
    let rest = block_bytes(&chain_dir, 38..=48);
    rt.block_on(handle.import_segment(rest, BlockSource::Local))
        .unwrap();
    assert_eq!(handle.head().head.root, summary.head_root);

    // Events: every imported block, head changes, finality.
    let mut blocks = 0;
    let mut head_slots = Vec::new();
    let mut finalized = 0;
    while let Ok(e) = events.try_recv() {
        match e {
            ChainEvent::Block { .. } => blocks += 1,
            ChainEvent::Head { slot, .. } => head_slots.push(slot),
            ChainEvent::FinalizedCheckpoint { .. } => finalized += 1,
        }
    }
    assert_eq!(blocks, 48, "one block event per imported block");
    assert_eq!(head_slots.last(), Some(&48));
    assert!(head_slots.contains(&37), "the gossip block moved the head");
    assert!(finalized >= 1);
    drop(handle);
    service.shutdown();
}

/// Re-sign a block with its proposer's interop key.
fn resign(block: &mut ty::SignedBeaconBlock, genesis: &ty::BeaconState) {
    let epoch = t::compute_epoch_at_slot(block.message.slot);
    let domain = t::get_domain(genesis, t::DOMAIN_BEACON_PROPOSER, Some(epoch)).unwrap();
    let root = t::compute_signing_root(&block.message, domain).unwrap();
    let sk = devnet::interop_secret_key(block.message.proposer_index).unwrap();
    block.signature = ty::BLSSignature::from(sk.sign(&root, quasar::bls::DST, &[]).compress());
}

#[test]
fn gossip_refusals_reach_descendants() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(Preset::Minimal, &chain_dir, 64, 10);
    let genesis = ty::BeaconState::ssz_decode(&read(&devnet::genesis_path(&chain_dir))).unwrap();
    let service = open(&dir.path().join("data"), &chain_dir);
    let handle = service.handle();
    let rt = runtime();
    let validate = |block: &ty::SignedBeaconBlock, slot: u64| {
        rt.block_on(handle.validate_gossip(
            GossipTopic::BeaconBlock,
            ssz_encode(block).unwrap(),
            BlockSource::Gossip("peer-r".into()),
            handle.slot_start(slot),
        ))
        .unwrap()
    };
    let block = |slot: u64| {
        ty::SignedBeaconBlock::ssz_decode(&block_bytes(&chain_dir, slot..=slot)[0]).unwrap()
    };
    let outcome = rt
        .block_on(handle.import_segment(block_bytes(&chain_dir, 1..=4), BlockSource::Local))
        .unwrap();
    assert_eq!(outcome.imported, 4);

    // Block 5 with a wrong state root, properly signed: every gossip condition holds, the
    // full verification refuses it.
    let mut bad5 = block(5);
    bad5.message.state_root = ty::Root::from([7u8; 32]);
    resign(&mut bad5, &genesis);
    let verdict = validate(&bad5, 5);
    assert!(
        matches!(
            verdict,
            GossipVerdict::Invalid(BlockError::StateRootMismatch { .. })
        ),
        "{verdict:?}"
    );
    // Not relayed, and the relayer (which the gossip conditions alone let pass) is not
    // penalised.
    assert_eq!(verdict.acceptance(), GossipAcceptance::Ignore);
    assert_eq!(handle.head().head.slot, 4);
    // Its child: the parent failed validation (payloads are optimistic): REJECT.
    let mut child = block(6);
    child.message.parent_root = ty::Root::from(t::hash_tree_root(&bad5.message).unwrap());
    resign(&mut child, &genesis);
    let verdict = validate(&child, 6);
    assert!(
        matches!(
            verdict,
            GossipVerdict::Reject(BlockError::ParentRefused { .. })
        ),
        "{verdict:?}"
    );
    // The proposer's first block for slot 5 with a valid signature was the bad one: the
    // good one is IGNOREd on gossip (it still imports through sync).
    let verdict = validate(&block(5), 5);
    assert!(
        matches!(
            verdict,
            GossipVerdict::Ignore(BlockError::RepeatProposal { slot: 5, .. })
        ),
        "{verdict:?}"
    );
    let outcome = rt
        .block_on(handle.import_segment(block_bytes(&chain_dir, 5..=6), BlockSource::Local))
        .unwrap();
    assert_eq!(outcome.imported, 2);

    // A block refused through sync: its gossip child is REJECTed as well.
    let mut bad7 = block(7);
    bad7.message.state_root = ty::Root::from([9u8; 32]);
    resign(&mut bad7, &genesis);
    let outcome = rt
        .block_on(handle.import_segment(
            vec![ssz_encode(&bad7).unwrap()],
            BlockSource::Peer("peer-s".into()),
        ))
        .unwrap();
    assert!(matches!(
        outcome.failed.map(|f| f.error),
        Some(BlockError::StateRootMismatch { .. })
    ));
    let mut child = block(8);
    child.message.parent_root = ty::Root::from(t::hash_tree_root(&bad7.message).unwrap());
    resign(&mut child, &genesis);
    let verdict = validate(&child, 8);
    assert!(
        matches!(
            verdict,
            GossipVerdict::Reject(BlockError::ParentRefused { .. })
        ),
        "{verdict:?}"
    );
    // A root marked invalid: its child too; the block itself, once the conditions hold.
    let good7 = block(7);
    let good7_root = t::hash_tree_root(&good7.message).unwrap();
    rt.block_on(handle.mark_invalid(good7_root)).unwrap();
    let verdict = validate(&block(8), 8);
    assert!(
        matches!(
            verdict,
            GossipVerdict::Reject(BlockError::ParentRefused { .. })
        ),
        "{verdict:?}"
    );
    // (Block 7's proposal was not seen on gossip: the sync refusal came first.)
    let verdict = validate(&good7, 7);
    assert!(
        matches!(verdict, GossipVerdict::Invalid(BlockError::MarkedInvalid)),
        "{verdict:?}"
    );
    assert_eq!(handle.head().head.slot, 6);
    drop(handle);
    service.shutdown();
}

#[test]
fn sigterm_during_import_exits_zero_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let summary = generate(Preset::Minimal, &chain_dir, 64, 640);
    let data = dir.path().join("data");
    let quasar = env!("CARGO_BIN_EXE_quasar");
    let mut stopped_midway = 0;
    for delay_ms in [300u64, 600, 900] {
        let child = Command::new(quasar)
            .args([
                "import",
                "--quiet",
                "--backend",
                "cpu",
                "--batch-size",
                "16",
            ])
            .arg("--datadir")
            .arg(&data)
            .arg(&chain_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "SIGTERM exits 0:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        if stderr.contains("stopped by a signal") {
            stopped_midway += 1;
        }
        let verify = Command::new(quasar)
            .args(["db", "verify", "--datadir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "db verify after SIGTERM:\n{}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    assert!(stopped_midway > 0, "a signal landed mid-import");
    let out = Command::new(quasar)
        .args(["import", "--quiet", "--backend", "cpu", "--datadir"])
        .arg(&data)
        .arg(&chain_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("root 0x{}", hex(&summary.head_root))),
        "the re-run reaches the head:\n{stdout}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
