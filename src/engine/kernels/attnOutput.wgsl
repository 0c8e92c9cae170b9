// Attention output: o[t, h, d] = sum_j p[t, h, j] * v[slot, j, h / GROUP, d]. One thread per (row, head, d).
#include params
#include kv
override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override CTX: u32;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;  // [rows, N_HEADS, CTX] probabilities
@group(0) @binding(2) var<storage, read_write> o: array<f32>; // [rows, N_HEADS * HEAD_DIM]
@group(0) @binding(5) var<storage, read> rowInfo: array<RowInfo>; // [rows]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let d = gid.x % HEAD_DIM;
  let h = gid.x / HEAD_DIM;
  let t = gid.y;
  if (h >= N_HEADS || t >= p.rows) { return; }
  let kvh = h / (N_HEADS / N_KV_HEADS);
  let row = rowInfo[t];
  let n = row.pos + 1u;
  let v0 = row.slot * CTX * N_KV_HEADS * HEAD_DIM;
  let sb = (t * N_HEADS + h) * CTX;
  let kvWidth = N_KV_HEADS * HEAD_DIM;
  var acc = 0.0;
  for (var j = 0u; j < n; j++) { acc += scores[sb + j] * vAt(v0 + j * kvWidth + kvh * HEAD_DIM + d); }
  o[t * N_HEADS * HEAD_DIM + h * HEAD_DIM + d] = acc;
}
