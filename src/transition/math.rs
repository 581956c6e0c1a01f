//! Preset-independent math of the spec: checked uint64 arithmetic, `integer_squareroot`,
//! `xor`, `hash`, `uint_to_bytes`, `bytes_to_uint64`.

use sha2::{Digest, Sha256};

use super::TransitionError;

/// uint64 arithmetic that fails like the spec's `uint64` instead of wrapping or panicking.
pub trait SafeArith: Sized {
    fn safe_add(self, other: Self) -> Result<Self, TransitionError>;
    fn safe_sub(self, other: Self) -> Result<Self, TransitionError>;
    fn safe_mul(self, other: Self) -> Result<Self, TransitionError>;
    fn safe_div(self, other: Self) -> Result<Self, TransitionError>;
    fn safe_rem(self, other: Self) -> Result<Self, TransitionError>;
}

impl SafeArith for u64 {
    fn safe_add(self, other: u64) -> Result<u64, TransitionError> {
        self.checked_add(other)
            .ok_or(TransitionError::Overflow("addition"))
    }
    fn safe_sub(self, other: u64) -> Result<u64, TransitionError> {
        self.checked_sub(other)
            .ok_or(TransitionError::Overflow("subtraction"))
    }
    fn safe_mul(self, other: u64) -> Result<u64, TransitionError> {
        self.checked_mul(other)
            .ok_or(TransitionError::Overflow("multiplication"))
    }
    fn safe_div(self, other: u64) -> Result<u64, TransitionError> {
        self.checked_div(other)
            .ok_or(TransitionError::Overflow("division by zero"))
    }
    fn safe_rem(self, other: u64) -> Result<u64, TransitionError> {
        self.checked_rem(other)
            .ok_or(TransitionError::Overflow("modulo by zero"))
    }
}

/// The largest `x` with `x * x <= n`.
pub fn integer_squareroot(n: u64) -> u64 {
    if n == u64::MAX {
        return 4_294_967_295;
    }
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

/// Byte-wise exclusive or of two 32-byte strings.
pub fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = a[i] ^ b[i];
    }
    out
}

/// SHA-256 of the concatenation of the parts.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Little-endian 8 bytes.
pub fn uint_to_bytes(n: u64) -> [u8; 8] {
    n.to_le_bytes()
}

/// Little-endian integer of up to 8 bytes.
pub fn bytes_to_uint64(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt() {
        for n in [
            0u64,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let r = integer_squareroot(n);
            assert!((r as u128) * (r as u128) <= n as u128);
            assert!(((r + 1) as u128) * ((r + 1) as u128) > n as u128);
        }
    }
}
