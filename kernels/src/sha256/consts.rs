//! SHA-256 constants shared by every kernel, including the precomputed message
//! schedule of the constant padding block.

/// Initial hash value H(0) (FIPS 180-4 §5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Round constants K (FIPS 180-4 §4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

const fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// `W[i] + K[i]` for the padding block of a 64-byte message: word 0 is `0x80000000`
/// (the terminating 1 bit), words 1..=14 are zero, word 15 is the bit length 512.
/// The second compression of every digest uses this table instead of a message schedule.
pub(crate) const PAD_WK: [u32; 64] = {
    let mut w = [0u32; 64];
    w[0] = 0x8000_0000;
    w[15] = 512;
    let mut i = 16;
    while i < 64 {
        w[i] = small_sigma1(w[i - 2])
            .wrapping_add(w[i - 7])
            .wrapping_add(small_sigma0(w[i - 15]))
            .wrapping_add(w[i - 16]);
        i += 1;
    }
    let mut wk = [0u32; 64];
    let mut i = 0;
    while i < 64 {
        wk[i] = w[i].wrapping_add(K[i]);
        i += 1;
    }
    wk
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_wk_matches_hashtree_table_prefix() {
        // First and a few later entries of the padding W+K table as published by
        // hashtree (sha256_shani.S, .LPADDING).
        assert_eq!(PAD_WK[0], 0xc28a2f98);
        assert_eq!(PAD_WK[15], 0xc19bf374);
        assert_eq!(PAD_WK[16], 0x649b69c1);
        assert_eq!(PAD_WK[31], 0xc7353eb0);
    }
}
