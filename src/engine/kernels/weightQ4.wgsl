// Weight access, MLC q4 group quantization (q4f16_1 / q4f32_1): int4 values, 8 per u32 with
// element j in bits 4j..4j+3, groups of 32 along the input dimension, w = (q - 7) * scale.
// q_weight [OUT, IN/8] u32, q_scale [OUT, IN/32] (float16 pairs or float32, see scaleAt).
@group(1) @binding(0) var<storage, read> wData: array<u32>;
@group(1) @binding(1) var<storage, read> wScale: array<SCALE_STORAGE>;
const W_CHUNK: u32 = 8u;
fn scaleAt(i: u32) -> f32 {
  SCALE_READ
}
// Values row[col0 .. col0+8) for col0 a multiple of 8 (IN is a multiple of 32 in q4 modes).
fn wChunk(row: u32, col0: u32) -> array<f32, 8> {
  let word = wData[row * (IN / 8u) + col0 / 8u];
  let s = scaleAt(row * (IN / 32u) + col0 / 32u);
  var v: array<f32, 8>;
  for (var j = 0u; j < 8u; j++) {
    v[j] = (f32((word >> (4u * j)) & 15u) - 7.0) * s;
  }
  return v;
}
