//! Portable SHA-256 of 64-byte messages: one block, then the constant padding block
//! whose message schedule comes precomputed from [`PAD_WK`].

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

/// 64 rounds over `state` with the already-added `W[i] + K[i]` words; returns the
/// working variables (the caller adds the chaining value).
#[inline(always)]
fn rounds(state: [u32; 8], wk: &[u32; 64]) -> [u32; 8] {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
    for &x in wk {
        let t1 = h
            .wrapping_add(big_sigma1(e))
            .wrapping_add((e & f) ^ (!e & g))
            .wrapping_add(x);
        let t2 = big_sigma0(a).wrapping_add((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    [a, b, c, d, e, f, g, h]
}

#[inline(always)]
fn add_state(x: [u32; 8], y: [u32; 8]) -> [u32; 8] {
    core::array::from_fn(|i| x[i].wrapping_add(y[i]))
}

/// SHA-256 of one 64-byte message.
#[inline]
pub(crate) fn hash_block(block: &[u8; 64]) -> [u8; 32] {
    let mut w = [0u32; 64];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..64 {
        w[i] = small_sigma1(w[i - 2])
            .wrapping_add(w[i - 7])
            .wrapping_add(small_sigma0(w[i - 15]))
            .wrapping_add(w[i - 16]);
    }
    for i in 0..64 {
        w[i] = w[i].wrapping_add(K[i]);
    }
    let mid = add_state(IV, rounds(IV, &w));
    let fin = add_state(mid, rounds(mid, &PAD_WK));
    let mut out = [0u8; 32];
    for (dst, word) in out.chunks_exact_mut(4).zip(fin) {
        dst.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// `out[i] = SHA-256(input[i])`; lengths are checked by the caller.
pub(crate) fn hash_blocks(input: &[[u8; 64]], out: &mut [[u8; 32]]) {
    for (block, digest) in input.iter().zip(out.iter_mut()) {
        *digest = hash_block(block);
    }
}
