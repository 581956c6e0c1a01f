//! The state transition for the `minimal` preset.

pub use crate::types::minimal as types;

/// Preset constants the transition needs beyond the ones that shape the containers.
pub mod preset {
    pub const MAX_VALIDATORS_PER_WITHDRAWALS_SWEEP: u64 = 16;
    pub const MAX_PENDING_PARTIALS_PER_WITHDRAWALS_SWEEP: u64 = 2;
    pub const MAX_PENDING_DEPOSITS_PER_EPOCH: u64 = 16;
}

#[path = "spec/electra.rs"]
pub mod electra;
#[path = "spec/fork.rs"]
pub mod fork;
#[path = "spec/helpers.rs"]
pub mod helpers;
#[path = "spec/process_block.rs"]
pub mod process_block;
#[path = "spec/process_epoch.rs"]
pub mod process_epoch;
#[path = "spec/process_slots.rs"]
pub mod process_slots;
#[path = "spec/state_transition.rs"]
pub mod state_transition;

pub use fork::*;
pub use helpers::*;
pub use process_block::*;
pub use process_epoch::*;
pub use process_slots::*;
pub use state_transition::*;
