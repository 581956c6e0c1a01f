// BLS12-381 base field Fp and the group G1 (y^2 = x^3 + 4 over Fp) in baseline WGSL:
// u32 only, no 64-bit integers, no extensions. Host side: src/accel/aggregate.rs.
//
// This file is linked (concatenated) with exactly one Montgomery multiplication,
// which defines `fp_mul` and `FP_ONE`:
//   bls_fp_mul16.wgsl  16-bit half products, CIOS over 24 limbs, R = 2^384: the same
//                      Montgomery form as blst's blst_fp, so table points and results
//                      are blst's own words, no conversion (the default: it measured faster)
//   bls_fp_mul13.wgsl  13-bit limbs (30), schoolbook product with lazy carries, then
//                      the reduction; R = 2^390 (the host converts in and out)
// and then with the kernels (bls_aggregate.wgsl, or bls_test.wgsl for the unit tests).
//
// Fp: 12 little-endian 32-bit words, fully reduced (< p) after every operation, in
// Montgomery form x·R mod p. Storage keeps the same 12 words per coordinate: a blst_fp
// (6 little-endian u64 limbs) is exactly these words on a little-endian host. Addition,
// subtraction, negation and multiplication by small integers do not depend on R.
//
// G1: homogeneous projective coordinates (X : Y : Z), x = X/Z, y = Y/Z, infinity =
// (0 : Y : 0) with Y != 0, and the complete formulas of Renes, Costello and Batina
// ("Complete addition formulas for prime order elliptic curves", 2016, Algorithms 7, 8
// and 9 for a = 0, b3 = 3·4 = 12). They are complete on every curve with no point of
// order 2; E(Fp) of BLS12-381 has odd order h·r, so P + Q, P + P, P + (−P) = infinity
// and infinity + P all go through the same straight-line code, no branches. The only
// branch left is an affine input encoded as (0, 0) (blst's encoding of infinity, which
// the mixed formula cannot take): it leaves the accumulator unchanged.
// Jacobian output for blst (x = X/Z^2, y = Y/Z^3): (X·Z, Y·Z^2, Z); infinity has Z = 0.

alias Fp = array<u32, 12>;

const FP_P: Fp = Fp(
    0xffffaaabu, 0xb9feffffu, 0xb153ffffu, 0x1eabfffeu, 0xf6b0f624u, 0x6730d2a0u,
    0xf38512bfu, 0x64774b84u, 0x434bacd7u, 0x4b1ba7b6u, 0x397fe69au, 0x1a0111eau
);

fn fp_zero() -> Fp {
    return Fp();
}

fn fp_is_zero(a: Fp) -> bool {
    return (a[0] | a[1] | a[2] | a[3] | a[4] | a[5] | a[6] | a[7] | a[8] | a[9] | a[10] | a[11]) == 0u;
}

// a − p if a >= p, else a. For a < 2p.
fn fp_reduce_once(a: Fp) -> Fp {
    var d: Fp;
    var borrow = 0u;
    for (var i = 0u; i < 12u; i++) {
        let x = a[i];
        let y = FP_P[i];
        let t = x - y;
        let b1 = select(0u, 1u, x < y);
        d[i] = t - borrow;
        borrow = b1 | select(0u, 1u, t < borrow);
    }
    if borrow != 0u {
        return a;
    }
    return d;
}

// (a + b) mod p for a, b < p. The sum is below 2p < 2^382, so no carry leaves word 11.
fn fp_add(a: Fp, b: Fp) -> Fp {
    var s: Fp;
    var carry = 0u;
    for (var i = 0u; i < 12u; i++) {
        let t = a[i] + b[i];
        let c1 = select(0u, 1u, t < a[i]);
        s[i] = t + carry;
        carry = c1 | select(0u, 1u, s[i] < t);
    }
    return fp_reduce_once(s);
}

// (a − b) mod p for a, b < p.
fn fp_sub(a: Fp, b: Fp) -> Fp {
    var d: Fp;
    var borrow = 0u;
    for (var i = 0u; i < 12u; i++) {
        let x = a[i];
        let y = b[i];
        let t = x - y;
        let b1 = select(0u, 1u, x < y);
        d[i] = t - borrow;
        borrow = b1 | select(0u, 1u, t < borrow);
    }
    // On a borrow, add p back (mask = all ones), else add 0.
    let mask = 0u - borrow;
    var r: Fp;
    var carry = 0u;
    for (var i = 0u; i < 12u; i++) {
        let y = FP_P[i] & mask;
        let t = d[i] + y;
        let c1 = select(0u, 1u, t < y);
        r[i] = t + carry;
        carry = c1 | select(0u, 1u, r[i] < t);
    }
    return r;
}

fn fp_neg(a: Fp) -> Fp {
    return fp_sub(fp_zero(), a);
}

fn fp_dbl(a: Fp) -> Fp {
    return fp_add(a, a);
}

// 12·a = 8a + 4a: multiplication by b3 = 3·b of the curve y^2 = x^3 + 4.
fn fp_mul12(a: Fp) -> Fp {
    let a4 = fp_dbl(fp_dbl(a));
    return fp_add(fp_dbl(a4), a4);
}

fn fp_sqr(a: Fp) -> Fp {
    return fp_mul(a, a);
}

struct G1 {
    x: Fp,
    y: Fp,
    z: Fp,
}

fn g1_infinity() -> G1 {
    return G1(fp_zero(), FP_ONE, fp_zero());
}

fn g1_is_infinity(p: G1) -> bool {
    return fp_is_zero(p.z);
}

// The affine point (x, y) lifted to Z = 1; (0, 0) is infinity.
fn g1_from_affine(x: Fp, y: Fp) -> G1 {
    if fp_is_zero(x) && fp_is_zero(y) {
        return g1_infinity();
    }
    return G1(x, y, FP_ONE);
}

// The formulas run in rounds of independent products, `for k { m[k] = l[k]·r[k] }`:
// the multiplication is long straight-line code, and a loop instantiates it once per
// function instead of once per product (every driver inlines every call), which keeps
// pipeline builds fast (lavapipe: seconds instead of minutes) and the code in the
// instruction cache.

// P + Q, complete (RCB Algorithm 7, a = 0): 12M in two rounds of 6, + 2·mul12.
fn g1_add(p: G1, q: G1) -> G1 {
    var l = array<Fp, 6>(p.x, p.y, p.z, fp_add(p.x, p.y), fp_add(p.y, p.z), fp_add(p.x, p.z));
    var r = array<Fp, 6>(q.x, q.y, q.z, fp_add(q.x, q.y), fp_add(q.y, q.z), fp_add(q.x, q.z));
    var m: array<Fp, 6>;
    for (var round = 0u; round < 2u; round++) {
        for (var k = 0u; k < 6u; k++) {
            m[k] = fp_mul(l[k], r[k]);
        }
        if round == 0u {
            // m = X1X2, Y1Y2, Z1Z2, (X1+Y1)(X2+Y2), (Y1+Z1)(Y2+Z2), (X1+Z1)(X2+Z2)
            let t0 = m[0];
            let t1 = m[1];
            let t2 = fp_mul12(m[2]);
            let t3 = fp_sub(m[3], fp_add(t0, t1));
            let t4 = fp_sub(m[4], fp_add(t1, m[2]));
            let y3 = fp_mul12(fp_sub(m[5], fp_add(t0, m[2])));
            let t0x3 = fp_add(fp_dbl(t0), t0);
            let z3 = fp_add(t1, t2);
            let t1b = fp_sub(t1, t2);
            // X3 = t3·t1 − t4·y3, Y3 = t1·z3 + y3·t0, Z3 = z3·t4 + t0·t3
            l = array<Fp, 6>(t3, t4, t1b, y3, z3, t0x3);
            r = array<Fp, 6>(t1b, y3, z3, t0x3, t4, t3);
        }
    }
    return G1(fp_sub(m[0], m[1]), fp_add(m[2], m[3]), fp_add(m[4], m[5]));
}

// P + (qx, qy) with an affine Q (RCB Algorithm 8, a = 0): 11M in rounds of 5 and 6,
// + 2·mul12. Complete for every P; Q = (0, 0) (infinity) returns P.
fn g1_add_affine(p: G1, qx: Fp, qy: Fp) -> G1 {
    if fp_is_zero(qx) && fp_is_zero(qy) {
        return p;
    }
    var l = array<Fp, 6>(p.x, p.y, fp_add(qx, qy), qy, qx, fp_zero());
    var r = array<Fp, 6>(qx, qy, fp_add(p.x, p.y), p.z, p.z, fp_zero());
    var m: array<Fp, 6>;
    for (var round = 0u; round < 2u; round++) {
        for (var k = 0u; k < 5u + round; k++) {
            m[k] = fp_mul(l[k], r[k]);
        }
        if round == 0u {
            // m = X1X2, Y1Y2, (X2+Y2)(X1+Y1), Y2Z1, X2Z1
            let t0 = m[0];
            let t1 = m[1];
            let t3 = fp_sub(m[2], fp_add(t0, t1));
            let t4 = fp_add(m[3], p.y);
            let y3 = fp_mul12(fp_add(m[4], p.x));
            let t0x3 = fp_add(fp_dbl(t0), t0);
            let t2 = fp_mul12(p.z);
            let z3 = fp_add(t1, t2);
            let t1b = fp_sub(t1, t2);
            l = array<Fp, 6>(t3, t4, t1b, y3, z3, t0x3);
            r = array<Fp, 6>(t1b, y3, z3, t0x3, t4, t3);
        }
    }
    return G1(fp_sub(m[0], m[1]), fp_add(m[2], m[3]), fp_add(m[4], m[5]));
}

// 2P (RCB Algorithm 9, a = 0): 8 products in two rounds of 4, + mul12.
fn g1_double(p: G1) -> G1 {
    var l = array<Fp, 4>(p.y, p.y, p.z, p.x);
    var r = array<Fp, 4>(p.y, p.z, p.z, p.y);
    var m: array<Fp, 4>;
    for (var round = 0u; round < 2u; round++) {
        for (var k = 0u; k < 4u; k++) {
            m[k] = fp_mul(l[k], r[k]);
        }
        if round == 0u {
            // m = Y², YZ, Z², XY
            let t0 = m[0];
            let z8 = fp_dbl(fp_dbl(fp_dbl(t0)));
            let t2 = fp_mul12(m[2]);
            let y3 = fp_add(t0, t2);
            let t0b = fp_sub(t0, fp_add(fp_dbl(t2), t2));
            // X3 = 2·t0b·XY, Y3 = t2·z8 + t0b·y3, Z3 = YZ·z8
            l = array<Fp, 4>(t0b, t2, t0b, m[1]);
            r = array<Fp, 4>(m[3], z8, y3, z8);
        }
    }
    return G1(fp_dbl(m[0]), fp_add(m[1], m[2]), m[3]);
}

// Projective (X : Y : Z) to blst's Jacobian (X·Z, Y·Z^2, Z); infinity keeps Z = 0.
fn g1_to_jacobian(p: G1) -> G1 {
    var l = array<Fp, 2>(p.z, p.x);
    var r = array<Fp, 2>(p.z, p.z);
    var m: array<Fp, 2>;
    for (var round = 0u; round < 2u; round++) {
        for (var k = 0u; k < 2u - round; k++) {
            m[k] = fp_mul(l[k], r[k]);
        }
        if round == 0u {
            // m = Z², XZ; then Y·Z²
            l[0] = p.y;
            r[0] = m[0];
        }
    }
    return G1(m[1], m[0], p.z);
}
