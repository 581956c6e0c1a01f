// Test and measurement kernels for bls12_381.wgsl (host side: `BlsTestKernels` in
// src/accel/aggregate/kernels.rs). Linked after bls12_381.wgsl and one bls_fp_mul*.wgsl.
//
// Element i of `a` and `b` is 12 words (Fp) or 36 words (G1: X, Y, Z); the result
// of element i goes to `out` at the same stride.
//   fp_test   op 0 mul, 1 add, 2 sub, 3 sqr, 4 neg, 5 dbl, 6 mul12
//   g1_add_test          g1_add(a, b)
//   g1_add_affine_test   g1_add_affine(a, (b.x, b.y))
//   g1_to_jacobian_test  g1_to_jacobian(a)
// (one entry point each: lavapipe compiles a pipeline at its first dispatch, in time
// that grows faster than the code, so three small ones build faster than one)
//   fp_mul_chain  x = a_i; `iters` times x = x·b_i (throughput of fp_mul)

struct TestParams {
    op: u32,
    count: u32,
    iters: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> ta: array<u32>;
@group(0) @binding(1) var<storage, read> tb: array<u32>;
@group(0) @binding(2) var<storage, read_write> tout: array<u32>;
@group(0) @binding(3) var<uniform> tp: TestParams;

fn test_load_a(at: u32) -> Fp {
    return Fp(
        ta[at], ta[at + 1u], ta[at + 2u], ta[at + 3u], ta[at + 4u], ta[at + 5u],
        ta[at + 6u], ta[at + 7u], ta[at + 8u], ta[at + 9u], ta[at + 10u], ta[at + 11u]
    );
}

fn test_load_b(at: u32) -> Fp {
    return Fp(
        tb[at], tb[at + 1u], tb[at + 2u], tb[at + 3u], tb[at + 4u], tb[at + 5u],
        tb[at + 6u], tb[at + 7u], tb[at + 8u], tb[at + 9u], tb[at + 10u], tb[at + 11u]
    );
}

fn test_store(at: u32, v: Fp) {
    tout[at] = v[0];
    tout[at + 1u] = v[1];
    tout[at + 2u] = v[2];
    tout[at + 3u] = v[3];
    tout[at + 4u] = v[4];
    tout[at + 5u] = v[5];
    tout[at + 6u] = v[6];
    tout[at + 7u] = v[7];
    tout[at + 8u] = v[8];
    tout[at + 9u] = v[9];
    tout[at + 10u] = v[10];
    tout[at + 11u] = v[11];
}

fn test_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

@compute @workgroup_size(64)
fn fp_test(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = test_index(gid, groups);
    if i >= tp.count {
        return;
    }
    let a = test_load_a(12u * i);
    let b = test_load_b(12u * i);
    var r: Fp;
    switch tp.op {
        case 0u: { r = fp_mul(a, b); }
        case 1u: { r = fp_add(a, b); }
        case 2u: { r = fp_sub(a, b); }
        case 3u: { r = fp_sqr(a); }
        case 4u: { r = fp_neg(a); }
        case 5u: { r = fp_dbl(a); }
        default: { r = fp_mul12(a); }
    }
    test_store(12u * i, r);
}

fn test_load_g1_a(at: u32) -> G1 {
    return G1(test_load_a(at), test_load_a(at + 12u), test_load_a(at + 24u));
}

fn test_load_g1_b(at: u32) -> G1 {
    return G1(test_load_b(at), test_load_b(at + 12u), test_load_b(at + 24u));
}

fn test_store_g1(at: u32, r: G1) {
    test_store(at, r.x);
    test_store(at + 12u, r.y);
    test_store(at + 24u, r.z);
}

@compute @workgroup_size(64)
fn g1_add_test(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = test_index(gid, groups);
    if i < tp.count {
        test_store_g1(36u * i, g1_add(test_load_g1_a(36u * i), test_load_g1_b(36u * i)));
    }
}

@compute @workgroup_size(64)
fn g1_add_affine_test(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = test_index(gid, groups);
    if i < tp.count {
        let q = test_load_g1_b(36u * i);
        test_store_g1(36u * i, g1_add_affine(test_load_g1_a(36u * i), q.x, q.y));
    }
}

@compute @workgroup_size(64)
fn g1_to_jacobian_test(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = test_index(gid, groups);
    if i < tp.count {
        test_store_g1(36u * i, g1_to_jacobian(test_load_g1_a(36u * i)));
    }
}

@compute @workgroup_size(64)
fn fp_mul_chain(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = test_index(gid, groups);
    if i >= tp.count {
        return;
    }
    var x = test_load_a(12u * i);
    let y = test_load_b(12u * i);
    for (var k = 0u; k < tp.iters; k++) {
        x = fp_mul(x, y);
    }
    test_store(12u * i, x);
}
