//! The peer manager: a score per peer, penalties by what the peer did, bans, inbound rate
//! limits, and the ping / metadata keep-alive.
//!
//! Scores follow Lighthouse's model: a real number in [−100, 100], 0 for a new peer,
//! decaying exponentially back toward 0 with a half-life of 10 minutes. A peer at or below
//! −20 is sent Goodbye (`BAD_SCORE`) and disconnected; at or below −50 it is sent Goodbye
//! (`BANNED`), disconnected and refused on reconnect, and its score is held for the ban
//! time before it starts to decay; the ban lifts once the score has decayed above −50.
//!
//! Penalties are [`PeerAction`]s, applied from: the chain's typed faults
//! ([`action_for_fault`]: only [`Fault::Peer`] costs), gossip `REJECT` verdicts (the peer
//! that sent the message), req/resp protocol errors in either direction (malformed frames,
//! requests over the protocol's bounds, timeouts, protocols a peer must speak but does not),
//! rate-limit excess, and whatever sync reports through `NetworkHandle::report_peer`.
//!
//! The manager decides; the swarm task acts. Its decisions come out of
//! [`PeerManager::take_actions`] as [`Enforce`] items (send goodbye, disconnect, block,
//! unblock, ping, fetch metadata), so the manager is plain data, tested without a swarm.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::codec::{DecodeError, ResponseCode};
use super::messages::{goodbye, Protocol};
use super::rate_limit::{self, Limited, RateLimitConfig, RateLimiter};
use super::rpc::{RequestFault, RpcChunk, RpcRequest};
use crate::chain::error::{BlockError, Fault};
use crate::chain::service::GossipVerdict;

/// The score of a new peer.
pub const DEFAULT_SCORE: f64 = 0.0;
/// The best score a peer can have.
pub const MAX_SCORE: f64 = 100.0;
/// The worst score a peer can have (what [`PeerAction::Fatal`] sets).
pub const MIN_SCORE: f64 = -100.0;
/// At or below this score a peer is disconnected.
pub const MIN_SCORE_BEFORE_DISCONNECT: f64 = -20.0;
/// At or below this score a peer is banned.
pub const MIN_SCORE_BEFORE_BAN: f64 = -50.0;
/// The half-life of a score's decay toward 0.
pub const SCORE_HALF_LIFE: Duration = Duration::from_secs(600);
/// How long a banned peer's score is held before it starts to decay.
pub const BANNED_BEFORE_DECAY: Duration = Duration::from_secs(12 * 3600);
/// How often the manager decays scores, lifts bans and looks for pings due.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// Disconnected peers whose score is remembered (the worst are kept), banned ones included.
pub const MAX_REMEMBERED_PEERS: usize = 1024;

/// What a peer did, by how much it costs (Lighthouse's names and magnitudes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAction {
    /// Nothing more to do with this peer: its score goes to −100 (banned).
    Fatal,
    /// Not tolerated: −10 (a few get the peer disconnected, five banned).
    LowToleranceError,
    /// Not necessarily malicious: −5.
    MidToleranceError,
    /// Tolerated often: −1.
    HighToleranceError,
}

impl PeerAction {
    fn apply(self, score: f64) -> f64 {
        match self {
            PeerAction::Fatal => MIN_SCORE,
            PeerAction::LowToleranceError => score - 10.0,
            PeerAction::MidToleranceError => score - 5.0,
            PeerAction::HighToleranceError => score - 1.0,
        }
        .clamp(MIN_SCORE, MAX_SCORE)
    }
}

/// The penalty for a block refused by the chain: only the peer's faults cost.
pub fn action_for_fault(e: &BlockError) -> Option<PeerAction> {
    (e.fault() == Fault::Peer).then_some(PeerAction::LowToleranceError)
}

/// The penalty for a gossip verdict on a message the peer sent us: a `REJECT` of the
/// peer's fault. (An `Invalid` block passed the gossip conditions, so its relayer followed
/// the spec; an `IGNORE` is nobody's fault.)
pub fn action_for_gossip(v: &GossipVerdict) -> Option<PeerAction> {
    match v {
        GossipVerdict::Reject(e) => action_for_fault(e),
        _ => None,
    }
}

/// What a peer's score says to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreState {
    Healthy,
    Disconnect,
    Banned,
}

fn state_of(score: f64) -> ScoreState {
    if score <= MIN_SCORE_BEFORE_BAN {
        ScoreState::Banned
    } else if score <= MIN_SCORE_BEFORE_DISCONNECT {
        ScoreState::Disconnect
    } else {
        ScoreState::Healthy
    }
}

/// How the peer manager runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerManagerConfig {
    /// Each connected peer is pinged this often (and its MetaData re-fetched when its
    /// `seq_number` grew).
    pub ping_interval: Duration,
    /// A banned peer's score is held this long before it decays.
    pub ban_duration: Duration,
    /// The half-life of score decay.
    pub score_half_life: Duration,
    /// How long a goodbye gets to leave before the connection is closed.
    pub goodbye_grace: Duration,
    /// Inbound request quotas.
    pub rate_limits: RateLimitConfig,
}

impl Default for PeerManagerConfig {
    fn default() -> Self {
        PeerManagerConfig {
            ping_interval: Duration::from_secs(20),
            ban_duration: BANNED_BEFORE_DECAY,
            score_half_life: SCORE_HALF_LIFE,
            goodbye_grace: Duration::from_millis(500),
            rate_limits: RateLimitConfig::default(),
        }
    }
}

/// What the swarm task is to do for the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforce {
    /// Send Goodbye with this reason.
    Goodbye { peer: PeerId, reason: u64 },
    /// Close the peer's connections.
    Disconnect(PeerId),
    /// Put the peer on the block list (closes its connections, refuses new ones).
    Ban(PeerId),
    /// Take the peer off the block list.
    Unban(PeerId),
    /// Ping the peer with our `seq_number`.
    Ping(PeerId),
    /// Ask the peer for its MetaData.
    MetaData(PeerId),
}

#[derive(Debug, Clone)]
struct Record {
    score: f64,
    /// The score decays from here; a ban sets it into the future (the score is held).
    decay_from: Instant,
    state: ScoreState,
    connected: bool,
    /// When a goodbye for a bad score or a ban was sent: the connection closes at this.
    close_at: Option<Instant>,
    next_ping: Option<Instant>,
    ping_in_flight: bool,
    metadata_seq: Option<u64>,
    custody_group_count: Option<u64>,
    metadata_in_flight: bool,
}

impl Record {
    fn new(now: Instant) -> Self {
        Record {
            score: DEFAULT_SCORE,
            decay_from: now,
            state: ScoreState::Healthy,
            connected: false,
            close_at: None,
            next_ping: None,
            ping_in_flight: false,
            metadata_seq: None,
            custody_group_count: None,
            metadata_in_flight: false,
        }
    }
}

/// What the manager knows of a peer (for `PeerInfo`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerView {
    pub score: f64,
    pub state: ScoreState,
    pub metadata_seq: Option<u64>,
    pub custody_group_count: Option<u64>,
}

/// Scores, bans, rate limits and keep-alive of every peer.
#[derive(Debug)]
pub struct PeerManager {
    config: PeerManagerConfig,
    peers: HashMap<PeerId, Record>,
    limiter: RateLimiter,
    actions: VecDeque<Enforce>,
}

impl PeerManager {
    pub fn new(config: PeerManagerConfig) -> Self {
        PeerManager {
            limiter: RateLimiter::new(config.rate_limits.clone()),
            config,
            peers: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// The decisions made since the last call, in order.
    pub fn take_actions(&mut self) -> impl Iterator<Item = Enforce> + '_ {
        self.actions.drain(..)
    }

    pub fn view(&self, peer: &PeerId) -> Option<PeerView> {
        self.peers.get(peer).map(|r| PeerView {
            score: r.score,
            state: r.state,
            metadata_seq: r.metadata_seq,
            custody_group_count: r.custody_group_count,
        })
    }

    pub fn score(&self, peer: &PeerId) -> f64 {
        self.peers.get(peer).map_or(DEFAULT_SCORE, |r| r.score)
    }

    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|r| r.state == ScoreState::Banned)
    }

    /// Peers remembered (connected or not): bounded by the connection limits plus
    /// [`MAX_REMEMBERED_PEERS`].
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Rate-limit buckets held.
    pub fn rate_limit_buckets(&self) -> usize {
        self.limiter.len()
    }

    /// A connection to the peer was established. A banned peer is put back on the block
    /// list at once (its connection closes).
    pub fn on_connected(&mut self, peer: PeerId, now: Instant) {
        let ping_interval = self.config.ping_interval;
        let r = self.peers.entry(peer).or_insert_with(|| Record::new(now));
        r.connected = true;
        r.next_ping = Some(now + ping_interval);
        match r.state {
            ScoreState::Banned => self.actions.push_back(Enforce::Ban(peer)),
            ScoreState::Disconnect => {
                // Still below the disconnect threshold: not welcome yet.
                r.close_at = Some(now + self.config.goodbye_grace);
                self.actions.push_back(Enforce::Goodbye {
                    peer,
                    reason: goodbye::BAD_SCORE,
                });
            }
            ScoreState::Healthy => {}
        }
    }

    /// The peer's last connection closed: its rate-limit buckets go; its score is kept
    /// if it is not 0 (so a reconnect does not wash it), within [`MAX_REMEMBERED_PEERS`].
    pub fn on_disconnected(&mut self, peer: PeerId) {
        self.limiter.remove_peer(&peer);
        if let Some(r) = self.peers.get_mut(&peer) {
            r.connected = false;
            r.ping_in_flight = false;
            r.metadata_in_flight = false;
            r.next_ping = None;
            if r.state == ScoreState::Healthy && r.score.abs() < 0.5 {
                self.peers.remove(&peer);
            }
        }
        self.bound_memory();
    }

    fn bound_memory(&mut self) {
        let disconnected = self.peers.values().filter(|r| !r.connected).count();
        if disconnected <= MAX_REMEMBERED_PEERS {
            return;
        }
        // Forget the disconnected peers with the best scores first.
        let mut gone: Vec<(f64, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, r)| !r.connected)
            .map(|(p, r)| (r.score, *p))
            .collect();
        gone.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, p) in gone.into_iter().take(disconnected - MAX_REMEMBERED_PEERS) {
            if let Some(r) = self.peers.remove(&p) {
                if r.state == ScoreState::Banned {
                    self.actions.push_back(Enforce::Unban(p));
                }
            }
        }
    }

    /// Lower the peer's score by `action`; a crossing of the disconnect or ban threshold
    /// queues the goodbye and the disconnection (or ban).
    pub fn report(&mut self, peer: PeerId, action: PeerAction, reason: &str, now: Instant) {
        let half_life = self.config.score_half_life;
        let r = self.peers.entry(peer).or_insert_with(|| Record::new(now));
        decay(r, now, half_life);
        let before = r.state;
        r.score = action.apply(r.score);
        let after = state_of(r.score);
        tracing::debug!(%peer, ?action, reason, score = r.score, "peer penalised");
        self.set_state(peer, before, after, now);
    }

    fn set_state(&mut self, peer: PeerId, before: ScoreState, after: ScoreState, now: Instant) {
        let grace = self.config.goodbye_grace;
        let ban = self.config.ban_duration;
        let Some(r) = self.peers.get_mut(&peer) else {
            return;
        };
        r.state = after;
        match (before, after) {
            (ScoreState::Healthy, ScoreState::Disconnect) => {
                tracing::info!(%peer, score = r.score, "score below the disconnect threshold");
                if r.connected && r.close_at.is_none() {
                    r.close_at = Some(now + grace);
                    self.actions.push_back(Enforce::Goodbye {
                        peer,
                        reason: goodbye::BAD_SCORE,
                    });
                }
            }
            (ScoreState::Healthy | ScoreState::Disconnect, ScoreState::Banned) => {
                tracing::info!(%peer, score = r.score, "peer banned");
                // The score is held for the ban time, then decays.
                r.decay_from = now + ban;
                if r.connected {
                    r.close_at = Some(now + grace);
                    self.actions.push_back(Enforce::Goodbye {
                        peer,
                        reason: goodbye::BANNED,
                    });
                } else {
                    self.actions.push_back(Enforce::Ban(peer));
                }
            }
            (ScoreState::Banned, ScoreState::Disconnect | ScoreState::Healthy) => {
                tracing::info!(%peer, score = r.score, "ban lifted");
                self.actions.push_back(Enforce::Unban(peer));
            }
            _ => {}
        }
    }

    /// Time passes: scores decay, bans lift, goodbyes that had their grace become
    /// disconnections (or bans), pings fall due, idle rate-limit buckets are pruned.
    pub fn heartbeat(&mut self, now: Instant) {
        let half_life = self.config.score_half_life;
        let ping_interval = self.config.ping_interval;
        let mut changes = Vec::new();
        for (peer, r) in self.peers.iter_mut() {
            let before = r.state;
            decay(r, now, half_life);
            let after = state_of(r.score);
            if after != before {
                changes.push((*peer, before, after));
            }
            if r.close_at.is_some_and(|t| t <= now) {
                r.close_at = None;
                self.actions.push_back(if r.state == ScoreState::Banned {
                    Enforce::Ban(*peer)
                } else {
                    Enforce::Disconnect(*peer)
                });
            }
            if r.connected
                && r.state == ScoreState::Healthy
                && !r.ping_in_flight
                && r.next_ping.is_some_and(|t| t <= now)
            {
                r.ping_in_flight = true;
                r.next_ping = Some(now + ping_interval);
                self.actions.push_back(Enforce::Ping(*peer));
            }
        }
        for (peer, before, after) in changes {
            self.set_state(peer, before, after, now);
        }
        self.peers
            .retain(|_, r| r.connected || r.state != ScoreState::Healthy || r.score.abs() >= 0.5);
        self.limiter.prune(now);
    }

    /// The peer answered our ping with its `seq_number` (or pinged us with it): fetch its
    /// MetaData when that is newer than what we hold.
    pub fn on_seq_number(&mut self, peer: PeerId, seq: u64, pong: bool) {
        let Some(r) = self.peers.get_mut(&peer) else {
            return;
        };
        if pong {
            r.ping_in_flight = false;
        }
        if r.metadata_seq.is_none_or(|s| seq > s) && !r.metadata_in_flight && r.connected {
            r.metadata_in_flight = true;
            self.actions.push_back(Enforce::MetaData(peer));
        }
    }

    /// The peer's MetaData came.
    pub fn on_metadata(&mut self, peer: PeerId, seq: u64, custody_group_count: Option<u64>) {
        if let Some(r) = self.peers.get_mut(&peer) {
            r.metadata_in_flight = false;
            r.metadata_seq = Some(seq);
            r.custody_group_count = custody_group_count.or(r.custody_group_count);
        }
    }

    /// Whether an inbound request is served: `Err(chunk)` is the answer instead (the
    /// spec's `InvalidRequest` for a malformed request or one over the protocol's bounds,
    /// `ResourceUnavailable` "rate limited" over quota), the peer penalised as it
    /// deserves. Nothing here touches the store.
    pub fn admit(
        &mut self,
        peer: PeerId,
        request: &RpcRequest,
        now: Instant,
    ) -> Result<(), RpcChunk> {
        if self.is_banned(&peer) {
            return Err(RpcChunk::error(ResponseCode::ResourceUnavailable, "banned"));
        }
        let protocol = request.protocol;
        if let Some(fault) = &request.fault {
            let (action, message) = match fault {
                RequestFault::Malformed(e) => (PeerAction::LowToleranceError, e.to_string()),
                RequestFault::Timeout => (
                    PeerAction::HighToleranceError,
                    "request not received within TTFB_TIMEOUT".to_string(),
                ),
            };
            self.report(peer, action, &message, now);
            return Err(RpcChunk::error(ResponseCode::InvalidRequest, &message));
        }
        let cost = match rate_limit::request_cost(protocol, &request.payload) {
            Ok(c) => c,
            Err(message) => {
                self.report(peer, PeerAction::LowToleranceError, &message, now);
                return Err(RpcChunk::error(ResponseCode::InvalidRequest, &message));
            }
        };
        match self.limiter.allows(peer, protocol, cost, now) {
            Ok(()) => Ok(()),
            Err(Limited::TooSoon { wait }) => {
                self.report(
                    peer,
                    PeerAction::HighToleranceError,
                    &format!("{} over quota, wait {wait:?}", protocol.name()),
                    now,
                );
                Err(RpcChunk::error(
                    ResponseCode::ResourceUnavailable,
                    "rate limited",
                ))
            }
            // Our quota is smaller than a valid request: our configuration, not the peer.
            Err(Limited::TooLarge { .. }) => Err(RpcChunk::error(
                ResponseCode::ResourceUnavailable,
                "rate limited",
            )),
        }
    }

    /// More concurrent requests on one protocol than the spec allows (two).
    pub fn on_too_many_concurrent(&mut self, peer: PeerId, protocol: Protocol, now: Instant) {
        self.report(
            peer,
            PeerAction::HighToleranceError,
            &format!("over two concurrent {} requests", protocol.name()),
            now,
        );
    }

    /// An outbound request of ours failed; the peer pays for what was its doing.
    pub fn on_outbound_failure(
        &mut self,
        peer: PeerId,
        protocol: Protocol,
        failure: &OutboundFault,
        now: Instant,
    ) {
        use Protocol::*;
        let action = match failure {
            // A peer must speak status, ping and metadata.
            OutboundFault::Unsupported => match protocol {
                StatusV1 | StatusV2 | PingV1 | MetaDataV2 | MetaDataV3 => {
                    Some(PeerAction::LowToleranceError)
                }
                _ => None,
            },
            OutboundFault::Timeout => match protocol {
                PingV1 => Some(PeerAction::LowToleranceError),
                BeaconBlocksByRangeV2
                | BeaconBlocksByRootV2
                | DataColumnSidecarsByRangeV1
                | DataColumnSidecarsByRootV1 => Some(PeerAction::MidToleranceError),
                _ => None,
            },
            // Bytes no spec-following responder sends (bad framing, lying lengths,
            // corrupt snappy, too many chunks, unknown context bytes).
            OutboundFault::Malformed(e) if e.is_peer_fault() => Some(PeerAction::LowToleranceError),
            OutboundFault::Malformed(_) => None,
            OutboundFault::Io => Some(PeerAction::HighToleranceError),
            OutboundFault::Closed => None,
        };
        if let Some(r) = self.peers.get_mut(&peer) {
            match protocol {
                PingV1 => r.ping_in_flight = false,
                MetaDataV2 | MetaDataV3 => r.metadata_in_flight = false,
                _ => {}
            }
        }
        if let Some(action) = action {
            let reason = format!("{} request: {failure:?}", protocol.name());
            self.report(peer, action, &reason, now);
        }
    }
}

/// An outbound request's failure, by whose doing it may be.
#[derive(Debug, Clone)]
pub enum OutboundFault {
    /// The peer does not speak the protocol.
    Unsupported,
    /// No (complete) answer in time.
    Timeout,
    /// The response did not decode.
    Malformed(DecodeError),
    /// Another stream error.
    Io,
    /// The connection closed, or could not be made.
    Closed,
}

impl OutboundFault {
    pub fn of(e: &libp2p::request_response::OutboundFailure) -> Self {
        use libp2p::request_response::OutboundFailure as F;
        match e {
            F::UnsupportedProtocols => OutboundFault::Unsupported,
            F::Timeout => OutboundFault::Timeout,
            F::DialFailure | F::ConnectionClosed => OutboundFault::Closed,
            F::Io(io) => {
                if let Some(d) = io.get_ref().and_then(|e| e.downcast_ref::<DecodeError>()) {
                    OutboundFault::Malformed(d.clone())
                } else if io.kind() == std::io::ErrorKind::TimedOut {
                    OutboundFault::Timeout
                } else {
                    OutboundFault::Io
                }
            }
        }
    }
}

/// Exponential decay toward 0 since `decay_from` (nothing while a ban holds it).
fn decay(r: &mut Record, now: Instant, half_life: Duration) {
    if let Some(dt) = now.checked_duration_since(r.decay_from) {
        let hl = half_life.as_secs_f64().max(1e-3);
        r.score *= (-(std::f64::consts::LN_2) * dt.as_secs_f64() / hl).exp();
        r.decay_from = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm() -> PeerManager {
        PeerManager::new(PeerManagerConfig::default())
    }

    #[test]
    fn scores_cross_the_thresholds_and_decay_back() {
        let mut m = pm();
        let p = PeerId::random();
        let t0 = Instant::now();
        m.on_connected(p, t0);
        m.report(p, PeerAction::LowToleranceError, "x", t0);
        assert_eq!(m.score(&p), -10.0);
        assert_eq!(m.take_actions().count(), 0);
        m.report(p, PeerAction::LowToleranceError, "x", t0);
        assert_eq!(
            m.take_actions().collect::<Vec<_>>(),
            vec![Enforce::Goodbye {
                peer: p,
                reason: goodbye::BAD_SCORE
            }]
        );
        // The grace passes: disconnect.
        m.heartbeat(t0 + Duration::from_secs(1));
        assert_eq!(
            m.take_actions().collect::<Vec<_>>(),
            vec![Enforce::Disconnect(p)]
        );
        m.on_disconnected(p);
        // One half-life later the score is half.
        m.heartbeat(t0 + Duration::from_secs(601));
        assert!((m.score(&p) + 10.0).abs() < 0.1, "{}", m.score(&p));
        assert_eq!(m.view(&p).unwrap().state, ScoreState::Healthy);
        // Long after, the record is forgotten (score ~0, not connected).
        m.heartbeat(t0 + Duration::from_secs(600 * 20));
        assert!(m.is_empty());
    }

    #[test]
    fn a_banned_peer_is_held_then_released() {
        let mut m = pm();
        let p = PeerId::random();
        let t0 = Instant::now();
        m.on_connected(p, t0);
        m.report(p, PeerAction::Fatal, "x", t0);
        assert_eq!(m.score(&p), MIN_SCORE);
        assert!(m.is_banned(&p));
        assert_eq!(
            m.take_actions().collect::<Vec<_>>(),
            vec![Enforce::Goodbye {
                peer: p,
                reason: goodbye::BANNED
            }]
        );
        m.heartbeat(t0 + Duration::from_secs(1));
        assert_eq!(m.take_actions().collect::<Vec<_>>(), vec![Enforce::Ban(p)]);
        m.on_disconnected(p);
        // A reconnect while banned is closed again.
        m.on_connected(p, t0 + Duration::from_secs(2));
        assert_eq!(m.take_actions().collect::<Vec<_>>(), vec![Enforce::Ban(p)]);
        m.on_disconnected(p);
        // Held for the ban time…
        m.heartbeat(t0 + BANNED_BEFORE_DECAY);
        assert_eq!(m.score(&p), MIN_SCORE);
        // …then decays: still banned at −56 after 500 s, free at −44.5 after 700 s.
        m.heartbeat(t0 + BANNED_BEFORE_DECAY + Duration::from_secs(500));
        assert!(m.is_banned(&p));
        m.heartbeat(t0 + BANNED_BEFORE_DECAY + Duration::from_secs(700));
        assert!(!m.is_banned(&p));
        assert_eq!(
            m.take_actions().collect::<Vec<_>>(),
            vec![Enforce::Unban(p)]
        );
    }

    #[test]
    fn pings_fall_due_and_new_seq_numbers_fetch_metadata() {
        let mut m = pm();
        let p = PeerId::random();
        let t0 = Instant::now();
        m.on_connected(p, t0);
        m.heartbeat(t0 + Duration::from_secs(1));
        assert_eq!(m.take_actions().count(), 0);
        m.heartbeat(t0 + Duration::from_secs(21));
        assert_eq!(m.take_actions().collect::<Vec<_>>(), vec![Enforce::Ping(p)]);
        // No second ping while one is in flight.
        m.heartbeat(t0 + Duration::from_secs(45));
        assert_eq!(m.take_actions().count(), 0);
        m.on_seq_number(p, 3, true);
        assert_eq!(
            m.take_actions().collect::<Vec<_>>(),
            vec![Enforce::MetaData(p)]
        );
        m.on_metadata(p, 3, Some(4));
        m.on_seq_number(p, 3, true);
        assert_eq!(m.take_actions().count(), 0);
        m.on_seq_number(p, 4, false);
        assert_eq!(
            m.take_actions().collect::<Vec<_>>(),
            vec![Enforce::MetaData(p)]
        );
        assert_eq!(m.view(&p).unwrap().custody_group_count, Some(4));
    }

    #[test]
    fn requests_are_judged_before_the_store_is_touched() {
        use crate::types::ssz::ssz_encode;
        let mut cfg = PeerManagerConfig::default();
        cfg.rate_limits.blocks_by_range = super::super::rate_limit::Quota::n_every(128, 10);
        let mut m = PeerManager::new(cfg);
        let p = PeerId::random();
        let t0 = Instant::now();
        m.on_connected(p, t0);
        let range = |count| RpcRequest {
            protocol: Protocol::BeaconBlocksByRangeV2,
            payload: ssz_encode(&super::super::messages::BeaconBlocksByRangeRequestV2 {
                start_slot: 0,
                count,
                step: 1,
            })
            .unwrap(),
            fault: None,
        };
        assert!(m.admit(p, &range(100), t0).is_ok());
        let refused = m.admit(p, &range(100), t0).unwrap_err();
        assert_eq!(refused.code, ResponseCode::ResourceUnavailable);
        assert_eq!(refused.message(), "rate limited");
        assert_eq!(m.score(&p), -1.0);
        let too_big = m.admit(p, &range(129), t0).unwrap_err();
        assert_eq!(too_big.code, ResponseCode::InvalidRequest);
        assert_eq!(m.score(&p), -11.0);
        let malformed = RpcRequest {
            protocol: Protocol::BeaconBlocksByRangeV2,
            payload: Vec::new(),
            fault: Some(RequestFault::Malformed(DecodeError::VarintTooLong)),
        };
        assert_eq!(
            m.admit(p, &malformed, t0).unwrap_err().code,
            ResponseCode::InvalidRequest
        );
        assert_eq!(m.score(&p), -21.0);
        m.on_disconnected(p);
        assert_eq!(m.rate_limit_buckets(), 0);
    }

    #[test]
    fn only_the_peers_faults_cost() {
        assert_eq!(
            action_for_fault(&BlockError::Decode("x".into())),
            Some(PeerAction::LowToleranceError)
        );
        assert_eq!(action_for_fault(&BlockError::AlreadyKnown), None);
        assert_eq!(action_for_fault(&BlockError::Internal("disk".into())), None);
        assert_eq!(
            action_for_gossip(&GossipVerdict::Ignore(BlockError::AlreadyKnown)),
            None
        );
        assert_eq!(
            action_for_gossip(&GossipVerdict::Invalid(BlockError::MarkedInvalid)),
            None
        );
        assert_eq!(
            action_for_gossip(&GossipVerdict::Reject(BlockError::MarkedInvalid)),
            Some(PeerAction::LowToleranceError)
        );
    }

    #[test]
    fn memory_of_disconnected_peers_is_bounded() {
        let mut m = pm();
        let t0 = Instant::now();
        for _ in 0..MAX_REMEMBERED_PEERS + 50 {
            let p = PeerId::random();
            m.on_connected(p, t0);
            m.report(p, PeerAction::Fatal, "x", t0);
            m.on_disconnected(p);
        }
        assert_eq!(m.len(), MAX_REMEMBERED_PEERS);
        let unbans = m
            .take_actions()
            .filter(|a| matches!(a, Enforce::Unban(_)))
            .count();
        assert_eq!(unbans, 50);
    }
}
