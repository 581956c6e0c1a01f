//! `/eth/v2/debug/beacon/states/{state_id}` and `/eth/v1/debug/fork_choice`.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::beacon::{anchor, load_state, resolve_state};
use super::error::ApiError;
use super::ids::{hex, Id};
use super::{
    blocking, envelope, json_response, path_id, result, ssz_response, wants_ssz, Ctx, IdPath,
};
use crate::chain::views;

pub(super) async fn state(ctx: Ctx, id: IdPath, headers: HeaderMap) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "state_id")?;
            let ssz = wants_ssz(&headers);
            let ctx = ctx.0.clone();
            blocking(move || {
                if ssz {
                    let r = resolve_state(&ctx, id)?;
                    let bytes = match &r.state {
                        Some(s) => s.to_ssz()?,
                        None => ctx.chain.reader().state_by_root(&r.root)?.ok_or_else(|| {
                            ApiError::not_found(format!("state {} not held", hex(&r.root)))
                        })?,
                    };
                    return Ok(ssz_response(bytes));
                }
                let (r, state) = load_state(&ctx, id)?;
                Ok(json_response(
                    envelope(&state.to_api_json(), r.optimistic, r.finalized, true),
                    true,
                ))
            })
            .await
        }
        .await,
    )
}

pub(super) async fn fork_choice(ctx: Ctx) -> Response {
    result(
        async {
            let ctx = ctx.0.clone();
            blocking(move || {
                let head = ctx.chain.head();
                let anchor = anchor(&ctx)?;
                let preset = ctx.chain.preset();
                let mut nodes = Vec::with_capacity(head.fork_choice.len());
                for n in head.fork_choice.iter() {
                    let (validity, block_hash) = if n.root == anchor.root {
                        ("valid", [0u8; 32])
                    } else {
                        let hash = match ctx.chain.reader().block_by_root(&n.root)? {
                            Some(ssz) => views::execution_block_hash(preset, &ssz)?,
                            None => [0u8; 32],
                        };
                        // No execution engine verifies payloads here.
                        ("optimistic", hash)
                    };
                    nodes.push(json!({
                        "slot": n.slot.to_string(),
                        "block_root": hex(&n.root),
                        // The anchor's parent is not held: the zero root (genesis's own).
                        "parent_root": hex(&n.parent_root.unwrap_or_default()),
                        "justified_epoch": n.justified_epoch.to_string(),
                        "finalized_epoch": n.finalized_epoch.to_string(),
                        "weight": n.weight.to_string(),
                        "validity": validity,
                        "execution_block_hash": hex(&block_hash),
                    }));
                }
                let body = json!({
                    "justified_checkpoint": {
                        "epoch": head.justified.epoch.to_string(),
                        "root": hex(&head.justified.root),
                    },
                    "finalized_checkpoint": {
                        "epoch": head.finalized.epoch.to_string(),
                        "root": hex(&head.finalized.root),
                    },
                    "fork_choice_nodes": nodes,
                });
                Ok(json_response(body.to_string(), false))
            })
            .await
        }
        .await,
    )
}
