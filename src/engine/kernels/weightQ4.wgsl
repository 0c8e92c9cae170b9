// Weight access, MLC q4 group quantization (q4f16_1 / q4f32_1): int4 values, 8 per u32 with
// element j in bits 4j..4j+3, groups of 32 along the input dimension, w = (q - 7) * scale.
// q_weight [OUT, 4·G] u32, q_scale [OUT, G] with G = ceil(IN/32) groups per row: MLC pads the last
// group when IN is not a multiple of 32 (its padding nibbles are 0; callers mask columns >= IN).
#include q4Values
@group(1) @binding(0) var<storage, read> wData: array<u32>;
@group(1) @binding(1) var<storage, read> wScale: array<SCALE_STORAGE>;
const W_CHUNK: u32 = 8u;
fn scaleAt(i: u32) -> f32 {
  SCALE_READ
}
// Values row[col0 .. col0+8) for col0 a multiple of 8; values past IN are padding (not zero).
fn wChunk(row: u32, col0: u32) -> array<f32, 8> {
  let groups = (IN + 31u) / 32u;
  let word = wData[row * groups * 4u + col0 / 8u];
  let s = scaleAt(row * groups + col0 / 32u);
  let lo = q4Lo(word) * s;
  let hi = q4Hi(word) * s;
  return array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
}
