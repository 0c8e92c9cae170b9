// Causal attention backward, key / value side (after attnBackQuery.wgsl, same layouts and rows):
//   dK[n, g] = sum dS_{t,h,n} q_{t,h},   dV[n, g] = sum P_{t,h,n} dOut_{t,h}
// over the query rows t of the same sequence at positions >= n's and the query heads h sharing kv
// head g, with P = exp(q_{t,h} . k_n * scale - lse_{t,h}) and dS = P (dOut_{t,h} . v_n - D_{t,h}) * scale
// recomputed from attnBackQuery's (lse, D). Gathering per key instead of scattering per query keeps
// the sum over queries and heads inside one workgroup: no atomics, a deterministic order.
// One workgroup per (key row, kv head); 64 (query, head) pairs at a time, each thread finding one
// pair's P and dS, then every thread adds its columns d. Writes the k and v columns of dqkv.
#include params
override HEAD_DIM: u32; // at most MAX_HD
override N_HEADS: u32;
override N_KV_HEADS: u32;
const WG: u32 = 64u;
const MAX_HD: u32 = 256u;
const PER_THREAD: u32 = MAX_HD / WG;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> dOut: array<f32>;         // [rows, N_HEADS * HEAD_DIM]
@group(0) @binding(3) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<vec2<f32>>;  // [rows, N_HEADS]: (lse, D)
var<workgroup> ks: array<f32, MAX_HD>;
var<workgroup> vs: array<f32, MAX_HD>;
var<workgroup> pChunk: array<f32, WG>;
var<workgroup> dsChunk: array<f32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = wid.x;
  let g = wid.y;
  if (n >= p.rows || g >= N_KV_HEADS) { return; }
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  let group = N_HEADS / N_KV_HEADS;
  let pos = n % p.kvLen;
  let queries = p.kvLen - pos; // rows n .. the sequence's last
  let pairs = queries * group;
  let kCol = N_HEADS * HEAD_DIM + g * HEAD_DIM;
  let vCol = (N_HEADS + N_KV_HEADS) * HEAD_DIM + g * HEAD_DIM;
  let scale = inverseSqrt(f32(HEAD_DIM));
  for (var d = lid; d < HEAD_DIM; d += WG) {
    ks[d] = qkv[n * width + kCol + d];
    vs[d] = qkv[n * width + vCol + d];
  }
  workgroupBarrier();
  var dk: array<f32, PER_THREAD>;
  var dv: array<f32, PER_THREAD>;
  for (var e0 = 0u; e0 < pairs; e0 += WG) {
    let e = e0 + lid;
    var pe = 0.0;
    var ge = 0.0;
    if (e < pairs) {
      let t = n + e / group;
      let h = g * group + e % group;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < HEAD_DIM; d++) {
        s += qkv[t * width + h * HEAD_DIM + d] * ks[d];
        dp += dOut[(t * N_HEADS + h) * HEAD_DIM + d] * vs[d];
      }
      let st = stats[t * N_HEADS + h];
      pe = exp(s * scale - st.x);
      ge = pe * (dp - st.y) * scale;
    }
    pChunk[lid] = pe;
    dsChunk[lid] = ge;
    workgroupBarrier();
    let count = min(WG, pairs - e0);
    for (var ee = 0u; ee < count; ee++) {
      let t = n + (e0 + ee) / group;
      let h = g * group + (e0 + ee) % group;
      let qb = t * width + h * HEAD_DIM;
      let ob = (t * N_HEADS + h) * HEAD_DIM;
      for (var i = 0u; i < PER_THREAD; i++) {
        let d = lid + i * WG;
        if (d < HEAD_DIM) {
          dk[i] += dsChunk[ee] * qkv[qb + d];
          dv[i] += pChunk[ee] * dOut[ob + d];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < PER_THREAD; i++) {
    let d = lid + i * WG;
    if (d < HEAD_DIM) {
      dqkv[n * width + kCol + d] = dk[i];
      dqkv[n * width + vCol + d] = dv[i];
    }
  }
}
