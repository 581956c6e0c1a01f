//! `block_id` and `state_id` of the Beacon API, and the query strings: parsed strictly, a
//! malformed one is a 400 (never a panic).

use super::error::ApiError;

pub type Root = [u8; 32];

/// A `block_id` or a `state_id`: `head`, `genesis`, `finalized`, `justified`, a decimal
/// slot, or a `0x`-prefixed 32-byte root (a block root for blocks, a state root for states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    Head,
    Genesis,
    Finalized,
    Justified,
    Slot(u64),
    Root(Root),
}

impl Id {
    pub fn parse(s: &str, what: &str) -> Result<Self, ApiError> {
        match s {
            "head" => Ok(Id::Head),
            "genesis" => Ok(Id::Genesis),
            "finalized" => Ok(Id::Finalized),
            "justified" => Ok(Id::Justified),
            _ if s.starts_with("0x") => parse_root(s)
                .map(Id::Root)
                .ok_or_else(|| ApiError::bad(format!("invalid {what}: {s}"))),
            _ => parse_u64(s)
                .map(Id::Slot)
                .ok_or_else(|| ApiError::bad(format!("invalid {what}: {s}"))),
        }
    }
}

/// A decimal u64 (digits only: no sign, no spaces, no overflow).
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `0x` and exactly `2 * N` hex digits.
pub fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let hex = s.strip_prefix("0x")?;
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

pub fn parse_root(s: &str) -> Option<Root> {
    parse_hex::<32>(s)
}

/// `0x` and lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The pairs of a query string, percent-decoded (`+` is a space), in order; repeated keys
/// stay repeated. A malformed escape or non-UTF-8 text is a 400.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad("malformed percent-escape in the query"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad("the query is not UTF-8"))
}

/// Every value of `key`, each split on commas (`id=1,2&id=3` → 1, 2, 3), empty items dropped.
pub fn values_of<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_strictly() {
        assert_eq!(Id::parse("head", "block_id"), Ok(Id::Head));
        assert_eq!(Id::parse("12", "block_id"), Ok(Id::Slot(12)));
        assert_eq!(
            Id::parse(&format!("0x{}", "0a".repeat(32)), "block_id"),
            Ok(Id::Root([10; 32]))
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1 ",
            "0x",
            "0x12",
            "18446744073709551616",
            "Head",
            "0xzz",
        ] {
            assert!(
                matches!(Id::parse(bad, "block_id"), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert!(parse_root(&format!("0x{}", "g0".repeat(32))).is_none());
    }

    #[test]
    fn queries_decode() {
        let pairs = query_pairs(Some("id=1%2C2&id=3&status=active+x")).unwrap();
        assert_eq!(values_of(&pairs, "id"), vec!["1", "2", "3"]);
        assert_eq!(values_of(&pairs, "status"), vec!["active x"]);
        assert!(query_pairs(Some("id=%zz")).is_err());
        assert!(query_pairs(Some("id=%ff")).is_err());
    }
}
