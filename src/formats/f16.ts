/**
 * IEEE half (float16) and bfloat16 conversions, scalar and bulk.
 *
 * float32 -> float16 rounds to nearest, ties to even, produces subnormals, overflows to ±Infinity
 * and keeps NaN a (quiet) NaN. float32 -> bfloat16 follows TVM's `tvmjs._convert_f32_to_bf16`
 * (python/tvm/contrib/tvmjs.py): round to nearest even inside the finite bf16 range, truncate beyond
 * it (so huge values clip instead of becoming Infinity). bfloat16 -> float32 is exact (bits << 16).
 * Inputs are float32 values: a JS number is first rounded to float32 (Math.fround).
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The bit pattern of a number rounded to float32. */
export function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0];
}

/** The float32 value of a 32-bit pattern. */
export function f32FromBits(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0];
}

/** float32 bits -> float16 bits, round to nearest even. */
function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> infinity
  if (e <= 0) {
    // subnormal half (or zero): value = mant24 * 2^(e - 14 - 10) in units of 2^-24
    if (e < -10) return sign; // below half of the smallest subnormal (ties to 0 handled below for e = -10)
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half; // a carry into bit 10 correctly yields the smallest normal
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++; // a carry may reach Infinity: correct
  return sign | half;
}

/** A number -> float16 bits (via float32). */
export function f32ToF16Bits(x: number): number {
  return f32BitsToF16Bits(f32Bits(x));
}

let f16Table: Float32Array | null = null;

/** All 65536 float16 values, built once (256 KiB). */
function f16Lookup(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 0x1f) t[h] = m !== 0 ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  f16Table = t;
  return t;
}

/** float16 bits -> value. */
export function f16BitsToF32(h: number): number {
  return f16Lookup()[h & 0xffff];
}

/** Round a number to the nearest float16 value (returned as a number). Emulates f16 arithmetic. */
export function roundToF16(x: number): number {
  return f16Lookup()[f32ToF16Bits(x)];
}

/** bfloat16 bits -> value (exact). */
export function bf16BitsToF32(b: number): number {
  return f32FromBits((b & 0xffff) << 16);
}

const BF16_LIMIT_BITS = (0x7f7fffff >>> 16) << 16; // largest finite f32 truncated to bf16

/** A number -> bfloat16 bits, TVM's rule: round to nearest even within range, truncate beyond. */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  const abs = bits & 0x7fffffff;
  const inRange = abs < BF16_LIMIT_BITS; // |x| < bf16_limit (NaN bits are above the limit)
  const bias = inRange ? ((bits >>> 16) & 1) + 0x7fff : 0;
  return ((bits + bias) >>> 16) & 0xffff;
}

/** Bulk float32 -> float16 bits. */
export function f32ArrayToF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  const f = src instanceof Float32Array ? src : Float32Array.from(src);
  const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
  for (let i = 0; i < f.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** Bulk float16 bits -> float32. */
export function f16ArrayToF32(src: Uint16Array): Float32Array {
  const t = f16Lookup();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** Bulk bfloat16 bits -> float32 (exact). */
export function bf16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** Bulk float32 -> bfloat16 bits (TVM's rounding). */
export function f32ArrayToBf16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]);
  return out;
}

/** Round every element to float16 precision in place (keeps float32 storage). */
export function roundArrayToF16InPlace(a: Float32Array): Float32Array {
  const t = f16Lookup();
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < a.length; i++) a[i] = t[f32BitsToF16Bits(bits[i])];
  return a;
}
