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
import { roundArrayToF16InPlace, roundToF16 } from './f16.ts';
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
    throw new Error(`${mode}: ${name} has ${what} ${cols}, which is not a multiple of the group size ${Q4_GROUP_SIZE}; ` + `use q0f16 or q0f32 for this model`);
  }
}

/**
 * Quantize a row-major [rows, cols] weight. `computeDtype` is the model dtype MLC computes in:
 * 'float16' for q4f16_1 (default), 'float32' for q4f32_1.
 */
export function quantizeQ4(weight: Float32Array, rows: number, cols: number, computeDtype: 'float16' | 'float32' = 'float16'): Q4Tensor {
  if (weight.length !== rows * cols) {
    throw new Error(`quantizeQ4: weight has ${weight.length} values, expected ${rows}×${cols}`);
  }
  const f16 = computeDtype === 'float16';
  const nGroups = q4ScaleCols(cols);
  const nWords = q4PackedCols(cols);
  const qWeight = new Uint32Array(rows * nWords);
  const qScale = new Float32Array(rows * nGroups);
  const maxInt = Q4_MAX_INT;
  const rowBuf = new Float32Array(cols); // the row in the compute dtype (Float32Array stores round to f32)
  const x = new Float32Array(Q4_GROUP_SIZE); // w/scale + 7 for one group, each step rounded like MLC
  for (let row = 0; row < rows; row++) {
    rowBuf.set(weight.subarray(row * cols, (row + 1) * cols));
    if (f16) roundArrayToF16InPlace(rowBuf);
    for (let g = 0; g < nGroups; g++) {
      const start = g * Q4_GROUP_SIZE;
      const n = Math.min(Q4_GROUP_SIZE, cols - start);
      let maxAbs = 0;
      for (let i = 0; i < n; i++) {
        const a = Math.abs(rowBuf[start + i]);
        if (a > maxAbs) maxAbs = a;
      }
      const scale = f16 ? roundToF16(maxAbs / maxInt) : Math.fround(maxAbs / maxInt);
      qScale[row * nGroups + g] = scale;
      const w0 = row * nWords + g * (Q4_GROUP_SIZE / Q4_PER_U32);
      if (scale === 0) {
        // all-zero group: q = 7 for its elements (0 for padding), dequantizes to 0 whatever q is
        for (let i = 0; i < n; i++) qWeight[w0 + (i >> 3)] |= maxInt << (4 * (i & 7));
        continue;
      }
      for (let i = 0; i < n; i++) x[i] = rowBuf[start + i] / scale;
      if (f16) roundArrayToF16InPlace(x);
      for (let i = 0; i < n; i++) x[i] += maxInt;
      if (f16) roundArrayToF16InPlace(x);
      for (let i = 0; i < n; i++) {
        const v = x[i];
        // round half away from zero (v >= 0 here except for float error at -7·scale)
        let q = v < 0 ? -Math.round(-v) : Math.round(v);
        if (q < 0) q = 0;
        else if (q > 2 * maxInt) q = 2 * maxInt;
        qWeight[w0 + (i >> 3)] |= q << (4 * (i & 7));
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
