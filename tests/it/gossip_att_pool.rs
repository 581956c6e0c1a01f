//! Aggregate gossip through the real chain service with real signatures (interop keys, a
//! 1024-validator minimal devnet, so committees have 32 members and the selection proof
//! selects about one validator in two): a stream of valid aggregates with invalid ones
//! mixed in — a bad selection proof, a bad aggregator signature, a bad aggregate
//! signature (all three well-formed G2 points, so only the batch verification and its
//! bisection can tell them apart), a validator the proof does not select, a duplicate —
//! gets exactly the spec's verdict for each message: validated as one batch (one blst
//! verification, bisected), and through the gossip pool; and a pool whose queue
//! overflows drops messages with a counted IGNORE.

use std::path::Path;

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::error::BlockError;
use quasar::chain::gossip_attestation::{selects_aggregator, AttestationError, GossipMessage};
use quasar::chain::pipeline::ImportOptions;
use quasar::chain::service::{AnyState, BlockSource, ChainService, GossipTopic, GossipVerdict};
use quasar::devnet::{self, InteropKeys};
use quasar::pool::gossip::{GossipPool, PoolOptions};
use quasar::transition::minimal as t;
use quasar::transition::{ChainConfig, TransitionCtx};
use quasar::types::minimal as ty;
use quasar::types::ssz::ssz_encode;
use quasar::types::Preset;

use super::service::{generate, read, runtime};

const VALIDATORS: usize = 1024;
const SLOT: u64 = 2;

struct Fixture {
    state: std::sync::Arc<ty::BeaconState>,
    ctx: TransitionCtx,
    keys: InteropKeys,
    data: ty::AttestationData,
}

fn sign(keys: &InteropKeys, signers: &[u64], root: &[u8; 32]) -> ty::BLSSignature {
    let sk = keys.summed_secret_key(signers).unwrap();
    ty::BLSSignature::from(sk.sign(root, quasar::bls::DST, &[]).compress())
}

fn sig_bytes(s: &ty::BLSSignature) -> [u8; 96] {
    s.as_ref().try_into().unwrap()
}

impl Fixture {
    fn committee(&self, index: u64) -> Vec<u64> {
        t::get_beacon_committee(&self.state, SLOT, index, &self.ctx).unwrap()
    }

    fn selection_proof(&self, validator: u64, slot: u64) -> ty::BLSSignature {
        let domain = t::get_domain(&self.state, [5, 0, 0, 0], Some(0)).unwrap();
        sign(
            &self.keys,
            &[validator],
            &t::compute_signing_root(&slot, domain).unwrap(),
        )
    }

    fn selected(&self, validator: u64) -> bool {
        selects_aggregator(&sig_bytes(&self.selection_proof(validator, SLOT)), 32 / 16)
    }

    /// An aggregate of committee `index` by `aggregator` with the committee members at
    /// `positions`; `corrupt` picks one signature to sign over the wrong message.
    fn aggregate(
        &self,
        index: u64,
        aggregator: u64,
        positions: &[usize],
        corrupt: Option<&str>,
    ) -> Vec<u8> {
        let committee = self.committee(index);
        let mut bits = vec![false; committee.len()];
        for &p in positions {
            bits[p] = true;
        }
        let attesters: Vec<u64> = positions.iter().map(|&p| committee[p]).collect();
        let attester_domain =
            t::get_domain(&self.state, t::DOMAIN_BEACON_ATTESTER, Some(0)).unwrap();
        let mut data = self.data.clone();
        if corrupt == Some("aggregate") {
            data.slot = SLOT + 1;
        }
        let signature = sign(
            &self.keys,
            &attesters,
            &t::compute_signing_root(&data, attester_domain).unwrap(),
        );
        let mut committee_bits = ssz_rs::Bitvector::default();
        committee_bits.set(index as usize, true);
        let selection_proof = if corrupt == Some("selection") {
            // A well-formed proof over another slot that still passes `is_aggregator`.
            (100..)
                .map(|s| self.selection_proof(aggregator, s))
                .find(|p| selects_aggregator(&sig_bytes(p), 2))
                .unwrap()
        } else {
            self.selection_proof(aggregator, SLOT)
        };
        let message = ty::AggregateAndProof {
            aggregator_index: aggregator,
            aggregate: ty::Attestation {
                aggregation_bits: ssz_rs::Bitlist::try_from(bits.as_slice()).unwrap(),
                data: self.data.clone(),
                signature,
                committee_bits,
            },
            selection_proof,
        };
        let domain = t::get_domain(&self.state, [6, 0, 0, 0], Some(0)).unwrap();
        let root = t::compute_signing_root(&message, domain).unwrap();
        let signature = if corrupt == Some("aggregator") {
            // The right message under another validator's key.
            sign(&self.keys, &[aggregator + 1], &root)
        } else {
            sign(&self.keys, &[aggregator], &root)
        };
        ssz_encode(&ty::SignedAggregateAndProof { message, signature }).unwrap()
    }
}

fn kind(v: &GossipVerdict) -> String {
    match v {
        GossipVerdict::Accept => "accept".into(),
        GossipVerdict::Ignore(BlockError::Attestation(e)) => format!("ignore {}", short(e)),
        GossipVerdict::Reject(BlockError::Attestation(e)) => format!("reject {}", short(e)),
        other => format!("unexpected {other:?}"),
    }
}

fn short(e: &AttestationError) -> String {
    match e {
        AttestationError::InvalidSignature { set, .. } => format!("invalid {set}"),
        AttestationError::NotAggregator { .. } => "not aggregator".into(),
        AttestationError::AggregateAlreadySeen => "aggregate seen".into(),
        AttestationError::Overloaded => "overloaded".into(),
        e => format!("{e}"),
    }
}

fn setup(dir: &Path) -> (ChainService, Fixture) {
    let chain_dir = dir.join("chain");
    generate(Preset::Minimal, &chain_dir, VALIDATORS, SLOT);
    let genesis = read(&devnet::genesis_path(&chain_dir));
    let service = ChainService::open(
        &dir.join("data"),
        Some(&genesis),
        ImportOptions {
            preload: false,
            ..ImportOptions::default()
        },
        Box::new(CpuAggregator),
    )
    .unwrap();
    let handle = service.handle();
    let blocks = (1..=SLOT)
        .map(|s| read(&devnet::block_path(&chain_dir, s)))
        .collect();
    let outcome = runtime()
        .block_on(handle.import_segment(blocks, BlockSource::File))
        .unwrap();
    assert_eq!(outcome.imported, SLOT as usize, "{:?}", outcome.failed);
    let head = handle.head();
    let AnyState::Minimal(state) = head.state.clone() else {
        panic!("a minimal chain")
    };
    assert_eq!(state.slot, SLOT);
    let data = ty::AttestationData {
        slot: SLOT,
        index: 0,
        beacon_block_root: ty::Root::from(head.head.root),
        source: state.current_justified_checkpoint.clone(),
        target: ty::Checkpoint {
            epoch: 0,
            root: t::get_block_root_at_slot(&state, 0).unwrap(),
        },
    };
    let fixture = Fixture {
        state,
        ctx: TransitionCtx::new(ChainConfig::minimal()),
        keys: InteropKeys::generate(VALIDATORS).unwrap(),
        data,
    };
    (service, fixture)
}

/// The mixed stream and its expected verdicts, in order.
fn stream(f: &Fixture) -> Vec<(Vec<u8>, &'static str)> {
    assert_eq!(t::get_committee_count_per_slot(&f.state, 0), 4);
    let c0 = f.committee(0);
    let c1 = f.committee(1);
    assert_eq!(c0.len(), 32);
    let selected: Vec<u64> = c0.iter().copied().filter(|&v| f.selected(v)).collect();
    let unselected = c0.iter().copied().find(|&v| !f.selected(v)).unwrap();
    assert!(selected.len() >= 4, "{selected:?}");
    let agg1 = c1.iter().copied().find(|&v| f.selected(v)).unwrap();
    let first16: Vec<usize> = (0..16).collect();
    let valid = f.aggregate(0, selected[0], &first16, None);
    vec![
        (
            f.aggregate(0, selected[1], &[16], Some("selection")),
            "reject invalid selection proof",
        ),
        (valid.clone(), "accept"),
        (
            f.aggregate(0, selected[2], &[17], Some("aggregator")),
            "reject invalid aggregator signature",
        ),
        (
            f.aggregate(0, unselected, &[19], None),
            "reject not aggregator",
        ),
        (
            f.aggregate(0, selected[3], &[18], Some("aggregate")),
            "reject invalid aggregate signature",
        ),
        (valid, "ignore aggregate seen"),
        (
            f.aggregate(1, agg1, &(0..32).collect::<Vec<_>>(), None),
            "accept",
        ),
    ]
}

#[test]
fn mixed_aggregates_get_exact_verdicts_in_one_batch_and_through_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (service, f) = setup(dir.path());
    let handle = service.handle();
    let now = handle.slot_start(SLOT).plus_ms(500);
    let items = stream(&f);
    let msgs: Vec<GossipMessage> = items
        .iter()
        .map(|(m, _)| GossipMessage {
            topic: GossipTopic::BeaconAggregateAndProof,
            message: m.clone(),
            now,
        })
        .collect();
    let stats = handle.attestation_gossip().stats();
    let batches_before = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let sets_before = stats.sets.load(std::sync::atomic::Ordering::Relaxed);
    let verdicts = runtime()
        .block_on(handle.validate_gossip_batch(msgs.clone()))
        .unwrap();
    let got: Vec<String> = verdicts.iter().map(kind).collect();
    let want: Vec<&str> = items.iter().map(|(_, w)| *w).collect();
    assert_eq!(got, want);
    // One batch verification for the whole stream, bisected to the three bad sets.
    assert_eq!(
        stats.batches.load(std::sync::atomic::Ordering::Relaxed),
        batches_before + 1
    );
    // Six messages reach the signature checks (the duplicate is seen only once its twin,
    // earlier in the same batch, is accepted), three sets each.
    assert_eq!(
        stats.sets.load(std::sync::atomic::Ordering::Relaxed),
        sets_before + 18
    );

    // The same stream again through a pool of one worker, on a fresh service: the same
    // verdicts (batches may split; the order holds).
    drop(handle);
    service.shutdown();
    let dir2 = tempfile::tempdir().unwrap();
    let (service, f) = setup(dir2.path());
    let handle = service.handle();
    let items = stream(&f);
    let pool = GossipPool::start(
        handle.clone(),
        PoolOptions {
            queue: 64,
            workers: 1,
            max_batch: 4,
        },
    )
    .unwrap();
    let replies: Vec<_> = items
        .iter()
        .map(|(m, _)| {
            pool.submit(GossipMessage {
                topic: GossipTopic::BeaconAggregateAndProof,
                message: m.clone(),
                now,
            })
        })
        .collect();
    let got: Vec<String> = replies
        .into_iter()
        .map(|r| kind(&r.blocking_wait()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        pool.stats()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Overload: a queue of 2 behind one worker; 64 submissions at once. Every one gets a
    // verdict; the dropped ones are IGNOREd as overloaded and counted.
    let pool = GossipPool::start(
        handle.clone(),
        PoolOptions {
            queue: 2,
            workers: 1,
            max_batch: 2,
        },
    )
    .unwrap();
    let garbage = GossipMessage {
        topic: GossipTopic::BeaconAggregateAndProof,
        message: items[1].0.clone(),
        now,
    };
    let replies: Vec<_> = (0..64).map(|_| pool.submit(garbage.clone())).collect();
    let verdicts: Vec<String> = replies
        .into_iter()
        .map(|r| kind(&r.blocking_wait()))
        .collect();
    let overloaded = verdicts
        .iter()
        .filter(|v| *v == "ignore overloaded")
        .count();
    let dropped = pool
        .stats()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert!(overloaded > 0, "{verdicts:?}");
    assert_eq!(overloaded, dropped);
    assert!(pool
        .stats()
        .prometheus()
        .contains(&format!("quasar_pool_gossip_dropped_total {dropped}")));
    // (Already seen by the pool run above: the others are IGNOREd as seen.)
    assert!(
        verdicts
            .iter()
            .all(|v| v == "ignore overloaded" || v == "ignore aggregate seen"),
        "{verdicts:?}"
    );
    drop(pool);
    drop(handle);
    service.shutdown();
}

/// Every selected aggregator of the slot's four committees, each aggregating its
/// committee less one member (a different one each, so no aggregate's bits cover
/// another's): validated as one batch on one service and one message at a time on another.
/// Both accept every one; the times are printed (ratios only, per the design: run with
/// `--nocapture`).
#[test]
fn one_batch_accepts_what_single_validation_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (batched, f) = setup(&dir.path().join("a"));
    let (single, _) = setup(&dir.path().join("b"));
    let mut msgs = Vec::new();
    for index in 0..4 {
        let committee = f.committee(index);
        let selected: Vec<u64> = committee
            .iter()
            .copied()
            .filter(|&v| f.selected(v))
            .collect();
        for (k, &v) in selected.iter().enumerate() {
            let positions: Vec<usize> = (0..committee.len()).filter(|&p| p != k).collect();
            msgs.push(GossipMessage {
                topic: GossipTopic::BeaconAggregateAndProof,
                message: f.aggregate(index, v, &positions, None),
                now: batched.handle().slot_start(SLOT).plus_ms(500),
            });
        }
    }
    let rt = runtime();
    let t0 = std::time::Instant::now();
    let one = rt
        .block_on(batched.handle().validate_gossip_batch(msgs.clone()))
        .unwrap();
    let batch_time = t0.elapsed();
    let t0 = std::time::Instant::now();
    let mut each = Vec::new();
    for m in &msgs {
        each.extend(
            rt.block_on(single.handle().validate_gossip_batch(vec![m.clone()]))
                .unwrap(),
        );
    }
    let single_time = t0.elapsed();
    let a: Vec<String> = one.iter().map(kind).collect();
    let b: Vec<String> = each.iter().map(kind).collect();
    assert_eq!(a, b);
    assert!(msgs.len() >= 16, "{} aggregators", msgs.len());
    assert!(a.iter().all(|v| v == "accept"), "{a:?}");
    println!(
        "{} aggregates (3 sets each): one batch {:?}, one at a time {:?} ({:.2}x)",
        msgs.len(),
        batch_time,
        single_time,
        single_time.as_secs_f64() / batch_time.as_secs_f64()
    );
    batched.shutdown();
    single.shutdown();
}
