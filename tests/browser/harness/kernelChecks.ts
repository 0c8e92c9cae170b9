/**
 * Each kernel against the oracle on random inputs with odd sizes. The oracle is the reference
 * pass's own pieces (src/engine/reference.ts: rmsNorm, applyRope, dequantizeQ4, softmax) or a
 * plain loop written here; never the kernel's own output.
 */
import { runKernel } from './kernelHarness.ts';
import { activate, applyRope, dequantizeQ4, rmsNorm, ropeInvFreq, softmax } from '../../../src/engine/reference.ts';
import { f16ArrayToF32, f16BitsToF32, f32ArrayToF16, f32ToF16Bits } from '../../../src/formats/f16.ts';
import { seededRng } from '../../../src/formats/random.ts';
import type { WeightFormat, KvFormat } from '../../../src/engine/kernels.ts';

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const rng = seededRng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** max |got - want| / max |want|: relative to the output's scale, robust near zero entries. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
    if (Number.isNaN(got[i])) return Infinity;
  }
  return diff / Math.max(scale, 1e-30);
}

/** (slot, position) of each row: `rows` consecutive positions of one sequence. */
function rowInfo(slot: number, startPos: number, rows: number): Uint32Array {
  return new Uint32Array(Array.from({ length: rows }, (_, t) => [slot, startPos + t]).flat());
}

/** A random weight [rows, cols] in a storage format, with its dense f32 values for the oracle. */
export function randomWeight(format: WeightFormat, rows: number, cols: number, seed: number) {
  const rng = seededRng(seed);
  if (format === 'f32') {
    const w = randn(rows * cols, seed, 0.5);
    return { weights: { wData: w }, dense: w };
  }
  if (format === 'f16') {
    const half = f32ArrayToF16(randn(rows * cols, seed, 0.5));
    return { weights: { wData: half }, dense: f16ArrayToF32(half) };
  }
  const words = new Uint32Array(rows * (cols / 8));
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(rng.uniform() * 2 ** 32) >>> 0;
  let scales: Float32Array = new Float32Array(rows * (cols / 32));
  for (let i = 0; i < scales.length; i++) scales[i] = 0.01 + rng.uniform() * 0.1;
  if (format === 'q4f16') {
    const half = f32ArrayToF16(scales);
    scales = f16ArrayToF32(half);
    return { weights: { wData: words, wScale: half }, dense: dequantizeQ4(words, scales, rows, cols) };
  }
  return { weights: { wData: words, wScale: scales }, dense: dequantizeQ4(words, scales, rows, cols) };
}

/** A LoRA / parallel adapter fused into a matmul: `segments` stacked output segments, each with its own scale and R-wide slice of z. */
export interface FusedAdapter {
  r: number;
  segments: 1 | 2 | 3;
}

/**
 * Random z [rows, segments * r], U [OUT, r] and per-segment scales for a fused adapter, segment
 * boundaries at odd rows, and the oracle's term for output (t, o): scale * U[o] . z[t]'s slice of
 * o's segment, written out here (not the kernel's adapterTerm).
 */
function randomFusedAdapter(a: FusedAdapter, OUT: number, rows: number, seed: number) {
  const zStride = a.segments * a.r;
  const z = randn(rows * zStride, seed, 0.7);
  const U = randn(OUT * a.r, seed + 1, 0.3);
  const scales = new Float32Array([0.75, -1.5, 2.25].slice(0, a.segments));
  const seg1 = a.segments > 1 ? Math.ceil(OUT * 0.4) : OUT;
  const seg2 = a.segments > 2 ? Math.ceil(OUT * 0.7) + 1 : OUT;
  if ((a.segments > 1 && seg1 >= OUT) || (a.segments > 2 && (seg2 <= seg1 || seg2 >= OUT)))
    throw new Error(`${OUT} rows are too few for ${a.segments} segments`);
  const segmentOf = (o: number) => (o < seg1 ? 0 : o < seg2 ? 1 : 2);
  const term = (t: number, o: number) => {
    const g = segmentOf(o);
    let s = 0;
    for (let j = 0; j < a.r; j++) s += U[o * a.r + j] * z[t * zStride + g * a.r + j];
    return scales[g] * s;
  };
  return {
    term,
    constants: { R: a.r, SEG1: seg1, SEG2: seg2, Z_STRIDE: zStride },
    buffers: { adapterZ: z, adapterU: U, adapterScales: scales },
  };
}

export async function checkMatmul(
  format: WeightFormat,
  IN: number,
  OUT: number,
  rows: number,
  opts: { accumulate?: boolean; xRowOffset?: number; tiled?: boolean; act?: number; adapter?: FusedAdapter } = {},
) {
  const w = randomWeight(format, OUT, IN, 11 + IN);
  const x = randn(rows * IN, 7 + OUT);
  const off = opts.xRowOffset ?? 0;
  const outRows = rows - off;
  const y0 = randn(outRows * OUT, 3);
  const ad = opts.adapter ? randomFusedAdapter(opts.adapter, OUT, outRows, 41 + OUT) : null;
  const want = new Float32Array(outRows * OUT);
  for (let t = 0; t < outRows; t++)
    for (let o = 0; o < OUT; o++) {
      let s = 0;
      for (let i = 0; i < IN; i++) s += x[(off + t) * IN + i] * w.dense[o * IN + i];
      if (ad) s += ad.term(t, o);
      want[t * OUT + o] = (opts.accumulate ? y0[t * OUT + o] : 0) + (opts.act ? activate(ACTS[opts.act]!, s) : s);
    }
  const [got] = await runKernel({
    kernel: opts.tiled ? 'matmulTiled' : 'matmul',
    variant: { weight: format, adapterAdd: !!ad },
    constants: { IN, OUT, ACCUMULATE: opts.accumulate ? 1 : 0, ACT: opts.act ?? 0, ...ad?.constants },
    params: [rows, 0, off, rows],
    buffers: { x, y: opts.accumulate ? y0 : outRows * OUT * 4, ...w.weights, ...ad?.buffers },
    workgroups: [Math.ceil(OUT / 64), Math.ceil(outRows / (opts.tiled ? 64 : 8)), 1],
    read: ['y'],
  });
  return relErr(got.subarray(0, want.length), want);
}

/**
 * RMSNorm folded into the next matmul (normMatmul.wgsl, or normQ4MatVec.wgsl for up to 8 rows of
 * q4 weights): y = W rmsnorm(x) for rows xRowOffset.., and with swiglu (W = [gate | up], OUT = 2
 * FFN) h = silu(gate) * up; against the reference's rmsNorm followed by a plain matmul loop.
 */
export async function checkNormMatmul(
  format: WeightFormat,
  IN: number,
  OUT: number,
  rows: number,
  opts: { swiglu?: boolean; xRowOffset?: number; q4MatVec?: boolean; subgroups?: boolean; emulateSubgroupSize?: number } = {},
) {
  const eps = 1e-5;
  const w = randomWeight(format, OUT, IN, 13 + IN);
  const x = randn(rows * IN, 17 + OUT, 3);
  const g = randn(IN, 19);
  const off = opts.xRowOffset ?? 0;
  const outRows = rows - off;
  const nOut = opts.swiglu ? OUT / 2 : OUT;
  const want = new Float32Array(outRows * nOut);
  for (let t = 0; t < outRows; t++) {
    const xn = rmsNorm(x.subarray((off + t) * IN, (off + t + 1) * IN), g, eps);
    const dotRow = (o: number) => {
      let s = 0;
      for (let i = 0; i < IN; i++) s += xn[i] * w.dense[o * IN + i];
      return s;
    };
    for (let o = 0; o < nOut; o++) {
      const a = dotRow(o);
      want[t * nOut + o] = opts.swiglu ? (a / (1 + Math.exp(-a))) * dotRow(nOut + o) : a;
    }
  }
  const wide = Math.min(nOut, 65535);
  const [got] = await runKernel({
    kernel: opts.q4MatVec ? 'normQ4MatVec' : 'normMatmul',
    variant: { weight: format, subgroups: opts.subgroups },
    constants: { IN, OUT, EPS: eps, SWIGLU: opts.swiglu ? 1 : 0 },
    params: [rows, 0, off, rows],
    buffers: { x, y: outRows * nOut * 4, g, ...w.weights },
    workgroups: opts.q4MatVec ? [wide, Math.ceil(nOut / wide), 1] : [Math.ceil(nOut / 64), Math.ceil(outRows / 8), 1],
    read: ['y'],
    emulateSubgroupSize: opts.emulateSubgroupSize,
  });
  return relErr(got.subarray(0, want.length), want);
}

/**
 * RMSNorm folded into the fused qkv matmul with RoPE and the KV write in its epilogue
 * (qkvEpilogue.wgsl on normMatmul.wgsl, or normQ4MatVec.wgsl for up to 8 rows of q4 weights):
 * each row t at rowInfo (slots[t], positions[t]) of a cache of `slots` sequences. Against the
 * reference's rmsNorm, a plain matmul loop and applyRope: q rotated in qkv, rotated k and plain v
 * at each row's (slot, pos), every other cache entry (random noise, compared exactly as stored)
 * untouched. Errors per part: the new cache entries are compared with the oracle's unrounded
 * values, so an f16 cache is off by its rounding (at most 2^-11 relative) and the caller's
 * tolerance says so; rounding the oracle instead would make a 1e-6 difference in the f32 dot flip
 * an f16 rounding now and then.
 */
export async function checkNormMatmulQkv(
  format: WeightFormat,
  kv: KvFormat,
  H: number,
  KV: number,
  hd: number,
  IN: number,
  rowSlots: number[],
  rowPositions: number[],
  opts: { q4MatVec?: boolean; subgroups?: boolean; theta?: number } = {},
) {
  const eps = 1e-5;
  const rows = rowSlots.length;
  const slots = Math.max(...rowSlots) + 1;
  const ctx = Math.max(...rowPositions) + 2;
  const width = (H + 2 * KV) * hd;
  const kvWidth = KV * hd;
  const w = randomWeight(format, width, IN, 23 + IN);
  const x = randn(rows * IN, 29 + width, 3);
  const g = randn(IN, 31);
  const inv = ropeInvFreq(hd, opts.theta ?? 10000);
  const roundKv = (a: Float32Array) => (kv === 'f16' ? f16ArrayToF32(f32ArrayToF16(a)) : a);
  const store = (a: Float32Array) => (kv === 'f32' ? a : f32ArrayToF16(a));
  const noiseK = randn(slots * ctx * kvWidth, 37);
  const noiseV = randn(slots * ctx * kvWidth, 38);
  const wantK = roundKv(noiseK).slice();
  const wantV = roundKv(noiseV).slice();
  const wantQ = new Float32Array(rows * H * hd);
  for (let t = 0; t < rows; t++) {
    const xn = rmsNorm(x.subarray(t * IN, (t + 1) * IN), g, eps);
    const out = new Float32Array(width);
    for (let o = 0; o < width; o++) {
      let s = 0;
      for (let i = 0; i < IN; i++) s += xn[i] * w.dense[o * IN + i];
      out[o] = s;
    }
    const q = out.slice(0, H * hd);
    const k = out.slice(H * hd, (H + KV) * hd);
    applyRope(q, H, hd, rowPositions[t], inv);
    applyRope(k, KV, hd, rowPositions[t], inv);
    wantQ.set(q, t * H * hd);
    const dst = (rowSlots[t] * ctx + rowPositions[t]) * kvWidth;
    wantK.set(k, dst);
    wantV.set(out.slice((H + KV) * hd), dst);
  }
  const quads = width / 4;
  const wide = Math.min(quads, 65535);
  const [gotQkv, gotK, gotV] = await runKernel({
    kernel: opts.q4MatVec ? 'normQ4MatVec' : 'normMatmul',
    variant: { weight: format, subgroups: opts.subgroups, kv },
    constants: { IN, OUT: width, EPS: eps, SWIGLU: 0, HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV, CTX: ctx },
    params: [rows, 0, 0, ctx - 1],
    buffers: {
      x,
      y: rows * width * 4,
      g,
      ...w.weights,
      cosSin: ropeTable(ctx, hd, inv),
      rowInfo: new Uint32Array(rowSlots.flatMap((slot, t) => [slot, rowPositions[t]])),
      kCache: store(noiseK),
      vCache: store(noiseV),
    },
    workgroups: opts.q4MatVec ? [wide, Math.ceil(quads / wide), 1] : [Math.ceil(quads / 64), Math.ceil(rows / 8), 1],
    read: ['y', 'kCache', 'vCache'],
  });
  const gotQ = new Float32Array(rows * H * hd);
  for (let t = 0; t < rows; t++) gotQ.set(gotQkv.subarray(t * width, t * width + H * hd), t * H * hd);
  return { q: relErr(gotQ, wantQ), k: relErr(cacheValues(kv, gotK, wantK.length), wantK), v: relErr(cacheValues(kv, gotV, wantV.length), wantV) };
}

/** activation.wgsl's ACT codes, by the reference's names. */
const ACTS = [null, 'tanh', 'relu', 'silu', 'gelu'] as const;

export async function checkEmbedding(format: WeightFormat, vocab: number, dim: number, tokens: number[]) {
  const w = randomWeight(format, vocab, dim, 5 + dim);
  const want = new Float32Array(tokens.length * dim);
  tokens.forEach((id, t) => want.set(w.dense.subarray(id * dim, (id + 1) * dim), t * dim));
  const chunk = format.startsWith('q4') ? 8 : 4;
  const [got] = await runKernel({
    kernel: 'embedding',
    variant: { weight: format },
    constants: { IN: dim },
    params: [tokens.length, 0, 0, tokens.length],
    buffers: { tokens: new Uint32Array(tokens), x: want.byteLength, ...w.weights },
    workgroups: [Math.ceil(Math.ceil(dim / chunk) / 64), tokens.length, 1],
    read: ['x'],
  });
  return relErr(got.subarray(0, want.length), want);
}

export async function checkRmsnorm(dim: number, rows: number) {
  const x = randn(rows * dim, 1, 3);
  const w = randn(dim, 2);
  const want = new Float32Array(rows * dim);
  for (let t = 0; t < rows; t++) want.set(rmsNorm(x.subarray(t * dim, (t + 1) * dim), w, 1e-5), t * dim);
  const [got] = await runKernel({
    kernel: 'rmsnorm',
    constants: { DIM: dim, EPS: 1e-5 },
    params: [rows, 0, 0, rows],
    buffers: { x, y: want.byteLength, w },
    workgroups: [rows, 1, 1],
    read: ['y'],
  });
  return relErr(got.subarray(0, want.length), want);
}

/** The engine's cos/sin table [ctx, hd/2, 2], built the way buffers.ts builds it (HF's f32 angles). */
function ropeTable(ctx: number, hd: number, inv: Float32Array): Float32Array {
  const table = new Float32Array(ctx * hd);
  for (let pos = 0; pos < ctx; pos++)
    for (let i = 0; i < hd / 2; i++) {
      const angle = Math.fround(pos * inv[i]);
      table[(pos * (hd / 2) + i) * 2] = Math.cos(angle);
      table[(pos * (hd / 2) + i) * 2 + 1] = Math.sin(angle);
    }
  return table;
}

/** The f32 values of a cache read back from the GPU (f16 caches hold packed pairs). */
function cacheValues(kv: KvFormat, got: Float32Array, n: number): Float32Array {
  return kv === 'f32' ? got.subarray(0, n) : f16ArrayToF32(new Uint16Array(got.buffer, 0, n));
}

/**
 * RoPE and the KV-cache append in one kernel, for `rows` rows at positions startPos.. of slot
 * `slot` in a cache of `slots` sequences: q rotated in place in the qkv rows (k and v there left
 * as they were), rotated keys and plain values at their (slot, pos) in the caches, and every
 * other cache entry (other positions, other slots: random noise) untouched.
 */
export async function checkRopeKvWrite(kv: KvFormat, H: number, KV: number, hd: number, rows: number, startPos: number, theta: number, slot = 0, slots = 1) {
  const width = (H + 2 * KV) * hd;
  const kvWidth = KV * hd;
  const ctx = startPos + rows + 3;
  const qkv = randn(rows * width, 9);
  const inv = ropeInvFreq(hd, theta);
  const wantQkv = new Float32Array(qkv);
  for (let t = 0; t < rows; t++) applyRope(wantQkv.subarray(t * width, t * width + H * hd), H, hd, startPos + t, inv);
  // The caches start as noise in their stored precision; the oracle starts from the same values.
  const roundKv = (a: Float32Array) => (kv === 'f16' ? f16ArrayToF32(f32ArrayToF16(a)) : a);
  const store = (a: Float32Array) => (kv === 'f32' ? a : f32ArrayToF16(a));
  const noiseK = randn(slots * ctx * kvWidth, 31);
  const noiseV = randn(slots * ctx * kvWidth, 32);
  const wantK = roundKv(noiseK).slice();
  const wantV = roundKv(noiseV).slice();
  for (let t = 0; t < rows; t++) {
    const k = qkv.slice(t * width + H * hd, t * width + (H + KV) * hd);
    applyRope(k, KV, hd, startPos + t, inv);
    const dst = (slot * ctx + startPos + t) * kvWidth;
    wantK.set(roundKv(k), dst);
    wantV.set(roundKv(qkv.slice(t * width + (H + KV) * hd, (t + 1) * width)), dst);
  }
  const [gotQkv, gotK, gotV] = await runKernel({
    kernel: 'ropeKvWrite',
    variant: { kv },
    constants: { HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV, CTX: ctx },
    params: [rows, 0, 0, startPos + rows],
    buffers: { qkv, cosSin: ropeTable(ctx, hd, inv), rowInfo: rowInfo(slot, startPos, rows), kCache: store(noiseK), vCache: store(noiseV) },
    workgroups: [Math.ceil(((H + KV) * hd) / 2 / 64), rows, 1],
    read: ['qkv', 'kCache', 'vCache'],
  });
  return Math.max(
    relErr(gotQkv.subarray(0, wantQkv.length), wantQkv),
    relErr(cacheValues(kv, gotK, wantK.length), wantK),
    relErr(cacheValues(kv, gotV, wantV.length), wantV),
  );
}

/**
 * How the f16 KV cache rounds: keys and values through ropeKvWrite at position 0 (where RoPE is
 * exact: cos 1, sin 0) into an f16 cache, bit for bit against round to nearest, ties to even
 * (formats/f16.ts, what the reference's kvCache 'f16' applies). WGSL leaves pack2x16float's
 * rounding to the implementation, so this is a property of the device, checked: exact ties
 * (1 + 2^-11 stays 1, 1 + 3·2^-11 goes up), values just either side of a tie, and random normal
 * values, of which `towardZeroDiffers` count where rounding toward zero would give other bits.
 */
export async function checkKvF16Rounding() {
  const hd = 64;
  const rows = 32; // each row its own slot at position 0 (ctx 1)
  const u = 2 ** -11; // half an f16 ulp at 1
  const crafted = [1 + u, 1 + 3 * u, 1 + u + 2 ** -20, 1 + u - 2 ** -20, 3 + 2 * u, 1000.25, 0.1, 1 / 3, 2 ** -14, 65504];
  const values = randn(2 * rows * hd, 77, 3);
  crafted.forEach((x, i) => {
    values[2 * i] = x;
    values[2 * i + 1] = -x;
  });
  // Row t of qkv: q (ignored), k = values[t, 0..hd), v = values[t, hd..2hd).
  const width = 3 * hd;
  const qkv = new Float32Array(rows * width);
  for (let t = 0; t < rows; t++) qkv.set(values.subarray(2 * t * hd, 2 * (t + 1) * hd), t * width + hd);
  const info = new Uint32Array(Array.from({ length: rows }, (_, t) => [t, 0]).flat());
  const [gotK, gotV] = await runKernel({
    kernel: 'ropeKvWrite',
    variant: { kv: 'f16' },
    constants: { HEAD_DIM: hd, N_HEADS: 1, N_KV_HEADS: 1, CTX: 1 },
    params: [rows, 0, 0, 1],
    buffers: { qkv, cosSin: ropeTable(1, hd, ropeInvFreq(hd, 10000)), rowInfo: info, kCache: rows * hd * 2, vCache: rows * hd * 2 },
    workgroups: [1, rows, 1],
    read: ['kCache', 'vCache'],
  });
  const k = new Uint16Array(gotK.buffer, 0, rows * hd);
  const v = new Uint16Array(gotV.buffer, 0, rows * hd);
  const mismatches: string[] = [];
  let towardZeroDiffers = 0;
  for (let t = 0; t < rows; t++) {
    for (let d = 0; d < 2 * hd; d++) {
      const x = values[2 * t * hd + d];
      const got = d < hd ? k[t * hd + d] : v[t * hd + d - hd];
      const want = f32ToF16Bits(x);
      if (got !== want) mismatches.push(`${x}: got 0x${got.toString(16)}, nearest-even 0x${want.toString(16)}`);
      // Toward zero: one f16 step smaller in magnitude when nearest-even rounded the magnitude up.
      if (Math.abs(f16BitsToF32(want)) > Math.abs(Math.fround(x))) towardZeroDiffers++;
    }
  }
  return { values: values.length, mismatches: mismatches.slice(0, 10), mismatchCount: mismatches.length, towardZeroDiffers };
}

export async function checkSwiglu(ffn: number, rows: number) {
  const gu = randn(rows * 2 * ffn, 4, 2);
  const want = new Float32Array(rows * ffn);
  for (let t = 0; t < rows; t++)
    for (let i = 0; i < ffn; i++) {
      const g = gu[t * 2 * ffn + i];
      want[t * ffn + i] = (g / (1 + Math.exp(-g))) * gu[t * 2 * ffn + ffn + i];
    }
  const [got] = await runKernel({
    kernel: 'swiglu',
    constants: { FFN: ffn },
    params: [rows, 0, 0, rows],
    buffers: { gu, h: want.byteLength },
    workgroups: [Math.ceil(ffn / 64), rows, 1],
    read: ['h'],
  });
  return relErr(got.subarray(0, want.length), want);
}

/**
 * Attention over a KV cache holding `startPos` earlier positions plus this call's `rows`, in slot
 * `slot` of a cache with `slots` sequences (the others hold unrelated keys that must not leak in):
 * RoPE with the cache write, then scores, softmax and output, against plain causal grouped-query
 * attention on q and k rotated by the reference's applyRope.
 */
export async function checkAttention(
  kv: KvFormat,
  H: number,
  KV: number,
  hd: number,
  startPos: number,
  rows: number,
  ctx: number,
  slot = 0,
  slots = 1,
  /** Scores, softmax and output in one dispatch (attention.wgsl) instead of three. */
  fused = false,
) {
  const width = (H + 2 * KV) * hd;
  const kvWidth = KV * hd;
  const qkv = randn(rows * width, 21);
  const inv = ropeInvFreq(hd, 10000);
  // q and k heads as the oracle rotates them (v is not rotated).
  const rotated = new Float32Array(qkv);
  for (let t = 0; t < rows; t++) applyRope(rotated.subarray(t * width, t * width + (H + KV) * hd), H + KV, hd, startPos + t, inv);
  const roundKv = (a: Float32Array) => (kv === 'f16' ? f16ArrayToF32(f32ArrayToF16(a)) : a);
  const pastK = roundKv(randn(startPos * kvWidth, 22));
  const pastV = roundKv(randn(startPos * kvWidth, 23));
  // The whole key/value sequence as the oracle sees it (stored precision).
  const keys = new Float32Array(ctx * kvWidth);
  const values = new Float32Array(ctx * kvWidth);
  keys.set(pastK);
  values.set(pastV);
  for (let t = 0; t < rows; t++) {
    keys.set(roundKv(rotated.slice(t * width + H * hd, t * width + H * hd + kvWidth)), (startPos + t) * kvWidth);
    values.set(roundKv(qkv.slice(t * width + (H + KV) * hd, t * width + (H + 2 * KV) * hd)), (startPos + t) * kvWidth);
  }
  const want = new Float32Array(rows * H * hd);
  for (let t = 0; t < rows; t++)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / KV));
      const n = startPos + t + 1;
      const s = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += rotated[t * width + h * hd + d] * keys[j * kvWidth + kvh * hd + d];
        s[j] = dot / Math.sqrt(hd);
      }
      softmax(s, n);
      for (let d = 0; d < hd; d++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += s[j] * values[j * kvWidth + kvh * hd + d];
        want[t * H * hd + h * hd + d] = acc;
      }
    }
  // The cache as the engine stores it: f32, or f16 pairs.
  const cacheInit = (past: Float32Array) => {
    // Other slots are filled with large noise: any read across slots would show.
    const all = randn(slots * ctx * kvWidth, 99, 10);
    all.set(past, slot * ctx * kvWidth);
    all.fill(0, slot * ctx * kvWidth + past.length, (slot + 1) * ctx * kvWidth);
    return kv === 'f32' ? all : f32ArrayToF16(all);
  };
  const kCache = cacheInit(pastK);
  const vCache = cacheInit(pastV);
  const heads = { HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV, CTX: ctx };
  const params: [number, number, number, number] = [rows, 0, 0, startPos + rows];
  const info = rowInfo(slot, startPos, rows);
  const [qkv2, k2, v2] = await runKernel({
    kernel: 'ropeKvWrite',
    variant: { kv },
    constants: heads,
    params,
    buffers: { qkv, cosSin: ropeTable(ctx, hd, inv), rowInfo: info, kCache, vCache },
    workgroups: [Math.ceil(((H + KV) * hd) / 2 / 64), rows, 1],
    read: ['qkv', 'kCache', 'vCache'],
  });
  if (fused) {
    const [out] = await runKernel({
      kernel: 'attention',
      variant: { kv },
      constants: heads,
      params,
      buffers: {
        qkv: qkv2,
        scores: rows * H * ctx * 4,
        kCache: new Uint32Array(k2.buffer),
        vCache: new Uint32Array(v2.buffer),
        rowInfo: info,
        o: want.byteLength,
      },
      workgroups: [rows * H, 1, 1],
      read: ['o'],
    });
    return relErr(out.subarray(0, want.length), want);
  }
  const [scores] = await runKernel({
    kernel: 'attnScores',
    variant: { kv },
    constants: heads,
    params,
    buffers: { qkv: qkv2, scores: rows * H * ctx * 4, kCache: new Uint32Array(k2.buffer), rowInfo: info },
    workgroups: [Math.ceil((startPos + rows) / 64), rows * H, 1],
    read: ['scores'],
  });
  const [probs] = await runKernel({
    kernel: 'attnSoftmax',
    constants: { N_HEADS: H, CTX: ctx },
    params,
    buffers: { scores, rowInfo: info },
    workgroups: [rows * H, 1, 1],
    read: ['scores'],
  });
  const [out] = await runKernel({
    kernel: 'attnOutput',
    variant: { kv },
    constants: heads,
    params,
    buffers: { scores: probs, o: want.byteLength, vCache: new Uint32Array(v2.buffer), rowInfo: info },
    workgroups: [Math.ceil((H * hd) / 64), rows, 1],
    read: ['o'],
  });
  return relErr(out.subarray(0, want.length), want);
}

/**
 * The q4 decode kernel (up to 8 rows) with shared-memory or subgroup reductions, residual add,
 * a row offset (LM head), split inputs (series adapters on the fused gate/up) and a fused
 * LoRA / parallel adapter.
 */
export async function checkQ4MatVec(
  format: 'q4f16' | 'q4f32',
  IN: number,
  OUT: number,
  rows: number,
  opts: { subgroups: boolean; accumulate?: boolean; xRowOffset?: number; splitRow?: number; adapter?: FusedAdapter; emulateSubgroupSize?: number },
) {
  const w = randomWeight(format, OUT, IN, 31 + OUT);
  const off = opts.xRowOffset ?? 0;
  const blocks = opts.splitRow !== undefined ? 2 : 1;
  const x = randn(blocks * rows * IN, 17 + IN);
  const outRows = rows - off;
  const y0 = randn(outRows * OUT, 5);
  const ad = opts.adapter ? randomFusedAdapter(opts.adapter, OUT, outRows, 43 + OUT) : null;
  const want = new Float32Array(outRows * OUT);
  for (let t = 0; t < outRows; t++)
    for (let o = 0; o < OUT; o++) {
      const block = opts.splitRow !== undefined && o >= opts.splitRow ? rows * IN : 0;
      let s = 0;
      for (let i = 0; i < IN; i++) s += x[block + (off + t) * IN + i] * w.dense[o * IN + i];
      if (ad) s += ad.term(t, o);
      want[t * OUT + o] = (opts.accumulate ? y0[t * OUT + o] : 0) + s;
    }
  const constants: Record<string, number> = { IN, OUT, ACCUMULATE: opts.accumulate ? 1 : 0, ...ad?.constants };
  if (opts.splitRow !== undefined) constants.SPLIT_ROW = opts.splitRow;
  const [got] = await runKernel({
    kernel: 'q4MatVec',
    variant: { weight: format, subgroups: opts.subgroups, adapterAdd: !!ad },
    constants,
    params: [rows, 0, off, rows],
    buffers: { x, y: opts.accumulate ? y0 : outRows * OUT * 4, ...w.weights, ...ad?.buffers },
    workgroups: [OUT, 1, 1],
    read: ['y'],
    emulateSubgroupSize: opts.emulateSubgroupSize,
  });
  return relErr(got.subarray(0, want.length), want);
}

/**
 * Greedy argmax on the GPU (argmax.wgsl) against sampling.ts argmax, row by row. Rows are random
 * with planted cases: the maximum at several indices (same thread and different threads), NaN,
 * +-Infinity, rows with nothing eligible, signed zeros and subnormals. Returns both id lists.
 */
export async function checkArgmax(vocab: number, rows: number, seed: number, opts: { xRowOffset?: number } = {}) {
  const { argmax } = await import('../../../src/engine/sampling.ts');
  const off = opts.xRowOffset ?? 0;
  const logitRows = rows - off;
  const rng = seededRng(seed);
  const x = randn(logitRows * vocab, seed, 3);
  const at = (t: number, i: number, v: number) => {
    if (i < vocab) x[t * vocab + i] = v;
  };
  const fill = (t: number, v: number) => x.fill(v, t * vocab, (t + 1) * vocab);
  const pick = () => Math.floor(rng.uniform() * vocab);
  for (let t = 0; t < logitRows; t++) {
    switch (t % 9) {
      case 1: // ties: the same maximum at random indices, one thread apart, and one stride (256) apart
        for (const i of [pick(), pick(), 300, 301, 44, 44 + 256, pick()]) at(t, i, 50);
        break;
      case 2: // NaN everywhere around a maximum, including at index 0
        for (let k = 0; k < 20; k++) at(t, pick(), NaN);
        at(t, 0, NaN);
        at(t, pick(), 40);
        break;
      case 3: // nothing eligible: only -Infinity and NaN gives 0
        fill(t, -Infinity);
        for (let k = 0; k < 5; k++) at(t, pick(), NaN);
        break;
      case 4: // +Infinity twice: the first wins; -Infinity elsewhere never does
        at(t, pick(), -Infinity);
        at(t, Math.min(vocab - 1, 700), Infinity);
        at(t, Math.min(vocab - 1, 900), Infinity);
        break;
      case 5: // the most negative finite float beats -Infinity at index 0
        fill(t, -3.4028234663852886e38);
        at(t, 0, -Infinity);
        break;
      case 6: // -0 before +0 as the maximum: equal, so the first
        fill(t, -1);
        at(t, Math.min(vocab - 1, 9), 0);
        at(t, Math.min(vocab - 1, 2), -0);
        break;
      case 7: // a subnormal maximum above zero (a flush to zero would pick the 0)
        fill(t, -1);
        at(t, Math.min(vocab - 1, 3), 0);
        at(t, Math.min(vocab - 1, 10), 1e-45);
        break;
      case 8: // all NaN
        fill(t, NaN);
        break;
    }
  }
  const want = Array.from({ length: logitRows }, (_, t) => argmax(x.subarray(t * vocab, (t + 1) * vocab)));
  const [out] = await runKernel({
    kernel: 'argmax',
    constants: { VOCAB: vocab },
    params: [rows, 0, off, rows],
    buffers: { logits: x, tokens: new Uint32Array(rows).fill(0xdeadbeef) },
    workgroups: [logitRows, 1, 1],
    read: ['tokens'],
  });
  const got = Array.from(new Uint32Array(out.buffer, out.byteOffset, rows));
  // Tokens past the logits rows are not the kernel's: they keep their old contents.
  return { got, want: [...want, ...new Array<number>(off).fill(0xdeadbeef)] };
}
