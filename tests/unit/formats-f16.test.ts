import { describe, expect, it } from 'vitest';
import { bf16ArrayToF32, bf16BitsToF32, f16ArrayToF32, f16BitsToF32, f32ArrayToF16, f32ToBf16Bits, f32ToF16Bits, roundToF16 } from '../../src/formats/f16.ts';

describe('float16', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [2 ** -14, 0x0400],
    [2 ** -24, 0x0001],
    [1023 * 2 ** -24, 0x03ff],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [65520, 0x7c00], // halfway between 65504 and 2^16: ties to even -> overflow to Infinity
    [65519, 0x7bff],
    [1e6, 0x7c00],
    [2 ** -25, 0x0000], // halfway between 0 and the smallest subnormal: ties to even (0)
    [1.5 * 2 ** -25, 0x0001],
    [1e-9, 0x0000],
    [1 + 2 ** -11, 0x3c00], // tie -> even mantissa
    [1 + 3 * 2 ** -11, 0x3c02], // tie -> even mantissa (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the largest subnormal into the smallest normal
  ];
  it.each(cases)('f32ToF16Bits(%s) = %s', (x, bits) => {
    expect(f32ToF16Bits(x)).toBe(bits);
  });
  it('NaN stays NaN', () => {
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
  });
  it('decodes known patterns', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x8001)).toBe(-(2 ** -24));
    expect(f16BitsToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
  });
  it('round-trips every finite half exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = f16ArrayToF32(all);
    const back = f32ArrayToF16(f);
    const bad: number[] = [];
    for (let i = 0; i < 65536; i++) {
      if (((i >> 10) & 0x1f) === 0x1f && (i & 0x3ff) !== 0) continue; // NaN payloads
      if (back[i] !== i) bad.push(i);
    }
    expect(bad).toEqual([]);
  });
  it('roundToF16', () => {
    expect(roundToF16(0.1)).toBe(f16BitsToF32(0x2e66));
    expect(roundToF16(1 + 2 ** -12)).toBe(1);
  });
});

describe('bfloat16', () => {
  it('decodes exactly', () => {
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0x4049)).toBe(3.140625);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
    expect(bf16BitsToF32(0x7f80)).toBe(Infinity);
    expect(Array.from(bf16ArrayToF32(Uint16Array.from([0x3f80, 0xbf80, 0x0000])))).toEqual([1, -1, 0]);
  });
  it('encodes with round-to-nearest-even (TVM rule)', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even (up)
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -16)).toBe(0x3f81);
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f7f); // beyond the bf16 limit: truncate, no Infinity
  });
});
