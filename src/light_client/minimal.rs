//! The light client for the `minimal` preset.

pub use crate::types::minimal as types;

#[path = "spec.rs"]
mod spec;

pub use spec::*;
