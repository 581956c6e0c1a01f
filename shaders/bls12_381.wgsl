// BLS12-381 base field Fp and the group G1 (y^2 = x^3 + 4 over Fp) in baseline WGSL:
// u32 only, no 64-bit integers, no extensions. Host side: src/accel/aggregate/.
//
// This file is linked (concatenated) with exactly one Montgomery multiplication, which
// defines `fp_mul` and `FP_ONE`:
//   bls_fp_mul13.wgsl  13-bit limbs (30), product scanning with lazy carries, R = 2^390
//                      (the default: the faster one on lavapipe)
//   bls_fp_mul16.wgsl  16-bit half products, CIOS over 24 limbs, R = 2^384 (blst's form)
// and then with the kernels (bls_aggregate.wgsl, or bls_test.wgsl for the unit tests).
//
// Fp: 12 little-endian 32-bit words, fully reduced (< p) after every operation, in
// Montgomery form x·R mod p. Storage keeps the same 12 words per coordinate (a blst_fp,
// six little-endian u64 limbs, is these words on a little-endian host, converted from
// R = 2^384 to the linked multiplication's R by the host). Addition, subtraction,
// negation and multiplication by small integers do not depend on R.
//
// G1: homogeneous projective coordinates (X : Y : Z), x = X/Z, y = Y/Z, infinity =
// (0 : Y : 0) with Y != 0, and the complete formulas of Renes, Costello and Batina
// ("Complete addition formulas for prime order elliptic curves", 2016, Algorithms 7
// and 8 for a = 0, b3 = 3·4 = 12). They are complete on every curve with no point of
// order 2; E(Fp) of BLS12-381 has odd order h·r, so P + Q, P + P, P + (−P) = infinity
// and infinity + P all go through the same straight-line code, no branches (so there
// is no separate doubling function: the aggregation never needs one). The only
// branch left is an affine input encoded as (0, 0) (blst's encoding of infinity, which
// the mixed formula cannot take): it leaves the accumulator unchanged.
// Jacobian output for blst (x = X/Z^2, y = Y/Z^3): (X·Z, Y·Z^2, Z); infinity has Z = 0.
//
// Code style, measured on lavapipe: straight-line `let`s, no loops over limbs and no
// indexed local arrays. Loops and arrays made pipeline builds 10-40x slower (minutes)
// and the code 2x slower; the straight-line field code is generated (see the markers).

alias Fp = array<u32, 12>;

fn fp_zero() -> Fp {
    return Fp();
}

fn fp_is_zero(a: Fp) -> bool {
    return (a[0] | a[1] | a[2] | a[3] | a[4] | a[5] | a[6] | a[7] | a[8] | a[9] | a[10] | a[11]) == 0u;
}

// BEGIN GENERATED (codegen in src/accel/aggregate/wgsl.rs)
// a − p if a >= p, else a (for a < 2p).
fn fp_reduce_once(a: Fp) -> Fp {
    let d0 = a[0] - 0xffffaaabu; let w0 = select(0u, 1u, a[0] < 0xffffaaabu);
    let de1 = a[1] - 0xb9feffffu; let d1 = de1 - w0; let w1 = select(0u, 1u, a[1] < 0xb9feffffu) | select(0u, 1u, de1 < w0);
    let de2 = a[2] - 0xb153ffffu; let d2 = de2 - w1; let w2 = select(0u, 1u, a[2] < 0xb153ffffu) | select(0u, 1u, de2 < w1);
    let de3 = a[3] - 0x1eabfffeu; let d3 = de3 - w2; let w3 = select(0u, 1u, a[3] < 0x1eabfffeu) | select(0u, 1u, de3 < w2);
    let de4 = a[4] - 0xf6b0f624u; let d4 = de4 - w3; let w4 = select(0u, 1u, a[4] < 0xf6b0f624u) | select(0u, 1u, de4 < w3);
    let de5 = a[5] - 0x6730d2a0u; let d5 = de5 - w4; let w5 = select(0u, 1u, a[5] < 0x6730d2a0u) | select(0u, 1u, de5 < w4);
    let de6 = a[6] - 0xf38512bfu; let d6 = de6 - w5; let w6 = select(0u, 1u, a[6] < 0xf38512bfu) | select(0u, 1u, de6 < w5);
    let de7 = a[7] - 0x64774b84u; let d7 = de7 - w6; let w7 = select(0u, 1u, a[7] < 0x64774b84u) | select(0u, 1u, de7 < w6);
    let de8 = a[8] - 0x434bacd7u; let d8 = de8 - w7; let w8 = select(0u, 1u, a[8] < 0x434bacd7u) | select(0u, 1u, de8 < w7);
    let de9 = a[9] - 0x4b1ba7b6u; let d9 = de9 - w8; let w9 = select(0u, 1u, a[9] < 0x4b1ba7b6u) | select(0u, 1u, de9 < w8);
    let de10 = a[10] - 0x397fe69au; let d10 = de10 - w9; let w10 = select(0u, 1u, a[10] < 0x397fe69au) | select(0u, 1u, de10 < w9);
    let de11 = a[11] - 0x1a0111eau; let d11 = de11 - w10; let w11 = select(0u, 1u, a[11] < 0x1a0111eau) | select(0u, 1u, de11 < w10);
    if w11 != 0u {
        return a;
    }
    return Fp(d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11);
}

// (a + b) mod p for a, b < p. The sum is below 2p < 2^382: no carry leaves word 11.
fn fp_add(a: Fp, b: Fp) -> Fp {
    let s0 = a[0] + b[0]; let c0 = select(0u, 1u, s0 < a[0]);
    let se1 = a[1] + b[1]; let s1 = se1 + c0; let c1 = select(0u, 1u, se1 < a[1]) | select(0u, 1u, s1 < se1);
    let se2 = a[2] + b[2]; let s2 = se2 + c1; let c2 = select(0u, 1u, se2 < a[2]) | select(0u, 1u, s2 < se2);
    let se3 = a[3] + b[3]; let s3 = se3 + c2; let c3 = select(0u, 1u, se3 < a[3]) | select(0u, 1u, s3 < se3);
    let se4 = a[4] + b[4]; let s4 = se4 + c3; let c4 = select(0u, 1u, se4 < a[4]) | select(0u, 1u, s4 < se4);
    let se5 = a[5] + b[5]; let s5 = se5 + c4; let c5 = select(0u, 1u, se5 < a[5]) | select(0u, 1u, s5 < se5);
    let se6 = a[6] + b[6]; let s6 = se6 + c5; let c6 = select(0u, 1u, se6 < a[6]) | select(0u, 1u, s6 < se6);
    let se7 = a[7] + b[7]; let s7 = se7 + c6; let c7 = select(0u, 1u, se7 < a[7]) | select(0u, 1u, s7 < se7);
    let se8 = a[8] + b[8]; let s8 = se8 + c7; let c8 = select(0u, 1u, se8 < a[8]) | select(0u, 1u, s8 < se8);
    let se9 = a[9] + b[9]; let s9 = se9 + c8; let c9 = select(0u, 1u, se9 < a[9]) | select(0u, 1u, s9 < se9);
    let se10 = a[10] + b[10]; let s10 = se10 + c9; let c10 = select(0u, 1u, se10 < a[10]) | select(0u, 1u, s10 < se10);
    let se11 = a[11] + b[11]; let s11 = se11 + c10; let c11 = select(0u, 1u, se11 < a[11]) | select(0u, 1u, s11 < se11);
    return fp_reduce_once(Fp(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11));
}

// (a − b) mod p for a, b < p: on a borrow, p is added back (mask = all ones).
fn fp_sub(a: Fp, b: Fp) -> Fp {
    let d0 = a[0] - b[0]; let w0 = select(0u, 1u, a[0] < b[0]);
    let de1 = a[1] - b[1]; let d1 = de1 - w0; let w1 = select(0u, 1u, a[1] < b[1]) | select(0u, 1u, de1 < w0);
    let de2 = a[2] - b[2]; let d2 = de2 - w1; let w2 = select(0u, 1u, a[2] < b[2]) | select(0u, 1u, de2 < w1);
    let de3 = a[3] - b[3]; let d3 = de3 - w2; let w3 = select(0u, 1u, a[3] < b[3]) | select(0u, 1u, de3 < w2);
    let de4 = a[4] - b[4]; let d4 = de4 - w3; let w4 = select(0u, 1u, a[4] < b[4]) | select(0u, 1u, de4 < w3);
    let de5 = a[5] - b[5]; let d5 = de5 - w4; let w5 = select(0u, 1u, a[5] < b[5]) | select(0u, 1u, de5 < w4);
    let de6 = a[6] - b[6]; let d6 = de6 - w5; let w6 = select(0u, 1u, a[6] < b[6]) | select(0u, 1u, de6 < w5);
    let de7 = a[7] - b[7]; let d7 = de7 - w6; let w7 = select(0u, 1u, a[7] < b[7]) | select(0u, 1u, de7 < w6);
    let de8 = a[8] - b[8]; let d8 = de8 - w7; let w8 = select(0u, 1u, a[8] < b[8]) | select(0u, 1u, de8 < w7);
    let de9 = a[9] - b[9]; let d9 = de9 - w8; let w9 = select(0u, 1u, a[9] < b[9]) | select(0u, 1u, de9 < w8);
    let de10 = a[10] - b[10]; let d10 = de10 - w9; let w10 = select(0u, 1u, a[10] < b[10]) | select(0u, 1u, de10 < w9);
    let de11 = a[11] - b[11]; let d11 = de11 - w10; let w11 = select(0u, 1u, a[11] < b[11]) | select(0u, 1u, de11 < w10);
    let mask = 0u - w11;
    let x = Fp(d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11);
    let s0 = x[0] + (0xffffaaabu & mask); let c0 = select(0u, 1u, s0 < x[0]);
    let se1 = x[1] + (0xb9feffffu & mask); let s1 = se1 + c0; let c1 = select(0u, 1u, se1 < x[1]) | select(0u, 1u, s1 < se1);
    let se2 = x[2] + (0xb153ffffu & mask); let s2 = se2 + c1; let c2 = select(0u, 1u, se2 < x[2]) | select(0u, 1u, s2 < se2);
    let se3 = x[3] + (0x1eabfffeu & mask); let s3 = se3 + c2; let c3 = select(0u, 1u, se3 < x[3]) | select(0u, 1u, s3 < se3);
    let se4 = x[4] + (0xf6b0f624u & mask); let s4 = se4 + c3; let c4 = select(0u, 1u, se4 < x[4]) | select(0u, 1u, s4 < se4);
    let se5 = x[5] + (0x6730d2a0u & mask); let s5 = se5 + c4; let c5 = select(0u, 1u, se5 < x[5]) | select(0u, 1u, s5 < se5);
    let se6 = x[6] + (0xf38512bfu & mask); let s6 = se6 + c5; let c6 = select(0u, 1u, se6 < x[6]) | select(0u, 1u, s6 < se6);
    let se7 = x[7] + (0x64774b84u & mask); let s7 = se7 + c6; let c7 = select(0u, 1u, se7 < x[7]) | select(0u, 1u, s7 < se7);
    let se8 = x[8] + (0x434bacd7u & mask); let s8 = se8 + c7; let c8 = select(0u, 1u, se8 < x[8]) | select(0u, 1u, s8 < se8);
    let se9 = x[9] + (0x4b1ba7b6u & mask); let s9 = se9 + c8; let c9 = select(0u, 1u, se9 < x[9]) | select(0u, 1u, s9 < se9);
    let se10 = x[10] + (0x397fe69au & mask); let s10 = se10 + c9; let c10 = select(0u, 1u, se10 < x[10]) | select(0u, 1u, s10 < se10);
    let se11 = x[11] + (0x1a0111eau & mask); let s11 = se11 + c10; let c11 = select(0u, 1u, se11 < x[11]) | select(0u, 1u, s11 < se11);
    return Fp(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11);
}
// END GENERATED

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

// P + Q, complete (RCB Algorithm 7, a = 0): 12M + 2·mul12.
fn g1_add(p: G1, q: G1) -> G1 {
    let t0 = fp_mul(p.x, q.x);
    let t1 = fp_mul(p.y, q.y);
    let t2 = fp_mul(p.z, q.z);
    let t3 = fp_sub(fp_mul(fp_add(p.x, p.y), fp_add(q.x, q.y)), fp_add(t0, t1));
    let t4 = fp_sub(fp_mul(fp_add(p.y, p.z), fp_add(q.y, q.z)), fp_add(t1, t2));
    let y3a = fp_sub(fp_mul(fp_add(p.x, p.z), fp_add(q.x, q.z)), fp_add(t0, t2));
    let t0x3 = fp_add(fp_dbl(t0), t0);
    let t2b = fp_mul12(t2);
    let z3a = fp_add(t1, t2b);
    let t1b = fp_sub(t1, t2b);
    let y3b = fp_mul12(y3a);
    let x3 = fp_sub(fp_mul(t3, t1b), fp_mul(t4, y3b));
    let y3 = fp_add(fp_mul(t1b, z3a), fp_mul(y3b, t0x3));
    let z3 = fp_add(fp_mul(z3a, t4), fp_mul(t0x3, t3));
    return G1(x3, y3, z3);
}

// P + (qx, qy) with an affine Q (RCB Algorithm 8, a = 0): 11M + 2·mul12. Complete for
// every P; Q = (0, 0) (infinity) returns P.
fn g1_add_affine(p: G1, qx: Fp, qy: Fp) -> G1 {
    if fp_is_zero(qx) && fp_is_zero(qy) {
        return p;
    }
    let t0 = fp_mul(p.x, qx);
    let t1 = fp_mul(p.y, qy);
    let t3 = fp_sub(fp_mul(fp_add(qx, qy), fp_add(p.x, p.y)), fp_add(t0, t1));
    let t4 = fp_add(fp_mul(qy, p.z), p.y);
    let y3a = fp_mul12(fp_add(fp_mul(qx, p.z), p.x));
    let t0x3 = fp_add(fp_dbl(t0), t0);
    let t2 = fp_mul12(p.z);
    let z3a = fp_add(t1, t2);
    let t1b = fp_sub(t1, t2);
    let x3 = fp_sub(fp_mul(t3, t1b), fp_mul(t4, y3a));
    let y3 = fp_add(fp_mul(t1b, z3a), fp_mul(y3a, t0x3));
    let z3 = fp_add(fp_mul(z3a, t4), fp_mul(t0x3, t3));
    return G1(x3, y3, z3);
}

// Projective (X : Y : Z) to blst's Jacobian (X·Z, Y·Z^2, Z); infinity keeps Z = 0.
fn g1_to_jacobian(p: G1) -> G1 {
    let zz = fp_sqr(p.z);
    return G1(fp_mul(p.x, p.z), fp_mul(p.y, zz), p.z);
}
