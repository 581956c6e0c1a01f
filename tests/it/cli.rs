//! `quasar tool merkleize` end to end: the right root on every backend, bad input refused
//! with one line and no panic.

use std::path::Path;
use std::process::{Command, Output};

use crate::reference::{self, hex, random_chunks};

fn quasar(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quasar"));
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("running quasar")
}

fn write_chunks(dir: &Path, name: &str, chunks: &[[u8; 32]]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, chunks.as_flattened()).unwrap();
    path.to_str().unwrap().to_string()
}

fn stdout_line(out: &Output) -> String {
    assert!(
        out.status.success(),
        "quasar failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(s.lines().count(), 1, "one line expected, got {s:?}");
    s.trim().to_string()
}

/// A refusal: non-zero exit, exactly one line on stderr starting with `error:`, no panic.
fn assert_refused(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stdout {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err:?}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{err:?} should mention {needle:?}"
    );
    assert!(out.stdout.is_empty());
}

const BACKENDS: [&str; 3] = ["auto", "gpu", "cpu"];

#[test]
fn merkleize_prints_the_root_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (n, limit) in [
        (0usize, None),
        (1, None),
        (3, None),
        (1000, Some(1u64 << 40)),
        (4097, Some(5000)),
        (33, Some(33)),
    ] {
        let chunks = random_chunks(n, 1000 + n as u64);
        let file = write_chunks(dir.path(), &format!("c{n}.bin"), &chunks);
        let expect = format!("0x{}", hex(&reference::merkleize(&chunks, limit)));
        for backend in BACKENDS {
            let mut args = vec!["tool", "merkleize", "--backend", backend];
            let l;
            if let Some(limit) = limit {
                l = limit.to_string();
                args.extend(["--limit", &l]);
            }
            args.push(&file);
            assert_eq!(
                stdout_line(&quasar(&args, &[])),
                expect,
                "{backend}: {n} chunks, limit {limit:?}"
            );
        }
    }
}

#[test]
fn merkleize_a_million_leaves_on_every_backend() {
    // 2^20 leaves (32 MiB), with auto forced onto the GPU so its path runs too.
    let dir = tempfile::tempdir().unwrap();
    let n = 1 << 20;
    let chunks = random_chunks(n, 2024);
    let file = write_chunks(dir.path(), "big.bin", &chunks);
    let expect = format!("0x{}", hex(&reference::merkleize(&chunks, Some(1 << 40))));
    for backend in BACKENDS {
        let out = quasar(
            &[
                "tool",
                "merkleize",
                "--backend",
                backend,
                "--limit",
                "1099511627776",
                &file,
            ],
            &[("QUASAR_GPU_THRESHOLD", "16384")],
        );
        assert_eq!(stdout_line(&out), expect, "{backend}");
    }
}

#[test]
fn bad_input_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.bin");
    std::fs::write(&odd, [1u8; 33]).unwrap();
    let odd = odd.to_str().unwrap();
    for backend in BACKENDS {
        assert_refused(
            &quasar(&["tool", "merkleize", "--backend", backend, odd], &[]),
            "not a multiple of 32",
        );
    }
    let five = write_chunks(dir.path(), "five.bin", &random_chunks(5, 5));
    assert_refused(
        &quasar(&["tool", "merkleize", "--limit", "4", &five], &[]),
        "exceed --limit 4",
    );
    assert_refused(
        &quasar(&["tool", "merkleize", "--limit", "0", &five], &[]),
        "exceed --limit 0",
    );
    let missing = dir.path().join("missing.bin");
    assert_refused(
        &quasar(&["tool", "merkleize", missing.to_str().unwrap()], &[]),
        "missing.bin",
    );
    // A limit that is not a number is clap's refusal: non-zero, no panic.
    let out = quasar(&["tool", "merkleize", "--limit", "lots", &five], &[]);
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn gpu_backend_without_an_adapter_says_so() {
    // Point the Vulkan loader at no driver at all: no adapter can be found.
    let dir = tempfile::tempdir().unwrap();
    let file = write_chunks(dir.path(), "c.bin", &random_chunks(4, 4));
    let no_vulkan = [
        ("VK_DRIVER_FILES", "/nonexistent/none.json"),
        ("VK_ICD_FILENAMES", "/nonexistent/none.json"),
    ];
    let out = quasar(
        &["tool", "merkleize", "--backend", "gpu", &file],
        &no_vulkan,
    );
    assert_refused(&out, "no GPU adapter");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("no GPU adapter").count(), 1, "said once: {err}");
    // auto falls back to the CPU and still prints the right root, even for a big tree.
    let chunks = random_chunks(1 << 15, 15);
    let big = write_chunks(dir.path(), "big.bin", &chunks);
    let expect = format!("0x{}", hex(&reference::merkleize(&chunks, None)));
    let out = quasar(
        &["tool", "merkleize", "--backend", "auto", &big],
        &no_vulkan,
    );
    assert_eq!(stdout_line(&out), expect);
}

/// The minimal-preset ssz_static vectors; missing is a failure.
fn ssz_static_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors/tests/minimal/fulu/ssz_static");
    assert!(
        dir.is_dir(),
        "vector folder {} is missing (../shared/vectors beside the checkout)",
        dir.display()
    );
    dir
}

#[test]
fn hash_tree_root_matches_the_vectors() {
    let dir = ssz_static_dir();
    let tmp = tempfile::tempdir().unwrap();
    for ty in [
        "BeaconState",
        "SignedBeaconBlock",
        "Attestation",
        "Validator",
        "ExecutionPayload",
    ] {
        let case = dir.join(ty).join("ssz_random/case_0");
        let file = case.join("serialized.ssz_snappy");
        let roots = std::fs::read_to_string(case.join("roots.yaml")).unwrap();
        let want = roots
            .split('\'')
            .nth(1)
            .expect("root: '0x…' in roots.yaml")
            .to_string();
        let file = file.to_str().unwrap();
        let got = stdout_line(&quasar(
            &[
                "tool",
                "hash-tree-root",
                "--preset",
                "minimal",
                "--type",
                ty,
                file,
            ],
            &[],
        ));
        assert_eq!(got, want, "{ty} from .ssz_snappy");
        // The same bytes uncompressed, as `.ssz`.
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&std::fs::read(file).unwrap())
            .unwrap();
        let plain = tmp.path().join(format!("{ty}.ssz"));
        std::fs::write(&plain, &raw).unwrap();
        let got = stdout_line(&quasar(
            &[
                "tool",
                "hash-tree-root",
                "--preset",
                "minimal",
                "--type",
                ty,
                plain.to_str().unwrap(),
            ],
            &[],
        ));
        assert_eq!(got, want, "{ty} from .ssz");
        // Truncated: refused in one line.
        let cut = tmp.path().join(format!("{ty}-cut.ssz"));
        std::fs::write(&cut, &raw[..raw.len() / 2]).unwrap();
        assert_refused(
            &quasar(
                &[
                    "tool",
                    "hash-tree-root",
                    "--preset",
                    "minimal",
                    "--type",
                    ty,
                    cut.to_str().unwrap(),
                ],
                &[],
            ),
            "decoding",
        );
    }
    let any = dir.join("Fork/ssz_random/case_0/serialized.ssz_snappy");
    assert_refused(
        &quasar(
            &[
                "tool",
                "hash-tree-root",
                "--preset",
                "minimal",
                "--type",
                "NoSuchType",
                any.to_str().unwrap(),
            ],
            &[],
        ),
        "unknown type",
    );
    let garbage = tmp.path().join("garbage.ssz_snappy");
    std::fs::write(&garbage, [0xffu8; 40]).unwrap();
    assert_refused(
        &quasar(
            &[
                "tool",
                "hash-tree-root",
                "--preset",
                "minimal",
                "--type",
                "Fork",
                garbage.to_str().unwrap(),
            ],
            &[],
        ),
        "snappy",
    );
}

/// `blocks_count` from a case's meta.yaml (`{blocks_count: N, …}`).
fn blocks_count(case: &Path) -> usize {
    let meta = std::fs::read_to_string(case.join("meta.yaml")).unwrap();
    let after = meta
        .split("blocks_count:")
        .nth(1)
        .expect("blocks_count in meta.yaml");
    after
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn transition_reproduces_sanity_blocks_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors/tests/minimal/fulu/sanity/blocks/pyspec_tests");
    assert!(dir.is_dir(), "vector folder {} is missing", dir.display());
    let tmp = tempfile::tempdir().unwrap();
    let (mut valid, mut invalid) = (0, 0);
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let out = tmp.path().join(format!("{name}.ssz"));
        let pre = case.join("pre.ssz_snappy");
        let blocks: Vec<String> = (0..blocks_count(&case))
            .map(|i| {
                case.join(format!("blocks_{i}.ssz_snappy"))
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut args = vec![
            "tool",
            "transition",
            "--preset",
            "minimal",
            "--pre",
            pre.to_str().unwrap(),
        ];
        for b in &blocks {
            args.extend(["--block", b.as_str()]);
        }
        args.extend(["--out", out.to_str().unwrap()]);
        let res = quasar(&args, &[]);
        let post = case.join("post.ssz_snappy");
        if post.exists() {
            let line = stdout_line(&res);
            let want = snap::raw::Decoder::new()
                .decompress_vec(&std::fs::read(&post).unwrap())
                .unwrap();
            let got = std::fs::read(&out).unwrap();
            assert!(
                got == want,
                "{name}: post state differs ({} vs {} bytes)",
                got.len(),
                want.len()
            );
            assert!(line.starts_with("0x") && line.len() == 66, "{name}: {line}");
            valid += 1;
        } else {
            let err = String::from_utf8_lossy(&res.stderr);
            assert!(
                !res.status.success(),
                "{name}: an invalid block was accepted"
            );
            assert!(!err.contains("panicked"), "{name}: {err}");
            assert!(
                err.contains("invalid block") && err.contains("blocks_"),
                "{name}: names the block: {err}"
            );
            assert!(
                !out.exists(),
                "{name}: wrote a post state for an invalid block"
            );
            invalid += 1;
        }
    }
    println!("sanity/blocks through `quasar tool transition`: {valid} valid reproduced, {invalid} invalid refused");
    assert!(
        valid >= 60 && invalid >= 15,
        "{valid} valid, {invalid} invalid cases: the vector tree looks incomplete"
    );
}

#[test]
fn transition_writes_snappy_and_advances_slots() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors/tests/minimal/fulu/sanity/slots/pyspec_tests/slots_1");
    assert!(case.is_dir(), "vector folder {} is missing", case.display());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("post.ssz_snappy");
    let pre = case.join("pre.ssz_snappy");
    // slots.yaml holds the number of slots to advance.
    let n: u64 = std::fs::read_to_string(case.join("slots.yaml"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pre_state = snap::raw::Decoder::new()
        .decompress_vec(&std::fs::read(&pre).unwrap())
        .unwrap();
    // The slot follows genesis_time (8 bytes) and genesis_validators_root (32 bytes).
    let slot = u64::from_le_bytes(pre_state[40..48].try_into().unwrap());
    let target = (slot + n).to_string();
    let line = stdout_line(&quasar(
        &[
            "tool",
            "transition",
            "--preset",
            "minimal",
            "--pre",
            pre.to_str().unwrap(),
            "--slots",
            &target,
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    ));
    let want = std::fs::read(case.join("post.ssz_snappy")).unwrap();
    let want = snap::raw::Decoder::new().decompress_vec(&want).unwrap();
    let got = snap::raw::Decoder::new()
        .decompress_vec(&std::fs::read(&out).unwrap())
        .unwrap();
    assert!(got == want, "post state after {n} slots differs");
    // The printed root is the post state's root, as hash-tree-root computes it.
    let root = stdout_line(&quasar(
        &[
            "tool",
            "hash-tree-root",
            "--preset",
            "minimal",
            "--type",
            "BeaconState",
            out.to_str().unwrap(),
        ],
        &[],
    ));
    assert_eq!(line, root);
    // Going backwards is refused, and nothing is written.
    let back = tmp.path().join("back.ssz");
    assert_refused(
        &quasar(
            &[
                "tool",
                "transition",
                "--preset",
                "minimal",
                "--pre",
                pre.to_str().unwrap(),
                "--slots",
                "0",
                "--out",
                back.to_str().unwrap(),
            ],
            &[],
        ),
        "slot",
    );
    assert!(!back.exists());
}
