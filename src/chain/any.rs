//! The preset of a datadir or a genesis state, chosen at run time (the chain service opens
//! the preset's chain with it), and `db info` / `db verify` of either preset.

use std::path::Path;

use super::pipeline::ImportError;
use super::{mainnet, minimal, META_PRESET};
use crate::store::Store;
use crate::transition::ChainConfig;
use crate::types::ssz::SszDecode;
use crate::types::Preset;

/// The preset of an existing datadir (`None` when it holds no chain yet).
pub fn datadir_preset(datadir: &Path) -> Result<Option<Preset>, ImportError> {
    let db = datadir.join("db");
    if !db.exists() {
        return Ok(None);
    }
    let store = Store::open(&db)?;
    match store.get_metadata(META_PRESET)? {
        None => Ok(None),
        Some(name) => String::from_utf8_lossy(&name)
            .parse::<Preset>()
            .map(Some)
            .map_err(|e| ImportError::Internal(format!("datadir preset: {e}"))),
    }
}

/// The preset a genesis state decodes as (the two presets' states have different fixed
/// sizes, so at most one fits).
pub fn genesis_preset(genesis: &[u8]) -> Result<Preset, ImportError> {
    if minimal::types::BeaconState::ssz_decode(genesis).is_ok() {
        return Ok(Preset::Minimal);
    }
    match mainnet::types::BeaconState::ssz_decode(genesis) {
        Ok(_) => Ok(Preset::Mainnet),
        Err(e) => Err(ImportError::Genesis(format!(
            "not a BeaconState of either preset ({e})"
        ))),
    }
}

/// The preset a genesis state decodes as and its validator count.
pub fn genesis_preset_and_validators(genesis: &[u8]) -> Result<(Preset, usize), ImportError> {
    if let Ok(s) = minimal::types::BeaconState::ssz_decode(genesis) {
        return Ok((Preset::Minimal, s.validators.len()));
    }
    match mainnet::types::BeaconState::ssz_decode(genesis) {
        Ok(s) => Ok((Preset::Mainnet, s.validators.len())),
        Err(e) => Err(ImportError::Genesis(format!(
            "not a BeaconState of either preset ({e})"
        ))),
    }
}

/// The built-in chain config of a preset.
pub fn config_of(preset: Preset) -> ChainConfig {
    match preset {
        Preset::Minimal => ChainConfig::minimal(),
        Preset::Mainnet => ChainConfig::mainnet(),
    }
}

/// `db info` of a datadir of either preset.
pub fn db_info(datadir: &Path) -> Result<String, String> {
    let (store, preset) = open_existing(datadir)?;
    Ok(match preset {
        Preset::Minimal => minimal::db_info(&store)?.to_string(),
        Preset::Mainnet => mainnet::db_info(&store)?.to_string(),
    })
}

/// `db verify` of a datadir of either preset: the inconsistencies found.
pub fn db_verify(datadir: &Path) -> Result<Vec<String>, String> {
    let (store, preset) = open_existing(datadir)?;
    match preset {
        Preset::Minimal => minimal::db_verify(&store, &ChainConfig::minimal()),
        Preset::Mainnet => mainnet::db_verify(&store, &ChainConfig::mainnet()),
    }
}

fn open_existing(datadir: &Path) -> Result<(Store, Preset), String> {
    let db = datadir.join("db");
    if !db.is_dir() {
        return Err(format!(
            "{}: no database here (expected {})",
            datadir.display(),
            db.display()
        ));
    }
    let store = Store::open(&db).map_err(|e| e.to_string())?;
    let preset = store
        .get_metadata(META_PRESET)
        .map_err(|e| e.to_string())?
        .ok_or("the database holds no chain (no preset recorded)")?;
    let preset = String::from_utf8_lossy(&preset)
        .parse::<Preset>()
        .map_err(|e| e.to_string())?;
    Ok((store, preset))
}

/// The smallest SSZ encoding of a preset's `SignedBeaconBlock` (every list empty): the
/// lower bound the network checks a block's declared length against.
pub fn min_block_ssz_len(preset: Preset) -> usize {
    use crate::types::ssz::ssz_encode;
    match preset {
        Preset::Minimal => ssz_encode(&minimal::types::SignedBeaconBlock::default()),
        Preset::Mainnet => ssz_encode(&mainnet::types::SignedBeaconBlock::default()),
    }
    .map(|b| b.len())
    .unwrap_or(0)
}

/// The number of blob KZG commitments of a preset's `SignedBeaconBlock` SSZ (a stored
/// block: decoded with the preset's types).
pub fn blob_commitment_count(preset: Preset, ssz: &[u8]) -> Result<usize, String> {
    use crate::types::ssz::SszDecode;
    match preset {
        Preset::Minimal => minimal::types::SignedBeaconBlock::ssz_decode(ssz)
            .map(|b| b.message.body.blob_kzg_commitments.len()),
        Preset::Mainnet => mainnet::types::SignedBeaconBlock::ssz_decode(ssz)
            .map(|b| b.message.body.blob_kzg_commitments.len()),
    }
    .map_err(|e| e.to_string())
}

/// What sync needs of a `SignedBeaconBlock` before handing it to the chain: its slot,
/// its parent's root and its own root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSummary {
    pub slot: u64,
    pub parent_root: [u8; 32],
    pub root: [u8; 32],
}

/// The [`BlockSummary`] of a preset's `SignedBeaconBlock` SSZ.
pub fn block_summary(preset: Preset, ssz: &[u8]) -> Result<BlockSummary, String> {
    match preset {
        Preset::Minimal => {
            let b =
                minimal::types::SignedBeaconBlock::ssz_decode(ssz).map_err(|e| e.to_string())?;
            Ok(BlockSummary {
                slot: b.message.slot,
                parent_root: root32(&b.message.parent_root),
                root: minimal::t::hash_tree_root(&b.message).map_err(|e| e.to_string())?,
            })
        }
        Preset::Mainnet => {
            let b =
                mainnet::types::SignedBeaconBlock::ssz_decode(ssz).map_err(|e| e.to_string())?;
            Ok(BlockSummary {
                slot: b.message.slot,
                parent_root: root32(&b.message.parent_root),
                root: mainnet::t::hash_tree_root(&b.message).map_err(|e| e.to_string())?,
            })
        }
    }
}

fn root32(r: &crate::types::primitives::Root) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(r.as_ref());
    out
}

/// `SLOTS_PER_EPOCH` of a preset.
pub fn slots_per_epoch(preset: Preset) -> u64 {
    match preset {
        Preset::Minimal => minimal::types::SLOTS_PER_EPOCH as u64,
        Preset::Mainnet => mainnet::types::SLOTS_PER_EPOCH as u64,
    }
}

/// The fork schedule a chain actually follows: a chain whose state is already at Fulu's
/// fork version in an epoch before the config's `FULU_FORK_EPOCH` (a `quasar devnet` chain,
/// Fulu from genesis) has every fork at epoch 0. Fork digests and topics are computed from
/// this schedule, so peers on the same chain agree on them.
pub fn effective_fork_schedule(
    mut cfg: ChainConfig,
    fork_version: [u8; 4],
    epoch: u64,
) -> ChainConfig {
    if fork_version == cfg.fulu_fork_version && epoch < cfg.fulu_fork_epoch {
        cfg.altair_fork_epoch = 0;
        cfg.bellatrix_fork_epoch = 0;
        cfg.capella_fork_epoch = 0;
        cfg.deneb_fork_epoch = 0;
        cfg.electra_fork_epoch = 0;
        cfg.fulu_fork_epoch = 0;
    }
    cfg
}
