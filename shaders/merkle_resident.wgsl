// Resident merkle trees (host side: src/accel/resident.rs), linked after sha256.wgsl,
// whose `nodes`, `zeros`, `p`, `sha256_64`, `cat`, `bswap` and `store_node` it uses.
//
// The trees' levels live in `nodes` between calls; a call uploads only the changed
// leaves and a work list, then rehashes the dirty paths level by level:
//   tree_scatter: item i (9 words at p.src + 9 i) = [node, w0..w7]: nodes[node] = w
//                 (a changed leaf, written as stored: little-endian digest bytes).
//   tree_gather:  item i (3 words at p.src + 3 i) = [child, parent, has_right]:
//                 nodes[parent] = H(nodes[child] || (has_right ? nodes[child + 1]
//                 : zeros[p.level])) — the dirty parents of one level of every tree.
// Whole levels that are mostly dirty use sha256.wgsl's `merkle_level` instead.
// p.m_in is the item count; items past it return (uniformly per workgroup's tail).

@group(0) @binding(3) var<storage, read> items: array<u32>;

// Node `n` as big-endian words.
fn node_be(n: u32) -> array<u32, 8> {
    let o = n * 8u;
    return array<u32, 8>(bswap(nodes[o]), bswap(nodes[o + 1u]), bswap(nodes[o + 2u]), bswap(nodes[o + 3u]),
                         bswap(nodes[o + 4u]), bswap(nodes[o + 5u]), bswap(nodes[o + 6u]), bswap(nodes[o + 7u]));
}

// The right child: node `n`, or the zero hash of this level when there is none.
fn right_be(n: u32, has_right: u32) -> array<u32, 8> {
    if (has_right != 0u) {
        return node_be(n);
    }
    let z = p.level * 8u;
    return array<u32, 8>(bswap(zeros[z]), bswap(zeros[z + 1u]), bswap(zeros[z + 2u]), bswap(zeros[z + 3u]),
                         bswap(zeros[z + 4u]), bswap(zeros[z + 5u]), bswap(zeros[z + 6u]), bswap(zeros[z + 7u]));
}

@compute @workgroup_size(256)
fn tree_scatter(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i >= p.m_in) {
        return;
    }
    let o = p.src + i * 9u;
    let d = items[o] * 8u;
    nodes[d] = items[o + 1u];
    nodes[d + 1u] = items[o + 2u];
    nodes[d + 2u] = items[o + 3u];
    nodes[d + 3u] = items[o + 4u];
    nodes[d + 4u] = items[o + 5u];
    nodes[d + 5u] = items[o + 6u];
    nodes[d + 6u] = items[o + 7u];
    nodes[d + 7u] = items[o + 8u];
}

@compute @workgroup_size(256)
fn tree_gather(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i >= p.m_in) {
        return;
    }
    let o = p.src + i * 3u;
    let child = items[o];
    store_node(items[o + 1u], sha256_64(cat(node_be(child), right_be(child + 1u, items[o + 2u]))));
}
