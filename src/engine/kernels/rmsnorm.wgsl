// RMSNorm: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w. One workgroup per row.
#include params
override DIM: u32;
override EPS: f32;
const WG: u32 = 64u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [rows, DIM]
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [rows, DIM]
@group(0) @binding(3) var<storage, read> w: array<f32>;       // [DIM]
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  if (t >= p.rows) { return; }
  let base = t * DIM;
  var s = 0.0;
  for (var i = lid; i < DIM; i += WG) { let v = x[base + i]; s += v * v; }
  partial[lid] = s;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(partial[0] / f32(DIM) + EPS);
  for (var i = lid; i < DIM; i += WG) { y[base + i] = x[base + i] * inv * w[i]; }
}
