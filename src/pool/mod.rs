//! Pools in front of the chain: the gossip validation pool for attestations, aggregates
//! and sync-committee messages (`gossip.rs`).

pub mod gossip;
