//! The oracle: SSZ merkleization written straight from the spec over the `sha2` crate,
//! sharing no code with quasar.

use sha2::{Digest, Sha256};

pub fn h(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut s = Sha256::new();
    s.update(a);
    s.update(b);
    s.finalize().into()
}

pub fn zero(depth: u32) -> [u8; 32] {
    let mut z = [0u8; 32];
    for _ in 0..depth {
        z = h(&z, &z);
    }
    z
}

fn ceil_log2(n: u64) -> u32 {
    let mut d = 0;
    while (1u128 << d) < n as u128 {
        d += 1;
    }
    d
}

/// `merkleize(chunks, limit)` of the spec: pad to next_pow_of_two(limit or count).
pub fn merkleize(chunks: &[[u8; 32]], limit: Option<u64>) -> [u8; 32] {
    let count = chunks.len() as u64;
    let depth = ceil_log2(limit.unwrap_or(count));
    assert!(count <= limit.unwrap_or(u64::MAX));
    if chunks.is_empty() {
        return zero(depth);
    }
    let mut level: Vec<[u8; 32]> = chunks.to_vec();
    for d in 0..depth {
        if level.len() % 2 == 1 {
            level.push(zero(d));
        }
        level = level.chunks(2).map(|p| h(&p[0], &p[1])).collect();
    }
    level[0]
}

pub fn mix_in_length(root: &[u8; 32], len: u64) -> [u8; 32] {
    let mut l = [0u8; 32];
    l[..8].copy_from_slice(&len.to_le_bytes());
    h(root, &l)
}

pub fn random_chunks(n: usize, seed: u64) -> Vec<[u8; 32]> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut c = [0u8; 32];
            rng.fill_bytes(&mut c);
            c
        })
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
