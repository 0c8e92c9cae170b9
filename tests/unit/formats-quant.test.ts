import { describe, expect, it } from 'vitest';
import { assertQ4Quantizable, dequantizeQ4, q4PackedCols, q4ScaleCols, quantizeQ4 } from '../../src/formats/quant.ts';
import { Rng } from '../../src/formats/random.ts';
import { roundToF16 } from '../../src/formats/f16.ts';

describe('MLC q4 group quantization', () => {
  it('packs a hand-computed row (scale 1, float32)', () => {
    // group 0: max|w| = 7 -> scale 1; q = round(w/1 + 7), halves away from zero; element j in bits 4j..4j+3
    const w = new Float32Array(32);
    w.set([7, -7, 0, 1, 2, 3, -1, -2]); // q: 14, 0, 7, 8, 9, 10, 6, 5
    w.set([0.5, -0.5, 1.5, 2.5, -3.5, 4.4, 6.6, -6.6], 8); // q: 8 (7.5), 7 (6.5), 9 (8.5), 10 (9.5), 4 (3.5), 11, 14, 0
    const { qWeight, qScale } = quantizeQ4(w, 1, 32, 'float32');
    expect(Array.from(qScale)).toEqual([1]);
    expect(Array.from(qWeight)).toEqual([0x56a9870e, 0x0eb4a978, 0x77777777, 0x77777777]);
  });

  it('packs a second row with scale 0.5 and an all-zero group (float16)', () => {
    const w = new Float32Array(2 * 64);
    // row 1, group 0: max 3.5 -> scale 0.5; w/scale: 7, -7, 0.5, -0.5, 2, -1, 0, 3  -> q: 14, 0, 8, 7, 9, 6, 7, 10
    w.set([3.5, -3.5, 0.25, -0.25, 1, -0.5, 0, 1.5], 64);
    const { qWeight, qScale } = quantizeQ4(w, 2, 64, 'float16');
    expect(qWeight.length).toBe(2 * 8);
    expect(qScale.length).toBe(2 * 2);
    expect(Array.from(qScale)).toEqual([0, 0, 0.5, 0]);
    expect(qWeight[8]).toBe(0xa769780e); // nibbles j0..j7 = e,0,8,7,9,6,7,a
    expect(Array.from(qWeight.subarray(0, 8))).toEqual(new Array(8).fill(0x77777777));
    expect(Array.from(qWeight.subarray(9, 16))).toEqual(new Array(7).fill(0x77777777));
  });

  it('shapes follow MLC: words = 4·ceil(cols/32), scales = ceil(cols/32)', () => {
    expect(q4PackedCols(4096)).toBe(512);
    expect(q4ScaleCols(4096)).toBe(128);
    expect(q4PackedCols(11008)).toBe(1376);
    expect(q4PackedCols(40)).toBe(8);
  });

  it('dequantizes (q - 7)·scale and round-trips within half a step', () => {
    const rng = new Rng(7);
    const rows = 5;
    const cols = 96;
    const w = rng.normalArray(rows * cols, 0.05);
    for (const dt of ['float16', 'float32'] as const) {
      const { qWeight, qScale } = quantizeQ4(w, rows, cols, dt);
      const d = dequantizeQ4(qWeight, qScale, rows, cols);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const s = qScale[r * 3 + Math.floor(c / 32)];
          expect(Math.abs(d[r * cols + c] - w[r * cols + c])).toBeLessThanOrEqual(s * 0.5 + 1e-3 * s + 1e-6);
        }
      }
      if (dt === 'float16') for (const s of qScale) expect(roundToF16(s)).toBe(s);
    }
  });

  it('dequantizes a hand-packed word', () => {
    const d = dequantizeQ4(Uint32Array.from([0x56a9870e, 0x0eb4a978, 0x77777777, 0x77777777]), [2], 1, 32);
    expect(Array.from(d.subarray(0, 8))).toEqual([14, -14, 0, 2, 4, 6, -2, -4]);
    expect(Array.from(d.subarray(8, 16))).toEqual([2, 0, 4, 6, -6, 8, 14, -14]);
  });

  it('names the tensor when the input width is not a multiple of 32', () => {
    expect(() => assertQ4Quantizable('model.layers.0.mlp.down_proj', 37, 'intermediate_size', 'q4f16_1')).toThrow(
      /q4f16_1: model\.layers\.0\.mlp\.down_proj has intermediate_size 37, which is not a multiple of the group size 32/,
    );
  });
});
