// Weight access, plain float32 rows [OUT, IN] (q0f32).
@group(1) @binding(0) var<storage, read> wData: array<f32>;
const W_CHUNK: u32 = 4u;
// Values row[col0 .. col0+4) for col0 a multiple of 4; columns past IN read as 0.
fn wChunk(row: u32, col0: u32) -> vec4<f32> {
  let base = row * IN;
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (col0 + j < IN) { v[j] = wData[base + col0 + j]; }
  }
  return v;
}
