//! The generator comb against blst's own `sk_to_pk` (and the group's order at the edges).

use blst::min_pk::SecretKey;
use quasar_kernels::bls::{
    p1_affine_compress, p1_affine_is_inf, p1_compress, p1_generator, p1_is_equal, p1_is_inf,
    p1_to_affine, p1s_to_affine, GeneratorComb,
};
use rand::{Rng, SeedableRng};

/// r, little-endian.
fn order_le() -> [u8; 32] {
    let mut r = [
        0x73, 0xed, 0xa7, 0x53, 0x29, 0x9d, 0x7d, 0x48, 0x33, 0x39, 0xd8, 0x08, 0x09, 0xa1, 0xd8,
        0x05, 0x53, 0xbd, 0xa4, 0x02, 0xff, 0xfe, 0x5b, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
        0x00, 0x01,
    ];
    r.reverse();
    r
}

fn add_small(k: &[u8; 32], v: i64) -> [u8; 32] {
    // k + v for small |v| on a little-endian 256-bit number (no wrap in the tests' range).
    let mut out = *k;
    let mut carry = v as i128;
    for b in out.iter_mut() {
        let x = *b as i128 + carry;
        *b = x.rem_euclid(256) as u8;
        carry = x.div_euclid(256);
    }
    out
}

/// blst's sk·G, compressed, for 0 < k < r.
fn blst_pk(k_le: &[u8; 32]) -> [u8; 48] {
    let mut be = *k_le;
    be.reverse();
    SecretKey::from_bytes(&be)
        .expect("scalar in range")
        .sk_to_pk()
        .compress()
}

/// Scalars below r: random, sparse, dense, and digits at their extremes.
fn scalars(rng: &mut impl Rng) -> Vec<[u8; 32]> {
    let r = order_le();
    let mut v = vec![
        add_small(&[0; 32], 1),
        add_small(&[0; 32], 2),
        add_small(&[0; 32], 4095),
        add_small(&[0; 32], 4096),
        add_small(&r, -1),
        add_small(&r, -2),
    ];
    // One digit all ones, the rest zero, at several offsets (every window's top entry).
    for shift in [0usize, 7, 8, 12, 100, 240] {
        let mut k = [0u8; 32];
        for bit in shift..(shift + 12).min(254) {
            k[bit / 8] |= 1 << (bit % 8);
        }
        v.push(k);
    }
    for _ in 0..40 {
        let mut k: [u8; 32] = rng.random();
        k[31] &= 0x3f; // below 2^254 < r
        v.push(k);
    }
    v
}

#[test]
fn comb_matches_sk_to_pk_at_every_width() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xc0b);
    let ks = scalars(&mut rng);
    for bits in [1u32, 5, 8, 12, 13] {
        let comb = GeneratorComb::new(bits);
        let many = comb.mul_many_affine(&ks);
        for (k, affine) in ks.iter().zip(&many) {
            let want = blst_pk(k);
            assert_eq!(p1_compress(&comb.mul(k)), want, "bits {bits}, k {k:02x?}");
            assert_eq!(
                p1_affine_compress(affine),
                want,
                "bits {bits} batched, k {k:02x?}"
            );
        }
    }
}

#[test]
fn comb_at_the_order_wraps_to_infinity_and_the_generator() {
    let r = order_le();
    for bits in [8u32, 12] {
        let comb = GeneratorComb::new(bits);
        assert!(p1_is_inf(&comb.mul(&r)), "r·G is infinity ({bits} bits)");
        assert!(p1_is_inf(&comb.mul(&[0; 32])), "0·G is infinity");
        assert!(p1_is_equal(&comb.mul(&add_small(&r, 1)), &p1_generator()));
        // Batched: infinity among finite points stays (0, 0) and spoils nothing.
        let got = comb.mul_many_affine(&[add_small(&r, 1), r, add_small(&[0; 32], 1)]);
        assert_eq!(got[0], p1_to_affine(&p1_generator()));
        assert!(p1_affine_is_inf(&got[1]));
        assert_eq!(got[2], got[0]);
    }
}

#[test]
fn batched_affine_matches_one_by_one() {
    let comb = GeneratorComb::new(8);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // More than blst's stride (1,536 points per inversion) so two strides are joined.
    let points: Vec<_> = (0..1600)
        .map(|_| {
            let mut k: [u8; 32] = rng.random();
            k[31] &= 0x3f;
            comb.mul(&k)
        })
        .collect();
    let batched = p1s_to_affine(&points);
    for (p, a) in points.iter().zip(&batched) {
        assert_eq!(*a, p1_to_affine(p));
    }
    assert!(p1s_to_affine(&[]).is_empty());
}
