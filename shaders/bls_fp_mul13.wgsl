// Montgomery multiplication for bls12_381.wgsl: 13-bit limbs with lazy carries.
//
// The 12 words of each operand are cut into 30 limbs of 13 bits (390 bits). A limb
// product is below 2^26, so the schoolbook product accumulates up to 30 products per
// column without carrying, and the separated Montgomery reduction adds up to 30 more
// (m·p_j, m = t_i·(−p^-1) mod 2^13) plus one carry: at most 60·(2^13−1)^2 + 2^19 < 2^32.
// Carries are propagated once per reduction row and once at the end. R = 2^390: the
// result is a·b·2^-390 mod p, so values in this build are x·2^390 mod p (the host
// converts blst's x·2^384 in and out). For a, b < p the result is below 2p; one
// conditional subtraction makes it < p.

// R mod p = 2^390 mod p.
const FP_ONE: Fp = Fp(
    0x00d1ff2eu, 0x46760000u, 0x9b4800acu, 0x84b80337u, 0xe882431cu, 0x0dd9a7e0u,
    0xb683dcf8u, 0xc26c26d0u, 0x63c4a5eeu, 0x29f14576u, 0x7f3e804bu, 0x015de996u
);

// p in 13-bit limbs, least significant first.
const FP_P13: array<u32, 30> = array<u32, 30>(
    2731u, 8189u, 8191u, 7679u, 7071u, 8191u, 1359u, 8150u, 3071u, 245u,
    7561u, 3425u, 2575u, 6249u, 7580u, 599u, 4997u, 7207u, 7634u, 3784u,
    6861u, 421u, 7897u, 884u, 6731u, 7988u, 3679u, 980u, 17u, 13u
);

// −p^-1 mod 2^13.
const FP_PINV13: u32 = 8189u;

fn fp_to_limbs13(a: Fp) -> array<u32, 30> {
    var l: array<u32, 30>;
    for (var k = 0u; k < 30u; k++) {
        let bit = 13u * k;
        let w = bit >> 5u;
        let s = bit & 31u;
        var v = a[w] >> s;
        if s > 19u && w < 11u {
            v = v | (a[w + 1u] << (32u - s));
        }
        l[k] = v & 0x1fffu;
    }
    return l;
}

fn fp_mul(a: Fp, b: Fp) -> Fp {
    let al = fp_to_limbs13(a);
    let bl = fp_to_limbs13(b);
    var t: array<u32, 60>;
    for (var i = 0u; i < 30u; i++) {
        for (var j = 0u; j < 30u; j++) {
            t[i + j] = t[i + j] + al[i] * bl[j];
        }
    }
    for (var i = 0u; i < 30u; i++) {
        let m = (t[i] * FP_PINV13) & 0x1fffu;
        for (var j = 0u; j < 30u; j++) {
            t[i + j] = t[i + j] + m * FP_P13[j];
        }
        t[i + 1u] = t[i + 1u] + (t[i] >> 13u);
    }
    var r: Fp;
    var c = 0u;
    for (var k = 0u; k < 30u; k++) {
        let v = t[30u + k] + c;
        let limb = v & 0x1fffu;
        c = v >> 13u;
        let bit = 13u * k;
        let w = bit >> 5u;
        let s = bit & 31u;
        r[w] = r[w] | (limb << s);
        if s > 19u && w < 11u {
            r[w + 1u] = r[w + 1u] | (limb >> (32u - s));
        }
    }
    return fp_reduce_once(r);
}
