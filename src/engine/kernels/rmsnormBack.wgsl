// RMSNorm backward with a frozen weight (no dw): for y = x * inv * w, inv = 1/sqrt(mean(x^2) + eps),
//   dx[t, :] (+)= inv * w * dy - x * inv^3 / DIM * sum_j dy_j w_j x_j
// (referenceTraining.ts rmsNormBack). ACCUMULATE adds onto dx: the residual stream's gradient
// arrives there first. inv is recomputed from x (checkpointed layers keep only their input). One
// workgroup per row.
#include params
override DIM: u32;
override EPS: f32;
override ACCUMULATE: u32 = 0u;
const WG: u32 = 64u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [rows, DIM] the norm's input
@group(0) @binding(2) var<storage, read> w: array<f32>;        // [DIM]
@group(0) @binding(3) var<storage, read> dy: array<f32>;       // [rows, DIM]
@group(0) @binding(4) var<storage, read_write> dx: array<f32>; // [rows, DIM]
var<workgroup> red: array<vec2<f32>, WG>; // (sum x^2, sum dy w x)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  if (t >= p.rows) { return; }
  let base = t * DIM;
  var s = vec2<f32>(0.0);
  for (var i = lid; i < DIM; i += WG) {
    let v = x[base + i];
    s += vec2<f32>(v * v, dy[base + i] * w[i] * v);
  }
  red[lid] = s;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { red[lid] += red[lid + stride]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(red[0].x / f32(DIM) + EPS);
  let k = inv * inv * inv * red[0].y / f32(DIM);
  for (var i = lid; i < DIM; i += WG) {
    var g = inv * w[i] * dy[base + i] - x[base + i] * k;
    if (ACCUMULATE != 0u) { g += dx[base + i]; }
    dx[base + i] = g;
  }
}
