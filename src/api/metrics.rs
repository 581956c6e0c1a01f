//! The node's Prometheus registry and `/metrics` (OpenMetrics text).
//!
//! Metrics are named `quasar_<area>_<what>_<unit>`. What the handles give today:
//!
//! - `quasar_chain_head_slot`, `quasar_chain_justified_epoch`, `quasar_chain_finalized_epoch`,
//!   `quasar_chain_head_validators` (gauges, read from the head snapshot at each scrape)
//! - the import metrics `quasar_chain_*` ([`ChainMetrics`]) and the caches'
//!   `quasar_cache_*` ([`CacheMetrics`])
//! - `quasar_net_peers_connected` (gauge, asked of the network at each scrape)
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
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::chain::service::ChainHandle;
use crate::net::service::NetworkHandle;

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
        m.chain.chain_metrics().register(&mut registry);
        m.chain.metrics().register(&mut registry);
        NodeMetrics { registry, ..m }
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
