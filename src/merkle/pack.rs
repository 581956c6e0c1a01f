//! SSZ packing of basic types: values serialized little-endian back to back, split into
//! 32-byte chunks, the last one zero-padded.

use super::Chunk;

/// An SSZ basic type (`uintN`, `boolean`).
pub trait Basic: Copy {
    /// Serialized size in bytes.
    const SIZE: usize;
    /// Write the little-endian serialization into `out` (`out.len() == SIZE`).
    fn write_le(&self, out: &mut [u8]);
}

macro_rules! basic_uint {
    ($($t:ty),*) => {$(
        impl Basic for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn write_le(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
basic_uint!(u8, u16, u32, u64, u128);

impl Basic for bool {
    const SIZE: usize = 1;
    fn write_le(&self, out: &mut [u8]) {
        out[0] = u8::from(*self);
    }
}

/// `pack(values)`: the chunks of the values' serialization, zero-padded.
pub fn pack<T: Basic>(values: &[T]) -> Vec<Chunk> {
    let per_chunk = 32 / T::SIZE;
    let mut chunks = vec![[0u8; 32]; values.len().div_ceil(per_chunk)];
    for (chunk, vals) in chunks.iter_mut().zip(values.chunks(per_chunk)) {
        for (i, v) in vals.iter().enumerate() {
            v.write_le(&mut chunk[i * T::SIZE..(i + 1) * T::SIZE]);
        }
    }
    chunks
}

/// `pack` of raw bytes (`ByteVector`, `ByteList`).
pub fn pack_bytes(bytes: &[u8]) -> Vec<Chunk> {
    let mut chunks = vec![[0u8; 32]; bytes.len().div_ceil(32)];
    for (chunk, part) in chunks.iter_mut().zip(bytes.chunks(32)) {
        chunk[..part.len()].copy_from_slice(part);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_little_endian_and_pads() {
        let c = pack(&[1u64, 2, 3, 4, 5]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0][0], 1);
        assert_eq!(c[0][8], 2);
        assert_eq!(c[1][0], 5);
        assert!(c[1][1..].iter().all(|&b| b == 0));
        assert_eq!(pack::<u64>(&[]).len(), 0);
        assert_eq!(pack(&[true, false, true])[0][..3], [1, 0, 1]);
        assert_eq!(pack_bytes(&[7u8; 33]).len(), 2);
        assert_eq!(pack(&[0x0102u16])[0][..2], [2, 1]);
    }
}
