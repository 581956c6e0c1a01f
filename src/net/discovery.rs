//! Peer discovery on discv5 (`specs/phase0/p2p-interface.md`, "The discovery domain").
//!
//! ```text
//!  discovery task ── lookups (FINDNODE, random targets) ──▶ discv5 service (its own tasks)
//!       │  filter: same `eth2` fork digest, a TCP or QUIC address, a secp256k1 key
//!       └── Found (bounded channel) ──▶ swarm task: dial while peers < target
//!  swarm task ── connected peer count (watch) ──▶ discovery task (lookup pace)
//!  swarm task ── listen ports ──▶ LocalEnr (the ENR's `tcp` / `quic`, re-signed)
//! ```
//!
//! The ENR is signed with the node's secp256k1 key (the same key as the libp2p peer id,
//! so the ENR's node id and the peer id name one key). It carries `ip`/`ip6`, `tcp`,
//! `udp`, `quic`, `eth2` (SSZ `ENRForkID`), `attnets` (SSZ `Bitvector[64]`), `syncnets`
//! (SSZ `Bitvector[4]`) and, once Fulu is scheduled, `cgc` (custody group count, big-endian
//! with no leading zero bytes) and `nfd` (the next fork digest). The fork entries follow
//! the wall-clock epoch, as the spec says, and are re-signed (one sequence-number bump) at
//! each fork boundary. The ENR is kept in `DATADIR/network/enr` so its sequence number only
//! grows across restarts.
//!
//! The discovery task ends when the swarm task drops its end of the channel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use discv5::{ConfigBuilder, Discv5, ListenConfig};
use enr::{CombinedKey, EnrPublicKey};
use libp2p::multiaddr::Protocol as MaProtocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

pub use discv5::Enr;

use super::fork_digest::{ENRForkID, ForkDigests, ForkName};
use super::messages::{Attnets, Syncnets};
use super::NetError;
use crate::types::primitives::Epoch;
use crate::types::ssz::{ssz_encode, SszDecode};

/// File under the datadir holding the last ENR (text), so the sequence number survives a
/// restart.
pub const ENR_FILE: &str = "network/enr";

/// The ENR key of the libp2p QUIC port (IPv4), and of IPv6.
pub const QUIC_ENR_KEY: &str = "quic";
pub const QUIC6_ENR_KEY: &str = "quic6";
pub const ETH2_ENR_KEY: &str = "eth2";
pub const ATTNETS_ENR_KEY: &str = "attnets";
pub const SYNCNETS_ENR_KEY: &str = "syncnets";
pub const CGC_ENR_KEY: &str = "cgc";
pub const NFD_ENR_KEY: &str = "nfd";

/// Found peers waiting for the swarm task, at most.
const FOUND_QUEUE: usize = 64;
/// A peer handed to the swarm is not handed again for this long.
const REHAND_AFTER: Duration = Duration::from_secs(30);
/// Peers remembered as recently handed, at most.
const RECENT_CAP: usize = 1024;

/// How discovery runs.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// The discv5 UDP port (0: any free port).
    pub udp_port: u16,
    /// ENRs to start from (they enter the table and, when relevant, are dialled).
    pub boot_enrs: Vec<Enr>,
    /// The IP the ENR announces. `None`: the listen address, unless it is unspecified
    /// (then discv5 sets it once enough peers agree on what they see).
    pub enr_address: Option<IpAddr>,
    /// Whether nodes at loopback, private, link-local or other non-global addresses enter
    /// the routing table and are dialled (local devnets, tests).
    pub allow_private: bool,
    /// Pause between lookups while the node has fewer peers than its target.
    pub lookup_interval: Duration,
    /// Pause between lookups at or above the target.
    pub idle_lookup_interval: Duration,
}

impl DiscoveryConfig {
    /// Discovery on `udp_port`, global addresses only, a lookup every 5 s below target and
    /// every minute at target.
    pub fn new(udp_port: u16) -> Self {
        DiscoveryConfig {
            udp_port,
            boot_enrs: Vec::new(),
            enr_address: None,
            allow_private: false,
            lookup_interval: Duration::from_secs(5),
            idle_lookup_interval: Duration::from_secs(60),
        }
    }

    /// Tests on 127.0.0.1: any free UDP port, loopback allowed, a lookup every second.
    pub fn local(boot_enrs: Vec<Enr>) -> Self {
        DiscoveryConfig {
            boot_enrs,
            allow_private: true,
            lookup_interval: Duration::from_secs(1),
            ..DiscoveryConfig::new(0)
        }
    }
}

/// The wall clock in epochs of one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkClock {
    pub genesis_time: u64,
    pub slot_duration_ms: u64,
    pub slots_per_epoch: u64,
}

impl ForkClock {
    fn epoch_ms(&self) -> u64 {
        self.slot_duration_ms
            .max(1)
            .saturating_mul(self.slots_per_epoch.max(1))
    }

    /// The epoch at Unix time `unix_ms` (before genesis: `GENESIS_EPOCH`).
    pub fn epoch_at(&self, unix_ms: u64) -> Epoch {
        unix_ms.saturating_sub(self.genesis_time.saturating_mul(1000)) / self.epoch_ms()
    }

    /// The node's current epoch by the wall clock.
    pub fn current_epoch(&self) -> Epoch {
        self.epoch_at(unix_ms_now())
    }

    /// Unix time (ms) at which `epoch` starts.
    pub fn epoch_start_ms(&self, epoch: Epoch) -> u64 {
        self.genesis_time
            .saturating_mul(1000)
            .saturating_add(epoch.saturating_mul(self.epoch_ms()))
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

/// The eth2 entries of an ENR as `(key, value)`: each value is an RLP byte string.
/// `cgc` and `nfd` only when Fulu is scheduled.
pub fn eth2_entries(
    digests: &ForkDigests,
    epoch: Epoch,
    custody_group_count: u64,
) -> Vec<(&'static str, Vec<u8>)> {
    let fork_id = digests.enr_fork_id(epoch);
    // Fixed-size containers of byte vectors, integers and bits always encode.
    let mut out = vec![
        (ETH2_ENR_KEY, ssz_encode(&fork_id).unwrap_or_default()),
        (
            ATTNETS_ENR_KEY,
            ssz_encode(&Attnets::default()).unwrap_or_default(),
        ),
        (
            SYNCNETS_ENR_KEY,
            ssz_encode(&Syncnets::default()).unwrap_or_default(),
        ),
    ];
    if fulu_scheduled(digests) {
        out.push((CGC_ENR_KEY, be_minimal(custody_group_count)));
        out.push((NFD_ENR_KEY, digests.next_fork_digest(epoch).to_vec()));
    }
    out
}

fn fulu_scheduled(digests: &ForkDigests) -> bool {
    digests.entries().iter().any(|e| e.fork >= ForkName::Fulu)
}

/// A `uint64` big-endian with no leading zero bytes (0: the empty string).
fn be_minimal(v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(8);
    b[first..].to_vec()
}

/// Why a peer's ENR entry does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrFieldError {
    #[error("ENR entry {key}: {why}")]
    Bad { key: &'static str, why: String },
}

/// The eth2 entries of an ENR, decoded; an absent entry is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Eth2Enr {
    pub fork_id: Option<ENRForkID>,
    pub attnets: Option<Attnets>,
    pub syncnets: Option<Syncnets>,
    pub custody_group_count: Option<u64>,
    pub next_fork_digest: Option<[u8; 4]>,
}

fn bytes_entry(enr: &Enr, key: &'static str) -> Result<Option<Vec<u8>>, EnrFieldError> {
    match enr.get_decodable::<alloy_rlp::Bytes>(key) {
        None => Ok(None),
        Some(Ok(b)) => Ok(Some(b.to_vec())),
        Some(Err(e)) => Err(EnrFieldError::Bad {
            key,
            why: e.to_string(),
        }),
    }
}

fn ssz_entry<T: SszDecode>(enr: &Enr, key: &'static str) -> Result<Option<T>, EnrFieldError> {
    bytes_entry(enr, key)?
        .map(|b| {
            T::ssz_decode(&b).map_err(|e| EnrFieldError::Bad {
                key,
                why: e.to_string(),
            })
        })
        .transpose()
}

/// Decodes the eth2 entries of `enr` (ours or a peer's); a present entry that does not
/// decode is an error.
pub fn decode_eth2(enr: &Enr) -> Result<Eth2Enr, EnrFieldError> {
    let custody_group_count = match enr.get_decodable::<u64>(CGC_ENR_KEY) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            return Err(EnrFieldError::Bad {
                key: CGC_ENR_KEY,
                why: e.to_string(),
            })
        }
    };
    let next_fork_digest = bytes_entry(enr, NFD_ENR_KEY)?
        .map(|b| {
            <[u8; 4]>::try_from(b.as_slice()).map_err(|_| EnrFieldError::Bad {
                key: NFD_ENR_KEY,
                why: format!("{} bytes, expected 4", b.len()),
            })
        })
        .transpose()?;
    Ok(Eth2Enr {
        fork_id: ssz_entry(enr, ETH2_ENR_KEY)?,
        attnets: ssz_entry(enr, ATTNETS_ENR_KEY)?,
        syncnets: ssz_entry(enr, SYNCNETS_ENR_KEY)?,
        custody_group_count,
        next_fork_digest,
    })
}

/// The libp2p peer id of an ENR's key (secp256k1 only, as eth2 requires).
pub fn peer_id_of(enr: &Enr) -> Option<PeerId> {
    let key = enr.public_key();
    if !matches!(key, enr::CombinedPublicKey::Secp256k1(_)) {
        return None;
    }
    let pk = libp2p::identity::secp256k1::PublicKey::try_from_bytes(&key.encode()).ok()?;
    Some(libp2p::identity::PublicKey::from(pk).to_peer_id())
}

/// The custody `NodeId` of an ENR (its discv5 node id as a uint256).
pub fn custody_node_id(enr: &Enr) -> super::custody::NodeId {
    super::custody::NodeId::from_be_bytes(enr.node_id().raw())
}

/// The libp2p addresses of an ENR: QUIC first (the primary transport) when `quic`, then
/// TCP; IPv4 and IPv6; each ending in `/p2p/<peer id>`.
pub fn multiaddrs_of(enr: &Enr, peer: PeerId, quic: bool) -> Vec<Multiaddr> {
    let mut out = Vec::new();
    let quic4 = enr.get_decodable::<u16>(QUIC_ENR_KEY).and_then(Result::ok);
    let quic6 = enr.get_decodable::<u16>(QUIC6_ENR_KEY).and_then(Result::ok);
    let v4 = enr.ip4().map(|ip| (MaProtocol::Ip4(ip), enr.tcp4(), quic4));
    let v6 = enr.ip6().map(|ip| (MaProtocol::Ip6(ip), enr.tcp6(), quic6));
    for (ip, tcp, q) in [v4, v6].into_iter().flatten() {
        if let (true, Some(port)) = (quic, q.filter(|&p| p != 0)) {
            out.push(
                Multiaddr::empty()
                    .with(ip.clone())
                    .with(MaProtocol::Udp(port))
                    .with(MaProtocol::QuicV1)
                    .with(MaProtocol::P2p(peer)),
            );
        }
        if let Some(port) = tcp.filter(|&p| p != 0) {
            out.push(
                Multiaddr::empty()
                    .with(ip)
                    .with(MaProtocol::Tcp(port))
                    .with(MaProtocol::P2p(peer)),
            );
        }
    }
    out
}

/// Whether `ip` is reachable on the public internet (not loopback, private, shared,
/// link-local, documentation, benchmarking, reserved, broadcast or unspecified).
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_global_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => is_global_v4(v4),
            None => is_global_v6(a),
        },
    }
}

fn is_global_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, shared
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, protocol assignments
        || o[0] >= 240) // reserved
}

fn is_global_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_unspecified()
        || a.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
}

fn enr_ips(enr: &Enr) -> impl Iterator<Item = IpAddr> {
    enr.ip4()
        .map(IpAddr::V4)
        .into_iter()
        .chain(enr.ip6().map(IpAddr::V6))
}

/// The routing-table filter for public networks: an ENR with a global address.
fn table_filter_global(enr: &Enr) -> bool {
    enr_ips(enr).any(is_global)
}

/// Why a found ENR is not handed to the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `eth2` entry, or another fork digest.
    ForkDigest,
    /// No TCP (or usable QUIC) address, or only non-global ones on a public node.
    Unreachable,
    /// Not a secp256k1 key, or an entry that does not decode.
    Malformed,
    /// Our own record.
    Ourselves,
}

/// A relevant peer found by discovery, for the swarm task to dial.
#[derive(Debug, Clone)]
pub struct Found {
    pub peer_id: PeerId,
    pub addresses: Vec<Multiaddr>,
    pub enr: Enr,
}

/// Counts of what discovery did (since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Lookups finished.
    pub lookups: u64,
    /// ENRs the lookups returned (a peer once per lookup).
    pub found: u64,
    /// Handed to the swarm task to dial.
    pub handed: u64,
    /// Refused for another (or no) fork digest.
    pub wrong_fork: u64,
    /// Refused as unreachable (no TCP or QUIC address we may dial).
    pub unreachable: u64,
    /// Refused as malformed.
    pub malformed: u64,
}

/// The node's own ENR: shared with discv5 (which updates its socket from PONG votes) and
/// re-signed here for port and fork updates.
pub struct LocalEnr {
    enr: Arc<parking_lot::RwLock<Enr>>,
    key: CombinedKey,
    path: PathBuf,
}

impl LocalEnr {
    pub fn get(&self) -> Enr {
        self.enr.read().clone()
    }

    /// Sets `entries` (RLP byte strings; ports as RLP integers) in one re-signing, if any
    /// differs from what the ENR holds. Returns whether the ENR changed.
    fn set(&self, entries: &[(&str, Vec<u8>)]) -> bool {
        let mut enr = self.enr.write();
        let changed = entries.iter().any(|(k, v)| {
            enr.get_decodable::<alloy_rlp::Bytes>(k)
                .and_then(Result::ok)
                .as_deref()
                != Some(v.as_slice())
        });
        if !changed {
            return false;
        }
        let kv = entries.iter().map(|(k, v)| (*k, v.as_slice()));
        match enr.remove_insert(std::iter::empty::<&[u8]>(), kv, &self.key) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(%e, "ENR update refused");
                false
            }
        }
    }

    /// A listen address the swarm bound: puts its TCP or QUIC port in the ENR.
    pub fn on_listen(&self, address: &Multiaddr) {
        let mut v6 = false;
        let mut tcp = None;
        let mut quic = None;
        let mut udp = None;
        for p in address.iter() {
            match p {
                MaProtocol::Ip6(_) => v6 = true,
                MaProtocol::Tcp(port) => tcp = Some(port),
                MaProtocol::Udp(port) => udp = Some(port),
                MaProtocol::QuicV1 => quic = udp,
                _ => {}
            }
        }
        let (key, port) = match (tcp, quic) {
            (Some(p), _) => (if v6 { "tcp6" } else { "tcp" }, p),
            (None, Some(p)) => (if v6 { QUIC6_ENR_KEY } else { QUIC_ENR_KEY }, p),
            _ => return,
        };
        if port != 0 && self.set(&[(key, be_minimal(u64::from(port)))]) {
            self.persist();
            tracing::info!(enr = %self.get().to_base64(), "ENR updated: {key} {port}");
        }
    }

    fn persist(&self) {
        let text = self.get().to_base64();
        let tmp = self.path.with_extension("tmp");
        if let Err(e) =
            std::fs::write(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, &self.path))
        {
            tracing::warn!(path = %self.path.display(), %e, "ENR not saved");
        }
    }
}

/// The swarm task's end of discovery: found peers in, the peer count out.
pub struct SwarmLink {
    found: mpsc::Receiver<Found>,
    peers: watch::Sender<usize>,
    pub local: Arc<LocalEnr>,
    /// Dial found peers only while connected peers are fewer.
    pub target_peers: usize,
    /// Whether QUIC addresses are dialled.
    pub quic: bool,
}

impl SwarmLink {
    /// Tell discovery how many peers are connected (cheap when unchanged).
    pub fn peer_count(&self, n: usize) {
        self.peers
            .send_if_modified(|old| std::mem::replace(old, n) != n);
    }
}

/// The next found peer; pending forever without discovery or once it stopped.
pub async fn next_found(link: &mut Option<SwarmLink>) -> Found {
    if let Some(l) = link.as_mut() {
        if let Some(f) = l.found.recv().await {
            return f;
        }
        *link = None;
    }
    std::future::pending().await
}

enum Command {
    Table(oneshot::Sender<Vec<Enr>>),
    Stats(oneshot::Sender<DiscoveryStats>),
}

/// The node's handle on discovery (for the Beacon API's identity and peers, and tests).
#[derive(Clone)]
pub struct DiscoveryHandle {
    tx: mpsc::Sender<Command>,
    local: Arc<LocalEnr>,
}

impl DiscoveryHandle {
    pub fn local_enr(&self) -> Enr {
        self.local.get()
    }

    /// The ENRs in the routing table.
    pub async fn table(&self) -> Result<Vec<Enr>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Table(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    pub async fn stats(&self) -> Result<DiscoveryStats, NetError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Stats(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }
}

/// What discovery needs of the network it serves.
pub struct DiscoveryParams<'a> {
    pub datadir: &'a Path,
    pub keypair: &'a libp2p::identity::Keypair,
    pub listen_address: IpAddr,
    /// The configured TCP port (0: set once bound).
    pub tcp_port: u16,
    pub quic_port: Option<u16>,
    pub target_peers: usize,
    pub digests: ForkDigests,
    pub clock: ForkClock,
    pub custody_group_count: u64,
}

fn combined_key(keypair: &libp2p::identity::Keypair) -> Result<CombinedKey, NetError> {
    let kp = keypair
        .clone()
        .try_into_secp256k1()
        .map_err(|e| NetError::Discovery(format!("the node key is not secp256k1: {e}")))?;
    let mut secret = kp.secret().to_bytes();
    let key = CombinedKey::secp256k1_from_bytes(&mut secret)
        .map_err(|e| NetError::Discovery(format!("node key: {e}")));
    secret.fill(0);
    key
}

/// Builds the local ENR: `ip` (when known), `udp`, `tcp` and `quic` (when known), and the
/// eth2 entries at `epoch`, at sequence number `seq`.
#[allow(clippy::too_many_arguments)]
pub fn build_local_enr(
    key: &CombinedKey,
    ip: Option<IpAddr>,
    v6: bool,
    udp_port: u16,
    tcp_port: u16,
    quic_port: Option<u16>,
    eth2: &[(&'static str, Vec<u8>)],
    seq: u64,
) -> Result<Enr, NetError> {
    let mut b = Enr::builder();
    b.seq(seq.max(1));
    if let Some(ip) = ip {
        b.ip(ip);
    }
    let nz = |p: u16| (p != 0).then_some(p);
    if v6 {
        b.udp6(udp_port);
        if let Some(p) = nz(tcp_port) {
            b.tcp6(p);
        }
        if let Some(p) = quic_port.and_then(nz) {
            b.add_value(QUIC6_ENR_KEY, &p);
        }
    } else {
        b.udp4(udp_port);
        if let Some(p) = nz(tcp_port) {
            b.tcp4(p);
        }
        if let Some(p) = quic_port.and_then(nz) {
            b.add_value(QUIC_ENR_KEY, &p);
        }
    }
    for (k, v) in eth2 {
        b.add_value(k, &v.as_slice());
    }
    b.build(key)
        .map_err(|e| NetError::Discovery(format!("local ENR: {e}")))
}

/// The sequence number for a new local ENR, given the one saved last time: the same when
/// the content is the same, one more when it changed, 1 without one.
fn next_seq(saved: Option<&Enr>, fresh: &Enr) -> u64 {
    match saved {
        Some(s) if s.node_id() == fresh.node_id() => {
            if s.iter().eq(fresh.iter()) {
                s.seq()
            } else {
                s.seq().saturating_add(1)
            }
        }
        _ => 1,
    }
}

/// The running discovery: the swarm task's link, the node's handle, and the task (it ends
/// once the link is dropped, after saving the ENR).
pub struct Started {
    pub link: SwarmLink,
    pub handle: DiscoveryHandle,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts discv5 and the discovery task on the current tokio runtime.
pub async fn start(config: DiscoveryConfig, p: DiscoveryParams<'_>) -> Result<Started, NetError> {
    let err = |e: String| NetError::Discovery(e);
    let key = combined_key(p.keypair)?;
    let sign_key = combined_key(p.keypair)?;
    let bind: std::net::SocketAddr = (p.listen_address, config.udp_port).into();
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| err(format!("UDP {bind}: {e}")))?;
    let udp_port = socket.local_addr().map_err(|e| err(e.to_string()))?.port();
    let socket = Arc::new(socket);
    let listen = if p.listen_address.is_ipv4() {
        ListenConfig::FromSockets {
            ipv4: Some(socket),
            ipv6: None,
        }
    } else {
        ListenConfig::FromSockets {
            ipv4: None,
            ipv6: Some(socket),
        }
    };
    let ip = config
        .enr_address
        .or((!p.listen_address.is_unspecified()).then_some(p.listen_address));
    if ip.is_none() {
        tracing::warn!("no ENR address (listening on an unspecified address): peers cannot find this node until discv5 learns its address");
    }
    let v6 = ip.map_or(p.listen_address.is_ipv6(), |ip| ip.is_ipv6());
    let epoch = p.clock.current_epoch();
    let eth2 = eth2_entries(&p.digests, epoch, p.custody_group_count);
    let path = p.datadir.join(ENR_FILE);
    let saved = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<Enr>().ok());
    let build = |seq| build_local_enr(&key, ip, v6, udp_port, p.tcp_port, p.quic_port, &eth2, seq);
    let fresh = build(1)?;
    let seq = next_seq(saved.as_ref(), &fresh);
    let enr = if seq == 1 { fresh } else { build(seq)? };

    let mut builder = ConfigBuilder::new(listen);
    builder.query_timeout(Duration::from_secs(30));
    if !config.allow_private {
        builder.table_filter(table_filter_global);
    }
    let mut discv5 = Discv5::new(enr, key, builder.build()).map_err(|e| err(e.to_string()))?;
    for boot in &config.boot_enrs {
        if let Err(e) = discv5.add_enr(boot.clone()) {
            tracing::warn!(enr = %boot.to_base64(), e, "boot ENR not added");
        }
    }
    discv5
        .start()
        .await
        .map_err(|e| err(format!("discv5: {e}")))?;
    let events = discv5
        .event_stream()
        .await
        .map_err(|e| err(format!("discv5 events: {e}")))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let local = Arc::new(LocalEnr {
        enr: discv5.external_enr(),
        key: sign_key,
        path,
    });
    local.persist();
    tracing::info!(enr = %local.get().to_base64(), node_id = %local.get().node_id(), "discovery on UDP {udp_port}");

    let (found_tx, found_rx) = mpsc::channel(FOUND_QUEUE);
    let (peers_tx, peers_rx) = watch::channel(0usize);
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let quic = p.quic_port.is_some();
    let task = DiscoveryTask {
        discv5,
        local: local.clone(),
        config: config.clone(),
        digests: p.digests,
        clock: p.clock,
        custody_group_count: p.custody_group_count,
        target_peers: p.target_peers,
        quic,
        found: found_tx,
        peers: peers_rx,
        recent: lru::LruCache::new(NonZeroUsize::new(RECENT_CAP).unwrap_or(NonZeroUsize::MIN)),
        stats: DiscoveryStats::default(),
    };
    // The boot ENRs are known peers: dial the relevant ones at once.
    let boot = config.boot_enrs;
    let task = tokio::spawn(task.run(boot, cmd_rx, events));
    Ok(Started {
        link: SwarmLink {
            found: found_rx,
            peers: peers_tx,
            local: local.clone(),
            target_peers: p.target_peers,
            quic,
        },
        handle: DiscoveryHandle { tx: cmd_tx, local },
        task,
    })
}

type Lookup =
    Pin<Box<dyn std::future::Future<Output = Result<Vec<Enr>, discv5::QueryError>> + Send>>;

struct DiscoveryTask {
    discv5: Discv5,
    local: Arc<LocalEnr>,
    config: DiscoveryConfig,
    digests: ForkDigests,
    clock: ForkClock,
    custody_group_count: u64,
    target_peers: usize,
    quic: bool,
    found: mpsc::Sender<Found>,
    peers: watch::Receiver<usize>,
    recent: lru::LruCache<PeerId, Instant>,
    stats: DiscoveryStats,
}

impl DiscoveryTask {
    async fn run(
        mut self,
        boot: Vec<Enr>,
        mut cmds: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<discv5::Event>,
    ) {
        for enr in boot {
            self.consider(enr);
        }
        let mut lookup: Option<Lookup> = None;
        let next_lookup = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(next_lookup);
        let fork_timer = tokio::time::sleep(self.until_next_fork());
        tokio::pin!(fork_timer);
        let mut events_open = true;
        loop {
            tokio::select! {
                _ = self.found.closed() => break,
                () = &mut next_lookup, if lookup.is_none() => {
                    lookup = Some(Box::pin(self.discv5.find_node(enr::NodeId::random())));
                }
                r = async { lookup.as_mut().expect("guarded").await }, if lookup.is_some() => {
                    lookup = None;
                    self.stats.lookups += 1;
                    match r {
                        Ok(enrs) => {
                            tracing::debug!(n = enrs.len(), "lookup done");
                            for enr in enrs {
                                self.stats.found += 1;
                                self.consider(enr);
                            }
                        }
                        Err(e) => tracing::debug!(%e, "lookup failed"),
                    }
                    next_lookup.as_mut().reset(tokio::time::Instant::now() + self.pause());
                }
                () = &mut fork_timer => {
                    self.update_fork_entries();
                    fork_timer.as_mut().reset(tokio::time::Instant::now() + self.until_next_fork());
                }
                Ok(()) = self.peers.changed() => {
                    // Fell below target while idle: look sooner.
                    if lookup.is_none() && *self.peers.borrow() < self.target_peers {
                        let soon = tokio::time::Instant::now() + self.config.lookup_interval;
                        if next_lookup.deadline() > soon {
                            next_lookup.as_mut().reset(soon);
                        }
                    }
                }
                Some(cmd) = cmds.recv() => match cmd {
                    Command::Table(r) => { let _ = r.send(self.discv5.table_entries_enr()); }
                    Command::Stats(r) => { let _ = r.send(self.stats); }
                },
                ev = events.recv(), if events_open => match ev {
                    Some(discv5::Event::SocketUpdated(addr)) => {
                        tracing::info!(%addr, enr = %self.local.get().to_base64(), "ENR address updated from peers' view");
                        self.local.persist();
                    }
                    Some(_) => {}
                    None => events_open = false,
                },
            }
        }
        self.local.persist();
        self.discv5.shutdown();
    }

    fn pause(&self) -> Duration {
        if *self.peers.borrow() < self.target_peers {
            self.config.lookup_interval
        } else {
            self.config.idle_lookup_interval
        }
    }

    /// Time until the next scheduled fork starts by the wall clock (capped at an hour, so a
    /// clock that jumps is caught).
    fn until_next_fork(&self) -> Duration {
        let now = unix_ms_now();
        let cap = Duration::from_secs(3600);
        match self.digests.next_after(self.clock.epoch_at(now)) {
            Some(next) => {
                Duration::from_millis(self.clock.epoch_start_ms(next.epoch).saturating_sub(now))
                    .min(cap)
            }
            None => cap,
        }
    }

    /// Re-sign the ENR's fork entries when the wall-clock epoch crossed a fork.
    fn update_fork_entries(&mut self) {
        let epoch = self.clock.current_epoch();
        let entries = eth2_entries(&self.digests, epoch, self.custody_group_count);
        if self.local.set(&entries) {
            self.local.persist();
            tracing::info!(epoch, enr = %self.local.get().to_base64(), "ENR fork entries updated");
        }
    }

    /// Whether a found ENR is one to dial, and where.
    fn relevance(&self, enr: &Enr) -> Result<Found, Refusal> {
        if enr.node_id() == self.local.get().node_id() {
            return Err(Refusal::Ourselves);
        }
        let ours = self.local.get();
        let our_digest = decode_eth2(&ours)
            .ok()
            .and_then(|e| e.fork_id)
            .map(|f| *f.fork_digest.as_bytes());
        let theirs = decode_eth2(enr).map_err(|_| Refusal::Malformed)?;
        match (theirs.fork_id, our_digest) {
            (Some(f), Some(d)) if *f.fork_digest.as_bytes() == d => {}
            _ => return Err(Refusal::ForkDigest),
        }
        let peer_id = peer_id_of(enr).ok_or(Refusal::Malformed)?;
        let allow_private = self.config.allow_private;
        let addresses: Vec<Multiaddr> = multiaddrs_of(enr, peer_id, self.quic)
            .into_iter()
            .filter(|a| {
                allow_private
                    || a.iter().any(|p| match p {
                        MaProtocol::Ip4(ip) => is_global(IpAddr::V4(ip)),
                        MaProtocol::Ip6(ip) => is_global(IpAddr::V6(ip)),
                        _ => false,
                    })
            })
            .collect();
        if addresses.is_empty() {
            return Err(Refusal::Unreachable);
        }
        Ok(Found {
            peer_id,
            addresses,
            enr: enr.clone(),
        })
    }

    fn consider(&mut self, enr: Enr) {
        let found = match self.relevance(&enr) {
            Ok(f) => f,
            Err(r) => {
                match r {
                    Refusal::ForkDigest => self.stats.wrong_fork += 1,
                    Refusal::Unreachable => self.stats.unreachable += 1,
                    Refusal::Malformed => self.stats.malformed += 1,
                    Refusal::Ourselves => {}
                }
                tracing::trace!(?r, node = %enr.node_id(), "found ENR not dialled");
                return;
            }
        };
        if *self.peers.borrow() >= self.target_peers {
            return;
        }
        let now = Instant::now();
        if self
            .recent
            .get(&found.peer_id)
            .is_some_and(|t| now.duration_since(*t) < REHAND_AFTER)
        {
            return;
        }
        self.recent.put(found.peer_id, now);
        if self.found.try_send(found).is_ok() {
            self.stats.handed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transition::ChainConfig;

    /// The minimal config with every fork before Fulu at genesis and Fulu at `fulu`.
    fn fulu_at(fulu: Epoch) -> ChainConfig {
        let mut cfg = ChainConfig::minimal();
        cfg.altair_fork_epoch = 0;
        cfg.bellatrix_fork_epoch = 0;
        cfg.capella_fork_epoch = 0;
        cfg.deneb_fork_epoch = 0;
        cfg.electra_fork_epoch = 0;
        cfg.fulu_fork_epoch = fulu;
        cfg
    }

    fn key_pair() -> libp2p::identity::Keypair {
        libp2p::identity::Keypair::generate_secp256k1()
    }

    #[test]
    fn be_minimal_is_the_spec_encoding() {
        assert_eq!(be_minimal(0), Vec::<u8>::new());
        assert_eq!(be_minimal(4), vec![4]);
        assert_eq!(be_minimal(128), vec![0x80]);
        assert_eq!(be_minimal(0x0102), vec![1, 2]);
        assert_eq!(be_minimal(u64::MAX), vec![0xff; 8]);
    }

    #[test]
    fn the_local_enr_carries_the_eth2_entries_and_the_node_key() {
        let kp = key_pair();
        let key = combined_key(&kp).unwrap();
        let cfg = fulu_at(0);
        let digests = ForkDigests::new([7; 32], &cfg);
        let epoch = 3;
        let cgc = 4;
        let eth2 = eth2_entries(&digests, epoch, cgc);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let enr = build_local_enr(&key, Some(ip), false, 9100, 9000, Some(9001), &eth2, 1).unwrap();
        // Through text and back, as a boot node is passed.
        let enr: Enr = enr.to_base64().parse().unwrap();
        assert_eq!(enr.ip4(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(enr.udp4(), Some(9100));
        assert_eq!(enr.tcp4(), Some(9000));
        assert_eq!(
            enr.get_decodable::<u16>(QUIC_ENR_KEY).unwrap().unwrap(),
            9001
        );
        assert_eq!(peer_id_of(&enr), Some(kp.public().to_peer_id()));
        let f = decode_eth2(&enr).unwrap();
        let fork_id = f.fork_id.unwrap();
        assert_eq!(fork_id, digests.enr_fork_id(epoch));
        assert_eq!(
            *fork_id.fork_digest.as_bytes(),
            digests.digest_at_epoch(epoch)
        );
        assert_eq!(f.custody_group_count, Some(cgc));
        assert_eq!(f.next_fork_digest, Some(digests.next_fork_digest(epoch)));
        assert_eq!(f.attnets, Some(Attnets::default()));
        assert_eq!(f.syncnets, Some(Syncnets::default()));
        // The raw values: 16, 8 and 1 bytes; cgc one byte.
        let raw = |k| bytes_entry(&enr, k).unwrap().unwrap();
        assert_eq!(raw(ETH2_ENR_KEY).len(), 16);
        assert_eq!(raw(ATTNETS_ENR_KEY).len(), 8);
        assert_eq!(raw(SYNCNETS_ENR_KEY).len(), 1);
        assert_eq!(raw(CGC_ENR_KEY), vec![4]);
        assert_eq!(raw(NFD_ENR_KEY).len(), 4);
        let addrs = multiaddrs_of(&enr, kp.public().to_peer_id(), true);
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        assert!(addrs[0]
            .to_string()
            .starts_with("/ip4/127.0.0.1/udp/9001/quic-v1/p2p/"));
        assert!(addrs[1]
            .to_string()
            .starts_with("/ip4/127.0.0.1/tcp/9000/p2p/"));
        assert_eq!(
            multiaddrs_of(&enr, kp.public().to_peer_id(), false).len(),
            1
        );
    }

    #[test]
    fn fork_updates_bump_the_sequence_once_and_bad_entries_are_refused() {
        let kp = key_pair();
        let cfg = fulu_at(10);
        let digests = ForkDigests::new([9; 32], &cfg);
        let before = eth2_entries(&digests, 9, 4);
        let after = eth2_entries(&digests, 10, 4);
        assert_ne!(before, after);
        let enr = build_local_enr(
            &combined_key(&kp).unwrap(),
            None,
            false,
            1,
            2,
            None,
            &before,
            1,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let local = LocalEnr {
            enr: Arc::new(parking_lot::RwLock::new(enr)),
            key: combined_key(&kp).unwrap(),
            path: dir.path().join("enr"),
        };
        assert!(!local.set(&before), "unchanged: no re-signing");
        assert_eq!(local.get().seq(), 1);
        assert!(local.set(&after));
        assert_eq!(local.get().seq(), 2, "one bump for all entries");
        let f = decode_eth2(&local.get()).unwrap();
        assert_eq!(f.fork_id, Some(digests.enr_fork_id(10)));
        assert_eq!(
            *f.fork_id.unwrap().fork_digest.as_bytes(),
            digests.digest_at_epoch(10)
        );
        // The listen port lands in `tcp`.
        local.on_listen(&"/ip4/127.0.0.1/tcp/4242".parse().unwrap());
        assert_eq!(local.get().tcp4(), Some(4242));
        assert_eq!(local.get().seq(), 3);
        // Saved, and the sequence number survives a restart.
        let saved: Enr = std::fs::read_to_string(dir.path().join("enr"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(saved.seq(), 3);
        assert_eq!(next_seq(Some(&saved), &saved), 3);
        let other = build_local_enr(
            &combined_key(&kp).unwrap(),
            None,
            false,
            1,
            2,
            None,
            &after,
            1,
        )
        .unwrap();
        assert_eq!(next_seq(Some(&saved), &other), 4);
        assert_eq!(next_seq(None, &other), 1);
        // A malformed eth2 or cgc entry (leading zero) is an error, not a panic.
        let bad = [(ETH2_ENR_KEY, vec![1, 2, 3])];
        assert!(local.set(&bad));
        assert!(decode_eth2(&local.get()).is_err());
        let bad_cgc = [
            (ETH2_ENR_KEY, after[0].1.clone()),
            (CGC_ENR_KEY, vec![0, 4]),
        ];
        assert!(local.set(&bad_cgc));
        assert!(decode_eth2(&local.get()).is_err());
    }

    #[test]
    fn without_fulu_no_cgc_or_nfd() {
        let mut cfg = ChainConfig::minimal();
        cfg.fulu_fork_epoch = crate::net::fork_digest::FAR_FUTURE_EPOCH;
        let digests = ForkDigests::new([1; 32], &cfg);
        let keys: Vec<&str> = eth2_entries(&digests, 0, 4)
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(keys, vec![ETH2_ENR_KEY, ATTNETS_ENR_KEY, SYNCNETS_ENR_KEY]);
    }

    #[test]
    fn global_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_global(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2a00:1450::1"] {
            assert!(is_global(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_fork_clock() {
        let c = ForkClock {
            genesis_time: 100,
            slot_duration_ms: 6000,
            slots_per_epoch: 8,
        };
        assert_eq!(c.epoch_at(0), 0);
        assert_eq!(c.epoch_at(100_000 + 48_000 - 1), 0);
        assert_eq!(c.epoch_at(100_000 + 48_000), 1);
        assert_eq!(c.epoch_start_ms(2), 100_000 + 96_000);
    }
}
