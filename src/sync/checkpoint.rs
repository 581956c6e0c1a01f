//! Checkpoint sync: a new datadir anchored at another node's finalized checkpoint, fetched
//! from its Beacon API, instead of at genesis.
//!
//! ```text
//!   GET {url}/eth/v2/debug/beacon/states/finalized   (Accept: application/octet-stream)
//!        │  decodes as the chain's preset; slot at an epoch boundary
//!        ▼
//!   anchor root = hash_tree_root(state.latest_block_header, its state_root filled in
//!                 with hash_tree_root(state) when still zero — as `get_forkchoice_store`)
//!        │
//!   GET {url}/eth/v2/beacon/blocks/{anchor root}    (Accept: application/octet-stream)
//!        │  block.state_root = hash_tree_root(state) when the block is at the state's slot
//!        │  (else = the header's state_root: the boundary slots after it were empty);
//!        │  hash_tree_root(block.message) = anchor root
//!        ▼
//!   one synced write: the state, the block, the checkpoints, the head, the oldest block
//! ```
//!
//! The state comes first and the block is asked by the root the state names, so that a
//! finalization between the two requests cannot pair a block with another state. Every
//! check runs before anything is written: on any failure the datadir is left as it was
//! (no anchor). A datadir that holds a chain already ignores the URL (the node logs it).

use std::path::Path;
use std::time::Duration;

use crate::chain::pipeline::ImportError;
use crate::chain::Anchor;
use crate::types::ssz::SszDecode;
use crate::types::Preset;

/// How a checkpoint is fetched.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The Beacon API's base URL (`http://host:port/` or with a path prefix).
    pub url: String,
    /// Connecting (and resolving the host) within this long.
    pub connect_timeout: Duration,
    /// Each read of an answer within this long (a stalled body is cut).
    pub read_timeout: Duration,
    /// The most bytes of a state read. A preset's SSZ bound on a `BeaconState` is far
    /// beyond anything real (2^40 validators), so the limit is a practical one: 1 GiB by
    /// default (a mainnet state is about 300 MB today). Blocks are held to
    /// [`MAX_BLOCK_BYTES`](crate::chain::pipeline::MAX_BLOCK_BYTES).
    pub max_state_bytes: u64,
}

impl CheckpointConfig {
    pub fn new(url: impl Into<String>) -> Self {
        CheckpointConfig {
            url: url.into(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_state_bytes: 1 << 30,
        }
    }
}

/// Why a checkpoint sync did not anchor the datadir. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint sync: {url}: unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("checkpoint sync: {url}: HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        /// The API's `message` (or the body's start when it is not the API's error body).
        message: String,
    },
    #[error("checkpoint sync: {url}: the answer is not SSZ (Content-Type {content_type:?})")]
    NotSsz { url: String, content_type: String },
    #[error("checkpoint sync: {url}: the answer is over {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("checkpoint sync: the {what} is not a {expected} {what}, but a {found} one")]
    WrongPreset {
        what: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("checkpoint sync: the {what} does not decode as {preset} SSZ: {reason}")]
    Decode {
        what: &'static str,
        preset: &'static str,
        reason: String,
    },
    #[error(
        "checkpoint sync: the finalized state is at slot {slot}, not at an epoch boundary \
         (a multiple of {slots_per_epoch})"
    )]
    NotEpochBoundary { slot: u64, slots_per_epoch: u64 },
    #[error("checkpoint sync: root mismatch: {what}: expected 0x{expected}, got 0x{got}")]
    RootMismatch {
        what: &'static str,
        expected: String,
        got: String,
    },
    #[error(
        "checkpoint sync: the checkpoint is of another chain (genesis_validators_root \
         0x{found}, the genesis state's 0x{expected})"
    )]
    OtherChain { expected: String, found: String },
    #[error("checkpoint sync: anchoring the datadir: {0}")]
    Anchor(#[from] ImportError),
}

/// What a checkpoint sync anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointAnchor {
    pub preset: Preset,
    /// The anchor (block root, state root, the state's slot).
    pub anchor: Anchor,
    /// The anchor block's slot (below the state's when the boundary slots were empty).
    pub block_slot: u64,
}

/// Fetch the finalized checkpoint from `cfg.url`, check it and anchor the new datadir at
/// it. `preset`: the chain's, when known (from the genesis state); `None` takes the one
/// the state decodes as. `genesis`: the genesis state's SSZ, when given: the checkpoint
/// must be of its chain (same `genesis_validators_root`). Blocking: run it off the async
/// workers ([`checkpoint_sync`] does).
pub fn checkpoint_sync_blocking(
    cfg: &CheckpointConfig,
    datadir: &Path,
    preset: Option<Preset>,
    genesis: Option<&[u8]>,
) -> Result<CheckpointAnchor, CheckpointError> {
    let client = Client::new(cfg);
    let state = client.get_ssz("eth/v2/debug/beacon/states/finalized", cfg.max_state_bytes)?;
    let preset = match preset {
        Some(p) => p,
        None => preset_of_state(&state)?,
    };
    match preset {
        Preset::Minimal => anchor_at::<Minimal>(&client, datadir, &state, genesis),
        Preset::Mainnet => anchor_at::<Mainnet>(&client, datadir, &state, genesis),
    }
}

/// [`checkpoint_sync_blocking`] on the blocking pool.
pub async fn checkpoint_sync(
    cfg: CheckpointConfig,
    datadir: &Path,
    preset: Option<Preset>,
    genesis: Option<Vec<u8>>,
) -> Result<CheckpointAnchor, CheckpointError> {
    let datadir = datadir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        checkpoint_sync_blocking(&cfg, &datadir, preset, genesis.as_deref())
    })
    .await
    .unwrap_or_else(|e| {
        Err(CheckpointError::Anchor(ImportError::Internal(format!(
            "checkpoint sync task: {e}"
        ))))
    })
}

fn preset_of_state(ssz: &[u8]) -> Result<Preset, CheckpointError> {
    if crate::types::minimal::BeaconState::ssz_decode(ssz).is_ok() {
        return Ok(Preset::Minimal);
    }
    crate::types::mainnet::BeaconState::ssz_decode(ssz)
        .map(|_| Preset::Mainnet)
        .map_err(|e| CheckpointError::Decode {
            what: "state",
            preset: "minimal or mainnet",
            reason: e.to_string(),
        })
}

/// The preset-typed half: decode, check, write.
trait PresetKind {
    const PRESET: Preset;
    type State: SszDecode;
    type Block: SszDecode;
    /// The other preset's state decodes these bytes (for the "wrong preset" error).
    fn other_decodes(state: &[u8]) -> bool;
    fn state_facts(state: &Self::State) -> Result<StateFacts, String>;
    fn block_facts(block: &Self::Block) -> Result<BlockFacts, String>;
    fn write(
        datadir: &Path,
        state: &Self::State,
        block: &Self::Block,
    ) -> Result<Anchor, ImportError>;
}

/// What the checks read of a state.
struct StateFacts {
    slot: u64,
    state_root: [u8; 32],
    /// `latest_block_header` with its `state_root` filled in when zero: the anchor block.
    header_root: [u8; 32],
    header_slot: u64,
    header_state_root: [u8; 32],
    genesis_validators_root: [u8; 32],
}

struct BlockFacts {
    slot: u64,
    root: [u8; 32],
    state_root: [u8; 32],
}

macro_rules! preset_kind {
    ($name:ident, $m:ident, $other:ident) => {
        struct $name;
        impl PresetKind for $name {
            const PRESET: Preset = crate::chain::$m::PRESET;
            type State = crate::chain::$m::types::BeaconState;
            type Block = crate::chain::$m::types::SignedBeaconBlock;

            fn other_decodes(state: &[u8]) -> bool {
                crate::types::$other::BeaconState::ssz_decode(state).is_ok()
            }

            fn state_facts(state: &Self::State) -> Result<StateFacts, String> {
                use crate::chain::$m::{t, types};
                let state_root = t::state_root_of(state).map_err(|e| e.to_string())?;
                let mut header = state.latest_block_header.clone();
                if header.state_root.as_bytes() == &[0u8; 32] {
                    header.state_root = types::Root::from(state_root);
                }
                Ok(StateFacts {
                    slot: state.slot,
                    state_root,
                    header_root: t::hash_tree_root(&header).map_err(|e| e.to_string())?,
                    header_slot: header.slot,
                    header_state_root: *header.state_root.as_bytes(),
                    genesis_validators_root: *state.genesis_validators_root.as_bytes(),
                })
            }

            fn block_facts(block: &Self::Block) -> Result<BlockFacts, String> {
                use crate::chain::$m::t;
                Ok(BlockFacts {
                    slot: block.message.slot,
                    root: t::hash_tree_root(&block.message).map_err(|e| e.to_string())?,
                    state_root: *block.message.state_root.as_bytes(),
                })
            }

            fn write(
                datadir: &Path,
                state: &Self::State,
                block: &Self::Block,
            ) -> Result<Anchor, ImportError> {
                crate::chain::$m::write_checkpoint_anchor(datadir, state, block)
            }
        }
    };
}

preset_kind!(Minimal, minimal, mainnet);
preset_kind!(Mainnet, mainnet, minimal);

fn anchor_at<P: PresetKind>(
    client: &Client,
    datadir: &Path,
    state_ssz: &[u8],
    genesis: Option<&[u8]>,
) -> Result<CheckpointAnchor, CheckpointError> {
    let preset = P::PRESET.name();
    let state = P::State::ssz_decode(state_ssz).map_err(|e| {
        if P::other_decodes(state_ssz) {
            CheckpointError::WrongPreset {
                what: "state",
                expected: preset,
                found: if P::PRESET == Preset::Minimal {
                    "mainnet"
                } else {
                    "minimal"
                },
            }
        } else {
            CheckpointError::Decode {
                what: "state",
                preset,
                reason: e.to_string(),
            }
        }
    })?;
    let internal = |e: String| CheckpointError::Anchor(ImportError::Internal(e));
    let facts = P::state_facts(&state).map_err(internal)?;
    let slots_per_epoch = crate::chain::any::slots_per_epoch(P::PRESET);
    if facts.slot % slots_per_epoch != 0 {
        return Err(CheckpointError::NotEpochBoundary {
            slot: facts.slot,
            slots_per_epoch,
        });
    }
    if let Some(genesis) = genesis {
        let g = P::State::ssz_decode(genesis).map_err(|e| CheckpointError::Decode {
            what: "genesis state",
            preset,
            reason: e.to_string(),
        })?;
        let g = P::state_facts(&g).map_err(internal)?;
        if g.genesis_validators_root != facts.genesis_validators_root {
            return Err(CheckpointError::OtherChain {
                expected: hex(&g.genesis_validators_root),
                found: hex(&facts.genesis_validators_root),
            });
        }
    }
    let path = format!("eth/v2/beacon/blocks/0x{}", hex(&facts.header_root));
    let block_ssz = client.get_ssz(&path, crate::chain::pipeline::MAX_BLOCK_BYTES as u64)?;
    let block = P::Block::ssz_decode(&block_ssz).map_err(|e| CheckpointError::Decode {
        what: "block",
        preset,
        reason: e.to_string(),
    })?;
    let b = P::block_facts(&block).map_err(internal)?;
    // The spec's anchor: `anchor_block.state_root == hash_tree_root(anchor_state)`; when the
    // epoch's first slots were empty the state was advanced past the block, and the block
    // is the state's latest block header instead (whose state root is the block's).
    let (what, expected) = if b.slot == facts.slot {
        (
            "the block's state_root is not the state's root",
            facts.state_root,
        )
    } else {
        (
            "the block's state_root is not the state's latest_block_header's",
            facts.header_state_root,
        )
    };
    if b.state_root != expected {
        return Err(CheckpointError::RootMismatch {
            what,
            expected: hex(&expected),
            got: hex(&b.state_root),
        });
    }
    if b.root != facts.header_root || b.slot != facts.header_slot {
        return Err(CheckpointError::RootMismatch {
            what: "the block is not the state's latest_block_header",
            expected: hex(&facts.header_root),
            got: hex(&b.root),
        });
    }
    let anchor = P::write(datadir, &state, &block)?;
    Ok(CheckpointAnchor {
        preset: P::PRESET,
        anchor,
        block_slot: b.slot,
    })
}

/// A blocking HTTP client of one Beacon API.
struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(cfg: &CheckpointConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(cfg.connect_timeout))
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_recv_response(Some(cfg.read_timeout))
            .timeout_per_read(Some(cfg.read_timeout))
            .build()
            .into();
        Client {
            base: cfg.url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// GET `path` as SSZ, at most `limit` bytes.
    fn get_ssz(&self, path: &str, limit: u64) -> Result<Vec<u8>, CheckpointError> {
        let url = format!("{}/{path}", self.base);
        let resp = self
            .agent
            .get(&url)
            .header("Accept", "application/octet-stream")
            .call()
            .map_err(|e| CheckpointError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut body = resp.into_body();
        let read = |body: &mut ureq::Body, limit: u64| {
            body.with_config()
                .limit(limit)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => CheckpointError::TooLarge {
                        url: url.clone(),
                        limit,
                    },
                    e => CheckpointError::Unreachable {
                        url: url.clone(),
                        reason: e.to_string(),
                    },
                })
        };
        if status != 200 {
            let text = read(&mut body, 64 * 1024).unwrap_or_default();
            return Err(CheckpointError::Http {
                url: url.clone(),
                status,
                message: api_message(&text),
            });
        }
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/octet-stream" {
            return Err(CheckpointError::NotSsz { url, content_type });
        }
        read(&mut body, limit)
    }
}

/// The `message` of the API's error body, or the body's start.
fn api_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if text.trim().is_empty() {
        "(no body)".into()
    } else {
        text
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
