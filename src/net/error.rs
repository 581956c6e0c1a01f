//! Errors of the network layer.

/// Why a network operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    /// The node identity key could not be read or written.
    #[error("network identity: {0}")]
    Identity(String),
    /// A transport could not be built or bound.
    #[error("transport: {0}")]
    Transport(String),
    #[error("dial: {0}")]
    Dial(String),
    /// A gossip message or the gossip configuration is invalid.
    #[error("gossip: {0}")]
    Gossip(String),
    /// Bytes on the wire that do not decode.
    #[error("codec: {0}")]
    Codec(String),
    /// A request failed (timeout, refused, closed connection) or was answered with an error.
    #[error("request: {0}")]
    Request(String),
    /// The peer answered with an error response chunk (its result code and message).
    #[error("{code:?}: {message}")]
    Response {
        code: super::codec::ResponseCode,
        message: String,
    },
    /// Discovery (discv5, the local ENR) could not start or be configured.
    #[error("discovery: {0}")]
    Discovery(String),
    /// The network service is not running.
    #[error("the network service is not running")]
    Stopped,
}
