// The int4 values of one MLC q4 word (8 per u32, element j in bits 4j..4j+3), as q - 7 in f32,
// without an integer-to-float conversion per value. A nibble q OR-ed into the mantissa of 2^23
// (bits 0x4B000000) is exactly the float 2^23 + q, so subtracting 2^23 + 7 leaves q - 7, exactly:
// the same values as f32(q) - 7.0, bit for bit. Why: GPUs convert integers at a fraction of their
// float rate (NVIDIA: 16 conversions per SM per clock against 128 FMAs), and decode converts 8
// values for every 4 bytes it loads, which would cap the matvecs below memory bandwidth; this is a
// shift, a mask-or and an add per value.
const Q4_BITS: u32 = 0x4B000000u; // 2^23 as f32 bits: one unit in the last place is 1.0
const Q4_ZERO: f32 = 8388615.0; // 2^23 + 7: MLC's zero point on top of the 2^23

// Elements 0..3 and 4..7 of `word`.
fn q4Lo(word: u32) -> vec4<f32> {
  let q = (vec4<u32>(word) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u);
  return bitcast<vec4<f32>>(q | vec4<u32>(Q4_BITS)) - Q4_ZERO;
}
fn q4Hi(word: u32) -> vec4<f32> {
  let q = (vec4<u32>(word) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u);
  return bitcast<vec4<f32>>(q | vec4<u32>(Q4_BITS)) - Q4_ZERO;
}

// Dot product of one word's 8 values with 8 activations (a: elements 0..3, b: 4..7).
fn dot8(word: u32, a: vec4<f32>, b: vec4<f32>) -> f32 {
  return dot(q4Lo(word), a) + dot(q4Hi(word), b);
}
