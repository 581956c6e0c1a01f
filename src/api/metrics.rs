//! The node's Prometheus registry and `/metrics` (OpenMetrics text).
//!
//! Metrics are named `quasar_<area>_<what>_<unit>`. What the handles give today:
//!
//! - `quasar_chain_head_slot`, `quasar_chain_justified_epoch`, `quasar_chain_finalized_epoch`,
//!   `quasar_chain_head_validators` (gauges, read from the head snapshot at each scrape)
//! - the import metrics `quasar_chain_*` ([`ChainMetrics`]) and the caches'
//!   `quasar_cache_*` ([`CacheMetrics`])
//! - `quasar_net_peers_connected` (gauge, asked of the network at each scrape)
//! - the gossip validation pool's `quasar_pool_gossip_queue_depth`,
//!   `quasar_pool_gossip_dropped_total`, `_validated_total`, `_batches_total` (with a
//!   network)
//! - range sync's `quasar_sync_target_slot`, `quasar_sync_distance_slots`,
//!   `quasar_sync_speed_blocks_per_second`, `quasar_sync_imported_blocks_total`,
//!   `quasar_sync_batches_downloading`, `quasar_sync_retried_batches_total`,
//!   `quasar_sync_penalties_total`, `quasar_sync_peers` ([`NodeMetrics::with_sync`])
//! - `quasar_accel_backend_info{backend}` (1 for the aggregation backend in use)
//!
//! Other parts of the node add their families with [`NodeMetrics::registry_mut`] before the
//! server starts (sync speed, pool queue depths, …).
//!
//! [`ChainMetrics`]: crate::chain::metrics::ChainMetrics
//! [`CacheMetrics`]: crate::cache::metrics::CacheMetrics

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::chain::service::ChainHandle;
use crate::net::service::NetworkHandle;
use crate::sync::SyncStatus;

/// The pool's families, refreshed from its atomics at each scrape.
#[derive(Default)]
struct PoolGauges {
    depth: Gauge,
    dropped: Counter,
    validated: Counter,
    batches: Counter,
}

/// Range sync's families, refreshed from its status at each scrape.
#[derive(Default)]
struct SyncGauges {
    target: Gauge,
    distance: Gauge,
    speed: Gauge<f64, std::sync::atomic::AtomicU64>,
    imported: Counter,
    downloading: Gauge,
    retried: Counter,
    penalties: Counter,
    peers: Gauge,
}

/// Bring a counter up to `v` (the source is a monotonic total kept elsewhere).
fn catch_up(c: &Counter, v: u64) {
    c.inc_by(v.saturating_sub(c.get()));
}

/// The registry `/metrics` serves, and the gauges it refreshes at each scrape.
pub struct NodeMetrics {
    registry: Registry,
    chain: ChainHandle,
    network: Option<NetworkHandle>,
    head_slot: Gauge,
    justified_epoch: Gauge,
    finalized_epoch: Gauge,
    validators: Gauge,
    peers: Gauge,
    pool: PoolGauges,
    sync: Option<(tokio::sync::watch::Receiver<SyncStatus>, SyncGauges)>,
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl NodeMetrics {
    /// A registry with the chain's, the caches' and the network's metrics; `backend` names
    /// the signature-aggregation backend in use.
    pub fn new(chain: ChainHandle, network: Option<NetworkHandle>, backend: &str) -> Self {
        let mut registry = Registry::default();
        let m = NodeMetrics {
            head_slot: Gauge::default(),
            justified_epoch: Gauge::default(),
            finalized_epoch: Gauge::default(),
            validators: Gauge::default(),
            peers: Gauge::default(),
            pool: PoolGauges::default(),
            sync: None,
            registry: Registry::default(),
            chain,
            network,
        };
        registry.register(
            "quasar_chain_head_slot",
            "Slot of the head block",
            m.head_slot.clone(),
        );
        registry.register(
            "quasar_chain_justified_epoch",
            "Epoch of the justified checkpoint",
            m.justified_epoch.clone(),
        );
        registry.register(
            "quasar_chain_finalized_epoch",
            "Epoch of the finalized checkpoint",
            m.finalized_epoch.clone(),
        );
        registry.register(
            "quasar_chain_head_validators",
            "Validators in the head state's registry",
            m.validators.clone(),
        );
        registry.register(
            "quasar_net_peers_connected",
            "Peers connected",
            m.peers.clone(),
        );
        let backend_info = Family::<[(&'static str, String); 1], Gauge>::default();
        backend_info
            .get_or_create(&[("backend", backend.to_string())])
            .set(1);
        registry.register(
            "quasar_accel_backend_info",
            "The signature-aggregation backend in use (1)",
            backend_info,
        );
        if m.network.is_some() {
            let p = &m.pool;
            registry.register(
                "quasar_pool_gossip_queue_depth",
                "Gossip messages waiting for the validation pool",
                p.depth.clone(),
            );
            registry.register(
                "quasar_pool_gossip_dropped",
                "Gossip messages dropped because the pool's queue was full",
                p.dropped.clone(),
            );
            registry.register(
                "quasar_pool_gossip_validated",
                "Gossip messages validated by the pool",
                p.validated.clone(),
            );
            registry.register(
                "quasar_pool_gossip_batches",
                "Batches the pool validated (one signature check each)",
                p.batches.clone(),
            );
        }
        m.chain.chain_metrics().register(&mut registry);
        m.chain.metrics().register(&mut registry);
        NodeMetrics { registry, ..m }
    }

    /// Add range sync's families, read from its status at each scrape.
    pub fn with_sync(mut self, status: tokio::sync::watch::Receiver<SyncStatus>) -> Self {
        let g = SyncGauges::default();
        let r = &mut self.registry;
        r.register(
            "quasar_sync_target_slot",
            "Best head slot the peers announced",
            g.target.clone(),
        );
        r.register(
            "quasar_sync_distance_slots",
            "Slots between our head and the best peer's",
            g.distance.clone(),
        );
        r.register(
            "quasar_sync_speed_blocks_per_second",
            "Blocks imported by range sync per second while behind",
            g.speed.clone(),
        );
        r.register(
            "quasar_sync_imported_blocks",
            "Blocks imported by range sync",
            g.imported.clone(),
        );
        r.register(
            "quasar_sync_batches_downloading",
            "Range-sync batches being downloaded",
            g.downloading.clone(),
        );
        r.register(
            "quasar_sync_retried_batches",
            "Range-sync batches fetched again after a bad, incomplete or late answer",
            g.retried.clone(),
        );
        r.register(
            "quasar_sync_penalties",
            "Peers penalised for a range-sync batch",
            g.penalties.clone(),
        );
        r.register("quasar_sync_peers", "Peers with a Status", g.peers.clone());
        self.sync = Some((status, g));
        self
    }

    /// The registry, for more families (before serving).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Refresh the gauges read from the handles, then encode everything.
    pub async fn scrape(&self) -> String {
        let head = self.chain.head();
        self.head_slot.set(gauge_i64(head.head.slot));
        self.justified_epoch.set(gauge_i64(head.justified.epoch));
        self.finalized_epoch.set(gauge_i64(head.finalized.epoch));
        self.validators.set(gauge_i64(head.validators as u64));
        if let Some(net) = &self.network {
            if let Ok(peers) = net.peers().await {
                self.peers.set(gauge_i64(peers.len() as u64));
            }
            let stats = net.gossip_pool();
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            self.pool.depth.set(gauge_i64(load(&stats.queued)));
            catch_up(&self.pool.dropped, load(&stats.dropped));
            catch_up(&self.pool.validated, load(&stats.validated));
            catch_up(&self.pool.batches, load(&stats.batches));
        }
        if let Some((rx, g)) = &self.sync {
            let s = rx.borrow().clone();
            g.target.set(gauge_i64(s.target_slot));
            g.distance
                .set(gauge_i64(s.target_slot.saturating_sub(head.head.slot)));
            g.speed.set(s.blocks_per_second);
            catch_up(&g.imported, s.imported);
            g.downloading.set(gauge_i64(s.downloading as u64));
            catch_up(&g.retried, s.retried_batches);
            catch_up(&g.penalties, s.penalties);
            g.peers.set(gauge_i64(s.peers as u64));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

pub(super) fn router(metrics: Arc<NodeMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(metrics)
}

async fn serve_metrics(State(m): State<Arc<NodeMetrics>>) -> Response {
    let body = m.scrape().await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
