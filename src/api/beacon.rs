//! `/eth/v{1,2}/beacon/*`: genesis, headers, blocks, states.

use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::error::ApiError;
use super::ids::{hex, parse_hex, parse_root, parse_u64, query_pairs, values_of, Id, Root};
use super::{
    blocking, data, envelope, json_response, path_id, result, ssz_response, wants_ssz, ApiContext,
    Ctx, IdPath,
};
use crate::chain::service::{AnyState, HeadSnapshot};
use crate::chain::views;
use crate::chain::{Anchor, META_ANCHOR};
use crate::types::common::SignedBeaconBlockHeader;
use crate::types::json::ApiJson;

/// `FAR_FUTURE_EPOCH`.
const FAR_FUTURE_EPOCH: u64 = u64::MAX;

pub(super) fn anchor(ctx: &ApiContext) -> Result<Anchor, ApiError> {
    let raw = ctx
        .chain
        .reader()
        .store()
        .get_metadata(META_ANCHOR)?
        .ok_or_else(|| ApiError::Internal("the store holds no anchor".into()))?;
    Anchor::decode(&raw).map_err(ApiError::Internal)
}

fn slots_per_epoch(ctx: &ApiContext) -> u64 {
    crate::chain::any::slots_per_epoch(ctx.chain.preset())
}

/// A block found by its id.
pub(super) struct Block {
    pub root: Root,
    /// `SignedBeaconBlock` SSZ as stored (for the anchor: the spec's genesis block).
    pub ssz: Vec<u8>,
    pub header: SignedBeaconBlockHeader,
    pub canonical: bool,
    pub finalized: bool,
    pub optimistic: bool,
}

/// The stored block `root` (the anchor's synthesized), `None` if unknown.
fn block_by_root(
    ctx: &ApiContext,
    head: &HeadSnapshot,
    anchor: &Anchor,
    root: Root,
) -> Result<Option<Block>, ApiError> {
    let preset = ctx.chain.preset();
    let reader = ctx.chain.reader();
    let ssz = match reader.block_by_root(&root)? {
        Some(ssz) => ssz,
        None if root == anchor.root => {
            let (ssz, genesis_root) = views::genesis_block(preset, anchor.slot, anchor.state_root)?;
            if genesis_root != root {
                // A checkpoint anchor: its block is not known here.
                return Ok(None);
            }
            ssz
        }
        None => return Ok(None),
    };
    let header = views::signed_header(preset, &ssz)?;
    let slot = header.message.slot;
    let canonical = reader.block_root_at_slot(slot)? == Some(root) && slot <= head.head.slot;
    Ok(Some(Block {
        root,
        ssz,
        header,
        canonical,
        finalized: canonical && slot <= head.finalized_slot,
        optimistic: root != anchor.root,
    }))
}

/// The block of `block_id`.
pub(super) fn resolve_block(ctx: &ApiContext, id: Id) -> Result<Block, ApiError> {
    let head = ctx.chain.head();
    let anchor = anchor(ctx)?;
    let root = match id {
        Id::Head => head.head.root,
        Id::Genesis if anchor.slot == 0 => anchor.root,
        Id::Genesis => return Err(ApiError::not_found("the genesis block is not held")),
        Id::Finalized => head.finalized.root,
        Id::Justified => head.justified.root,
        Id::Slot(slot) => ctx
            .chain
            .reader()
            .block_root_at_slot(slot)?
            .filter(|_| slot <= head.head.slot)
            .ok_or_else(|| ApiError::not_found(format!("no canonical block at slot {slot}")))?,
        Id::Root(root) => root,
    };
    block_by_root(ctx, &head, &anchor, root)?
        .ok_or_else(|| ApiError::not_found(format!("block {} not found", hex(&root))))
}

/// A state's root and slot found by its id, without loading it where it can be avoided.
pub(super) struct StateRef {
    pub root: Root,
    pub slot: u64,
    pub finalized: bool,
    pub optimistic: bool,
    /// The state, when finding the root needed it (or it is the head's).
    pub state: Option<AnyState>,
}

fn finalized_epoch_start(ctx: &ApiContext, head: &HeadSnapshot) -> u64 {
    head.finalized.epoch.saturating_mul(slots_per_epoch(ctx))
}

/// The canonical state at `slot` (`None`: beyond the head or before the anchor).
fn canonical_state_at(
    ctx: &ApiContext,
    head: &HeadSnapshot,
    anchor: &Anchor,
    slot: u64,
) -> Result<Option<StateRef>, ApiError> {
    if slot > head.head.slot || slot < head.anchor_slot {
        return Ok(None);
    }
    let finalized = slot <= finalized_epoch_start(ctx, head);
    if slot == head.head.slot {
        return Ok(Some(StateRef {
            root: head.head_state_root,
            slot,
            finalized,
            optimistic: head.head.root != anchor.root,
            state: Some(head.state.clone()),
        }));
    }
    let reader = ctx.chain.reader();
    // A block at the slot names its post state's root.
    if let Some(block_root) = reader.block_root_at_slot(slot)? {
        if block_root == anchor.root {
            return Ok(Some(StateRef {
                root: anchor.state_root,
                slot,
                finalized,
                optimistic: false,
                state: None,
            }));
        }
        if let Some(ssz) = reader.block_by_root(&block_root)? {
            let header = views::signed_header(ctx.chain.preset(), &ssz)?;
            return Ok(Some(StateRef {
                root: *header.message.state_root.as_bytes(),
                slot,
                finalized,
                optimistic: true,
                state: None,
            }));
        }
    }
    // An empty slot: the state advanced through it, hashed.
    let Some(ssz) = reader.state_at_slot(slot)? else {
        return Ok(None);
    };
    let state = AnyState::from_ssz(ctx.chain.preset(), &ssz)?;
    Ok(Some(StateRef {
        root: state.hash_tree_root()?,
        slot,
        finalized,
        optimistic: true,
        state: Some(state),
    }))
}

/// The state of `state_id`: its root and slot (and the state when at hand).
pub(super) fn resolve_state(ctx: &ApiContext, id: Id) -> Result<StateRef, ApiError> {
    let head = ctx.chain.head();
    let anchor = anchor(ctx)?;
    let spe = slots_per_epoch(ctx);
    let slot = match id {
        Id::Head => head.head.slot,
        Id::Genesis if anchor.slot == 0 => 0,
        Id::Genesis => return Err(ApiError::not_found("the genesis state is not held")),
        Id::Finalized => head.finalized.epoch.saturating_mul(spe).max(anchor.slot),
        Id::Justified => head.justified.epoch.saturating_mul(spe).max(anchor.slot),
        Id::Slot(slot) => slot,
        Id::Root(root) => return state_by_root(ctx, &head, &anchor, root),
    };
    canonical_state_at(ctx, &head, &anchor, slot)?
        .ok_or_else(|| ApiError::not_found(format!("no state at slot {slot}")))
}

fn state_by_root(
    ctx: &ApiContext,
    head: &HeadSnapshot,
    anchor: &Anchor,
    root: Root,
) -> Result<StateRef, ApiError> {
    if root == head.head_state_root {
        return resolve_state(ctx, Id::Head);
    }
    let store = ctx.chain.reader().store();
    let not_found = || ApiError::not_found(format!("state {} not found", hex(&root)));
    let (slot, latest_block) = match store.get_state_summary(&root)? {
        Some(s) => (s.slot, Some(s.latest_block_root)),
        None => {
            if root != anchor.state_root {
                return Err(not_found());
            }
            (anchor.slot, Some(anchor.root))
        }
    };
    // Canonical when the block it descends from is canonical (and it is not past the head).
    let canonical = match latest_block {
        Some(b) if b == anchor.root => true,
        Some(b) => match ctx.chain.reader().block_by_root(&b)? {
            Some(ssz) => {
                let h = views::signed_header(ctx.chain.preset(), &ssz)?;
                ctx.chain.reader().block_root_at_slot(h.message.slot)? == Some(b)
            }
            None => false,
        },
        None => false,
    };
    Ok(StateRef {
        root,
        slot,
        finalized: canonical && slot <= finalized_epoch_start(ctx, head),
        optimistic: root != anchor.state_root,
        state: None,
    })
}

/// The state of `state_id`, loaded.
pub(super) fn load_state(ctx: &ApiContext, id: Id) -> Result<(StateRef, AnyState), ApiError> {
    let r = resolve_state(ctx, id)?;
    if let Some(s) = &r.state {
        let s = s.clone();
        return Ok((r, s));
    }
    let ssz = ctx
        .chain
        .reader()
        .state_by_root(&r.root)?
        .ok_or_else(|| ApiError::not_found(format!("state {} not held", hex(&r.root))))?;
    let state = AnyState::from_ssz(ctx.chain.preset(), &ssz)?;
    Ok((r, state))
}

pub(super) async fn genesis(ctx: Ctx) -> Response {
    let head = ctx.chain.head();
    let cfg = &ctx.config;
    data(json!({
        "genesis_time": head.genesis_time.to_string(),
        "genesis_validators_root": hex(&head.genesis_validators_root),
        "genesis_fork_version": hex(&cfg.genesis_fork_version),
    }))
}

fn header_json(b: &Block) -> String {
    format!(
        "{{\"root\":\"{}\",\"canonical\":{},\"header\":{}}}",
        hex(&b.root),
        b.canonical,
        b.header.to_api_json()
    )
}

pub(super) async fn header(ctx: Ctx, id: IdPath) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "block_id")?;
            let ctx = ctx.0.clone();
            let b = blocking(move || resolve_block(&ctx, id)).await?;
            Ok(json_response(
                envelope(&header_json(&b), b.optimistic, b.finalized, false),
                false,
            ))
        }
        .await,
    )
}

/// `headers?slot=&parent_root=`: the head's header without filters; else the blocks fork
/// choice holds at that slot and/or with that parent (the canonical one at the slot
/// included when the slot is before fork choice's tree).
pub(super) async fn headers(ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    result(
        async {
            let pairs = query_pairs(q.as_deref())?;
            let slot = match values_of(&pairs, "slot").as_slice() {
                [] => None,
                [s] => {
                    Some(parse_u64(s).ok_or_else(|| ApiError::bad(format!("invalid slot: {s}")))?)
                }
                _ => return Err(ApiError::bad("more than one slot")),
            };
            let parent = match values_of(&pairs, "parent_root").as_slice() {
                [] => None,
                [p] => Some(
                    parse_root(p)
                        .ok_or_else(|| ApiError::bad(format!("invalid parent_root: {p}")))?,
                ),
                _ => return Err(ApiError::bad("more than one parent_root")),
            };
            let ctx = ctx.0.clone();
            let blocks = blocking(move || {
                let head = ctx.chain.head();
                let anchor = anchor(&ctx)?;
                let mut roots: Vec<Root> = Vec::new();
                if slot.is_none() && parent.is_none() {
                    roots.push(head.head.root);
                } else {
                    if let (Some(s), None) = (slot, parent) {
                        if let Some(r) = ctx.chain.reader().block_root_at_slot(s)? {
                            if s <= head.head.slot {
                                roots.push(r);
                            }
                        }
                    }
                    for n in head.fork_choice.iter() {
                        let slot_ok = slot.is_none_or(|s| n.slot == s);
                        let parent_ok = parent.is_none_or(|p| n.parent_root == Some(p));
                        if slot_ok && parent_ok && !roots.contains(&n.root) {
                            roots.push(n.root);
                        }
                    }
                }
                let mut out = Vec::new();
                for r in roots {
                    if let Some(b) = block_by_root(&ctx, &head, &anchor, r)? {
                        // The parent filter also holds for the canonical block found by slot.
                        if parent.is_none_or(|p| *b.header.message.parent_root.as_bytes() == p) {
                            out.push(b);
                        }
                    }
                }
                Ok(out)
            })
            .await?;
            let optimistic = blocks.iter().any(|b| b.optimistic);
            let finalized = !blocks.is_empty() && blocks.iter().all(|b| b.finalized);
            let list = blocks.iter().map(header_json).collect::<Vec<_>>().join(",");
            Ok(json_response(
                envelope(&format!("[{list}]"), optimistic, finalized, false),
                false,
            ))
        }
        .await,
    )
}

pub(super) async fn block(ctx: Ctx, id: IdPath, headers: HeaderMap) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "block_id")?;
            let ssz = wants_ssz(&headers);
            let ctx = ctx.0.clone();
            blocking(move || {
                let b = resolve_block(&ctx, id)?;
                if ssz {
                    return Ok(ssz_response(b.ssz));
                }
                let body = views::block_json(ctx.chain.preset(), &b.ssz)?;
                Ok(json_response(
                    envelope(&body, b.optimistic, b.finalized, true),
                    true,
                ))
            })
            .await
        }
        .await,
    )
}

pub(super) async fn block_root(ctx: Ctx, id: IdPath) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "block_id")?;
            let ctx = ctx.0.clone();
            let b = blocking(move || resolve_block(&ctx, id)).await?;
            let body = json!({ "root": hex(&b.root) }).to_string();
            Ok(json_response(
                envelope(&body, b.optimistic, b.finalized, false),
                false,
            ))
        }
        .await,
    )
}

pub(super) async fn state_root(ctx: Ctx, id: IdPath) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "state_id")?;
            let ctx = ctx.0.clone();
            let s = blocking(move || resolve_state(&ctx, id)).await?;
            let body = json!({ "root": hex(&s.root) }).to_string();
            Ok(json_response(
                envelope(&body, s.optimistic, s.finalized, false),
                false,
            ))
        }
        .await,
    )
}

pub(super) async fn state_fork(ctx: Ctx, id: IdPath) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "state_id")?;
            let ctx = ctx.0.clone();
            let (r, s) = blocking(move || load_state(&ctx, id)).await?;
            Ok(json_response(
                envelope(&s.fork().to_api_json(), r.optimistic, r.finalized, false),
                false,
            ))
        }
        .await,
    )
}

pub(super) async fn finality_checkpoints(ctx: Ctx, id: IdPath) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "state_id")?;
            let ctx = ctx.0.clone();
            let (r, s) = blocking(move || load_state(&ctx, id)).await?;
            let f = s.finality_checkpoints();
            let body = format!(
                "{{\"previous_justified\":{},\"current_justified\":{},\"finalized\":{}}}",
                f.previous_justified.to_api_json(),
                f.current_justified.to_api_json(),
                f.finalized.to_api_json()
            );
            Ok(json_response(
                envelope(&body, r.optimistic, r.finalized, false),
                false,
            ))
        }
        .await,
    )
}

/// The statuses of `beacon-APIs` (`ValidatorStatus`), and the four general ones a filter
/// may name.
const STATUSES: [&str; 9] = [
    "pending_initialized",
    "pending_queued",
    "active_ongoing",
    "active_exiting",
    "active_slashed",
    "exited_unslashed",
    "exited_slashed",
    "withdrawal_possible",
    "withdrawal_done",
];
const GENERAL_STATUSES: [&str; 4] = ["pending", "active", "exited", "withdrawal"];

/// A validator's status at `epoch` (the beacon-APIs validator status flow).
pub fn validator_status(
    v: &crate::types::common::Validator,
    balance: u64,
    epoch: u64,
) -> &'static str {
    if v.activation_epoch > epoch {
        if v.activation_eligibility_epoch == FAR_FUTURE_EPOCH {
            "pending_initialized"
        } else {
            "pending_queued"
        }
    } else if epoch < v.exit_epoch {
        if v.exit_epoch == FAR_FUTURE_EPOCH {
            "active_ongoing"
        } else if v.slashed {
            "active_slashed"
        } else {
            "active_exiting"
        }
    } else if epoch < v.withdrawable_epoch {
        if v.slashed {
            "exited_slashed"
        } else {
            "exited_unslashed"
        }
    } else if balance != 0 {
        "withdrawal_possible"
    } else {
        "withdrawal_done"
    }
}

fn status_matches(status: &str, filters: &[&str]) -> bool {
    filters.is_empty()
        || filters
            .iter()
            .any(|f| *f == status || status.split('_').next() == Some(f))
}

/// At most this many `id`s in one query.
const MAX_VALIDATOR_IDS: usize = 8192;

pub(super) async fn validators(ctx: Ctx, id: IdPath, RawQuery(q): RawQuery) -> Response {
    result(
        async {
            let id = Id::parse(&path_id(id)?, "state_id")?;
            let pairs = query_pairs(q.as_deref())?;
            let ids = values_of(&pairs, "id");
            if ids.len() > MAX_VALIDATOR_IDS {
                return Err(ApiError::bad(format!("more than {MAX_VALIDATOR_IDS} ids")));
            }
            enum VId {
                Index(u64),
                Pubkey([u8; 48]),
            }
            let ids = ids
                .iter()
                .map(|s| {
                    if s.starts_with("0x") {
                        parse_hex::<48>(s).map(VId::Pubkey)
                    } else {
                        parse_u64(s).map(VId::Index)
                    }
                    .ok_or_else(|| ApiError::bad(format!("invalid validator id: {s}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let statuses = values_of(&pairs, "status");
            for s in &statuses {
                if !STATUSES.contains(s) && !GENERAL_STATUSES.contains(s) {
                    return Err(ApiError::bad(format!("invalid validator status: {s}")));
                }
            }
            let statuses: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
            let ctx = ctx.0.clone();
            let spe = slots_per_epoch(&ctx);
            blocking(move || {
                let (r, state) = load_state(&ctx, id)?;
                let epoch = r.slot / spe;
                let vals = state.validators();
                let bals = state.balances();
                let indices: Vec<usize> = if ids.is_empty() {
                    (0..vals.len()).collect()
                } else {
                    let mut by_key = std::collections::HashMap::new();
                    if ids.iter().any(|i| matches!(i, VId::Pubkey(_))) {
                        for (i, v) in vals.iter().enumerate() {
                            by_key.insert(*v.pubkey.as_bytes(), i);
                        }
                    }
                    let mut out: Vec<usize> = ids
                        .iter()
                        .filter_map(|i| match i {
                            VId::Index(n) => usize::try_from(*n).ok().filter(|n| *n < vals.len()),
                            VId::Pubkey(k) => by_key.get(k).copied(),
                        })
                        .collect();
                    out.sort_unstable();
                    out.dedup();
                    out
                };
                let filters: Vec<&str> = statuses.iter().map(String::as_str).collect();
                let mut body = String::from("[");
                let mut first = true;
                for i in indices {
                    let v = &vals[i];
                    let balance = bals.get(i).copied().unwrap_or(0);
                    let status = validator_status(v, balance, epoch);
                    if !status_matches(status, &filters) {
                        continue;
                    }
                    if !first {
                        body.push(',');
                    }
                    first = false;
                    body.push_str(&format!(
                        "{{\"index\":\"{i}\",\"balance\":\"{balance}\",\"status\":\"{status}\",\"validator\":{}}}",
                        v.to_api_json()
                    ));
                }
                body.push(']');
                Ok(json_response(
                    envelope(&body, r.optimistic, r.finalized, false),
                    false,
                ))
            })
            .await
        }
        .await,
    )
}
