//! Segment verification and the import pipeline for the `mainnet` preset (the code is shared:
//! `segment.rs`, `import.rs`).

pub use crate::transition::mainnet as t;
pub use crate::types::mainnet as types;

#[path = "segment.rs"]
mod segment;
pub use segment::*;

/// The preset this module is compiled for.
pub const PRESET: crate::types::Preset = crate::types::Preset::Mainnet;

#[path = "import.rs"]
mod import;
pub use import::*;

#[path = "dbcheck.rs"]
mod dbcheck;
pub use dbcheck::*;

#[path = "serve.rs"]
mod serve;

#[path = "gossip_att.rs"]
pub(crate) mod gossip_att;

/// The preset's head state as the chain service's preset-free [`AnyState`].
///
/// [`AnyState`]: crate::chain::service::AnyState
pub fn any_state(state: std::sync::Arc<types::BeaconState>) -> crate::chain::service::AnyState {
    crate::chain::service::AnyState::Mainnet(state)
}
