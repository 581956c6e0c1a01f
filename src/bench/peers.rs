//! The peers quasar's hashing is measured against, each merkleizing the same tree on one
//! core, level by level, the way a client using them would.

use sha2::{Digest, Sha256};

use crate::merkle::zero_hashes;

/// Merkleize with the `sha2` crate (RustCrypto), one pair at a time.
pub fn sha2_merkleize(leaves: &[[u8; 32]]) -> [u8; 32] {
    reduce(leaves, |input, out| {
        for (block, digest) in input.chunks_exact(64).zip(out.chunks_exact_mut(32)) {
            digest.copy_from_slice(&Sha256::digest(block));
        }
    })
}

/// Merkleize with Prysm's hashtree (`hashtree-rs`: SHA-NI / AVX2 / AVX-512 assembly).
pub fn hashtree_merkleize(leaves: &[[u8; 32]]) -> [u8; 32] {
    hashtree_init();
    reduce(leaves, |input, out| {
        hashtree_rs::hash(out, input, input.len() / 64)
    })
}

/// Let hashtree pick its fastest implementation for this CPU (idempotent).
pub fn hashtree_init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        hashtree_rs::init();
    });
}

/// Level-by-level reduction of `leaves` (n >= 1) to the root of the next power of two,
/// with `hash_level(input, out)` hashing 64-byte blocks into 32-byte digests. The first
/// level reads the leaves in place.
fn reduce(leaves: &[[u8; 32]], mut hash_level: impl FnMut(&[u8], &mut [u8])) -> [u8; 32] {
    assert!(!leaves.is_empty());
    let zeros = zero_hashes();
    let (mut cur, mut next): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
    let mut height = 0;
    loop {
        let src: &[u8] = if height == 0 {
            leaves.as_flattened()
        } else {
            &cur
        };
        let n = src.len() / 32;
        if n == 1 {
            return src.try_into().expect("one chunk");
        }
        let pairs = n / 2;
        next.clear();
        next.resize(n.div_ceil(2) * 32, 0);
        hash_level(&src[..pairs * 64], &mut next[..pairs * 32]);
        if n % 2 == 1 {
            let mut block = [0u8; 64];
            block[..32].copy_from_slice(&src[(n - 1) * 32..]);
            block[32..].copy_from_slice(&zeros[height]);
            hash_level(&block, &mut next[pairs * 32..]);
        }
        std::mem::swap(&mut cur, &mut next);
        height += 1;
    }
}
