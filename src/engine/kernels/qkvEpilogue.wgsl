// The qkv matmul's epilogue (normMatmul.wgsl, normQ4MatVec.wgsl): RoPE of q and k and the
// KV-cache append, what ropeKvWrite.wgsl does as a pass of its own, applied as the fused
// [q heads | k heads | v heads] rows are stored. Rotate-half RoPE pairs element i of a head with
// i + HEAD_DIM/2, and the f16 cache packs the adjacent elements (e, e + 1) into one word, so with
// HEAD_DIM % 4 == 0 (forward.ts checks) quad j of a head, the elements (2j, 2j + 1, 2j + half,
// 2j + 1 + half), is two whole RoPE pairs and two whole cache words: one thread (workgroup) computes
// the quad's four rows and stores it, and no two threads share a word. q is stored rotated in
// place (attention reads it from qkv); rotated k and plain v go to the row's (slot, pos) in the
// caches and are not stored in qkv (attention reads keys and values from the caches only).
// cos/sin come from the same table as ropeKvWrite's (buffers.ts ropeTable).
#include kv
const QKV_ROPE: bool = true;
override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override CTX: u32; // positions per slot
@group(2) @binding(0) var<storage, read> cosSin: array<f32>;      // [ctx, HEAD_DIM/2, 2]
@group(2) @binding(1) var<storage, read> rowInfo: array<RowInfo>; // [rows]
// caches (group 2, bindings 2 and 3): [slots, CTX, N_KV_HEADS * HEAD_DIM]

// The weight rows output o of the fused norm-matmul reads: the four rows of RoPE quad o (OUT / 4
// quads, HEAD_DIM / 4 per head). (Without this epilogue, kernels.ts QKV_EPILOGUE_OFF: o, and o + nOut for SWIGLU.)
fn weightRows(o: u32, nOut: u32) -> vec4<u32> {
  let half = HEAD_DIM / 2u;
  let base = (o / (HEAD_DIM / 4u)) * HEAD_DIM + (o % (HEAD_DIM / 4u)) * 2u;
  return vec4<u32>(base, base + 1u, base + half, base + half + 1u);
}

// Stores quad o's outputs v (in weightRows' order) of input row `row` (its slot and position in
// rowInfo), output row t of y.
fn qkvStore(o: u32, row: u32, t: u32, v: vec4<f32>) {
  let half = HEAD_DIM / 2u;
  let head = o / (HEAD_DIM / 4u);
  let i = (o % (HEAD_DIM / 4u)) * 2u;
  let info = rowInfo[row];
  let kvWidth = N_KV_HEADS * HEAD_DIM;
  let cacheRow = (info.slot * CTX + info.pos) * kvWidth;
  if (head >= N_HEADS + N_KV_HEADS) {
    let dst = cacheRow + (head - N_HEADS - N_KV_HEADS) * HEAD_DIM + i;
    vPut(dst, v.xy);
    vPut(dst + half, v.zw);
    return;
  }
  let a = (info.pos * half + i) * 2u; // angles i and i + 1
  let c = vec2<f32>(cosSin[a], cosSin[a + 2u]);
  let s = vec2<f32>(cosSin[a + 1u], cosSin[a + 3u]);
  let lo = v.xy * c - v.zw * s; // elements i, i + 1
  let hi = v.zw * c + v.xy * s; // elements i + half, i + half + 1
  if (head < N_HEADS) {
    let q = t * OUT + head * HEAD_DIM + i;
    y[q] = lo.x;
    y[q + 1u] = lo.y;
    y[q + half] = hi.x;
    y[q + half + 1u] = hi.y;
    return;
  }
  let dst = cacheRow + (head - N_HEADS) * HEAD_DIM + i;
  kPut(dst, lo);
  kPut(dst + half, hi);
}
