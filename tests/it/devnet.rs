//! `quasar devnet`: the interop keys match the reference, and a generated chain (minimal
//! preset) passes the node's own verifier — every block applied with its signature sets
//! batch-verified and its state root checked — and justifies and finalizes with full
//! participation; a block with a broken signature is refused.

use std::path::Path;

use quasar::accel::aggregate::CpuAggregator;
use quasar::chain::minimal::transition_bytes;
use quasar::chain::SegmentError;
use quasar::devnet::{self, DevnetOptions, DevnetSummary, SigningMode};
use quasar::transition::ChainConfig;
use quasar::types::minimal as ty;
use quasar::types::ssz::{ssz_encode, SszDecode};
use quasar::types::ssz_static::{decompress_snappy, MAX_DECOMPRESSED_LEN};
use quasar::types::Preset;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decompress_snappy(&raw, MAX_DECOMPRESSED_LEN).expect("snappy")
}

fn generate(dir: &Path, validators: usize, slots: u64) -> DevnetSummary {
    generate_with(dir, validators, slots, SigningMode::Each)
}

fn generate_with(dir: &Path, validators: usize, slots: u64, signing: SigningMode) -> DevnetSummary {
    let opts = DevnetOptions {
        validators,
        slots,
        genesis_time: devnet::DEFAULT_GENESIS_TIME,
        signing,
    };
    devnet::run(Preset::Minimal, &opts, dir, &mut |_| {}).expect("devnet generates")
}

/// The genesis state and the blocks, as plain SSZ, in slot order.
fn load(dir: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let genesis = read(&devnet::genesis_path(dir));
    let listed = devnet::list_blocks(dir).expect("blocks folder");
    for (i, (slot, _)) in listed.iter().enumerate() {
        assert_eq!(*slot, i as u64 + 1, "a block every slot from 1");
    }
    let blocks = listed.iter().map(|(_, p)| read(p)).collect();
    (genesis, blocks)
}

#[test]
fn interop_keys_match_the_reference() {
    // eth2.0-pm interop keygen (the same keys Lighthouse, Prysm and Teku use).
    let cases = [
        (
            0,
            "25295f0d1d592a90b333e26e85149708208e9f8e8bc18f6c77bd62f8ad7a6866",
            "a99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c",
        ),
        (
            1,
            "51d0b65185db6989ab0b560d6deed19c7ead0e24b9b6372cbecb1f26bdfad000",
            "b89bebc699769726a318c8e9971bd3171297c61aea4a6578a7a4f94b547dcba5bac16a89108b6b6a1fe3695d1a874a0b",
        ),
    ];
    let keys = devnet::InteropKeys::generate(2).unwrap();
    for (i, sk, pk) in cases {
        assert_eq!(hex(&devnet::interop_secret_bytes(i)), sk, "secret key {i}");
        assert_eq!(hex(&keys.pubkeys[i as usize]), pk, "pubkey {i}");
    }
}

/// From 2^15 keys on the generator uses its 12-bit comb: every pubkey of a sample
/// across the range is blst's own `sk_to_pk` of the interop secret.
#[test]
fn interop_pubkeys_at_scale_are_sk_to_pk() {
    let n = 1usize << 15;
    let keys = devnet::InteropKeys::generate(n).unwrap();
    assert_eq!(keys.len(), n);
    let sample = (0..n).step_by(509).chain([1, n - 2, n - 1]);
    for i in sample {
        let sk = devnet::interop_secret_key(i as u64).unwrap();
        let want = sk.sk_to_pk().compress();
        assert_eq!(keys.pubkeys[i], want, "pubkey {i}");
        assert_eq!(keys.public[i].compress(), want, "public {i}");
        assert_eq!(keys.secret[i].to_bytes(), sk.to_bytes(), "secret {i}");
    }
}

#[test]
fn devnet_chain_verifies_justifies_and_finalizes() {
    let dir = tempfile::tempdir().unwrap();
    // Four epochs and one slot: epoch 3 justified, epoch 2 finalized at the boundary.
    let slots = 4 * 8 + 1;
    let summary = generate(dir.path(), 64, slots);
    assert_eq!(summary.head_slot, slots);
    let (genesis, blocks) = load(dir.path());
    assert_eq!(blocks.len() as u64, slots);

    let cfg = ChainConfig::minimal();
    let post = transition_bytes(&genesis, &blocks, None, &cfg, &CpuAggregator)
        .unwrap_or_else(|e| panic!("the verifier refuses the devnet: {e}"));
    assert_eq!(
        post.root, summary.state_root,
        "same post state as the generator"
    );
    let state = ty::BeaconState::ssz_decode(&post.ssz).unwrap();
    assert_eq!(state.slot, slots);
    assert_eq!(state.current_justified_checkpoint.epoch, 3);
    assert_eq!(state.previous_justified_checkpoint.epoch, 2);
    assert_eq!(state.finalized_checkpoint.epoch, 2);
    assert_eq!(summary.current_justified_epoch, 3);
    assert_eq!(summary.finalized_epoch, 2);
    // Every validator hit source, target and head in the last full epoch.
    assert!(state
        .previous_epoch_participation
        .iter()
        .all(|&f| f == 0b111));
    // Each block carries one attestation spanning all the committees of its parent's slot.
    for b in &blocks {
        let block = ty::SignedBeaconBlock::ssz_decode(b).unwrap();
        let body = &block.message.body;
        assert_eq!(body.attestations.len(), 1);
        assert_eq!(body.attestations[0].aggregation_bits.len(), 64 / 8);
        assert!(body.sync_aggregate.sync_committee_bits.iter().all(|b| *b));
    }
}

#[test]
fn devnet_block_with_a_bad_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 64, 4);
    let (genesis, blocks) = load(dir.path());
    let cfg = ChainConfig::minimal();
    transition_bytes(&genesis, &blocks, None, &cfg, &CpuAggregator).expect("the good chain");

    let mut block = ty::SignedBeaconBlock::ssz_decode(&blocks[2]).unwrap();
    let good = block.signature;

    // A flipped byte: no longer a signature at all.
    let mut sig = *good.as_bytes();
    sig[40] ^= 0x01;
    block.signature = ty::BLSSignature::from(sig);
    let mut bad = blocks.clone();
    bad[2] = ssz_encode(&block).unwrap();
    match transition_bytes(&genesis, &bad, None, &cfg, &CpuAggregator) {
        Err(SegmentError::Block { index: 2, .. } | SegmentError::Signature { index: 2, .. }) => {}
        other => panic!("flipped signature byte: {:?}", other.map(|p| p.root)),
    }

    // A valid point over another message (the randao reveal): found by the batch.
    block.signature = block.message.body.randao_reveal;
    bad[2] = ssz_encode(&block).unwrap();
    match transition_bytes(&genesis, &bad, None, &cfg, &CpuAggregator) {
        Err(SegmentError::Signature { index: 2, what, .. }) => {
            assert_eq!(what, "block signature")
        }
        other => panic!("wrong signature: {:?}", other.map(|p| p.root)),
    }

    // The blocks before the bad one still apply.
    transition_bytes(&genesis, &bad[..2], None, &cfg, &CpuAggregator).expect("good prefix");
}

#[test]
fn summed_keys_sign_the_same_chain() {
    let each = tempfile::tempdir().unwrap();
    let summed = tempfile::tempdir().unwrap();
    let a = generate_with(each.path(), 64, 10, SigningMode::Each);
    let b = generate_with(summed.path(), 64, 10, SigningMode::Summed);
    assert_eq!(a.head_root, b.head_root);
    assert_eq!(
        load(each.path()),
        load(summed.path()),
        "byte-identical files"
    );
}
