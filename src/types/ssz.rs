//! The SSZ layer under the containers: strict decoding, fixed byte vectors and the
//! container macro.
//!
//! `ssz_rs` (0.9) supplies the value types (`List`, `Vector`, `Bitlist`, `Bitvector`,
//! `U256`), their encoding and their merkleization. Its derive macro and its decoder
//! for lists of variable-size elements are lenient with malformed offsets (an
//! out-of-range offset can index past the input, and an arithmetic underflow in the
//! derived decoder panics with overflow checks on), so decoding goes through
//! [`SszDecode`] here instead: every offset is checked against the fixed part, the
//! previous offset and the input length before anything is sliced, and element counts
//! are checked against the type's bound before elements are decoded. The containers
//! are declared with [`ssz_container!`](crate::ssz_container), which implements the
//! `ssz_rs` traits (`Serialize`, `Deserialize`, `Merkleized`, `SimpleSerialize`) on
//! top of this decoder, so `ssz_rs::deserialize::<T>` is strict for them too.

use ssz_rs::{
    Bitlist, Bitvector, Deserialize, DeserializeError, List, MerkleizationError, Merkleized, Node,
    Serialize, SerializeError, SimpleSerialize, Vector, U256,
};
use std::fmt;

/// Bytes in one SSZ offset.
pub const BYTES_PER_LENGTH_OFFSET: usize = 4;
/// Bytes in one merkle chunk.
pub const BYTES_PER_CHUNK: usize = 32;

/// Why bytes did not decode into a type. Input from peers and files gets one of these,
/// never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A fixed-size value got the wrong number of bytes.
    #[error("expected {expected} bytes, got {got}")]
    InvalidLength { expected: usize, got: usize },
    /// Fewer bytes than the fixed part of a container or a list's offsets.
    #[error("need at least {min} bytes, got {got}")]
    TooShort { min: usize, got: usize },
    /// The first offset of a container does not point right after its fixed part.
    #[error("first offset is {offset}, but the fixed part ends at {fixed}")]
    FirstOffset { offset: usize, fixed: usize },
    /// The first offset of a list is not a non-zero multiple of 4 within the input.
    #[error("list offset table of {offset} bytes is malformed (input has {len} bytes)")]
    ListOffsets { offset: usize, len: usize },
    /// An offset points past the end of the input.
    #[error("offset {offset} points past the end of the input ({len} bytes)")]
    OffsetOutOfBounds { offset: usize, len: usize },
    /// Offsets must not decrease.
    #[error("offset {next} comes after the larger offset {prev}")]
    OffsetsDecreasing { prev: usize, next: usize },
    /// A list has more elements than its bound.
    #[error("{len} elements exceed the bound {bound}")]
    TooManyElements { len: usize, bound: usize },
    /// A vector has the wrong number of elements.
    #[error("{len} elements, but the vector holds exactly {expected}")]
    WrongElementCount { len: usize, expected: usize },
    /// A list of fixed-size elements whose byte length is not a multiple of the size.
    #[error("{len} bytes is not a multiple of the element size {size}")]
    NotMultiple { len: usize, size: usize },
    /// A boolean byte other than 0 or 1.
    #[error("invalid boolean byte {0:#04x}")]
    InvalidBool(u8),
    /// An error from an `ssz_rs` leaf type (bitlists, bitvectors, 256-bit integers).
    #[error("{0}")]
    Leaf(String),
    /// Where in a container the error happened.
    #[error("{container}.{field}: {source}")]
    Field {
        container: &'static str,
        field: &'static str,
        #[source]
        source: Box<DecodeError>,
    },
}

impl DecodeError {
    /// Wraps the error with the container field it came from.
    pub fn in_field(self, container: &'static str, field: &'static str) -> Self {
        DecodeError::Field {
            container,
            field,
            source: Box::new(self),
        }
    }

    /// The innermost error, without the field path.
    pub fn root_cause(&self) -> &DecodeError {
        match self {
            DecodeError::Field { source, .. } => source.root_cause(),
            other => other,
        }
    }
}

impl From<DecodeError> for DeserializeError {
    fn from(err: DecodeError) -> Self {
        use ssz_rs::InstanceError;
        match err.root_cause().clone() {
            DecodeError::InvalidLength { expected, got }
            | DecodeError::TooShort { min: expected, got }
                if got < expected =>
            {
                DeserializeError::ExpectedFurtherInput {
                    provided: got,
                    expected,
                }
            }
            DecodeError::InvalidLength { expected, got } => DeserializeError::AdditionalInput {
                provided: got,
                expected,
            },
            DecodeError::TooShort { min, got } => DeserializeError::ExpectedFurtherInput {
                provided: got,
                expected: min,
            },
            DecodeError::OffsetOutOfBounds { offset, len } => {
                DeserializeError::ExpectedFurtherInput {
                    provided: len,
                    expected: offset,
                }
            }
            DecodeError::OffsetsDecreasing { prev, next } => {
                DeserializeError::OffsetNotIncreasing {
                    start: prev,
                    end: next,
                }
            }
            DecodeError::FirstOffset { offset, .. } | DecodeError::ListOffsets { offset, .. } => {
                DeserializeError::InvalidOffsetsLength(offset)
            }
            DecodeError::TooManyElements { len, bound } => {
                DeserializeError::InvalidInstance(InstanceError::Bounded {
                    bound,
                    provided: len,
                })
            }
            DecodeError::WrongElementCount { len, expected } => {
                DeserializeError::InvalidInstance(InstanceError::Exact {
                    required: expected,
                    provided: len,
                })
            }
            DecodeError::NotMultiple { len, size } => DeserializeError::AdditionalInput {
                provided: len,
                expected: len - len % size,
            },
            DecodeError::InvalidBool(b) => DeserializeError::InvalidByte(b),
            DecodeError::Leaf(_) | DecodeError::Field { .. } => DeserializeError::InvalidByte(0),
        }
    }
}

/// Strict SSZ decoding (see the module docs).
pub trait SszDecode: SimpleSerialize {
    /// Decodes exactly `bytes` into a value, or says why it cannot.
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// The SSZ encoding of a value.
pub fn ssz_encode<T: Serialize>(value: &T) -> Result<Vec<u8>, SerializeError> {
    let mut out = Vec::new();
    value.serialize(&mut out)?;
    Ok(out)
}

/// The hash tree root of a value as 32 bytes.
pub fn hash_tree_root<T: Merkleized>(value: &mut T) -> Result<[u8; 32], MerkleizationError> {
    Ok(node_bytes(&value.hash_tree_root()?))
}

/// The bytes of a merkle node.
pub fn node_bytes(node: &Node) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(node.as_ref());
    out
}

/// A merkle node from 32 bytes.
pub fn node_from(bytes: [u8; 32]) -> Node {
    // A 32-byte slice always converts.
    Node::try_from(&bytes[..]).unwrap_or_default()
}

macro_rules! decode_uint {
    ($($t:ty),*) => {$(
        impl SszDecode for $t {
            fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                let arr: [u8; std::mem::size_of::<$t>()] = bytes.try_into().map_err(|_| {
                    DecodeError::InvalidLength { expected: std::mem::size_of::<$t>(), got: bytes.len() }
                })?;
                Ok(<$t>::from_le_bytes(arr))
            }
        }
    )*};
}
decode_uint!(u8, u16, u32, u64, u128);

impl SszDecode for bool {
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes {
            [0] => Ok(false),
            [1] => Ok(true),
            [b] => Err(DecodeError::InvalidBool(*b)),
            _ => Err(DecodeError::InvalidLength {
                expected: 1,
                got: bytes.len(),
            }),
        }
    }
}

impl SszDecode for U256 {
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != 32 {
            return Err(DecodeError::InvalidLength {
                expected: 32,
                got: bytes.len(),
            });
        }
        U256::deserialize(bytes).map_err(|e| DecodeError::Leaf(e.to_string()))
    }
}

impl<const N: usize> SszDecode for Bitvector<N> {
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let expected = N.div_ceil(8);
        if N == 0 || bytes.len() != expected {
            return Err(DecodeError::InvalidLength {
                expected,
                got: bytes.len(),
            });
        }
        Bitvector::deserialize(bytes).map_err(|e| DecodeError::Leaf(e.to_string()))
    }
}

impl<const N: usize> SszDecode for Bitlist<N> {
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        // ssz_rs checks: non-empty, at most (N + 1) bits of bytes, a delimiter bit in the
        // last byte, and the bit count against N.
        Bitlist::deserialize(bytes).map_err(|e| DecodeError::Leaf(e.to_string()))
    }
}

fn read_offset(bytes: &[u8], at: usize) -> Result<usize, DecodeError> {
    let raw = bytes
        .get(at..at + BYTES_PER_LENGTH_OFFSET)
        .ok_or(DecodeError::TooShort {
            min: at + BYTES_PER_LENGTH_OFFSET,
            got: bytes.len(),
        })?;
    let mut arr = [0u8; 4];
    arr.copy_from_slice(raw);
    Ok(u32::from_le_bytes(arr) as usize)
}

/// Decodes a homogeneous sequence: `exact` elements (vectors) or at most `bound` (lists).
fn decode_sequence<T: SszDecode>(
    bytes: &[u8],
    exact: Option<usize>,
    bound: usize,
) -> Result<Vec<T>, DecodeError> {
    let count_ok = |len: usize| -> Result<(), DecodeError> {
        match exact {
            Some(expected) if len != expected => {
                Err(DecodeError::WrongElementCount { len, expected })
            }
            None if len > bound => Err(DecodeError::TooManyElements { len, bound }),
            _ => Ok(()),
        }
    };
    if !T::is_variable_size() {
        let size = T::size_hint();
        if size == 0 {
            return Err(DecodeError::Leaf("zero-size element type".into()));
        }
        if let Some(n) = exact {
            let expected = n.saturating_mul(size);
            if bytes.len() != expected {
                return Err(DecodeError::InvalidLength {
                    expected,
                    got: bytes.len(),
                });
            }
        } else if bytes.len() % size != 0 {
            return Err(DecodeError::NotMultiple {
                len: bytes.len(),
                size,
            });
        }
        count_ok(bytes.len() / size)?;
        return bytes.chunks_exact(size).map(T::ssz_decode).collect();
    }
    if bytes.is_empty() {
        count_ok(0)?;
        return Ok(Vec::new());
    }
    let first = read_offset(bytes, 0)?;
    if first == 0 || first % BYTES_PER_LENGTH_OFFSET != 0 || first > bytes.len() {
        return Err(DecodeError::ListOffsets {
            offset: first,
            len: bytes.len(),
        });
    }
    let count = first / BYTES_PER_LENGTH_OFFSET;
    count_ok(count)?;
    let mut offsets = Vec::with_capacity(count + 1);
    offsets.push(first);
    for i in 1..count {
        let offset = read_offset(bytes, i * BYTES_PER_LENGTH_OFFSET)?;
        let prev = offsets[i - 1];
        if offset < prev {
            return Err(DecodeError::OffsetsDecreasing { prev, next: offset });
        }
        if offset > bytes.len() {
            return Err(DecodeError::OffsetOutOfBounds {
                offset,
                len: bytes.len(),
            });
        }
        offsets.push(offset);
    }
    offsets.push(bytes.len());
    offsets
        .windows(2)
        .map(|w| {
            let part = bytes
                .get(w[0]..w[1])
                .ok_or(DecodeError::OffsetOutOfBounds {
                    offset: w[1],
                    len: bytes.len(),
                })?;
            T::ssz_decode(part)
        })
        .collect()
}

impl<T: SszDecode, const N: usize> SszDecode for List<T, N> {
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let items = decode_sequence::<T>(bytes, None, N)?;
        let len = items.len();
        List::try_from(items).map_err(|_| DecodeError::TooManyElements { len, bound: N })
    }
}

impl<T: SszDecode + Clone, const N: usize> SszDecode for Vector<T, N> {
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let items = decode_sequence::<T>(bytes, Some(N), N)?;
        let len = items.len();
        Vector::try_from(items).map_err(|_| DecodeError::WrongElementCount { len, expected: N })
    }
}

/// Walks a container's encoding field by field, after checking all its offsets.
pub struct ContainerDecoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    offsets: Vec<usize>,
    next_var: usize,
}

impl<'a> ContainerDecoder<'a> {
    /// `layout` holds `(is_variable_size, size_hint)` per field, in order.
    pub fn new(bytes: &'a [u8], layout: &[(bool, usize)]) -> Result<Self, DecodeError> {
        let fixed: usize = layout
            .iter()
            .map(|&(var, size)| if var { BYTES_PER_LENGTH_OFFSET } else { size })
            .sum();
        if bytes.len() < fixed {
            return Err(DecodeError::TooShort {
                min: fixed,
                got: bytes.len(),
            });
        }
        let mut offsets = Vec::new();
        let mut pos = 0;
        for &(var, size) in layout {
            if var {
                let offset = read_offset(bytes, pos)?;
                match offsets.last() {
                    None if offset != fixed => {
                        return Err(DecodeError::FirstOffset { offset, fixed });
                    }
                    Some(&prev) if offset < prev => {
                        return Err(DecodeError::OffsetsDecreasing { prev, next: offset });
                    }
                    _ => {}
                }
                if offset > bytes.len() {
                    return Err(DecodeError::OffsetOutOfBounds {
                        offset,
                        len: bytes.len(),
                    });
                }
                offsets.push(offset);
                pos += BYTES_PER_LENGTH_OFFSET;
            } else {
                pos += size;
            }
        }
        if offsets.is_empty() && bytes.len() != fixed {
            return Err(DecodeError::InvalidLength {
                expected: fixed,
                got: bytes.len(),
            });
        }
        Ok(Self {
            bytes,
            pos: 0,
            offsets,
            next_var: 0,
        })
    }

    /// Decodes the next field.
    pub fn field<T: SszDecode>(&mut self) -> Result<T, DecodeError> {
        let len = self.bytes.len();
        let part = if T::is_variable_size() {
            let start = self.offsets.get(self.next_var).copied().unwrap_or(len);
            let end = self.offsets.get(self.next_var + 1).copied().unwrap_or(len);
            self.next_var += 1;
            self.pos += BYTES_PER_LENGTH_OFFSET;
            self.bytes.get(start..end)
        } else {
            let start = self.pos;
            self.pos += T::size_hint();
            self.bytes.get(start..self.pos)
        };
        T::ssz_decode(part.ok_or(DecodeError::TooShort {
            min: self.pos,
            got: len,
        })?)
    }
}

/// Bytes a field takes in its container's fixed part.
pub fn fixed_part_len<T: SimpleSerialize>() -> usize {
    if T::is_variable_size() {
        BYTES_PER_LENGTH_OFFSET
    } else {
        T::size_hint()
    }
}

/// Appends one field: its value to the fixed part, or an offset there and its value to
/// the variable part.
pub fn serialize_field<T: SimpleSerialize>(
    value: &T,
    fixed_len: usize,
    fixed: &mut Vec<u8>,
    variable: &mut Vec<u8>,
) -> Result<(), SerializeError> {
    if T::is_variable_size() {
        let offset = fixed_len + variable.len();
        let offset32 = u32::try_from(offset)
            .map_err(|_| SerializeError::MaximumEncodedLengthReached(offset))?;
        fixed.extend_from_slice(&offset32.to_le_bytes());
        value.serialize(variable)?;
    } else {
        value.serialize(fixed)?;
    }
    Ok(())
}

/// Merkleizes `chunks` padded with zero chunks to the next power of two of
/// `max(chunks.len(), limit)`, through the merkle engine's fastest CPU kernel.
pub fn merkleize_chunks(chunks: &[[u8; 32]], limit: usize) -> [u8; 32] {
    let limit = chunks.len().max(limit) as u64;
    crate::merkle::merkleize(&crate::accel::hash::CpuHasher::simd(), chunks, Some(limit))
        .expect("the limit covers the chunks and CPU hashing cannot fail")
}

/// A fixed-length byte string (`Bytes4`, `Bytes32`, `BLSPubkey`, `Cell`, …), stored
/// inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteVector<const N: usize>(pub [u8; N]);

impl<const N: usize> Default for ByteVector<N> {
    fn default() -> Self {
        Self([0u8; N])
    }
}

impl<const N: usize> fmt::Debug for ByteVector<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Display for ByteVector<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<const N: usize> From<[u8; N]> for ByteVector<N> {
    fn from(bytes: [u8; N]) -> Self {
        Self(bytes)
    }
}

impl<const N: usize> AsRef<[u8]> for ByteVector<N> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> ByteVector<N> {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> ssz_rs::Sized for ByteVector<N> {
    fn is_variable_size() -> bool {
        false
    }
    fn size_hint() -> usize {
        N
    }
}

impl<const N: usize> Serialize for ByteVector<N> {
    fn serialize(&self, buffer: &mut Vec<u8>) -> Result<usize, SerializeError> {
        buffer.extend_from_slice(&self.0);
        Ok(N)
    }
}

impl<const N: usize> Deserialize for ByteVector<N> {
    fn deserialize(encoding: &[u8]) -> Result<Self, DeserializeError> {
        Ok(Self::ssz_decode(encoding)?)
    }
}

impl<const N: usize> SszDecode for ByteVector<N> {
    fn ssz_decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; N] = bytes.try_into().map_err(|_| DecodeError::InvalidLength {
            expected: N,
            got: bytes.len(),
        })?;
        Ok(Self(arr))
    }
}

impl<const N: usize> Merkleized for ByteVector<N> {
    fn hash_tree_root(&mut self) -> Result<Node, MerkleizationError> {
        if N <= BYTES_PER_CHUNK {
            let mut chunk = [0u8; 32];
            chunk[..N].copy_from_slice(&self.0);
            return Ok(node_from(chunk));
        }
        let chunks: Vec<[u8; 32]> = self
            .0
            .chunks(BYTES_PER_CHUNK)
            .map(|c| {
                let mut chunk = [0u8; 32];
                chunk[..c.len()].copy_from_slice(c);
                chunk
            })
            .collect();
        Ok(node_from(merkleize_chunks(&chunks, chunks.len())))
    }
}

impl<const N: usize> SimpleSerialize for ByteVector<N> {}

/// Declares an SSZ container: the struct (with `Debug`, `Clone`, `PartialEq`, `Eq`,
/// `Default`) and its `ssz_rs` traits, with strict decoding through [`SszDecode`].
/// Fields are encoded and merkleized in the order written, as in the spec.
#[macro_export]
macro_rules! ssz_container {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl ::ssz_rs::Sized for $name {
            fn is_variable_size() -> bool {
                false $( || <$ty as ::ssz_rs::Sized>::is_variable_size() )*
            }
            fn size_hint() -> usize {
                if <Self as ::ssz_rs::Sized>::is_variable_size() {
                    0
                } else {
                    0 $( + <$ty as ::ssz_rs::Sized>::size_hint() )*
                }
            }
        }

        impl ::ssz_rs::Serialize for $name {
            fn serialize(&self, buffer: &mut Vec<u8>) -> Result<usize, ::ssz_rs::SerializeError> {
                let fixed_len = 0 $( + $crate::types::ssz::fixed_part_len::<$ty>() )*;
                let mut fixed = Vec::with_capacity(fixed_len);
                let mut variable = Vec::new();
                $( $crate::types::ssz::serialize_field(&self.$field, fixed_len, &mut fixed, &mut variable)?; )*
                buffer.extend_from_slice(&fixed);
                buffer.extend_from_slice(&variable);
                Ok(fixed.len() + variable.len())
            }
        }

        impl $crate::types::ssz::SszDecode for $name {
            fn ssz_decode(bytes: &[u8]) -> Result<Self, $crate::types::ssz::DecodeError> {
                let layout = [ $( (
                    <$ty as ::ssz_rs::Sized>::is_variable_size(),
                    <$ty as ::ssz_rs::Sized>::size_hint(),
                ) ),* ];
                let mut decoder = $crate::types::ssz::ContainerDecoder::new(bytes, &layout)
                    .map_err(|e| e.in_field(stringify!($name), "<offsets>"))?;
                Ok(Self {
                    $( $field: decoder
                        .field::<$ty>()
                        .map_err(|e| e.in_field(stringify!($name), stringify!($field)))?, )*
                })
            }
        }

        impl ::ssz_rs::Deserialize for $name {
            fn deserialize(encoding: &[u8]) -> Result<Self, ::ssz_rs::DeserializeError> {
                Ok(<Self as $crate::types::ssz::SszDecode>::ssz_decode(encoding)?)
            }
        }

        impl ::ssz_rs::Merkleized for $name {
            fn hash_tree_root(&mut self) -> Result<::ssz_rs::Node, ::ssz_rs::MerkleizationError> {
                let chunks = [ $( $crate::types::ssz::node_bytes(&::ssz_rs::Merkleized::hash_tree_root(&mut self.$field)?) ),* ];
                Ok($crate::types::ssz::node_from($crate::types::ssz::merkleize_chunks(&chunks, chunks.len())))
            }
        }

        impl ::ssz_rs::SimpleSerialize for $name {}

        impl $crate::types::json::ApiJson for $name {
            fn write_json(&self, out: &mut String) {
                out.push('{');
                let mut _first = true;
                $(
                    $crate::types::json::write_field(stringify!($field), &self.$field, _first, out);
                    _first = false;
                )*
                out.push('}');
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::minimal;

    type Txs = List<List<u8, 16>, 4>;

    #[test]
    fn variable_list_offsets_are_checked() {
        // Two elements; the second offset points past the end (ssz_rs 0.9 slices here).
        let bytes = [8, 0, 0, 0, 200, 0, 0, 0, 1, 2];
        assert!(matches!(
            Txs::ssz_decode(&bytes),
            Err(DecodeError::OffsetOutOfBounds { .. })
        ));
        // Decreasing offsets.
        let bytes = [12, 0, 0, 0, 13, 0, 0, 0, 12, 0, 0, 0, 1, 2];
        assert!(matches!(
            Txs::ssz_decode(&bytes),
            Err(DecodeError::OffsetsDecreasing { .. })
        ));
        // An offset table that is not a multiple of 4, or zero.
        assert!(matches!(
            Txs::ssz_decode(&[5, 0, 0, 0, 0]),
            Err(DecodeError::ListOffsets { .. })
        ));
        assert!(matches!(
            Txs::ssz_decode(&[0, 0, 0, 0]),
            Err(DecodeError::ListOffsets { .. })
        ));
        // More elements than the bound, seen from the offset table alone.
        let mut bytes = vec![20, 0, 0, 0];
        bytes.extend([20, 0, 0, 0].repeat(4));
        assert!(matches!(
            Txs::ssz_decode(&bytes),
            Err(DecodeError::TooManyElements { .. })
        ));
        // Valid: [[1], [], [2, 3]].
        let bytes = [12, 0, 0, 0, 13, 0, 0, 0, 13, 0, 0, 0, 1, 2, 3];
        let list = Txs::ssz_decode(&bytes).expect("valid list");
        assert_eq!(list.len(), 3);
        assert_eq!(ssz_encode(&list).expect("encodes"), bytes);
    }

    #[test]
    fn container_offsets_are_checked() {
        // IndexedAttestation: offset(4) + AttestationData(128) + signature(96).
        let fixed = 4 + 128 + 96;
        let mut bytes = vec![0u8; fixed];
        bytes[..4].copy_from_slice(&(fixed as u32).to_le_bytes());
        let ok = minimal::IndexedAttestation::ssz_decode(&bytes).expect("empty indices");
        assert!(ok.attesting_indices.is_empty());
        for bad in [0u32, fixed as u32 - 1, fixed as u32 + 1, u32::MAX] {
            bytes[..4].copy_from_slice(&bad.to_le_bytes());
            let err = minimal::IndexedAttestation::ssz_decode(&bytes).expect_err("bad offset");
            assert!(matches!(
                err.root_cause(),
                DecodeError::FirstOffset { .. } | DecodeError::OffsetOutOfBounds { .. }
            ));
            // The ssz_rs entry point is strict too.
            assert!(<minimal::IndexedAttestation as Deserialize>::deserialize(&bytes).is_err());
        }
    }

    #[test]
    fn merkleize_pads_to_the_limit() {
        let zero = [0u8; 32];
        let h = |a: &[u8; 32], b: &[u8; 32]| {
            crate::accel::hash::hash_pair(quasar_kernels::sha256::Kernel::detect(), a, b)
        };
        assert_eq!(merkleize_chunks(&[], 0), zero);
        assert_eq!(merkleize_chunks(&[[7; 32]], 1), [7; 32]);
        assert_eq!(
            merkleize_chunks(&[[1; 32], [2; 32]], 2),
            h(&[1; 32], &[2; 32])
        );
        let z1 = h(&zero, &zero);
        assert_eq!(merkleize_chunks(&[[1; 32]], 4), h(&h(&[1; 32], &zero), &z1));
        assert_eq!(merkleize_chunks(&[], 4), h(&z1, &z1));
        let three = [[1; 32], [2; 32], [3; 32]];
        assert_eq!(
            merkleize_chunks(&three, 3),
            h(&h(&[1; 32], &[2; 32]), &h(&[3; 32], &zero))
        );
    }

    #[test]
    fn byte_vector_roots() {
        let mut short = ByteVector::<4>([1, 2, 3, 4]);
        let mut expected = [0u8; 32];
        expected[..4].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(hash_tree_root(&mut short).expect("root"), expected);
        let mut sig = ByteVector::<96>([9; 96]);
        let mut last = [0u8; 32];
        last.copy_from_slice(&[9; 32]);
        let h = |a: &[u8; 32], b: &[u8; 32]| {
            crate::accel::hash::hash_pair(quasar_kernels::sha256::Kernel::detect(), a, b)
        };
        let want = h(&h(&[9; 32], &[9; 32]), &h(&last, &[0; 32]));
        assert_eq!(hash_tree_root(&mut sig).expect("root"), want);
        assert!(ByteVector::<48>::ssz_decode(&[0; 47]).is_err());
    }

    #[test]
    fn booleans_are_strict() {
        assert_eq!(bool::ssz_decode(&[1]), Ok(true));
        assert_eq!(bool::ssz_decode(&[2]), Err(DecodeError::InvalidBool(2)));
        assert!(bool::ssz_decode(&[]).is_err());
    }
}
