//! The eth2 req/resp protocols on libp2p's `request_response`: one behaviour per protocol
//! family (so each request is negotiated on its own protocol id), each speaking the
//! `ssz_snappy` encoding of [`super::codec`] over the stream, with our own time-to-first-byte
//! and per-chunk timeouts.
//!
//! Payloads cross this layer as SSZ bytes: the service encodes and decodes the containers
//! ([`super::messages`]); blocks stay bytes all the way to the chain handle.

use std::io;
use std::time::Duration;

use futures::prelude::*;
use libp2p::request_response;

use super::codec::{
    self, DecodeError, RequestDecoder, ResponseChunk, ResponseCode, ResponseDecoder, Step,
};
use super::fork_digest::ForkDigests;
use super::messages::{ChunkBounds, Protocol};

/// `TTFB_TIMEOUT`: the first byte of a response within this long.
pub const TTFB_TIMEOUT: Duration = Duration::from_secs(5);
/// `RESP_TIMEOUT`: each further chunk within this long.
pub const RESP_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes read from a stream in one read call.
const READ_PIECE: usize = 16 * 1024;

/// A request: the protocol it came on (for an outbound one, the version it was made for)
/// and its SSZ payload (empty for MetaData).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRequest {
    pub protocol: Protocol,
    pub payload: Vec<u8>,
    /// Set on an inbound request whose bytes were not a valid request (the payload is
    /// then empty): the service answers it `InvalidRequest` and penalises the peer.
    /// Always `None` on an outbound one.
    pub fault: Option<RequestFault>,
}

impl RpcRequest {
    pub fn new(protocol: Protocol, payload: Vec<u8>) -> Self {
        RpcRequest {
            protocol,
            payload,
            fault: None,
        }
    }

    fn faulty(protocol: Protocol, fault: RequestFault) -> Self {
        RpcRequest {
            protocol,
            payload: Vec::new(),
            fault: Some(fault),
        }
    }
}

/// Why an inbound request's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFault {
    /// Not a valid `ssz_snappy` request: an oversized varint, a length outside the type's
    /// bounds or one that lies, corrupt snappy, trailing bytes.
    Malformed(DecodeError),
    /// The request did not arrive within `TTFB_TIMEOUT`.
    Timeout,
}

/// One response chunk: its result code, the context bytes (fork digest) of a successful
/// chunk on a protocol that has them, and the SSZ payload (for an error chunk, the
/// ErrorMessage's bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcChunk {
    pub code: ResponseCode,
    pub context: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl RpcChunk {
    pub fn success(context: Option<[u8; 4]>, payload: Vec<u8>) -> Self {
        RpcChunk {
            code: ResponseCode::Success,
            context,
            payload,
        }
    }

    pub fn error(code: ResponseCode, message: &str) -> Self {
        let mut m = message.as_bytes().to_vec();
        m.truncate(256);
        RpcChunk {
            code,
            context: None,
            payload: m,
        }
    }

    /// The error message of an error chunk, as text.
    pub fn message(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// A whole response: its chunks in order (a single-chunk protocol has one; a stream ends
/// when the responder closes it).
pub type RpcResponse = Vec<RpcChunk>;

/// A protocol id as `request_response` negotiates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolName(pub Protocol);

impl AsRef<str> for ProtocolName {
    fn as_ref(&self) -> &str {
        self.0.protocol_id()
    }
}

/// The codec of one protocol family: the node's fork digests and chunk bounds resolve each
/// response chunk's context bytes to the SSZ bounds of its payload.
#[derive(Clone)]
pub struct Eth2Codec {
    pub digests: ForkDigests,
    pub chunk_bounds: ChunkBounds,
}

impl request_response::Codec for Eth2Codec {
    type Protocol = ProtocolName;
    type Request = RpcRequest;
    type Response = RpcResponse;

    async fn read_request<T>(
        &mut self,
        protocol: &ProtocolName,
        io: &mut T,
    ) -> io::Result<RpcRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let protocol = protocol.0;
        match read_request_payload(protocol, io).await {
            Ok(payload) => Ok(RpcRequest::new(protocol, payload)),
            // A malformed or late request is still answered (the spec's InvalidRequest):
            // it reaches the service marked, with no payload.
            Err(ReadFault::Malformed(e)) => {
                Ok(RpcRequest::faulty(protocol, RequestFault::Malformed(e)))
            }
            Err(ReadFault::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
                Ok(RpcRequest::faulty(protocol, RequestFault::Timeout))
            }
            Err(ReadFault::Io(e)) => Err(e),
        }
    }

    async fn read_response<T>(
        &mut self,
        protocol: &ProtocolName,
        io: &mut T,
    ) -> io::Result<RpcResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut dec = ResponseDecoder::for_protocol(protocol.0, &self.digests, self.chunk_bounds);
        let mut chunks = Vec::new();
        let mut buf = vec![0u8; READ_PIECE];
        let mut first = true;
        loop {
            let limit = if first { TTFB_TIMEOUT } else { RESP_TIMEOUT };
            first = false;
            let n = timed(limit, io.read(&mut buf)).await?;
            if n == 0 {
                dec.finish().map_err(invalid)?;
                return Ok(chunks);
            }
            let mut input = &buf[..n];
            while !input.is_empty() {
                match dec.feed(&mut input).map_err(invalid)? {
                    Step::NeedMore => {}
                    Step::Item(ResponseChunk::Success { context, ssz }) => {
                        chunks.push(RpcChunk::success(context, ssz))
                    }
                    Step::Item(ResponseChunk::Error { code, message }) => chunks.push(RpcChunk {
                        code,
                        context: None,
                        payload: message,
                    }),
                }
            }
        }
    }

    async fn write_request<T>(
        &mut self,
        protocol: &ProtocolName,
        io: &mut T,
        req: RpcRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let protocol = protocol.0;
        if protocol.has_request_body() {
            let mut payload = req.payload;
            // The version negotiated may be older than the one the payload was made for:
            // Status v1 has no `earliest_available_slot`.
            if protocol == Protocol::StatusV1 && payload.len() == 92 {
                payload.truncate(84);
            }
            io.write_all(&codec::encode_request(&payload)).await?;
        }
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        protocol: &ProtocolName,
        io: &mut T,
        res: RpcResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        for chunk in res {
            let bytes = if chunk.code == ResponseCode::Success {
                let context = if protocol.0.has_context_bytes() {
                    chunk.context
                } else {
                    None
                };
                codec::encode_response_chunk(0, context, &chunk.payload)
            } else {
                codec::encode_error(chunk.code, &chunk.message())
            };
            io.write_all(&bytes).await?;
        }
        io.close().await
    }
}
enum ReadFault {
    Malformed(DecodeError),
    Io(io::Error),
}

impl From<DecodeError> for ReadFault {
    fn from(e: DecodeError) -> Self {
        ReadFault::Malformed(e)
    }
}

impl From<io::Error> for ReadFault {
    fn from(e: io::Error) -> Self {
        ReadFault::Io(e)
    }
}

/// Read one request's SSZ payload (empty for MetaData, whose stream must just close).
async fn read_request_payload<T>(protocol: Protocol, io: &mut T) -> Result<Vec<u8>, ReadFault>
where
    T: AsyncRead + Unpin + Send,
{
    let mut buf = vec![0u8; READ_PIECE];
    let Some(mut dec) = RequestDecoder::for_protocol(protocol) else {
        if timed(TTFB_TIMEOUT, io.read(&mut buf)).await? != 0 {
            return Err(DecodeError::TrailingBytes.into());
        }
        return Ok(Vec::new());
    };
    let mut payload = None;
    loop {
        let n = timed(TTFB_TIMEOUT, io.read(&mut buf)).await?;
        if n == 0 {
            dec.finish()?;
            break;
        }
        let mut input = &buf[..n];
        while !input.is_empty() {
            match dec.feed(&mut input)? {
                Step::NeedMore => {}
                Step::Item(ssz) => payload = Some(ssz),
            }
        }
    }
    Ok(payload.ok_or(DecodeError::TruncatedHeader)?)
}

async fn timed<F: Future<Output = io::Result<usize>>>(limit: Duration, f: F) -> io::Result<usize> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "req/resp timeout")),
    }
}

/// A decode error as an I/O error that still carries it (the peer manager reads it back).
fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
