//! The devnet generator for the `mainnet` preset (the code is shared: `generate.rs`).

pub use crate::transition::mainnet as t;
pub use crate::types::mainnet as types;

#[path = "generate.rs"]
mod generate;
pub use generate::*;
