//! Segment verification for the `mainnet` preset (the code is shared: `segment.rs`).

pub use crate::transition::mainnet as t;
pub use crate::types::mainnet as types;

#[path = "segment.rs"]
mod segment;
pub use segment::*;
