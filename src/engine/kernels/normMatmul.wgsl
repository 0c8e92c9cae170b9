// y[t, o] = rmsnorm(x[t]) . W[o] = (sum_i x[t, i] g[i] W[o, i]) / sqrt(mean_i x[t, i]^2 + EPS): the
// RMSNorm that precedes a linear layer folded into it, sum x^2 accumulated beside the dot and the
// norm weight g applied as x is read, so the normalised activations are never written. With
// SWIGLU the matrix is MLP's fused [gate | up] (OUT = 2 FFN) and thread o < FFN computes gate row
// o and up row FFN + o, writing h[t, o] = silu(gate) * up: SwiGLU in the epilogue.
// One thread owns one output feature for up to TILE_T rows (matmul.wgsl's layout: decode reads
// each weight once per TILE_T rows).
#include params
#include weight
override IN: u32;
override OUT: u32;
override EPS: f32;
override SWIGLU: bool = false;
const TILE_T: u32 = 8u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [rows, IN] the residual stream
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [rows - xRowOffset, OUT] (SWIGLU: [rows, OUT / 2])
@group(0) @binding(3) var<storage, read> g: array<f32>;       // [IN] the norm's weight

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x;
  let t0 = gid.y * TILE_T;
  let rows = p.rows - p.xRowOffset;
  let nOut = select(OUT, OUT / 2u, SWIGLU);
  if (o >= nOut || t0 >= rows) { return; }
  let nt = min(TILE_T, rows - t0);
  var acc: array<f32, TILE_T>;
  var accUp: array<f32, TILE_T>;
  var ss: array<f32, TILE_T>;
  for (var col0 = 0u; col0 < IN; col0 += W_CHUNK) {
    let w = wChunk(o, col0);
    var wUp = w;
    if (SWIGLU) { wUp = wChunk(o + nOut, col0); }
    for (var t = 0u; t < nt; t++) {
      let xb = (p.xRowOffset + t0 + t) * IN + col0;
      var s = 0.0;
      var su = 0.0;
      var sq = 0.0;
      for (var j = 0u; j < W_CHUNK; j++) {
        if (col0 + j < IN) {
          let xv = x[xb + j];
          let xg = xv * g[col0 + j];
          s += xg * w[j];
          su += xg * wUp[j];
          sq += xv * xv;
        }
      }
      acc[t] += s;
      accUp[t] += su;
      ss[t] += sq;
    }
  }
  for (var t = 0u; t < nt; t++) {
    let inv = inverseSqrt(ss[t] / f32(IN) + EPS);
    let a = acc[t] * inv;
    if (SWIGLU) {
      y[(t0 + t) * nOut + o] = a / (1.0 + exp(-a)) * (accUp[t] * inv);
    } else {
      y[(t0 + t) * OUT + o] = a;
    }
  }
}
