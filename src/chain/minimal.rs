//! Segment verification for the `minimal` preset (the code is shared: `segment.rs`).

pub use crate::transition::minimal as t;
pub use crate::types::minimal as types;

#[path = "segment.rs"]
mod segment;
pub use segment::*;
