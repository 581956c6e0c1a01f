//! Networking: the eth2 req/resp wire (the `ssz_snappy` codec, its messages and protocol
//! ids, fork digests) and the Fulu data-availability helpers the network layer needs
//! (custody groups and their columns).

pub mod codec;
pub mod custody;
pub mod fork_digest;
pub mod messages;
