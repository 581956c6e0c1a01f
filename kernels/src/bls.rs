//! Safe wrappers over blst's raw BLS12-381 bindings for pubkey aggregation: the CPU
//! twin of the GPU kernels in `shaders/bls12_381.wgsl` (see `quasar::accel::aggregate`),
//! conversions between blst's types and the 32-bit words the GPU stores, and the few
//! field and group operations the tests need.
//!
//! The only `unsafe` for BLS in the workspace is here. Every FFI call passes pointers
//! derived from Rust references (valid, aligned, initialized, and — for outputs —
//! exclusively borrowed), which is the whole contract of these blst functions: they
//! neither keep the pointers nor read beyond the pointed-to objects (plus, for
//! `blst_p1s_add`, the `npoints` pointers of the array).
//!
//! Points: [`blst_p1`] is Jacobian (x = X/Z², y = Y/Z³), infinity has Z = 0;
//! [`blst_p1_affine`] encodes infinity as (0, 0). Field elements ([`blst_fp`]) are in
//! Montgomery form x·2³⁸⁴ mod p, six little-endian u64 limbs = twelve little-endian u32
//! words, which is what the GPU keeps.

pub use blst::{blst_fp, blst_p1, blst_p1_affine};

/// An index outside the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexOutOfRange {
    /// Position of the offending index in the index list.
    pub position: usize,
    /// The index.
    pub index: u32,
    /// Points in the table.
    pub table_len: usize,
}

impl std::fmt::Display for IndexOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "index {} at position {} is outside the table of {} points",
            self.index, self.position, self.table_len
        )
    }
}

impl std::error::Error for IndexOutOfRange {}

/// The point at infinity (Jacobian, Z = 0).
pub fn p1_infinity() -> blst_p1 {
    blst_p1::default()
}

/// Σ table[i] over `indices` (duplicates count as often as they occur; an empty list is
/// infinity), by blst's batch-affine addition (`blst_p1s_add`: Montgomery's batch
/// inversion, ~5M+1S per point) over pointers into the table — no gathering copy.
/// Doublings (P + P), P + (−P) and infinity inputs are handled by blst.
pub fn sum_by_indices(
    table: &[blst_p1_affine],
    indices: &[u32],
) -> Result<blst_p1, IndexOutOfRange> {
    let mut pointers: Vec<*const blst_p1_affine> = Vec::with_capacity(indices.len());
    for (position, &index) in indices.iter().enumerate() {
        match table.get(index as usize) {
            Some(point) => pointers.push(point),
            None => {
                return Err(IndexOutOfRange {
                    position,
                    index,
                    table_len: table.len(),
                });
            }
        }
    }
    let mut sum = p1_infinity();
    if pointers.is_empty() {
        return Ok(sum);
    }
    // SAFETY: `pointers` holds `pointers.len()` non-null pointers, each derived from a
    // reference into `table`, which outlives the call; blst reads the points (a null
    // entry would mean "the point after the previous one", and there is none) and
    // writes only `sum`, an exclusive local.
    unsafe { blst::blst_p1s_add(&mut sum, pointers.as_ptr(), pointers.len()) };
    Ok(sum)
}

/// a + b, including a = b (doubling), a = −b and infinity on either side.
pub fn p1_add(a: &blst_p1, b: &blst_p1) -> blst_p1 {
    let mut out = blst_p1::default();
    // SAFETY: all three pointers come from references to initialized points; `out` is
    // an exclusive local.
    unsafe { blst::blst_p1_add_or_double(&mut out, a, b) };
    out
}

/// a + b for an affine b (any case, as [`p1_add`]).
pub fn p1_add_affine(a: &blst_p1, b: &blst_p1_affine) -> blst_p1 {
    let mut out = blst_p1::default();
    // SAFETY: pointers from references to initialized points; `out` is an exclusive local.
    unsafe { blst::blst_p1_add_or_double_affine(&mut out, a, b) };
    out
}

/// 2a.
pub fn p1_double(a: &blst_p1) -> blst_p1 {
    let mut out = blst_p1::default();
    // SAFETY: pointers from references to initialized points; `out` is an exclusive local.
    unsafe { blst::blst_p1_double(&mut out, a) };
    out
}

/// −a.
pub fn p1_neg(a: &blst_p1) -> blst_p1 {
    let mut out = *a;
    // SAFETY: `out` is an exclusive local copy, negated in place.
    unsafe { blst::blst_p1_cneg(&mut out, true) };
    out
}

/// −a for an affine point (infinity stays infinity).
pub fn p1_affine_neg(a: &blst_p1_affine) -> blst_p1_affine {
    p1_to_affine(&p1_neg(&p1_from_affine(a)))
}

/// The affine point as a Jacobian one (Z = 1, or infinity for (0, 0)).
pub fn p1_from_affine(a: &blst_p1_affine) -> blst_p1 {
    let mut out = blst_p1::default();
    // SAFETY: pointer from a reference to an initialized point; `out` is an exclusive local.
    unsafe { blst::blst_p1_from_affine(&mut out, a) };
    out
}

/// The affine form (one inversion); infinity becomes (0, 0).
pub fn p1_to_affine(a: &blst_p1) -> blst_p1_affine {
    let mut out = blst_p1_affine::default();
    // SAFETY: pointer from a reference to an initialized point; `out` is an exclusive local.
    unsafe { blst::blst_p1_to_affine(&mut out, a) };
    out
}

/// Whether `a` is the point at infinity.
pub fn p1_is_inf(a: &blst_p1) -> bool {
    // SAFETY: pointer from a reference to an initialized point; read only.
    unsafe { blst::blst_p1_is_inf(a) }
}

/// Whether `a` is the point at infinity, (0, 0).
pub fn p1_affine_is_inf(a: &blst_p1_affine) -> bool {
    // SAFETY: pointer from a reference to an initialized point; read only.
    unsafe { blst::blst_p1_affine_is_inf(a) }
}

/// Whether a and b are the same point (any Jacobian representatives).
pub fn p1_is_equal(a: &blst_p1, b: &blst_p1) -> bool {
    // SAFETY: pointers from references to initialized points; read only.
    unsafe { blst::blst_p1_is_equal(a, b) }
}

/// Whether the affine point is on the curve and in the order-r subgroup G1.
pub fn p1_affine_in_g1(a: &blst_p1_affine) -> bool {
    // SAFETY: pointer from a reference to an initialized point; read only.
    unsafe { blst::blst_p1_affine_in_g1(a) }
}

/// The 48-byte compressed (ZCash) encoding, as Ethereum stores pubkeys.
pub fn p1_compress(a: &blst_p1) -> [u8; 48] {
    let mut out = [0u8; 48];
    // SAFETY: `out` is 48 writable bytes, the size blst_p1_compress writes; the point
    // pointer comes from a reference.
    unsafe { blst::blst_p1_compress(out.as_mut_ptr(), a) };
    out
}

/// The 48-byte compressed encoding of an affine point.
pub fn p1_affine_compress(a: &blst_p1_affine) -> [u8; 48] {
    let mut out = [0u8; 48];
    // SAFETY: `out` is 48 writable bytes, the size blst_p1_affine_compress writes; the
    // point pointer comes from a reference.
    unsafe { blst::blst_p1_affine_compress(out.as_mut_ptr(), a) };
    out
}

/// k·a for a scalar k (for tests).
pub fn p1_mul_u64(a: &blst_p1, k: u64) -> blst_p1 {
    let mut out = blst_p1::default();
    let scalar = k.to_le_bytes();
    // SAFETY: `scalar` holds 8 little-endian bytes = 64 bits, the `nbits` passed; the
    // point pointers come from references; `out` is an exclusive local.
    unsafe { blst::blst_p1_mult(&mut out, a, scalar.as_ptr(), 64) };
    out
}

/// The standard generator of G1.
pub fn p1_generator() -> blst_p1 {
    // SAFETY: blst_p1_generator returns a pointer to a static, initialized constant.
    unsafe { *blst::blst_p1_generator() }
}

/// The affine forms of many points at once (Montgomery's trick: one inversion per
/// ~1,500 points, ~6 multiplications each); infinity becomes (0, 0).
pub fn p1s_to_affine(points: &[blst_p1]) -> Vec<blst_p1_affine> {
    let mut out = vec![blst_p1_affine::default(); points.len()];
    if points.is_empty() {
        return out;
    }
    let pointers: Vec<*const blst_p1> = points.iter().map(|p| p as *const blst_p1).collect();
    // SAFETY: `out` has `points.len()` initialized, exclusively borrowed entries, the
    // `npoints` blst writes; `pointers` holds `points.len()` non-null pointers, each from
    // a reference into `points` (which outlives the call), so blst never falls back to
    // "the point after the previous one"; it keeps none of them.
    unsafe { blst::blst_p1s_to_affine(out.as_mut_ptr(), pointers.as_ptr(), points.len()) };
    out
}

/// Multiplication of the G1 generator by 256-bit scalars through a comb of precomputed
/// multiples: the scalar is cut into `bits`-bit digits, and digit `j` selects
/// `d·2^(bits·j)·G` from window `j`'s table, so a product is one mixed addition per
/// nonzero digit (22 at 12 bits) and no doubling — against blst's `sk_to_pk`, ~255
/// doublings and ~50 additions. Tables: `⌈256/bits⌉ · (2^bits − 1)` affine points
/// (8 bits: 784 KiB, built in ~8k additions; 12 bits: 8.6 MiB, ~90k).
///
/// **Variable time** in the scalar (a table entry is chosen by each digit): for public
/// test keys (the interop keys of a devnet), never for secrets.
pub struct GeneratorComb {
    bits: u32,
    windows: usize,
    /// `table[j · (2^bits − 1) + d − 1] = d · 2^(bits·j) · G`.
    table: Vec<blst_p1_affine>,
}

impl GeneratorComb {
    /// The tables for `bits`-bit digits (1 ..= 16).
    pub fn new(bits: u32) -> Self {
        assert!((1..=16).contains(&bits), "comb digits of {bits} bits");
        let windows = 256usize.div_ceil(bits as usize);
        let per = (1usize << bits) - 1;
        let mut jacobian = Vec::with_capacity(windows * per);
        let mut base = p1_generator();
        for _ in 0..windows {
            let base_affine = p1_to_affine(&base);
            let mut acc = base;
            jacobian.push(acc);
            for _ in 1..per {
                acc = p1_add_affine(&acc, &base_affine);
                jacobian.push(acc);
            }
            for _ in 0..bits {
                base = p1_double(&base);
            }
        }
        Self {
            bits,
            windows,
            table: p1s_to_affine(&jacobian),
        }
    }

    /// Digit `j` of the little-endian scalar: bits `bits·j ..` (zero past bit 255).
    fn digit(&self, scalar_le: &[u8; 32], j: usize) -> usize {
        let offset = self.bits as usize * j;
        let mut word = 0u32;
        for k in 0..3 {
            if let Some(&b) = scalar_le.get(offset / 8 + k) {
                word |= (b as u32) << (8 * k);
            }
        }
        ((word >> (offset % 8)) & ((1u32 << self.bits) - 1)) as usize
    }

    /// k·G for the 256-bit little-endian scalar k (Jacobian; infinity for k = 0).
    pub fn mul(&self, scalar_le: &[u8; 32]) -> blst_p1 {
        let per = (1usize << self.bits) - 1;
        let mut acc = p1_infinity();
        for j in 0..self.windows {
            let d = self.digit(scalar_le, j);
            if d != 0 {
                acc = p1_add_affine(&acc, &self.table[j * per + d - 1]);
            }
        }
        acc
    }

    /// k·G for each scalar, in affine form (one batched inversion).
    pub fn mul_many_affine(&self, scalars_le: &[[u8; 32]]) -> Vec<blst_p1_affine> {
        let points: Vec<blst_p1> = scalars_le.iter().map(|k| self.mul(k)).collect();
        p1s_to_affine(&points)
    }
}

// ---- field elements and the GPU's words ----

/// The 12 little-endian u32 words of a field element's Montgomery form.
pub fn fp_to_words(a: &blst_fp) -> [u32; 12] {
    let mut w = [0u32; 12];
    for (i, limb) in a.l.iter().enumerate() {
        w[2 * i] = *limb as u32;
        w[2 * i + 1] = (*limb >> 32) as u32;
    }
    w
}

/// The field element whose Montgomery form has these words (no reduction: the words
/// must encode a value below p, which the GPU guarantees).
pub fn fp_from_words(w: &[u32; 12]) -> blst_fp {
    let mut a = blst_fp::default();
    for (i, limb) in a.l.iter_mut().enumerate() {
        *limb = u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32);
    }
    a
}

/// x then y of an affine point as 24 words (the GPU table's layout).
pub fn affine_to_words(a: &blst_p1_affine) -> [u32; 24] {
    let mut w = [0u32; 24];
    w[..12].copy_from_slice(&fp_to_words(&a.x));
    w[12..].copy_from_slice(&fp_to_words(&a.y));
    w
}

/// The affine point with these 24 words (x then y).
pub fn affine_from_words(w: &[u32; 24]) -> blst_p1_affine {
    let x: [u32; 12] = std::array::from_fn(|i| w[i]);
    let y: [u32; 12] = std::array::from_fn(|i| w[12 + i]);
    blst_p1_affine {
        x: fp_from_words(&x),
        y: fp_from_words(&y),
    }
}

/// X, Y, Z of a Jacobian point as 36 words.
pub fn p1_to_words(a: &blst_p1) -> [u32; 36] {
    let mut w = [0u32; 36];
    w[..12].copy_from_slice(&fp_to_words(&a.x));
    w[12..24].copy_from_slice(&fp_to_words(&a.y));
    w[24..].copy_from_slice(&fp_to_words(&a.z));
    w
}

/// The Jacobian point (blst_p1) with these X, Y, Z words.
pub fn p1_from_limbs(x: &[u32; 12], y: &[u32; 12], z: &[u32; 12]) -> blst_p1 {
    blst_p1 {
        x: fp_from_words(x),
        y: fp_from_words(y),
        z: fp_from_words(z),
    }
}

/// The element n (in Montgomery form).
pub fn fp_from_u64(n: u64) -> blst_fp {
    let mut out = blst_fp::default();
    let limbs = [n, 0, 0, 0, 0, 0];
    // SAFETY: blst_fp_from_uint64 reads 6 u64 limbs; `limbs` has exactly 6. `out` is an
    // exclusive local.
    unsafe { blst::blst_fp_from_uint64(&mut out, limbs.as_ptr()) };
    out
}

/// The element with this 48-byte big-endian encoding, reduced mod p.
pub fn fp_from_bendian(bytes: &[u8; 48]) -> blst_fp {
    let mut out = blst_fp::default();
    // SAFETY: blst_fp_from_bendian reads 48 bytes; `bytes` has exactly 48.
    unsafe { blst::blst_fp_from_bendian(&mut out, bytes.as_ptr()) };
    out
}

/// The 48-byte big-endian encoding of the element (out of Montgomery form).
pub fn fp_to_bendian(a: &blst_fp) -> [u8; 48] {
    let mut out = [0u8; 48];
    // SAFETY: blst_bendian_from_fp writes 48 bytes; `out` has exactly 48.
    unsafe { blst::blst_bendian_from_fp(out.as_mut_ptr(), a) };
    out
}

/// a·b mod p (Montgomery: the words of the result are a·b·2⁻³⁸⁴ of the inputs' words).
pub fn fp_mul(a: &blst_fp, b: &blst_fp) -> blst_fp {
    let mut out = blst_fp::default();
    // SAFETY: pointers from references to initialized elements; `out` is an exclusive local.
    unsafe { blst::blst_fp_mul(&mut out, a, b) };
    out
}

/// a² mod p.
pub fn fp_sqr(a: &blst_fp) -> blst_fp {
    let mut out = blst_fp::default();
    // SAFETY: pointers from references to initialized elements; `out` is an exclusive local.
    unsafe { blst::blst_fp_sqr(&mut out, a) };
    out
}

/// a + b mod p.
pub fn fp_add(a: &blst_fp, b: &blst_fp) -> blst_fp {
    let mut out = blst_fp::default();
    // SAFETY: pointers from references to initialized elements; `out` is an exclusive local.
    unsafe { blst::blst_fp_add(&mut out, a, b) };
    out
}

/// a − b mod p.
pub fn fp_sub(a: &blst_fp, b: &blst_fp) -> blst_fp {
    let mut out = blst_fp::default();
    // SAFETY: pointers from references to initialized elements; `out` is an exclusive local.
    unsafe { blst::blst_fp_sub(&mut out, a, b) };
    out
}

/// −a mod p.
pub fn fp_neg(a: &blst_fp) -> blst_fp {
    let mut out = blst_fp::default();
    // SAFETY: pointers from references to initialized elements; `out` is an exclusive local.
    unsafe { blst::blst_fp_cneg(&mut out, a, true) };
    out
}

/// a⁻¹ mod p (0 for 0).
pub fn fp_inverse(a: &blst_fp) -> blst_fp {
    let mut out = blst_fp::default();
    // SAFETY: pointers from references to initialized elements; `out` is an exclusive local.
    unsafe { blst::blst_fp_inverse(&mut out, a) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize) -> Vec<blst_p1_affine> {
        let g = p1_generator();
        let mut acc = g;
        (0..n)
            .map(|_| {
                let a = p1_to_affine(&acc);
                acc = p1_add(&acc, &g);
                a
            })
            .collect()
    }

    /// Σ by repeated single additions (blst_p1_add_or_double_affine).
    fn naive(table: &[blst_p1_affine], indices: &[u32]) -> blst_p1 {
        indices.iter().fold(p1_infinity(), |acc, &i| {
            p1_add_affine(&acc, &table[i as usize])
        })
    }

    #[test]
    fn sums_match_single_additions() {
        let table = points(40);
        let sets: Vec<Vec<u32>> = vec![
            vec![],
            vec![3],
            vec![0, 1],
            vec![5, 5],
            vec![7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7],
            (0..40).collect(),
            (0..40).chain(0..40).chain([1, 1, 2]).collect(),
            (0..33).rev().collect(),
        ];
        for set in &sets {
            let got = sum_by_indices(&table, set).unwrap();
            assert!(p1_is_equal(&got, &naive(&table, set)), "set {set:?}");
        }
        // k·G for the first n multiples: Σ_{i<n} (i+1)·G = n(n+1)/2 · G.
        let n = 40u64;
        let all: Vec<u32> = (0..n as u32).collect();
        let want = p1_mul_u64(&p1_generator(), n * (n + 1) / 2);
        assert!(p1_is_equal(&sum_by_indices(&table, &all).unwrap(), &want));
    }

    #[test]
    fn negations_and_infinity_cancel() {
        let mut table = points(20);
        let negs: Vec<blst_p1_affine> = table.iter().map(p1_affine_neg).collect();
        table.extend(negs);
        table.push(blst_p1_affine::default()); // infinity, index 40
                                               // P + (−P) alone, inside larger sets, and across a batch of 16+.
        assert!(p1_is_inf(&sum_by_indices(&table, &[4, 24]).unwrap()));
        assert!(p1_is_inf(
            &sum_by_indices(&table, &(0..40).collect::<Vec<_>>()).unwrap()
        ));
        assert!(p1_is_inf(&sum_by_indices(&table, &[40]).unwrap()));
        assert!(p1_is_inf(
            &sum_by_indices(&table, &[40, 40, 3, 23]).unwrap()
        ));
        let with_inf: Vec<u32> = (0..20).chain([40; 20]).collect();
        assert!(p1_is_equal(
            &sum_by_indices(&table, &with_inf).unwrap(),
            &sum_by_indices(&table, &(0..20).collect::<Vec<_>>()).unwrap()
        ));
        let s = sum_by_indices(&table, &[1, 2, 21, 40, 22, 5]).unwrap();
        assert!(p1_is_equal(&s, &p1_from_affine(&table[5])));
        assert!(p1_affine_is_inf(&p1_to_affine(&p1_infinity())));
    }

    #[test]
    fn out_of_range_is_an_error() {
        let table = points(4);
        let e = sum_by_indices(&table, &[0, 1, 4]).unwrap_err();
        assert_eq!(
            e,
            IndexOutOfRange {
                position: 2,
                index: 4,
                table_len: 4
            }
        );
        assert!(sum_by_indices(&table, &[u32::MAX]).is_err());
        assert!(sum_by_indices(&[], &[0]).is_err());
        assert!(p1_is_inf(&sum_by_indices(&[], &[]).unwrap()));
    }

    #[test]
    fn words_round_trip() {
        let a = p1_to_affine(&p1_mul_u64(&p1_generator(), 12345));
        assert!(p1_affine_in_g1(&a));
        assert_eq!(affine_from_words(&affine_to_words(&a)), a);
        let j = p1_mul_u64(&p1_generator(), 777);
        let w = p1_to_words(&j);
        let back = p1_from_limbs(
            w[..12].try_into().unwrap(),
            w[12..24].try_into().unwrap(),
            w[24..].try_into().unwrap(),
        );
        assert_eq!(back, j);
        // one in Montgomery form is 2^384 mod p.
        let one = fp_to_words(&fp_from_u64(1));
        assert_eq!(one[0], 0x0002_fffd);
        assert_eq!(one[11], 0x15f6_5ec3);
        let x = fp_from_u64(1234567);
        assert_eq!(fp_mul(&x, &fp_inverse(&x)), fp_from_u64(1));
        assert_eq!(fp_add(&x, &fp_neg(&x)), fp_from_u64(0));
        assert_eq!(fp_sub(&x, &x), fp_from_u64(0));
        assert_eq!(fp_sqr(&x), fp_mul(&x, &x));
        assert_eq!(fp_from_bendian(&fp_to_bendian(&x)), x);
        assert_eq!(p1_compress(&j), p1_affine_compress(&p1_to_affine(&j)));
        assert!(p1_is_equal(&p1_double(&j), &p1_add(&j, &j)));
    }
}
