//! Single-threaded speed of every available SHA-256 batch kernel against Prysm's
//! hashtree (C/asm) and the `sha2` crate, in ns per 64-byte block.
//!
//! ```text
//! cargo run --release -p quasar-kernels --example kernel_speed [-- ROUNDS [NAME...]]
//! # plus the SHA-NI stream-count variants (x1..x4):
//! cargo run --release -p quasar-kernels --features bench-internals --example kernel_speed
//! ```
//!
//! Sizes: small batches (1, 3, 7, 17, 100 blocks: call overhead and tails), 2^10 blocks
//! (64 KiB, L1/L2-resident), 2^16 blocks (4 MiB, repeated: warm cache) and 2^22 blocks
//! (256 MiB: streams from memory). The implementations take turns
//! within each round, so background load hits them alike; the best round is reported
//! (and the median next to it).

use std::hint::black_box;
use std::time::{Duration, Instant};

use quasar_kernels::sha256::{hash_blocks, Kernel};
use sha2::{Digest, Sha256};

type HashFn = Box<dyn Fn(&[[u8; 64]], &mut [[u8; 32]])>;

#[cfg(target_arch = "x86_64")]
mod hashtree_direct {
    // hashtree's individual x86 kernels, linked in through hashtree-rs's static library
    // (hashtree.h). hashtree::init() itself picks shani_x2 on CPUs with SHA-NI.
    extern "C" {
        pub fn hashtree_sha256_avx512_x16(output: *mut u8, input: *const u8, count: u64);
        pub fn hashtree_sha256_avx2_x8(output: *mut u8, input: *const u8, count: u64);
        pub fn hashtree_sha256_shani_x2(output: *mut u8, input: *const u8, count: u64);
    }
}

fn impls() -> Vec<(String, HashFn)> {
    let mut v: Vec<(String, HashFn)> = Vec::new();
    for k in Kernel::available() {
        v.push((
            format!("quasar {}", k.name()),
            Box::new(move |i, o| hash_blocks(k, i, o)),
        ));
    }
    #[cfg(all(feature = "bench-internals", target_arch = "x86_64"))]
    if Kernel::ShaNi.is_available() {
        for s in [1usize, 2, 3, 4] {
            v.push((
                format!("quasar sha-ni x{s}"),
                Box::new(move |i, o| quasar_kernels::sha256::__shani_streams(s, i, o)),
            ));
        }
    }
    hashtree_rs::init();
    v.push((
        "hashtree (auto)".into(),
        Box::new(|i, o| hashtree_rs::hash(o.as_flattened_mut(), i.as_flattened(), i.len())),
    ));
    #[cfg(target_arch = "x86_64")]
    {
        use hashtree_direct::*;
        type Raw = unsafe extern "C" fn(*mut u8, *const u8, u64);
        let raw: [(&str, Raw, bool); 3] = [
            (
                "hashtree shani_x2",
                hashtree_sha256_shani_x2,
                Kernel::ShaNi.is_available(),
            ),
            (
                "hashtree avx512_x16",
                hashtree_sha256_avx512_x16,
                Kernel::Avx512.is_available(),
            ),
            (
                "hashtree avx2_x8",
                hashtree_sha256_avx2_x8,
                Kernel::Avx2.is_available(),
            ),
        ];
        for (name, f, ok) in raw {
            if ok {
                v.push((
                    name.into(),
                    Box::new(move |i: &[[u8; 64]], o: &mut [[u8; 32]]| {
                        assert_eq!(i.len(), o.len());
                        // SAFETY: the CPU has the kernel's features (checked above); `o`
                        // holds 32 bytes and `i` 64 bytes per block for `i.len()` blocks.
                        unsafe { f(o.as_mut_ptr().cast(), i.as_ptr().cast(), i.len() as u64) }
                    }),
                ));
            }
        }
    }
    v.push((
        "sha2 crate".into(),
        Box::new(|i, o| {
            for (b, d) in i.iter().zip(o.iter_mut()) {
                *d = Sha256::digest(b).into();
            }
        }),
    ));
    v
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(7, |s| s.parse().expect("ROUNDS"));
    println!("detect() = {}", Kernel::detect().name());
    // Optional further arguments: substrings selecting the implementations to time.
    let filters: Vec<String> = std::env::args().skip(2).collect();
    let impls: Vec<_> = impls()
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let sizes: Vec<(String, usize)> = [1usize, 3, 7, 17, 100]
        .iter()
        .map(|&n| (format!("{n}"), n))
        .chain(
            [10u32, 16, 22]
                .iter()
                .map(|&l| (format!("2^{l}"), 1usize << l)),
        )
        .collect();
    for (label, n) in sizes {
        // Repeat small sizes so that each timed sample hashes at least 2^21 blocks.
        let reps = ((1usize << 21) / n).max(1);
        let input: Vec<[u8; 64]> = (0..n)
            .map(|_| {
                core::array::from_fn(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
            })
            .collect();
        let mut want = vec![[0u8; 32]; n];
        hash_blocks(Kernel::Scalar, &input, &mut want);
        let mut out = vec![[0u8; 32]; n];
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); impls.len()];
        for (j, (name, f)) in impls.iter().enumerate() {
            out.fill([0; 32]);
            f(&input, &mut out); // warm-up + correctness
            assert!(out == want, "{name} gives wrong digests");
            let _ = j;
        }
        for _ in 0..rounds {
            for (j, (_, f)) in impls.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..reps {
                    f(black_box(&input), black_box(&mut out));
                }
                times[j].push(t.elapsed());
            }
        }
        println!(
            "\n{label} blocks ({} KiB in), {reps} rep(s) x {rounds} rounds: ns/block best (median)",
            n * 64 / 1024
        );
        for (j, (name, _)) in impls.iter().enumerate() {
            let mut t = times[j].clone();
            t.sort();
            let per = |d: Duration| d.as_secs_f64() * 1e9 / (n * reps) as f64;
            println!(
                "  {name:<22} {:8.2}  ({:8.2})",
                per(t[0]),
                per(t[t.len() / 2])
            );
        }
    }
}
