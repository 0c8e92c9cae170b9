// Attention scores: s[t, h, j] = q[t, h] . k[slot, j, h / GROUP] / sqrt(HEAD_DIM) for every key j
// the row may see (causal: j <= the row's position) in its own sequence's slot of the cache.
// Grouped-query heads share their kv head.
#include params
#include kv
override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override CTX: u32; // stride of a score row (the context window)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;          // [rows, QKV width]
@group(0) @binding(2) var<storage, read_write> scores: array<f32>; // [rows, N_HEADS, CTX]
@group(0) @binding(5) var<storage, read> rowInfo: array<RowInfo>;  // [rows]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let t = gid.y / N_HEADS;
  let h = gid.y % N_HEADS;
  if (t >= p.rows) { return; }
  let row = rowInfo[t];
  if (j > row.pos) { return; }
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  let kvh = h / (N_HEADS / N_KV_HEADS);
  let q0 = t * width + h * HEAD_DIM;
  let k0 = (row.slot * CTX + j) * N_KV_HEADS * HEAD_DIM + kvh * HEAD_DIM;
  var s = 0.0;
  for (var d = 0u; d < HEAD_DIM; d++) { s += qkv[q0 + d] * kAt(k0 + d); }
  scores[(t * N_HEADS + h) * CTX + j] = s * inverseSqrt(f32(HEAD_DIM));
}
