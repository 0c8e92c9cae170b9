// y[t, o] (+)= act(sum_i x[t, i] * W[o, i] (+ adapter term)) for the rows of one call: the linear
// layers (with a fused LoRA / parallel adapter: adapterAdd.wgsl), the LM head, and adapter
// down-projections (with an activation).
// One thread owns one output feature o for up to TILE_T token rows, so each weight value is
// read once per TILE_T rows (decode: one row, the weight read is the whole cost).
#include params
#include weight
#include activation
#include adapterAdd
override IN: u32;
override OUT: u32;
override ACCUMULATE: bool = false; // residual add: y += W x
// Output rows o >= SPLIT_ROW read a second input block stored after the first ([2, rows, IN]):
// a series adapter gives gate_proj and up_proj different inputs while they stay one fused matmul.
override SPLIT_ROW: u32 = 0xffffffffu;
const TILE_T: u32 = 8u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [rows, IN]
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [rows - xRowOffset, OUT]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x;
  let t0 = gid.y * TILE_T;
  let rows = p.rows - p.xRowOffset;
  if (o >= OUT || t0 >= rows) { return; }
  let nt = min(TILE_T, rows - t0);
  let xBlock = select(0u, p.rows * IN, o >= SPLIT_ROW);
  var acc: array<f32, TILE_T>;
  for (var col0 = 0u; col0 < IN; col0 += W_CHUNK) {
    var w = wChunk(o, col0);
    for (var t = 0u; t < nt; t++) {
      let xb = xBlock + (p.xRowOffset + t0 + t) * IN + col0;
      var s = 0.0;
      for (var j = 0u; j < W_CHUNK; j++) {
        if (col0 + j < IN) { s += x[xb + j] * w[j]; }
      }
      acc[t] += s;
    }
  }
  for (var t = 0u; t < nt; t++) {
    let yi = (t0 + t) * OUT + o;
    var a = acc[t];
    if (ADAPTER_ADD) { a += adapterTerm(t0 + t, o, 0u, 1u); }
    let v = activate(a);
    if (ACCUMULATE) { y[yi] = y[yi] + v; } else { y[yi] = v; }
  }
}
