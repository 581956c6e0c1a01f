//! The req/resp decoders (`quasar::net::codec`) over arbitrary bytes.
//!
//! Input: `[selector, piece, stream…]`. The selector picks a protocol and request or
//! response; `piece` is the size of the pieces the stream is fed in. Checked: no panic;
//! fed in pieces, the decoder answers as it does fed everything at once; what decodes
//! re-encodes to bytes that decode to the same; a typed SSZ decode of a request payload
//! never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quasar::net::codec::{
    chunk_bounds_for, decode_request, decode_response, encode_request, encode_response_chunk,
    BoundsFn, DecodeError, RequestDecoder, ResponseChunk, ResponseDecoder, Step,
};
use quasar::net::fork_digest::ForkDigests;
use quasar::net::messages::*;
use quasar::transition::ChainConfig;
use quasar::types::ssz::SszDecode;
use quasar::types::Preset;
use std::sync::OnceLock;

fn digests() -> &'static ForkDigests {
    static D: OnceLock<ForkDigests> = OnceLock::new();
    D.get_or_init(|| ForkDigests::new([0x4b; 32], &ChainConfig::mainnet()))
}

fn chunk_bounds() -> ChunkBounds {
    ChunkBounds::for_preset(Preset::Minimal)
}

/// Known digests, or (so that the fuzzer reaches the payload without guessing a digest)
/// any context bytes with small bounds.
fn bounds_fn(protocol: Protocol, any_context: bool) -> BoundsFn {
    if any_context {
        Box::new(move |_| Ok(protocol.response_bounds().unwrap_or((0, 4096))))
    } else {
        Box::new(move |c| chunk_bounds_for(protocol, c, digests(), &chunk_bounds()))
    }
}

fn request_in_pieces(
    bounds: (usize, usize),
    data: &[u8],
    piece: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut d = RequestDecoder::new(bounds);
    let mut out = None;
    for part in data.chunks(piece) {
        let mut rest = part;
        while !rest.is_empty() {
            if let Step::Item(ssz) = d.feed(&mut rest)? {
                out = Some(ssz);
            }
        }
    }
    d.finish()?;
    out.ok_or(DecodeError::TruncatedHeader)
}

fn response_in_pieces(
    has_context: bool,
    bounds: BoundsFn,
    data: &[u8],
    piece: usize,
) -> Result<Vec<ResponseChunk>, DecodeError> {
    let mut d = ResponseDecoder::new(has_context, bounds);
    let mut chunks = Vec::new();
    for part in data.chunks(piece) {
        let mut rest = part;
        while let Step::Item(c) = d.feed(&mut rest)? {
            chunks.push(c);
        }
    }
    d.finish()?;
    Ok(chunks)
}

fn typed_request(protocol: Protocol, ssz: &[u8]) {
    let _ = match protocol {
        Protocol::StatusV1 => StatusV1::ssz_decode(ssz).map(|_| ()),
        Protocol::StatusV2 => StatusV2::ssz_decode(ssz).map(|_| ()),
        Protocol::GoodbyeV1 | Protocol::PingV1 => u64::ssz_decode(ssz).map(|_| ()),
        Protocol::MetaDataV2 | Protocol::MetaDataV3 => Ok(()),
        Protocol::BeaconBlocksByRangeV2 => {
            BeaconBlocksByRangeRequestV2::ssz_decode(ssz).map(|_| ())
        }
        Protocol::BeaconBlocksByRootV2 => BeaconBlocksByRootRequest::ssz_decode(ssz).map(|_| ()),
        Protocol::DataColumnSidecarsByRangeV1 => {
            DataColumnSidecarsByRangeRequest::ssz_decode(ssz).map(|_| ())
        }
        Protocol::DataColumnSidecarsByRootV1 => {
            DataColumnSidecarsByRootRequest::ssz_decode(ssz).map(|_| ())
        }
    };
}

fn reencode(chunks: &[ResponseChunk]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        match c {
            ResponseChunk::Success { context, ssz } => {
                out.extend(encode_response_chunk(0, *context, ssz))
            }
            ResponseChunk::Error { code, message } => {
                out.extend(encode_response_chunk(code.as_u8(), None, message))
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [selector, piece, stream @ ..] = data else {
        return;
    };
    let protocol = Protocol::ALL[(*selector as usize >> 2) % Protocol::ALL.len()];
    let piece = usize::from(*piece).max(1);
    if selector & 1 == 0 {
        let bounds = protocol.request_bounds().unwrap_or((0, 64));
        let whole = decode_request(bounds, stream);
        assert_eq!(whole, request_in_pieces(bounds, stream, piece));
        if let Ok(ssz) = whole {
            typed_request(protocol, &ssz);
            assert_eq!(decode_request(bounds, &encode_request(&ssz)), Ok(ssz));
        }
    } else {
        let any_context = selector & 2 != 0;
        let has_context = protocol.has_context_bytes();
        let whole = decode_response(has_context, bounds_fn(protocol, any_context), stream);
        let pieces =
            response_in_pieces(has_context, bounds_fn(protocol, any_context), stream, piece);
        assert_eq!(whole, pieces);
        if let Ok(chunks) = whole {
            let again = decode_response(
                has_context,
                bounds_fn(protocol, any_context),
                &reencode(&chunks),
            );
            assert_eq!(again, Ok(chunks));
        }
    }
});
