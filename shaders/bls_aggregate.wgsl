// Segmented sums of G1 points over a resident table (host side: src/accel/aggregate/gpu.rs).
// Linked after bls12_381.wgsl and one bls_fp_mul*.wgsl.
//
// Input, one submission per batch of sets:
//   table    the resident pubkey table: point k is 24 words, x then y (affine, Fp words)
//   indices  the sets' validator indices, concatenated (CSR)
//   plan     u32 arrays written by the host, each n_sets + 1 long:
//              offsets    set s owns indices[offsets[s] .. offsets[s+1]]
//              prefix_L   level L of the reduction: set s owns partials
//                         prefix_L[s] .. prefix_L[s+1] of that level (>= 1 each)
//   partials all levels' partial sums, 36 words each (projective X, Y, Z)
//   sums     one Jacobian point per set, 36 words (blst_p1's X, Y, Z)
//
// Kernels, one dispatch each, in order, in one compute pass:
//   agg_chunks  level 0: invocation t (one per chunk) finds its set s by binary search in
//               prefix_0, sums indices [offsets[s] + j·span, ... + span) (clipped to the
//               set, j = t − prefix_0[s]) by mixed addition into a projective
//               accumulator and writes partial t of level 0
//   agg_reduce  level L ≥ 1 (a tree, fan-in `span`): invocation t of set s sums partials
//               j·span .. (j+1)·span of the set's level L−1 partials (complete
//               projective additions)
//   agg_finish  one invocation per set: the set's single partial of the last level to
//               Jacobian coordinates in `sums`
// Dispatches may be 2D (x · y workgroups); invocations past `threads` return.

struct AggParams {
    threads: u32,    // invocations with work in this dispatch
    n_sets: u32,
    in_base: u32,    // agg_reduce, agg_finish: first partial of the input level
    out_base: u32,   // agg_chunks, agg_reduce: first partial of the output level
    prefix_in: u32,  // word offset in `plan`: agg_chunks: offsets; agg_reduce: prefix_(L-1)
    prefix_out: u32, // word offset in `plan` of this level's prefix array
    span: u32,       // agg_chunks: indices per chunk; agg_reduce: fan-in
    table_len: u32,  // points in the table (indices are clamped below it)
}

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> plan: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<u32>;
@group(0) @binding(4) var<storage, read_write> sums: array<u32>;
@group(0) @binding(5) var<uniform> params: AggParams;

const AGG_WG: u32 = 64u;

fn load_table_fp(at: u32) -> Fp {
    return Fp(
        table[at], table[at + 1u], table[at + 2u], table[at + 3u], table[at + 4u], table[at + 5u],
        table[at + 6u], table[at + 7u], table[at + 8u], table[at + 9u], table[at + 10u], table[at + 11u]
    );
}

fn load_partial_fp(at: u32) -> Fp {
    return Fp(
        partials[at], partials[at + 1u], partials[at + 2u], partials[at + 3u], partials[at + 4u],
        partials[at + 5u], partials[at + 6u], partials[at + 7u], partials[at + 8u], partials[at + 9u],
        partials[at + 10u], partials[at + 11u]
    );
}

fn load_partial(k: u32) -> G1 {
    let at = 36u * k;
    return G1(load_partial_fp(at), load_partial_fp(at + 12u), load_partial_fp(at + 24u));
}

fn store_partial_fp(at: u32, v: Fp) {
    partials[at] = v[0];
    partials[at + 1u] = v[1];
    partials[at + 2u] = v[2];
    partials[at + 3u] = v[3];
    partials[at + 4u] = v[4];
    partials[at + 5u] = v[5];
    partials[at + 6u] = v[6];
    partials[at + 7u] = v[7];
    partials[at + 8u] = v[8];
    partials[at + 9u] = v[9];
    partials[at + 10u] = v[10];
    partials[at + 11u] = v[11];
}

fn store_partial(k: u32, p: G1) {
    let at = 36u * k;
    store_partial_fp(at, p.x);
    store_partial_fp(at + 12u, p.y);
    store_partial_fp(at + 24u, p.z);
}

fn store_sum_fp(at: u32, v: Fp) {
    sums[at] = v[0];
    sums[at + 1u] = v[1];
    sums[at + 2u] = v[2];
    sums[at + 3u] = v[3];
    sums[at + 4u] = v[4];
    sums[at + 5u] = v[5];
    sums[at + 6u] = v[6];
    sums[at + 7u] = v[7];
    sums[at + 8u] = v[8];
    sums[at + 9u] = v[9];
    sums[at + 10u] = v[10];
    sums[at + 11u] = v[11];
}

// The set s with prefix[s] <= t < prefix[s + 1] (prefix at word `base` of `plan`,
// strictly increasing, prefix[0] = 0, t < prefix[n_sets]).
fn find_set(base: u32, t: u32) -> u32 {
    var lo = 0u;
    var hi = params.n_sets - 1u;
    while lo < hi {
        let mid = (lo + hi + 1u) >> 1u;
        if plan[base + mid] <= t {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    return lo;
}

fn invocation(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * AGG_WG;
}

@compute @workgroup_size(64)
fn agg_chunks(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = invocation(gid, groups);
    if t >= params.threads {
        return;
    }
    let s = find_set(params.prefix_out, t);
    let j = t - plan[params.prefix_out + s];
    let start = plan[params.prefix_in + s] + j * params.span;
    let end = min(start + params.span, plan[params.prefix_in + s + 1u]);
    let last = params.table_len - 1u;
    let first = 24u * min(indices[start], last);
    var acc = g1_from_affine(load_table_fp(first), load_table_fp(first + 12u));
    for (var k = start + 1u; k < end; k++) {
        let at = 24u * min(indices[k], last);
        acc = g1_add_affine(acc, load_table_fp(at), load_table_fp(at + 12u));
    }
    store_partial(params.out_base + t, acc);
}

@compute @workgroup_size(64)
fn agg_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = invocation(gid, groups);
    if t >= params.threads {
        return;
    }
    let s = find_set(params.prefix_out, t);
    let j = t - plan[params.prefix_out + s];
    let start = plan[params.prefix_in + s] + j * params.span;
    let end = min(start + params.span, plan[params.prefix_in + s + 1u]);
    var acc = load_partial(params.in_base + start);
    for (var k = start + 1u; k < end; k++) {
        acc = g1_add(acc, load_partial(params.in_base + k));
    }
    store_partial(params.out_base + t, acc);
}

@compute @workgroup_size(64)
fn agg_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let s = invocation(gid, groups);
    if s >= params.n_sets {
        return;
    }
    let p = g1_to_jacobian(load_partial(params.in_base + s));
    let at = 36u * s;
    store_sum_fp(at, p.x);
    store_sum_fp(at + 12u, p.y);
    store_sum_fp(at + 24u, p.z);
}
