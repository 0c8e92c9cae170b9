// Embedding lookup: x[t, :] = E[tokens[t], :]. One thread per (row, chunk of W_CHUNK columns).
#include params
#include weight
override IN: u32; // model dim (the embedding's row length)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>; // [rows, IN]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let chunks = (IN + W_CHUNK - 1u) / W_CHUNK;
  let t = gid.y;
  let c = gid.x;
  if (t >= p.rows || c >= chunks) { return; }
  let id = tokens[t];
  let col0 = c * W_CHUNK;
  var v = wChunk(id, col0);
  for (var j = 0u; j < W_CHUNK; j++) {
    if (col0 + j < IN) { x[t * IN + col0 + j] = v[j]; }
  }
}
