//! The `ssz_snappy` req/resp encoding (`specs/phase0/p2p-interface.md`, "SSZ-snappy
//! encoding strategy"; context bytes from `specs/altair/p2p-interface.md`), byte for
//! byte:
//!
//! ```text
//! request        ::= <varint ssz_len> <snappy frames of the SSZ bytes>
//! response_chunk ::= <result: u8> [<context: 4 bytes>] <varint ssz_len> <snappy frames>
//! ```
//!
//! The length prefix is an unsigned protobuf varint (LEB128) of at most 10 bytes, minimally
//! encoded; the payload is the snappy *framing format* (stream identifier, then compressed
//! or uncompressed chunks of at most 65536 bytes, each with the masked CRC32C of its
//! uncompressed data). Context bytes (a `ForkDigest`) follow a zero result on the
//! protocols that have them; a non-zero result carries an `ErrorMessage` and no context.
//!
//! Decoding is incremental and bounded: [`RequestDecoder`] and [`ResponseDecoder`] take
//! bytes as they arrive and answer [`Step::NeedMore`], [`Step::Item`] or a
//! [`DecodeError`]. Nothing is allocated before the declared length has been checked
//! against the type's SSZ bounds and `MAX_PAYLOAD_SIZE`; no more than
//! `max_compressed_len(n)` frame bytes are read for a payload of `n` bytes; every chunk's
//! checksum is verified; the decompressed size must be exactly `n`; a request must be
//! followed by the end of the stream.
//!
//! An empty payload (`n = 0`, e.g. an empty `ErrorMessage`) is encoded without any frame,
//! as the `snap` crate's and Go's framing writers do; the decoder also accepts one
//! stream identifier after it, the form a writer that always starts its stream produces.

use super::fork_digest::{ForkDigests, ForkName};
pub use super::messages::MAX_PAYLOAD_SIZE;
use super::messages::{ChunkBounds, ErrorMessage, Protocol, SszBounds, MAX_ERROR_MESSAGE_LEN};
use std::fmt;

/// The most bytes of a length prefix (enough for any `uint64`).
pub const MAX_VARINT_LEN: usize = 10;
/// The stream identifier chunk that starts every snappy frame stream.
pub const STREAM_IDENTIFIER: [u8; 10] =
    [0xff, 0x06, 0x00, 0x00, b's', b'N', b'a', b'P', b'p', b'Y'];
/// The most uncompressed bytes in one snappy frame chunk.
pub const MAX_CHUNK_DATA: usize = 65536;
/// Context bytes of a chunk: a `ForkDigest`.
pub const CONTEXT_BYTES_LEN: usize = 4;

const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_PADDING: u8 = 0xfe;
const CHUNK_STREAM_IDENTIFIER: u8 = 0xff;
/// The longest body of a compressed chunk: the checksum and the worst-case compressed
/// size of `MAX_CHUNK_DATA` bytes.
const MAX_COMPRESSED_CHUNK_BODY: usize = 4 + max_compressed_len(MAX_CHUNK_DATA);

/// `max_compressed_len(n)`: the worst-case snappy size of `n` bytes, `32 + n + n / 6`.
pub const fn max_compressed_len(n: usize) -> usize {
    32 + n + n / 6
}

/// The masked CRC32C of the snappy framing format.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

// ---------------------------------------------------------------------------------------
// Result codes and errors
// ---------------------------------------------------------------------------------------

/// The `result` byte of a response chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseCode {
    /// 0: a normal response follows.
    Success,
    /// 1: the request was malformed or semantically invalid.
    InvalidRequest,
    /// 2: the responder failed while processing the request.
    ServerError,
    /// 3: the responder does not have the requested resource.
    ResourceUnavailable,
    /// 139: rate limited (a Lighthouse extension in the client-defined range).
    RateLimited,
    /// 4..=127: reserved; treated as an error.
    Reserved(u8),
    /// 128..=255 other than 139: client-defined errors.
    Other(u8),
}

impl ResponseCode {
    pub fn from_u8(b: u8) -> Self {
        match b {
            0 => ResponseCode::Success,
            1 => ResponseCode::InvalidRequest,
            2 => ResponseCode::ServerError,
            3 => ResponseCode::ResourceUnavailable,
            139 => ResponseCode::RateLimited,
            4..=127 => ResponseCode::Reserved(b),
            _ => ResponseCode::Other(b),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            ResponseCode::Success => 0,
            ResponseCode::InvalidRequest => 1,
            ResponseCode::ServerError => 2,
            ResponseCode::ResourceUnavailable => 3,
            ResponseCode::RateLimited => 139,
            ResponseCode::Reserved(b) | ResponseCode::Other(b) => b,
        }
    }

    pub fn is_success(self) -> bool {
        self == ResponseCode::Success
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseCode::Success => f.write_str("success"),
            ResponseCode::InvalidRequest => f.write_str("invalid request"),
            ResponseCode::ServerError => f.write_str("server error"),
            ResponseCode::ResourceUnavailable => f.write_str("resource unavailable"),
            ResponseCode::RateLimited => f.write_str("rate limited"),
            ResponseCode::Reserved(b) => write!(f, "reserved code {b}"),
            ResponseCode::Other(b) => write!(f, "error code {b}"),
        }
    }
}

/// Why bytes from a peer are not a valid request or response chunk. Each variant says
/// what was wrong; [`DecodeError::is_peer_fault`] says whose fault it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("length prefix longer than {MAX_VARINT_LEN} bytes")]
    VarintTooLong,
    #[error("length prefix does not fit in 64 bits")]
    VarintOverflow,
    #[error("length prefix is not minimally encoded")]
    NonCanonicalVarint,
    #[error("declared length {len} outside the SSZ bounds [{min}, {max}]")]
    LengthOutOfBounds { len: u64, min: usize, max: usize },
    #[error("more than max_compressed_len = {limit} bytes of snappy frames")]
    TooManyCompressedBytes { limit: usize },
    #[error("snappy frames do not start with a valid stream identifier")]
    BadStreamIdentifier,
    #[error("reserved unskippable snappy chunk type {chunk_type:#04x}")]
    ReservedChunk { chunk_type: u8 },
    #[error("snappy chunk of type {chunk_type:#04x} has an invalid length {len}")]
    BadChunkLength { chunk_type: u8, len: usize },
    #[error("snappy chunk checksum {got:#010x}, expected {expected:#010x}")]
    BadCrc { expected: u32, got: u32 },
    #[error("corrupt snappy data: {0}")]
    Snappy(String),
    #[error("payload holds at least {got} bytes, but {declared} were declared")]
    LengthMismatch { declared: usize, got: usize },
    #[error("stream ended after {got} of {declared} payload bytes")]
    Truncated { declared: usize, got: usize },
    #[error("stream ended inside a chunk header")]
    TruncatedHeader,
    #[error("bytes after the end of the message")]
    TrailingBytes,
    #[error("unknown context bytes {}", hex(context))]
    UnknownContext { context: [u8; 4] },
    #[error(
        "context bytes {} name {fork}, which has no chunks of this protocol",
        hex(context)
    )]
    WrongForkContext { context: [u8; 4], fork: ForkName },
    #[error(
        "context bytes {} name {fork}, whose types this node does not decode",
        hex(context)
    )]
    UnsupportedFork { context: [u8; 4], fork: ForkName },
    #[error("more than {max} response chunks")]
    TooManyChunks { max: usize },
    #[error("invalid SSZ: {0}")]
    Ssz(#[from] crate::types::ssz::DecodeError),
    #[error("bytes fed to a decoder that already failed")]
    AlreadyFailed,
}

impl DecodeError {
    /// Whether the peer sent something invalid (its score should drop). The one
    /// exception is a chunk of a fork this node cannot decode: valid, but not for us.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, DecodeError::UnsupportedFork { .. })
    }
}

fn hex(b: &[u8; 4]) -> String {
    format!("0x{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Appends the unsigned LEB128 varint of `n`.
pub fn encode_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `payload` in the snappy framing format: nothing for an empty payload, else
/// the stream identifier and one chunk per 65536 bytes, compressed where that saves at
/// least an eighth (the reference encoder's rule), uncompressed otherwise.
pub fn encode_snappy_frames(payload: &[u8], out: &mut Vec<u8>) {
    if payload.is_empty() {
        return;
    }
    out.extend_from_slice(&STREAM_IDENTIFIER);
    let mut encoder = snap::raw::Encoder::new();
    for block in payload.chunks(MAX_CHUNK_DATA) {
        let start = out.len();
        let crc = masked_crc32c(block);
        out.resize(start + 8 + snap::raw::max_compress_len(block.len()), 0);
        let compressed = encoder
            .compress(block, &mut out[start + 8..])
            .ok()
            .filter(|&n| n < block.len() - block.len() / 8);
        let (chunk_type, data_len) = match compressed {
            Some(n) => {
                out.truncate(start + 8 + n);
                (CHUNK_COMPRESSED, n)
            }
            None => {
                out.truncate(start + 8);
                out.extend_from_slice(block);
                (CHUNK_UNCOMPRESSED, block.len())
            }
        };
        let len = (data_len + 4) as u32;
        out[start] = chunk_type;
        out[start + 1..start + 4].copy_from_slice(&len.to_le_bytes()[..3]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Appends a request: the varint SSZ length, then the framed payload.
pub fn encode_request_into(ssz: &[u8], out: &mut Vec<u8>) {
    encode_varint(ssz.len() as u64, out);
    encode_snappy_frames(ssz, out);
}

/// A request: the varint SSZ length, then the framed payload. (Payloads over
/// `MAX_PAYLOAD_SIZE` are encoded, but peers refuse them.)
pub fn encode_request(ssz: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ssz.len() + 32);
    encode_request_into(ssz, &mut out);
    out
}

/// Appends a response chunk: the result byte, the context bytes if given, the varint
/// SSZ length and the framed payload.
pub fn encode_response_chunk_into(
    result: u8,
    context: Option<[u8; 4]>,
    ssz: &[u8],
    out: &mut Vec<u8>,
) {
    out.push(result);
    if let Some(context) = context {
        out.extend_from_slice(&context);
    }
    encode_request_into(ssz, out);
}

/// A response chunk (see [`encode_response_chunk_into`]). Context bytes belong on
/// successful chunks of protocols that have them, never on errors.
pub fn encode_response_chunk(result: u8, context: Option<[u8; 4]>, ssz: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ssz.len() + 40);
    encode_response_chunk_into(result, context, ssz, &mut out);
    out
}

/// An error response chunk: `code` and the `ErrorMessage` of `message`, cut to 256
/// bytes (at a character boundary).
pub fn encode_error(code: ResponseCode, message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_ERROR_MESSAGE_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    encode_response_chunk(code.as_u8(), None, &message.as_bytes()[..end])
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// What a decoder made of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// Every byte was consumed; the item is not complete yet.
    NeedMore,
    /// A complete item; the bytes after it are left in the input.
    Item(T),
}

/// A decoded response chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseChunk {
    /// Result 0: the context bytes (on protocols that have them) and the SSZ payload.
    Success {
        context: Option<[u8; 4]>,
        ssz: Vec<u8>,
    },
    /// A non-zero result and its `ErrorMessage` bytes (any bytes; by convention UTF-8).
    Error {
        code: ResponseCode,
        message: Vec<u8>,
    },
}

impl ResponseChunk {
    /// The error message as text, for logs.
    pub fn error_text(&self) -> Option<String> {
        match self {
            ResponseChunk::Error { message, .. } => {
                Some(String::from_utf8_lossy(message).into_owned())
            }
            ResponseChunk::Success { .. } => None,
        }
    }
}

/// An unsigned LEB128 varint being read.
#[derive(Debug, Clone, Default)]
struct Varint {
    value: u64,
    len: usize,
}

impl Varint {
    /// Reads bytes until the varint ends; `Some(value)` then.
    fn feed(&mut self, input: &mut &[u8]) -> Result<Option<u64>, DecodeError> {
        while let Some((&b, rest)) = input.split_first() {
            *input = rest;
            if self.len == MAX_VARINT_LEN - 1 {
                // The 10th byte holds bit 63 only, and must end the varint.
                if b & 0x80 != 0 {
                    return Err(DecodeError::VarintTooLong);
                }
                if b > 1 {
                    return Err(DecodeError::VarintOverflow);
                }
            }
            self.value |= u64::from(b & 0x7f) << (7 * self.len);
            self.len += 1;
            if b & 0x80 == 0 {
                if b == 0 && self.len > 1 {
                    return Err(DecodeError::NonCanonicalVarint);
                }
                return Ok(Some(self.value));
            }
        }
        Ok(None)
    }
}

/// Checks a declared length against `bounds` and `MAX_PAYLOAD_SIZE`.
fn check_length(len: u64, bounds: (usize, usize)) -> Result<usize, DecodeError> {
    let (min, max) = (bounds.0, bounds.1.min(MAX_PAYLOAD_SIZE));
    match usize::try_from(len) {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(DecodeError::LengthOutOfBounds { len, min, max }),
    }
}

#[derive(Debug)]
enum FrameState {
    /// Reading a chunk header (type and 24-bit length).
    Header { buf: [u8; 4], got: usize },
    /// Reading the body of a stream identifier or data chunk (`buf` holds what arrived).
    Body {
        chunk_type: u8,
        len: usize,
        buf: Vec<u8>,
    },
    /// Skipping a padding or reserved skippable chunk.
    Skip { left: usize },
}

/// The snappy frames of one payload of a known, checked length.
#[derive(Debug)]
struct FrameReader {
    declared: usize,
    limit: usize,
    consumed: usize,
    out: Vec<u8>,
    seen_stream_identifier: bool,
    state: FrameState,
    decoder: snap::raw::Decoder,
}

impl FrameReader {
    fn new(declared: usize) -> Self {
        FrameReader {
            declared,
            limit: max_compressed_len(declared),
            consumed: 0,
            // Grown chunk by chunk, never by more than one chunk's data.
            out: Vec::new(),
            seen_stream_identifier: false,
            state: FrameState::Header {
                buf: [0; 4],
                got: 0,
            },
            decoder: snap::raw::Decoder::new(),
        }
    }

    fn is_complete(&self) -> bool {
        self.out.len() == self.declared
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Reads frames until the payload is complete (`true`) or the input runs out.
    fn feed(&mut self, input: &mut &[u8]) -> Result<bool, DecodeError> {
        while !self.is_complete() {
            if input.is_empty() {
                return Ok(false);
            }
            match &mut self.state {
                FrameState::Header { buf, got } => {
                    let n = (4 - *got).min(input.len());
                    buf[*got..*got + n].copy_from_slice(&input[..n]);
                    *got += n;
                    *input = &input[n..];
                    self.consumed += n;
                    if *got == 4 {
                        let header = *buf;
                        self.on_header(header)?;
                    }
                }
                FrameState::Body { len, buf, .. } => {
                    let need = *len - buf.len();
                    if buf.is_empty() && input.len() >= need {
                        // The whole body is at hand: no copy.
                        let (body, rest) = input.split_at(need);
                        *input = rest;
                        self.consumed += need;
                        self.on_body(body)?;
                    } else {
                        let n = need.min(input.len());
                        buf.extend_from_slice(&input[..n]);
                        *input = &input[n..];
                        self.consumed += n;
                        if buf.len() == *len {
                            let body = std::mem::take(buf);
                            self.on_body(&body)?;
                        }
                    }
                }
                FrameState::Skip { left } => {
                    let n = (*left).min(input.len());
                    *left -= n;
                    *input = &input[n..];
                    self.consumed += n;
                    if *left == 0 {
                        self.next_header();
                    }
                }
            }
        }
        Ok(true)
    }

    fn next_header(&mut self) {
        self.state = FrameState::Header {
            buf: [0; 4],
            got: 0,
        };
    }

    fn on_header(&mut self, header: [u8; 4]) -> Result<(), DecodeError> {
        let chunk_type = header[0];
        let len =
            usize::from(header[1]) | usize::from(header[2]) << 8 | usize::from(header[3]) << 16;
        if self.consumed + len > self.limit {
            return Err(DecodeError::TooManyCompressedBytes { limit: self.limit });
        }
        if !self.seen_stream_identifier && chunk_type != CHUNK_STREAM_IDENTIFIER {
            return Err(DecodeError::BadStreamIdentifier);
        }
        let remaining = self.declared - self.out.len();
        let bad_len = || DecodeError::BadChunkLength { chunk_type, len };
        match chunk_type {
            CHUNK_STREAM_IDENTIFIER if len != STREAM_IDENTIFIER.len() - 4 => {
                return Err(DecodeError::BadStreamIdentifier)
            }
            CHUNK_COMPRESSED if !(4..=MAX_COMPRESSED_CHUNK_BODY).contains(&len) => {
                return Err(bad_len())
            }
            CHUNK_UNCOMPRESSED if !(4..=4 + MAX_CHUNK_DATA).contains(&len) => return Err(bad_len()),
            CHUNK_UNCOMPRESSED if len - 4 > remaining => {
                return Err(DecodeError::LengthMismatch {
                    declared: self.declared,
                    got: self.out.len() + len - 4,
                })
            }
            0x02..=0x7f => return Err(DecodeError::ReservedChunk { chunk_type }),
            0x80..=CHUNK_PADDING => {
                self.state = FrameState::Skip { left: len };
                if len == 0 {
                    self.next_header();
                }
                return Ok(());
            }
            _ => {}
        }
        // A stream identifier or data chunk: its body (at least 4 bytes) follows.
        self.state = FrameState::Body {
            chunk_type,
            len,
            buf: Vec::new(),
        };
        Ok(())
    }

    fn on_body(&mut self, body: &[u8]) -> Result<(), DecodeError> {
        let chunk_type = match self.state {
            FrameState::Body { chunk_type, .. } => chunk_type,
            _ => return Err(DecodeError::BadStreamIdentifier),
        };
        self.next_header();
        if chunk_type == CHUNK_STREAM_IDENTIFIER {
            if body != &STREAM_IDENTIFIER[4..] {
                return Err(DecodeError::BadStreamIdentifier);
            }
            self.seen_stream_identifier = true;
            return Ok(());
        }
        let expected = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let data = &body[4..];
        let start = self.out.len();
        let remaining = self.declared - start;
        if chunk_type == CHUNK_UNCOMPRESSED {
            // The length was checked against `remaining` with the header.
            let got = masked_crc32c(data);
            if got != expected {
                return Err(DecodeError::BadCrc { expected, got });
            }
            self.out.extend_from_slice(data);
            return Ok(());
        }
        let n = snap::raw::decompress_len(data).map_err(|e| DecodeError::Snappy(e.to_string()))?;
        if n > MAX_CHUNK_DATA {
            return Err(DecodeError::BadChunkLength { chunk_type, len: n });
        }
        if n > remaining {
            return Err(DecodeError::LengthMismatch {
                declared: self.declared,
                got: start + n,
            });
        }
        self.out.resize(start + n, 0);
        let written = self
            .decoder
            .decompress(data, &mut self.out[start..])
            .map_err(|e| DecodeError::Snappy(e.to_string()))?;
        if written != n {
            return Err(DecodeError::Snappy(format!(
                "decompressed {written} bytes, header says {n}"
            )));
        }
        let got = masked_crc32c(&self.out[start..]);
        if got != expected {
            return Err(DecodeError::BadCrc { expected, got });
        }
        Ok(())
    }
}

#[derive(Debug)]
enum RequestState {
    Length(Varint),
    Payload(FrameReader),
    /// The request was returned; only the end of the stream (or, after an empty
    /// payload, one stream identifier) may follow.
    Done {
        empty: bool,
        identifier_got: usize,
    },
    Failed,
}

/// Decodes one request from a stream (see the module docs).
#[derive(Debug)]
pub struct RequestDecoder {
    bounds: (usize, usize),
    state: RequestState,
}

impl RequestDecoder {
    /// A decoder for a request whose SSZ type has these bounds.
    pub fn new(bounds: (usize, usize)) -> Self {
        RequestDecoder {
            bounds,
            state: RequestState::Length(Varint::default()),
        }
    }

    /// A decoder for requests of type `T`.
    pub fn for_type<T: SszBounds>() -> Self {
        Self::new(T::ssz_bounds())
    }

    /// A decoder for the requests of `protocol`; `None` for a protocol whose request
    /// has no content (GetMetaData).
    pub fn for_protocol(protocol: Protocol) -> Option<Self> {
        protocol.request_bounds().map(Self::new)
    }

    /// Feeds bytes as they arrive; consumes them all unless it returns the request or
    /// an error. After the request, call [`finish`](Self::finish) at the end of the
    /// stream (more bytes fed are [`DecodeError::TrailingBytes`]).
    pub fn feed(&mut self, input: &mut &[u8]) -> Result<Step<Vec<u8>>, DecodeError> {
        let result = self.feed_inner(input);
        if result.is_err() {
            self.state = RequestState::Failed;
        }
        result
    }

    fn feed_inner(&mut self, input: &mut &[u8]) -> Result<Step<Vec<u8>>, DecodeError> {
        loop {
            match &mut self.state {
                RequestState::Length(varint) => match varint.feed(input)? {
                    None => return Ok(Step::NeedMore),
                    Some(len) => {
                        let n = check_length(len, self.bounds)?;
                        self.state = RequestState::Payload(FrameReader::new(n));
                    }
                },
                RequestState::Payload(frames) => {
                    if !frames.feed(input)? {
                        return Ok(Step::NeedMore);
                    }
                    let ssz = frames.take();
                    self.state = RequestState::Done {
                        empty: ssz.is_empty(),
                        identifier_got: 0,
                    };
                    return Ok(Step::Item(ssz));
                }
                RequestState::Done {
                    empty,
                    identifier_got,
                } => {
                    if *empty {
                        while *identifier_got < STREAM_IDENTIFIER.len() {
                            match input.split_first() {
                                Some((&b, rest)) if b == STREAM_IDENTIFIER[*identifier_got] => {
                                    *identifier_got += 1;
                                    *input = rest;
                                }
                                _ => break,
                            }
                        }
                    }
                    if input.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Err(DecodeError::TrailingBytes);
                }
                RequestState::Failed => return Err(DecodeError::AlreadyFailed),
            }
        }
    }

    /// The end of the stream: `Ok` if a whole request was read and nothing followed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match &self.state {
            RequestState::Length(_) => Err(DecodeError::TruncatedHeader),
            RequestState::Payload(frames) => Err(DecodeError::Truncated {
                declared: frames.declared,
                got: frames.out.len(),
            }),
            RequestState::Done { identifier_got, .. } => {
                if *identifier_got == 0 || *identifier_got == STREAM_IDENTIFIER.len() {
                    Ok(())
                } else {
                    Err(DecodeError::TrailingBytes)
                }
            }
            RequestState::Failed => Err(DecodeError::AlreadyFailed),
        }
    }
}

/// Decodes a whole request stream at once: the SSZ bytes of the request.
pub fn decode_request(bounds: (usize, usize), mut bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = RequestDecoder::new(bounds);
    let ssz = match decoder.feed(&mut bytes)? {
        Step::Item(ssz) => ssz,
        Step::NeedMore => {
            return Err(decoder
                .finish()
                .err()
                .unwrap_or(DecodeError::TruncatedHeader))
        }
    };
    if let Step::Item(_) = decoder.feed(&mut bytes)? {
        return Err(DecodeError::TrailingBytes);
    }
    decoder.finish()?;
    Ok(ssz)
}

/// Maps the context bytes of a successful chunk (`None` on protocols without them) to
/// the SSZ bounds of its payload, or an error (an unknown digest).
pub type BoundsFn = Box<dyn FnMut(Option<[u8; 4]>) -> Result<(usize, usize), DecodeError> + Send>;

#[derive(Debug)]
enum ResponseState {
    Start,
    /// After an empty payload: a stream identifier may follow and belongs to it.
    MaybeIdentifier {
        got: usize,
    },
    Context {
        buf: [u8; 4],
        got: usize,
    },
    Length {
        code: u8,
        context: Option<[u8; 4]>,
        varint: Varint,
    },
    Payload {
        code: u8,
        context: Option<[u8; 4]>,
        frames: FrameReader,
    },
    Failed,
}

/// Decodes the response chunks of one stream (see the module docs).
pub struct ResponseDecoder<F = BoundsFn> {
    has_context: bool,
    bounds: F,
    max_chunks: usize,
    chunks: usize,
    state: ResponseState,
}

impl<F> fmt::Debug for ResponseDecoder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseDecoder")
            .field("has_context", &self.has_context)
            .field("max_chunks", &self.max_chunks)
            .field("chunks", &self.chunks)
            .field("state", &self.state)
            .finish()
    }
}

impl<F> ResponseDecoder<F>
where
    F: FnMut(Option<[u8; 4]>) -> Result<(usize, usize), DecodeError>,
{
    /// A decoder for a protocol with (`has_context`) or without context bytes; `bounds`
    /// maps a successful chunk's context bytes to its SSZ bounds.
    pub fn new(has_context: bool, bounds: F) -> Self {
        ResponseDecoder {
            has_context,
            bounds,
            max_chunks: usize::MAX,
            chunks: 0,
            state: ResponseState::Start,
        }
    }

    /// Refuses chunks past the `max`th ([`DecodeError::TooManyChunks`]).
    pub fn with_max_chunks(mut self, max: usize) -> Self {
        self.max_chunks = max;
        self
    }

    /// Chunks decoded so far.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Feeds bytes as they arrive; consumes them all unless it returns a chunk (the
    /// rest is left in `input`: feed it again) or an error.
    pub fn feed(&mut self, input: &mut &[u8]) -> Result<Step<ResponseChunk>, DecodeError> {
        let result = self.feed_inner(input);
        if result.is_err() {
            self.state = ResponseState::Failed;
        }
        result
    }

    fn start_chunk(&mut self, code: u8) -> Result<(), DecodeError> {
        if self.chunks >= self.max_chunks {
            return Err(DecodeError::TooManyChunks {
                max: self.max_chunks,
            });
        }
        self.state = if code == 0 && self.has_context {
            ResponseState::Context {
                buf: [0; 4],
                got: 0,
            }
        } else {
            ResponseState::Length {
                code,
                context: None,
                varint: Varint::default(),
            }
        };
        Ok(())
    }

    fn feed_inner(&mut self, input: &mut &[u8]) -> Result<Step<ResponseChunk>, DecodeError> {
        loop {
            match &mut self.state {
                ResponseState::Start => {
                    let Some((&code, rest)) = input.split_first() else {
                        return Ok(Step::NeedMore);
                    };
                    *input = rest;
                    self.start_chunk(code)?;
                }
                ResponseState::MaybeIdentifier { got } => {
                    while *got < STREAM_IDENTIFIER.len() {
                        match input.split_first() {
                            Some((&b, rest)) if b == STREAM_IDENTIFIER[*got] => {
                                *got += 1;
                                *input = rest;
                            }
                            _ => break,
                        }
                    }
                    let got = *got;
                    if got == STREAM_IDENTIFIER.len() {
                        self.state = ResponseState::Start;
                    } else if input.is_empty() {
                        return Ok(Step::NeedMore);
                    } else {
                        // Not an identifier: the bytes read so far, a prefix of
                        // `ff 06 00 00 …`, start the next chunk: result 0xff (an error,
                        // no context), then the length 6, then a frame that is not a
                        // stream identifier.
                        match got {
                            0 => self.state = ResponseState::Start,
                            1 => self.start_chunk(STREAM_IDENTIFIER[0])?,
                            2 => {
                                self.start_chunk(STREAM_IDENTIFIER[0])?;
                                let n = check_length(6, ErrorMessage::ssz_bounds())?;
                                self.state = ResponseState::Payload {
                                    code: STREAM_IDENTIFIER[0],
                                    context: None,
                                    frames: FrameReader::new(n),
                                };
                            }
                            _ => return Err(DecodeError::BadStreamIdentifier),
                        }
                    }
                }
                ResponseState::Context { buf, got } => {
                    let n = (4 - *got).min(input.len());
                    buf[*got..*got + n].copy_from_slice(&input[..n]);
                    *got += n;
                    *input = &input[n..];
                    if *got < 4 {
                        return Ok(Step::NeedMore);
                    }
                    let context = *buf;
                    self.state = ResponseState::Length {
                        code: 0,
                        context: Some(context),
                        varint: Varint::default(),
                    };
                }
                ResponseState::Length {
                    code,
                    context,
                    varint,
                } => {
                    let Some(len) = varint.feed(input)? else {
                        return Ok(Step::NeedMore);
                    };
                    let (code, context) = (*code, *context);
                    let bounds = if code == 0 {
                        (self.bounds)(context)?
                    } else {
                        ErrorMessage::ssz_bounds()
                    };
                    let n = check_length(len, bounds)?;
                    self.state = ResponseState::Payload {
                        code,
                        context,
                        frames: FrameReader::new(n),
                    };
                }
                ResponseState::Payload {
                    code,
                    context,
                    frames,
                } => {
                    if !frames.feed(input)? {
                        return Ok(Step::NeedMore);
                    }
                    let payload = frames.take();
                    let chunk = if *code == 0 {
                        ResponseChunk::Success {
                            context: *context,
                            ssz: payload,
                        }
                    } else {
                        ResponseChunk::Error {
                            code: ResponseCode::from_u8(*code),
                            message: payload,
                        }
                    };
                    let empty = match &chunk {
                        ResponseChunk::Success { ssz, .. } => ssz.is_empty(),
                        ResponseChunk::Error { message, .. } => message.is_empty(),
                    };
                    self.chunks += 1;
                    self.state = if empty {
                        ResponseState::MaybeIdentifier { got: 0 }
                    } else {
                        ResponseState::Start
                    };
                    return Ok(Step::Item(chunk));
                }
                ResponseState::Failed => return Err(DecodeError::AlreadyFailed),
            }
        }
    }

    /// The end of the stream: `Ok` at a chunk boundary, an error inside a chunk.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match &self.state {
            ResponseState::Start => Ok(()),
            ResponseState::MaybeIdentifier { got } => {
                if *got == 0 {
                    Ok(())
                } else {
                    Err(DecodeError::TrailingBytes)
                }
            }
            ResponseState::Context { .. } | ResponseState::Length { .. } => {
                Err(DecodeError::TruncatedHeader)
            }
            ResponseState::Payload { frames, .. } => Err(DecodeError::Truncated {
                declared: frames.declared,
                got: frames.out.len(),
            }),
            ResponseState::Failed => Err(DecodeError::AlreadyFailed),
        }
    }
}

impl ResponseDecoder<BoundsFn> {
    /// A decoder for the responses of `protocol`, its chunks capped at the protocol's
    /// maximum, the fork-dependent chunks resolved through `digests` and `chunk_bounds`
    /// (see [`chunk_bounds_resolver`]).
    pub fn for_protocol(
        protocol: Protocol,
        digests: &ForkDigests,
        chunk_bounds: ChunkBounds,
    ) -> Self {
        ResponseDecoder::new(
            protocol.has_context_bytes(),
            chunk_bounds_resolver(protocol, digests, chunk_bounds),
        )
        .with_max_chunks(protocol.max_response_chunks())
    }
}

/// The bounds of a successful chunk of `protocol` with context bytes `context`: the
/// fixed response type of a protocol without context bytes; for blocks, the Fulu
/// (= Electra) `SignedBeaconBlock` at Electra and later digests; for data columns, the
/// `DataColumnSidecar` at Fulu and later digests.
pub fn chunk_bounds_for(
    protocol: Protocol,
    context: Option<[u8; 4]>,
    digests: &ForkDigests,
    chunk_bounds: &ChunkBounds,
) -> Result<(usize, usize), DecodeError> {
    if let Some(bounds) = protocol.response_bounds() {
        return Ok(bounds);
    }
    // A protocol with context bytes: the decoder always passes them.
    let context = context.unwrap_or_default();
    let fork = digests
        .fork_of_digest(context)
        .ok_or(DecodeError::UnknownContext { context })?;
    match protocol {
        Protocol::DataColumnSidecarsByRangeV1 | Protocol::DataColumnSidecarsByRootV1 => {
            if fork >= ForkName::Fulu {
                Ok(chunk_bounds.data_column_sidecar)
            } else {
                Err(DecodeError::WrongForkContext { context, fork })
            }
        }
        _ => {
            if fork >= ForkName::Electra {
                Ok(chunk_bounds.signed_beacon_block)
            } else {
                Err(DecodeError::UnsupportedFork { context, fork })
            }
        }
    }
}

/// [`chunk_bounds_for`] as the closure a [`ResponseDecoder`] takes.
pub fn chunk_bounds_resolver(
    protocol: Protocol,
    digests: &ForkDigests,
    chunk_bounds: ChunkBounds,
) -> BoundsFn {
    let digests = digests.clone();
    Box::new(move |context| chunk_bounds_for(protocol, context, &digests, &chunk_bounds))
}

/// Decodes a whole response stream at once: every chunk, in order. Decoding stops at
/// the first error.
pub fn decode_response<F>(
    has_context: bool,
    bounds: F,
    mut bytes: &[u8],
) -> Result<Vec<ResponseChunk>, DecodeError>
where
    F: FnMut(Option<[u8; 4]>) -> Result<(usize, usize), DecodeError>,
{
    let mut decoder = ResponseDecoder::new(has_context, bounds);
    let mut chunks = Vec::new();
    while let Step::Item(chunk) = decoder.feed(&mut bytes)? {
        chunks.push(chunk);
    }
    decoder.finish()?;
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::fork_digest::ForkDigests;
    use crate::net::messages::*;
    use crate::transition::ChainConfig;
    use crate::types::common::{DataColumnSidecar, DataColumnsByRootIdentifier};
    use crate::types::minimal;
    use crate::types::primitives::Root;
    use crate::types::ssz::{ssz_encode, SszDecode};
    use crate::types::Preset;
    use ssz_rs::List;
    use std::io::{Read, Write};

    /// Deterministic bytes: `compressible` repeats short runs, otherwise noise.
    fn bytes(n: usize, seed: u64, compressible: bool) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if compressible {
                let run = (x % 24) as usize + 1;
                for _ in 0..run.min(n - out.len()) {
                    out.push((x >> 40) as u8 & 0x0f);
                }
            } else {
                out.push((x >> 24) as u8);
            }
        }
        out
    }

    fn mainnet_digests() -> ForkDigests {
        ForkDigests::new([0x4b; 32], &ChainConfig::mainnet())
    }

    fn digest_of(digests: &ForkDigests, fork: ForkName) -> [u8; 4] {
        digests
            .entries()
            .iter()
            .find(|e| e.fork == fork)
            .unwrap()
            .digest
    }

    fn decoder_for(protocol: Protocol) -> ResponseDecoder {
        ResponseDecoder::for_protocol(
            protocol,
            &mainnet_digests(),
            ChunkBounds::for_preset(Preset::Minimal),
        )
    }

    /// Feeds `input` in pieces of `piece` bytes; every chunk, then `finish`.
    fn decode_in_pieces(
        mut decoder: ResponseDecoder,
        input: &[u8],
        piece: usize,
    ) -> Result<Vec<ResponseChunk>, DecodeError> {
        let mut chunks = Vec::new();
        for part in input.chunks(piece.max(1)) {
            let mut rest = part;
            while let Step::Item(chunk) = decoder.feed(&mut rest)? {
                chunks.push(chunk);
            }
        }
        decoder.finish()?;
        Ok(chunks)
    }

    fn request_in_pieces(
        bounds: (usize, usize),
        input: &[u8],
        piece: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let mut decoder = RequestDecoder::new(bounds);
        let mut out = None;
        for part in input.chunks(piece.max(1)) {
            let mut rest = part;
            while !rest.is_empty() {
                if let Step::Item(ssz) = decoder.feed(&mut rest)? {
                    out = Some(ssz);
                }
            }
        }
        decoder.finish()?;
        out.ok_or(DecodeError::TruncatedHeader)
    }

    fn snap_frames(payload: &[u8]) -> Vec<u8> {
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(payload).unwrap();
        w.into_inner().unwrap()
    }

    fn varint(n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        encode_varint(n, &mut v);
        v
    }

    /// A frame chunk by hand.
    fn chunk(chunk_type: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() as u32;
        let mut v = vec![chunk_type];
        v.extend_from_slice(&len.to_le_bytes()[..3]);
        v.extend_from_slice(body);
        v
    }

    fn uncompressed_chunk(data: &[u8]) -> Vec<u8> {
        let mut body = masked_crc32c(data).to_le_bytes().to_vec();
        body.extend_from_slice(data);
        chunk(CHUNK_UNCOMPRESSED, &body)
    }

    fn compressed_chunk(data: &[u8]) -> Vec<u8> {
        let mut body = masked_crc32c(data).to_le_bytes().to_vec();
        body.extend(snap::raw::Encoder::new().compress_vec(data).unwrap());
        chunk(CHUNK_COMPRESSED, &body)
    }

    #[test]
    fn varints() {
        assert_eq!(varint(0), [0]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(u64::MAX).len(), 10);
        for n in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            1 << 35,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let v = varint(n);
            let mut rest = &v[..];
            assert_eq!(Varint::default().feed(&mut rest), Ok(Some(n)));
            assert!(rest.is_empty());
        }
        let mut rest: &[u8] = &[0xff; 11];
        assert_eq!(
            Varint::default().feed(&mut rest),
            Err(DecodeError::VarintTooLong)
        );
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert_eq!(
            Varint::default().feed(&mut &ten[..]),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(
            Varint::default().feed(&mut &[0x80, 0x00][..]),
            Err(DecodeError::NonCanonicalVarint)
        );
        assert_eq!(
            Varint::default().feed(&mut &[0x84, 0x80, 0x00][..]),
            Err(DecodeError::NonCanonicalVarint)
        );
    }

    #[test]
    #[allow(clippy::manual_rotate)] // the framing spec's formula, as written there
    fn masked_crc_matches_the_framing_spec() {
        // CRC32C("123456789") = 0xe3069283 (RFC 3720); masked as the format says.
        let c: u32 = 0xe306_9283;
        let masked = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), masked);
    }

    fn sample_requests() -> Vec<(Protocol, Vec<u8>)> {
        let status1 = StatusV1 {
            fork_digest: [1, 2, 3, 4].into(),
            finalized_root: [5; 32].into(),
            finalized_epoch: 6,
            head_root: [7; 32].into(),
            head_slot: 8,
        };
        let status2 = StatusV2 {
            fork_digest: [1, 2, 3, 4].into(),
            earliest_available_slot: 99,
            ..Default::default()
        };
        let range = BeaconBlocksByRangeRequestV2 {
            start_slot: 1000,
            count: 64,
            step: 1,
        };
        let roots = BeaconBlocksByRootRequest::try_from(
            (0..128u8).map(|i| Root::from([i; 32])).collect::<Vec<_>>(),
        )
        .unwrap();
        let col_range = DataColumnSidecarsByRangeRequest {
            start_slot: 5,
            count: 6,
            columns: List::try_from(vec![0, 7, 127]).unwrap(),
        };
        let col_root = DataColumnSidecarsByRootRequest::try_from(vec![
            DataColumnsByRootIdentifier {
                block_root: [9; 32].into(),
                columns: List::try_from(vec![1, 2]).unwrap(),
            },
            DataColumnsByRootIdentifier {
                block_root: [10; 32].into(),
                columns: List::try_from((0..128).collect::<Vec<u64>>()).unwrap(),
            },
        ])
        .unwrap();
        vec![
            (Protocol::StatusV1, ssz_encode(&status1).unwrap()),
            (Protocol::StatusV2, ssz_encode(&status2).unwrap()),
            (
                Protocol::GoodbyeV1,
                ssz_encode(&goodbye::TOO_MANY_PEERS).unwrap(),
            ),
            (Protocol::PingV1, ssz_encode(&42u64).unwrap()),
            (Protocol::BeaconBlocksByRangeV2, ssz_encode(&range).unwrap()),
            (Protocol::BeaconBlocksByRootV2, ssz_encode(&roots).unwrap()),
            (
                Protocol::BeaconBlocksByRootV2,
                ssz_encode(&BeaconBlocksByRootRequest::default()).unwrap(),
            ),
            (
                Protocol::DataColumnSidecarsByRangeV1,
                ssz_encode(&col_range).unwrap(),
            ),
            (
                Protocol::DataColumnSidecarsByRootV1,
                ssz_encode(&col_root).unwrap(),
            ),
        ]
    }

    #[test]
    fn requests_round_trip() {
        for (protocol, ssz) in sample_requests() {
            let wire = encode_request(&ssz);
            let bounds = protocol.request_bounds().unwrap();
            assert_eq!(decode_request(bounds, &wire).unwrap(), ssz, "{protocol}");
            for piece in [1, 3, 7, 64] {
                assert_eq!(request_in_pieces(bounds, &wire, piece).unwrap(), ssz);
            }
            // The typed value decodes from the payload.
            let decoded = decode_request(bounds, &wire).unwrap();
            match protocol {
                Protocol::StatusV1 => assert!(StatusV1::ssz_decode(&decoded).is_ok()),
                Protocol::StatusV2 => {
                    assert_eq!(
                        StatusV2::ssz_decode(&decoded)
                            .unwrap()
                            .earliest_available_slot,
                        99
                    )
                }
                Protocol::DataColumnSidecarsByRootV1 => {
                    let req = DataColumnSidecarsByRootRequest::ssz_decode(&decoded).unwrap();
                    assert_eq!(req.len(), 2);
                    assert_eq!(req[1].columns.len(), 128);
                }
                _ => {}
            }
        }
        // Every protocol with a body got a sample.
        for p in Protocol::ALL.into_iter().filter(|p| p.has_request_body()) {
            assert!(sample_requests().iter().any(|(q, _)| *q == p), "{p}");
        }
        assert!(RequestDecoder::for_protocol(Protocol::MetaDataV2).is_none());
    }

    fn sample_block(seed: u64) -> Vec<u8> {
        let mut block = minimal::SignedBeaconBlock::default();
        block.message.slot = seed;
        block.message.body.graffiti = [seed as u8; 32].into();
        block.message.body.execution_payload.transactions =
            List::try_from(vec![List::try_from(bytes(3000, seed, true)).unwrap()]).unwrap();
        ssz_encode(&block).unwrap()
    }

    #[test]
    fn responses_round_trip() {
        let digests = mainnet_digests();
        let fulu = digest_of(&digests, ForkName::Fulu);
        let electra = digest_of(&digests, ForkName::Electra);
        let bpo = digests.entries().last().unwrap().digest;

        // Single-chunk protocols without context bytes.
        let mut meta = MetaDataV3 {
            seq_number: 7,
            custody_group_count: 128,
            ..Default::default()
        };
        meta.attnets.set(3, true);
        let singles = [
            (
                Protocol::StatusV1,
                ssz_encode(&StatusV1::default()).unwrap(),
            ),
            (
                Protocol::StatusV2,
                ssz_encode(&StatusV2::default()).unwrap(),
            ),
            (Protocol::PingV1, ssz_encode(&7u64).unwrap()),
            (Protocol::GoodbyeV1, ssz_encode(&1u64).unwrap()),
            (
                Protocol::MetaDataV2,
                ssz_encode(&MetaDataV2::default()).unwrap(),
            ),
            (Protocol::MetaDataV3, ssz_encode(&meta).unwrap()),
        ];
        for (protocol, ssz) in singles {
            let wire = encode_response_chunk(0, None, &ssz);
            let want = vec![ResponseChunk::Success {
                context: None,
                ssz: ssz.clone(),
            }];
            for piece in [1, 2, 5, 1000] {
                assert_eq!(
                    decode_in_pieces(decoder_for(protocol), &wire, piece).unwrap(),
                    want,
                    "{protocol}"
                );
            }
            // A second chunk is refused on a single-chunk protocol.
            let mut two = wire.clone();
            two.extend_from_slice(&wire);
            assert_eq!(
                decode_in_pieces(decoder_for(protocol), &two, 1000),
                Err(DecodeError::TooManyChunks { max: 1 })
            );
        }
        let wire = encode_response_chunk(0, None, &ssz_encode(&meta).unwrap());
        let chunks = decode_in_pieces(decoder_for(Protocol::MetaDataV3), &wire, 9).unwrap();
        let ResponseChunk::Success { ssz, .. } = &chunks[0] else {
            panic!("error chunk")
        };
        assert_eq!(MetaDataV3::ssz_decode(ssz).unwrap(), meta);

        // A stream of blocks at several digests, then an error.
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (i, context) in [electra, fulu, bpo, fulu].into_iter().enumerate() {
            let ssz = sample_block(i as u64);
            wire.extend(encode_response_chunk(0, Some(context), &ssz));
            want.push(ResponseChunk::Success {
                context: Some(context),
                ssz,
            });
        }
        wire.extend(encode_error(ResponseCode::ResourceUnavailable, "pruned"));
        want.push(ResponseChunk::Error {
            code: ResponseCode::ResourceUnavailable,
            message: b"pruned".to_vec(),
        });
        for protocol in [
            Protocol::BeaconBlocksByRangeV2,
            Protocol::BeaconBlocksByRootV2,
        ] {
            for piece in [1, 4, 13, 4096, wire.len()] {
                assert_eq!(
                    decode_in_pieces(decoder_for(protocol), &wire, piece).unwrap(),
                    want
                );
            }
        }
        let sidecars: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let mut s = DataColumnSidecar {
                    index: i,
                    ..Default::default()
                };
                s.column = List::try_from(vec![Default::default(); 2]).unwrap();
                s.kzg_commitments = List::try_from(vec![[i as u8; 48].into(); 2]).unwrap();
                s.kzg_proofs = List::try_from(vec![[7; 48].into(); 2]).unwrap();
                ssz_encode(&s).unwrap()
            })
            .collect();
        let mut wire = Vec::new();
        for s in &sidecars {
            wire.extend(encode_response_chunk(0, Some(bpo), s));
        }
        for protocol in [
            Protocol::DataColumnSidecarsByRangeV1,
            Protocol::DataColumnSidecarsByRootV1,
        ] {
            let got = decode_in_pieces(decoder_for(protocol), &wire, 100).unwrap();
            assert_eq!(got.len(), 3);
            for (chunk, s) in got.iter().zip(&sidecars) {
                let ResponseChunk::Success { context, ssz } = chunk else {
                    panic!("error chunk")
                };
                assert_eq!(*context, Some(bpo));
                assert_eq!(ssz, s);
                assert!(DataColumnSidecar::ssz_decode(ssz).is_ok());
            }
        }
        // No chunks at all is a valid (empty) response.
        assert_eq!(
            decode_in_pieces(decoder_for(Protocol::BeaconBlocksByRangeV2), &[], 1).unwrap(),
            vec![]
        );
    }

    #[test]
    fn error_chunks() {
        for b in 0..=255u8 {
            assert_eq!(ResponseCode::from_u8(b).as_u8(), b);
        }
        assert_eq!(ResponseCode::from_u8(139), ResponseCode::RateLimited);
        assert_eq!(ResponseCode::from_u8(4), ResponseCode::Reserved(4));
        assert_eq!(ResponseCode::from_u8(200), ResponseCode::Other(200));

        let long = "x".repeat(300);
        let wire = encode_error(ResponseCode::ServerError, &long);
        let chunks = decode_in_pieces(decoder_for(Protocol::PingV1), &wire, 1).unwrap();
        assert_eq!(
            chunks,
            vec![ResponseChunk::Error {
                code: ResponseCode::ServerError,
                message: vec![b'x'; 256]
            }]
        );
        // Cut at a character boundary: 200 two-byte characters become 128.
        let wire = encode_error(ResponseCode::InvalidRequest, &"é".repeat(200));
        let chunks = decode_in_pieces(decoder_for(Protocol::PingV1), &wire, 1000).unwrap();
        assert_eq!(chunks[0].error_text().unwrap(), "é".repeat(128));
        // Reserved and client codes carry an ErrorMessage, no context bytes, even on
        // protocols with context bytes.
        for code in [4u8, 127, 128, 139, 255] {
            let wire = encode_response_chunk(code, None, b"nope");
            let chunks =
                decode_in_pieces(decoder_for(Protocol::BeaconBlocksByRootV2), &wire, 3).unwrap();
            assert_eq!(
                chunks,
                vec![ResponseChunk::Error {
                    code: ResponseCode::from_u8(code),
                    message: b"nope".to_vec()
                }]
            );
        }
        // An error message longer than 256 bytes from a peer is out of bounds.
        let wire = encode_response_chunk(1, None, &[b'y'; 257]);
        assert_eq!(
            decode_in_pieces(decoder_for(Protocol::PingV1), &wire, 1000),
            Err(DecodeError::LengthOutOfBounds {
                len: 257,
                min: 0,
                max: 256
            })
        );
    }

    #[test]
    fn empty_payloads() {
        // Encoded without frames, as snap's and Go's writers do.
        assert_eq!(encode_error(ResponseCode::ServerError, ""), vec![2, 0]);
        assert_eq!(encode_request(&[]), vec![0]);
        assert!(snap_frames(&[]).is_empty());
        let bounds = BeaconBlocksByRootRequest::ssz_bounds();
        assert_eq!(decode_request(bounds, &[0]).unwrap(), Vec::<u8>::new());
        // One stream identifier after an empty payload is accepted, as is nothing.
        let mut with_id = vec![0];
        with_id.extend_from_slice(&STREAM_IDENTIFIER);
        assert_eq!(decode_request(bounds, &with_id).unwrap(), Vec::<u8>::new());
        assert_eq!(
            request_in_pieces(bounds, &with_id, 1).unwrap(),
            Vec::<u8>::new()
        );
        // Part of one, or one and more, is not.
        assert!(matches!(
            request_in_pieces(bounds, &with_id[..5], 1),
            Err(DecodeError::TrailingBytes)
        ));
        let mut more = with_id.clone();
        more.push(0);
        assert!(matches!(
            decode_request(bounds, &more),
            Err(DecodeError::TrailingBytes)
        ));

        // Responses: an empty error chunk, then (possibly) a stream identifier, then the
        // next chunk, which may itself start with 0xff.
        let empty_error = ResponseChunk::Error {
            code: ResponseCode::ServerError,
            message: vec![],
        };
        let code_255 = |m: &[u8]| ResponseChunk::Error {
            code: ResponseCode::Other(255),
            message: m.to_vec(),
        };
        let mut wire = vec![2, 0];
        wire.extend_from_slice(&STREAM_IDENTIFIER);
        wire.extend(encode_response_chunk(255, None, b"abcdef"));
        wire.extend(encode_response_chunk(255, None, b""));
        wire.extend(encode_response_chunk(255, None, b"abcdef"));
        wire.extend(encode_response_chunk(255, None, b"x"));
        wire.extend(encode_response_chunk(2, None, b""));
        let want = vec![
            empty_error.clone(),
            code_255(b"abcdef"),
            code_255(b""),
            code_255(b"abcdef"),
            code_255(b"x"),
            empty_error.clone(),
        ];
        let unlimited = || {
            ResponseDecoder::new(
                false,
                chunk_bounds_resolver(
                    Protocol::PingV1,
                    &mainnet_digests(),
                    ChunkBounds::for_preset(Preset::Minimal),
                ),
            )
        };
        for piece in [1, 2, 3, 11, 1000] {
            assert_eq!(
                decode_in_pieces(unlimited(), &wire, piece).unwrap(),
                want,
                "piece {piece}"
            );
        }
        // A stream that ends in part of an identifier is not valid.
        let wire = [2, 0, 0xff, 0x06, 0x00];
        assert!(decode_in_pieces(unlimited(), &wire, 1).is_err());
        let wire = [2, 0, 0xff, 0x06];
        assert!(decode_in_pieces(unlimited(), &wire, 1).is_err());
    }

    #[test]
    fn interop_with_the_snap_crate() {
        for (n, compressible) in [
            (1, false),
            (100, true),
            (65_535, false),
            (65_536, true),
            (65_537, false),
            (200_000, true),
            (200_000, false),
            (MAX_PAYLOAD_SIZE, true),
        ] {
            let payload = bytes(n, n as u64, compressible);
            // Ours → snap's reader.
            let ours = encode_request(&payload);
            let mut rest = &ours[..];
            let mut v = Varint::default();
            assert_eq!(v.feed(&mut rest).unwrap(), Some(n as u64));
            let mut back = Vec::new();
            snap::read::FrameDecoder::new(rest)
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, payload, "{n} {compressible}");
            // snap's writer → ours.
            let mut theirs = varint(n as u64);
            theirs.extend(snap_frames(&payload));
            let bounds = (0, MAX_PAYLOAD_SIZE);
            assert_eq!(decode_request(bounds, &theirs).unwrap(), payload);
            if n <= 200_000 {
                assert_eq!(request_in_pieces(bounds, &theirs, 997).unwrap(), payload);
            }
            // The same bytes as snap writes (same compressor, same rule).
            assert_eq!(theirs, ours);
        }
    }

    #[test]
    fn bad_lengths() {
        let status = ssz_encode(&StatusV1::default()).unwrap();
        let bounds = StatusV1::ssz_bounds();
        // A length outside the type's bounds fails on the prefix alone.
        for len in [0u64, 83, 85, 1 << 40] {
            let mut d = RequestDecoder::new(bounds);
            assert_eq!(
                d.feed(&mut &varint(len)[..]),
                Err(DecodeError::LengthOutOfBounds {
                    len,
                    min: 84,
                    max: 84
                })
            );
        }
        // MAX_PAYLOAD_SIZE caps every type's bound.
        let mut d = decoder_for(Protocol::BeaconBlocksByRangeV2);
        let mut wire = vec![0];
        wire.extend(digest_of(&mainnet_digests(), ForkName::Fulu));
        wire.extend(varint(MAX_PAYLOAD_SIZE as u64 + 1));
        let min = ChunkBounds::for_preset(Preset::Minimal)
            .signed_beacon_block
            .0;
        assert_eq!(
            d.feed(&mut &wire[..]),
            Err(DecodeError::LengthOutOfBounds {
                len: MAX_PAYLOAD_SIZE as u64 + 1,
                min,
                max: MAX_PAYLOAD_SIZE
            })
        );
        assert!(d.feed(&mut &[0u8][..]).is_err());
        // An oversized varint.
        let mut wire = vec![0xff; 10];
        wire.push(0x01);
        assert_eq!(
            decode_request(bounds, &wire),
            Err(DecodeError::VarintTooLong)
        );

        // A length that lies: more than delivered (the stream ends early) …
        let roots = vec![0xab_u8; 64 * 32];
        let frames = {
            let mut v = Vec::new();
            encode_snappy_frames(&roots, &mut v);
            v
        };
        let rbounds = BeaconBlocksByRootRequest::ssz_bounds();
        let mut wire = varint(65 * 32);
        wire.extend_from_slice(&frames);
        assert_eq!(
            decode_request(rbounds, &wire),
            Err(DecodeError::Truncated {
                declared: 65 * 32,
                got: 64 * 32
            })
        );
        // … or fewer (compressed and uncompressed chunks).
        let mut wire = varint(63 * 32);
        wire.extend_from_slice(&frames);
        assert_eq!(
            decode_request(rbounds, &wire),
            Err(DecodeError::LengthMismatch {
                declared: 63 * 32,
                got: 64 * 32
            })
        );
        let noise = bytes(1000, 5, false);
        let mut wire = varint(999);
        wire.extend_from_slice(&STREAM_IDENTIFIER);
        wire.extend(uncompressed_chunk(&noise));
        assert_eq!(
            decode_request((0, 4096), &wire),
            Err(DecodeError::LengthMismatch {
                declared: 999,
                got: 1000
            })
        );
        // The payload split over chunks, the last one too long.
        let runs = bytes(1000, 5, true);
        let mut wire = varint(1500);
        wire.extend_from_slice(&STREAM_IDENTIFIER);
        wire.extend(compressed_chunk(&runs));
        wire.extend(compressed_chunk(&runs));
        assert_eq!(
            decode_request((0, 4096), &wire),
            Err(DecodeError::LengthMismatch {
                declared: 1500,
                got: 2000
            })
        );
        // Exactly right over two chunks.
        let mut wire = varint(2000);
        wire.extend_from_slice(&STREAM_IDENTIFIER);
        wire.extend(compressed_chunk(&noise));
        wire.extend(uncompressed_chunk(&noise));
        assert_eq!(decode_request((0, 4096), &wire).unwrap(), noise.repeat(2));
        let _ = status;
    }

    #[test]
    fn bad_frames() {
        let data = bytes(500, 9, true);
        let bounds = (0, 4096);
        let good = |frames: Vec<u8>| {
            let mut wire = varint(data.len() as u64);
            wire.extend(frames);
            wire
        };
        let with_id = |rest: Vec<u8>| {
            let mut v = STREAM_IDENTIFIER.to_vec();
            v.extend(rest);
            good(v)
        };
        assert_eq!(
            decode_request(bounds, &with_id(compressed_chunk(&data))).unwrap(),
            data
        );

        // No stream identifier first; a wrong one.
        assert_eq!(
            decode_request(bounds, &good(compressed_chunk(&data))),
            Err(DecodeError::BadStreamIdentifier)
        );
        let mut bad_id = STREAM_IDENTIFIER.to_vec();
        bad_id[9] = b'y';
        bad_id.extend(compressed_chunk(&data));
        assert_eq!(
            decode_request(bounds, &good(bad_id)),
            Err(DecodeError::BadStreamIdentifier)
        );
        let mut long_id = chunk(0xff, b"sNaPpYx");
        long_id.extend(compressed_chunk(&data));
        assert_eq!(
            decode_request(bounds, &good(long_id)),
            Err(DecodeError::BadStreamIdentifier)
        );

        // Bad checksums, compressed and uncompressed.
        for mut c in [compressed_chunk(&data), uncompressed_chunk(&data)] {
            c[4] ^= 1;
            assert!(matches!(
                decode_request(bounds, &with_id(c)),
                Err(DecodeError::BadCrc { .. })
            ));
        }
        // A corrupt payload bit: the checksum catches it.
        let mut c = uncompressed_chunk(&data);
        c[100] ^= 0x10;
        assert!(matches!(
            decode_request(bounds, &with_id(c)),
            Err(DecodeError::BadCrc { .. })
        ));
        // Corrupt snappy data.
        let mut body = masked_crc32c(&data).to_le_bytes().to_vec();
        body.extend_from_slice(&[0xf4, 0x03, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_request(bounds, &with_id(chunk(CHUNK_COMPRESSED, &body))),
            Err(DecodeError::Snappy(_))
        ));
        let mut c = compressed_chunk(&data);
        let last = c.len() - 1;
        c[last] ^= 0xff;
        assert!(matches!(
            decode_request(bounds, &with_id(c)),
            Err(DecodeError::Snappy(_) | DecodeError::BadCrc { .. })
        ));
        // Chunks too short for a checksum.
        for t in [CHUNK_COMPRESSED, CHUNK_UNCOMPRESSED] {
            assert_eq!(
                decode_request(bounds, &with_id(chunk(t, &[1, 2, 3]))),
                Err(DecodeError::BadChunkLength {
                    chunk_type: t,
                    len: 3
                })
            );
        }
        // A compressed chunk that expands past 65536 bytes.
        let big = vec![0u8; MAX_CHUNK_DATA + 1];
        let mut body = masked_crc32c(&big).to_le_bytes().to_vec();
        body.extend(snap::raw::Encoder::new().compress_vec(&big).unwrap());
        let mut wire = varint(big.len() as u64);
        wire.extend_from_slice(&STREAM_IDENTIFIER);
        wire.extend(chunk(CHUNK_COMPRESSED, &body));
        assert_eq!(
            decode_request((0, 1 << 20), &wire),
            Err(DecodeError::BadChunkLength {
                chunk_type: CHUNK_COMPRESSED,
                len: MAX_CHUNK_DATA + 1
            })
        );
        // Reserved unskippable chunk types.
        for t in [0x02u8, 0x42, 0x7f] {
            let mut rest = chunk(t, &[0; 4]);
            rest.extend(compressed_chunk(&data));
            assert_eq!(
                decode_request(bounds, &with_id(rest)),
                Err(DecodeError::ReservedChunk { chunk_type: t })
            );
        }
        // Skippable and padding chunks are skipped, within the budget.
        let mut rest = chunk(0x80, &[1; 10]);
        rest.extend(chunk(CHUNK_PADDING, &[]));
        rest.extend(uncompressed_chunk(&data[..200]));
        rest.extend(chunk(0xfd, &[2; 5]));
        rest.extend(compressed_chunk(&data[200..]));
        assert_eq!(decode_request(bounds, &with_id(rest)).unwrap(), data);
        // More frame bytes than max_compressed_len(n): padding before the data.
        let limit = max_compressed_len(data.len());
        let mut rest = chunk(CHUNK_PADDING, &vec![0; limit]);
        rest.extend(compressed_chunk(&data));
        assert_eq!(
            decode_request(bounds, &with_id(rest)),
            Err(DecodeError::TooManyCompressedBytes { limit })
        );
        // Many empty data chunks also use up the budget.
        let mut rest = Vec::new();
        for _ in 0..limit / 8 + 1 {
            rest.extend(uncompressed_chunk(&[]));
        }
        rest.extend(compressed_chunk(&data));
        assert_eq!(
            decode_request(bounds, &with_id(rest)),
            Err(DecodeError::TooManyCompressedBytes { limit })
        );
        // An incompressible payload stored uncompressed stays under the budget.
        let noise = bytes(4096, 3, false);
        let wire = encode_request(&noise);
        assert!(wire.len() - 2 <= max_compressed_len(noise.len()));
        assert_eq!(decode_request(bounds, &wire).unwrap(), noise);
        // Trailing bytes after a request.
        let mut wire = with_id(compressed_chunk(&data));
        wire.push(0);
        assert_eq!(
            decode_request(bounds, &wire),
            Err(DecodeError::TrailingBytes)
        );
        // Truncated anywhere: header, frames.
        let wire = with_id(compressed_chunk(&data));
        assert_eq!(
            decode_request(bounds, &[]),
            Err(DecodeError::TruncatedHeader)
        );
        assert_eq!(
            decode_request(bounds, &wire[..1]),
            Err(DecodeError::TruncatedHeader)
        );
        for cut in [2, 5, 12, 15, wire.len() - 1] {
            assert_eq!(
                decode_request(bounds, &wire[..cut]),
                Err(DecodeError::Truncated {
                    declared: data.len(),
                    got: 0
                }),
                "cut {cut}"
            );
        }
        // A failed decoder stays failed.
        let mut d = RequestDecoder::new(bounds);
        assert!(d.feed(&mut &[0xff; 11][..]).is_err());
        assert_eq!(d.feed(&mut &[0u8][..]), Err(DecodeError::AlreadyFailed));
    }

    #[test]
    fn contexts() {
        let digests = mainnet_digests();
        let block = sample_block(1);
        let chunk_with = |context: [u8; 4]| encode_response_chunk(0, Some(context), &block);
        let decode = |protocol, wire: &[u8]| decode_in_pieces(decoder_for(protocol), wire, 50);

        let unknown = [0xde, 0xad, 0xbe, 0xef];
        for protocol in [
            Protocol::BeaconBlocksByRangeV2,
            Protocol::DataColumnSidecarsByRootV1,
        ] {
            let err = decode(protocol, &chunk_with(unknown)).unwrap_err();
            assert_eq!(err, DecodeError::UnknownContext { context: unknown });
            assert!(err.is_peer_fault());
        }
        // Blocks of a fork before Electra: valid, but not ours to decode.
        let deneb = digest_of(&digests, ForkName::Deneb);
        let err = decode(Protocol::BeaconBlocksByRootV2, &chunk_with(deneb)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedFork {
                context: deneb,
                fork: ForkName::Deneb
            }
        );
        assert!(!err.is_peer_fault());
        // Data columns before Fulu do not exist.
        let electra = digest_of(&digests, ForkName::Electra);
        let err = decode(Protocol::DataColumnSidecarsByRangeV1, &chunk_with(electra)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongForkContext {
                context: electra,
                fork: ForkName::Electra
            }
        );
        assert!(err.is_peer_fault());
        // A block shorter than the block's minimum under a Fulu digest.
        let fulu = digest_of(&digests, ForkName::Fulu);
        let wire = encode_response_chunk(0, Some(fulu), &[0; 10]);
        assert!(matches!(
            decode(Protocol::BeaconBlocksByRangeV2, &wire),
            Err(DecodeError::LengthOutOfBounds { len: 10, .. })
        ));
        // The caller's closure decides; here every context is refused.
        let wire = chunk_with(fulu);
        let refuse = |c: Option<[u8; 4]>| {
            Err(DecodeError::UnknownContext {
                context: c.unwrap_or_default(),
            })
        };
        assert_eq!(
            decode_response(true, refuse, &wire),
            Err(DecodeError::UnknownContext { context: fulu })
        );
        // Context bytes cut short.
        assert_eq!(
            decode(Protocol::BeaconBlocksByRangeV2, &wire[..3]),
            Err(DecodeError::TruncatedHeader)
        );
        // The protocol's cap on chunks.
        let one = chunk_with(fulu);
        let wire = one.repeat(MAX_REQUEST_BLOCKS_DENEB + 1);
        assert_eq!(
            decode_in_pieces(decoder_for(Protocol::BeaconBlocksByRangeV2), &wire, 1 << 16),
            Err(DecodeError::TooManyChunks {
                max: MAX_REQUEST_BLOCKS_DENEB
            })
        );
        let wire = one.repeat(MAX_REQUEST_BLOCKS_DENEB);
        assert_eq!(
            decode_in_pieces(decoder_for(Protocol::BeaconBlocksByRangeV2), &wire, 1 << 16)
                .unwrap()
                .len(),
            MAX_REQUEST_BLOCKS_DENEB
        );
    }

    /// The decoder fed one byte at a time answers as it does fed everything at once, on
    /// valid and invalid streams alike.
    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let digests = mainnet_digests();
        let fulu = digest_of(&digests, ForkName::Fulu);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let mut stream = Vec::new();
        for i in 0..3 {
            stream.extend(encode_response_chunk(0, Some(fulu), &sample_block(i)));
        }
        stream.extend(encode_error(ResponseCode::ServerError, "late"));
        cases.push(stream.clone());
        // Every prefix of a shorter stream, and single-byte corruptions of it.
        let mut short = encode_response_chunk(0, Some(fulu), &sample_block(9));
        short.extend(encode_error(ResponseCode::ServerError, ""));
        for cut in (0..short.len()).step_by(97) {
            cases.push(short[..cut].to_vec());
        }
        for at in (0..short.len()).step_by(53) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut c = short.clone();
                c[at] ^= flip;
                cases.push(c);
            }
        }
        for case in &cases {
            let all = decode_in_pieces(
                decoder_for(Protocol::BeaconBlocksByRangeV2),
                case,
                usize::MAX,
            );
            let one = decode_in_pieces(decoder_for(Protocol::BeaconBlocksByRangeV2), case, 1);
            assert_eq!(all, one);
        }
        // And for requests.
        for (protocol, ssz) in sample_requests() {
            let bounds = protocol.request_bounds().unwrap();
            let wire = encode_request(&ssz);
            for at in (0..wire.len()).step_by(7) {
                let mut c = wire.clone();
                c[at] ^= 0x41;
                assert_eq!(
                    decode_request(bounds, &c),
                    request_in_pieces(bounds, &c, 1),
                    "{protocol} at {at}"
                );
            }
        }
    }

    #[test]
    fn peer_fault() {
        assert!(DecodeError::BadCrc {
            expected: 1,
            got: 2
        }
        .is_peer_fault());
        assert!(DecodeError::VarintTooLong.is_peer_fault());
        assert!(!DecodeError::UnsupportedFork {
            context: [0; 4],
            fork: ForkName::Phase0
        }
        .is_peer_fault());
    }
}
