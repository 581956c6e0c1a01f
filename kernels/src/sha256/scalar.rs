//! Portable SHA-256 of 64-byte messages: one block, then the constant padding block
//! whose message schedule comes precomputed from [`PAD_WK`]. Rounds are fully unrolled
//! (8 rounds per macro step with rotating variable names; the schedule lives in a
//! 16-word ring), which lets the compiler keep everything in registers.

use super::consts::{IV, K, PAD_WK};

#[inline(always)]
fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

#[inline(always)]
fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

#[inline(always)]
fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

#[inline(always)]
fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// One round with the already-added `W[i] + K[i]`.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $wk:expr) => {{
        let t1 = $h
            .wrapping_add($wk)
            .wrapping_add(big_sigma1($e))
            .wrapping_add(($e & $f) ^ (!$e & $g));
        let t2 = big_sigma0($a).wrapping_add(($a & $b) ^ ($a & $c) ^ ($b & $c));
        $d = $d.wrapping_add(t1);
        $h = t1.wrapping_add(t2);
    }};
}

/// SHA-256 of one 64-byte message.
#[inline]
pub(crate) fn hash_block(block: &[u8; 64]) -> [u8; 32] {
    let mut w = [0u32; 16];
    for (wi, word) in w.iter_mut().zip(block.chunks_exact(4)) {
        *wi = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = IV;

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

    macro_rules! msg_round {
        ($i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
            const I: usize = $i;
            if I >= 16 {
                w[I % 16] = w[I % 16]
                    .wrapping_add(small_sigma1(w[(I + 14) % 16]))
                    .wrapping_add(w[(I + 9) % 16])
                    .wrapping_add(small_sigma0(w[(I + 1) % 16]));
            }
            round!($a, $b, $c, $d, $e, $f, $g, $h, w[I % 16].wrapping_add(K[I]));
        }};
    }
    macro_rules! pad_round {
        ($i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
            const I: usize = $i;
            round!($a, $b, $c, $d, $e, $f, $g, $h, PAD_WK[I]);
        }};
    }

    eight!(msg_round, 0);
    eight!(msg_round, 8);
    eight!(msg_round, 16);
    eight!(msg_round, 24);
    eight!(msg_round, 32);
    eight!(msg_round, 40);
    eight!(msg_round, 48);
    eight!(msg_round, 56);

    let mid: [u32; 8] = core::array::from_fn(|i| [a, b, c, d, e, f, g, h][i].wrapping_add(IV[i]));
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
    let mut out = [0u8; 32];
    for ((dst, x), m) in out.chunks_exact_mut(4).zip(fin).zip(mid) {
        dst.copy_from_slice(&x.wrapping_add(m).to_be_bytes());
    }
    out
}

/// `out[i] = SHA-256(input[i])`; lengths are checked by the caller.
pub(crate) fn hash_blocks(input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    for (block, digest) in input.iter().zip(out.iter_mut()) {
        *digest = hash_block(block);
    }
}
