// Causal attention backward, query side, over whole training sequences: p.rows = B * T rows of B
// right-padded sequences of T = p.kvLen tokens, row n = b * T + t at position t, seeing the keys of
// its own sequence at positions <= t. Grouped-query heads as the forward (attnScores.wgsl): head h
// reads kv head h / (N_HEADS / N_KV_HEADS); scale 1 / sqrt(HEAD_DIM).
// One workgroup per (row, head). The probabilities are recomputed, not read: a [rows, heads, T]
// buffer per layer is what gradient checkpointing avoids keeping. Three passes over the keys j:
//   1. online max / sum of exp(s_j), s_j = q . k_j * scale, giving lse = log sum_j exp(s_j);
//   2. D = sum_j P_j dP_j with P_j = exp(s_j - lse), dP_j = dOut . v_j;
//   3. dq = scale * sum_j dS_j k_j with dS_j = P_j (dP_j - D) (softmax backward), 64 keys at a time
//      through workgroup memory so each thread sums whole columns d of k.
// (lse, D) per (row, head) go to `stats`: attnBackKeyValue.wgsl recomputes P and dS from them.
// Layouts: qkv and dqkv [rows, (N_HEADS + 2 N_KV_HEADS) HEAD_DIM] as the forward's fused q | k | v
// (q and k after RoPE); this kernel writes the q columns of dqkv, attnBackKeyValue the k and v ones.
#include params
override HEAD_DIM: u32; // at most MAX_HD
override N_HEADS: u32;
override N_KV_HEADS: u32;
const WG: u32 = 64u;
const MAX_HD: u32 = 256u;
const PER_THREAD: u32 = MAX_HD / WG; // columns d = lid + i * WG of one thread
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> dOut: array<f32>;          // [rows, N_HEADS * HEAD_DIM]
@group(0) @binding(3) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2<f32>>; // [rows, N_HEADS]: (lse, D)
var<workgroup> qs: array<f32, MAX_HD>;
var<workgroup> dos: array<f32, MAX_HD>;
var<workgroup> red: array<vec2<f32>, WG>;
var<workgroup> dsChunk: array<f32, WG>;

fn keyDot(row: u32, col: u32) -> f32 {
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  var s = 0.0;
  for (var d = 0u; d < HEAD_DIM; d++) { s += qs[d] * qkv[row * width + col + d]; }
  return s;
}

fn valueDot(row: u32, col: u32) -> f32 {
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  var s = 0.0;
  for (var d = 0u; d < HEAD_DIM; d++) { s += dos[d] * qkv[row * width + col + d]; }
  return s;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = wid.x;
  let h = wid.y;
  if (n >= p.rows || h >= N_HEADS) { return; }
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  let pos = n % p.kvLen;
  let first = n - pos; // row of the sequence's position 0
  let nk = pos + 1u;
  let kvh = h / (N_HEADS / N_KV_HEADS);
  let kCol = N_HEADS * HEAD_DIM + kvh * HEAD_DIM;
  let vCol = (N_HEADS + N_KV_HEADS) * HEAD_DIM + kvh * HEAD_DIM;
  let scale = inverseSqrt(f32(HEAD_DIM));
  for (var d = lid; d < HEAD_DIM; d += WG) {
    qs[d] = qkv[n * width + h * HEAD_DIM + d];
    dos[d] = dOut[(n * N_HEADS + h) * HEAD_DIM + d];
  }
  workgroupBarrier();

  // 1. (max, sum of exp(s - max)) per thread, then merged pairwise.
  var m = -3.4e38;
  var l = 0.0;
  for (var j = lid; j < nk; j += WG) {
    let s = keyDot(first + j, kCol) * scale;
    if (s > m) { l = l * exp(m - s) + 1.0; m = s; } else { l += exp(s - m); }
  }
  red[lid] = vec2<f32>(m, l);
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      let a = red[lid];
      let b = red[lid + stride];
      let mm = max(a.x, b.x);
      red[lid] = vec2<f32>(mm, a.y * exp(a.x - mm) + b.y * exp(b.x - mm));
    }
    workgroupBarrier();
  }
  let lse = red[0].x + log(red[0].y);
  workgroupBarrier();

  // 2. D = sum_j P_j dP_j.
  var dsum = 0.0;
  for (var j = lid; j < nk; j += WG) {
    dsum += exp(keyDot(first + j, kCol) * scale - lse) * valueDot(first + j, vCol);
  }
  red[lid] = vec2<f32>(dsum, 0.0);
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { red[lid].x += red[lid + stride].x; }
    workgroupBarrier();
  }
  let dd = red[0].x;

  // 3. dq, 64 keys at a time: thread lid finds dS of key j0 + lid, then every thread adds its columns.
  var acc: array<f32, PER_THREAD>;
  for (var j0 = 0u; j0 < nk; j0 += WG) {
    let j = j0 + lid;
    var g = 0.0;
    if (j < nk) {
      let pj = exp(keyDot(first + j, kCol) * scale - lse);
      g = pj * (valueDot(first + j, vCol) - dd) * scale;
    }
    dsChunk[lid] = g;
    workgroupBarrier();
    let count = min(WG, nk - j0);
    for (var jj = 0u; jj < count; jj++) {
      let kb = (first + j0 + jj) * width + kCol;
      for (var i = 0u; i < PER_THREAD; i++) {
        let d = lid + i * WG;
        if (d < HEAD_DIM) { acc[i] += dsChunk[jj] * qkv[kb + d]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < PER_THREAD; i++) {
    let d = lid + i * WG;
    if (d < HEAD_DIM) { dqkv[n * width + h * HEAD_DIM + d] = acc[i]; }
  }
  if (lid == 0u) { stats[n * N_HEADS + h] = vec2<f32>(lse, dd); }
}
