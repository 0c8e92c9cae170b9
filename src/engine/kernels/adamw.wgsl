// AdamW update, one thread per element (torch.optim.AdamW _single_tensor_adamw; the oracle is
// src/training/adamw.ts adamwStep). The step's scalars are computed on the CPU in f64 and rounded
// to f32, as torch's Python scalars meet f32 tensors (trainingKernels.ts adamwStepScalars):
//   p <- p * decay;  m <- m + w1 (g - m);  v <- v b2 + (w2 g) g;  p <- p + negStepSize * m / (sqrt(v) / bc2Sqrt + eps)
// A 2-D grid: a 7B LoRA has more elements than 65535 workgroups of 64 cover.
struct AdamWStep {
  n: u32,           // elements
  decay: f32,       // 1 - lr * weight_decay
  w1: f32,          // 1 - beta1
  b2: f32,          // beta2
  w2: f32,          // 1 - beta2
  negStepSize: f32, // -lr / (1 - beta1^t)
  bc2Sqrt: f32,     // sqrt(1 - beta2^t)
  eps: f32,
};
@group(0) @binding(0) var<uniform> hyper: AdamWStep;
@group(0) @binding(1) var<storage, read_write> param: array<f32>; // [n]
@group(0) @binding(2) var<storage, read> grad: array<f32>;        // [n]
@group(0) @binding(3) var<storage, read_write> m: array<f32>;     // [n] exp_avg
@group(0) @binding(4) var<storage, read_write> v: array<f32>;     // [n] exp_avg_sq

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= hyper.n) { return; }
  let g = grad[i];
  let pd = param[i] * hyper.decay;
  let mi = m[i] + hyper.w1 * (g - m[i]);
  let vi = v[i] * hyper.b2 + (hyper.w2 * g) * g;
  let denom = sqrt(vi) / hyper.bc2Sqrt + hyper.eps;
  m[i] = mi;
  v[i] = vi;
  param[i] = pd + hyper.negStepSize * (mi / denom);
}
