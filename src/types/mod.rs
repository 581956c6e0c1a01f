//! SSZ containers of the Fulu fork on `ssz_rs`, for the `mainnet` and `minimal`
//! presets, chosen at run time through [`Preset`].
//!
//! - [`ssz`]: strict decoding, fixed byte vectors, merkleization helpers and the
//!   [`ssz_container!`](crate::ssz_container) macro every container is declared with.
//! - [`primitives`]: the spec's custom types (`Slot`, `Root`, `BLSPubkey`, …) and the
//!   constants that are the same in every preset.
//! - [`common`]: containers whose shape does not depend on the preset.
//! - [`minimal`], [`mainnet`]: the preset constants and, for each, every container
//!   (the preset-independent ones re-exported, the others instantiated from one macro).
//! - [`json`]: the Beacon API's JSON of every container (decimal strings, 0x-hex).
//! - [`ssz_static`]: type name → type dispatch (decode, re-encode, root) for the
//!   conformance runner and `quasar tool hash-tree-root`.

pub mod common;
mod error;
mod fulu;
pub mod json;
pub mod mainnet;
pub mod minimal;
pub mod primitives;
pub mod ssz;
pub mod ssz_static;

pub use error::TypeError;

use std::fmt;
use std::str::FromStr;

/// A preset: the set of constants that fixes the containers' bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    Mainnet,
    Minimal,
}

impl Preset {
    /// Both presets.
    pub const ALL: [Preset; 2] = [Preset::Mainnet, Preset::Minimal];

    /// The name used in the vectors' paths and in the consensus-specs configs.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Mainnet => "mainnet",
            Preset::Minimal => "minimal",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = TypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mainnet" => Ok(Preset::Mainnet),
            "minimal" => Ok(Preset::Minimal),
            other => Err(TypeError::UnknownPreset(other.to_string())),
        }
    }
}
