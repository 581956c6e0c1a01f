//! Roots of all-zero subtrees: `zero_hashes()[h]` is the root of 2^h zero chunks.

use std::sync::OnceLock;

use quasar_kernels::sha256::{hash_blocks, Kernel};

/// Levels covered: a tree of 2^64 chunks is the largest SSZ can describe.
pub const MAX_DEPTH: usize = 64;

/// `z[0] = 0^32`, `z[h+1] = SHA-256(z[h] || z[h])`, computed once.
pub fn zero_hashes() -> &'static [[u8; 32]; MAX_DEPTH + 1] {
    static ZEROS: OnceLock<[[u8; 32]; MAX_DEPTH + 1]> = OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut z = [[0u8; 32]; MAX_DEPTH + 1];
        for h in 0..MAX_DEPTH {
            let mut block = [0u8; 64];
            block[..32].copy_from_slice(&z[h]);
            block[32..].copy_from_slice(&z[h]);
            let mut out = [[0u8; 32]];
            hash_blocks(Kernel::Scalar, &[block], &mut out);
            z[h + 1] = out[0];
        }
        z
    })
}
