// Series adapter up-projection, every target module of one fused linear in one pass:
//   v = scale[seg] * sum_j U[o, j] * z[t, seg * R + j]
// where the stacked output row o falls in segment seg (gate | up) and z holds every segment's
// bottleneck activations side by side. Then, by mode:
//   series on gate/up (SPLIT): y[seg][t, o'] = res[t, o'] + v     (each half gets its own input)
//   series on down_proj:       y[t, o] += res[t, o] + v           (res = the linear's output; y = residual)
// (LoRA and parallel adapters add v onto their linear's output inside the base matmul itself:
// adapterAdd.wgsl.)
#include params
override N: u32;        // stacked output rows
override R: u32;        // bottleneck width (LoRA r) per segment
override SEG1: u32;     // first row of segment 1 (N when there is one segment)
override SEG2: u32;     // first row of segment 2 (N when there are fewer)
override Z_STRIDE: u32; // width of one z row: segments * R
override OUT_W: u32;    // width of a y / res row when not split
override SEG_W: u32;    // segment width when split (gate and up inputs are both model-dim wide)
override SPLIT_OUT: bool;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;        // [rows, Z_STRIDE]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> res: array<f32>;
@group(0) @binding(4) var<storage, read> scales: array<f32>;   // [segments]
@group(1) @binding(0) var<storage, read> U: array<f32>;        // [N, R]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x;
  let t = gid.y;
  if (o >= N || t >= p.rows) { return; }
  let seg = select(0u, 1u, o >= SEG1) + select(0u, 1u, o >= SEG2);
  var acc = 0.0;
  for (var j = 0u; j < R; j++) { acc += U[o * R + j] * z[t * Z_STRIDE + seg * R + j]; }
  var v = scales[seg] * acc;
  var dst = t * OUT_W + o;
  var src = dst;
  if (SPLIT_OUT) {
    let local = o - seg * SEG_W;
    dst = (seg * p.rows + t) * SEG_W + local;
    src = t * SEG_W + local;
  }
  v += res[src];
  if (!SPLIT_OUT) { v += y[dst]; }
  y[dst] = v;
}
