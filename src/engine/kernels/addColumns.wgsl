// Strided column-block add (or copy) for the training pass:
//   dst[t, DST_COL + c] = (ACCUMULATE ? dst[t, DST_COL + c] : 0) + SCALE * src[t, SRC_COL + c],  c < COLS
// over the call's rows. It lands a module's adapter output on its columns of a fused output
// (q | k | v, gate | up) with the adapter's scaling, adds residual gradients, and packs the rotated
// keys of the KV cache back beside q and v. One thread per (column, row).
#include params
override COLS: u32;
override SRC_W: u32;  // values per src row
override SRC_COL: u32 = 0u;
override DST_W: u32;  // values per dst row
override DST_COL: u32 = 0u;
override SCALE: f32 = 1.0;
override ACCUMULATE: bool = true;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;       // [rows, SRC_W]
@group(0) @binding(2) var<storage, read_write> dst: array<f32>; // [rows, DST_W]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let t = gid.y;
  if (c >= COLS || t >= p.rows) { return; }
  let v = SCALE * src[t * SRC_W + SRC_COL + c];
  let o = t * DST_W + DST_COL + c;
  if (ACCUMULATE) { dst[o] = dst[o] + v; } else { dst[o] = v; }
}
