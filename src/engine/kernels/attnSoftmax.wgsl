// Softmax over the visible keys of each (row, head) score row, in place. One workgroup per row.
#include params
override N_HEADS: u32;
override CTX: u32;
const WG: u32 = 64u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> scores: array<f32>; // [rows, N_HEADS, CTX]
@group(0) @binding(2) var<storage, read> rowInfo: array<RowInfo>;  // [rows]
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x / N_HEADS;
  if (t >= p.rows) { return; }
  let n = rowInfo[t].pos + 1u;
  let base = wid.x * CTX;
  var m = -3.4e38;
  for (var j = lid; j < n; j += WG) { m = max(m, scores[base + j]); }
  red[lid] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  m = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = lid; j < n; j += WG) { let e = exp(scores[base + j] - m); scores[base + j] = e; sum += e; }
  red[lid] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  for (var j = lid; j < n; j += WG) { scores[base + j] *= inv; }
}
