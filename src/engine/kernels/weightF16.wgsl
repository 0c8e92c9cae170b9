// Weight access, float16 rows [OUT, IN] stored as packed u32 pairs (q0f16). Read with
// unpack2x16float so the same kernel runs with or without the shader-f16 feature.
@group(1) @binding(0) var<storage, read> wData: array<u32>;
const W_CHUNK: u32 = 4u;
fn wHalf(i: u32) -> f32 {
  return unpack2x16float(wData[i >> 1u])[i & 1u];
}
fn wChunk(row: u32, col0: u32) -> vec4<f32> {
  let base = row * IN;
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (col0 + j < IN) { v[j] = wHalf(base + col0 + j); }
  }
  return v;
}
