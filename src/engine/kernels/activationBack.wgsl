// Adapter activation backward, in place: g[t, i] <- SCALE * g[t, i] * act'(h[t, i]), h the
// pre-activation (ACT codes of activation.wgsl; referenceTraining.ts activationDerivative):
//   tanh 1 - tanh^2 = sech^2;  relu [h > 0] (0 at 0, as torch);  silu s (1 + h (1 - s));  gelu Phi(h) + h phi(h).
// SCALE folds in the adapter's scaling, which multiplies the up-projection's output.
#include params
#include activation
override WIDTH: u32;
override SCALE: f32 = 1.0;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> h: array<f32>;        // [rows, WIDTH]
@group(0) @binding(2) var<storage, read_write> g: array<f32>;  // [rows, WIDTH]

fn activationDerivative(x: f32) -> f32 {
  switch ACT {
    // sech^2 rather than 1 - tanh^2, which cancels to 0 in f32 once |x| > 9; cosh(44)^2 still fits in f32, past it sech^2 is 0.
    case 1u: { if (abs(x) > 44.0) { return 0.0; } let c = cosh(x); return 1.0 / (c * c); }
    case 2u: { return select(0.0, 1.0, x > 0.0); }
    case 3u: { let s = 1.0 / (1.0 + exp(-x)); return s * (1.0 + x * (1.0 - s)); }
    case 4u: { return 0.5 * (1.0 + erfApprox(x * 0.70710678118654752)) + x * exp(-0.5 * x * x) * 0.3989422804014327; }
    default: { return 1.0; }
  }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= WIDTH || t >= p.rows) { return; }
  let o = t * WIDTH + i;
  g[o] = SCALE * g[o] * activationDerivative(h[o]);
}
