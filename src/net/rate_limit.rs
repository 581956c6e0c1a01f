//! Per-peer, per-protocol inbound rate limits: GCRA (the generic cell rate algorithm, a
//! token bucket kept as one "theoretical arrival time" per bucket) with quotas like
//! Lighthouse's. A request costs what it asks for — blocks-by-range its `count`, by-root its
//! number of roots, data columns their number of sidecars, everything else 1 — and is
//! refused when it would overdraw the bucket; the service answers it `ResourceUnavailable`
//! ("rate limited") without touching the store.
//!
//! Memory is bounded: one entry per (connected peer, protocol family) at most, removed when
//! the peer disconnects, and entries whose bucket has refilled are pruned on each
//! heartbeat (a full bucket and no entry are the same thing).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::messages::{self, Protocol, MAX_REQUEST_BLOCKS_DENEB, MAX_REQUEST_DATA_COLUMN_SIDECARS};
use crate::types::ssz::SszDecode;

/// `max_tokens` requests (or blocks, or sidecars) per `replenish_all_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_tokens: u64,
    pub replenish_all_every: Duration,
}

impl Quota {
    pub const fn n_every(max_tokens: u64, seconds: u64) -> Self {
        Quota {
            max_tokens,
            replenish_all_every: Duration::from_secs(seconds),
        }
    }
}

/// The inbound quotas, per protocol family (both versions of a protocol share one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub ping: Quota,
    pub metadata: Quota,
    pub status: Quota,
    pub goodbye: Quota,
    /// Counted in blocks requested.
    pub blocks_by_range: Quota,
    /// Counted in roots requested.
    pub blocks_by_root: Quota,
    /// Counted in sidecars requested (`count × columns`).
    pub data_columns_by_range: Quota,
    /// Counted in sidecars requested (the columns of every identifier).
    pub data_columns_by_root: Quota,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            ping: Quota::n_every(2, 10),
            metadata: Quota::n_every(2, 5),
            status: Quota::n_every(5, 15),
            goodbye: Quota::n_every(1, 10),
            // Lighthouse: 1024 blocks / 10 s (eight full requests), so that one peer can
            // sync from another at import speed.
            blocks_by_range: Quota::n_every(1024, 10),
            blocks_by_root: Quota::n_every(MAX_REQUEST_BLOCKS_DENEB as u64, 10),
            data_columns_by_range: Quota::n_every(5120, 10),
            data_columns_by_root: Quota::n_every(512, 10),
        }
    }
}

impl RateLimitConfig {
    pub fn quota(&self, protocol: Protocol) -> Quota {
        match protocol {
            Protocol::PingV1 => self.ping,
            Protocol::MetaDataV2 | Protocol::MetaDataV3 => self.metadata,
            Protocol::StatusV1 | Protocol::StatusV2 => self.status,
            Protocol::GoodbyeV1 => self.goodbye,
            Protocol::BeaconBlocksByRangeV2 => self.blocks_by_range,
            Protocol::BeaconBlocksByRootV2 => self.blocks_by_root,
            Protocol::DataColumnSidecarsByRangeV1 => self.data_columns_by_range,
            Protocol::DataColumnSidecarsByRootV1 => self.data_columns_by_root,
        }
    }
}

/// Why a request was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The request alone costs more than the whole quota: it can never pass.
    TooLarge { cost: u64, max: u64 },
    /// Over quota now; the bucket holds enough again after `wait`.
    TooSoon { wait: Duration },
}

/// What a request costs against its quota, or why it asks for more than the protocol
/// allows (`count` over `MAX_REQUEST_BLOCKS_DENEB`, more than
/// `MAX_REQUEST_DATA_COLUMN_SIDECARS` sidecars, a payload that is not the request type).
pub fn request_cost(protocol: Protocol, payload: &[u8]) -> Result<u64, String> {
    match protocol {
        Protocol::BeaconBlocksByRangeV2 => {
            let req = messages::BeaconBlocksByRangeRequestV2::ssz_decode(payload)
                .map_err(|e| e.to_string())?;
            if req.count > MAX_REQUEST_BLOCKS_DENEB as u64 {
                return Err(format!(
                    "count {} over MAX_REQUEST_BLOCKS_DENEB ({MAX_REQUEST_BLOCKS_DENEB})",
                    req.count
                ));
            }
            Ok(req.count)
        }
        Protocol::BeaconBlocksByRootV2 => {
            let n = payload.len() / 32;
            if payload.len() % 32 != 0 || n > MAX_REQUEST_BLOCKS_DENEB {
                return Err("not a list of at most MAX_REQUEST_BLOCKS_DENEB roots".into());
            }
            Ok(n as u64)
        }
        Protocol::DataColumnSidecarsByRangeV1 => {
            let req = messages::DataColumnSidecarsByRangeRequest::ssz_decode(payload)
                .map_err(|e| e.to_string())?;
            let n = req.count.saturating_mul(req.columns.len() as u64);
            if n > MAX_REQUEST_DATA_COLUMN_SIDECARS as u64 {
                return Err(format!(
                    "{n} sidecars over MAX_REQUEST_DATA_COLUMN_SIDECARS ({MAX_REQUEST_DATA_COLUMN_SIDECARS})"
                ));
            }
            Ok(n)
        }
        Protocol::DataColumnSidecarsByRootV1 => {
            let req = messages::DataColumnSidecarsByRootRequest::ssz_decode(payload)
                .map_err(|e| e.to_string())?;
            let n: u64 = req.iter().map(|id| id.columns.len() as u64).sum();
            if n > MAX_REQUEST_DATA_COLUMN_SIDECARS as u64 {
                return Err(format!(
                    "{n} sidecars over MAX_REQUEST_DATA_COLUMN_SIDECARS ({MAX_REQUEST_DATA_COLUMN_SIDECARS})"
                ));
            }
            Ok(n)
        }
        _ => Ok(1),
    }
}

/// The bucket of one protocol family (both versions of a protocol share it).
fn family(protocol: Protocol) -> &'static str {
    protocol.name()
}

/// GCRA buckets per (peer, protocol family).
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    /// Time origin of the `tat`s (nanoseconds since it).
    origin: Instant,
    /// The theoretical arrival time of each bucket, in nanoseconds since `origin`: the
    /// bucket is full at or before it, and a request of cost c may pass when
    /// `max(tat, now) + c·T − now ≤ τ` (T the time one token takes to refill, τ the
    /// replenish period).
    tat: HashMap<(PeerId, &'static str), u128>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter {
            config,
            origin: Instant::now(),
            tat: HashMap::new(),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    fn nanos(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.origin).as_nanos()
    }

    /// Take `cost` tokens of the peer's `protocol` bucket, or say why not (nothing taken).
    /// A zero-cost request (a range of count 0) still costs one token.
    pub fn allows(
        &mut self,
        peer: PeerId,
        protocol: Protocol,
        cost: u64,
        now: Instant,
    ) -> Result<(), Limited> {
        let quota = self.config.quota(protocol);
        let cost = cost.max(1);
        if quota.max_tokens == 0 || cost > quota.max_tokens {
            return Err(Limited::TooLarge {
                cost,
                max: quota.max_tokens,
            });
        }
        let tau = quota.replenish_all_every.as_nanos();
        let t = tau / quota.max_tokens as u128;
        let now = self.nanos(now);
        let key = (peer, family(protocol));
        let tat = self.tat.get(&key).copied().unwrap_or(0).max(now);
        let new_tat = tat + t * cost as u128;
        if new_tat - now > tau {
            let wait = new_tat - now - tau;
            return Err(Limited::TooSoon {
                wait: Duration::from_nanos(wait.min(u64::MAX as u128) as u64),
            });
        }
        self.tat.insert(key, new_tat);
        Ok(())
    }

    /// Forget a peer (it disconnected).
    pub fn remove_peer(&mut self, peer: &PeerId) {
        self.tat.retain(|(p, _), _| p != peer);
    }

    /// Drop the buckets that have refilled (same as having none).
    pub fn prune(&mut self, now: Instant) {
        let now = self.nanos(now);
        self.tat.retain(|_, tat| *tat > now);
    }

    /// Buckets held (for tests of the memory bound).
    pub fn len(&self) -> usize {
        self.tat.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tat.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ssz::ssz_encode;

    fn range(count: u64) -> Vec<u8> {
        ssz_encode(&messages::BeaconBlocksByRangeRequestV2 {
            start_slot: 1,
            count,
            step: 1,
        })
        .unwrap()
    }

    #[test]
    fn blocks_by_range_is_counted_in_blocks_and_refills_over_time() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            blocks_by_range: Quota::n_every(128, 10),
            ..RateLimitConfig::default()
        });
        let p = PeerId::random();
        let q = PeerId::random();
        let t0 = Instant::now();
        let bbr = Protocol::BeaconBlocksByRangeV2;
        // 128 blocks / 10 s: 64 + 64 pass at once, one more block does not.
        assert_eq!(request_cost(bbr, &range(64)), Ok(64));
        rl.allows(p, bbr, 64, t0).unwrap();
        rl.allows(p, bbr, 64, t0).unwrap();
        match rl.allows(p, bbr, 1, t0) {
            Err(Limited::TooSoon { wait }) => {
                assert!(wait > Duration::from_millis(70) && wait <= Duration::from_millis(80))
            }
            other => panic!("{other:?}"),
        }
        // Another peer, and another protocol of the same peer, have their own buckets.
        rl.allows(q, bbr, 128, t0).unwrap();
        rl.allows(p, Protocol::BeaconBlocksByRootV2, 128, t0)
            .unwrap();
        // After 5 s half the quota is back.
        let t5 = t0 + Duration::from_secs(5);
        rl.allows(p, bbr, 64, t5).unwrap();
        assert!(rl.allows(p, bbr, 1, t5).is_err());
        // A request bigger than the whole quota can never pass.
        assert_eq!(
            rl.allows(p, bbr, 129, t0 + Duration::from_secs(60)),
            Err(Limited::TooLarge {
                cost: 129,
                max: 128
            })
        );
        // Over the protocol's maximum: not a cost, an invalid request.
        assert!(request_cost(bbr, &range(129)).is_err());
        assert!(request_cost(bbr, &[1, 2, 3]).is_err());
    }

    #[test]
    fn both_versions_share_a_bucket_and_memory_is_bounded() {
        let mut rl = RateLimiter::new(RateLimitConfig::default());
        let p = PeerId::random();
        let t0 = Instant::now();
        rl.allows(p, Protocol::MetaDataV2, 1, t0).unwrap();
        rl.allows(p, Protocol::MetaDataV3, 1, t0).unwrap();
        assert!(rl.allows(p, Protocol::MetaDataV3, 1, t0).is_err());
        for _ in 0..100 {
            rl.allows(PeerId::random(), Protocol::PingV1, 1, t0)
                .unwrap();
        }
        assert_eq!(rl.len(), 101);
        rl.remove_peer(&p);
        assert_eq!(rl.len(), 100);
        // Ping: 2 / 10 s, so one token refills in 5 s.
        rl.prune(t0 + Duration::from_secs(6));
        assert!(rl.is_empty());
    }
}
