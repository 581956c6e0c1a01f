//! Shared memory accounting for the caches, and the `--memory-budget` parser.

use std::sync::atomic::{AtomicU64, Ordering};

/// Byte accounting shared by every cache (wrap it in an `Arc`), with an optional limit.
///
/// Caches [`charge`](Self::charge) what they hold and [`release`](Self::release) what
/// they drop; when [`over_by`](Self::over_by) is non-zero they evict or demote entries.
/// The counters are atomics, so any thread may charge or release.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: Option<u64>,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (`None`: no limit).
    pub fn new(limit: Option<u64>) -> Self {
        MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// A budget without a limit (bytes are still counted).
    pub fn unlimited() -> Self {
        Self::new(None)
    }

    /// Counts `bytes` more as used.
    pub fn charge(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` fewer as used (saturating at zero).
    pub fn release(&self, bytes: u64) {
        // The closure always returns Some, so the update cannot fail.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Bytes currently charged.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// How many bytes over the limit the caches are (0 when under it or unlimited).
    pub fn over_by(&self) -> u64 {
        match self.limit {
            Some(limit) => self.used().saturating_sub(limit),
            None => 0,
        }
    }

    /// Whether the caches are over the limit.
    pub fn is_over(&self) -> bool {
        self.over_by() > 0
    }
}

/// Parses a byte size for `--memory-budget`: a number (fractions allowed) with an
/// optional unit, case-insensitive, optionally separated by spaces.
///
/// Units: `B`; binary `KiB`, `MiB`, `GiB`, `TiB` and their one-letter forms `K`, `M`, `G`,
/// `T` (as in `-Xmx2G`); decimal `KB`, `MB`, `GB`, `TB`. A fractional result is rounded
/// down to whole bytes. Examples: `64MiB`, `1.5GiB`, `512KiB`, `1000000`, `2G`, `100MB`.
pub fn parse_bytes(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(format!(
            "memory size {input:?}: expected a number, e.g. 4GiB"
        ));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "memory size {input:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, K, M, G, T, KB, MB, GB or TB)"
            ))
        }
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(format!(
            "memory size {input:?}: malformed number {number:?}"
        ));
    }
    let too_big = || format!("memory size {input:?}: too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_big)?;
    if !fraction.is_empty() {
        // Up to 12 fractional digits are exact for every multiplier (u128 arithmetic).
        let digits = &fraction[..fraction.len().min(12)];
        let numerator: u128 = digits
            .parse()
            .map_err(|_| format!("memory size {input:?}: malformed number {number:?}"))?;
        let denominator = 10u128.pow(digits.len() as u32);
        let part = numerator * u128::from(multiplier) / denominator;
        bytes = bytes
            .checked_add(u64::try_from(part).map_err(|_| too_big())?)
            .ok_or_else(too_big)?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_sizes() {
        let cases: &[(&str, u64)] = &[
            ("64MiB", 64 << 20),
            ("1.5GiB", 3 << 29),
            ("512KiB", 512 << 10),
            ("1000000", 1_000_000),
            ("2G", 2 << 30),
            ("100MB", 100_000_000),
            ("100mb", 100_000_000),
            (" 4 gib ", 4 << 30),
            ("0", 0),
            ("7B", 7),
            ("0.5K", 512),
            (".25MiB", 1 << 18),
            ("3.", 3),
            ("1TiB", 1 << 40),
            ("2TB", 2_000_000_000_000),
            ("1.0000001KB", 1000),
        ];
        for &(input, want) in cases {
            assert_eq!(parse_bytes(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        for input in [
            "",
            " ",
            "GiB",
            "-1",
            "-1GiB",
            "1.2.3",
            "1.5 XB",
            "12XB",
            "abc",
            "1 G B",
            ".",
            "1e9",
            "99999999999999999999",
            "20000000TiB",
            "0x10",
        ] {
            let got = parse_bytes(input);
            assert!(got.is_err(), "input {input:?} parsed as {got:?}");
        }
    }

    #[test]
    fn budget_accounting() {
        let budget = MemoryBudget::new(Some(100));
        assert_eq!(budget.limit(), Some(100));
        budget.charge(60);
        assert_eq!(budget.over_by(), 0);
        budget.charge(60);
        assert_eq!(budget.used(), 120);
        assert_eq!(budget.over_by(), 20);
        assert!(budget.is_over());
        budget.release(50);
        assert_eq!(budget.over_by(), 0);
        budget.release(1_000);
        assert_eq!(budget.used(), 0, "release saturates at zero");

        let unlimited = MemoryBudget::unlimited();
        unlimited.charge(u64::MAX / 2);
        assert_eq!(unlimited.over_by(), 0);
        assert_eq!(unlimited.limit(), None);
    }
}
