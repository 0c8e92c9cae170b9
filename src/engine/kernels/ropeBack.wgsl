// RoPE backward: a rotation's gradient is the inverse rotation (its transpose). Rotate-half pairs
// (i, i + HEAD_DIM/2) of each of the first N_HEADS heads of a row (the q then k heads of fused
// dqkv rows; dv after them is not rotated), at the row's position, in place:
//   g0' = g0 * cos + g1 * sin;   g1' = g1 * cos - g0 * sin
// with the forward's cos/sin table (buffers.ts ropeTable: f32 inv_freq and f32 angle, as HF).
#include params
override HEAD_DIM: u32;
override N_HEADS: u32; // heads rotated per row
override ROW_W: u32;   // floats per row of grad
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;  // [rows, ROW_W]
@group(0) @binding(2) var<storage, read> cosSin: array<f32>;      // [ctx, HEAD_DIM/2, 2]
@group(0) @binding(3) var<storage, read> rowInfo: array<RowInfo>; // [rows] (only pos is read)

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let half = HEAD_DIM / 2u;
  let t = gid.y;
  if (t >= p.rows || gid.x >= N_HEADS * half) { return; }
  let i = gid.x % half;
  let pos = rowInfo[t].pos;
  let c = cosSin[(pos * half + i) * 2u];
  let s = cosSin[(pos * half + i) * 2u + 1u];
  let o = t * ROW_W + (gid.x / half) * HEAD_DIM + i;
  let g0 = grad[o];
  let g1 = grad[o + half];
  grad[o] = g0 * c + g1 * s;
  grad[o + half] = g1 * c - g0 * s;
}
