//! `DataColumnSidecarsByRange` v1 and `DataColumnSidecarsByRoot` v1 (Fulu,
//! `specs/fulu/p2p-interface.md`), answered for what the node holds.
//!
//! quasar keeps no data column sidecars yet (it does not subscribe to the
//! `data_column_sidecar_{subnet_id}` topics, which need KZG verification). So a block without
//! blob commitments has no columns and is skipped, as the spec says for slots without known
//! columns; a block *with* commitments inside `data_column_serve_range` is one whose columns
//! the node must serve and cannot: the answer is `3: ResourceUnavailable`, the spec's code
//! for a peer unable to reply on that range. Older blob-carrying blocks are skipped (the
//! spec allows leaving them out). Requests are checked against the protocol's bounds first
//! (`InvalidRequest`), without touching the store.

use crate::chain::service::ChainReader;
use crate::types::ssz::SszDecode;
use crate::types::Preset;

use super::codec::ResponseCode;
use super::messages::{
    self, DataColumnSidecarsByRangeRequest, DataColumnSidecarsByRootRequest,
    MAX_REQUEST_DATA_COLUMN_SIDECARS,
};
use super::rpc::{RpcChunk, RpcResponse};
use crate::types::primitives::NUMBER_OF_COLUMNS;

/// `MIN_EPOCHS_FOR_DATA_COLUMN_SIDECARS_REQUESTS` of both presets' configs (4096 epochs,
/// ~18 days on mainnet).
pub const MIN_EPOCHS_FOR_DATA_COLUMN_SIDECARS_REQUESTS: u64 = 4096;

/// What decides the serve range: the wall-clock epoch, Fulu's fork epoch and
/// `MIN_EPOCHS_FOR_DATA_COLUMN_SIDECARS_REQUESTS`.
#[derive(Debug, Clone, Copy)]
pub struct ServeWindow {
    pub preset: Preset,
    pub genesis_time: u64,
    pub slot_duration_ms: u64,
    pub slots_per_epoch: u64,
    pub fulu_fork_epoch: u64,
    pub min_epochs_for_requests: u64,
}

impl ServeWindow {
    /// The wall-clock epoch at `now_ms` (Unix milliseconds); 0 before genesis.
    pub fn current_epoch(&self, now_ms: u64) -> u64 {
        let since = now_ms.saturating_sub(self.genesis_time.saturating_mul(1000));
        since / self.slot_duration_ms.max(1) / self.slots_per_epoch.max(1)
    }

    /// `data_column_serve_range`'s first epoch:
    /// `max(current_epoch - MIN_EPOCHS_FOR_DATA_COLUMN_SIDECARS_REQUESTS, FULU_FORK_EPOCH)`.
    pub fn first_epoch(&self, now_ms: u64) -> u64 {
        self.current_epoch(now_ms)
            .saturating_sub(self.min_epochs_for_requests)
            .max(self.fulu_fork_epoch)
    }
}

fn invalid(message: &str) -> RpcResponse {
    vec![RpcChunk::error(ResponseCode::InvalidRequest, message)]
}

fn check_columns(columns: &[u64]) -> Result<(), RpcResponse> {
    match columns.iter().find(|&&c| c >= NUMBER_OF_COLUMNS as u64) {
        Some(c) => Err(invalid(&format!(
            "column index {c} is not below NUMBER_OF_COLUMNS ({NUMBER_OF_COLUMNS})"
        ))),
        None => Ok(()),
    }
}

/// Whether a stored block's columns are ones the node would have to serve and does not
/// hold: it carries blob commitments and its epoch is inside the serve range.
fn missing_columns(
    window: &ServeWindow,
    first_epoch: u64,
    slot: u64,
    ssz: &[u8],
) -> Result<bool, String> {
    let commitments = crate::chain::any::blob_commitment_count(window.preset, ssz)?;
    Ok(commitments > 0 && slot / window.slots_per_epoch.max(1) >= first_epoch)
}

/// Answer a `DataColumnSidecarsByRange` v1 request.
pub fn serve_range(
    reader: &ChainReader,
    window: &ServeWindow,
    now_ms: u64,
    payload: &[u8],
) -> RpcResponse {
    let req = match DataColumnSidecarsByRangeRequest::ssz_decode(payload) {
        Ok(r) => r,
        Err(e) => return invalid(&e.to_string()),
    };
    if let Err(r) = check_columns(&req.columns) {
        return r;
    }
    let requested = req.count.saturating_mul(req.columns.len() as u64);
    if requested > MAX_REQUEST_DATA_COLUMN_SIDECARS as u64 {
        return invalid("count * len(columns) over MAX_REQUEST_DATA_COLUMN_SIDECARS");
    }
    if req.columns.is_empty() || req.count == 0 {
        return Vec::new();
    }
    let first_epoch = window.first_epoch(now_ms);
    let count = req.count.min(messages::MAX_REQUEST_BLOCKS_DENEB as u64);
    let blocks = match reader.blocks_by_range(req.start_slot, count) {
        Ok(b) => b,
        Err(e) => return vec![RpcChunk::error(ResponseCode::ServerError, &e.to_string())],
    };
    for b in blocks {
        match missing_columns(window, first_epoch, b.slot, &b.ssz) {
            Ok(false) => {}
            Ok(true) => {
                return vec![RpcChunk::error(
                    ResponseCode::ResourceUnavailable,
                    "data column sidecars are not kept by this node",
                )]
            }
            Err(e) => return vec![RpcChunk::error(ResponseCode::ServerError, &e)],
        }
    }
    Vec::new()
}

/// Answer a `DataColumnSidecarsByRoot` v1 request.
pub fn serve_root(
    reader: &ChainReader,
    window: &ServeWindow,
    now_ms: u64,
    payload: &[u8],
) -> RpcResponse {
    let req = match DataColumnSidecarsByRootRequest::ssz_decode(payload) {
        Ok(r) => r,
        Err(e) => return invalid(&e.to_string()),
    };
    let mut requested = 0usize;
    for id in req.iter() {
        if let Err(r) = check_columns(&id.columns) {
            return r;
        }
        requested += id.columns.len();
    }
    if requested > MAX_REQUEST_DATA_COLUMN_SIDECARS {
        return invalid("more than MAX_REQUEST_DATA_COLUMN_SIDECARS columns requested");
    }
    let first_epoch = window.first_epoch(now_ms);
    for id in req.iter().filter(|id| !id.columns.is_empty()) {
        let mut root = [0u8; 32];
        root.copy_from_slice(id.block_root.as_ref());
        let ssz = match reader.block_by_root(&root) {
            Ok(Some(ssz)) => ssz,
            // An unknown block: nothing to send for it.
            Ok(None) => continue,
            Err(e) => return vec![RpcChunk::error(ResponseCode::ServerError, &e.to_string())],
        };
        let slot = match crate::store::schema::signed_block_slot(&ssz) {
            Ok(s) => s,
            Err(e) => return vec![RpcChunk::error(ResponseCode::ServerError, &e.to_string())],
        };
        match missing_columns(window, first_epoch, slot, &ssz) {
            Ok(false) => {}
            Ok(true) => {
                return vec![RpcChunk::error(
                    ResponseCode::ResourceUnavailable,
                    "data column sidecars are not kept by this node",
                )]
            }
            Err(e) => return vec![RpcChunk::error(ResponseCode::ServerError, &e)],
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> ServeWindow {
        ServeWindow {
            preset: Preset::Minimal,
            genesis_time: 1_000,
            slot_duration_ms: 6_000,
            slots_per_epoch: 8,
            fulu_fork_epoch: 2,
            min_epochs_for_requests: 4096,
        }
    }

    #[test]
    fn serve_window_follows_the_spec() {
        let w = window();
        assert_eq!(w.current_epoch(0), 0, "before genesis");
        assert_eq!(w.current_epoch(1_000_000 + 48_000 * 3 + 1), 3);
        assert_eq!(
            w.first_epoch(1_000_000 + 48_000 * 3),
            2,
            "FULU_FORK_EPOCH bounds it"
        );
        let late = 1_000_000 + 48_000 * 5000;
        assert_eq!(w.first_epoch(late), 5000 - 4096);
    }

    #[test]
    fn a_blob_carrying_block_inside_the_range_is_missing_its_columns() {
        use crate::types::minimal::SignedBeaconBlock;
        use crate::types::ssz::ssz_encode;
        let w = window();
        let mut block = SignedBeaconBlock::default();
        block.message.slot = 8 * 3;
        let plain = ssz_encode(&block).unwrap();
        assert!(
            !missing_columns(&w, 2, 24, &plain).unwrap(),
            "no commitments, no columns"
        );
        block
            .message
            .body
            .blob_kzg_commitments
            .push(Default::default());
        let with_blob = ssz_encode(&block).unwrap();
        assert!(
            missing_columns(&w, 2, 24, &with_blob).unwrap(),
            "epoch 3 is served"
        );
        assert!(
            !missing_columns(&w, 4, 24, &with_blob).unwrap(),
            "before the range"
        );
        assert!(
            missing_columns(&w, 2, 24, &[1, 2, 3]).is_err(),
            "not a block"
        );
    }

    #[test]
    fn column_indices_are_checked() {
        assert!(check_columns(&[0, 127]).is_ok());
        let r = check_columns(&[3, 128]).unwrap_err();
        assert_eq!(r[0].code, ResponseCode::InvalidRequest);
    }
}
