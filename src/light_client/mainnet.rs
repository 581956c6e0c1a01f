//! The light client for the `mainnet` preset.

pub use crate::types::mainnet as types;

#[path = "spec.rs"]
mod spec;

pub use spec::*;
