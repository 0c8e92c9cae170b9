// Append this call's keys and values (rows of the fused qkv buffer, after RoPE) to the KV cache
// at positions startPos.. . One thread per pair of adjacent elements, so the f16 cache can be
// written as whole packed words.
#include params
#include kv
override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>; // [rows, (N_HEADS + 2 N_KV_HEADS) HEAD_DIM]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let kvWidth = N_KV_HEADS * HEAD_DIM;
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  let e = gid.x * 2u;
  let t = gid.y;
  if (e >= kvWidth || t >= p.rows) { return; }
  let src = t * width + N_HEADS * HEAD_DIM + e;
  let dst = (p.startPos + t) * kvWidth + e;
  KV_STORE
}
