//! The devnet generator for the `minimal` preset (the code is shared: `generate.rs`).

pub use crate::transition::minimal as t;
pub use crate::types::minimal as types;

#[path = "generate.rs"]
mod generate;
pub use generate::*;
