// Decode-time y[t, o] (+)= sum_i x[t, i] * W[o, i] over MLC q4 weights, for up to TILE_T rows.
// Decode is bound by reading the weights, so: one workgroup per output feature, its 64 threads
// reading consecutive 16-byte words (vec4<u32> = one whole group of 32 int4 values and its single
// scale) so every load is wide and coalesced, then a reduction across the workgroup of the call's
// rows: reduceRowsSubgroup.wgsl where the device has subgroups (no subgroup size or layout
// assumed), reduceRowsShared.wgsl's tree otherwise. A fused LoRA /
// parallel adapter (adapterAdd.wgsl) spreads its R products over the lanes too: each lane adds its
// share into acc[t] before the reduction, which then sums the adapter term with W x.
REDUCE_ENABLE
#include params
#include q4Values
#include adapterAdd
override IN: u32;  // multiple of 4 (x is read as vec4); not necessarily of 32: MLC pads the last group
override OUT: u32;
override ACCUMULATE: bool = false;
override SPLIT_ROW: u32 = 0xffffffffu; // rows o >= SPLIT_ROW read the second input block (series adapters)
const TILE_T: u32 = 8u;
const WG: u32 = 64u;
const NV: u32 = TILE_T; // values reduced: one dot per row
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>; // [rows, IN / 4]
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [rows - xRowOffset, OUT]
@group(1) @binding(0) var<storage, read> wData: array<vec4<u32>>; // [OUT, ceil(IN / 32)]
@group(1) @binding(1) var<storage, read> wScale: array<SCALE_STORAGE>;
var<workgroup> partial: array<array<f32, NV>, WG>;
REDUCE_DECL

// Whether reduction value v (row v's dot) is needed: the call's rows only.
fn live(v: u32, rows: u32) -> bool {
  return v < rows;
}

fn scaleAt(i: u32) -> f32 {
  SCALE_READ
}

// x[xb + k] (4 activations) where they lie inside the row, zeros in a padded group's tail.
fn xTail(xb: u32, k: u32, g: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), x[xb + k], g * 8u + k < IN / 4u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32 REDUCE_PARAMS) {
  let o = wid.y * nwg.x + wid.x;
  let rows = min(p.rows - p.xRowOffset, TILE_T);
  let groups = (IN + 31u) / 32u;
  let fullGroups = IN / 32u; // groups whose 32 columns all lie inside the row
  let xBlock = select(0u, p.rows * (IN / 4u), o >= SPLIT_ROW);
  var acc: array<f32, TILE_T>;
  if (o < OUT) {
    for (var g = lid; g < groups; g += WG) {
      let q = wData[o * groups + g];
      let s = scaleAt(o * groups + g);
      for (var t = 0u; t < rows; t++) {
        let xb = xBlock + (p.xRowOffset + t) * (IN / 4u) + g * 8u;
        var d: f32;
        if (g < fullGroups) {
          d = dot8(q.x, x[xb], x[xb + 1u]) + dot8(q.y, x[xb + 2u], x[xb + 3u]) + dot8(q.z, x[xb + 4u], x[xb + 5u]) + dot8(q.w, x[xb + 6u], x[xb + 7u]);
        } else {
          // The padded last group: its columns past IN must meet zeros, not the next row's x.
          d = dot8(q.x, xTail(xb, 0u, g), xTail(xb, 1u, g)) + dot8(q.y, xTail(xb, 2u, g), xTail(xb, 3u, g)) +
            dot8(q.z, xTail(xb, 4u, g), xTail(xb, 5u, g)) + dot8(q.w, xTail(xb, 6u, g), xTail(xb, 7u, g));
        }
        acc[t] += d * s;
      }
    }
    if (ADAPTER_ADD) {
      for (var t = 0u; t < rows; t++) { acc[t] += adapterTerm(t, o, lid, WG); }
    }
  }
  ROWS_REDUCE
  if (lid == 0u && o < OUT) {
    for (var t = 0u; t < rows; t++) {
      let yi = t * OUT + o;
      if (ACCUMULATE) { y[yi] = y[yi] + partial[0][t]; } else { y[yi] = partial[0][t]; }
    }
  }
}
