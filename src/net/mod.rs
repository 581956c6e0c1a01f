//! Networking: eth2 req/resp and gossip live here; so far the Fulu data-availability
//! helpers the network layer needs (custody groups and their columns).

pub mod custody;
