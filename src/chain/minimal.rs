//! Segment verification and the import pipeline for the `minimal` preset (the code is shared:
//! `segment.rs`, `import.rs`).

pub use crate::transition::minimal as t;
pub use crate::types::minimal as types;

#[path = "segment.rs"]
mod segment;
pub use segment::*;

/// The preset this module is compiled for.
pub const PRESET: crate::types::Preset = crate::types::Preset::Minimal;

#[path = "import.rs"]
mod import;
pub use import::*;

#[path = "dbcheck.rs"]
mod dbcheck;
pub use dbcheck::*;
