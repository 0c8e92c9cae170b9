// Append this call's keys and values (rows of the fused qkv buffer, after RoPE) to the KV cache,
// each row at its sequence's slot and position. One thread per pair of adjacent elements, so the f16 cache can be
// written as whole packed words.
#include params
#include kv
override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override CTX: u32; // positions per slot
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>; // [rows, (N_HEADS + 2 N_KV_HEADS) HEAD_DIM]
@group(0) @binding(4) var<storage, read> rowInfo: array<RowInfo>; // [rows]
// caches: [slots, CTX, N_KV_HEADS * HEAD_DIM]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let kvWidth = N_KV_HEADS * HEAD_DIM;
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  let e = gid.x * 2u;
  let t = gid.y;
  if (e >= kvWidth || t >= p.rows) { return; }
  let src = t * width + N_HEADS * HEAD_DIM + e;
  let dst = (rowInfo[t].slot * CTX + rowInfo[t].pos) * kvWidth + e;
  KV_STORE
}
