//! `quasar devnet`: a valid chain from an interop genesis, for tests and benchmarks.
//!
//! - [`keys`]: the deterministic interop secret keys;
//! - [`minimal`], [`mainnet`]: the generator compiled per preset (the code is shared,
//!   `generate.rs`): a Fulu genesis state built directly (every validator active from
//!   epoch 0), then a block every slot with the randao reveal, an execution payload that
//!   passes the beacon chain's own checks, one Electra attestation per slot spanning all
//!   its committees with every member signing (included in the next block), a full sync
//!   aggregate over the previous block root, the state root from running the transition,
//!   and the proposer signature. Signing runs in parallel on rayon.
//! - [`write_chain`]: `DIR/genesis.ssz_snappy` and `DIR/blocks/<slot>.ssz_snappy` (raw
//!   snappy of the SSZ bytes).

pub mod keys;
// `minimal` and `mainnet` compile the same `generate.rs`, on purpose.
#[allow(clippy::duplicate_mod)]
pub mod mainnet;
#[allow(clippy::duplicate_mod)]
pub mod minimal;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::transition::{ChainConfig, TransitionError};
use crate::types::Preset;

pub use keys::{interop_secret_bytes, interop_secret_key, InteropKeys};

/// The default genesis time of a devnet (any fixed value does; this one is 2024-01-01).
pub const DEFAULT_GENESIS_TIME: u64 = 1_704_067_200;

/// Why a devnet could not be generated. All are the generator's fault (or the disk's).
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("bad devnet parameters: {0}")]
    Params(String),
    #[error("state transition: {0}")]
    Transition(#[from] TransitionError),
    #[error("bls: {0}")]
    Bls(String),
    #[error("ssz: {0}")]
    Ssz(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How an aggregate of many signers over one message is made. Both give the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningMode {
    /// Every signer signs (in parallel) and the signatures are aggregated: the real cost.
    #[default]
    Each,
    /// The signers' secret keys are summed modulo r and the sum signs once: the same
    /// aggregate signature, for generating big chains fast.
    Summed,
}

impl std::str::FromStr for SigningMode {
    type Err = DevnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "each" => Ok(Self::Each),
            "summed" => Ok(Self::Summed),
            other => Err(DevnetError::Params(format!(
                "signing mode {other:?} (known: each, summed)"
            ))),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    pub validators: usize,
    /// Blocks to produce: one at each slot `1..=slots`.
    pub slots: u64,
    pub genesis_time: u64,
    pub signing: SigningMode,
}

/// Time spent per phase, summed over the chain.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub keys: Duration,
    pub genesis: Duration,
    /// Producing the attestations and sync aggregates (signing and aggregating).
    pub signing: Duration,
    /// Advancing slots, applying blocks, and the state roots.
    pub transition: Duration,
    pub writing: Duration,
    pub total: Duration,
}

/// What a generated chain looks like at its end.
#[derive(Debug, Clone)]
pub struct DevnetSummary {
    pub preset: Preset,
    pub validators: usize,
    pub blocks: u64,
    pub head_slot: u64,
    pub head_root: [u8; 32],
    pub state_root: [u8; 32],
    pub current_justified_epoch: u64,
    pub finalized_epoch: u64,
    /// Signatures made (each attester, sync committee member, proposer and reveal).
    pub signatures: u64,
    pub timings: Timings,
}

/// Generate a chain for `preset` with its built-in chain config and write it under `out`;
/// `progress` receives a line per block (for stderr).
pub fn run(
    preset: Preset,
    opts: &DevnetOptions,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<DevnetSummary, DevnetError> {
    match preset {
        Preset::Minimal => minimal::generate_to_dir(opts, &ChainConfig::minimal(), out, progress),
        Preset::Mainnet => mainnet::generate_to_dir(opts, &ChainConfig::mainnet(), out, progress),
    }
}

/// A block producer of one preset behind a preset-free front (`quasar dev`): SSZ out.
pub trait LiveProducer: Send {
    /// The next slot's `SignedBeaconBlock` (see [`minimal::Generator::next_block`]): its slot
    /// and SSZ. The producer's head moves to it.
    fn next_block_ssz(&mut self) -> Result<(u64, Vec<u8>), DevnetError>;
    /// The head slot's `SignedAggregateAndProof`s (see
    /// [`minimal::Generator::head_aggregates`]), each as SSZ with its committee index and
    /// aggregator.
    fn head_aggregates_ssz(&mut self) -> Result<Vec<LiveAggregate>, DevnetError>;
}

/// One `SignedAggregateAndProof` of a [`LiveProducer`].
#[derive(Debug, Clone)]
pub struct LiveAggregate {
    pub slot: u64,
    pub committee: u64,
    pub aggregator: u64,
    pub ssz: Vec<u8>,
}

/// A live producer of `preset` on a fresh interop genesis of `keys` at `genesis_time`
/// (chain config `cfg`): the genesis state's SSZ and the producer, whose head is its
/// genesis block.
pub fn live_producer<'a>(
    preset: Preset,
    keys: &'a InteropKeys,
    cfg: &'a ChainConfig,
    genesis_time: u64,
) -> Result<(Vec<u8>, Box<dyn LiveProducer + 'a>), DevnetError> {
    match preset {
        Preset::Minimal => minimal::live_producer(keys, cfg, genesis_time),
        Preset::Mainnet => mainnet::live_producer(keys, cfg, genesis_time),
    }
}

/// Where block `slot` of a devnet lives under `dir`.
pub fn block_path(dir: &Path, slot: u64) -> PathBuf {
    dir.join("blocks").join(format!("{slot}.ssz_snappy"))
}

/// Where the genesis state of a devnet lives under `dir`.
pub fn genesis_path(dir: &Path) -> PathBuf {
    dir.join("genesis.ssz_snappy")
}

/// Raw snappy (no framing), as the files are written.
pub fn compress(ssz: &[u8]) -> Result<Vec<u8>, DevnetError> {
    snap::raw::Encoder::new()
        .compress_vec(ssz)
        .map_err(|e| DevnetError::Ssz(format!("snappy: {e}")))
}

/// Write `bytes` to `path` (through a temporary file and a rename).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DevnetError> {
    let io = |source| DevnetError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The slots of the blocks under `dir/blocks`, ascending.
pub fn list_blocks(dir: &Path) -> Result<Vec<(u64, PathBuf)>, DevnetError> {
    list_block_files(&dir.join("blocks"))
}

/// Block files `<slot>.ssz_snappy` or `<slot>.ssz` directly in `folder`, by slot.
pub fn list_block_files(folder: &Path) -> Result<Vec<(u64, PathBuf)>, DevnetError> {
    let rd = std::fs::read_dir(folder).map_err(|source| DevnetError::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let path = entry.path();
        let slot = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| {
                n.strip_suffix(".ssz_snappy")
                    .or_else(|| n.strip_suffix(".ssz"))
            })
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(slot) = slot {
            out.push((slot, path));
        }
    }
    out.sort();
    Ok(out)
}
