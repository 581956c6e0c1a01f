//! `ssz_static` conformance: for every case under
//! `tests/<preset>/fulu/ssz_static/<Type>/<suite>/<case>/`, decompress
//! `serialized.ssz_snappy`, decode it as the type, encode it again byte for byte and
//! check its hash tree root against `roots.yaml`. A missing vector folder, a type in
//! the folder that is neither implemented nor listed in [`PENDING`], and any failing
//! case of an implemented type fail the run.
//!
//! Plus negative tests: truncated, extended and random bytes decode to an error (or,
//! where they happen to be a valid encoding, to a value that re-encodes to exactly the
//! same bytes), never to a panic.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use quasar::types::ssz_static::{
    self, decompress_snappy, root_hex, MAX_DECOMPRESSED_LEN, TYPE_NAMES,
};
use quasar::types::{Preset, TypeError};

/// Types of the vectors' `ssz_static` folder that the dispatch does not implement yet,
/// with the reason. Printed by the runner.
const PENDING: &[(&str, &str)] = &[];

/// `<root>/<preset>/fulu/ssz_static`; mainnet honours `$QUASAR_MAINNET_VECTORS`
/// (see `spec_runner::vectors_root_for`).
fn ssz_static_dir(preset: Preset) -> PathBuf {
    super::spec_runner::runner_dir(preset, "ssz_static")
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `root` of a `roots.yaml` (`root: '0x…'` or `{root: '0x…'}`).
fn parse_root(yaml: &str) -> Result<String, String> {
    let line = yaml
        .lines()
        .find(|l| l.contains("root"))
        .ok_or_else(|| format!("no `root` in roots.yaml: {yaml:?}"))?;
    let start = line
        .find("0x")
        .ok_or_else(|| format!("no 0x value in {line:?}"))?;
    let hex: String = line[start..].chars().take(66).collect();
    if hex.len() != 66 || !hex[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("malformed root in {line:?}"));
    }
    Ok(hex.to_ascii_lowercase())
}

fn run_case(preset: Preset, type_name: &str, case: &Path) -> Result<(), String> {
    let compressed = fs::read(case.join("serialized.ssz_snappy"))
        .map_err(|e| format!("serialized.ssz_snappy: {e}"))?;
    let yaml =
        fs::read_to_string(case.join("roots.yaml")).map_err(|e| format!("roots.yaml: {e}"))?;
    let expected = parse_root(&yaml)?;
    let bytes = decompress_snappy(&compressed, MAX_DECOMPRESSED_LEN).map_err(|e| e.to_string())?;
    let rt = ssz_static::roundtrip(preset, type_name, &bytes).map_err(|e| e.to_string())?;
    if rt.encoded != bytes {
        let at = rt.encoded.iter().zip(&bytes).position(|(a, b)| a != b);
        return Err(format!(
            "re-encoding differs: {} bytes in, {} bytes out, first difference at {at:?}",
            bytes.len(),
            rt.encoded.len()
        ));
    }
    let got = root_hex(&rt.root);
    if got != expected {
        return Err(format!("root {got}, expected {expected}"));
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
}

/// Runs every case of `preset`; returns the failures (empty when all pass).
pub(super) fn run_preset(preset: Preset) -> Vec<String> {
    let dir = ssz_static_dir(preset);
    if !dir.is_dir() {
        return vec![format!(
            "FAILURE: vector folder {} is missing (ssz_static needs the {preset} vectors; see ../shared/vectors/README.md)",
            dir.display()
        )];
    }
    let type_dirs = match sorted_subdirs(&dir) {
        Ok(d) => d,
        Err(e) => return vec![e],
    };
    if type_dirs.is_empty() {
        return vec![format!("FAILURE: {} holds no type folders", dir.display())];
    }
    let mut failures = Vec::new();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for type_dir in &type_dirs {
        let type_name = file_name(type_dir);
        if !ssz_static::is_known_type(&type_name) {
            match PENDING.iter().find(|(name, _)| *name == type_name) {
                Some((_, why)) => println!("ssz_static {preset} {type_name}: PENDING ({why})"),
                None => failures.push(format!(
                    "{type_name}: in {} but neither implemented nor listed in PENDING",
                    dir.display()
                )),
            }
            continue;
        }
        let c = counts.entry(type_name.clone()).or_default();
        let suites = match sorted_subdirs(type_dir) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for suite in suites {
            let cases = match sorted_subdirs(&suite) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            for case in cases {
                match run_case(preset, &type_name, &case) {
                    Ok(()) => c.passed += 1,
                    Err(e) => {
                        c.failed += 1;
                        failures.push(format!(
                            "{type_name}/{}/{}: {e}",
                            file_name(&suite),
                            file_name(&case)
                        ));
                    }
                }
            }
        }
        if c.passed + c.failed == 0 {
            failures.push(format!("{type_name}: no cases in {}", type_dir.display()));
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, c) in &counts {
        println!(
            "ssz_static {preset} {name:<32} passed {:>4} failed {:>4}",
            c.passed, c.failed
        );
        passed += c.passed;
        failed += c.failed;
    }
    println!(
        "ssz_static {preset}: {} types, {passed} cases passed, {failed} failed, {} pending",
        counts.len(),
        PENDING.len()
    );
    // Types the dispatch knows but the folder lacks are worth a line too.
    for name in TYPE_NAMES {
        if !type_dirs.iter().any(|d| file_name(d) == *name) {
            println!("ssz_static {preset} {name}: implemented, no vectors in the folder");
        }
    }
    failures
}

pub(super) fn assert_no_failures(preset: Preset, failures: Vec<String>) {
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(40).collect();
        panic!(
            "ssz_static {preset}: {} failure(s):\n  {}",
            failures.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

#[test]
fn ssz_static_minimal() {
    let failures = run_preset(Preset::Minimal);
    assert_no_failures(Preset::Minimal, failures);
}

/// The mainnet vectors are generated with the PyPI spec and kept out of the repository;
/// run with `QUASAR_VECTORS=<dir> cargo test --release --test it ssz_static -- --ignored`.
/// A missing folder fails.
#[test]
#[ignore = "needs generated mainnet vectors (see ../shared/vectors/README.md); a missing folder fails"]
fn ssz_static_mainnet() {
    let failures = run_preset(Preset::Mainnet);
    assert_no_failures(Preset::Mainnet, failures);
}

#[test]
fn ssz_static_pending_list_is_not_stale() {
    // A PENDING entry for a type that is implemented or absent is stale.
    for (name, _) in PENDING {
        assert!(
            !ssz_static::is_known_type(name),
            "{name} is implemented; drop it from PENDING"
        );
    }
}

/// Deterministic bytes for the garbage tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Decodes `bytes`; a success must be canonical (re-encode to the same bytes).
fn decode_never_panics(preset: Preset, type_name: &str, bytes: &[u8]) -> bool {
    match ssz_static::roundtrip(preset, type_name, bytes) {
        Ok(rt) => {
            assert_eq!(
                rt.encoded,
                bytes,
                "{type_name}: accepted {} bytes that are not the canonical encoding",
                bytes.len()
            );
            true
        }
        Err(TypeError::Decode { .. }) => false,
        Err(e) => panic!("{type_name}: unexpected error kind {e}"),
    }
}

/// One valid encoding per type from the minimal vectors.
fn sample_encodings() -> Vec<(String, Vec<u8>)> {
    let dir = ssz_static_dir(Preset::Minimal);
    assert!(dir.is_dir(), "vector folder {} is missing", dir.display());
    let mut out = Vec::new();
    for name in TYPE_NAMES {
        let case = dir.join(name).join("ssz_random").join("case_0");
        let compressed = fs::read(case.join("serialized.ssz_snappy"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let bytes =
            decompress_snappy(&compressed, MAX_DECOMPRESSED_LEN).expect("vector decompresses");
        out.push((name.to_string(), bytes));
    }
    out
}

#[test]
fn ssz_static_truncated_and_garbage_bytes_are_errors_not_panics() {
    let preset = Preset::Minimal;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for (name, bytes) in sample_encodings() {
        // The empty input is never a container.
        assert!(
            !decode_never_panics(preset, &name, &[]),
            "{name}: empty input decoded"
        );
        // Truncations: every length for small encodings, a spread for large ones.
        let step = (bytes.len() / 256).max(1);
        for len in (0..bytes.len()).step_by(step) {
            decode_never_panics(preset, &name, &bytes[..len]);
        }
        // One byte more: an error, or a canonical encoding whose last field absorbed it.
        let mut longer = bytes.clone();
        longer.push(0xff);
        decode_never_panics(preset, &name, &longer);
        // Random bytes of assorted lengths, and the valid encoding with random bytes
        // overwritten (offsets included).
        for len in [1, 3, 4, 7, 8, 31, 32, 33, 64, 100, 255, 1000, bytes.len()] {
            let garbage = rng.bytes(len);
            decode_never_panics(preset, &name, &garbage);
        }
        for _ in 0..200 {
            let mut corrupt = bytes.clone();
            if corrupt.is_empty() {
                break;
            }
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % corrupt.len();
                corrupt[at] = rng.next() as u8;
            }
            decode_never_panics(preset, &name, &corrupt);
        }
        // Large offsets at the front of the fixed part (where most offsets live).
        for at in (0..bytes.len().min(64)).step_by(4) {
            for value in [u32::MAX, bytes.len() as u32 + 1, 0, 3] {
                let mut corrupt = bytes.clone();
                if at + 4 <= corrupt.len() {
                    corrupt[at..at + 4].copy_from_slice(&value.to_le_bytes());
                    decode_never_panics(preset, &name, &corrupt);
                }
            }
        }
    }
}

#[test]
fn ssz_static_fixed_size_truncation_is_an_error() {
    // Types without variable-size fields: any shorter input is an error.
    let preset = Preset::Minimal;
    let samples = sample_encodings();
    for name in [
        "Fork",
        "Checkpoint",
        "AttestationData",
        "Validator",
        "BeaconBlockHeader",
        "Deposit",
        "SyncCommittee",
        "MatrixEntry",
    ] {
        let bytes = &samples.iter().find(|(n, _)| n == name).expect("sample").1;
        for len in 0..bytes.len() {
            assert!(
                !decode_never_panics(preset, name, &bytes[..len]),
                "{name}: {len} of {} bytes decoded",
                bytes.len()
            );
        }
    }
}

#[test]
fn ssz_static_unknown_type_and_preset_are_errors() {
    assert!(matches!(
        ssz_static::decode_and_root(Preset::Minimal, "NoSuchType", &[0; 8]),
        Err(TypeError::UnknownType(_))
    ));
    assert!("testnet".parse::<Preset>().is_err());
    assert_eq!("mainnet".parse::<Preset>().ok(), Some(Preset::Mainnet));
    assert!(decompress_snappy(&[0xff, 0xff, 0xff, 0xff, 0x0f], 1 << 20).is_err());
}
