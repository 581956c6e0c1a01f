//! A chain of either preset, chosen at run time (from the datadir's metadata, or from
//! which preset the genesis state decodes as), for the CLI and the benches.

use std::path::Path;
use std::sync::Arc;

use super::pipeline::{ImportError, ImportOptions, ImportReport, Progress};
use super::{mainnet, minimal, META_PRESET};
use crate::accel::aggregate::PubkeyAggregator;
use crate::cache::metrics::CacheMetrics;
use crate::store::{Head, Store};
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

/// The built-in chain config of a preset.
pub fn config_of(preset: Preset) -> ChainConfig {
    match preset {
        Preset::Minimal => ChainConfig::minimal(),
        Preset::Mainnet => ChainConfig::mainnet(),
    }
}

/// A chain of either preset.
pub enum AnyChain {
    Minimal(Box<minimal::Chain>),
    Mainnet(Box<mainnet::Chain>),
}

impl AnyChain {
    /// Open `datadir` (see `Chain::open`); the preset comes from the datadir, else from
    /// the genesis state.
    pub fn open(
        datadir: &Path,
        genesis: Option<&[u8]>,
        opts: ImportOptions,
        aggregator: Box<dyn PubkeyAggregator>,
    ) -> Result<Self, ImportError> {
        let preset = match (datadir_preset(datadir)?, genesis) {
            (Some(p), _) => p,
            (None, Some(g)) => genesis_preset(g)?,
            (None, None) => {
                return Err(ImportError::Genesis(
                    "a new datadir needs a genesis state".into(),
                ))
            }
        };
        let cfg = config_of(preset);
        Ok(match preset {
            Preset::Minimal => AnyChain::Minimal(Box::new(minimal::Chain::open(
                datadir, genesis, cfg, opts, aggregator,
            )?)),
            Preset::Mainnet => AnyChain::Mainnet(Box::new(mainnet::Chain::open(
                datadir, genesis, cfg, opts, aggregator,
            )?)),
        })
    }

    pub fn preset(&self) -> Preset {
        match self {
            AnyChain::Minimal(_) => Preset::Minimal,
            AnyChain::Mainnet(_) => Preset::Mainnet,
        }
    }

    pub fn import_dir(
        &mut self,
        dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> (ImportReport, Result<(), ImportError>) {
        match self {
            AnyChain::Minimal(c) => c.import_dir(dir, progress),
            AnyChain::Mainnet(c) => c.import_dir(dir, progress),
        }
    }

    pub fn head(&self) -> Head {
        match self {
            AnyChain::Minimal(c) => c.head(),
            AnyChain::Mainnet(c) => c.head(),
        }
    }

    pub fn head_state_root(&self) -> Result<[u8; 32], ImportError> {
        match self {
            AnyChain::Minimal(c) => c.head_state_root(),
            AnyChain::Mainnet(c) => c.head_state_root(),
        }
    }

    pub fn validators(&self) -> usize {
        match self {
            AnyChain::Minimal(c) => c.head_state().validators.len(),
            AnyChain::Mainnet(c) => c.head_state().validators.len(),
        }
    }

    pub fn metrics(&self) -> &Arc<CacheMetrics> {
        match self {
            AnyChain::Minimal(c) => c.metrics(),
            AnyChain::Mainnet(c) => c.metrics(),
        }
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
