//! The `mainnet` preset: its constants and every Fulu container under them.

pub use super::common::*;
pub use super::primitives::*;

pub const MAX_COMMITTEES_PER_SLOT: usize = 64;
pub const TARGET_COMMITTEE_SIZE: usize = 128;
pub const SHUFFLE_ROUND_COUNT: usize = 90;
pub const SLOTS_PER_EPOCH: usize = 32;
pub const EPOCHS_PER_ETH1_VOTING_PERIOD: usize = 64;
pub const SLOTS_PER_HISTORICAL_ROOT: usize = 8192;
pub const EPOCHS_PER_HISTORICAL_VECTOR: usize = 65536;
pub const EPOCHS_PER_SLASHINGS_VECTOR: usize = 8192;
pub const SYNC_COMMITTEE_SIZE: usize = 512;
pub const EPOCHS_PER_SYNC_COMMITTEE_PERIOD: usize = 256;
pub const MAX_WITHDRAWALS_PER_PAYLOAD: usize = 16;
pub const PENDING_PARTIAL_WITHDRAWALS_LIMIT: usize = 134_217_728;
pub const PENDING_CONSOLIDATIONS_LIMIT: usize = 262_144;

super::fulu::define_preset_containers!();
