// Montgomery multiplication for bls12_381.wgsl: 16-bit half products, CIOS.
//
// WGSL has no 32×32→64 multiply, so the 384-bit operands are split into 24 limbs of
// 16 bits and multiplied with Coarsely Integrated Operand Scanning (Koç, Acar, Kaliski
// 1996) over radix 2^16: for each limb b_i of b, t += a·b_i, then m = t_0·(−p^-1) mod
// 2^16 and t = (t + m·p) / 2^16. Every step t_j + a_j·b_i + carry is at most
// (2^16−1) + (2^16−1)^2 + (2^16−1) = 2^32 − 1, so it fits a u32 exactly, and the carry
// is the high half. R = 2^384: the result is a·b·2^-384 mod p, blst's own Montgomery
// form, so FP_ONE is blst's one and table words need no conversion. For a, b < p
// the CIOS result is below 2p; one conditional subtraction makes it < p.

// R mod p = 2^384 mod p.
const FP_ONE: Fp = Fp(
    0x0002fffdu, 0x76090000u, 0xc40c0002u, 0xebf4000bu, 0x53c758bau, 0x5f489857u,
    0x70525745u, 0x77ce5853u, 0xa256ec6du, 0x5c071a97u, 0xfa80e493u, 0x15f65ec3u
);

// p in 16-bit limbs, least significant first.
const FP_P16: array<u32, 24> = array<u32, 24>(
    0xaaabu, 0xffffu, 0xffffu, 0xb9feu, 0xffffu, 0xb153u, 0xfffeu, 0x1eabu,
    0xf624u, 0xf6b0u, 0xd2a0u, 0x6730u, 0x12bfu, 0xf385u, 0x4b84u, 0x6477u,
    0xacd7u, 0x434bu, 0xa7b6u, 0x4b1bu, 0xe69au, 0x397fu, 0x11eau, 0x1a01u
);

// −p^-1 mod 2^16.
const FP_PINV16: u32 = 0xfffdu;

fn fp_mul(a: Fp, b: Fp) -> Fp {
    var al: array<u32, 24>;
    for (var i = 0u; i < 12u; i++) {
        al[2u * i] = a[i] & 0xffffu;
        al[2u * i + 1u] = a[i] >> 16u;
    }
    var t: array<u32, 26>;
    for (var i = 0u; i < 24u; i++) {
        let bi = (b[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
        var c = 0u;
        for (var j = 0u; j < 24u; j++) {
            let s = t[j] + al[j] * bi + c;
            t[j] = s & 0xffffu;
            c = s >> 16u;
        }
        let s24 = t[24] + c;
        t[24] = s24 & 0xffffu;
        t[25] = s24 >> 16u;
        let m = (t[0] * FP_PINV16) & 0xffffu;
        c = (t[0] + m * FP_P16[0]) >> 16u;
        for (var j = 1u; j < 24u; j++) {
            let s = t[j] + m * FP_P16[j] + c;
            t[j - 1u] = s & 0xffffu;
            c = s >> 16u;
        }
        let s23 = t[24] + c;
        t[23] = s23 & 0xffffu;
        t[24] = t[25] + (s23 >> 16u);
    }
    var r: Fp;
    for (var i = 0u; i < 12u; i++) {
        r[i] = t[2u * i] | (t[2u * i + 1u] << 16u);
    }
    return fp_reduce_once(r);
}
