// SHA-256 merkle kernels for quasar (host side: src/accel/gpu.rs).
//
// A node is 32 bytes = 8 u32 words as stored in memory (little-endian loads of the
// digest bytes). SHA-256 works on big-endian words, so nodes are byte-swapped on load
// and the digests swapped back on store. A "pair" is a 64-byte block left || right; its
// digest is SHA-256 of that 64-byte message: the block, then the constant padding block
// (0x80, zeros, bit length 512) whose K[i] + W[i] schedule is folded into the literals
// of the second compression below. Baseline WGSL only: u32, no extensions.
//
// Both rounds loops are unrolled (generated) so every schedule word lives in a register
// on drivers that do not unroll loops themselves.
//
// Kernels (one bind group for all dispatches of a tree; params at a dynamic offset):
//   merkle_level: one level; invocation i writes node i of level L+1 (one hash each).
//   merkle_fused: a workgroup of 256 invocations reads 512 nodes of level L and reduces
//                 them `fuse` (1..=9) levels in workgroup memory, writing 512 >> fuse
//                 nodes of level L+fuse.
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

// One round; `kw` = K[i] + W[i].
fn rnd(s: State, kw: u32) -> State {
    let t1 = s.h + (rotr(s.e, 6u) ^ rotr(s.e, 11u) ^ rotr(s.e, 25u)) + ((s.e & s.f) ^ (~s.e & s.g)) + kw;
    let t2 = (rotr(s.a, 2u) ^ rotr(s.a, 13u) ^ rotr(s.a, 22u)) + ((s.a & s.b) ^ (s.a & s.c) ^ (s.b & s.c));
    return State(t1 + t2, s.a, s.b, s.c, s.d + t1, s.e, s.f, s.g);
}

fn add(x: State, y: State) -> State {
    return State(x.a + y.a, x.b + y.b, x.c + y.c, x.d + y.d, x.e + y.e, x.f + y.f, x.g + y.g, x.h + y.h);
}

// SHA-256 of a 64-byte message given as 16 big-endian words; returns the digest state.
fn sha256_64(m: array<u32, 16>) -> State {
    var w0 = m[0];
    var w1 = m[1];
    var w2 = m[2];
    var w3 = m[3];
    var w4 = m[4];
    var w5 = m[5];
    var w6 = m[6];
    var w7 = m[7];
    var w8 = m[8];
    var w9 = m[9];
    var w10 = m[10];
    var w11 = m[11];
    var w12 = m[12];
    var w13 = m[13];
    var w14 = m[14];
    var w15 = m[15];
    let iv = State(0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u);
    var s = iv;
    s = rnd(s, 0x428a2f98u + w0);
    s = rnd(s, 0x71374491u + w1);
    s = rnd(s, 0xb5c0fbcfu + w2);
    s = rnd(s, 0xe9b5dba5u + w3);
    s = rnd(s, 0x3956c25bu + w4);
    s = rnd(s, 0x59f111f1u + w5);
    s = rnd(s, 0x923f82a4u + w6);
    s = rnd(s, 0xab1c5ed5u + w7);
    s = rnd(s, 0xd807aa98u + w8);
    s = rnd(s, 0x12835b01u + w9);
    s = rnd(s, 0x243185beu + w10);
    s = rnd(s, 0x550c7dc3u + w11);
    s = rnd(s, 0x72be5d74u + w12);
    s = rnd(s, 0x80deb1feu + w13);
    s = rnd(s, 0x9bdc06a7u + w14);
    s = rnd(s, 0xc19bf174u + w15);
    w0 = w0 + ssig0(w1) + w9 + ssig1(w14);
    s = rnd(s, 0xe49b69c1u + w0);
    w1 = w1 + ssig0(w2) + w10 + ssig1(w15);
    s = rnd(s, 0xefbe4786u + w1);
    w2 = w2 + ssig0(w3) + w11 + ssig1(w0);
    s = rnd(s, 0x0fc19dc6u + w2);
    w3 = w3 + ssig0(w4) + w12 + ssig1(w1);
    s = rnd(s, 0x240ca1ccu + w3);
    w4 = w4 + ssig0(w5) + w13 + ssig1(w2);
    s = rnd(s, 0x2de92c6fu + w4);
    w5 = w5 + ssig0(w6) + w14 + ssig1(w3);
    s = rnd(s, 0x4a7484aau + w5);
    w6 = w6 + ssig0(w7) + w15 + ssig1(w4);
    s = rnd(s, 0x5cb0a9dcu + w6);
    w7 = w7 + ssig0(w8) + w0 + ssig1(w5);
    s = rnd(s, 0x76f988dau + w7);
    w8 = w8 + ssig0(w9) + w1 + ssig1(w6);
    s = rnd(s, 0x983e5152u + w8);
    w9 = w9 + ssig0(w10) + w2 + ssig1(w7);
    s = rnd(s, 0xa831c66du + w9);
    w10 = w10 + ssig0(w11) + w3 + ssig1(w8);
    s = rnd(s, 0xb00327c8u + w10);
    w11 = w11 + ssig0(w12) + w4 + ssig1(w9);
    s = rnd(s, 0xbf597fc7u + w11);
    w12 = w12 + ssig0(w13) + w5 + ssig1(w10);
    s = rnd(s, 0xc6e00bf3u + w12);
    w13 = w13 + ssig0(w14) + w6 + ssig1(w11);
    s = rnd(s, 0xd5a79147u + w13);
    w14 = w14 + ssig0(w15) + w7 + ssig1(w12);
    s = rnd(s, 0x06ca6351u + w14);
    w15 = w15 + ssig0(w0) + w8 + ssig1(w13);
    s = rnd(s, 0x14292967u + w15);
    w0 = w0 + ssig0(w1) + w9 + ssig1(w14);
    s = rnd(s, 0x27b70a85u + w0);
    w1 = w1 + ssig0(w2) + w10 + ssig1(w15);
    s = rnd(s, 0x2e1b2138u + w1);
    w2 = w2 + ssig0(w3) + w11 + ssig1(w0);
    s = rnd(s, 0x4d2c6dfcu + w2);
    w3 = w3 + ssig0(w4) + w12 + ssig1(w1);
    s = rnd(s, 0x53380d13u + w3);
    w4 = w4 + ssig0(w5) + w13 + ssig1(w2);
    s = rnd(s, 0x650a7354u + w4);
    w5 = w5 + ssig0(w6) + w14 + ssig1(w3);
    s = rnd(s, 0x766a0abbu + w5);
    w6 = w6 + ssig0(w7) + w15 + ssig1(w4);
    s = rnd(s, 0x81c2c92eu + w6);
    w7 = w7 + ssig0(w8) + w0 + ssig1(w5);
    s = rnd(s, 0x92722c85u + w7);
    w8 = w8 + ssig0(w9) + w1 + ssig1(w6);
    s = rnd(s, 0xa2bfe8a1u + w8);
    w9 = w9 + ssig0(w10) + w2 + ssig1(w7);
    s = rnd(s, 0xa81a664bu + w9);
    w10 = w10 + ssig0(w11) + w3 + ssig1(w8);
    s = rnd(s, 0xc24b8b70u + w10);
    w11 = w11 + ssig0(w12) + w4 + ssig1(w9);
    s = rnd(s, 0xc76c51a3u + w11);
    w12 = w12 + ssig0(w13) + w5 + ssig1(w10);
    s = rnd(s, 0xd192e819u + w12);
    w13 = w13 + ssig0(w14) + w6 + ssig1(w11);
    s = rnd(s, 0xd6990624u + w13);
    w14 = w14 + ssig0(w15) + w7 + ssig1(w12);
    s = rnd(s, 0xf40e3585u + w14);
    w15 = w15 + ssig0(w0) + w8 + ssig1(w13);
    s = rnd(s, 0x106aa070u + w15);
    w0 = w0 + ssig0(w1) + w9 + ssig1(w14);
    s = rnd(s, 0x19a4c116u + w0);
    w1 = w1 + ssig0(w2) + w10 + ssig1(w15);
    s = rnd(s, 0x1e376c08u + w1);
    w2 = w2 + ssig0(w3) + w11 + ssig1(w0);
    s = rnd(s, 0x2748774cu + w2);
    w3 = w3 + ssig0(w4) + w12 + ssig1(w1);
    s = rnd(s, 0x34b0bcb5u + w3);
    w4 = w4 + ssig0(w5) + w13 + ssig1(w2);
    s = rnd(s, 0x391c0cb3u + w4);
    w5 = w5 + ssig0(w6) + w14 + ssig1(w3);
    s = rnd(s, 0x4ed8aa4au + w5);
    w6 = w6 + ssig0(w7) + w15 + ssig1(w4);
    s = rnd(s, 0x5b9cca4fu + w6);
    w7 = w7 + ssig0(w8) + w0 + ssig1(w5);
    s = rnd(s, 0x682e6ff3u + w7);
    w8 = w8 + ssig0(w9) + w1 + ssig1(w6);
    s = rnd(s, 0x748f82eeu + w8);
    w9 = w9 + ssig0(w10) + w2 + ssig1(w7);
    s = rnd(s, 0x78a5636fu + w9);
    w10 = w10 + ssig0(w11) + w3 + ssig1(w8);
    s = rnd(s, 0x84c87814u + w10);
    w11 = w11 + ssig0(w12) + w4 + ssig1(w9);
    s = rnd(s, 0x8cc70208u + w11);
    w12 = w12 + ssig0(w13) + w5 + ssig1(w10);
    s = rnd(s, 0x90befffau + w12);
    w13 = w13 + ssig0(w14) + w6 + ssig1(w11);
    s = rnd(s, 0xa4506cebu + w13);
    w14 = w14 + ssig0(w15) + w7 + ssig1(w12);
    s = rnd(s, 0xbef9a3f7u + w14);
    w15 = w15 + ssig0(w0) + w8 + ssig1(w13);
    s = rnd(s, 0xc67178f2u + w15);
    let h1 = add(iv, s);
    s = h1;
    s = rnd(s, 0xc28a2f98u);
    s = rnd(s, 0x71374491u);
    s = rnd(s, 0xb5c0fbcfu);
    s = rnd(s, 0xe9b5dba5u);
    s = rnd(s, 0x3956c25bu);
    s = rnd(s, 0x59f111f1u);
    s = rnd(s, 0x923f82a4u);
    s = rnd(s, 0xab1c5ed5u);
    s = rnd(s, 0xd807aa98u);
    s = rnd(s, 0x12835b01u);
    s = rnd(s, 0x243185beu);
    s = rnd(s, 0x550c7dc3u);
    s = rnd(s, 0x72be5d74u);
    s = rnd(s, 0x80deb1feu);
    s = rnd(s, 0x9bdc06a7u);
    s = rnd(s, 0xc19bf374u);
    s = rnd(s, 0x649b69c1u);
    s = rnd(s, 0xf0fe4786u);
    s = rnd(s, 0x0fe1edc6u);
    s = rnd(s, 0x240cf254u);
    s = rnd(s, 0x4fe9346fu);
    s = rnd(s, 0x6cc984beu);
    s = rnd(s, 0x61b9411eu);
    s = rnd(s, 0x16f988fau);
    s = rnd(s, 0xf2c65152u);
    s = rnd(s, 0xa88e5a6du);
    s = rnd(s, 0xb019fc65u);
    s = rnd(s, 0xb9d99ec7u);
    s = rnd(s, 0x9a1231c3u);
    s = rnd(s, 0xe70eeaa0u);
    s = rnd(s, 0xfdb1232bu);
    s = rnd(s, 0xc7353eb0u);
    s = rnd(s, 0x3069bad5u);
    s = rnd(s, 0xcb976d5fu);
    s = rnd(s, 0x5a0f118fu);
    s = rnd(s, 0xdc1eeefdu);
    s = rnd(s, 0x0a35b689u);
    s = rnd(s, 0xde0b7a04u);
    s = rnd(s, 0x58f4ca9du);
    s = rnd(s, 0xe15d5b16u);
    s = rnd(s, 0x007f3e86u);
    s = rnd(s, 0x37088980u);
    s = rnd(s, 0xa507ea32u);
    s = rnd(s, 0x6fab9537u);
    s = rnd(s, 0x17406110u);
    s = rnd(s, 0x0d8cd6f1u);
    s = rnd(s, 0xcdaa3b6du);
    s = rnd(s, 0xc0bbbe37u);
    s = rnd(s, 0x83613bdau);
    s = rnd(s, 0xdb48a363u);
    s = rnd(s, 0x0b02e931u);
    s = rnd(s, 0x6fd15ca7u);
    s = rnd(s, 0x521afacau);
    s = rnd(s, 0x31338431u);
    s = rnd(s, 0x6ed41a95u);
    s = rnd(s, 0x6d437890u);
    s = rnd(s, 0xc39c91f2u);
    s = rnd(s, 0x9eccabbdu);
    s = rnd(s, 0xb5c9a0e6u);
    s = rnd(s, 0x532fb63cu);
    s = rnd(s, 0xd2c741c6u);
    s = rnd(s, 0x07237ea3u);
    s = rnd(s, 0xa4954b68u);
    s = rnd(s, 0x4c191d76u);
    return add(h1, s);
}

// Node `i` of the input level as big-endian words, or zeros[level] past the end.
fn load_child(i: u32) -> array<u32, 8> {
    var r: array<u32, 8>;
    if (i < p.m_in) {
        let o = (p.src + i) * 8u;
        r = array<u32, 8>(bswap(nodes[o]), bswap(nodes[o + 1u]), bswap(nodes[o + 2u]), bswap(nodes[o + 3u]),
                          bswap(nodes[o + 4u]), bswap(nodes[o + 5u]), bswap(nodes[o + 6u]), bswap(nodes[o + 7u]));
    } else {
        let o = p.level * 8u;
        r = array<u32, 8>(bswap(zeros[o]), bswap(zeros[o + 1u]), bswap(zeros[o + 2u]), bswap(zeros[o + 3u]),
                          bswap(zeros[o + 4u]), bswap(zeros[o + 5u]), bswap(zeros[o + 6u]), bswap(zeros[o + 7u]));
    }
    return r;
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
    var h = sha256_64(cat(load_child(base + 2u * t), load_child(base + 2u * t + 1u)));
    tile[t] = to_words(h);
    workgroupBarrier();
    for (var j = 1u; j < fuse; j = j + 1u) {
        let active = WG >> j;
        let odd = (j & 1u) == 1u;
        let src = select(256u, 0u, odd);
        let dst = select(0u, 256u, odd);
        if (t < active) {
            h = sha256_64(cat(tile[src + 2u * t], tile[src + 2u * t + 1u]));
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
