//! Networking: the eth2 wire protocol on libp2p — req/resp (`ssz_snappy`), gossipsub, discv5
//! discovery, the node identity — and the Fulu data-availability helpers (custody groups and columns).

pub mod codec;
pub mod columns;
pub mod custody;
pub mod discovery;
mod error;
pub mod fork_digest;
pub mod gossip;
pub mod identity;
pub mod messages;
pub mod peer_manager;
pub mod rate_limit;
pub mod rpc;
pub mod service;

pub use error::NetError;
