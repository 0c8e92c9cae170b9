/**
 * MLC-LLM group quantization (q4f16_1 / q4f32_1), pack and unpack.
 *
 * Verified against mlc-ai/mlc-llm python/mlc_llm/quantization/group_quantization.py
 * (`GroupQuantize._quantize`, `_dequantize`), quantization/utils.py (`pack_weight`,
 * `convert_uint_to_float`) and quantization/quantization.py (the q4f16_1 / q4f32_1 entries):
 *  - int4, storage uint32, group_size 32, linear_weight_layout "NK": groups run along the last
 *    (input) axis; q_weight [out, 4·ceil(in/32)] uint32, q_scale [out, ceil(in/32)] in model dtype.
 *  - max_int = 2^(4-1) - 1 = 7; scale = max|w| over the group / 7 — no epsilon, no clamp.
 *  - q = min(max(round(w / scale + 7), 0), 14); TVM lowers `tir.round` to llvm.round / CUDA round,
 *    i.e. halves round AWAY from zero (not to even).
 *  - packing: element r (0..7) of a u32 word sits in bits 4r..4r+3 (`weight << (r * bits)`, summed);
 *    elements past the input width are packed as 0.
 *  - dequant: w = (q - 7) · scale, q = (word >> 4·(i % 8)) & 0xF.
 *  - The whole computation runs in the model dtype: for q4f16_1 the weight is first cast to float16
 *    (llama_loader.py: `x.astype(dtype)`) and each step (max, divide, add 7) is a float16 result;
 *    we emulate that by rounding to float16 after each step, so our q and scales match MLC's.
 * An all-zero group has scale 0 (MLC would compute 0/0); we store q = 7 there, which dequantizes to 0
 * exactly as any q would.
 */
import { roundToF16 } from './f16.ts';
import { Q4_GROUP_SIZE, Q4_MAX_INT, Q4_PER_U32 } from './llamaConfig.ts';

export interface Q4Tensor {
  /** [rows, q4PackedCols(cols)] uint32 */
  qWeight: Uint32Array;
  /** [rows, q4ScaleCols(cols)] — float16-representable values when computed in float16 */
  qScale: Float32Array;
}

/** u32 words per row: 4 per group of 32 (MLC: num_storage_per_group · num_group); = cols/8 when cols % 32 == 0. */
export function q4PackedCols(cols: number): number {
  return Math.ceil(cols / Q4_GROUP_SIZE) * (Q4_GROUP_SIZE / Q4_PER_U32);
}

/** Scales per row: ceil(cols / 32). */
export function q4ScaleCols(cols: number): number {
  return Math.ceil(cols / Q4_GROUP_SIZE);
}

/** Throw a clear error when a q4 mode cannot quantize a [rows, cols] weight. */
export function assertQ4Quantizable(name: string, cols: number, what = 'input dimension', mode = 'q4'): void {
  if (cols % Q4_GROUP_SIZE !== 0) {
    throw new Error(
      `${mode}: ${name} has ${what} ${cols}, which is not a multiple of the group size ${Q4_GROUP_SIZE}; ` +
        `use q0f16 or q0f32 for this model`,
    );
  }
}

/** Round half away from zero (llvm.round), as TVM's tir.round. */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * Quantize a row-major [rows, cols] weight. `computeDtype` is the model dtype MLC computes in:
 * 'float16' for q4f16_1 (default), 'float32' for q4f32_1.
 */
export function quantizeQ4(
  weight: Float32Array,
  rows: number,
  cols: number,
  computeDtype: 'float16' | 'float32' = 'float16',
): Q4Tensor {
  if (weight.length !== rows * cols) {
    throw new Error(`quantizeQ4: weight has ${weight.length} values, expected ${rows}×${cols}`);
  }
  const r: (x: number) => number = computeDtype === 'float16' ? roundToF16 : Math.fround;
  const nGroups = q4ScaleCols(cols);
  const nWords = q4PackedCols(cols);
  const qWeight = new Uint32Array(rows * nWords);
  const qScale = new Float32Array(rows * nGroups);
  const maxInt = Q4_MAX_INT;
  for (let row = 0; row < rows; row++) {
    const base = row * cols;
    for (let g = 0; g < nGroups; g++) {
      const start = g * Q4_GROUP_SIZE;
      const end = Math.min(start + Q4_GROUP_SIZE, cols);
      let maxAbs = 0;
      for (let c = start; c < end; c++) {
        const a = Math.abs(r(weight[base + c]));
        if (a > maxAbs) maxAbs = a;
      }
      const scale = r(maxAbs / maxInt);
      qScale[row * nGroups + g] = scale;
      for (let c = start; c < end; c++) {
        let q: number;
        if (scale === 0) q = maxInt;
        else {
          q = roundHalfAway(r(r(r(weight[base + c]) / scale) + maxInt));
          if (q < 0) q = 0;
          else if (q > 2 * maxInt) q = 2 * maxInt;
        }
        const j = c % Q4_PER_U32;
        const w = row * nWords + Math.floor(c / Q4_PER_U32);
        qWeight[w] = (qWeight[w] | (q << (4 * j))) >>> 0;
      }
    }
  }
  return { qWeight, qScale };
}

/** Unpack one 4-bit value: element j (0..7) of a word. */
export function q4Nibble(word: number, j: number): number {
  return (word >>> (4 * j)) & 0xf;
}

/** Dequantize to a row-major [rows, cols] float32 weight: w = (q - 7) · scale. */
export function dequantizeQ4(qWeight: Uint32Array, qScale: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const nGroups = q4ScaleCols(cols);
  const nWords = q4PackedCols(cols);
  if (qWeight.length !== rows * nWords) {
    throw new Error(`dequantizeQ4: q_weight has ${qWeight.length} words, expected ${rows}×${nWords}`);
  }
  if (qScale.length !== rows * nGroups) {
    throw new Error(`dequantizeQ4: q_scale has ${qScale.length} values, expected ${rows}×${nGroups}`);
  }
  const out = new Float32Array(rows * cols);
  for (let row = 0; row < rows; row++) {
    for (let c = 0; c < cols; c++) {
      const word = qWeight[row * nWords + Math.floor(c / Q4_PER_U32)];
      const q = q4Nibble(word, c % Q4_PER_U32);
      out[row * cols + c] = (q - Q4_MAX_INT) * qScale[row * nGroups + Math.floor(c / Q4_GROUP_SIZE)];
    }
  }
  return out;
}
