// Adapter non-linearities, chosen by the ACT override: 0 none, 1 tanh, 2 relu, 3 silu, 4 gelu.
// gelu is PyTorch's default (exact, erf-based) gelu, as LLM-Adapters' ACT2FN["gelu"] uses; WGSL
// has no erf, so it uses Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
override ACT: u32 = 0u;
fn erfApprox(x: f32) -> f32 {
  let s = sign(x);
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return s * y;
}
fn activate(x: f32) -> f32 {
  switch ACT {
    case 1u: { return tanh(x); }
    case 2u: { return max(x, 0.0); }
    case 3u: { return x / (1.0 + exp(-x)); }
    case 4u: { return 0.5 * x * (1.0 + erfApprox(x * 0.70710678118654752)); }
    default: { return x; }
  }
}
