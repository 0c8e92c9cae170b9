// Attention of one (row, head) in one dispatch: s_j = q . k_j / sqrt(HEAD_DIM) for the keys the row
// may see (causal: j <= its position, in its own slot), p = softmax(s), o = sum_j p_j v_j. It does
// what attnScores, attnSoftmax and attnOutput do in three passes, so a decode step has two fewer
// storage barriers per layer. One workgroup per (row, head); the unnormalised exp(s_j - max) wait
// in the scores scratch row between the phases (written and read by this workgroup only).
#include params
#include kv
override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override CTX: u32; // stride of a score row (the context window)
const WG: u32 = 64u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;          // [rows, QKV width]: q already rotated
@group(0) @binding(2) var<storage, read_write> scores: array<f32>; // [rows, N_HEADS, CTX] scratch
@group(0) @binding(5) var<storage, read> rowInfo: array<RowInfo>;  // [rows]
@group(0) @binding(6) var<storage, read_write> o: array<f32>;      // [rows, N_HEADS * HEAD_DIM]
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x / N_HEADS;
  let h = wid.x % N_HEADS;
  if (t >= p.rows) { return; }
  let row = rowInfo[t];
  let n = row.pos + 1u;
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  let kvWidth = N_KV_HEADS * HEAD_DIM;
  let kvh = h / (N_HEADS / N_KV_HEADS);
  let q0 = t * width + h * HEAD_DIM;
  let c0 = row.slot * CTX * kvWidth + kvh * HEAD_DIM; // key/value 0 of this slot and kv head
  let base = wid.x * CTX;
  let scale = inverseSqrt(f32(HEAD_DIM));

  // Scores, each thread a strided share of the keys, and their maximum.
  var m = -3.4e38;
  for (var j = lid; j < n; j += WG) {
    var s = 0.0;
    for (var d = 0u; d < HEAD_DIM; d++) { s += qkv[q0 + d] * kAt(c0 + j * kvWidth + d); }
    s *= scale;
    scores[base + j] = s;
    m = max(m, s);
  }
  red[lid] = m;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k /= 2u) {
    if (lid < k) { red[lid] = max(red[lid], red[lid + k]); }
    workgroupBarrier();
  }
  m = red[0];
  workgroupBarrier();

  // exp(s - max) in place (the same thread wrote each entry), and their sum.
  var sum = 0.0;
  for (var j = lid; j < n; j += WG) { let e = exp(scores[base + j] - m); scores[base + j] = e; sum += e; }
  red[lid] = sum;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k /= 2u) {
    if (lid < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  // Every thread now reads every key's weight: the other threads' scratch writes must be visible.
  storageBarrier();

  // Output: one thread per dimension (strided), a serial sum over the visible keys.
  for (var d = lid; d < HEAD_DIM; d += WG) {
    var acc = 0.0;
    for (var j = 0u; j < n; j++) { acc += scores[base + j] * vAt(c0 + j * kvWidth + d); }
    o[t * N_HEADS * HEAD_DIM + h * HEAD_DIM + d] = acc * inv;
  }
}
