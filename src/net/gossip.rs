//! Gossipsub as the eth2 spec configures it (`specs/phase0/p2p-interface.md`, "The gossip
//! domain", and Altair's message-id): the mesh parameters, `StrictNoSign` anonymity, the
//! message-id over the snappy-decompressed data and the topic, the size bounds, and the
//! topic names `/eth2/{fork_digest}/{name}/ssz_snappy`.

use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic, Message, MessageId, ValidationMode};
use sha2::{Digest, Sha256};

use super::NetError;

pub use super::codec::max_compressed_len;
pub use super::messages::MAX_PAYLOAD_SIZE;

/// `MESSAGE_DOMAIN_INVALID_SNAPPY`.
pub const MESSAGE_DOMAIN_INVALID_SNAPPY: [u8; 4] = [0, 0, 0, 0];
/// `MESSAGE_DOMAIN_VALID_SNAPPY`.
pub const MESSAGE_DOMAIN_VALID_SNAPPY: [u8; 4] = [1, 0, 0, 0];

/// `max_message_size()`: the bound on a gossip message's (compressed) data.
pub fn max_message_size() -> usize {
    (max_compressed_len(MAX_PAYLOAD_SIZE) + 1024).max(1024 * 1024)
}

/// The topics the node speaks, by their spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GossipKind {
    BeaconBlock,
    VoluntaryExit,
    ProposerSlashing,
    AttesterSlashing,
    BlsToExecutionChange,
    BeaconAggregateAndProof,
    /// `beacon_attestation_{subnet_id}`, `subnet < ATTESTATION_SUBNET_COUNT`.
    BeaconAttestation {
        subnet: u64,
    },
    SyncCommitteeContributionAndProof,
    /// `sync_committee_{subnet_id}`, `subnet < SYNC_COMMITTEE_SUBNET_COUNT`.
    SyncCommittee {
        subnet: u64,
    },
}

/// The operation topics (`voluntary_exit`, `proposer_slashing`, `attester_slashing`,
/// `bls_to_execution_change`), all subscribed to.
pub const OPERATION_KINDS: [GossipKind; 4] = [
    GossipKind::VoluntaryExit,
    GossipKind::ProposerSlashing,
    GossipKind::AttesterSlashing,
    GossipKind::BlsToExecutionChange,
];

impl GossipKind {
    /// The topic's name without its subnet (`beacon_attestation` for every subnet).
    pub fn name(self) -> &'static str {
        match self {
            GossipKind::BeaconBlock => "beacon_block",
            GossipKind::VoluntaryExit => "voluntary_exit",
            GossipKind::ProposerSlashing => "proposer_slashing",
            GossipKind::AttesterSlashing => "attester_slashing",
            GossipKind::BlsToExecutionChange => "bls_to_execution_change",
            GossipKind::BeaconAggregateAndProof => "beacon_aggregate_and_proof",
            GossipKind::BeaconAttestation { .. } => "beacon_attestation",
            GossipKind::SyncCommitteeContributionAndProof => {
                "sync_committee_contribution_and_proof"
            }
            GossipKind::SyncCommittee { .. } => "sync_committee",
        }
    }

    /// The name in the topic string: [`name`](Self::name), `_{subnet_id}` for a subnet.
    pub fn topic_name(self) -> String {
        match self {
            GossipKind::BeaconAttestation { subnet } | GossipKind::SyncCommittee { subnet } => {
                format!("{}_{subnet}", self.name())
            }
            _ => self.name().to_string(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        if let Some(kind) = Self::subnet_from_name(name) {
            return Some(kind);
        }
        match name {
            "beacon_block" => Some(GossipKind::BeaconBlock),
            "voluntary_exit" => Some(GossipKind::VoluntaryExit),
            "proposer_slashing" => Some(GossipKind::ProposerSlashing),
            "attester_slashing" => Some(GossipKind::AttesterSlashing),
            "bls_to_execution_change" => Some(GossipKind::BlsToExecutionChange),
            "beacon_aggregate_and_proof" => Some(GossipKind::BeaconAggregateAndProof),
            "sync_committee_contribution_and_proof" => {
                Some(GossipKind::SyncCommitteeContributionAndProof)
            }
            _ => None,
        }
    }

    /// The chain's topic of an operation kind (`None` for the others).
    pub fn operation_topic(self) -> Option<crate::chain::service::GossipTopic> {
        use crate::chain::service::GossipTopic;
        Some(match self {
            GossipKind::VoluntaryExit => GossipTopic::VoluntaryExit,
            GossipKind::ProposerSlashing => GossipTopic::ProposerSlashing,
            GossipKind::AttesterSlashing => GossipTopic::AttesterSlashing,
            GossipKind::BlsToExecutionChange => GossipTopic::BlsToExecutionChange,
            _ => return None,
        })
    }
    /// `beacon_attestation_{n}` / `sync_committee_{n}` with `n` a subnet id in range,
    /// written canonically (no sign, no leading zero).
    fn subnet_from_name(name: &str) -> Option<Self> {
        use crate::chain::gossip_attestation::{
            ATTESTATION_SUBNET_COUNT, SYNC_COMMITTEE_SUBNET_COUNT,
        };
        let parse = |digits: &str, count: u64| -> Option<u64> {
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || (digits.len() > 1 && digits.starts_with('0'))
            {
                return None;
            }
            digits.parse::<u64>().ok().filter(|&n| n < count)
        };
        if let Some(d) = name.strip_prefix("beacon_attestation_") {
            return parse(d, ATTESTATION_SUBNET_COUNT)
                .map(|subnet| GossipKind::BeaconAttestation { subnet });
        }
        // (`sync_committee_contribution_and_proof` does not parse as a subnet.)
        if let Some(d) = name.strip_prefix("sync_committee_") {
            return parse(d, SYNC_COMMITTEE_SUBNET_COUNT)
                .map(|subnet| GossipKind::SyncCommittee { subnet });
        }
        None
    }

    /// The chain's topic of a message of this kind.
    pub fn chain_topic(self) -> crate::chain::service::GossipTopic {
        use crate::chain::service::GossipTopic;
        match self {
            GossipKind::BeaconBlock => GossipTopic::BeaconBlock,
            GossipKind::BeaconAggregateAndProof => GossipTopic::BeaconAggregateAndProof,
            GossipKind::BeaconAttestation { subnet } => GossipTopic::BeaconAttestation { subnet },
            GossipKind::SyncCommitteeContributionAndProof => {
                GossipTopic::SyncCommitteeContributionAndProof
            }
            GossipKind::SyncCommittee { subnet } => GossipTopic::SyncCommittee { subnet },
            GossipKind::VoluntaryExit => GossipTopic::VoluntaryExit,
            GossipKind::ProposerSlashing => GossipTopic::ProposerSlashing,
            GossipKind::AttesterSlashing => GossipTopic::AttesterSlashing,
            GossipKind::BlsToExecutionChange => GossipTopic::BlsToExecutionChange,
        }
    }
}

/// The attestation and sync-committee topics the node subscribes to at `epoch`: the
/// aggregate and contribution topics always, the attestation subnets of
/// `compute_subscribed_subnets(node_id, epoch)`. (A node without validators has no sync
/// committee duties: it joins no `sync_committee_{subnet_id}` subnet.)
pub fn attestation_subscriptions(
    preset: crate::types::Preset,
    node_id: &[u8; 32],
    epoch: u64,
) -> Vec<GossipKind> {
    let mut kinds = vec![
        GossipKind::BeaconAggregateAndProof,
        GossipKind::SyncCommitteeContributionAndProof,
    ];
    kinds.extend(
        crate::chain::gossip_attestation::compute_subscribed_subnets(preset, node_id, epoch)
            .into_iter()
            .map(|subnet| GossipKind::BeaconAttestation { subnet }),
    );
    kinds
}

/// The discv5 `NodeID` of a secp256k1 key, `keccak256(x ++ y)` of its uncompressed point,
/// as the uint256's 32 little-endian bytes (`None` for another key type).
pub fn node_id_of(key: &libp2p::identity::PublicKey) -> Option<[u8; 32]> {
    use sha3::Digest as _;
    let pk = key.clone().try_into_secp256k1().ok()?;
    let uncompressed = pk.to_bytes_uncompressed();
    let digest = sha3::Keccak256::digest(&uncompressed[1..]);
    let mut le = [0u8; 32];
    for (i, b) in digest.iter().enumerate() {
        le[31 - i] = *b;
    }
    Some(le)
}

/// The node id of a peer id that embeds its secp256k1 key (eth2 peer ids do).
pub fn node_id_of_peer(peer: &libp2p::PeerId) -> Option<[u8; 32]> {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    node_id_of(&key)
}

/// `/eth2/{fork_digest as lowercase hex}/{name}/ssz_snappy`.
pub fn topic(fork_digest: [u8; 4], kind: GossipKind) -> IdentTopic {
    IdentTopic::new(format!(
        "/eth2/{}/{}/ssz_snappy",
        hex(&fork_digest),
        kind.topic_name()
    ))
}

/// The fork digest and kind of a topic string; `None` for a topic the node does not know
/// (whose messages the spec says to reject).
pub fn parse_topic(topic: &str) -> Option<([u8; 4], GossipKind)> {
    let rest = topic.strip_prefix("/eth2/")?;
    let mut parts = rest.split('/');
    let digest = parts.next()?;
    let name = parts.next()?;
    if parts.next()? != "ssz_snappy" || parts.next().is_some() || digest.len() != 8 {
        return None;
    }
    let mut d = [0u8; 4];
    for (i, out) in d.iter_mut().enumerate() {
        *out = u8::from_str_radix(digest.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((d, GossipKind::from_name(name)?))
}

/// Snappy-decompress gossip data (the block format, not framed), the declared length
/// checked against `MAX_PAYLOAD_SIZE` and the compressed size against
/// `max_compressed_len` before anything is allocated.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, NetError> {
    let len = snap::raw::decompress_len(data).map_err(|e| NetError::Gossip(e.to_string()))?;
    if len > MAX_PAYLOAD_SIZE {
        return Err(NetError::Gossip(format!(
            "declares {len} bytes, over MAX_PAYLOAD_SIZE"
        )));
    }
    if data.len() > max_compressed_len(len) {
        return Err(NetError::Gossip(format!(
            "{} compressed bytes for {len}, over max_compressed_len",
            data.len()
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| NetError::Gossip(e.to_string()))
}

/// Snappy-compress gossip data (block format).
pub fn compress(ssz: &[u8]) -> Result<Vec<u8>, NetError> {
    snap::raw::Encoder::new()
        .compress_vec(ssz)
        .map_err(|e| NetError::Gossip(e.to_string()))
}

/// The spec's message-id (Altair and later): the first 20 bytes of
/// `SHA256(domain ++ uint64_le(len(topic)) ++ topic ++ data)`, over the decompressed data
/// with the valid-snappy domain when the data decompresses, else over the raw data with
/// the invalid-snappy domain.
pub fn message_id(message: &Message) -> MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut h = Sha256::new();
    match decompress(&message.data) {
        Ok(plain) => {
            h.update(MESSAGE_DOMAIN_VALID_SNAPPY);
            h.update((topic.len() as u64).to_le_bytes());
            h.update(topic);
            h.update(&plain);
        }
        Err(_) => {
            h.update(MESSAGE_DOMAIN_INVALID_SNAPPY);
            h.update((topic.len() as u64).to_le_bytes());
            h.update(topic);
            h.update(&message.data);
        }
    }
    MessageId::new(&h.finalize()[..20])
}

/// The gossipsub config of the spec: D 8, D_low 6, D_high 12, D_lazy 6, heartbeat 0.7 s,
/// fanout_ttl 60 s, mcache_len 6, mcache_gossip 3, seen_ttl two epochs, messages
/// validated by the application before they are forwarded, anonymous (no `from`,
/// `seqno`, signature or key), at most `max_message_size()` bytes.
pub fn config(
    slot_duration: Duration,
    slots_per_epoch: u64,
) -> Result<gossipsub::Config, NetError> {
    gossipsub::ConfigBuilder::default()
        .mesh_n(8)
        .mesh_n_low(6)
        .mesh_n_high(12)
        .gossip_lazy(6)
        .heartbeat_interval(Duration::from_millis(700))
        .fanout_ttl(Duration::from_secs(60))
        .history_length(6)
        .history_gossip(3)
        .duplicate_cache_time(slot_duration * (slots_per_epoch as u32) * 2)
        .max_transmit_size(max_message_size())
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(message_id)
        .build()
        .map_err(|e| NetError::Gossip(format!("gossipsub config: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_strangers_are_refused() {
        let t = topic([0xde, 0xad, 0xbe, 0xef], GossipKind::BeaconBlock);
        assert_eq!(t.to_string(), "/eth2/deadbeef/beacon_block/ssz_snappy");
        assert_eq!(
            parse_topic(&t.to_string()),
            Some(([0xde, 0xad, 0xbe, 0xef], GossipKind::BeaconBlock))
        );
        for bad in [
            "/eth2/deadbeef/beacon_block/ssz",
            "/eth2/deadbee/beacon_block/ssz_snappy",
            "/eth2/deadbeef/unknown/ssz_snappy",
            "/eth2/deadbeef/beacon_block/ssz_snappy/x",
            "/eth2/zzzzzzzz/beacon_block/ssz_snappy",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }

    #[test]
    fn operation_topics_have_the_spec_names() {
        for (kind, name) in OPERATION_KINDS.iter().zip([
            "voluntary_exit",
            "proposer_slashing",
            "attester_slashing",
            "bls_to_execution_change",
        ]) {
            let t = topic([1, 2, 3, 4], *kind).to_string();
            assert_eq!(t, format!("/eth2/01020304/{name}/ssz_snappy"));
            assert_eq!(parse_topic(&t), Some(([1, 2, 3, 4], *kind)));
            assert!(kind.operation_topic().is_some());
        }
        assert_eq!(GossipKind::BeaconBlock.operation_topic(), None);
    }

    #[test]
    fn attestation_topics_round_trip() {
        let d = [1, 2, 3, 4];
        for kind in [
            GossipKind::BeaconAggregateAndProof,
            GossipKind::BeaconAttestation { subnet: 0 },
            GossipKind::BeaconAttestation { subnet: 63 },
            GossipKind::SyncCommitteeContributionAndProof,
            GossipKind::SyncCommittee { subnet: 3 },
        ] {
            let t = topic(d, kind).to_string();
            assert_eq!(parse_topic(&t), Some((d, kind)), "{t}");
        }
        assert_eq!(
            topic(d, GossipKind::BeaconAttestation { subnet: 7 }).to_string(),
            "/eth2/01020304/beacon_attestation_7/ssz_snappy"
        );
        for bad in [
            "beacon_attestation_64",
            "beacon_attestation_07",
            "beacon_attestation_",
            "beacon_attestation_+1",
            "sync_committee_4",
            "beacon_attestation",
            "sync_committee",
        ] {
            assert_eq!(GossipKind::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn node_ids_are_keccak_of_the_uncompressed_key() {
        use sha3::Digest as _;
        // keccak256("") (the Keccak, not SHA3, padding).
        assert_eq!(
            hex(&sha3::Keccak256::digest(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        let kp = libp2p::identity::Keypair::generate_secp256k1();
        let id = node_id_of(&kp.public()).unwrap();
        assert_eq!(node_id_of_peer(&kp.public().to_peer_id()), Some(id));
        let subs = attestation_subscriptions(crate::types::Preset::Minimal, &id, 0);
        assert_eq!(subs.len(), 4);
        assert!(subs.contains(&GossipKind::BeaconAggregateAndProof));
    }

    #[test]
    fn message_ids_follow_the_spec() {
        let topic = "/eth2/01020304/beacon_block/ssz_snappy";
        let plain = b"hello eth2".to_vec();
        let msg = |data: Vec<u8>| Message {
            source: None,
            data,
            sequence_number: None,
            topic: gossipsub::TopicHash::from_raw(topic),
        };
        // Independently: SHA256(0x01000000 ++ len(topic) LE ++ topic ++ plain)[:20].
        let mut want = Sha256::new();
        want.update([1, 0, 0, 0]);
        want.update((topic.len() as u64).to_le_bytes());
        want.update(topic.as_bytes());
        want.update(&plain);
        let id = message_id(&msg(compress(&plain).unwrap()));
        assert_eq!(id.0, want.finalize()[..20].to_vec());
        // Invalid snappy: the raw data with the invalid domain.
        let raw = vec![0xff, 0xff, 0xff];
        let mut want = Sha256::new();
        want.update([0, 0, 0, 0]);
        want.update((topic.len() as u64).to_le_bytes());
        want.update(topic.as_bytes());
        want.update(&raw);
        assert_eq!(message_id(&msg(raw)).0, want.finalize()[..20].to_vec());
    }

    #[test]
    fn oversized_declarations_are_refused_before_allocating() {
        // A header declaring 2^31 bytes.
        assert!(decompress(&[0x80, 0x80, 0x80, 0x80, 0x08, 0x00]).is_err());
        let big = compress(&vec![0u8; 1000]).unwrap();
        assert_eq!(decompress(&big).unwrap(), vec![0u8; 1000]);
    }
}
