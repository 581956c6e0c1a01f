//! AVX2 kernel: 8 messages, one per 32-bit lane of `__m256i`. The blocks are loaded
//! row-wise and transposed in registers (8x8 u32 transposes), the 64 rounds are fully
//! unrolled, and the padding block uses the precomputed `W + K` table.

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::consts::{IV, K, PAD_WK};

/// Messages per kernel call.
const LANES: usize = 8;

macro_rules! add {
    ($a:expr, $b:expr) => {
        _mm256_add_epi32($a, $b)
    };
}

/// `x.rotate_right(r)` on every lane; `l` must be `32 - r`.
macro_rules! rotr {
    ($x:expr, $r:literal, $l:literal) => {{
        let x = $x;
        _mm256_or_si256(_mm256_srli_epi32::<$r>(x), _mm256_slli_epi32::<$l>(x))
    }};
}

/// Three rotates XORed, sharing the shifts: `ror(x,r1) ^ ror(x,r2) ^ ror(x,r3)`.
macro_rules! sigma_big {
    ($x:expr, $r1:literal, $l1:literal, $r2:literal, $l2:literal, $r3:literal, $l3:literal) => {{
        let x = $x;
        let s = _mm256_xor_si256(
            _mm256_xor_si256(_mm256_srli_epi32::<$r1>(x), _mm256_srli_epi32::<$r2>(x)),
            _mm256_srli_epi32::<$r3>(x),
        );
        let t = _mm256_xor_si256(
            _mm256_xor_si256(_mm256_slli_epi32::<$l1>(x), _mm256_slli_epi32::<$l2>(x)),
            _mm256_slli_epi32::<$l3>(x),
        );
        _mm256_xor_si256(s, t)
    }};
}

/// Identity that LLVM cannot see through (emits no instruction). Keeps `h + W + K`
/// computed off the critical path: otherwise LLVM reassociates the constant `K` to the
/// last add of `T1`, lengthening the `e -> e'` dependency chain by one add.
#[inline]
#[target_feature(enable = "avx2")]
fn opaque(mut x: __m256i) -> __m256i {
    // SAFETY: the template is empty: no instruction runs, no memory or flags are touched;
    // the value only has to live in a ymm register, which `inout(ymm_reg)` guarantees.
    unsafe {
        core::arch::asm!("/* {0} */", inout(ymm_reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    x
}

/// Transposes an 8x8 matrix of u32 held in 8 registers (row `i` = `r[i]`).
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

#[inline]
#[target_feature(enable = "avx2")]
fn bswap_mask() -> __m256i {
    _mm256_set_epi64x(
        0x0c0d0e0f_08090a0b,
        0x04050607_00010203,
        0x0c0d0e0f_08090a0b,
        0x04050607_00010203,
    )
}

/// SHA-256 of 8 messages.
#[target_feature(enable = "avx2")]
fn hash8(input: &[[u8; 64]; LANES], out: &mut [[u8; 32]; LANES]) {
    let mask = bswap_mask();
    let mut w = [_mm256_setzero_si256(); 16];
    for half in 0..2 {
        let rows: [__m256i; 8] = core::array::from_fn(|i| {
            // SAFETY: `input[i]` is 64 bytes; bytes `32*half .. 32*half+32` are in bounds
            // (half < 2); unaligned load.
            let v = unsafe { _mm256_loadu_si256(input[i].as_ptr().add(32 * half).cast()) };
            _mm256_shuffle_epi8(v, mask)
        });
        let cols = transpose8(rows);
        w[8 * half..8 * half + 8].copy_from_slice(&cols);
    }

    let iv: [__m256i; 8] = core::array::from_fn(|i| _mm256_set1_epi32(IV[i] as i32));
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = iv;

    // One round; `$wk` is the already-added `W[i] + K[i]` vector.
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $wk:expr) => {{
            let s1 = sigma_big!($e, 6, 26, 11, 21, 25, 7);
            let ch = _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256($f, $g), $e), $g);
            let t1 = add!(opaque(add!($h, $wk)), add!(s1, ch));
            $d = add!($d, t1);
            let s0 = sigma_big!($a, 2, 30, 13, 19, 22, 10);
            let maj = _mm256_or_si256(
                _mm256_and_si256($a, $b),
                _mm256_and_si256($c, _mm256_or_si256($a, $b)),
            );
            $h = add!(t1, add!(s0, maj));
        }};
    }

    // Round `$i` of the message block, extending the schedule in place for i >= 16.
    macro_rules! msg_round {
        ($i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
            const I: usize = $i;
            if I >= 16 {
                let x2 = w[(I + 14) % 16];
                let x15 = w[(I + 1) % 16];
                let s1 = _mm256_xor_si256(
                    _mm256_xor_si256(rotr!(x2, 17, 15), rotr!(x2, 19, 13)),
                    _mm256_srli_epi32::<10>(x2),
                );
                let s0 = _mm256_xor_si256(
                    _mm256_xor_si256(rotr!(x15, 7, 25), rotr!(x15, 18, 14)),
                    _mm256_srli_epi32::<3>(x15),
                );
                w[I % 16] = add!(add!(w[I % 16], w[(I + 9) % 16]), add!(s0, s1));
            }
            let wk = add!(w[I % 16], _mm256_set1_epi32(K[I] as i32));
            round!($a, $b, $c, $d, $e, $f, $g, $h, wk);
        }};
    }

    macro_rules! pad_round {
        ($i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
            const I: usize = $i;
            round!($a, $b, $c, $d, $e, $f, $g, $h, _mm256_set1_epi32(PAD_WK[I] as i32));
        }};
    }

    macro_rules! eight {
        ($m:ident, $base:expr) => {
            $m!($base, a, b, c, d, e, f, g, h);
            $m!($base + 1, h, a, b, c, d, e, f, g);
            $m!($base + 2, g, h, a, b, c, d, e, f);
            $m!($base + 3, f, g, h, a, b, c, d, e);
            $m!($base + 4, e, f, g, h, a, b, c, d);
            $m!($base + 5, d, e, f, g, h, a, b, c);
            $m!($base + 6, c, d, e, f, g, h, a, b);
            $m!($base + 7, b, c, d, e, f, g, h, a);
        };
    }

    eight!(msg_round, 0);
    eight!(msg_round, 8);
    eight!(msg_round, 16);
    eight!(msg_round, 24);
    eight!(msg_round, 32);
    eight!(msg_round, 40);
    eight!(msg_round, 48);
    eight!(msg_round, 56);

    let mid = [
        add!(a, iv[0]),
        add!(b, iv[1]),
        add!(c, iv[2]),
        add!(d, iv[3]),
        add!(e, iv[4]),
        add!(f, iv[5]),
        add!(g, iv[6]),
        add!(h, iv[7]),
    ];
    [a, b, c, d, e, f, g, h] = mid;

    eight!(pad_round, 0);
    eight!(pad_round, 8);
    eight!(pad_round, 16);
    eight!(pad_round, 24);
    eight!(pad_round, 32);
    eight!(pad_round, 40);
    eight!(pad_round, 48);
    eight!(pad_round, 56);

    let fin = [a, b, c, d, e, f, g, h];
    let rows: [__m256i; 8] =
        core::array::from_fn(|i| _mm256_shuffle_epi8(add!(fin[i], mid[i]), mask));
    let digests = transpose8(rows);
    for (o, v) in out.iter_mut().zip(digests) {
        // SAFETY: `o` is a 32-byte array; unaligned 32-byte store.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), v) };
    }
}

/// Hashes up to 8 messages through a zero-padded lane buffer.
#[target_feature(enable = "avx2")]
fn hash_partial(input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    debug_assert!(input.len() <= LANES && input.len() == out.len());
    let mut inb = [[0u8; 64]; LANES];
    let mut outb = [[0u8; 32]; LANES];
    inb[..input.len()].copy_from_slice(input);
    hash8(&inb, &mut outb);
    out.copy_from_slice(&outb[..out.len()]);
}

/// Whether the CPU has everything this kernel uses.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// `out[i] = SHA-256(input[i])`, 8 at a time; a tail goes through one zero-padded pass.
///
/// Callers outside `#[target_feature]` code must check [`available`] first.
#[target_feature(enable = "avx2")]
pub(crate) fn hash_blocks(input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    debug_assert_eq!(input.len(), out.len());
    let mut inp = input.chunks_exact(LANES);
    let mut outp = out.chunks_exact_mut(LANES);
    for (i, o) in (&mut inp).zip(&mut outp) {
        hash8(
            i.try_into().expect("chunk of 8"),
            o.try_into().expect("chunk of 8"),
        );
    }
    let (rin, rout) = (inp.remainder(), outp.into_remainder());
    if !rin.is_empty() {
        hash_partial(rin, rout);
    }
}
