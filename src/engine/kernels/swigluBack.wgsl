// SwiGLU backward: for h = silu(g) * u (swiglu.wgsl), from dh:
//   du = dh * silu(g);   dg = dh * u * sigmoid(g) * (1 + g * (1 - sigmoid(g)))
// written as fused rows [dg | du], the layout of the forward's gate_up output, so the fused
// gate_up matmul's backward reads them as they are.
#include params
override FFN: u32;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;         // [rows, 2 FFN] forward [gate | up]
@group(0) @binding(2) var<storage, read> dh: array<f32>;         // [rows, FFN]
@group(0) @binding(3) var<storage, read_write> dgu: array<f32>;  // [rows, 2 FFN] [dgate | dup]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= FFN || t >= p.rows) { return; }
  let g = gu[t * 2u * FFN + i];
  let u = gu[t * 2u * FFN + FFN + i];
  let d = dh[t * FFN + i];
  // exp(-g) overflows to +inf for g < -88: sigmoid is then 0 and both gradients 0, as they should be.
  let sg = 1.0 / (1.0 + exp(-g));
  dgu[t * 2u * FFN + i] = d * u * sg * (1.0 + g * (1.0 - sg));
  dgu[t * 2u * FFN + FFN + i] = d * g * sg;
}
