//! Shared machinery of the state-transition vector runners (`operations`,
//! `epoch_processing`, `sanity`): walking `tests/<preset>/fulu/<runner>/<handler>/…`,
//! reading `.ssz_snappy` files and `meta.yaml`, comparing post states, counting, and the
//! rule that a handler folder is either implemented or listed as pending — never skipped.

use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use quasar::bls::sets::ResolvedSet;
use quasar::bls::{parse_pubkey, verify_batch, SignatureSet, Signers};
use quasar::transition::{SignatureChecker, TransitionError};
use quasar::types::ssz::{hash_tree_root, ssz_encode, SszDecode};
use quasar::types::ssz_static::{decompress_snappy, root_hex, MAX_DECOMPRESSED_LEN};
use quasar::types::Preset;

/// `../shared/vectors/tests`, or `$QUASAR_VECTORS/tests`.
pub fn vectors_root() -> PathBuf {
    match std::env::var_os("QUASAR_VECTORS") {
        Some(dir) => PathBuf::from(dir).join("tests"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/tests"),
    }
}

/// The `tests` folder holding `preset`'s vectors: for mainnet, `$QUASAR_MAINNET_VECTORS/tests`
/// when set (the generated mainnet vectors live outside the repository, see
/// `scripts/gen_mainnet_vectors.py`); otherwise [`vectors_root`].
pub fn vectors_root_for(preset: Preset) -> PathBuf {
    match (preset, std::env::var_os("QUASAR_MAINNET_VECTORS")) {
        (Preset::Mainnet, Some(dir)) => PathBuf::from(dir).join("tests"),
        _ => vectors_root(),
    }
}

pub fn runner_dir(preset: Preset, runner: &str) -> PathBuf {
    vectors_root_for(preset)
        .join(preset.name())
        .join("fulu")
        .join(runner)
}

pub fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
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

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads and decodes `<case>/<name>.ssz_snappy`.
pub fn read_ssz<T: SszDecode>(case: &Path, name: &str) -> Result<T, String> {
    let path = case.join(format!("{name}.ssz_snappy"));
    let compressed = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = decompress_snappy(&compressed, MAX_DECOMPRESSED_LEN).map_err(|e| e.to_string())?;
    T::ssz_decode(&bytes).map_err(|e| format!("{name}: {e}"))
}

/// Reads `<case>/<name>.ssz_snappy` if present.
pub fn read_ssz_opt<T: SszDecode>(case: &Path, name: &str) -> Result<Option<T>, String> {
    if case.join(format!("{name}.ssz_snappy")).exists() {
        read_ssz(case, name).map(Some)
    } else {
        Ok(None)
    }
}

/// A `key: value` integer from a small YAML file (`meta.yaml`, `slots.yaml` …).
pub fn yaml_u64(case: &Path, file: &str, key: Option<&str>) -> Result<Option<u64>, String> {
    let path = case.join(file);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(None);
    };
    let text = text.replace(['{', '}'], "\n").replace(',', "\n");
    for line in text.lines() {
        let line = line.trim();
        let value = match key {
            Some(k) => match line
                .strip_prefix(k)
                .and_then(|r| r.trim().strip_prefix(':'))
            {
                Some(v) => v.trim(),
                None => continue,
            },
            None => line,
        };
        if value.is_empty() || value == "..." {
            continue;
        }
        return value
            .parse::<u64>()
            .map(Some)
            .map_err(|e| format!("{}: {line:?}: {e}", path.display()));
    }
    Ok(None)
}

/// A `key: true|false` from a small YAML file.
pub fn yaml_bool(case: &Path, file: &str, key: &str) -> Result<Option<bool>, String> {
    let path = case.join(file);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(None);
    };
    let text = text.replace(['{', '}'], "\n").replace(',', "\n");
    for line in text.lines() {
        if let Some(v) = line
            .trim()
            .strip_prefix(key)
            .and_then(|r| r.trim().strip_prefix(':'))
        {
            return match v.trim() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                other => Err(format!("{}: {key}: {other:?}", path.display())),
            };
        }
    }
    Ok(None)
}

/// The checker a case asks for: `bls_setting: 2` skips signatures, else they are verified.
pub fn checker_for(case: &Path, collect: bool) -> Result<SignatureChecker, String> {
    let setting = yaml_u64(case, "meta.yaml", Some("bls_setting"))?.unwrap_or(0);
    Ok(if setting == 2 {
        SignatureChecker::skip()
    } else if collect {
        SignatureChecker::collect()
    } else {
        SignatureChecker::verify_inline()
    })
}

/// Resolves collected sets against validator pubkeys and verifies them in one batch.
pub fn verify_collected(
    sets: Vec<SignatureSet>,
    pubkey_of: impl Fn(u32) -> Option<[u8; 48]>,
) -> Result<(), String> {
    let mut resolved = Vec::with_capacity(sets.len());
    for set in sets {
        let keys = match set.signers {
            Signers::Pubkeys(k) => k,
            Signers::Indices(idx) => idx
                .iter()
                .map(|&i| {
                    let bytes = pubkey_of(i).ok_or_else(|| format!("unknown validator {i}"))?;
                    parse_pubkey(&bytes).map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, String>>()?,
        };
        let refs: Vec<&blst::min_pk::PublicKey> = keys.iter().collect();
        let agg = blst::min_pk::AggregatePublicKey::aggregate(&refs, false)
            .map_err(|e| format!("aggregate: {e:?}"))?
            .to_public_key();
        resolved.push(ResolvedSet {
            pubkey: agg,
            signing_root: set.signing_root,
            signature: set.signature.parse().map_err(|e| e.to_string())?,
        });
    }
    let refs: Vec<&ResolvedSet> = resolved.iter().collect();
    if verify_batch(&refs) {
        Ok(())
    } else {
        Err("batch signature verification failed".into())
    }
}

/// Compares a computed post state with the expected one, byte for byte.
pub fn compare_states<T>(got: &T, expected: &T) -> Result<(), String>
where
    T: ssz_rs::SimpleSerialize + Clone,
{
    let a = ssz_encode(got).map_err(|e| e.to_string())?;
    let b = ssz_encode(expected).map_err(|e| e.to_string())?;
    if a == b {
        return Ok(());
    }
    let ra = hash_tree_root(&mut got.clone()).map_err(|e| e.to_string())?;
    let rb = hash_tree_root(&mut expected.clone()).map_err(|e| e.to_string())?;
    let at = a.iter().zip(&b).position(|(x, y)| x != y);
    Err(format!(
        "post state differs: root {} vs expected {}, {} vs {} bytes, first difference at byte {at:?}",
        root_hex(&ra),
        root_hex(&rb),
        a.len(),
        b.len()
    ))
}

/// The outcome of applying a step: the case passes when it succeeds and a post state is
/// given and equal, or when it fails and no post state is given.
pub fn judge<T>(
    result: Result<(), TransitionError>,
    got: &T,
    expected: Option<&T>,
) -> Result<(), String>
where
    T: ssz_rs::SimpleSerialize + Clone,
{
    match (result, expected) {
        (Ok(()), Some(post)) => compare_states(got, post),
        (Err(e), Some(_)) => Err(format!("failed but a post state was expected: {e}")),
        (Ok(()), None) => Err("succeeded but the step must fail (no post state)".into()),
        (Err(_), None) => Ok(()),
    }
}

/// A handler's case function.
pub type CaseFn = fn(&Path) -> Result<(), String>;

#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
}

/// Runs every handler folder of `<preset>/fulu/<runner>`: implemented handlers (all cases
/// must pass), pending ones (printed with their reason), and any other folder (a failure).
/// Returns the failures.
pub fn run_runner(
    preset: Preset,
    runner: &str,
    handlers: &[(&str, CaseFn)],
    pending: &[(&str, &str)],
) -> Vec<String> {
    let dir = runner_dir(preset, runner);
    if !dir.is_dir() {
        return vec![format!(
            "FAILURE: vector folder {} is missing",
            dir.display()
        )];
    }
    let handler_dirs = match sorted_subdirs(&dir) {
        Ok(d) => d,
        Err(e) => return vec![e],
    };
    if handler_dirs.is_empty() {
        return vec![format!(
            "FAILURE: {} holds no handler folders",
            dir.display()
        )];
    }
    let mut failures = Vec::new();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for (name, _) in handlers {
        if !dir.join(name).is_dir() {
            failures.push(format!("{runner}/{name}: vector folder missing"));
        }
    }
    for hdir in &handler_dirs {
        let handler = file_name(hdir);
        let Some((_, case_fn)) = handlers.iter().find(|(n, _)| *n == handler) else {
            match pending.iter().find(|(n, _)| *n == handler) {
                Some((_, why)) => println!("{runner} {preset} {handler}: PENDING ({why})"),
                None => failures.push(format!(
                    "{runner}/{handler}: in {} but neither implemented nor listed in PENDING",
                    dir.display()
                )),
            }
            continue;
        };
        let c = counts.entry(handler.clone()).or_default();
        let suites = match sorted_subdirs(hdir) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for suite in suites {
            let cases = match sorted_subdirs(&suite) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            for case in cases {
                let case_name = file_name(&case);
                if let Some((_, why)) = pending
                    .iter()
                    .find(|(n, _)| *n == format!("{handler}/{case_name}"))
                {
                    println!("{runner} {preset} {handler}/{case_name}: PENDING ({why})");
                    continue;
                }
                let outcome = catch_unwind(AssertUnwindSafe(|| case_fn(&case)))
                    .unwrap_or_else(|_| Err("PANIC".to_string()));
                match outcome {
                    Ok(()) => c.passed += 1,
                    Err(e) => {
                        c.failed += 1;
                        failures.push(format!("{runner}/{handler}/{case_name}: {e}"));
                    }
                }
            }
        }
    }
    for (handler, c) in &counts {
        println!(
            "{runner} {preset} {handler}: {} passed, {} failed",
            c.passed, c.failed
        );
    }
    failures
}

/// Panics with every failure listed (the test's verdict).
pub fn assert_no_failures(runner: &str, failures: &[String]) {
    if !failures.is_empty() {
        for f in failures {
            println!("FAIL {f}");
        }
        panic!("{runner}: {} failure(s)", failures.len());
    }
}
