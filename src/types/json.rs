//! The Beacon API's JSON of SSZ values (`ethereum/beacon-APIs`, `types/`), one serializer
//! for every container: unsigned integers as decimal strings, byte vectors and byte lists
//! as `0x`-hex, bitlists and bitvectors as the `0x`-hex of their SSZ bytes, booleans as
//! JSON booleans, lists and vectors of other types as arrays, containers as objects with
//! the spec's field names in the spec's order.
//!
//! Every container declared with [`ssz_container!`](crate::ssz_container) implements
//! [`ApiJson`]. The spec tells a `byte` from a `uint8`; the Rust types do not (both are
//! `u8`), so a list of `u8` is written as bytes (hex: `ExtraData`, `Transaction`) except in
//! the fields named in [`UINT8_LIST_FIELDS`] (the participation flags, `List[uint8, N]`),
//! written as arrays of decimal strings.

use std::fmt::Write as _;

use ssz_rs::{Bitlist, Bitvector, List, Serialize, Vector, U256};

use super::ssz::ByteVector;

/// Container fields of type `List[uint8, N]` (`ParticipationFlags`), not byte lists.
pub const UINT8_LIST_FIELDS: &[&str] = &[
    "previous_epoch_participation",
    "current_epoch_participation",
];

/// A value's Beacon API JSON, written into `out`.
pub trait ApiJson {
    fn write_json(&self, out: &mut String);

    /// As [`write_json`](Self::write_json), but a list of `u8` as an array of decimal
    /// strings (a `List[uint8, N]`; see [`UINT8_LIST_FIELDS`]).
    fn write_json_uints(&self, out: &mut String) {
        self.write_json(out)
    }

    /// A sequence of these values (a list's or a vector's elements): a JSON array, except
    /// for bytes (hex).
    fn write_seq(items: &[Self], out: &mut String)
    where
        Self: Sized,
    {
        write_array(items, out)
    }

    /// The JSON as a string.
    fn to_api_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }
}

fn write_array<T: ApiJson>(items: &[T], out: &mut String) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item.write_json(out);
    }
    out.push(']');
}

/// `0x` and the lowercase hex of `bytes`.
pub fn write_hex(bytes: &[u8], out: &mut String) {
    out.push_str("\"0x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push('"');
}

/// A JSON string literal with the escapes JSON needs (for container field names and
/// other text).
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

macro_rules! uint_json {
    ($($t:ty),*) => {$(
        impl ApiJson for $t {
            fn write_json(&self, out: &mut String) {
                let _ = write!(out, "\"{self}\"");
            }
        }
    )*};
}
uint_json!(u16, u32, u64, u128);

impl ApiJson for u8 {
    fn write_json(&self, out: &mut String) {
        let _ = write!(out, "\"{self}\"");
    }

    fn write_seq(items: &[Self], out: &mut String) {
        write_hex(items, out)
    }
}

impl ApiJson for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl<const N: usize> ApiJson for ByteVector<N> {
    fn write_json(&self, out: &mut String) {
        write_hex(self.as_ref(), out)
    }
}

impl<T: ApiJson + ssz_rs::SimpleSerialize, const N: usize> ApiJson for List<T, N> {
    fn write_json(&self, out: &mut String) {
        T::write_seq(self, out)
    }

    fn write_json_uints(&self, out: &mut String) {
        write_array(self, out)
    }
}

impl<T: ApiJson + ssz_rs::SimpleSerialize, const N: usize> ApiJson for Vector<T, N> {
    fn write_json(&self, out: &mut String) {
        T::write_seq(self, out)
    }

    fn write_json_uints(&self, out: &mut String) {
        write_array(self, out)
    }
}

fn write_ssz_hex<T: Serialize>(value: &T, out: &mut String) {
    let mut bytes = Vec::new();
    match value.serialize(&mut bytes) {
        Ok(_) => write_hex(&bytes, out),
        // Only an over-long list fails to serialize; a bitfield of a decoded value never is.
        Err(_) => out.push_str("null"),
    }
}

impl<const N: usize> ApiJson for Bitlist<N> {
    fn write_json(&self, out: &mut String) {
        write_ssz_hex(self, out)
    }
}

impl<const N: usize> ApiJson for Bitvector<N> {
    fn write_json(&self, out: &mut String) {
        write_ssz_hex(self, out)
    }
}

impl ApiJson for U256 {
    fn write_json(&self, out: &mut String) {
        let le = self.to_bytes_le();
        let mut limbs = [0u64; 4];
        for (i, b) in le.iter().take(32).enumerate() {
            limbs[i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        let _ = write!(out, "\"{}\"", u256_decimal(limbs));
    }
}

/// The decimal digits of a 256-bit number given as little-endian 64-bit limbs.
fn u256_decimal(mut limbs: [u64; 4]) -> String {
    if limbs == [0; 4] {
        return "0".into();
    }
    let mut digits = Vec::new();
    while limbs != [0; 4] {
        // Divide by 10^19 (the largest power of ten in a u64), most significant limb first.
        const BASE: u128 = 10_000_000_000_000_000_000;
        let mut rem: u128 = 0;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*limb);
            *limb = (cur / BASE) as u64;
            rem = cur % BASE;
        }
        digits.push(rem as u64);
    }
    let mut s = digits.pop().map(|d| d.to_string()).unwrap_or_default();
    for d in digits.iter().rev() {
        let _ = write!(s, "{d:019}");
    }
    s
}

/// One container field, `"name":value` (a comma before it unless `first`); used by
/// [`ssz_container!`](crate::ssz_container).
pub fn write_field<T: ApiJson>(name: &str, value: &T, first: bool, out: &mut String) {
    if !first {
        out.push(',');
    }
    write_str(name, out);
    out.push(':');
    if UINT8_LIST_FIELDS.contains(&name) {
        value.write_json_uints(out)
    } else {
        value.write_json(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::common::{Checkpoint, Fork};
    use crate::types::primitives::ExtraData;

    #[test]
    fn uints_are_decimal_strings_and_bytes_hex() {
        let cp = Checkpoint {
            epoch: u64::MAX,
            root: ByteVector([0xab; 32]),
        };
        let json: serde_json::Value = serde_json::from_str(&cp.to_api_json()).unwrap();
        assert_eq!(json["epoch"], "18446744073709551615");
        assert_eq!(json["root"], format!("0x{}", "ab".repeat(32)));
        let fork = Fork {
            previous_version: ByteVector([1, 2, 3, 4]),
            current_version: ByteVector([5, 6, 7, 8]),
            epoch: 9,
        };
        assert_eq!(
            fork.to_api_json(),
            r#"{"previous_version":"0x01020304","current_version":"0x05060708","epoch":"9"}"#
        );
        let extra = ExtraData::try_from(vec![0xde, 0xad]).unwrap();
        assert_eq!(extra.to_api_json(), "\"0xdead\"");
        let flags = List::<u8, 8>::try_from(vec![7, 0]).unwrap();
        let mut out = String::new();
        write_field("current_epoch_participation", &flags, true, &mut out);
        assert_eq!(out, r#""current_epoch_participation":["7","0"]"#);
        let words = List::<u64, 8>::try_from(vec![1, 2]).unwrap();
        assert_eq!(words.to_api_json(), r#"["1","2"]"#);
    }

    #[test]
    fn u256_is_decimal() {
        assert_eq!(U256::from(0u64).to_api_json(), "\"0\"");
        assert_eq!(U256::from(7u64).to_api_json(), "\"7\"");
        assert_eq!(
            U256::from_bytes_le([0xff; 32]).to_api_json(),
            "\"115792089237316195423570985008687907853269984665640564039457584007913129639935\""
        );
        let mut le = [0u8; 32];
        le[8] = 1; // 2^64
        assert_eq!(
            U256::from_bytes_le(le).to_api_json(),
            "\"18446744073709551616\""
        );
    }

    #[test]
    fn bitfields_are_ssz_hex() {
        let bits = Bitlist::<16>::try_from([true, false, false].as_slice()).unwrap();
        // SSZ: bits 0..3 then the length bit at 3: 0b1001.
        assert_eq!(bits.to_api_json(), "\"0x09\"");
    }
}
