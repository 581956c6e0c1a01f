//! SHA-NI kernel (x86 `sha` extension): `STREAMS` independent messages are hashed in
//! lock-step so that the `sha256rnds2` latency chains of different messages overlap.
//! The second compression (the padding block) uses the precomputed `W + K` table.

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::consts::{IV, K, PAD_WK};

/// Independent messages per step. `sha256rnds2` has a 4-cycle latency but issues every
/// 3 cycles here, so one message alone leaves the SHA unit idle a quarter of the time.
/// Measured on an Emerald Rapids Xeon (2^10 warm blocks, ns/block, `kernel_speed` with
/// `--features bench-internals`): x1 69.2, x2 64.8, x3 66.2, x4 64.7. Two streams reach
/// the unit's throughput bound (64 rnds2 x 3 cycles = 192 cycles/block) without spilling
/// any of the 16 xmm registers, so 2 it is (as hashtree's `shani_x2`).
pub(crate) const STREAMS: usize = 2;

/// `W + K` pairs for the padding block, laid out for `sha256rnds2`, which only reads
/// the low 64 bits of its message operand: entry `r` = `[wk[2r], wk[2r+1], 0, 0]`.
#[repr(C, align(16))]
struct PadPairs([[u32; 4]; 32]);

static PAD_PAIRS: PadPairs = PadPairs({
    let mut t = [[0u32; 4]; 32];
    let mut r = 0;
    while r < 32 {
        t[r] = [PAD_WK[2 * r], PAD_WK[2 * r + 1], 0, 0];
        r += 1;
    }
    t
});

/// K in groups of four, 16-byte aligned for `movdqa`.
#[repr(C, align(16))]
struct KGroups([[u32; 4]; 16]);

static K_GROUPS: KGroups = KGroups({
    let mut t = [[0u32; 4]; 16];
    let mut i = 0;
    while i < 64 {
        t[i / 4][i % 4] = K[i];
        i += 1;
    }
    t
});

/// Byte-flip mask turning four big-endian u32 into native words.
#[inline]
#[target_feature(enable = "sse2")]
fn bswap_mask() -> __m128i {
    _mm_set_epi64x(0x0c0d0e0f_08090a0b, 0x04050607_00010203)
}

#[inline]
#[target_feature(enable = "sse2")]
fn load_k(g: usize) -> __m128i {
    // SAFETY: `K_GROUPS.0[g]` is a bounds-checked, 16-byte aligned `[u32; 4]`.
    unsafe { _mm_load_si128(K_GROUPS.0[g].as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "sse2")]
fn load_pad(r: usize) -> __m128i {
    // SAFETY: `PAD_PAIRS.0[r]` is a bounds-checked 16-byte aligned `[u32; 4]`.
    unsafe { _mm_load_si128(PAD_PAIRS.0[r].as_ptr().cast()) }
}

/// Hashes `N` messages; fully unrolled over the 16 four-round groups of the first block.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn hash_n<const N: usize>(input: &[[u8; 64]; N], out: &mut [[u8; 32]; N]) {
    let mask = bswap_mask();
    // IV in the (ABEF, CDGH) register layout sha256rnds2 works on.
    let abef0 = _mm_set_epi32(IV[0] as i32, IV[1] as i32, IV[4] as i32, IV[5] as i32);
    let cdgh0 = _mm_set_epi32(IV[2] as i32, IV[3] as i32, IV[6] as i32, IV[7] as i32);

    let mut s0 = [abef0; N];
    let mut s1 = [cdgh0; N];
    let mut m = [[_mm_setzero_si128(); 4]; N];
    for s in 0..N {
        for (j, mj) in m[s].iter_mut().enumerate() {
            // SAFETY: `input[s]` is a 64-byte array and `16 * j + 16 <= 64`; unaligned load.
            let v = unsafe { _mm_loadu_si128(input[s].as_ptr().add(16 * j).cast()) };
            *mj = _mm_shuffle_epi8(v, mask);
        }
    }

    // Four rounds with message group `G` (= W[4G..4G+4]); then, while needed, extend the
    // schedule: W-group G+4 from groups G..G+3, stored in G's slot.
    macro_rules! group {
        ($g:literal) => {{
            let k = load_k($g);
            for s in 0..N {
                let wk = _mm_add_epi32(m[s][$g % 4], k);
                s1[s] = _mm_sha256rnds2_epu32(s1[s], s0[s], wk);
                s0[s] = _mm_sha256rnds2_epu32(s0[s], s1[s], _mm_shuffle_epi32(wk, 0x0E));
            }
            if $g < 12 {
                for s in 0..N {
                    let w0 = m[s][$g % 4];
                    let w1 = m[s][($g + 1) % 4];
                    let w2 = m[s][($g + 2) % 4];
                    let w3 = m[s][($g + 3) % 4];
                    let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
                    m[s][$g % 4] = _mm_sha256msg2_epu32(t, w3);
                }
            }
        }};
    }
    group!(0);
    group!(1);
    group!(2);
    group!(3);
    group!(4);
    group!(5);
    group!(6);
    group!(7);
    group!(8);
    group!(9);
    group!(10);
    group!(11);
    group!(12);
    group!(13);
    group!(14);
    group!(15);

    for s in 0..N {
        s0[s] = _mm_add_epi32(s0[s], abef0);
        s1[s] = _mm_add_epi32(s1[s], cdgh0);
    }
    let mid0 = s0;
    let mid1 = s1;

    // Padding block: constant schedule, two rounds per sha256rnds2.
    for r in 0..16 {
        let lo = load_pad(2 * r);
        let hi = load_pad(2 * r + 1);
        for s in 0..N {
            s1[s] = _mm_sha256rnds2_epu32(s1[s], s0[s], lo);
            s0[s] = _mm_sha256rnds2_epu32(s0[s], s1[s], hi);
        }
    }

    for s in 0..N {
        let abef = _mm_add_epi32(s0[s], mid0[s]);
        let cdgh = _mm_add_epi32(s1[s], mid1[s]);
        // Back to (A B C D), (E F G H) order, lane 0 first.
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgfe = _mm_alignr_epi8(dchg, feba, 8);
        let p = out[s].as_mut_ptr();
        // SAFETY: `out[s]` is a 32-byte array; the stores cover bytes 0..16 and 16..32.
        unsafe {
            _mm_storeu_si128(p.cast(), _mm_shuffle_epi8(dcba, mask));
            _mm_storeu_si128(p.add(16).cast(), _mm_shuffle_epi8(hgfe, mask));
        }
    }
}

/// Whether the CPU has everything this kernel uses.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
}

/// `out[i] = SHA-256(input[i])`, [`STREAMS`] messages per step. An odd count starts with
/// one 3-message step rather than leaving a lone message, whose single `sha256rnds2`
/// dependency chain would run at latency (4 cycles) instead of throughput (3 cycles).
///
/// Callers outside `#[target_feature]` code must check [`available`] first.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn hash_blocks(input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    debug_assert_eq!(input.len(), out.len());
    let (mut input, mut out) = (input, out);
    if input.len() % 2 == 1 {
        let (i, o) = (input, out);
        if i.len() >= 3 {
            let (i3, irest) = i.split_first_chunk::<3>().expect("len >= 3");
            let (o3, orest) = o.split_first_chunk_mut::<3>().expect("len >= 3");
            hash_n::<3>(i3, o3);
            (input, out) = (irest, orest);
        } else {
            let (i1, irest) = i.split_first_chunk::<1>().expect("len >= 1");
            let (o1, orest) = o.split_first_chunk_mut::<1>().expect("len >= 1");
            hash_n::<1>(i1, o1);
            (input, out) = (irest, orest);
        }
    }
    hash_blocks_streams::<STREAMS>(input, out);
}

/// Groups of exactly `N` messages, then single ones.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn hash_blocks_streams<const N: usize>(input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    let mut inp = input.chunks_exact(N);
    let mut outp = out.chunks_exact_mut(N);
    for (i, o) in (&mut inp).zip(&mut outp) {
        let i: &[[u8; 64]; N] = i.try_into().expect("chunk of N");
        let o: &mut [[u8; 32]; N] = o.try_into().expect("chunk of N");
        hash_n::<N>(i, o);
    }
    for (i, o) in inp.remainder().iter().zip(outp.into_remainder()) {
        hash_n::<1>(core::array::from_ref(i), core::array::from_mut(o));
    }
}
