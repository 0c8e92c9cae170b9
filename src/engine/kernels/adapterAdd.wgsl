// A LoRA / parallel adapter ('add' sites) fused into its base matmul: the matmul's output becomes
//   y[t, o] (+)= sum_i W[o, i] x[t, i] + scale[seg] * sum_j U[o, j] * z[t, seg * R + j]
// where z = act(D x) was written by the adapter's down-projection just before (every segment side
// by side) and the stacked output row o falls in segment seg (q | k | v, or gate | up), exactly as
// adapterUp.wgsl. Included only by the matmul kernels' adapter variant (kernels.ts), so pipelines
// without an adapter neither declare nor bind group 2.
const ADAPTER_ADD: bool = true;
override R: u32;        // bottleneck width (LoRA r) per segment
override SEG1: u32;     // first row of segment 1 (OUT when there is one segment)
override SEG2: u32;     // first row of segment 2 (OUT when there are fewer)
override Z_STRIDE: u32; // width of one z row: segments * R
@group(2) @binding(0) var<storage, read> adapterZ: array<f32>;      // [rows, Z_STRIDE]
@group(2) @binding(1) var<storage, read> adapterU: array<f32>;      // [OUT, R]
@group(2) @binding(2) var<storage, read> adapterScales: array<f32>; // [segments]

// scale[seg(o)] * sum over j = j0, j0 + dj, ... < R of U[o, j] * z[t, seg(o) * R + j]: the whole
// term with (0, 1); one lane's share with (lane, lanes), the lanes' shares summing to the term.
fn adapterTerm(t: u32, o: u32, j0: u32, dj: u32) -> f32 {
  let seg = select(0u, 1u, o >= SEG1) + select(0u, 1u, o >= SEG2);
  let u = o * R;
  let zb = t * Z_STRIDE + seg * R;
  var s = 0.0;
  for (var j = j0; j < R; j += dj) { s += adapterU[u + j] * adapterZ[zb + j]; }
  return adapterScales[seg] * s;
}
