//! `/eth/v1/events?topics=head,block,finalized_checkpoint`: server-sent events from
//! [`ChainHandle::subscribe`](crate::chain::service::ChainHandle::subscribe).

use std::convert::Infallible;

use axum::extract::RawQuery;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::ids::{hex, query_pairs, values_of};
use super::{ApiContext, Ctx};
use crate::chain::service::ChainEvent;
use crate::chain::views;

/// The topics served.
const TOPICS: [&str; 3] = ["head", "block", "finalized_checkpoint"];

pub(super) async fn events(ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let pairs = match query_pairs(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let topics: Vec<String> = values_of(&pairs, "topics")
        .into_iter()
        .map(str::to_string)
        .collect();
    if topics.is_empty() {
        return ApiError::bad("no topics given").into_response();
    }
    if let Some(t) = topics.iter().find(|t| !TOPICS.contains(&t.as_str())) {
        return ApiError::bad(format!("unsupported topic: {t}")).into_response();
    }
    let rx = ctx.chain.subscribe();
    Sse::new(event_stream(ctx.0.clone(), rx, topics))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn event_stream(
    ctx: ApiContext,
    rx: tokio::sync::broadcast::Receiver<ChainEvent>,
    topics: Vec<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((ctx, rx, topics), |(ctx, mut rx, topics)| async move {
        loop {
            let next = tokio::select! {
                r = rx.recv() => r,
                _ = ctx.stopped() => return None,
            };
            match next {
                Ok(ev) => {
                    if let Some(event) = to_sse(&ctx, &ev, &topics).await {
                        return Some((Ok(event), (ctx, rx, topics)));
                    }
                }
                // A slow client misses what it fell behind by, and goes on.
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "event stream lagged");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

async fn to_sse(ctx: &ApiContext, ev: &ChainEvent, topics: &[String]) -> Option<Event> {
    let wanted = |t: &str| topics.iter().any(|x| x == t);
    let (name, body) = match ev {
        ChainEvent::Head {
            slot,
            root,
            state_root,
            epoch_transition,
        } if wanted("head") => {
            let c = ctx.clone();
            let slot = *slot;
            let (previous, current) =
                tokio::task::spawn_blocking(move || duty_dependent_roots(&c, slot))
                    .await
                    .unwrap_or_default();
            (
                "head",
                json!({
                    "slot": slot.to_string(),
                    "block": hex(root),
                    "state": hex(state_root),
                    "epoch_transition": epoch_transition,
                    "previous_duty_dependent_root": hex(&previous),
                    "current_duty_dependent_root": hex(&current),
                    "execution_optimistic": true,
                }),
            )
        }
        ChainEvent::Block { slot, root } if wanted("block") => (
            "block",
            json!({
                "slot": slot.to_string(),
                "block": hex(root),
                "execution_optimistic": true,
            }),
        ),
        ChainEvent::FinalizedCheckpoint { epoch, root } if wanted("finalized_checkpoint") => {
            // The checkpoint block's state root, from the store.
            let c = ctx.clone();
            let r = *root;
            let state = tokio::task::spawn_blocking(move || {
                let ssz = c.chain.reader().block_by_root(&r).ok()??;
                views::signed_header(c.chain.preset(), &ssz)
                    .ok()
                    .map(|h| *h.message.state_root.as_bytes())
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
            (
                "finalized_checkpoint",
                json!({
                    "block": hex(root),
                    "state": hex(&state),
                    "epoch": epoch.to_string(),
                    "execution_optimistic": true,
                }),
            )
        }
        _ => return None,
    };
    Some(Event::default().event(name).data(body.to_string()))
}

/// The duty dependent roots of a head at `slot`: the canonical block roots at the last
/// slot before the previous and the current epoch (the anchor's before the chain starts).
fn duty_dependent_roots(ctx: &ApiContext, slot: u64) -> ([u8; 32], [u8; 32]) {
    let spe = crate::chain::any::slots_per_epoch(ctx.chain.preset()).max(1);
    let epoch = slot / spe;
    let current = dependent_root(ctx, epoch.saturating_mul(spe));
    let previous = dependent_root(ctx, epoch.saturating_sub(1).saturating_mul(spe));
    (previous, current)
}

/// The canonical block root at the latest slot before `epoch_start` (the anchor's when
/// there is none).
fn dependent_root(ctx: &ApiContext, epoch_start: u64) -> [u8; 32] {
    let reader = ctx.chain.reader();
    let head = reader.head();
    let anchor = super::beacon::anchor(ctx)
        .map(|a| a.root)
        .unwrap_or_default();
    let mut s = epoch_start;
    while s > head.earliest_available_slot {
        s -= 1;
        match reader.block_root_at_slot(s) {
            Ok(Some(root)) => return root,
            Ok(None) => continue,
            Err(_) => break,
        }
    }
    anchor
}
