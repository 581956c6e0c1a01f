//! `quasar tool aggregate-pubkeys` and `quasar tool verify-batch` end to end, on both
//! backends, against plain blst; garbage refused per line without a panic.

use std::process::{Command, Output};

use blst::min_pk::{AggregatePublicKey, PublicKey, SecretKey, Signature};

const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

fn quasar(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_quasar"))
        .args(args)
        .output()
        .expect("running quasar");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "panic: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn hex(b: &[u8]) -> String {
    let s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("0x{s}")
}

fn keys(n: usize, seed: u8) -> Vec<SecretKey> {
    (0..n)
        .map(|i| {
            let mut ikm = [seed; 32];
            ikm[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SecretKey::key_gen(&ikm, &[]).unwrap()
        })
        .collect()
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn aggregate_pubkeys_matches_blst_on_both_backends() {
    let sks = keys(300, 1);
    let pks: Vec<PublicKey> = sks.iter().map(|s| s.sk_to_pk()).collect();
    let mut rng = 12345u64;
    let mut next = move |m: usize| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) as usize % m
    };
    // Sets of several sizes, with repeats of the same key.
    let sets: Vec<Vec<usize>> = [1usize, 2, 3, 17, 100, 299, 1000]
        .iter()
        .map(|&n| (0..n).map(|_| next(pks.len())).collect())
        .collect();
    let mut text = String::new();
    let mut expect = Vec::new();
    for set in &sets {
        let refs: Vec<&PublicKey> = set.iter().map(|&i| &pks[i]).collect();
        expect.push(hex(&AggregatePublicKey::aggregate(&refs, false)
            .unwrap()
            .to_public_key()
            .compress()));
        // `0x` optional, any whitespace.
        let toks: Vec<String> = set
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                if j % 2 == 0 {
                    hex(&pks[i].compress())
                } else {
                    hex(&pks[i].compress())[2..].to_string()
                }
            })
            .collect();
        text.push_str(&toks.join(" \t "));
        text.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sets.txt");
    std::fs::write(&file, &text).unwrap();
    for backend in ["cpu", "gpu", "auto"] {
        let out = quasar(&[
            "tool",
            "aggregate-pubkeys",
            "--backend",
            backend,
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(lines(&out), expect, "{backend}");
    }
}

#[test]
fn aggregate_pubkeys_rejects_garbage_per_line() {
    let pks: Vec<PublicKey> = keys(4, 2).iter().map(|s| s.sk_to_pk()).collect();
    let good = hex(&pks[0].compress());
    let neg_pair = {
        // P and -P: flip the compressed sign bit of the same x.
        let mut neg = pks[1].compress();
        neg[0] ^= 0x20;
        format!("{} {}", hex(&pks[1].compress()), hex(&neg))
    };
    let mut not_on_curve = pks[2].compress();
    not_on_curve[47] ^= 1;
    let mut infinity = [0u8; 48];
    infinity[0] = 0xc0;
    let text = [
        good.clone(),             // valid
        "0x1234".into(),          // too short
        "zz".repeat(48),          // not hex
        hex(&not_on_curve),       // not on the curve (most likely) or not in G1
        hex(&infinity),           // infinity pubkey
        neg_pair,                 // aggregate at infinity
        String::new(),            // empty set
        format!("{good} {good}"), // a duplicate: valid (2P)
    ]
    .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.txt");
    std::fs::write(&file, &text).unwrap();
    for backend in ["cpu", "gpu"] {
        let out = quasar(&[
            "tool",
            "aggregate-pubkeys",
            "--backend",
            backend,
            file.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{backend}");
        let l = lines(&out);
        assert_eq!(l.len(), 8, "{backend}: {l:?}");
        assert_eq!(l[0], good);
        for (i, want) in [
            (1, "48"),
            (2, "hex"),
            (3, "key 1"),
            (4, "infinity"),
            (5, "infinity"),
            (6, "empty"),
        ] {
            assert!(
                l[i].starts_with("error: ") && l[i].contains(want),
                "{backend}: line {}: {:?} should say {want}",
                i + 1,
                l[i]
            );
        }
        let two = AggregatePublicKey::aggregate(&[&pks[0], &pks[0]], false)
            .unwrap()
            .to_public_key();
        assert_eq!(l[7], hex(&two.compress()));
    }
}

#[test]
fn verify_batch_names_exactly_the_invalid_lines() {
    let sks = keys(64, 3);
    let pks: Vec<PublicKey> = sks.iter().map(|s| s.sk_to_pk()).collect();
    let mut text = Vec::new();
    let mut expect = Vec::new();
    for i in 0..24usize {
        let signers: Vec<usize> = (0..1 + i % 7).map(|j| (i * 5 + j * 3) % 64).collect();
        // Some lines share a message, so the grouped path runs too.
        let mut msg = [0u8; 32];
        msg[0] = (i % 5) as u8;
        let sigs: Vec<Signature> = signers
            .iter()
            .map(|&s| sks[s].sign(&msg, DST, &[]))
            .collect();
        let sig_refs: Vec<&Signature> = sigs.iter().collect();
        let mut agg = blst::min_pk::AggregateSignature::aggregate(&sig_refs, false)
            .unwrap()
            .to_signature();
        let mut valid = true;
        if i == 5 || i == 17 {
            // Signed by someone else: a valid signature on the curve that does not verify.
            agg = sks[63].sign(&msg, DST, &[]);
            valid = false;
        }
        let pk_list: Vec<String> = signers.iter().map(|&s| hex(&pks[s].compress())).collect();
        text.push(format!(
            "{} {} {}",
            pk_list.join(","),
            hex(&msg),
            hex(&agg.compress())
        ));
        expect.push(if valid { "valid" } else { "invalid" });
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.txt");
    std::fs::write(&file, text.join("\n")).unwrap();
    for backend in ["cpu", "gpu"] {
        let out = quasar(&[
            "tool",
            "verify-batch",
            "--backend",
            backend,
            file.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{backend}");
        assert_eq!(lines(&out), expect, "{backend}");
    }
    // All valid: exit 0.
    let valid: Vec<&String> = text
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5 && *i != 17)
        .map(|(_, l)| l)
        .collect();
    let all = dir.path().join("valid.txt");
    std::fs::write(
        &all,
        valid
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = quasar(&[
        "tool",
        "verify-batch",
        "--backend",
        "cpu",
        all.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lines(&out).iter().all(|l| l == "valid"));
    // Garbage lines are invalid, never a panic.
    let junk = dir.path().join("junk.txt");
    std::fs::write(
        &junk,
        format!("nonsense\n{} 0x00 0x00\n\n{}", text[0], "a b c"),
    )
    .unwrap();
    let out = quasar(&["tool", "verify-batch", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out), ["invalid", "invalid", "invalid", "invalid"]);
}
