// SHA-256 merkle kernels for quasar (host side: src/accel/gpu.rs).
//
// A node is 32 bytes = 8 u32 words as stored in memory (little-endian loads of the
// digest bytes). SHA-256 works on big-endian words, so nodes are byte-swapped on load
// and the digests swapped back on store. A "pair" is a 64-byte block left || right; its
// digest is SHA-256 of that 64-byte message: the block, then the constant padding block
// (0x80, zeros, bit length 512) whose K[i] + W[i] schedule is the constant PAD_KW
// below. Baseline WGSL only: u32, no extensions.
//
// The compressions are written out round by round with `let` only (SSA values, no
// function-scope variables, no dynamic indexing), so every schedule word can stay in
// a register on every driver (a version with `var`s ran ~2.4x slower on lavapipe).
// Round i of the first block: t = h + Σ1(e) + Ch(e,f,g) + K[i] + w_i;
// a' = t + Σ0(a) + Maj(a,b,c); e' = d + t; the other words shift down.
//
// Kernels (one bind group for all dispatches of a tree; params at a dynamic offset):
//   merkle_level: one level; invocation i writes node i of level L+1 (one hash each).
//   merkle_fused: a workgroup of 256 invocations reads 512 nodes of level L and reduces
//                 them `fuse` (1..=9) levels in workgroup memory, writing 512 >> fuse
//                 nodes of level L+fuse. On H100/H200 it is 8-30% faster for trees of
//                 2^12..2^18 leaves and equal above (the upload dominates); on lavapipe,
//                 whose barriers are costly, it is 7-40x slower, so the host uses
//                 merkle_level on software adapters.
// A missing right sibling (index >= m_in) is zero_hashes[level]; in the fused kernel the
// padding then propagates: H(zero[k] || zero[k]) = zero[k+1], so nodes past the real
// ones are the right zero hashes and are simply not written.
// Dispatches may be 2D (x * y workgroups, x <= 65535): the linear workgroup index is
// y * num_workgroups.x + x, and workgroups past the end return (uniformly).

struct Params {
    src: u32,    // node offset of the input level in `nodes`
    dst: u32,    // node offset of the output level in `nodes`
    m_in: u32,   // number of real nodes in the input level
    level: u32,  // tree level of the input (index into `zeros`)
    fuse: u32,   // merkle_fused: levels to reduce (1..=9)
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read_write> nodes: array<u32>;
@group(0) @binding(1) var<storage, read> zeros: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const K: array<u32, 64> = array<u32, 64>(
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u
);

// K[i] + W[i] of the constant second block of every 64-byte message (0x80 terminator,
// zeros, bit length 512), precomputed.
const PAD_KW: array<u32, 64> = array<u32, 64>(
    0xc28a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf374u,
    0x649b69c1u, 0xf0fe4786u, 0x0fe1edc6u, 0x240cf254u, 0x4fe9346fu, 0x6cc984beu, 0x61b9411eu, 0x16f988fau,
    0xf2c65152u, 0xa88e5a6du, 0xb019fc65u, 0xb9d99ec7u, 0x9a1231c3u, 0xe70eeaa0u, 0xfdb1232bu, 0xc7353eb0u,
    0x3069bad5u, 0xcb976d5fu, 0x5a0f118fu, 0xdc1eeefdu, 0x0a35b689u, 0xde0b7a04u, 0x58f4ca9du, 0xe15d5b16u,
    0x007f3e86u, 0x37088980u, 0xa507ea32u, 0x6fab9537u, 0x17406110u, 0x0d8cd6f1u, 0xcdaa3b6du, 0xc0bbbe37u,
    0x83613bdau, 0xdb48a363u, 0x0b02e931u, 0x6fd15ca7u, 0x521afacau, 0x31338431u, 0x6ed41a95u, 0x6d437890u,
    0xc39c91f2u, 0x9eccabbdu, 0xb5c9a0e6u, 0x532fb63cu, 0xd2c741c6u, 0x07237ea3u, 0xa4954b68u, 0x4c191d76u
);

struct State {
    a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32,
}

fn rotr(x: u32, n: u32) -> u32 {
    return (x >> n) | (x << (32u - n));
}

fn bswap(x: u32) -> u32 {
    let y = ((x & 0x00ff00ffu) << 8u) | ((x >> 8u) & 0x00ff00ffu);
    return (y << 16u) | (y >> 16u);
}

fn ssig0(x: u32) -> u32 { return rotr(x, 7u) ^ rotr(x, 18u) ^ (x >> 3u); }
fn ssig1(x: u32) -> u32 { return rotr(x, 17u) ^ rotr(x, 19u) ^ (x >> 10u); }

fn bsig0(x: u32) -> u32 { return rotr(x, 2u) ^ rotr(x, 13u) ^ rotr(x, 22u); }
fn bsig1(x: u32) -> u32 { return rotr(x, 6u) ^ rotr(x, 11u) ^ rotr(x, 25u); }
fn ch(x: u32, y: u32, z: u32) -> u32 { return (x & y) ^ (~x & z); }
fn maj(x: u32, y: u32, z: u32) -> u32 { return (x & y) ^ (x & z) ^ (y & z); }

// SHA-256 of a 64-byte message given as 16 big-endian words; returns the digest state.
fn sha256_64(m: array<u32, 16>) -> State {
    let w0 = m[0];
    let w1 = m[1];
    let w2 = m[2];
    let w3 = m[3];
    let w4 = m[4];
    let w5 = m[5];
    let w6 = m[6];
    let w7 = m[7];
    let w8 = m[8];
    let w9 = m[9];
    let w10 = m[10];
    let w11 = m[11];
    let w12 = m[12];
    let w13 = m[13];
    let w14 = m[14];
    let w15 = m[15];
    let a0 = 0x6a09e667u; let b0 = 0xbb67ae85u; let c0 = 0x3c6ef372u; let d0 = 0xa54ff53au;
    let e0 = 0x510e527fu; let f0 = 0x9b05688cu; let g0 = 0x1f83d9abu; let h0 = 0x5be0cd19u;
    let tx_0 = h0 + bsig1(e0) + ch(e0, f0, g0) + K[0] + w0;
    let ax_0 = tx_0 + bsig0(a0) + maj(a0, b0, c0); let ex_0 = d0 + tx_0;
    let tx_1 = g0 + bsig1(ex_0) + ch(ex_0, e0, f0) + K[1] + w1;
    let ax_1 = tx_1 + bsig0(ax_0) + maj(ax_0, a0, b0); let ex_1 = c0 + tx_1;
    let tx_2 = f0 + bsig1(ex_1) + ch(ex_1, ex_0, e0) + K[2] + w2;
    let ax_2 = tx_2 + bsig0(ax_1) + maj(ax_1, ax_0, a0); let ex_2 = b0 + tx_2;
    let tx_3 = e0 + bsig1(ex_2) + ch(ex_2, ex_1, ex_0) + K[3] + w3;
    let ax_3 = tx_3 + bsig0(ax_2) + maj(ax_2, ax_1, ax_0); let ex_3 = a0 + tx_3;
    let tx_4 = ex_0 + bsig1(ex_3) + ch(ex_3, ex_2, ex_1) + K[4] + w4;
    let ax_4 = tx_4 + bsig0(ax_3) + maj(ax_3, ax_2, ax_1); let ex_4 = ax_0 + tx_4;
    let tx_5 = ex_1 + bsig1(ex_4) + ch(ex_4, ex_3, ex_2) + K[5] + w5;
    let ax_5 = tx_5 + bsig0(ax_4) + maj(ax_4, ax_3, ax_2); let ex_5 = ax_1 + tx_5;
    let tx_6 = ex_2 + bsig1(ex_5) + ch(ex_5, ex_4, ex_3) + K[6] + w6;
    let ax_6 = tx_6 + bsig0(ax_5) + maj(ax_5, ax_4, ax_3); let ex_6 = ax_2 + tx_6;
    let tx_7 = ex_3 + bsig1(ex_6) + ch(ex_6, ex_5, ex_4) + K[7] + w7;
    let ax_7 = tx_7 + bsig0(ax_6) + maj(ax_6, ax_5, ax_4); let ex_7 = ax_3 + tx_7;
    let tx_8 = ex_4 + bsig1(ex_7) + ch(ex_7, ex_6, ex_5) + K[8] + w8;
    let ax_8 = tx_8 + bsig0(ax_7) + maj(ax_7, ax_6, ax_5); let ex_8 = ax_4 + tx_8;
    let tx_9 = ex_5 + bsig1(ex_8) + ch(ex_8, ex_7, ex_6) + K[9] + w9;
    let ax_9 = tx_9 + bsig0(ax_8) + maj(ax_8, ax_7, ax_6); let ex_9 = ax_5 + tx_9;
    let tx_10 = ex_6 + bsig1(ex_9) + ch(ex_9, ex_8, ex_7) + K[10] + w10;
    let ax_10 = tx_10 + bsig0(ax_9) + maj(ax_9, ax_8, ax_7); let ex_10 = ax_6 + tx_10;
    let tx_11 = ex_7 + bsig1(ex_10) + ch(ex_10, ex_9, ex_8) + K[11] + w11;
    let ax_11 = tx_11 + bsig0(ax_10) + maj(ax_10, ax_9, ax_8); let ex_11 = ax_7 + tx_11;
    let tx_12 = ex_8 + bsig1(ex_11) + ch(ex_11, ex_10, ex_9) + K[12] + w12;
    let ax_12 = tx_12 + bsig0(ax_11) + maj(ax_11, ax_10, ax_9); let ex_12 = ax_8 + tx_12;
    let tx_13 = ex_9 + bsig1(ex_12) + ch(ex_12, ex_11, ex_10) + K[13] + w13;
    let ax_13 = tx_13 + bsig0(ax_12) + maj(ax_12, ax_11, ax_10); let ex_13 = ax_9 + tx_13;
    let tx_14 = ex_10 + bsig1(ex_13) + ch(ex_13, ex_12, ex_11) + K[14] + w14;
    let ax_14 = tx_14 + bsig0(ax_13) + maj(ax_13, ax_12, ax_11); let ex_14 = ax_10 + tx_14;
    let tx_15 = ex_11 + bsig1(ex_14) + ch(ex_14, ex_13, ex_12) + K[15] + w15;
    let ax_15 = tx_15 + bsig0(ax_14) + maj(ax_14, ax_13, ax_12); let ex_15 = ax_11 + tx_15;
    let w16 = ssig1(w14) + w9 + ssig0(w1) + w0;
    let tx_16 = ex_12 + bsig1(ex_15) + ch(ex_15, ex_14, ex_13) + K[16] + w16;
    let ax_16 = tx_16 + bsig0(ax_15) + maj(ax_15, ax_14, ax_13); let ex_16 = ax_12 + tx_16;
    let w17 = ssig1(w15) + w10 + ssig0(w2) + w1;
    let tx_17 = ex_13 + bsig1(ex_16) + ch(ex_16, ex_15, ex_14) + K[17] + w17;
    let ax_17 = tx_17 + bsig0(ax_16) + maj(ax_16, ax_15, ax_14); let ex_17 = ax_13 + tx_17;
    let w18 = ssig1(w16) + w11 + ssig0(w3) + w2;
    let tx_18 = ex_14 + bsig1(ex_17) + ch(ex_17, ex_16, ex_15) + K[18] + w18;
    let ax_18 = tx_18 + bsig0(ax_17) + maj(ax_17, ax_16, ax_15); let ex_18 = ax_14 + tx_18;
    let w19 = ssig1(w17) + w12 + ssig0(w4) + w3;
    let tx_19 = ex_15 + bsig1(ex_18) + ch(ex_18, ex_17, ex_16) + K[19] + w19;
    let ax_19 = tx_19 + bsig0(ax_18) + maj(ax_18, ax_17, ax_16); let ex_19 = ax_15 + tx_19;
    let w20 = ssig1(w18) + w13 + ssig0(w5) + w4;
    let tx_20 = ex_16 + bsig1(ex_19) + ch(ex_19, ex_18, ex_17) + K[20] + w20;
    let ax_20 = tx_20 + bsig0(ax_19) + maj(ax_19, ax_18, ax_17); let ex_20 = ax_16 + tx_20;
    let w21 = ssig1(w19) + w14 + ssig0(w6) + w5;
    let tx_21 = ex_17 + bsig1(ex_20) + ch(ex_20, ex_19, ex_18) + K[21] + w21;
    let ax_21 = tx_21 + bsig0(ax_20) + maj(ax_20, ax_19, ax_18); let ex_21 = ax_17 + tx_21;
    let w22 = ssig1(w20) + w15 + ssig0(w7) + w6;
    let tx_22 = ex_18 + bsig1(ex_21) + ch(ex_21, ex_20, ex_19) + K[22] + w22;
    let ax_22 = tx_22 + bsig0(ax_21) + maj(ax_21, ax_20, ax_19); let ex_22 = ax_18 + tx_22;
    let w23 = ssig1(w21) + w16 + ssig0(w8) + w7;
    let tx_23 = ex_19 + bsig1(ex_22) + ch(ex_22, ex_21, ex_20) + K[23] + w23;
    let ax_23 = tx_23 + bsig0(ax_22) + maj(ax_22, ax_21, ax_20); let ex_23 = ax_19 + tx_23;
    let w24 = ssig1(w22) + w17 + ssig0(w9) + w8;
    let tx_24 = ex_20 + bsig1(ex_23) + ch(ex_23, ex_22, ex_21) + K[24] + w24;
    let ax_24 = tx_24 + bsig0(ax_23) + maj(ax_23, ax_22, ax_21); let ex_24 = ax_20 + tx_24;
    let w25 = ssig1(w23) + w18 + ssig0(w10) + w9;
    let tx_25 = ex_21 + bsig1(ex_24) + ch(ex_24, ex_23, ex_22) + K[25] + w25;
    let ax_25 = tx_25 + bsig0(ax_24) + maj(ax_24, ax_23, ax_22); let ex_25 = ax_21 + tx_25;
    let w26 = ssig1(w24) + w19 + ssig0(w11) + w10;
    let tx_26 = ex_22 + bsig1(ex_25) + ch(ex_25, ex_24, ex_23) + K[26] + w26;
    let ax_26 = tx_26 + bsig0(ax_25) + maj(ax_25, ax_24, ax_23); let ex_26 = ax_22 + tx_26;
    let w27 = ssig1(w25) + w20 + ssig0(w12) + w11;
    let tx_27 = ex_23 + bsig1(ex_26) + ch(ex_26, ex_25, ex_24) + K[27] + w27;
    let ax_27 = tx_27 + bsig0(ax_26) + maj(ax_26, ax_25, ax_24); let ex_27 = ax_23 + tx_27;
    let w28 = ssig1(w26) + w21 + ssig0(w13) + w12;
    let tx_28 = ex_24 + bsig1(ex_27) + ch(ex_27, ex_26, ex_25) + K[28] + w28;
    let ax_28 = tx_28 + bsig0(ax_27) + maj(ax_27, ax_26, ax_25); let ex_28 = ax_24 + tx_28;
    let w29 = ssig1(w27) + w22 + ssig0(w14) + w13;
    let tx_29 = ex_25 + bsig1(ex_28) + ch(ex_28, ex_27, ex_26) + K[29] + w29;
    let ax_29 = tx_29 + bsig0(ax_28) + maj(ax_28, ax_27, ax_26); let ex_29 = ax_25 + tx_29;
    let w30 = ssig1(w28) + w23 + ssig0(w15) + w14;
    let tx_30 = ex_26 + bsig1(ex_29) + ch(ex_29, ex_28, ex_27) + K[30] + w30;
    let ax_30 = tx_30 + bsig0(ax_29) + maj(ax_29, ax_28, ax_27); let ex_30 = ax_26 + tx_30;
    let w31 = ssig1(w29) + w24 + ssig0(w16) + w15;
    let tx_31 = ex_27 + bsig1(ex_30) + ch(ex_30, ex_29, ex_28) + K[31] + w31;
    let ax_31 = tx_31 + bsig0(ax_30) + maj(ax_30, ax_29, ax_28); let ex_31 = ax_27 + tx_31;
    let w32 = ssig1(w30) + w25 + ssig0(w17) + w16;
    let tx_32 = ex_28 + bsig1(ex_31) + ch(ex_31, ex_30, ex_29) + K[32] + w32;
    let ax_32 = tx_32 + bsig0(ax_31) + maj(ax_31, ax_30, ax_29); let ex_32 = ax_28 + tx_32;
    let w33 = ssig1(w31) + w26 + ssig0(w18) + w17;
    let tx_33 = ex_29 + bsig1(ex_32) + ch(ex_32, ex_31, ex_30) + K[33] + w33;
    let ax_33 = tx_33 + bsig0(ax_32) + maj(ax_32, ax_31, ax_30); let ex_33 = ax_29 + tx_33;
    let w34 = ssig1(w32) + w27 + ssig0(w19) + w18;
    let tx_34 = ex_30 + bsig1(ex_33) + ch(ex_33, ex_32, ex_31) + K[34] + w34;
    let ax_34 = tx_34 + bsig0(ax_33) + maj(ax_33, ax_32, ax_31); let ex_34 = ax_30 + tx_34;
    let w35 = ssig1(w33) + w28 + ssig0(w20) + w19;
    let tx_35 = ex_31 + bsig1(ex_34) + ch(ex_34, ex_33, ex_32) + K[35] + w35;
    let ax_35 = tx_35 + bsig0(ax_34) + maj(ax_34, ax_33, ax_32); let ex_35 = ax_31 + tx_35;
    let w36 = ssig1(w34) + w29 + ssig0(w21) + w20;
    let tx_36 = ex_32 + bsig1(ex_35) + ch(ex_35, ex_34, ex_33) + K[36] + w36;
    let ax_36 = tx_36 + bsig0(ax_35) + maj(ax_35, ax_34, ax_33); let ex_36 = ax_32 + tx_36;
    let w37 = ssig1(w35) + w30 + ssig0(w22) + w21;
    let tx_37 = ex_33 + bsig1(ex_36) + ch(ex_36, ex_35, ex_34) + K[37] + w37;
    let ax_37 = tx_37 + bsig0(ax_36) + maj(ax_36, ax_35, ax_34); let ex_37 = ax_33 + tx_37;
    let w38 = ssig1(w36) + w31 + ssig0(w23) + w22;
    let tx_38 = ex_34 + bsig1(ex_37) + ch(ex_37, ex_36, ex_35) + K[38] + w38;
    let ax_38 = tx_38 + bsig0(ax_37) + maj(ax_37, ax_36, ax_35); let ex_38 = ax_34 + tx_38;
    let w39 = ssig1(w37) + w32 + ssig0(w24) + w23;
    let tx_39 = ex_35 + bsig1(ex_38) + ch(ex_38, ex_37, ex_36) + K[39] + w39;
    let ax_39 = tx_39 + bsig0(ax_38) + maj(ax_38, ax_37, ax_36); let ex_39 = ax_35 + tx_39;
    let w40 = ssig1(w38) + w33 + ssig0(w25) + w24;
    let tx_40 = ex_36 + bsig1(ex_39) + ch(ex_39, ex_38, ex_37) + K[40] + w40;
    let ax_40 = tx_40 + bsig0(ax_39) + maj(ax_39, ax_38, ax_37); let ex_40 = ax_36 + tx_40;
    let w41 = ssig1(w39) + w34 + ssig0(w26) + w25;
    let tx_41 = ex_37 + bsig1(ex_40) + ch(ex_40, ex_39, ex_38) + K[41] + w41;
    let ax_41 = tx_41 + bsig0(ax_40) + maj(ax_40, ax_39, ax_38); let ex_41 = ax_37 + tx_41;
    let w42 = ssig1(w40) + w35 + ssig0(w27) + w26;
    let tx_42 = ex_38 + bsig1(ex_41) + ch(ex_41, ex_40, ex_39) + K[42] + w42;
    let ax_42 = tx_42 + bsig0(ax_41) + maj(ax_41, ax_40, ax_39); let ex_42 = ax_38 + tx_42;
    let w43 = ssig1(w41) + w36 + ssig0(w28) + w27;
    let tx_43 = ex_39 + bsig1(ex_42) + ch(ex_42, ex_41, ex_40) + K[43] + w43;
    let ax_43 = tx_43 + bsig0(ax_42) + maj(ax_42, ax_41, ax_40); let ex_43 = ax_39 + tx_43;
    let w44 = ssig1(w42) + w37 + ssig0(w29) + w28;
    let tx_44 = ex_40 + bsig1(ex_43) + ch(ex_43, ex_42, ex_41) + K[44] + w44;
    let ax_44 = tx_44 + bsig0(ax_43) + maj(ax_43, ax_42, ax_41); let ex_44 = ax_40 + tx_44;
    let w45 = ssig1(w43) + w38 + ssig0(w30) + w29;
    let tx_45 = ex_41 + bsig1(ex_44) + ch(ex_44, ex_43, ex_42) + K[45] + w45;
    let ax_45 = tx_45 + bsig0(ax_44) + maj(ax_44, ax_43, ax_42); let ex_45 = ax_41 + tx_45;
    let w46 = ssig1(w44) + w39 + ssig0(w31) + w30;
    let tx_46 = ex_42 + bsig1(ex_45) + ch(ex_45, ex_44, ex_43) + K[46] + w46;
    let ax_46 = tx_46 + bsig0(ax_45) + maj(ax_45, ax_44, ax_43); let ex_46 = ax_42 + tx_46;
    let w47 = ssig1(w45) + w40 + ssig0(w32) + w31;
    let tx_47 = ex_43 + bsig1(ex_46) + ch(ex_46, ex_45, ex_44) + K[47] + w47;
    let ax_47 = tx_47 + bsig0(ax_46) + maj(ax_46, ax_45, ax_44); let ex_47 = ax_43 + tx_47;
    let w48 = ssig1(w46) + w41 + ssig0(w33) + w32;
    let tx_48 = ex_44 + bsig1(ex_47) + ch(ex_47, ex_46, ex_45) + K[48] + w48;
    let ax_48 = tx_48 + bsig0(ax_47) + maj(ax_47, ax_46, ax_45); let ex_48 = ax_44 + tx_48;
    let w49 = ssig1(w47) + w42 + ssig0(w34) + w33;
    let tx_49 = ex_45 + bsig1(ex_48) + ch(ex_48, ex_47, ex_46) + K[49] + w49;
    let ax_49 = tx_49 + bsig0(ax_48) + maj(ax_48, ax_47, ax_46); let ex_49 = ax_45 + tx_49;
    let w50 = ssig1(w48) + w43 + ssig0(w35) + w34;
    let tx_50 = ex_46 + bsig1(ex_49) + ch(ex_49, ex_48, ex_47) + K[50] + w50;
    let ax_50 = tx_50 + bsig0(ax_49) + maj(ax_49, ax_48, ax_47); let ex_50 = ax_46 + tx_50;
    let w51 = ssig1(w49) + w44 + ssig0(w36) + w35;
    let tx_51 = ex_47 + bsig1(ex_50) + ch(ex_50, ex_49, ex_48) + K[51] + w51;
    let ax_51 = tx_51 + bsig0(ax_50) + maj(ax_50, ax_49, ax_48); let ex_51 = ax_47 + tx_51;
    let w52 = ssig1(w50) + w45 + ssig0(w37) + w36;
    let tx_52 = ex_48 + bsig1(ex_51) + ch(ex_51, ex_50, ex_49) + K[52] + w52;
    let ax_52 = tx_52 + bsig0(ax_51) + maj(ax_51, ax_50, ax_49); let ex_52 = ax_48 + tx_52;
    let w53 = ssig1(w51) + w46 + ssig0(w38) + w37;
    let tx_53 = ex_49 + bsig1(ex_52) + ch(ex_52, ex_51, ex_50) + K[53] + w53;
    let ax_53 = tx_53 + bsig0(ax_52) + maj(ax_52, ax_51, ax_50); let ex_53 = ax_49 + tx_53;
    let w54 = ssig1(w52) + w47 + ssig0(w39) + w38;
    let tx_54 = ex_50 + bsig1(ex_53) + ch(ex_53, ex_52, ex_51) + K[54] + w54;
    let ax_54 = tx_54 + bsig0(ax_53) + maj(ax_53, ax_52, ax_51); let ex_54 = ax_50 + tx_54;
    let w55 = ssig1(w53) + w48 + ssig0(w40) + w39;
    let tx_55 = ex_51 + bsig1(ex_54) + ch(ex_54, ex_53, ex_52) + K[55] + w55;
    let ax_55 = tx_55 + bsig0(ax_54) + maj(ax_54, ax_53, ax_52); let ex_55 = ax_51 + tx_55;
    let w56 = ssig1(w54) + w49 + ssig0(w41) + w40;
    let tx_56 = ex_52 + bsig1(ex_55) + ch(ex_55, ex_54, ex_53) + K[56] + w56;
    let ax_56 = tx_56 + bsig0(ax_55) + maj(ax_55, ax_54, ax_53); let ex_56 = ax_52 + tx_56;
    let w57 = ssig1(w55) + w50 + ssig0(w42) + w41;
    let tx_57 = ex_53 + bsig1(ex_56) + ch(ex_56, ex_55, ex_54) + K[57] + w57;
    let ax_57 = tx_57 + bsig0(ax_56) + maj(ax_56, ax_55, ax_54); let ex_57 = ax_53 + tx_57;
    let w58 = ssig1(w56) + w51 + ssig0(w43) + w42;
    let tx_58 = ex_54 + bsig1(ex_57) + ch(ex_57, ex_56, ex_55) + K[58] + w58;
    let ax_58 = tx_58 + bsig0(ax_57) + maj(ax_57, ax_56, ax_55); let ex_58 = ax_54 + tx_58;
    let w59 = ssig1(w57) + w52 + ssig0(w44) + w43;
    let tx_59 = ex_55 + bsig1(ex_58) + ch(ex_58, ex_57, ex_56) + K[59] + w59;
    let ax_59 = tx_59 + bsig0(ax_58) + maj(ax_58, ax_57, ax_56); let ex_59 = ax_55 + tx_59;
    let w60 = ssig1(w58) + w53 + ssig0(w45) + w44;
    let tx_60 = ex_56 + bsig1(ex_59) + ch(ex_59, ex_58, ex_57) + K[60] + w60;
    let ax_60 = tx_60 + bsig0(ax_59) + maj(ax_59, ax_58, ax_57); let ex_60 = ax_56 + tx_60;
    let w61 = ssig1(w59) + w54 + ssig0(w46) + w45;
    let tx_61 = ex_57 + bsig1(ex_60) + ch(ex_60, ex_59, ex_58) + K[61] + w61;
    let ax_61 = tx_61 + bsig0(ax_60) + maj(ax_60, ax_59, ax_58); let ex_61 = ax_57 + tx_61;
    let w62 = ssig1(w60) + w55 + ssig0(w47) + w46;
    let tx_62 = ex_58 + bsig1(ex_61) + ch(ex_61, ex_60, ex_59) + K[62] + w62;
    let ax_62 = tx_62 + bsig0(ax_61) + maj(ax_61, ax_60, ax_59); let ex_62 = ax_58 + tx_62;
    let w63 = ssig1(w61) + w56 + ssig0(w48) + w47;
    let tx_63 = ex_59 + bsig1(ex_62) + ch(ex_62, ex_61, ex_60) + K[63] + w63;
    let ax_63 = tx_63 + bsig0(ax_62) + maj(ax_62, ax_61, ax_60); let ex_63 = ax_59 + tx_63;
    let m0 = 0x6a09e667u + ax_63;
    let m1 = 0xbb67ae85u + ax_62;
    let m2 = 0x3c6ef372u + ax_61;
    let m3 = 0xa54ff53au + ax_60;
    let m4 = 0x510e527fu + ex_63;
    let m5 = 0x9b05688cu + ex_62;
    let m6 = 0x1f83d9abu + ex_61;
    let m7 = 0x5be0cd19u + ex_60;
    let ty_0 = m7 + bsig1(m4) + ch(m4, m5, m6) + PAD_KW[0];
    let ay_0 = ty_0 + bsig0(m0) + maj(m0, m1, m2); let ey_0 = m3 + ty_0;
    let ty_1 = m6 + bsig1(ey_0) + ch(ey_0, m4, m5) + PAD_KW[1];
    let ay_1 = ty_1 + bsig0(ay_0) + maj(ay_0, m0, m1); let ey_1 = m2 + ty_1;
    let ty_2 = m5 + bsig1(ey_1) + ch(ey_1, ey_0, m4) + PAD_KW[2];
    let ay_2 = ty_2 + bsig0(ay_1) + maj(ay_1, ay_0, m0); let ey_2 = m1 + ty_2;
    let ty_3 = m4 + bsig1(ey_2) + ch(ey_2, ey_1, ey_0) + PAD_KW[3];
    let ay_3 = ty_3 + bsig0(ay_2) + maj(ay_2, ay_1, ay_0); let ey_3 = m0 + ty_3;
    let ty_4 = ey_0 + bsig1(ey_3) + ch(ey_3, ey_2, ey_1) + PAD_KW[4];
    let ay_4 = ty_4 + bsig0(ay_3) + maj(ay_3, ay_2, ay_1); let ey_4 = ay_0 + ty_4;
    let ty_5 = ey_1 + bsig1(ey_4) + ch(ey_4, ey_3, ey_2) + PAD_KW[5];
    let ay_5 = ty_5 + bsig0(ay_4) + maj(ay_4, ay_3, ay_2); let ey_5 = ay_1 + ty_5;
    let ty_6 = ey_2 + bsig1(ey_5) + ch(ey_5, ey_4, ey_3) + PAD_KW[6];
    let ay_6 = ty_6 + bsig0(ay_5) + maj(ay_5, ay_4, ay_3); let ey_6 = ay_2 + ty_6;
    let ty_7 = ey_3 + bsig1(ey_6) + ch(ey_6, ey_5, ey_4) + PAD_KW[7];
    let ay_7 = ty_7 + bsig0(ay_6) + maj(ay_6, ay_5, ay_4); let ey_7 = ay_3 + ty_7;
    let ty_8 = ey_4 + bsig1(ey_7) + ch(ey_7, ey_6, ey_5) + PAD_KW[8];
    let ay_8 = ty_8 + bsig0(ay_7) + maj(ay_7, ay_6, ay_5); let ey_8 = ay_4 + ty_8;
    let ty_9 = ey_5 + bsig1(ey_8) + ch(ey_8, ey_7, ey_6) + PAD_KW[9];
    let ay_9 = ty_9 + bsig0(ay_8) + maj(ay_8, ay_7, ay_6); let ey_9 = ay_5 + ty_9;
    let ty_10 = ey_6 + bsig1(ey_9) + ch(ey_9, ey_8, ey_7) + PAD_KW[10];
    let ay_10 = ty_10 + bsig0(ay_9) + maj(ay_9, ay_8, ay_7); let ey_10 = ay_6 + ty_10;
    let ty_11 = ey_7 + bsig1(ey_10) + ch(ey_10, ey_9, ey_8) + PAD_KW[11];
    let ay_11 = ty_11 + bsig0(ay_10) + maj(ay_10, ay_9, ay_8); let ey_11 = ay_7 + ty_11;
    let ty_12 = ey_8 + bsig1(ey_11) + ch(ey_11, ey_10, ey_9) + PAD_KW[12];
    let ay_12 = ty_12 + bsig0(ay_11) + maj(ay_11, ay_10, ay_9); let ey_12 = ay_8 + ty_12;
    let ty_13 = ey_9 + bsig1(ey_12) + ch(ey_12, ey_11, ey_10) + PAD_KW[13];
    let ay_13 = ty_13 + bsig0(ay_12) + maj(ay_12, ay_11, ay_10); let ey_13 = ay_9 + ty_13;
    let ty_14 = ey_10 + bsig1(ey_13) + ch(ey_13, ey_12, ey_11) + PAD_KW[14];
    let ay_14 = ty_14 + bsig0(ay_13) + maj(ay_13, ay_12, ay_11); let ey_14 = ay_10 + ty_14;
    let ty_15 = ey_11 + bsig1(ey_14) + ch(ey_14, ey_13, ey_12) + PAD_KW[15];
    let ay_15 = ty_15 + bsig0(ay_14) + maj(ay_14, ay_13, ay_12); let ey_15 = ay_11 + ty_15;
    let ty_16 = ey_12 + bsig1(ey_15) + ch(ey_15, ey_14, ey_13) + PAD_KW[16];
    let ay_16 = ty_16 + bsig0(ay_15) + maj(ay_15, ay_14, ay_13); let ey_16 = ay_12 + ty_16;
    let ty_17 = ey_13 + bsig1(ey_16) + ch(ey_16, ey_15, ey_14) + PAD_KW[17];
    let ay_17 = ty_17 + bsig0(ay_16) + maj(ay_16, ay_15, ay_14); let ey_17 = ay_13 + ty_17;
    let ty_18 = ey_14 + bsig1(ey_17) + ch(ey_17, ey_16, ey_15) + PAD_KW[18];
    let ay_18 = ty_18 + bsig0(ay_17) + maj(ay_17, ay_16, ay_15); let ey_18 = ay_14 + ty_18;
    let ty_19 = ey_15 + bsig1(ey_18) + ch(ey_18, ey_17, ey_16) + PAD_KW[19];
    let ay_19 = ty_19 + bsig0(ay_18) + maj(ay_18, ay_17, ay_16); let ey_19 = ay_15 + ty_19;
    let ty_20 = ey_16 + bsig1(ey_19) + ch(ey_19, ey_18, ey_17) + PAD_KW[20];
    let ay_20 = ty_20 + bsig0(ay_19) + maj(ay_19, ay_18, ay_17); let ey_20 = ay_16 + ty_20;
    let ty_21 = ey_17 + bsig1(ey_20) + ch(ey_20, ey_19, ey_18) + PAD_KW[21];
    let ay_21 = ty_21 + bsig0(ay_20) + maj(ay_20, ay_19, ay_18); let ey_21 = ay_17 + ty_21;
    let ty_22 = ey_18 + bsig1(ey_21) + ch(ey_21, ey_20, ey_19) + PAD_KW[22];
    let ay_22 = ty_22 + bsig0(ay_21) + maj(ay_21, ay_20, ay_19); let ey_22 = ay_18 + ty_22;
    let ty_23 = ey_19 + bsig1(ey_22) + ch(ey_22, ey_21, ey_20) + PAD_KW[23];
    let ay_23 = ty_23 + bsig0(ay_22) + maj(ay_22, ay_21, ay_20); let ey_23 = ay_19 + ty_23;
    let ty_24 = ey_20 + bsig1(ey_23) + ch(ey_23, ey_22, ey_21) + PAD_KW[24];
    let ay_24 = ty_24 + bsig0(ay_23) + maj(ay_23, ay_22, ay_21); let ey_24 = ay_20 + ty_24;
    let ty_25 = ey_21 + bsig1(ey_24) + ch(ey_24, ey_23, ey_22) + PAD_KW[25];
    let ay_25 = ty_25 + bsig0(ay_24) + maj(ay_24, ay_23, ay_22); let ey_25 = ay_21 + ty_25;
    let ty_26 = ey_22 + bsig1(ey_25) + ch(ey_25, ey_24, ey_23) + PAD_KW[26];
    let ay_26 = ty_26 + bsig0(ay_25) + maj(ay_25, ay_24, ay_23); let ey_26 = ay_22 + ty_26;
    let ty_27 = ey_23 + bsig1(ey_26) + ch(ey_26, ey_25, ey_24) + PAD_KW[27];
    let ay_27 = ty_27 + bsig0(ay_26) + maj(ay_26, ay_25, ay_24); let ey_27 = ay_23 + ty_27;
    let ty_28 = ey_24 + bsig1(ey_27) + ch(ey_27, ey_26, ey_25) + PAD_KW[28];
    let ay_28 = ty_28 + bsig0(ay_27) + maj(ay_27, ay_26, ay_25); let ey_28 = ay_24 + ty_28;
    let ty_29 = ey_25 + bsig1(ey_28) + ch(ey_28, ey_27, ey_26) + PAD_KW[29];
    let ay_29 = ty_29 + bsig0(ay_28) + maj(ay_28, ay_27, ay_26); let ey_29 = ay_25 + ty_29;
    let ty_30 = ey_26 + bsig1(ey_29) + ch(ey_29, ey_28, ey_27) + PAD_KW[30];
    let ay_30 = ty_30 + bsig0(ay_29) + maj(ay_29, ay_28, ay_27); let ey_30 = ay_26 + ty_30;
    let ty_31 = ey_27 + bsig1(ey_30) + ch(ey_30, ey_29, ey_28) + PAD_KW[31];
    let ay_31 = ty_31 + bsig0(ay_30) + maj(ay_30, ay_29, ay_28); let ey_31 = ay_27 + ty_31;
    let ty_32 = ey_28 + bsig1(ey_31) + ch(ey_31, ey_30, ey_29) + PAD_KW[32];
    let ay_32 = ty_32 + bsig0(ay_31) + maj(ay_31, ay_30, ay_29); let ey_32 = ay_28 + ty_32;
    let ty_33 = ey_29 + bsig1(ey_32) + ch(ey_32, ey_31, ey_30) + PAD_KW[33];
    let ay_33 = ty_33 + bsig0(ay_32) + maj(ay_32, ay_31, ay_30); let ey_33 = ay_29 + ty_33;
    let ty_34 = ey_30 + bsig1(ey_33) + ch(ey_33, ey_32, ey_31) + PAD_KW[34];
    let ay_34 = ty_34 + bsig0(ay_33) + maj(ay_33, ay_32, ay_31); let ey_34 = ay_30 + ty_34;
    let ty_35 = ey_31 + bsig1(ey_34) + ch(ey_34, ey_33, ey_32) + PAD_KW[35];
    let ay_35 = ty_35 + bsig0(ay_34) + maj(ay_34, ay_33, ay_32); let ey_35 = ay_31 + ty_35;
    let ty_36 = ey_32 + bsig1(ey_35) + ch(ey_35, ey_34, ey_33) + PAD_KW[36];
    let ay_36 = ty_36 + bsig0(ay_35) + maj(ay_35, ay_34, ay_33); let ey_36 = ay_32 + ty_36;
    let ty_37 = ey_33 + bsig1(ey_36) + ch(ey_36, ey_35, ey_34) + PAD_KW[37];
    let ay_37 = ty_37 + bsig0(ay_36) + maj(ay_36, ay_35, ay_34); let ey_37 = ay_33 + ty_37;
    let ty_38 = ey_34 + bsig1(ey_37) + ch(ey_37, ey_36, ey_35) + PAD_KW[38];
    let ay_38 = ty_38 + bsig0(ay_37) + maj(ay_37, ay_36, ay_35); let ey_38 = ay_34 + ty_38;
    let ty_39 = ey_35 + bsig1(ey_38) + ch(ey_38, ey_37, ey_36) + PAD_KW[39];
    let ay_39 = ty_39 + bsig0(ay_38) + maj(ay_38, ay_37, ay_36); let ey_39 = ay_35 + ty_39;
    let ty_40 = ey_36 + bsig1(ey_39) + ch(ey_39, ey_38, ey_37) + PAD_KW[40];
    let ay_40 = ty_40 + bsig0(ay_39) + maj(ay_39, ay_38, ay_37); let ey_40 = ay_36 + ty_40;
    let ty_41 = ey_37 + bsig1(ey_40) + ch(ey_40, ey_39, ey_38) + PAD_KW[41];
    let ay_41 = ty_41 + bsig0(ay_40) + maj(ay_40, ay_39, ay_38); let ey_41 = ay_37 + ty_41;
    let ty_42 = ey_38 + bsig1(ey_41) + ch(ey_41, ey_40, ey_39) + PAD_KW[42];
    let ay_42 = ty_42 + bsig0(ay_41) + maj(ay_41, ay_40, ay_39); let ey_42 = ay_38 + ty_42;
    let ty_43 = ey_39 + bsig1(ey_42) + ch(ey_42, ey_41, ey_40) + PAD_KW[43];
    let ay_43 = ty_43 + bsig0(ay_42) + maj(ay_42, ay_41, ay_40); let ey_43 = ay_39 + ty_43;
    let ty_44 = ey_40 + bsig1(ey_43) + ch(ey_43, ey_42, ey_41) + PAD_KW[44];
    let ay_44 = ty_44 + bsig0(ay_43) + maj(ay_43, ay_42, ay_41); let ey_44 = ay_40 + ty_44;
    let ty_45 = ey_41 + bsig1(ey_44) + ch(ey_44, ey_43, ey_42) + PAD_KW[45];
    let ay_45 = ty_45 + bsig0(ay_44) + maj(ay_44, ay_43, ay_42); let ey_45 = ay_41 + ty_45;
    let ty_46 = ey_42 + bsig1(ey_45) + ch(ey_45, ey_44, ey_43) + PAD_KW[46];
    let ay_46 = ty_46 + bsig0(ay_45) + maj(ay_45, ay_44, ay_43); let ey_46 = ay_42 + ty_46;
    let ty_47 = ey_43 + bsig1(ey_46) + ch(ey_46, ey_45, ey_44) + PAD_KW[47];
    let ay_47 = ty_47 + bsig0(ay_46) + maj(ay_46, ay_45, ay_44); let ey_47 = ay_43 + ty_47;
    let ty_48 = ey_44 + bsig1(ey_47) + ch(ey_47, ey_46, ey_45) + PAD_KW[48];
    let ay_48 = ty_48 + bsig0(ay_47) + maj(ay_47, ay_46, ay_45); let ey_48 = ay_44 + ty_48;
    let ty_49 = ey_45 + bsig1(ey_48) + ch(ey_48, ey_47, ey_46) + PAD_KW[49];
    let ay_49 = ty_49 + bsig0(ay_48) + maj(ay_48, ay_47, ay_46); let ey_49 = ay_45 + ty_49;
    let ty_50 = ey_46 + bsig1(ey_49) + ch(ey_49, ey_48, ey_47) + PAD_KW[50];
    let ay_50 = ty_50 + bsig0(ay_49) + maj(ay_49, ay_48, ay_47); let ey_50 = ay_46 + ty_50;
    let ty_51 = ey_47 + bsig1(ey_50) + ch(ey_50, ey_49, ey_48) + PAD_KW[51];
    let ay_51 = ty_51 + bsig0(ay_50) + maj(ay_50, ay_49, ay_48); let ey_51 = ay_47 + ty_51;
    let ty_52 = ey_48 + bsig1(ey_51) + ch(ey_51, ey_50, ey_49) + PAD_KW[52];
    let ay_52 = ty_52 + bsig0(ay_51) + maj(ay_51, ay_50, ay_49); let ey_52 = ay_48 + ty_52;
    let ty_53 = ey_49 + bsig1(ey_52) + ch(ey_52, ey_51, ey_50) + PAD_KW[53];
    let ay_53 = ty_53 + bsig0(ay_52) + maj(ay_52, ay_51, ay_50); let ey_53 = ay_49 + ty_53;
    let ty_54 = ey_50 + bsig1(ey_53) + ch(ey_53, ey_52, ey_51) + PAD_KW[54];
    let ay_54 = ty_54 + bsig0(ay_53) + maj(ay_53, ay_52, ay_51); let ey_54 = ay_50 + ty_54;
    let ty_55 = ey_51 + bsig1(ey_54) + ch(ey_54, ey_53, ey_52) + PAD_KW[55];
    let ay_55 = ty_55 + bsig0(ay_54) + maj(ay_54, ay_53, ay_52); let ey_55 = ay_51 + ty_55;
    let ty_56 = ey_52 + bsig1(ey_55) + ch(ey_55, ey_54, ey_53) + PAD_KW[56];
    let ay_56 = ty_56 + bsig0(ay_55) + maj(ay_55, ay_54, ay_53); let ey_56 = ay_52 + ty_56;
    let ty_57 = ey_53 + bsig1(ey_56) + ch(ey_56, ey_55, ey_54) + PAD_KW[57];
    let ay_57 = ty_57 + bsig0(ay_56) + maj(ay_56, ay_55, ay_54); let ey_57 = ay_53 + ty_57;
    let ty_58 = ey_54 + bsig1(ey_57) + ch(ey_57, ey_56, ey_55) + PAD_KW[58];
    let ay_58 = ty_58 + bsig0(ay_57) + maj(ay_57, ay_56, ay_55); let ey_58 = ay_54 + ty_58;
    let ty_59 = ey_55 + bsig1(ey_58) + ch(ey_58, ey_57, ey_56) + PAD_KW[59];
    let ay_59 = ty_59 + bsig0(ay_58) + maj(ay_58, ay_57, ay_56); let ey_59 = ay_55 + ty_59;
    let ty_60 = ey_56 + bsig1(ey_59) + ch(ey_59, ey_58, ey_57) + PAD_KW[60];
    let ay_60 = ty_60 + bsig0(ay_59) + maj(ay_59, ay_58, ay_57); let ey_60 = ay_56 + ty_60;
    let ty_61 = ey_57 + bsig1(ey_60) + ch(ey_60, ey_59, ey_58) + PAD_KW[61];
    let ay_61 = ty_61 + bsig0(ay_60) + maj(ay_60, ay_59, ay_58); let ey_61 = ay_57 + ty_61;
    let ty_62 = ey_58 + bsig1(ey_61) + ch(ey_61, ey_60, ey_59) + PAD_KW[62];
    let ay_62 = ty_62 + bsig0(ay_61) + maj(ay_61, ay_60, ay_59); let ey_62 = ay_58 + ty_62;
    let ty_63 = ey_59 + bsig1(ey_62) + ch(ey_62, ey_61, ey_60) + PAD_KW[63];
    let ay_63 = ty_63 + bsig0(ay_62) + maj(ay_62, ay_61, ay_60); let ey_63 = ay_59 + ty_63;
    return State(m0 + ay_63, m1 + ay_62, m2 + ay_61, m3 + ay_60, m4 + ey_63, m5 + ey_62, m6 + ey_61, m7 + ey_60);
}

// Node `i` of the input level as big-endian words, or zeros[level] past the end.
fn load_child(i: u32) -> array<u32, 8> {
    if (i < p.m_in) {
        let o = (p.src + i) * 8u;
        return array<u32, 8>(bswap(nodes[o]), bswap(nodes[o + 1u]), bswap(nodes[o + 2u]), bswap(nodes[o + 3u]),
                             bswap(nodes[o + 4u]), bswap(nodes[o + 5u]), bswap(nodes[o + 6u]), bswap(nodes[o + 7u]));
    }
    let z = p.level * 8u;
    return array<u32, 8>(bswap(zeros[z]), bswap(zeros[z + 1u]), bswap(zeros[z + 2u]), bswap(zeros[z + 3u]),
                         bswap(zeros[z + 4u]), bswap(zeros[z + 5u]), bswap(zeros[z + 6u]), bswap(zeros[z + 7u]));
}

// Children 2c and 2c+1 of the input level, or of the tile region `src` when `from_tile`.
fn children(from_tile: bool, c: u32, src: u32) -> array<u32, 16> {
    if (from_tile) {
        return cat(tile[src + 2u * c], tile[src + 2u * c + 1u]);
    }
    return cat(load_child(2u * c), load_child(2u * c + 1u));
}

fn cat(l: array<u32, 8>, r: array<u32, 8>) -> array<u32, 16> {
    return array<u32, 16>(l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
                          r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

fn to_words(s: State) -> array<u32, 8> {
    return array<u32, 8>(s.a, s.b, s.c, s.d, s.e, s.f, s.g, s.h);
}

fn store_node(i: u32, s: State) {
    let o = i * 8u;
    nodes[o + 0u] = bswap(s.a);
    nodes[o + 1u] = bswap(s.b);
    nodes[o + 2u] = bswap(s.c);
    nodes[o + 3u] = bswap(s.d);
    nodes[o + 4u] = bswap(s.e);
    nodes[o + 5u] = bswap(s.f);
    nodes[o + 6u] = bswap(s.g);
    nodes[o + 7u] = bswap(s.h);
}

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn merkle_level(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    let m_out = p.m_in / 2u + (p.m_in & 1u);
    if (i >= m_out) {
        return;
    }
    store_node(p.dst + i, sha256_64(cat(load_child(2u * i), load_child(2u * i + 1u))));
}

// Workgroup tile: region A = nodes [0, 256), region B = nodes [256, 384). Sub-level j
// (j >= 1) reads the region sub-level j-1 wrote and writes the other one.
var<workgroup> tile: array<array<u32, 8>, 384>;

@compute @workgroup_size(256)
fn merkle_fused(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let g = wid.y * nwg.x + wid.x;
    let fuse = p.fuse;
    let groups = (p.m_in + 511u) / 512u;
    if (g >= groups) {
        return;
    }
    let base = g * 512u;
    var h: State;
    for (var j = 0u; j < fuse; j = j + 1u) {
        let live = WG >> j;
        let odd = (j & 1u) == 1u;
        let src = select(256u, 0u, odd);
        let dst = select(0u, 256u, odd);
        if (t < live) {
            h = sha256_64(children(j != 0u, select(base / 2u + t, t, j != 0u), src));
            tile[dst + t] = to_words(h);
        }
        workgroupBarrier();
    }
    let per_group = 512u >> fuse;
    let m_out = (p.m_in + (1u << fuse) - 1u) >> fuse;
    let o = g * per_group + t;
    if (t < per_group && o < m_out) {
        store_node(p.dst + o, h);
    }
}
