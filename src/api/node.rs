//! `/eth/v1/node/*`: identity, peers, peer count, sync status, health, version.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::{data, json_response, result, ApiContext, Ctx};
use crate::net::service::NetworkHandle;

fn network(ctx: &ApiContext) -> Result<&NetworkHandle, ApiError> {
    ctx.network
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no network runs in this node".into()))
}

pub(super) async fn identity(ctx: Ctx) -> Response {
    result((|| {
        let net = network(&ctx)?;
        // The ENR and the discv5 (UDP) address in it; none with discovery off.
        let local_enr = net.local_enr();
        let enr = local_enr.as_ref().map(|e| e.to_base64());
        let discovery: Vec<String> = local_enr
            .as_ref()
            .and_then(|e| Some((e.ip4()?, e.udp4()?)))
            .map(|(ip, port)| format!("/ip4/{ip}/udp/{port}/p2p/{}", net.local_peer_id()))
            .into_iter()
            .collect();
        let p2p: Vec<String> = net
            .listen_addresses()
            .iter()
            .map(|a| a.to_string())
            .collect();
        Ok(data(json!({
            "peer_id": net.local_peer_id().to_string(),
            "enr": enr,
            "p2p_addresses": p2p,
            "discovery_addresses": discovery,
        })))
    })())
}

pub(super) async fn peers(ctx: Ctx) -> Response {
    result(
        async {
            let net = network(&ctx)?;
            let peers = net
                .peers()
                .await
                .map_err(|e| ApiError::Internal(format!("network: {e}")))?;
            let list: Vec<_> = peers
                .iter()
                .map(|p| {
                    json!({
                        "peer_id": p.peer_id.to_string(),
                        "enr": null,
                        "last_seen_p2p_address": p.address.as_ref().map(|a| a.to_string()).unwrap_or_default(),
                        "state": "connected",
                        "direction": if p.outbound { "outbound" } else { "inbound" },
                    })
                })
                .collect();
            let count = list.len();
            Ok(json_response(
                json!({ "data": list, "meta": { "count": count } }).to_string(),
                false,
            ))
        }
        .await,
    )
}

pub(super) async fn peer_count(ctx: Ctx) -> Response {
    result(
        async {
            let net = network(&ctx)?;
            let n = net
                .peers()
                .await
                .map_err(|e| ApiError::Internal(format!("network: {e}")))?
                .len();
            Ok(data(json!({
                "disconnected": "0",
                "connecting": "0",
                "connected": n.to_string(),
                "disconnecting": "0",
            })))
        }
        .await,
    )
}

/// (head slot, slots the head is behind the wall clock).
fn sync_distance(ctx: &ApiContext) -> (u64, u64) {
    let head = ctx.chain.head();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0);
    let since = now_ms.saturating_sub(head.genesis_time.saturating_mul(1000));
    let current = since / ctx.chain.slot_duration_ms().max(1);
    (head.head.slot, current.saturating_sub(head.head.slot))
}

/// Behind by more than this many slots: syncing.
const SYNC_TOLERANCE_SLOTS: u64 = 1;

pub(super) async fn syncing(ctx: Ctx) -> Response {
    let (head_slot, distance) = sync_distance(&ctx);
    let head = ctx.chain.head();
    let anchor = super::beacon::anchor(&ctx)
        .map(|a| a.root)
        .unwrap_or_default();
    data(json!({
        "head_slot": head_slot.to_string(),
        "sync_distance": distance.to_string(),
        "is_syncing": distance > SYNC_TOLERANCE_SLOTS,
        // No execution engine verifies payloads: every head past the anchor is optimistic.
        "is_optimistic": head.head.root != anchor,
        "el_offline": true,
    }))
}

pub(super) async fn health(ctx: Ctx) -> Response {
    let (_, distance) = sync_distance(&ctx);
    if distance > SYNC_TOLERANCE_SLOTS {
        StatusCode::PARTIAL_CONTENT.into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

/// `quasar/v<version>/<os>-<arch>`.
pub fn version_string() -> String {
    format!(
        "quasar/v{}/{}-{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

pub(super) async fn version() -> Response {
    data(json!({ "version": version_string() }))
}
