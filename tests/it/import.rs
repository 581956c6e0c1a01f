//! `quasar import`, `db info`, `db verify` and the import pipeline on generated chains
//! (minimal preset, real RocksDB in temp dirs, real blst):
//! - an import ends at the same head and state root as `quasar tool transition` applied
//!   block by block, batched or per block, in one batch or many, and re-running it skips
//!   every block;
//! - a chain with a bad signature and a bad state root in the middle imports every block
//!   before the first bad one and names it with the right reason; garbage files are
//!   refused with their name;
//! - `quasar import` killed with SIGKILL at random moments ten times, then re-run, ends at
//!   the same head with a clean `db verify`;
//! - under a small memory budget the caches evict (logs, metrics) and still serve the
//!   right checkpoint states, from memory, disk or the database;
//! - the stored pubkey table: a restart loads it (nothing KeyValidate'd), a flipped,
//!   truncated or forged chunk is refused and the table rebuilt, at the same head.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::minimal::Chain;
use quasar::chain::pipeline::{ImportOptions, Verification};
use quasar::chain::service::ChainService;
use quasar::devnet::{self, DevnetOptions, DevnetSummary, SigningMode};
use quasar::transition::minimal as t;
use quasar::transition::{ChainConfig, TransitionCtx};
use quasar::types::minimal as ty;
use quasar::types::ssz::{ssz_encode, SszDecode};
use quasar::types::ssz_static::{decompress_snappy, MAX_DECOMPRESSED_LEN};
use quasar::types::Preset;
use rand::Rng;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn quasar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args(args)
        .output()
        .expect("running quasar")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn generate(dir: &Path, validators: usize, slots: u64) -> DevnetSummary {
    let opts = DevnetOptions {
        validators,
        slots,
        genesis_time: devnet::DEFAULT_GENESIS_TIME,
        signing: SigningMode::Summed,
    };
    devnet::run(Preset::Minimal, &opts, dir, &mut |_| {}).expect("devnet generates")
}

fn read(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decompress_snappy(&raw, MAX_DECOMPRESSED_LEN).expect("snappy")
}

/// `head slot S root 0x… state root 0x… …` from `quasar import`'s stdout.
fn head_line(out: &Output) -> (u64, String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("head slot"))
        .unwrap_or_else(|| panic!("no head line:\n{}", text(out)));
    let w: Vec<&str> = line.split_whitespace().collect();
    (w[2].parse().unwrap(), w[4].to_string(), w[7].to_string())
}

fn import(datadir: &Path, chain_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "import",
        "--datadir",
        datadir.to_str().unwrap(),
        "--quiet",
        "--backend",
        "cpu",
    ];
    args.extend_from_slice(extra);
    args.push(chain_dir.to_str().unwrap());
    quasar(&args)
}

fn db_verify_clean(datadir: &Path) {
    let out = quasar(&["db", "verify", "--datadir", datadir.to_str().unwrap()]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "db verify:\n{}",
        text(&out)
    );
}

/// The state root `quasar tool transition` reaches applying the chain one block per run.
fn transition_block_by_block(chain_dir: &Path, work: &Path) -> String {
    let mut pre = devnet::genesis_path(chain_dir);
    let mut root = String::new();
    for (slot, block) in devnet::list_blocks(chain_dir).unwrap() {
        let post = work.join(format!("post-{slot}.ssz"));
        let out = quasar(&[
            "tool",
            "transition",
            "--preset",
            "minimal",
            "--backend",
            "cpu",
            "--pre",
            pre.to_str().unwrap(),
            "--block",
            block.to_str().unwrap(),
            "--out",
            post.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "tool transition at {slot}:\n{}",
            text(&out)
        );
        root = String::from_utf8_lossy(&out.stdout).trim().to_string();
        pre = post;
    }
    root
}

#[test]
fn import_matches_tool_transition_block_by_block() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let summary = generate(&chain_dir, 64, 40);
    let expected = transition_block_by_block(&chain_dir, dir.path());
    assert_eq!(expected, format!("0x{}", hex(&summary.state_root)));

    // Batched, in one batch (the default), then again: everything is skipped.
    let d1 = dir.path().join("d1");
    let out = import(&d1, &chain_dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let (slot, root, state_root) = head_line(&out);
    assert_eq!(slot, 40);
    assert_eq!(root, format!("0x{}", hex(&summary.head_root)));
    assert_eq!(state_root, expected);
    let again = import(&d1, &chain_dir, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(head_line(&again), (slot, root.clone(), state_root.clone()));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("imported 0 blocks (40 already imported"),
        "{}",
        text(&again)
    );
    db_verify_clean(&d1);
    let info = quasar(&["db", "info", "--datadir", d1.to_str().unwrap()]);
    let info_text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{}", text(&info));
    assert!(
        info_text.contains(&format!("head              slot 40 root {root}")),
        "{info_text}"
    );
    assert!(
        info_text.contains(&format!("head state root   {state_root}")),
        "{info_text}"
    );
    assert!(info_text.contains("blocks            40"), "{info_text}");
    assert!(
        info_text.contains(&format!(
            "finalized         epoch {}",
            summary.finalized_epoch
        )),
        "{info_text}"
    );

    // Many uneven batches, and per-block verification: the same head.
    for (name, extra) in [
        ("d2", vec!["--batch-size", "7"]),
        ("d3", vec!["--per-block"]),
        (
            "d4",
            vec!["--batch-size", "3", "--snapshot-every", "1", "--no-preload"],
        ),
    ] {
        let d = dir.path().join(name);
        let out = import(&d, &chain_dir, &extra);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(
            head_line(&out),
            (slot, root.clone(), state_root.clone()),
            "{name}"
        );
        db_verify_clean(&d);
    }
}

/// Re-sign a block with its proposer's interop key.
fn resign(block: &mut ty::SignedBeaconBlock, genesis: &ty::BeaconState) {
    let epoch = t::compute_epoch_at_slot(block.message.slot);
    let domain = t::get_domain(genesis, t::DOMAIN_BEACON_PROPOSER, Some(epoch)).unwrap();
    let root = t::compute_signing_root(&block.message, domain).unwrap();
    let sk = devnet::interop_secret_key(block.message.proposer_index).unwrap();
    block.signature = ty::BLSSignature::from(sk.sign(&root, quasar::bls::DST, &[]).compress());
}

fn write_block(chain_dir: &Path, slot: u64, block: &ty::SignedBeaconBlock) {
    let bytes = devnet::compress(&ssz_encode(block).unwrap()).unwrap();
    std::fs::write(devnet::block_path(chain_dir, slot), bytes).unwrap();
}

fn load_block(chain_dir: &Path, slot: u64) -> ty::SignedBeaconBlock {
    ty::SignedBeaconBlock::ssz_decode(&read(&devnet::block_path(chain_dir, slot))).unwrap()
}

#[test]
fn bad_signature_and_bad_state_root_mid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    generate(&chain_dir, 64, 24);
    let genesis = ty::BeaconState::ssz_decode(&read(&devnet::genesis_path(&chain_dir))).unwrap();
    let good10 = load_block(&chain_dir, 10);

    // Block 10: a valid point over another message (its randao reveal) as signature.
    let mut bad10 = good10.clone();
    bad10.signature = bad10.message.body.randao_reveal;
    write_block(&chain_dir, 10, &bad10);
    // Block 16: a wrong state root, properly signed, so only the root is wrong.
    let mut bad16 = load_block(&chain_dir, 16);
    bad16.message.state_root = ty::Root::from([0x5a; 32]);
    resign(&mut bad16, &genesis);
    write_block(&chain_dir, 16, &bad16);

    let data = dir.path().join("data");
    let out = import(&data, &chain_dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("block at slot 10")
            && stderr.contains("invalid signature: block signature"),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(head_line(&out).0, 9, "every block before the first bad one");
    db_verify_clean(&data);

    // Small batches: the bad block's batch is verified while the next one is applied (the
    // pipeline); the same blocks import and the same block is named.
    let small = dir.path().join("small-batches");
    let out = import(&small, &chain_dir, &["--batch-size", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("block at slot 10")
            && stderr.contains("invalid signature: block signature"),
        "{}",
        text(&out)
    );
    assert_eq!(head_line(&out).0, 9);
    db_verify_clean(&small);

    // Block 10 repaired: 10 … 15 import, 16 is refused for its state root.
    write_block(&chain_dir, 10, &good10);
    let out = import(&data, &chain_dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("block at slot 16") && stderr.contains("state root"),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("9 already imported"), "{}", text(&out));
    assert_eq!(head_line(&out).0, 15);
    db_verify_clean(&data);
    let out = import(&small, &chain_dir, &["--batch-size", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("block at slot 16"),
        "{}",
        text(&out)
    );
    assert_eq!(head_line(&out).0, 15);
    db_verify_clean(&small);

    // The same with per-block verification (the bad block found by its own check).
    let per_block = dir.path().join("per-block");
    let out = import(&per_block, &chain_dir, &["--per-block"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(head_line(&out).0, 15);

    // A garbage file after the good blocks: refused by name, nothing lost.
    let garbage_dir = dir.path().join("garbage");
    std::fs::create_dir_all(garbage_dir.join("blocks")).unwrap();
    std::fs::copy(
        devnet::genesis_path(&chain_dir),
        devnet::genesis_path(&garbage_dir),
    )
    .unwrap();
    for slot in 1..=3 {
        std::fs::copy(
            devnet::block_path(&chain_dir, slot),
            devnet::block_path(&garbage_dir, slot),
        )
        .unwrap();
    }
    std::fs::write(devnet::block_path(&garbage_dir, 4), [0xffu8; 100]).unwrap();
    let gdata = dir.path().join("gdata");
    let out = import(&gdata, &garbage_dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4.ssz_snappy"), "{}", text(&out));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(head_line(&out).0, 3);
    db_verify_clean(&gdata);

    // A new datadir without a genesis is refused with a clear message.
    let empty = dir.path().join("empty-chain");
    std::fs::create_dir_all(&empty).unwrap();
    let out = import(&dir.path().join("nodata"), &empty, &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a genesis"),
        "{}",
        text(&out)
    );
}

#[test]
fn sigkill_ten_times_then_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    // Long enough that ten short runs cannot finish it: each run is killed part-way.
    let summary = generate(&chain_dir, 64, 640);
    let data = dir.path().join("data");
    let mut rng = rand::rng();
    let mut killed_mid_run = 0;
    for round in 0..10 {
        // Even rounds: a block at a time. Odd rounds: batches of 16 whose write
        // auto-commits after every block (the head last), so kills also land between the
        // parts of one batch's write.
        let mode: &[&str] = if round % 2 == 0 {
            &["--batch-size", "1", "--per-block"]
        } else {
            &["--batch-size", "16", "--write-batch-bytes", "1"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_quasar"))
            .args([
                "import",
                "--datadir",
                data.to_str().unwrap(),
                "--quiet",
                "--backend",
                "cpu",
            ])
            .args(mode)
            .arg(chain_dir.to_str().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn quasar import");
        std::thread::sleep(Duration::from_millis(rng.random_range(100..400)));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok(); // SIGKILL
        let status = child.wait().unwrap();
        eprintln!("round {round}: {status:?}");
        if round == 3 {
            // Part-way through, what the kills left is consistent.
            db_verify_clean(&data);
            let info = quasar(&["db", "info", "--datadir", data.to_str().unwrap()]);
            let info_text = String::from_utf8_lossy(&info.stdout).to_string();
            let head_slot: u64 = info_text
                .lines()
                .find_map(|l| l.strip_prefix("head              slot "))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("db info:\n{}", text(&info)));
            assert!(
                head_slot > 0 && head_slot < 640,
                "the killed runs imported part of the chain: head slot {head_slot}"
            );
        }
    }
    assert!(
        killed_mid_run >= 6,
        "only {killed_mid_run} kills landed mid-import"
    );
    // What the kills left is consistent before the rerun, too.
    db_verify_clean(&data);
    let out = import(&data, &chain_dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let (slot, root, state_root) = head_line(&out);
    assert_eq!(slot, 640);
    assert_eq!(root, format!("0x{}", hex(&summary.head_root)));
    assert_eq!(state_root, format!("0x{}", hex(&summary.state_root)));
    db_verify_clean(&data);
}

#[test]
fn small_memory_budget_evicts_and_serves_correct_states() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let summary = generate(&chain_dir, 64, 64);
    let genesis = read(&devnet::genesis_path(&chain_dir));
    let opts = ImportOptions {
        batch_size: 8,
        memory_budget: Some(96 * 1024),
        memory_states: 4,
        disk_states: 2,
        verification: Verification::Batched,
        ..ImportOptions::default()
    };
    let data = dir.path().join("data");
    let mut chain = Chain::open(
        &data,
        Some(&genesis),
        ChainConfig::minimal(),
        opts,
        Box::new(CpuAggregator),
    )
    .expect("open");
    assert_eq!(feed_chain(&mut chain, &chain_dir, 8), 64);
    assert_eq!(chain.head().root, summary.head_root);
    chain.wait_preloaded();
    let metrics = chain.metrics().clone();
    assert!(
        metrics.evictions("checkpoint_states", "memory_budget") > 0,
        "{}",
        metrics.encode_text()
    );
    assert!(metrics
        .encode_text()
        .contains("quasar_cache_evictions_total"));

    // Every epoch's checkpoint state, whatever tier it comes from, has the root of the
    // block at the epoch's first slot.
    let store = chain.store();
    for epoch in 1..=7u64 {
        let slot = epoch * 8;
        let root = store.block_root_at_slot(slot).unwrap().expect("canonical");
        let block =
            ty::SignedBeaconBlock::ssz_decode(&store.get_block(&root).unwrap().unwrap()).unwrap();
        let state = chain
            .checkpoint_state(epoch, &root)
            .expect("checkpoint state");
        assert_eq!(state.slot, slot);
        assert_eq!(
            t::state_root_of(&state).unwrap(),
            *block.message.state_root.as_bytes(),
            "epoch {epoch}"
        );
    }
    let stats = chain.checkpoint_cache().stats();
    assert!(
        stats.db_loads > 0 && stats.budget_evictions > 0,
        "states rebuilt from the database, others evicted: {stats:?}"
    );
    // The state just loaded is the newest in memory: asked again, a memory hit.
    let root = store.block_root_at_slot(56).unwrap().unwrap();
    chain.checkpoint_state(7, &root).unwrap();
    let hits = chain.checkpoint_cache().stats().memory_hits;
    chain.checkpoint_state(7, &root).unwrap();
    assert_eq!(chain.checkpoint_cache().stats().memory_hits, hits + 1);
    // A skipped first slot: the state of (epoch 9, head) is the head advanced.
    let head = chain.head();
    let cp = chain
        .checkpoint_state(9, &head.root)
        .expect("advanced checkpoint");
    assert_eq!(cp.slot, 72);
    assert_eq!(cp.latest_block_header.slot, 64);
}

/// Feed a chain owned by the test (not a service: the test inspects its caches) every
/// block file of `dir`, in segments of `batch` blocks, as the service's chain thread would;
/// returns the blocks imported.
fn feed_chain(chain: &mut Chain, dir: &Path, batch: usize) -> usize {
    let folder = if dir.join("blocks").is_dir() {
        dir.join("blocks")
    } else {
        dir.to_path_buf()
    };
    let files = devnet::list_block_files(&folder).unwrap();
    let mut imported = 0;
    let segments: Vec<_> = files.chunks(batch).collect();
    for (id, seg) in segments.iter().enumerate() {
        let blocks = seg
            .iter()
            .enumerate()
            .map(|(i, (_, path))| {
                Chain::decode_block(chain.buffer_pool(), i, read(path)).expect("decodes")
            })
            .collect();
        let more = id + 1 < segments.len();
        for settled in chain.submit_segment(id as u64, blocks, more) {
            let outcome = settled.result.expect("no node failure");
            assert!(outcome.failed.is_none(), "{:?}", outcome.failed);
            imported += outcome.imported;
        }
    }
    for settled in chain.flush() {
        imported += settled.result.expect("no node failure").imported;
    }
    imported
}

/// The post state of the chain's first `n` blocks (skipping signatures, as replay does).
fn state_after(chain_dir: &Path, n: u64) -> ty::BeaconState {
    let mut ctx = TransitionCtx::new(ChainConfig::minimal());
    let mut state = ty::BeaconState::ssz_decode(&read(&devnet::genesis_path(chain_dir))).unwrap();
    for slot in 1..=n {
        let block = load_block(chain_dir, slot);
        t::state_transition(
            &mut state,
            &block,
            false,
            &mut ctx,
            &mut quasar::transition::SignatureChecker::skip(),
        )
        .unwrap();
    }
    state
}

#[test]
fn a_fork_block_is_kept_off_the_head_and_pruned_at_finalization() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let summary = generate(&chain_dir, 64, 40);
    let genesis_bytes = read(&devnet::genesis_path(&chain_dir));
    let genesis = ty::BeaconState::ssz_decode(&genesis_bytes).unwrap();

    // A competing block at slot 9 on block 8: other graffiti, its own state root, signed.
    let mut fork = load_block(&chain_dir, 9);
    fork.message.body.graffiti = ty::Bytes32::from([0xf0; 32]);
    let mut state = state_after(&chain_dir, 8);
    let mut ctx = TransitionCtx::new(ChainConfig::minimal());
    t::process_slots(&mut state, 9, &mut ctx).unwrap();
    t::process_block(
        &mut state,
        &fork.message,
        &ctx,
        &mut quasar::transition::SignatureChecker::skip(),
    )
    .unwrap();
    fork.message.state_root = ty::Root::from(t::state_root_of(&state).unwrap());
    resign(&mut fork, &genesis);
    let fork_root = t::hash_tree_root(&fork.message).unwrap();
    let fork_dir = dir.path().join("fork");
    std::fs::create_dir_all(fork_dir.join("blocks")).unwrap();
    write_block(&fork_dir, 9, &fork);

    // The canonical blocks 1 … 16 in their own folder, then the fork, then the rest.
    let first = dir.path().join("first");
    let rest = dir.path().join("rest");
    for (d, range) in [(&first, 1..=16u64), (&rest, 17..=40)] {
        std::fs::create_dir_all(d.join("blocks")).unwrap();
        for slot in range {
            std::fs::copy(
                devnet::block_path(&chain_dir, slot),
                devnet::block_path(d, slot),
            )
            .unwrap();
        }
    }
    let opts = ImportOptions {
        verification: Verification::Batched,
        ..ImportOptions::default()
    };
    let data = dir.path().join("data");
    let service =
        ChainService::open(&data, Some(&genesis_bytes), opts, Box::new(CpuAggregator)).unwrap();
    let handle = service.handle();
    let reader = handle.reader().clone();
    let (_, r) = import_via(&handle, &first);
    r.expect("first part");
    let tip16 = handle.head().head;
    assert_eq!(tip16.slot, 16);

    // The fork block verifies (its parent's state is rebuilt from the store) and is
    // stored, but the canonical chain carries the votes: the head stays.
    let (report, r) = import_via(&handle, &fork_dir);
    r.expect("the fork block is valid");
    assert_eq!(report.imported, 1);
    assert_eq!(handle.head().head, tip16);
    assert!(reader.block_by_root(&fork_root).unwrap().is_some());
    assert_ne!(
        reader.block_root_at_slot(9).unwrap(),
        Some(fork_root),
        "the canonical index keeps the head chain's block"
    );

    // The rest of the chain finalizes past slot 9: the fork block is pruned.
    let (_, r) = import_via(&handle, &rest);
    r.expect("rest");
    assert_eq!(handle.head().head.root, summary.head_root);
    assert!(handle.head().finalized.epoch >= 2);
    assert!(
        reader.block_by_root(&fork_root).unwrap().is_none(),
        "non-canonical block below finalization pruned"
    );
    drop((handle, reader));
    service.shutdown();
    db_verify_clean(&data);
}

/// Import a folder of block files through the chain service, as `quasar import` does.
pub fn import_via(
    handle: &quasar::chain::service::ChainHandle,
    dir: &Path,
) -> (
    quasar::chain::pipeline::ImportReport,
    Result<(), quasar::chain::pipeline::ImportError>,
) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    quasar::chain::files::import_dir(handle, dir, &ImportOptions::default(), &stop, &mut |_| {})
}

/// Every `sanity/blocks` case of the reference vectors imported through the pipeline,
/// anchored at its pre state: valid chains reach the post state's root, invalid ones are
/// refused. Their blocks carry every operation the devnet does not make (exits, slashings,
/// deposits, execution requests, …), so this holds the importer's caches and shortcuts to
/// the spec on them.
#[test]
fn sanity_blocks_vectors_through_the_importer() {
    use crate::spec_runner::{runner_dir, sorted_subdirs, yaml_u64};
    let dir = runner_dir(Preset::Minimal, "sanity")
        .join("blocks")
        .join("pyspec_tests");
    let cases = sorted_subdirs(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !cases.is_empty(),
        "no sanity/blocks cases under {}",
        dir.display()
    );
    let (mut valid, mut invalid, mut skipped) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        if yaml_u64(case, "meta.yaml", Some("bls_setting")).unwrap() == Some(2) {
            // Signatures not meant to verify: the importer always verifies them.
            skipped.push(name);
            continue;
        }
        let count = yaml_u64(case, "meta.yaml", Some("blocks_count"))
            .unwrap()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let blocks = tmp.path().join("chain");
        std::fs::create_dir_all(&blocks).unwrap();
        for i in 0..count {
            std::fs::copy(
                case.join(format!("blocks_{i}.ssz_snappy")),
                blocks.join(format!("{:04}.ssz_snappy", i + 1)),
            )
            .unwrap();
        }
        let pre = read(&case.join("pre.ssz_snappy"));
        let post = case.join("post.ssz_snappy");
        let opts = ImportOptions {
            preload: false,
            ..ImportOptions::default()
        };
        let service = match ChainService::open(
            &tmp.path().join("data"),
            Some(&pre),
            opts,
            Box::new(CpuAggregator),
        ) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: open: {e}"));
                continue;
            }
        };
        let handle = service.handle();
        let (_, result) = import_via(&handle, &blocks);
        if post.exists() {
            valid += 1;
            let want =
                t::state_root_of(&ty::BeaconState::ssz_decode(&read(&post)).unwrap()).unwrap();
            match result {
                Ok(()) if handle.head().head_state_root == want => {}
                Ok(()) => failures.push(format!("{name}: imported to another state root")),
                Err(e) => failures.push(format!("{name}: refused a valid chain: {e}")),
            }
        } else {
            invalid += 1;
            if result.is_ok() {
                failures.push(format!("{name}: imported an invalid chain"));
            }
        }
    }
    eprintln!(
        "sanity/blocks through the importer: {valid} valid, {invalid} invalid, {} skipped (bls_setting 2: {skipped:?}), {} failed",
        skipped.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(valid > 50, "only {valid} valid cases");
}

/// Opens the chain in `data` (existing datadir) and returns its head and how it built its
/// pubkey table.
fn reopen(data: &Path) -> ([u8; 32], quasar::chain::pubkeys::KeysLoad) {
    let chain = Chain::open(
        data,
        None,
        ChainConfig::minimal(),
        ImportOptions::default(),
        Box::new(CpuAggregator),
    )
    .expect("reopen");
    (chain.head().root, chain.keys_load())
}

/// The stored pubkey chunks of a closed datadir; `put` rewrites one.
fn pubkey_chunks(data: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = quasar::store::Store::open(data.join("db")).unwrap();
    store
        .pubkey_chunks()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn put_chunk(data: &Path, key: &[u8], value: &[u8]) {
    let store = quasar::store::Store::open(data.join("db")).unwrap();
    let mut b = store.batch().with_sync(true);
    b.put_raw(quasar::store::schema::CF_PUBKEYS, key, value)
        .unwrap();
    b.commit().unwrap();
}

#[test]
fn the_pubkey_table_is_stored_loaded_and_a_bad_copy_refused_and_rebuilt() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("chain");
    let summary = generate(&chain_dir, 64, 24);
    let genesis = read(&devnet::genesis_path(&chain_dir));
    let data = dir.path().join("data");
    {
        let mut chain = Chain::open(
            &data,
            Some(&genesis),
            ChainConfig::minimal(),
            ImportOptions::default(),
            Box::new(CpuAggregator),
        )
        .expect("open");
        // A new datadir KeyValidates the registry once, and stores it.
        assert_eq!(chain.keys_load().validated, 64);
        assert_eq!(chain.keys_load().loaded, 0);
        assert_eq!(feed_chain(&mut chain, &chain_dir, 8), 24);
        assert_eq!(chain.head().root, summary.head_root);
    }
    let head = summary.head_root;

    // A restart loads the stored table and validates nothing.
    let (h, load) = reopen(&data);
    assert_eq!(h, head);
    assert_eq!(
        (load.loaded, load.validated, load.refused_chunks),
        (64, 0, 0)
    );

    let chunks = pubkey_chunks(&data);
    assert_eq!(chunks.len(), 1, "64 keys fit one chunk");
    let (key, good) = chunks[0].clone();
    let mut bad_copies: Vec<(&str, Vec<u8>)> = Vec::new();
    // A flipped byte in a point, a truncated chunk, a wrong count.
    let mut flipped = good.clone();
    flipped[12 + 1 + 40] ^= 0x10;
    bad_copies.push(("flipped byte", flipped));
    bad_copies.push(("truncated", good[..good.len() - 50].to_vec()));
    let mut count = good.clone();
    count[8] = 63;
    bad_copies.push(("wrong count", count));
    // A well-formed chunk with a valid checksum whose first point is another key's: not
    // the registry's key, refused by the compression check.
    let mut swapped = good[..good.len() - 32].to_vec();
    let (e0, e1) = (12..12 + 97, 12 + 97..12 + 2 * 97);
    let first: Vec<u8> = swapped[e0.clone()].to_vec();
    let second: Vec<u8> = swapped[e1.clone()].to_vec();
    swapped[e0].copy_from_slice(&second);
    swapped[e1].copy_from_slice(&first);
    let sum = sha2::Sha256::digest(&swapped);
    swapped.extend_from_slice(&sum);
    bad_copies.push(("another key's point", swapped));
    // A valid key marked unusable (checksum recomputed): KeyValidate'd again, refused.
    let mut unusable = good[..good.len() - 32].to_vec();
    unusable[12] = 0;
    let sum = sha2::Sha256::digest(&unusable);
    unusable.extend_from_slice(&sum);
    bad_copies.push(("usable key marked unusable", unusable));

    for (what, bytes) in bad_copies {
        put_chunk(&data, &key, &bytes);
        let (h, load) = reopen(&data);
        assert_eq!(h, head, "{what}");
        assert!(load.refused_chunks >= 1, "{what}: {load:?}");
        assert_eq!((load.loaded, load.validated), (0, 64), "{what}: {load:?}");
        // Rebuilt: the next start loads it again.
        let (h, load) = reopen(&data);
        assert_eq!(h, head, "{what}");
        assert_eq!(
            (load.loaded, load.validated, load.refused_chunks),
            (64, 0, 0),
            "{what}"
        );
    }
}
