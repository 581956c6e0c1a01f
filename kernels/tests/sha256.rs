//! Every kernel against the `sha2` crate.

use quasar_kernels::sha256::{hash_blocks, hash_blocks_auto, Kernel};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

const COUNTS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 63, 64, 65,
    100, 127, 128, 129, 255, 256, 257, 1000, 1023, 4097,
];

fn reference(input: &[[u8; 64]]) -> Vec<[u8; 32]> {
    input.iter().map(|b| Sha256::digest(b).into()).collect()
}

fn random_blocks(rng: &mut impl Rng, n: usize) -> Vec<[u8; 64]> {
    (0..n)
        .map(|_| {
            let mut b = [0u8; 64];
            rng.fill(&mut b[..]);
            b
        })
        .collect()
}

fn check(kernel: Kernel, input: &[[u8; 64]], what: &str) {
    // Pre-fill the output with junk so that unwritten digests are caught.
    let mut out = vec![[0x5au8; 32]; input.len()];
    hash_blocks(kernel, input, &mut out);
    let want = reference(input);
    for (i, (got, want)) in out.iter().zip(&want).enumerate() {
        assert_eq!(
            got,
            want,
            "{}: {what}, n={}, block {i}",
            kernel.name(),
            input.len()
        );
    }
}

/// Runs `f` for each kernel available on this CPU, reporting the skipped ones.
fn for_each_kernel(mut f: impl FnMut(Kernel)) {
    for kernel in Kernel::ALL {
        if kernel.is_available() {
            f(kernel);
        } else {
            eprintln!(
                "kernel {} not available on this CPU: skipped",
                kernel.name()
            );
        }
    }
}

#[test]
fn random_inputs_all_counts() {
    for_each_kernel(|kernel| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0000 + kernel as u64);
        for &n in COUNTS {
            let input = random_blocks(&mut rng, n);
            check(kernel, &input, "random");
        }
    });
}

#[test]
fn every_count_up_to_70() {
    for_each_kernel(|kernel| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(70);
        let input = random_blocks(&mut rng, 70);
        for n in 0..=70 {
            check(kernel, &input[..n], "random prefix");
        }
    });
}

#[test]
fn edge_patterns() {
    let patterns: Vec<(&str, [u8; 64])> = vec![
        ("zeros", [0u8; 64]),
        ("ones", [0xffu8; 64]),
        ("0x80", [0x80u8; 64]),
        ("0x01", [0x01u8; 64]),
        ("ramp", core::array::from_fn(|i| i as u8)),
    ];
    for_each_kernel(|kernel| {
        for (name, block) in &patterns {
            for n in [1usize, 7, 8, 9, 16, 17, 33] {
                check(kernel, &vec![*block; n], name);
            }
        }
        // Single distinct block at every lane position among zero blocks.
        for pos in 0..33 {
            let mut input = vec![[0u8; 64]; 33];
            input[pos] = [0xff; 64];
            check(kernel, &input, "one 0xff block among zeros");
        }
    });
}

#[test]
fn known_vector() {
    // SHA-256 of 64 zero bytes (two zero merkle chunks).
    let want: [u8; 32] = [
        0xf5, 0xa5, 0xfd, 0x42, 0xd1, 0x6a, 0x20, 0x30, 0x27, 0x98, 0xef, 0x6e, 0xd3, 0x09, 0x97,
        0x9b, 0x43, 0x00, 0x3d, 0x23, 0x20, 0xd9, 0xf0, 0xe8, 0xea, 0x98, 0x31, 0xa9, 0x27, 0x59,
        0xfb, 0x4b,
    ];
    for_each_kernel(|kernel| {
        let mut out = [[0u8; 32]; 1];
        hash_blocks(kernel, &[[0u8; 64]], &mut out);
        assert_eq!(out[0], want, "{}", kernel.name());
    });
}

#[test]
fn auto_matches_reference() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let input = random_blocks(&mut rng, 77);
    let mut out = vec![[0u8; 32]; input.len()];
    hash_blocks_auto(&input, &mut out);
    assert_eq!(out, reference(&input));
}

#[test]
fn detect_is_available_and_scalar_always() {
    assert!(Kernel::Scalar.is_available());
    let k = Kernel::detect();
    assert!(k.is_available(), "detect() chose unavailable {}", k.name());
    assert_eq!(k, Kernel::detect(), "detect() is stable");
    let avail = Kernel::available();
    assert!(avail.contains(&Kernel::Scalar));
    assert!(avail.contains(&k));
    eprintln!(
        "available: {:?}, detect() = {}",
        avail.iter().map(|k| k.name()).collect::<Vec<_>>(),
        k.name()
    );
}

#[test]
fn names() {
    let names: Vec<_> = Kernel::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names, ["scalar", "sha-ni", "avx2", "avx512"]);
}

#[test]
#[should_panic(expected = "input has 2 blocks but out has 1")]
fn length_mismatch_panics() {
    let mut out = [[0u8; 32]; 1];
    hash_blocks(Kernel::Scalar, &[[0u8; 64]; 2], &mut out);
}

#[test]
fn unavailable_kernel_panics() {
    for kernel in Kernel::ALL {
        if !kernel.is_available() {
            let r = std::panic::catch_unwind(|| {
                let mut out = [[0u8; 32]; 1];
                hash_blocks(kernel, &[[0u8; 64]], &mut out);
            });
            assert!(
                r.is_err(),
                "{} is unavailable but did not panic",
                kernel.name()
            );
        }
    }
}
