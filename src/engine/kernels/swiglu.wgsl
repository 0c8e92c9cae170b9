// SwiGLU: h[t, i] = silu(gate[t, i]) * up[t, i], reading the fused gate_up rows [gate | up].
#include params
override FFN: u32;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;      // [rows, 2 FFN]
@group(0) @binding(2) var<storage, read_write> h: array<f32>; // [rows, FFN]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= FFN || t >= p.rows) { return; }
  let g = gu[t * 2u * FFN + i];
  let u = gu[t * 2u * FFN + FFN + i];
  h[t * FFN + i] = g / (1.0 + exp(-g)) * u;
}
