//! Gossip message decoding as the node does it on arrival: the topic string parsed, the
//! message data decompressed (raw snappy, the declared length checked against the gossip
//! size limit before any allocation), then the SSZ of the topic's type decoded in both
//! presets.
//!
//! Input: `[selector, bytes…]`: the selector picks the topic; `bytes` is the message data.
//! Checked: no panic; a topic the node builds parses back to its kind; whatever
//! decompresses is within `MAX_PAYLOAD_SIZE` and recompresses to data that
//! decompresses to the same bytes; what decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quasar::net::codec::MAX_PAYLOAD_SIZE;
use quasar::net::gossip::{self, GossipKind};
use quasar::types::ssz_static::roundtrip;
use quasar::types::Preset;

/// Every gossip topic's message type, by `GossipKind` name.
const TOPICS: &[(&str, &str)] = &[
    ("beacon_block", "SignedBeaconBlock"),
    ("beacon_aggregate_and_proof", "SignedAggregateAndProof"),
    ("beacon_attestation_0", "SingleAttestation"),
    ("voluntary_exit", "SignedVoluntaryExit"),
    ("proposer_slashing", "ProposerSlashing"),
    ("attester_slashing", "AttesterSlashing"),
    ("bls_to_execution_change", "SignedBLSToExecutionChange"),
    (
        "sync_committee_contribution_and_proof",
        "SignedContributionAndProof",
    ),
    ("sync_committee_0", "SyncCommitteeMessage"),
    ("data_column_sidecar_0", "DataColumnSidecar"),
];

fuzz_target!(|data: &[u8]| {
    let [selector, bytes @ ..] = data else {
        return;
    };
    let (name, type_name) = TOPICS[*selector as usize % TOPICS.len()];
    let digest = [selector.wrapping_mul(31), 1, 2, 3];
    let topic = format!("/eth2/{}/{name}/ssz_snappy", hex(&digest));
    if let Some((d, kind)) = gossip::parse_topic(&topic) {
        assert_eq!(d, digest);
        assert_eq!(gossip::topic(d, kind).to_string(), topic);
        let _: GossipKind = kind;
    }
    // The message-id is computed for every message, valid snappy or not.
    let message = libp2p::gossipsub::Message {
        source: None,
        data: bytes.to_vec(),
        sequence_number: None,
        topic: libp2p::gossipsub::TopicHash::from_raw(topic.clone()),
    };
    assert_eq!(gossip::message_id(&message).0.len(), 20);
    let Ok(ssz) = gossip::decompress(bytes) else {
        return;
    };
    assert!(ssz.len() <= MAX_PAYLOAD_SIZE);
    let again = gossip::compress(&ssz).expect("recompresses");
    assert_eq!(gossip::decompress(&again).expect("decompresses"), ssz);
    for preset in [Preset::Minimal, Preset::Mainnet] {
        if let Ok(r) = roundtrip(preset, type_name, &ssz) {
            assert_eq!(r.encoded, ssz, "{preset} {type_name}: non-canonical");
        }
    }
});

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
