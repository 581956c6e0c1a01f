//! The Beacon API (a subset of `ethereum/beacon-APIs`) on axum, and the Prometheus
//! `/metrics` endpoint on its own port.
//!
//! Everything is answered from the handles: [`ChainHandle`] (head snapshot, committed
//! blocks and states, events) and, when the node runs one, [`NetworkHandle`]. The API is
//! preset-free; the few places that need a preset's types (the JSON of a block or a state,
//! a block's header) go through `chain::views`.
//!
//! - `node`: identity, peers, peer_count, syncing, health, version
//! - `beacon`: genesis, headers, blocks (JSON and SSZ), block roots, state root, fork,
//!   finality checkpoints, validators
//! - `debug`: states (JSON and SSZ), fork choice
//! - `config`: spec, fork schedule, deposit contract
//! - `events`: server-sent events of `head`, `block`, `finalized_checkpoint`
//!
//! JSON follows the API's conventions (decimal strings for integers, `0x`-hex for bytes,
//! `execution_optimistic` and `finalized` beside `data`); errors are
//! `{"code": …, "message": …}`. quasar runs no execution engine, so every block past the
//! anchor has an unverified payload: `execution_optimistic` is `true` for them.

mod beacon;
mod config;
mod debug;
pub mod error;
mod events;
pub mod ids;
pub mod metrics;
mod node;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::chain::service::ChainHandle;
use crate::net::service::NetworkHandle;
use crate::transition::ChainConfig;
pub use error::ApiError;

/// The fork name of every block and state quasar holds (`Eth-Consensus-Version`).
pub const CONSENSUS_VERSION: &str = "fulu";
/// The `Eth-Consensus-Version` header.
pub const CONSENSUS_VERSION_HEADER: &str = "eth-consensus-version";
/// The SSZ media type.
pub const SSZ_MEDIA_TYPE: &str = "application/octet-stream";

/// What the API answers from.
#[derive(Clone)]
pub struct ApiContext {
    pub chain: ChainHandle,
    /// `None` when no network runs in this process (node endpoints that need it: 503).
    pub network: Option<NetworkHandle>,
    /// The chain config the chain runs with.
    pub config: Arc<ChainConfig>,
    /// Set by the server: changes when it stops (event streams end then).
    stop: Option<watch::Receiver<bool>>,
}

impl ApiContext {
    pub fn new(chain: ChainHandle, network: Option<NetworkHandle>, config: ChainConfig) -> Self {
        ApiContext {
            chain,
            network,
            config: Arc::new(config),
            stop: None,
        }
    }

    /// Resolves when the server this context serves in stops (never, outside a server).
    pub(crate) async fn stopped(&self) {
        match self.stop.clone() {
            Some(mut rx) => {
                let _ = rx.wait_for(|stopped| *stopped).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// A running HTTP server: its bound address, stopped by [`shutdown`](Self::shutdown) (or
/// when dropped, without waiting).
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, let the requests in flight finish (event streams end), and wait.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Bind `addr` and serve `router` on the current tokio runtime until `stop` is sent `true`.
async fn serve(
    router: Router,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
) -> Result<HttpServer, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let mut stopped = stop.subscribe();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%e, "http server");
        }
    });
    Ok(HttpServer {
        local_addr,
        stop,
        task: Some(task),
    })
}

/// Start the Beacon API on `addr` (port 0: any free port; see [`HttpServer::local_addr`]).
pub async fn serve_api(mut ctx: ApiContext, addr: SocketAddr) -> Result<HttpServer, ServeError> {
    let (stop, stopped) = watch::channel(false);
    ctx.stop = Some(stopped);
    serve(router(ctx), addr, stop).await
}

/// Start `/metrics` on `addr`.
pub async fn serve_metrics(
    metrics: Arc<metrics::NodeMetrics>,
    addr: SocketAddr,
) -> Result<HttpServer, ServeError> {
    serve(metrics::router(metrics), addr, watch::channel(false).0).await
}

/// The Beacon API's routes.
pub fn router(ctx: ApiContext) -> Router {
    Router::new()
        .route("/eth/v1/node/identity", get(node::identity))
        .route("/eth/v1/node/peers", get(node::peers))
        .route("/eth/v1/node/peer_count", get(node::peer_count))
        .route("/eth/v1/node/syncing", get(node::syncing))
        .route("/eth/v1/node/health", get(node::health))
        .route("/eth/v1/node/version", get(node::version))
        .route("/eth/v1/beacon/genesis", get(beacon::genesis))
        .route("/eth/v1/beacon/headers", get(beacon::headers))
        .route("/eth/v1/beacon/headers/{block_id}", get(beacon::header))
        .route("/eth/v2/beacon/blocks/{block_id}", get(beacon::block))
        .route(
            "/eth/v1/beacon/blocks/{block_id}/root",
            get(beacon::block_root),
        )
        .route(
            "/eth/v1/beacon/states/{state_id}/root",
            get(beacon::state_root),
        )
        .route(
            "/eth/v1/beacon/states/{state_id}/fork",
            get(beacon::state_fork),
        )
        .route(
            "/eth/v1/beacon/states/{state_id}/finality_checkpoints",
            get(beacon::finality_checkpoints),
        )
        .route(
            "/eth/v1/beacon/states/{state_id}/validators",
            get(beacon::validators),
        )
        .route("/eth/v2/debug/beacon/states/{state_id}", get(debug::state))
        .route("/eth/v1/debug/fork_choice", get(debug::fork_choice))
        .route("/eth/v1/config/spec", get(config::spec))
        .route("/eth/v1/config/fork_schedule", get(config::fork_schedule))
        .route(
            "/eth/v1/config/deposit_contract",
            get(config::deposit_contract),
        )
        .route("/eth/v1/events", get(events::events))
        .fallback(not_found_route)
        .with_state(ctx)
}

async fn not_found_route() -> ApiError {
    ApiError::not_found("no such endpoint")
}

type Ctx = State<ApiContext>;
type IdPath = Result<Path<String>, PathRejection>;

fn path_id(p: IdPath) -> Result<String, ApiError> {
    p.map(|Path(s)| s)
        .map_err(|e| ApiError::bad(format!("bad path: {e}")))
}

/// Run committed-data reads (RocksDB, state rebuilds) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("request task: {e}")))?
}

/// Whether the client asked for SSZ (an `Accept` preferring `application/octet-stream`).
fn wants_ssz(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // The media type with the highest q (first wins on a tie).
    let mut best: Option<(f32, bool)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let ssz = media == SSZ_MEDIA_TYPE;
        if !(ssz || media == "application/json" || media == "*/*" || media == "application/*") {
            continue;
        }
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, ssz));
        }
    }
    best.is_some_and(|(_, ssz)| ssz)
}

/// A JSON body (already encoded), with `Eth-Consensus-Version` when `versioned`.
fn json_response(body: String, versioned: bool) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if versioned {
        h.insert(
            CONSENSUS_VERSION_HEADER,
            HeaderValue::from_static(CONSENSUS_VERSION),
        );
    }
    resp
}

/// An SSZ body with `Eth-Consensus-Version`.
fn ssz_response(body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SSZ_MEDIA_TYPE),
    );
    h.insert(
        CONSENSUS_VERSION_HEADER,
        HeaderValue::from_static(CONSENSUS_VERSION),
    );
    resp
}

/// `{"execution_optimistic":…,"finalized":…,"data":<data>}` (with `"version"` first when
/// `versioned`), `data` being JSON text already.
fn envelope(data: &str, optimistic: bool, finalized: bool, versioned: bool) -> String {
    let version = if versioned {
        format!("\"version\":\"{CONSENSUS_VERSION}\",")
    } else {
        String::new()
    };
    format!(
        "{{{version}\"execution_optimistic\":{optimistic},\"finalized\":{finalized},\"data\":{data}}}"
    )
}

/// `{"data": <value>}`.
fn data(value: serde_json::Value) -> Response {
    json_response(serde_json::json!({ "data": value }).to_string(), false)
}

fn result(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
