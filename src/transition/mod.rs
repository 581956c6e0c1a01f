//! The Fulu state transition (with Electra's operations), generic over the two presets.
//!
//! The spec's functions live once, in `spec/` (`helpers.rs`, `process_slots.rs`,
//! `process_epoch.rs`, `process_block.rs`, `state_transition.rs`), and are compiled once
//! per preset: [`minimal`] and [`mainnet`] each bind `types` to that preset's containers
//! and `preset` to its remaining constants, then include the same files. Function names
//! and their order follow the spec, so the code can be read beside it.
//!
//! Cross-cutting pieces shared by both presets:
//! - [`TransitionCtx`]: the config, the chain's caches (shufflings, pubkey index) and the
//!   state-root carry, owned by whoever runs the transition and passed in (no hidden
//!   shared state);
//! - [`TransitionError`]: every failure, tagged as the input's fault or the node's, a
//!   failed spec `assert` naming its [`Check`];
//! - [`SignatureChecker`]: each signature check verified inline, skipped, or collected as
//!   a [`crate::bls::SignatureSet`] for one batch;
//! - [`ChainConfig`]: the chain config values the transition reads.
//!
//! The execution payload is trusted optimistically (no execution engine): only the checks
//! the beacon chain makes itself are applied (parent hash, prev_randao, timestamp, blob
//! commitment count, withdrawals).

pub mod config;
pub mod context;
mod error;
// `minimal` and `mainnet` compile the same `spec/` files, on purpose.
#[allow(clippy::duplicate_mod)]
pub mod mainnet;
pub mod math;
#[allow(clippy::duplicate_mod)]
pub mod minimal;
pub mod pubkey_index;
pub mod shuffling;
pub mod signatures;

pub use config::{BlobScheduleEntry, ChainConfig};
pub use context::{PhaseTimes, RegistryMemo, TransitionCaches, TransitionCtx};
pub use error::{Check, TransitionError};
pub use signatures::{SignatureChecker, SignatureStrategy};
