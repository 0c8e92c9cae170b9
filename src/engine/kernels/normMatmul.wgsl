// y[t, o] = rmsnorm(x[t]) . W[o] = (sum_i x[t, i] g[i] W[o, i]) / sqrt(mean_i x[t, i]^2 + EPS): the
// RMSNorm that precedes a linear layer folded into it, sum x^2 accumulated beside the dot and the
// norm weight g applied as x is read, so the normalised activations are never written. With
// SWIGLU the matrix is MLP's fused [gate | up] (OUT = 2 FFN) and thread o < FFN computes gate row
// o and up row FFN + o, writing h[t, o] = silu(gate) * up: SwiGLU in the epilogue.
// One thread owns one output feature for up to TILE_T rows (matmul.wgsl's layout: decode reads
// each weight once per TILE_T rows). The qkv variant (qkvEpilogue.wgsl included) has
// each thread own the four rows RoPE and the f16 cache's packed words tie together, and applies
// RoPE and the KV write as it stores them: no separate ropeKvWrite pass.
#include params
#include weight
#include qkvEpilogue
override IN: u32;
override OUT: u32;
override EPS: f32;
override SWIGLU: bool = false;
const TILE_T: u32 = 8u;
// Output rows per thread: 4 with the qkv epilogue (a RoPE quad), else 2 (the second only for SWIGLU's up row).
const NR: u32 = select(2u, 4u, QKV_ROPE);
// The quad's third and fourth rows, clamped so that indexing stays in bounds when NR is 2 (where
// that code is dead but must still compile).
const R2: u32 = min(2u, NR - 1u);
const R3: u32 = NR - 1u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [rows, IN] the residual stream
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [rows - xRowOffset, OUT] (SWIGLU: [rows, OUT / 2])
@group(0) @binding(3) var<storage, read> g: array<f32>;       // [IN] the norm's weight

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x;
  let t0 = gid.y * TILE_T;
  let rows = p.rows - p.xRowOffset;
  let nOut = select(select(OUT, OUT / 2u, SWIGLU), OUT / 4u, QKV_ROPE); // threads with work
  if (o >= nOut || t0 >= rows) { return; }
  let nt = min(TILE_T, rows - t0);
  // This thread's weight rows: o (and o + nOut with SWIGLU), or the RoPE quad of o.
  let wRow = weightRows(o, nOut);
  let nr = select(select(1u, 2u, SWIGLU), NR, QKV_ROPE);
  var acc: array<array<f32, TILE_T>, NR>;
  var ss: array<f32, TILE_T>;
  for (var col0 = 0u; col0 < IN; col0 += W_CHUNK) {
    // wChunk's type depends on the weight format, hence four variables rather than an array.
    let w0 = wChunk(wRow[0], col0);
    var w1 = w0;
    var w2 = w0;
    var w3 = w0;
    if (nr > 1u) { w1 = wChunk(wRow[1], col0); }
    if (QKV_ROPE) { w2 = wChunk(wRow[R2], col0); w3 = wChunk(wRow[R3], col0); }
    for (var t = 0u; t < nt; t++) {
      let xb = (p.xRowOffset + t0 + t) * IN + col0;
      var s = vec4<f32>(0.0);
      var sq = 0.0;
      for (var j = 0u; j < W_CHUNK; j++) {
        if (col0 + j < IN) {
          let xv = x[xb + j];
          let xg = xv * g[col0 + j];
          s += xg * vec4<f32>(w0[j], w1[j], w2[j], w3[j]);
          sq += xv * xv;
        }
      }
      for (var r = 0u; r < nr; r++) { acc[r][t] += s[r]; }
      ss[t] += sq;
    }
  }
  for (var t = 0u; t < nt; t++) {
    let inv = inverseSqrt(ss[t] / f32(IN) + EPS);
    let a = acc[0][t] * inv;
    if (QKV_ROPE) {
      qkvStore(o, p.xRowOffset + t0 + t, t0 + t, vec4<f32>(a, acc[1][t] * inv, acc[R2][t] * inv, acc[R3][t] * inv));
    } else if (SWIGLU) {
      y[(t0 + t) * nOut + o] = a / (1.0 + exp(-a)) * (acc[1][t] * inv);
    } else {
      y[(t0 + t) * OUT + o] = a;
    }
  }
}
