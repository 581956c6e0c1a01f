//! The network service: one tokio task owns the libp2p `Swarm`; the rest of the node talks
//! to it through a cloneable [`NetworkHandle`] (commands over a bounded channel, replies
//! by oneshot), and hears from it through [`NetEvent`]s.
//!
//! ```text
//!  NetworkHandle ── NetCommand ──▶ swarm task ── libp2p ──▶ peers
//!       ▲                            │  req/resp served from the ChainReader (blocking
//!       └──── NetEvent (broadcast) ──┘  reads on tokio's blocking pool), gossip blocks
//!                                       validated by the ChainHandle
//! ```
//!
//! Transports: TCP with Noise and yamux or mplex, and QUIC. Identify announces
//! `eth2/1.0.0`. On a new outbound connection the node sends its Status; a peer on another
//! fork digest, or whose finalized checkpoint conflicts with ours, gets a Goodbye
//! (irrelevant network) and is disconnected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::multiaddr::Protocol as MaProtocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, Multiaddr, PeerId, Swarm};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::codec::ResponseCode;
use super::discovery::{self, DiscoveryConfig, DiscoveryHandle, Enr};
use super::fork_digest;
use super::gossip::{self, GossipKind};
use super::messages::{self, Protocol};
use super::peer_manager::{
    self, Enforce, OutboundFault, PeerAction, PeerManager, PeerManagerConfig,
};
use super::rpc::{Eth2Codec, ProtocolName, RpcChunk, RpcRequest, RpcResponse};
use super::NetError;
use crate::chain::error::BlockError;
use crate::chain::gossip_attestation::GossipMessage;
use crate::chain::service::{
    BlockSource, ChainHandle, GossipAcceptance, GossipClock, GossipVerdict,
};
use crate::pool::gossip::{GossipPool, PoolOptions, PoolStats};
use crate::transition::ChainConfig;
use crate::types::ssz::{ssz_encode, SszDecode};

type Root = [u8; 32];

/// `CUSTODY_REQUIREMENT` of the Fulu configs.
const CUSTODY_REQUIREMENT: u64 = 4;

/// Connections allowed beyond `target_peers` (dials in flight, peers about to be dropped).
const EXTRA_CONNECTIONS: u32 = 8;

/// Goodbye reasons of the spec.
pub const GOODBYE_CLIENT_SHUTDOWN: u64 = 1;
pub const GOODBYE_IRRELEVANT_NETWORK: u64 = 2;
pub const GOODBYE_FAULT: u64 = 3;

/// How the network runs.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Where the identity key lives (`DATADIR/network/key`).
    pub datadir: PathBuf,
    pub listen_address: IpAddr,
    /// TCP port (0: any free port).
    pub tcp_port: u16,
    /// QUIC (UDP) port; `None`: no QUIC.
    pub quic_port: Option<u16>,
    /// Peers to dial at start.
    pub boot_nodes: Vec<Multiaddr>,
    /// Connections kept, at most.
    pub target_peers: usize,
    /// Scores, bans, keep-alive and the inbound rate limits (`peers.rate_limits`).
    pub peers: PeerManagerConfig,
    /// discv5 discovery; `None`: off (only the boot nodes and dials).
    pub discovery: Option<DiscoveryConfig>,
    /// The worker pool that validates attestation, aggregate and sync-committee gossip.
    pub gossip_pool: PoolOptions,
}

impl NetworkConfig {
    /// Listen on 127.0.0.1, any free TCP port, no QUIC (tests).
    pub fn local(datadir: PathBuf) -> Self {
        NetworkConfig {
            datadir,
            listen_address: IpAddr::from([127, 0, 0, 1]),
            tcp_port: 0,
            quic_port: None,
            boot_nodes: Vec::new(),
            target_peers: 50,
            peers: PeerManagerConfig::default(),
            discovery: None,
            gossip_pool: PoolOptions::default(),
        }
    }
}

/// A peer's Status, as it sent it (Status v2; v1 has no `earliest_available_slot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStatus {
    pub fork_digest: [u8; 4],
    pub finalized_root: Root,
    pub finalized_epoch: u64,
    pub head_root: Root,
    pub head_slot: u64,
    pub earliest_available_slot: Option<u64>,
}

/// What the node knows of a connected peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub address: Option<Multiaddr>,
    pub status: Option<PeerStatus>,
    pub outbound: bool,
    /// The peer manager's score (−100 … 100; see [`peer_manager`]).
    pub score: f64,
    /// The `seq_number` of the peer's MetaData we hold, once fetched.
    pub metadata_seq: Option<u64>,
    /// Its MetaData v3 `custody_group_count`, once fetched.
    pub custody_group_count: Option<u64>,
}

/// What the network announces.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// A peer's Status was exchanged and found relevant.
    PeerReady {
        peer: PeerId,
        status: PeerStatus,
    },
    /// A peer sent Goodbye.
    Goodbye {
        peer: PeerId,
        reason: u64,
    },
    /// We sent a peer Goodbye.
    SentGoodbye {
        peer: PeerId,
        reason: u64,
    },
    PeerDisconnected {
        peer: PeerId,
    },
    /// The peer's score fell to the ban threshold: it is on the block list.
    PeerBanned {
        peer: PeerId,
    },
    /// A connection from a banned peer was refused.
    ConnectionDenied {
        peer: Option<PeerId>,
    },
    /// A gossip block was validated; ACCEPT ones were imported.
    GossipBlock {
        from: PeerId,
        verdict: GossipVerdict,
    },
    /// A gossip message of another topic was validated (`kind: None`: an unknown topic).
    Gossip {
        from: PeerId,
        kind: Option<GossipKind>,
        verdict: GossipVerdict,
    },
}

enum NetCommand {
    Dial(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Status(PeerId, oneshot::Sender<Result<PeerStatus, NetError>>),
    BlocksByRange {
        peer: PeerId,
        start_slot: u64,
        count: u64,
        reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
    },
    BlocksByRoot {
        peer: PeerId,
        roots: Vec<Root>,
        reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
    },
    /// A raw request on any protocol (tests of the wire, tools).
    Raw {
        peer: PeerId,
        protocol: Protocol,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<RpcResponse, NetError>>,
    },
    PublishBlock(Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    /// Publish SSZ on a topic of the current fork digest.
    Publish(GossipKind, Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    GossipPeers(oneshot::Sender<usize>),
    ReportPeer(PeerId, PeerAction, String),
    Shutdown(oneshot::Sender<()>),
}

/// The cloneable front of the network service.
#[derive(Clone)]
pub struct NetworkHandle {
    tx: mpsc::Sender<NetCommand>,
    events: broadcast::Sender<NetEvent>,
    peer_id: PeerId,
    listen: Arc<RwLock<Vec<Multiaddr>>>,
    discovery: Option<DiscoveryHandle>,
    pool: Arc<PoolStats>,
}

impl NetworkHandle {
    /// The gossip validation pool's counters (queue depth, drops, batches).
    pub fn gossip_pool(&self) -> &Arc<PoolStats> {
        &self.pool
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's ENR as it is now (`None` with discovery off).
    pub fn local_enr(&self) -> Option<Enr> {
        self.discovery.as_ref().map(DiscoveryHandle::local_enr)
    }

    /// Discovery's routing table and counts (`None` with discovery off).
    pub fn discovery(&self) -> Option<&DiscoveryHandle> {
        self.discovery.as_ref()
    }

    /// The addresses the node listens on (with `/p2p/<peer id>`), once bound.
    pub fn listen_addresses(&self) -> Vec<Multiaddr> {
        self.listen
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NetEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<T>) -> NetCommand,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(cmd(tx)).await.map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|r| NetCommand::Dial(addr, r)).await?
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(NetCommand::Peers).await
    }

    /// Ask a peer for its Status.
    pub async fn status(&self, peer: PeerId) -> Result<PeerStatus, NetError> {
        self.ask(|r| NetCommand::Status(peer, r)).await?
    }

    /// `beacon_blocks_by_range` v2: the peer's blocks as SSZ bytes.
    pub async fn blocks_by_range(
        &self,
        peer: PeerId,
        start_slot: u64,
        count: u64,
    ) -> Result<Vec<Vec<u8>>, NetError> {
        self.ask(|reply| NetCommand::BlocksByRange {
            peer,
            start_slot,
            count,
            reply,
        })
        .await?
    }

    /// `beacon_blocks_by_root` v2.
    pub async fn blocks_by_root(
        &self,
        peer: PeerId,
        roots: Vec<Root>,
    ) -> Result<Vec<Vec<u8>>, NetError> {
        self.ask(|reply| NetCommand::BlocksByRoot { peer, roots, reply })
            .await?
    }

    /// A raw request: the payload's SSZ bytes on `protocol`, the chunks back as they came.
    pub async fn request(
        &self,
        peer: PeerId,
        protocol: Protocol,
        payload: Vec<u8>,
    ) -> Result<RpcResponse, NetError> {
        self.ask(|reply| NetCommand::Raw {
            peer,
            protocol,
            payload,
            reply,
        })
        .await?
    }

    /// Publish a signed block (SSZ) on the `beacon_block` topic.
    pub async fn publish_block(&self, ssz: Vec<u8>) -> Result<(), NetError> {
        self.ask(|r| NetCommand::PublishBlock(ssz, r)).await?
    }

    /// Publish a message (SSZ, compressed here) on topic `kind` of the current fork
    /// digest, e.g. a voluntary exit or a slashing.
    pub async fn publish(&self, kind: GossipKind, ssz: Vec<u8>) -> Result<(), NetError> {
        self.ask(|r| NetCommand::Publish(kind, ssz, r)).await?
    }

    /// Peers subscribed to our `beacon_block` topic.
    pub async fn gossip_peers(&self) -> Result<usize, NetError> {
        self.ask(NetCommand::GossipPeers).await
    }

    /// Penalise a peer (sync: a chain segment refused for the peer's fault, a peer that
    /// did not deliver); see [`peer_manager::action_for_fault`].
    pub async fn report_peer(
        &self,
        peer: PeerId,
        action: PeerAction,
        reason: &str,
    ) -> Result<(), NetError> {
        self.tx
            .send(NetCommand::ReportPeer(peer, action, reason.to_string()))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Send Goodbye (client shutdown) to every peer and stop the swarm task.
    pub async fn shutdown(&self) {
        let _ = self.ask(NetCommand::Shutdown).await;
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// Banned peers: their connections closed and refused.
    blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    /// At most `target_peers` established connections (plus a few for churn), one per
    /// peer; pending ones bounded too.
    limits: libp2p::connection_limits::Behaviour,
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    status: request_response::Behaviour<Eth2Codec>,
    goodbye: request_response::Behaviour<Eth2Codec>,
    ping: request_response::Behaviour<Eth2Codec>,
    metadata: request_response::Behaviour<Eth2Codec>,
    blocks_by_range: request_response::Behaviour<Eth2Codec>,
    blocks_by_root: request_response::Behaviour<Eth2Codec>,
    columns_by_range: request_response::Behaviour<Eth2Codec>,
    columns_by_root: request_response::Behaviour<Eth2Codec>,
}

/// The running network: its handle and its task.
pub struct NetworkService {
    handle: NetworkHandle,
    task: tokio::task::JoinHandle<()>,
    /// Ends after the swarm task (it drops the discovery link).
    discovery_task: Option<tokio::task::JoinHandle<()>>,
}

impl NetworkService {
    /// Start the swarm on the current tokio runtime, serving `chain`.
    pub async fn start(
        config: NetworkConfig,
        chain: ChainHandle,
        chain_cfg: ChainConfig,
    ) -> Result<Self, NetError> {
        let keypair = super::identity::load_or_create(&config.datadir)?;
        let target_peers = config.target_peers.min(u32::MAX as usize - 64);
        let peer_id = keypair.public().to_peer_id();
        let head = chain.head();
        let gvr = head.genesis_validators_root;
        let spe = crate::chain::any::slots_per_epoch(chain.preset());
        let chain_cfg = crate::chain::any::effective_fork_schedule(
            chain_cfg,
            head.fork_version,
            head.head.slot / spe,
        );
        let digests = fork_digest::ForkDigests::new(gvr, &chain_cfg);
        let chunk_bounds = messages::ChunkBounds::for_preset(chain.preset());
        let slot_duration = Duration::from_millis(chain_cfg.slot_duration_ms);
        let column_window = super::columns::ServeWindow {
            preset: chain.preset(),
            genesis_time: head.genesis_time,
            slot_duration_ms: chain_cfg.slot_duration_ms,
            slots_per_epoch: spe,
            fulu_fork_epoch: chain_cfg.fulu_fork_epoch,
            min_epochs_for_requests: super::columns::MIN_EPOCHS_FOR_DATA_COLUMN_SIDECARS_REQUESTS,
        };
        let slots_per_epoch = crate::chain::any::slots_per_epoch(chain.preset());
        let gossip_cfg = gossip::config(slot_duration, slots_per_epoch)?;
        let codec = Eth2Codec {
            digests: digests.clone(),
            chunk_bounds,
        };
        let rr = |protocols: &[Protocol]| {
            request_response::Behaviour::with_codec(
                codec.clone(),
                protocols
                    .iter()
                    .map(|p| (ProtocolName(*p), ProtocolSupport::Full)),
                request_response::Config::default()
                    .with_request_timeout(super::rpc::TTFB_TIMEOUT + super::rpc::RESP_TIMEOUT * 13)
                    .with_max_concurrent_streams(64),
            )
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                (
                    libp2p::yamux::Config::default,
                    libp2p_mplex::Config::default,
                ),
            )
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_quic()
            .with_behaviour(|key| {
                let gossipsub = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    gossip_cfg,
                )
                .map_err(|e| NetError::Gossip(e.to_string()))?;
                let limits = libp2p::connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(target_peers as u32 + EXTRA_CONNECTIONS))
                    .with_max_established_per_peer(Some(2))
                    .with_max_pending_incoming(Some(32))
                    .with_max_pending_outgoing(Some(32));
                Ok(Behaviour {
                    blocked: Default::default(),
                    limits: libp2p::connection_limits::Behaviour::new(limits),
                    identify: identify::Behaviour::new(
                        identify::Config::new("eth2/1.0.0".into(), key.public())
                            .with_agent_version(format!("quasar/{}", env!("CARGO_PKG_VERSION"))),
                    ),
                    gossipsub,
                    status: rr(&[Protocol::StatusV2, Protocol::StatusV1]),
                    goodbye: rr(&[Protocol::GoodbyeV1]),
                    ping: rr(&[Protocol::PingV1]),
                    metadata: rr(&[Protocol::MetaDataV3, Protocol::MetaDataV2]),
                    blocks_by_range: rr(&[Protocol::BeaconBlocksByRangeV2]),
                    blocks_by_root: rr(&[Protocol::BeaconBlocksByRootV2]),
                    columns_by_range: rr(&[Protocol::DataColumnSidecarsByRangeV1]),
                    columns_by_root: rr(&[Protocol::DataColumnSidecarsByRootV1]),
                })
            })
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let ip = match config.listen_address {
            IpAddr::V4(a) => MaProtocol::Ip4(a),
            IpAddr::V6(a) => MaProtocol::Ip6(a),
        };
        let tcp: Multiaddr = Multiaddr::empty()
            .with(ip.clone())
            .with(MaProtocol::Tcp(config.tcp_port));
        swarm
            .listen_on(tcp)
            .map_err(|e| NetError::Transport(e.to_string()))?;
        if let Some(port) = config.quic_port {
            let quic = Multiaddr::empty()
                .with(ip)
                .with(MaProtocol::Udp(port))
                .with(MaProtocol::QuicV1);
            swarm
                .listen_on(quic)
                .map_err(|e| NetError::Transport(e.to_string()))?;
        }
        let (link, discovery, discovery_task) = match config.discovery {
            Some(d) => {
                let params = discovery::DiscoveryParams {
                    datadir: &config.datadir,
                    keypair: &keypair,
                    listen_address: config.listen_address,
                    tcp_port: config.tcp_port,
                    quic_port: config.quic_port,
                    target_peers,
                    digests: digests.clone(),
                    clock: discovery::ForkClock {
                        genesis_time: head.genesis_time,
                        slot_duration_ms: chain_cfg.slot_duration_ms,
                        slots_per_epoch,
                    },
                    custody_group_count: CUSTODY_REQUIREMENT,
                };
                let d = discovery::start(d, params).await?;
                (Some(d.link), Some(d.handle), Some(d.task))
            }
            None => (None, None, None),
        };
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let listen = Arc::new(RwLock::new(Vec::new()));
        let pool = GossipPool::start(chain.clone(), config.gossip_pool)
            .map_err(|e| NetError::Transport(format!("gossip pool threads: {e}")))?;
        let handle = NetworkHandle {
            tx,
            events: events.clone(),
            peer_id,
            listen: listen.clone(),
            discovery,
            pool: pool.stats().clone(),
        };
        let mut state = SwarmTask {
            swarm,
            chain,
            digests,
            events,
            listen,
            peers: HashMap::new(),
            pending: HashMap::new(),
            inbound: HashMap::new(),
            subscribed_digest: None,
            metadata_seq: 1,
            peer_id,
            column_window,
            pm: PeerManager::new(config.peers.clone()),
            discovery: link,
            pool,
        };
        state.resubscribe();
        for addr in config.boot_nodes {
            if let Err(e) = state.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, %e, "boot node not dialled");
            }
        }
        let task = tokio::spawn(state.run(rx));
        Ok(NetworkService {
            handle,
            task,
            discovery_task,
        })
    }

    pub fn handle(&self) -> NetworkHandle {
        self.handle.clone()
    }

    /// Goodbye to every peer, then stop.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
        let _ = self.task.await;
        if let Some(t) = self.discovery_task {
            let _ = t.await;
        }
    }
}

/// What an outbound request's answer is for.
enum Waiter {
    Status(Option<oneshot::Sender<Result<PeerStatus, NetError>>>),
    Blocks(oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>),
    Raw(oneshot::Sender<Result<RpcResponse, NetError>>),
    /// Goodbye we sent on our own.
    Nothing,
    /// A keep-alive ping / MetaData request of the peer manager.
    Pong,
    MetaData,
}

/// Inbound requests being answered, per (peer, protocol): the spec allows two at once.
const MAX_CONCURRENT_INBOUND: usize = 2;

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    chain: ChainHandle,
    digests: fork_digest::ForkDigests,
    events: broadcast::Sender<NetEvent>,
    listen: Arc<RwLock<Vec<Multiaddr>>>,
    peers: HashMap<PeerId, PeerInfo>,
    pending: HashMap<OutboundRequestId, Waiter>,
    inbound: HashMap<(PeerId, Protocol), usize>,
    subscribed_digest: Option<[u8; 4]>,
    metadata_seq: u64,
    peer_id: PeerId,
    /// What bounds the data-column serve range.
    column_window: super::columns::ServeWindow,
    pm: PeerManager,
    /// Found peers in, the peer count out (`None`: discovery off).
    discovery: Option<discovery::SwarmLink>,
    /// Attestation, aggregate and sync-committee gossip is validated here, in batches.
    pool: GossipPool,
}

/// Answers computed off the swarm task (store reads on the blocking pool), sent back to it.
enum Answer {
    Respond {
        family: Family,
        peer: PeerId,
        protocol: Protocol,
        channel: ResponseChannel<RpcResponse>,
        chunks: RpcResponse,
    },
    Gossip {
        from: PeerId,
        id: gossipsub::MessageId,
        kind: Option<GossipKind>,
        verdict: GossipVerdict,
    },
}

#[derive(Debug, Clone, Copy)]
enum Family {
    Status,
    Goodbye,
    Ping,
    MetaData,
    BlocksByRange,
    BlocksByRoot,
    ColumnsByRange,
    ColumnsByRoot,
}

impl SwarmTask {
    async fn run(mut self, mut rx: mpsc::Receiver<NetCommand>) {
        let (answer_tx, mut answer_rx) = mpsc::channel::<Answer>(256);
        let mut heartbeat = tokio::time::interval(peer_manager::HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.enforce();
            tokio::select! {
                _ = heartbeat.tick() => self.pm.heartbeat(std::time::Instant::now()),
                event = self.swarm.select_next_some() => {
                    self.on_swarm(event, &answer_tx);
                    if let Some(d) = &self.discovery {
                        d.peer_count(self.peers.len());
                    }
                }
                cmd = rx.recv() => match cmd {
                    Some(NetCommand::Shutdown(reply)) => {
                        self.goodbye_all(GOODBYE_CLIENT_SHUTDOWN).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.goodbye_all(GOODBYE_CLIENT_SHUTDOWN).await;
                        return;
                    }
                },
                Some(answer) = answer_rx.recv() => self.on_answer(answer),
                found = discovery::next_found(&mut self.discovery) => self.on_discovered(found),
            }
        }
    }

    fn behaviour(&mut self) -> &mut Behaviour {
        self.swarm.behaviour_mut()
    }

    fn rr(&mut self, family: Family) -> &mut request_response::Behaviour<Eth2Codec> {
        let b = self.swarm.behaviour_mut();
        match family {
            Family::Status => &mut b.status,
            Family::Goodbye => &mut b.goodbye,
            Family::Ping => &mut b.ping,
            Family::MetaData => &mut b.metadata,
            Family::BlocksByRange => &mut b.blocks_by_range,
            Family::BlocksByRoot => &mut b.blocks_by_root,
            Family::ColumnsByRange => &mut b.columns_by_range,
            Family::ColumnsByRoot => &mut b.columns_by_root,
        }
    }

    fn family_of(p: Protocol) -> Option<Family> {
        Some(match p {
            Protocol::StatusV1 | Protocol::StatusV2 => Family::Status,
            Protocol::GoodbyeV1 => Family::Goodbye,
            Protocol::PingV1 => Family::Ping,
            Protocol::MetaDataV2 | Protocol::MetaDataV3 => Family::MetaData,
            Protocol::BeaconBlocksByRangeV2 => Family::BlocksByRange,
            Protocol::BeaconBlocksByRootV2 => Family::BlocksByRoot,
            Protocol::DataColumnSidecarsByRangeV1 => Family::ColumnsByRange,
            Protocol::DataColumnSidecarsByRootV1 => Family::ColumnsByRoot,
        })
    }

    /// The digest of the fork at the head's epoch: what our Status and topics use.
    fn current_digest(&self) -> [u8; 4] {
        let head = self.chain.head();
        let epoch = head.head.slot / crate::chain::any::slots_per_epoch(self.chain.preset());
        self.digests.digest_at_epoch(epoch)
    }

    /// Subscribe to the topics of the current fork digest (again when it changed):
    /// `beacon_block`, `beacon_aggregate_and_proof`, `sync_committee_contribution_and_proof`,
    /// and the attestation subnets of `compute_subscribed_subnets(node_id, epoch)` (which
    /// rotate: the set is recomputed on every call); the topics of an old digest, and
    /// attestation subnets no longer ours, are left.
    fn resubscribe(&mut self) {
        let digest = self.current_digest();
        let preset = self.chain.preset();
        let head = self.chain.head();
        let spe = crate::chain::any::slots_per_epoch(preset);
        let slot_ms = self.chain.slot_duration_ms().max(1);
        let clock_epoch = GossipClock::now(head.genesis_time).ms_since_genesis() / slot_ms / spe;
        let epoch = clock_epoch.max(head.head.slot / spe);
        let mut wanted = vec![GossipKind::BeaconBlock];
        match gossip::node_id_of_peer(&self.peer_id) {
            Some(node_id) => {
                wanted.extend(gossip::attestation_subscriptions(preset, &node_id, epoch))
            }
            None => wanted.extend([
                GossipKind::BeaconAggregateAndProof,
                GossipKind::SyncCommitteeContributionAndProof,
            ]),
        }
        wanted.extend(gossip::OPERATION_KINDS);
        let wanted: HashMap<gossipsub::TopicHash, GossipKind> = wanted
            .into_iter()
            .map(|k| (gossip::topic(digest, k).hash(), k))
            .collect();
        let subscribed: Vec<gossipsub::TopicHash> =
            self.behaviour().gossipsub.topics().cloned().collect();
        for t in &subscribed {
            if wanted.contains_key(t) {
                continue;
            }
            let leave = match gossip::parse_topic(t.as_str()) {
                Some((d, _)) if d != digest => true,
                Some((
                    _,
                    GossipKind::BeaconAttestation { .. } | GossipKind::SyncCommittee { .. },
                )) => true,
                _ => false,
            };
            if leave {
                let _ = self
                    .behaviour()
                    .gossipsub
                    .unsubscribe(&gossipsub::IdentTopic::new(t.as_str()));
            }
        }
        for (hash, kind) in wanted {
            if subscribed.contains(&hash) {
                continue;
            }
            if let Err(e) = self
                .behaviour()
                .gossipsub
                .subscribe(&gossip::topic(digest, kind))
            {
                tracing::warn!(%e, topic = kind.topic_name(), "gossip subscription failed");
            }
        }
        self.subscribed_digest = Some(digest);
    }

    fn our_status(&self) -> PeerStatus {
        let head = self.chain.head();
        // The genesis finalized checkpoint is announced with the zero root.
        let finalized_root = if head.finalized.epoch == 0 {
            [0u8; 32]
        } else {
            head.finalized.root
        };
        PeerStatus {
            fork_digest: self.current_digest(),
            finalized_root,
            finalized_epoch: head.finalized.epoch,
            head_root: head.head.root,
            head_slot: head.head.slot,
            earliest_available_slot: Some(head.earliest_available_slot),
        }
    }

    /// Whether a peer's Status is one we can talk to: same fork digest, and its finalized
    /// checkpoint (when at or below ours) on our canonical chain. `Err(reason)` otherwise.
    fn check_status(&self, s: &PeerStatus) -> Result<(), String> {
        let ours = self.our_status();
        if s.fork_digest != ours.fork_digest {
            return Err(format!(
                "fork digest {:02x?} is not ours {:02x?}",
                s.fork_digest, ours.fork_digest
            ));
        }
        if s.finalized_epoch <= ours.finalized_epoch && s.finalized_epoch > 0 {
            let spe = crate::chain::any::slots_per_epoch(self.chain.preset());
            let reader = self.chain.reader();
            let mut slot = s.finalized_epoch * spe;
            let root = loop {
                match reader.block_root_at_slot(slot) {
                    Ok(Some(r)) => break Some(r),
                    Ok(None) if slot > 0 => slot -= 1,
                    _ => break None,
                }
            };
            if root.is_some_and(|r| r != s.finalized_root) {
                return Err(format!(
                    "finalized checkpoint at epoch {} conflicts with ours",
                    s.finalized_epoch
                ));
            }
        }
        Ok(())
    }

    /// The protocol (newest version) a family's requests are made on.
    fn protocol_of(family: Family) -> Protocol {
        match family {
            Family::Status => Protocol::StatusV2,
            Family::Goodbye => Protocol::GoodbyeV1,
            Family::Ping => Protocol::PingV1,
            Family::MetaData => Protocol::MetaDataV3,
            Family::BlocksByRange => Protocol::BeaconBlocksByRangeV2,
            Family::BlocksByRoot => Protocol::BeaconBlocksByRootV2,
            Family::ColumnsByRange => Protocol::DataColumnSidecarsByRangeV1,
            Family::ColumnsByRoot => Protocol::DataColumnSidecarsByRootV1,
        }
    }

    fn send_request(&mut self, peer: PeerId, family: Family, payload: Vec<u8>, waiter: Waiter) {
        let protocol = Self::protocol_of(family);
        self.send_request_on(peer, family, protocol, payload, waiter);
    }

    /// Carry out what the peer manager decided (goodbyes, disconnections, bans, pings).
    fn enforce(&mut self) {
        let actions: Vec<Enforce> = self.pm.take_actions().collect();
        for a in actions {
            match a {
                Enforce::Goodbye { peer, reason } => self.send_goodbye(peer, reason),
                Enforce::Disconnect(peer) => {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
                Enforce::Ban(peer) => {
                    self.behaviour().blocked.block_peer(peer);
                    let _ = self.events.send(NetEvent::PeerBanned { peer });
                }
                Enforce::Unban(peer) => {
                    self.behaviour().blocked.unblock_peer(peer);
                }
                Enforce::Ping(peer) => {
                    let seq = self.metadata_seq.to_le_bytes().to_vec();
                    self.send_request(peer, Family::Ping, seq, Waiter::Pong);
                }
                Enforce::MetaData(peer) => {
                    self.send_request(peer, Family::MetaData, Vec::new(), Waiter::MetaData);
                }
            }
        }
    }

    fn send_request_on(
        &mut self,
        peer: PeerId,
        family: Family,
        protocol: Protocol,
        payload: Vec<u8>,
        waiter: Waiter,
    ) {
        let id = self
            .rr(family)
            .send_request(&peer, RpcRequest::new(protocol, payload));
        self.pending.insert(id, waiter);
    }

    fn send_goodbye(&mut self, peer: PeerId, reason: u64) {
        self.send_request(
            peer,
            Family::Goodbye,
            reason.to_le_bytes().to_vec(),
            Waiter::Nothing,
        );
        let _ = self.events.send(NetEvent::SentGoodbye { peer, reason });
    }

    async fn goodbye_all(&mut self, reason: u64) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        if peers.is_empty() {
            return;
        }
        for p in &peers {
            self.send_goodbye(*p, reason);
        }
        // Give the goodbyes a moment to leave before the connections drop.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while tokio::time::Instant::now() < deadline
            && self.pending.values().any(|w| matches!(w, Waiter::Nothing))
        {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(SwarmEvent::Behaviour(BehaviourEvent::Goodbye(
                    request_response::Event::Message {
                        message: request_response::Message::Response { request_id, .. },
                        ..
                    }
                    | request_response::Event::OutboundFailure { request_id, .. },
                ))) => {
                    self.pending.remove(&request_id);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
    }

    fn on_command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Dial(addr, reply) => {
                let r = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| NetError::Dial(e.to_string()));
                let _ = reply.send(r);
            }
            NetCommand::Peers(reply) => {
                let mut peers: Vec<PeerInfo> = self.peers.values().cloned().collect();
                for p in &mut peers {
                    if let Some(v) = self.pm.view(&p.peer_id) {
                        p.score = v.score;
                        p.metadata_seq = v.metadata_seq;
                        p.custody_group_count = v.custody_group_count;
                    }
                }
                let _ = reply.send(peers);
            }
            NetCommand::ReportPeer(peer, action, reason) => {
                self.pm
                    .report(peer, action, &reason, std::time::Instant::now());
            }
            NetCommand::Status(peer, reply) => {
                let payload = encode_status(&self.our_status());
                self.send_request(peer, Family::Status, payload, Waiter::Status(Some(reply)));
            }
            NetCommand::BlocksByRange {
                peer,
                start_slot,
                count,
                reply,
            } => {
                let req = messages::BeaconBlocksByRangeRequestV2 {
                    start_slot,
                    count,
                    step: 1,
                };
                match ssz_encode(&req) {
                    Ok(payload) => self.send_request(
                        peer,
                        Family::BlocksByRange,
                        payload,
                        Waiter::Blocks(reply),
                    ),
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Codec(e.to_string())));
                    }
                }
            }
            NetCommand::BlocksByRoot { peer, roots, reply } => {
                let payload: Vec<u8> = roots.iter().flatten().copied().collect();
                self.send_request(peer, Family::BlocksByRoot, payload, Waiter::Blocks(reply));
            }
            NetCommand::Raw {
                peer,
                protocol,
                payload,
                reply,
            } => match Self::family_of(protocol) {
                Some(f) => self.send_request_on(peer, f, protocol, payload, Waiter::Raw(reply)),
                None => {
                    let _ = reply.send(Err(NetError::Codec(format!(
                        "{} is not spoken by this node",
                        protocol.protocol_id()
                    ))));
                }
            },
            NetCommand::PublishBlock(ssz, reply) => {
                let topic = gossip::topic(self.current_digest(), GossipKind::BeaconBlock);
                let r = gossip::compress(&ssz).and_then(|data| {
                    self.behaviour()
                        .gossipsub
                        .publish(topic, data)
                        .map(|_| ())
                        .map_err(|e| NetError::Gossip(e.to_string()))
                });
                let _ = reply.send(r);
            }
            NetCommand::Publish(kind, ssz, reply) => {
                let topic = gossip::topic(self.current_digest(), kind);
                let r = gossip::compress(&ssz).and_then(|data| {
                    self.behaviour()
                        .gossipsub
                        .publish(topic, data)
                        .map(|_| ())
                        .map_err(|e| NetError::Gossip(e.to_string()))
                });
                let _ = reply.send(r);
            }
            NetCommand::GossipPeers(reply) => {
                let topic = gossip::topic(self.current_digest(), GossipKind::BeaconBlock).hash();
                let n = self
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&topic))
                    .count();
                let _ = reply.send(n);
            }
            NetCommand::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    /// A relevant peer found by discovery: dialled while below the target.
    fn on_discovered(&mut self, found: discovery::Found) {
        let Some(link) = &self.discovery else { return };
        if self.peers.len() >= link.target_peers
            || found.peer_id == self.peer_id
            || self.swarm.is_connected(&found.peer_id)
        {
            return;
        }
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(found.peer_id)
            .addresses(found.addresses)
            .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(peer = %found.peer_id, %e, "discovered peer not dialled");
        }
    }

    fn on_answer(&mut self, answer: Answer) {
        match answer {
            Answer::Respond {
                family,
                peer,
                protocol,
                channel,
                chunks,
            } => {
                if let Some(n) = self.inbound.get_mut(&(peer, protocol)) {
                    *n = n.saturating_sub(1);
                }
                let _ = self.rr(family).send_response(channel, chunks);
            }
            Answer::Gossip {
                from,
                id,
                kind,
                verdict,
            } => {
                let acceptance = match verdict.acceptance() {
                    GossipAcceptance::Accept => MessageAcceptance::Accept,
                    GossipAcceptance::Ignore => MessageAcceptance::Ignore,
                    GossipAcceptance::Reject => MessageAcceptance::Reject,
                };
                self.behaviour()
                    .gossipsub
                    .report_message_validation_result(&id, &from, acceptance);
                let block = kind == Some(GossipKind::BeaconBlock);
                // A new head block may start a new fork digest (or epoch of subnets).
                if block && matches!(verdict, GossipVerdict::Accept) {
                    self.resubscribe();
                }
                if let Some(action) = peer_manager::action_for_gossip(&verdict) {
                    let reason = format!("gossip {verdict:?}");
                    self.pm
                        .report(from, action, &reason, std::time::Instant::now());
                }
                let event = match kind {
                    Some(GossipKind::BeaconBlock) => NetEvent::GossipBlock { from, verdict },
                    kind => NetEvent::Gossip {
                        from,
                        kind,
                        verdict,
                    },
                };
                let _ = self.events.send(event);
            }
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>, answers: &mpsc::Sender<Answer>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                if let Some(d) = &self.discovery {
                    d.local.on_listen(&address);
                }
                let full = address.with(MaProtocol::P2p(self.peer_id));
                tracing::info!(address = %full, "listening");
                self.listen
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(full);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                let outbound = endpoint.is_dialer();
                self.peers.entry(peer_id).or_insert(PeerInfo {
                    peer_id,
                    address: Some(endpoint.get_remote_address().clone()),
                    status: None,
                    outbound,
                    score: 0.0,
                    metadata_seq: None,
                    custody_group_count: None,
                });
                self.pm.on_connected(peer_id, std::time::Instant::now());
                if num_established.get() == 1 && outbound {
                    // The dialer opens with its Status.
                    let payload = encode_status(&self.our_status());
                    self.send_request(peer_id, Family::Status, payload, Waiter::Status(None));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.peers.remove(&peer_id);
                self.inbound.retain(|(p, _), _| *p != peer_id);
                self.pm.on_disconnected(peer_id);
                let _ = self
                    .events
                    .send(NetEvent::PeerDisconnected { peer: peer_id });
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev, answers),
            SwarmEvent::IncomingConnectionError {
                error: libp2p::swarm::ListenError::Denied { .. },
                peer_id,
                ..
            } if peer_id.is_some_and(|p| self.pm.is_banned(&p)) => {
                let _ = self
                    .events
                    .send(NetEvent::ConnectionDenied { peer: peer_id });
            }
            _ => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent, answers: &mpsc::Sender<Answer>) {
        use request_response::{Event, Message};
        let (family, ev) = match ev {
            BehaviourEvent::Identify(_)
            | BehaviourEvent::Limits(_)
            | BehaviourEvent::Blocked(_) => return,
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.on_gossip(propagation_source, message_id, message, answers);
                return;
            }
            BehaviourEvent::Gossipsub(_) => return,
            BehaviourEvent::Status(e) => (Family::Status, e),
            BehaviourEvent::Goodbye(e) => (Family::Goodbye, e),
            BehaviourEvent::Ping(e) => (Family::Ping, e),
            BehaviourEvent::Metadata(e) => (Family::MetaData, e),
            BehaviourEvent::BlocksByRange(e) => (Family::BlocksByRange, e),
            BehaviourEvent::BlocksByRoot(e) => (Family::BlocksByRoot, e),
            BehaviourEvent::ColumnsByRange(e) => (Family::ColumnsByRange, e),
            BehaviourEvent::ColumnsByRoot(e) => (Family::ColumnsByRoot, e),
        };
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(family, peer, request, channel, answers),
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.on_response(peer, request_id, response),
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.pm.on_outbound_failure(
                    peer,
                    Self::protocol_of(family),
                    &OutboundFault::of(&error),
                    std::time::Instant::now(),
                );
                let e = NetError::Request(format!("{peer}: {error}"));
                match self.pending.remove(&request_id) {
                    Some(Waiter::Status(Some(r))) => {
                        let _ = r.send(Err(e));
                    }
                    Some(Waiter::Blocks(r)) => {
                        let _ = r.send(Err(e));
                    }
                    Some(Waiter::Raw(r)) => {
                        let _ = r.send(Err(e));
                    }
                    _ => tracing::debug!(%e, "request failed"),
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        family: Family,
        peer: PeerId,
        request: RpcRequest,
        channel: ResponseChannel<RpcResponse>,
        answers: &mpsc::Sender<Answer>,
    ) {
        let protocol = request.protocol;
        let n = self.inbound.entry((peer, protocol)).or_insert(0);
        if *n >= MAX_CONCURRENT_INBOUND {
            self.pm
                .on_too_many_concurrent(peer, protocol, std::time::Instant::now());
            let _ = self.rr(family).send_response(
                channel,
                vec![RpcChunk::error(
                    ResponseCode::ResourceUnavailable,
                    "too many concurrent requests",
                )],
            );
            return;
        }
        // Malformed, over the protocol's bounds, over quota, or from a banned peer: the
        // peer manager's answer, without touching the store.
        if let Err(chunk) = self.pm.admit(peer, &request, std::time::Instant::now()) {
            let _ = self.rr(family).send_response(channel, vec![chunk]);
            return;
        }
        match family {
            Family::Status => {
                let reply = match decode_status(protocol, &request.payload) {
                    Ok(theirs) => {
                        let ok = self.check_status(&theirs);
                        self.on_peer_status(peer, theirs, ok);
                        vec![RpcChunk::success(
                            None,
                            encode_status_as(protocol, &self.our_status()),
                        )]
                    }
                    Err(e) => vec![RpcChunk::error(
                        ResponseCode::InvalidRequest,
                        &e.to_string(),
                    )],
                };
                let _ = self.rr(family).send_response(channel, reply);
            }
            Family::Goodbye => {
                let reason = request
                    .payload
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .unwrap_or(0);
                let _ = self.rr(family).send_response(channel, Vec::new());
                let _ = self.events.send(NetEvent::Goodbye { peer, reason });
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Family::Ping => {
                if let Ok(seq) = <[u8; 8]>::try_from(request.payload.as_slice()) {
                    self.pm.on_seq_number(peer, u64::from_le_bytes(seq), false);
                }
                let reply = vec![RpcChunk::success(
                    None,
                    self.metadata_seq.to_le_bytes().to_vec(),
                )];
                let _ = self.rr(family).send_response(channel, reply);
            }
            Family::MetaData => {
                let reply = vec![RpcChunk::success(None, self.encode_metadata(protocol))];
                let _ = self.rr(family).send_response(channel, reply);
            }
            Family::BlocksByRange | Family::BlocksByRoot => {
                *self.inbound.entry((peer, protocol)).or_insert(0) += 1;
                let reader = self.chain.reader().clone();
                let digests = self.digests.clone();
                let spe = crate::chain::any::slots_per_epoch(self.chain.preset());
                let answers = answers.clone();
                let payload = request.payload;
                tokio::task::spawn_blocking(move || {
                    let chunks = serve_blocks(family, &reader, &digests, spe, &payload);
                    let _ = answers.blocking_send(Answer::Respond {
                        family,
                        peer,
                        protocol,
                        channel,
                        chunks,
                    });
                });
            }
            Family::ColumnsByRange | Family::ColumnsByRoot => {
                *self.inbound.entry((peer, protocol)).or_insert(0) += 1;
                let reader = self.chain.reader().clone();
                let window = self.column_window;
                let answers = answers.clone();
                let payload = request.payload;
                tokio::task::spawn_blocking(move || {
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    let chunks = match family {
                        Family::ColumnsByRange => {
                            super::columns::serve_range(&reader, &window, now_ms, &payload)
                        }
                        _ => super::columns::serve_root(&reader, &window, now_ms, &payload),
                    };
                    let _ = answers.blocking_send(Answer::Respond {
                        family,
                        peer,
                        protocol,
                        channel,
                        chunks,
                    });
                });
            }
        }
    }

    fn encode_metadata(&self, protocol: Protocol) -> Vec<u8> {
        // No attestation or sync-committee subnets yet; CUSTODY_REQUIREMENT custody groups.
        let v3 = messages::MetaDataV3 {
            seq_number: self.metadata_seq,
            attnets: Default::default(),
            syncnets: Default::default(),
            custody_group_count: CUSTODY_REQUIREMENT,
        };
        let encoded = if protocol == Protocol::MetaDataV2 {
            ssz_encode(&messages::MetaDataV2 {
                seq_number: v3.seq_number,
                attnets: v3.attnets,
                syncnets: v3.syncnets,
            })
        } else {
            ssz_encode(&v3)
        };
        encoded.unwrap_or_default()
    }

    fn on_peer_status(&mut self, peer: PeerId, status: PeerStatus, ok: Result<(), String>) {
        match ok {
            Ok(()) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.status = Some(status);
                }
                let _ = self.events.send(NetEvent::PeerReady { peer, status });
            }
            Err(why) => {
                tracing::info!(%peer, why, "irrelevant peer: goodbye");
                self.send_goodbye(peer, GOODBYE_IRRELEVANT_NETWORK);
            }
        }
    }

    fn on_response(&mut self, peer: PeerId, id: OutboundRequestId, response: RpcResponse) {
        match self.pending.remove(&id) {
            Some(Waiter::Status(reply)) => {
                let r = match response.first() {
                    Some(c) if c.code == ResponseCode::Success => {
                        decode_status(Protocol::StatusV2, &c.payload)
                            .or_else(|_| decode_status(Protocol::StatusV1, &c.payload))
                    }
                    Some(c) => Err(NetError::Request(format!(
                        "status refused: {}",
                        c.message()
                    ))),
                    None => Err(NetError::Request("empty status response".into())),
                };
                if let Ok(s) = &r {
                    let ok = self.check_status(s);
                    self.on_peer_status(peer, *s, ok);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Some(Waiter::Blocks(reply)) => {
                let r = response
                    .into_iter()
                    .map(|c| {
                        if c.code == ResponseCode::Success {
                            Ok(c.payload)
                        } else {
                            Err(NetError::Response {
                                code: c.code,
                                message: c.message(),
                            })
                        }
                    })
                    .collect();
                let _ = reply.send(r);
            }
            Some(Waiter::Raw(reply)) => {
                let _ = reply.send(Ok(response));
            }
            Some(Waiter::Pong) => match response.first() {
                Some(c) if c.code == ResponseCode::Success && c.payload.len() == 8 => {
                    let mut seq = [0u8; 8];
                    seq.copy_from_slice(&c.payload);
                    self.pm.on_seq_number(peer, u64::from_le_bytes(seq), true);
                }
                _ => self.pm.on_outbound_failure(
                    peer,
                    Protocol::PingV1,
                    &OutboundFault::Io,
                    std::time::Instant::now(),
                ),
            },
            Some(Waiter::MetaData) => {
                let md = response
                    .first()
                    .filter(|c| c.code == ResponseCode::Success)
                    .and_then(|c| {
                        messages::MetaDataV3::ssz_decode(&c.payload)
                            .map(|m| (m.seq_number, Some(m.custody_group_count)))
                            .or_else(|_| {
                                messages::MetaDataV2::ssz_decode(&c.payload)
                                    .map(|m| (m.seq_number, None))
                            })
                            .ok()
                    });
                match md {
                    Some((seq, cgc)) => self.pm.on_metadata(peer, seq, cgc),
                    None => self.pm.on_outbound_failure(
                        peer,
                        Protocol::MetaDataV3,
                        &OutboundFault::Io,
                        std::time::Instant::now(),
                    ),
                }
            }
            Some(Waiter::Nothing) | None => {}
        }
    }

    fn on_gossip(
        &mut self,
        from: PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
        answers: &mpsc::Sender<Answer>,
    ) {
        let topic = message.topic.as_str().to_string();
        let verdict_now = |kind, v| {
            let _ = answers.try_send(Answer::Gossip {
                from,
                id: id.clone(),
                kind,
                verdict: v,
            });
        };
        let Some((digest, kind)) = gossip::parse_topic(&topic) else {
            verdict_now(
                None,
                GossipVerdict::Reject(BlockError::Decode(format!("unknown topic {topic}"))),
            );
            return;
        };
        if self.digests.by_digest(digest).is_none() {
            verdict_now(
                Some(kind),
                GossipVerdict::Reject(BlockError::Decode(format!(
                    "unknown fork digest on {topic}"
                ))),
            );
            return;
        }
        let ssz = match gossip::decompress(&message.data) {
            Ok(s) => s,
            Err(e) => {
                verdict_now(
                    Some(kind),
                    GossipVerdict::Reject(BlockError::Decode(e.to_string())),
                );
                return;
            }
        };
        // Attestations, aggregates and sync-committee messages go to the validation pool
        // (bounded; batched signature checks; a full queue IGNOREs at once). Everything
        // else to the chain handle: blocks to the chain thread, operations against the
        // published head.
        let chain_topic = kind.chain_topic();
        let chain = self.chain.clone();
        let answers = answers.clone();
        let head = chain.head();
        let now = GossipClock::now(head.genesis_time);
        if chain_topic.is_attestation_topic() {
            let reply = self.pool.submit(GossipMessage {
                topic: chain_topic,
                message: ssz,
                now,
            });
            tokio::spawn(async move {
                let verdict = reply.wait().await;
                let _ = answers
                    .send(Answer::Gossip {
                        from,
                        id,
                        kind: Some(kind),
                        verdict,
                    })
                    .await;
            });
            return;
        }
        tokio::spawn(async move {
            let verdict = match chain
                .validate_gossip(chain_topic, ssz, BlockSource::Gossip(from.to_string()), now)
                .await
            {
                Ok(v) => v,
                Err(e) => GossipVerdict::Ignore(BlockError::Internal(e.to_string())),
            };
            let _ = answers
                .send(Answer::Gossip {
                    from,
                    id,
                    kind: Some(kind),
                    verdict,
                })
                .await;
        });
    }
}

/// Answer a blocks-by-range or by-root request from committed data: each block a chunk
/// with the fork digest of its epoch as context; a request beyond the protocol's bounds
/// gets InvalidRequest.
fn serve_blocks(
    family: Family,
    reader: &crate::chain::service::ChainReader,
    digests: &fork_digest::ForkDigests,
    slots_per_epoch: u64,
    payload: &[u8],
) -> RpcResponse {
    let chunk_of = |slot: u64, ssz: Vec<u8>| {
        RpcChunk::success(Some(digests.digest_at_epoch(slot / slots_per_epoch)), ssz)
    };
    match family {
        Family::BlocksByRange => {
            let req = match messages::BeaconBlocksByRangeRequestV2::ssz_decode(payload) {
                Ok(r) => r,
                Err(e) => {
                    return vec![RpcChunk::error(
                        ResponseCode::InvalidRequest,
                        &e.to_string(),
                    )]
                }
            };
            if req.count > messages::MAX_REQUEST_BLOCKS_DENEB as u64 {
                return vec![RpcChunk::error(
                    ResponseCode::InvalidRequest,
                    "count over MAX_REQUEST_BLOCKS_DENEB",
                )];
            }
            // A range reaching below the oldest block held (a checkpoint-synced node
            // still backfilling) is not claimed: the spec's ResourceUnavailable.
            let earliest = reader.head().earliest_available_slot;
            if req.count > 0 && req.start_slot < earliest {
                return vec![RpcChunk::error(
                    ResponseCode::ResourceUnavailable,
                    &format!("blocks before slot {earliest} are not held (backfilling)"),
                )];
            }
            match reader.blocks_by_range(req.start_slot, req.count) {
                Ok(blocks) => blocks
                    .into_iter()
                    .map(|b| chunk_of(b.slot, b.ssz))
                    .collect(),
                Err(e) => vec![RpcChunk::error(ResponseCode::ServerError, &e.to_string())],
            }
        }
        Family::BlocksByRoot => {
            if payload.len() % 32 != 0 || payload.len() / 32 > messages::MAX_REQUEST_BLOCKS_DENEB {
                return vec![RpcChunk::error(
                    ResponseCode::InvalidRequest,
                    "not a list of at most MAX_REQUEST_BLOCKS_DENEB roots",
                )];
            }
            let mut out = Vec::new();
            for root in payload.chunks_exact(32) {
                let mut r = [0u8; 32];
                r.copy_from_slice(root);
                match reader.block_by_root(&r) {
                    Ok(Some(ssz)) => {
                        let slot = crate::store::schema::signed_block_slot(&ssz).unwrap_or(0);
                        out.push(chunk_of(slot, ssz));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        out.push(RpcChunk::error(ResponseCode::ServerError, &e.to_string()));
                        break;
                    }
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn encode_status(s: &PeerStatus) -> Vec<u8> {
    encode_status_as(Protocol::StatusV2, s)
}

/// Our Status as the `protocol`'s container (v1 drops `earliest_available_slot`).
fn encode_status_as(protocol: Protocol, s: &PeerStatus) -> Vec<u8> {
    let v2 = messages::StatusV2 {
        fork_digest: s.fork_digest.into(),
        finalized_root: s.finalized_root.into(),
        finalized_epoch: s.finalized_epoch,
        head_root: s.head_root.into(),
        head_slot: s.head_slot,
        earliest_available_slot: s.earliest_available_slot.unwrap_or(0),
    };
    let encoded = if protocol == Protocol::StatusV1 {
        ssz_encode(&messages::StatusV1 {
            fork_digest: v2.fork_digest,
            finalized_root: v2.finalized_root,
            finalized_epoch: v2.finalized_epoch,
            head_root: v2.head_root,
            head_slot: v2.head_slot,
        })
    } else {
        ssz_encode(&v2)
    };
    // Fixed-size containers of byte vectors and integers always encode.
    encoded.unwrap_or_default()
}

fn decode_status(protocol: Protocol, b: &[u8]) -> Result<PeerStatus, NetError> {
    let codec = |e: crate::types::ssz::DecodeError| NetError::Codec(format!("status: {e}"));
    if protocol == Protocol::StatusV1 {
        let s = messages::StatusV1::ssz_decode(b).map_err(codec)?;
        return Ok(PeerStatus {
            fork_digest: *s.fork_digest.as_bytes(),
            finalized_root: *s.finalized_root.as_bytes(),
            finalized_epoch: s.finalized_epoch,
            head_root: *s.head_root.as_bytes(),
            head_slot: s.head_slot,
            earliest_available_slot: None,
        });
    }
    let s = messages::StatusV2::ssz_decode(b).map_err(codec)?;
    Ok(PeerStatus {
        fork_digest: *s.fork_digest.as_bytes(),
        finalized_root: *s.finalized_root.as_bytes(),
        finalized_epoch: s.finalized_epoch,
        head_root: *s.head_root.as_bytes(),
        head_slot: s.head_slot,
        earliest_available_slot: Some(s.earliest_available_slot),
    })
}
