//! The `minimal` preset: its constants and every Fulu container under them.

pub use super::common::*;
pub use super::primitives::*;

pub const MAX_COMMITTEES_PER_SLOT: usize = 4;
pub const TARGET_COMMITTEE_SIZE: usize = 4;
pub const SHUFFLE_ROUND_COUNT: usize = 10;
pub const SLOTS_PER_EPOCH: usize = 8;
pub const EPOCHS_PER_ETH1_VOTING_PERIOD: usize = 4;
pub const SLOTS_PER_HISTORICAL_ROOT: usize = 64;
pub const EPOCHS_PER_HISTORICAL_VECTOR: usize = 64;
pub const EPOCHS_PER_SLASHINGS_VECTOR: usize = 64;
pub const SYNC_COMMITTEE_SIZE: usize = 32;
pub const EPOCHS_PER_SYNC_COMMITTEE_PERIOD: usize = 8;
pub const MAX_WITHDRAWALS_PER_PAYLOAD: usize = 4;
pub const PENDING_PARTIAL_WITHDRAWALS_LIMIT: usize = 64;
pub const PENDING_CONSOLIDATIONS_LIMIT: usize = 64;

super::fulu::define_preset_containers!();
