/**
 * The training backward kernels (matmulBackInput, matmulBackWeight, attnBackQuery + attnBackKeyValue)
 * on a real WebGPU device, recorded through their host wrappers (src/engine/trainingMatmul.ts,
 * trainingAttention.ts) exactly as the trainer records them, against the reference backward of
 * src/engine/referenceTraining.ts (matmulBackInput, matmulBackWeight, causalAttention +
 * causalAttentionBack: f64, itself checked against finite differences in
 * tests/unit/training-reference.test.ts). Imported by tests/browser/training-matmul.spec.ts.
 *
 * Every output buffer starts as random noise, so an entry the kernel fails to write (or writes
 * where it should not: rows before the row offset) shows; the whole buffer is compared.
 */
import { createGpuContext, type GpuContext } from '../../../src/engine/gpu.ts';
import { PipelineCache, type WeightFormat } from '../../../src/engine/kernels.ts';
import type { GpuMatrix } from '../../../src/engine/weights.ts';
import { recordMatmulBackInput, recordMatmulBackWeight, trainingParams } from '../../../src/engine/trainingMatmul.ts';
import { attentionStatsBytes, recordAttentionBackward } from '../../../src/engine/trainingAttention.ts';
import { causalAttention, causalAttentionBack, matmulBackInput, matmulBackWeight } from '../../../src/engine/referenceTraining.ts';
import { dequantizeQ4, quantizeQ4 } from '../../../src/formats/quant.ts';
import { f32ArrayToF16 } from '../../../src/formats/f16.ts';
import { randn, randomWeight, relErr } from './kernelChecks.ts';
import { runSteps, type DispatchStep } from './dispatchHarness.ts';

let ctx: GpuContext | null = null;
let pipes: PipelineCache | null = null;
const live: GPUBuffer[] = [];

async function gpu(): Promise<{ device: GPUDevice; pipes: PipelineCache }> {
  ctx ??= await createGpuContext();
  pipes ??= new PipelineCache(ctx.device);
  return { device: ctx.device, pipes };
}

function buffer(
  device: GPUDevice,
  init: ArrayBufferView | number,
  usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
): GPUBuffer {
  const size = typeof init === 'number' ? init : init.byteLength;
  const buf = device.createBuffer({ size: Math.max(16, Math.ceil(size / 4) * 4), usage });
  if (typeof init !== 'number') {
    const bytes = new Uint8Array(Math.ceil(init.byteLength / 4) * 4);
    bytes.set(new Uint8Array(init.buffer, init.byteOffset, init.byteLength));
    device.queue.writeBuffer(buf, 0, bytes);
  }
  live.push(buf);
  return buf;
}

function uniform(device: GPUDevice, data: Uint32Array): GPUBuffer {
  return buffer(device, data, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
}

/** Encode the dispatches in one pass, as llama.ts encodeRows does (workgroups from the call's rows), read `read` back, free the buffers. */
async function run(device: GPUDevice, steps: DispatchStep[], read: GPUBuffer[]): Promise<Float32Array[]> {
  try {
    return await runSteps(device, steps, read);
  } finally {
    for (const b of live.splice(0)) b.destroy();
  }
}

/**
 * A weight on the GPU and its dense values for the oracle. `packed`: q4 packed by quant.ts's
 * quantizeQ4 from random f32 values (the converter's own packing) rather than random words.
 */
function gpuWeight(device: GPUDevice, format: WeightFormat, rows: number, cols: number, seed: number, packed = false): { m: GpuMatrix; dense: Float32Array } {
  let weights: { wData: ArrayBufferView; wScale?: ArrayBufferView };
  let dense: Float32Array;
  if (packed && (format === 'q4f16' || format === 'q4f32')) {
    const q = quantizeQ4(randn(rows * cols, seed, 0.5), rows, cols, format === 'q4f16' ? 'float16' : 'float32');
    weights = { wData: q.qWeight, wScale: format === 'q4f16' ? f32ArrayToF16(q.qScale) : q.qScale };
    dense = dequantizeQ4(q.qWeight, q.qScale, rows, cols);
  } else {
    const w = randomWeight(format, rows, cols, seed);
    weights = w.weights;
    dense = w.dense;
  }
  const m: GpuMatrix = {
    name: `w${seed}`,
    format,
    rows,
    cols,
    data: buffer(device, weights.wData),
    scale: weights.wScale ? buffer(device, weights.wScale) : undefined,
  };
  return { m, dense };
}

/** Columns col..col+width of each of `rows` rows of stride `stride`, in f64 (the reference's input). */
function columns(a: Float32Array, rows: number, stride: number, col: number, width: number, rowOffset = 0): Float64Array {
  const out = new Float64Array(rows * width);
  for (let t = 0; t < rows; t++) for (let j = 0; j < width; j++) out[t * width + j] = a[(rowOffset + t) * stride + col + j];
  return out;
}

export interface BackInputOptions {
  rowStart?: number;
  rows?: number;
  dyStride?: number;
  dyCol?: number;
  xRowOffset?: number;
  scale?: number;
  accumulate?: boolean;
  packed?: boolean;
}

/**
 * dX (+)= scale · dY W over rows rowStart..+rows of a [outRows, IN] weight in `format`, for
 * `tokens` call rows of which the first xRowOffset are left alone.
 */
export async function checkBackInput(format: WeightFormat, IN: number, outRows: number, tokens: number, o: BackInputOptions = {}) {
  const { device, pipes } = await gpu();
  const rowStart = o.rowStart ?? 0;
  const rows = o.rows ?? outRows - rowStart;
  const dyStride = o.dyStride ?? rows;
  const dyCol = o.dyCol ?? 0;
  const off = o.xRowOffset ?? 0;
  const scale = o.scale ?? 1;
  const dyRows = tokens - off;
  const w = gpuWeight(device, format, outRows, IN, 11 + IN + outRows, o.packed);
  const dy = randn(dyRows * dyStride, 7 + rows);
  const dx0 = randn(tokens * IN, 5 + IN);
  const part = new Float64Array(dyRows * IN);
  matmulBackInput(columns(dy, dyRows, dyStride, dyCol, rows), dyRows, w.dense, rowStart, rows, IN, part);
  const want = Float64Array.from(dx0);
  for (let i = 0; i < part.length; i++) want[off * IN + i] = (o.accumulate ? dx0[off * IN + i] : 0) + scale * part[i];
  const dx = buffer(device, dx0);
  const d = recordMatmulBackInput(device, pipes, {
    w: w.m,
    rowStart: o.rowStart,
    rows: o.rows,
    dy: buffer(device, dy),
    dyStride: o.dyStride,
    dyCol: o.dyCol,
    dx,
    params: uniform(device, trainingParams(tokens, tokens, off)),
    scale: o.scale,
    accumulate: o.accumulate,
  });
  const [got] = await run(device, [{ d, rows: dyRows, kvLen: tokens }], [dx]);
  return relErr(got.subarray(0, want.length), want);
}

export interface BackWeightOptions {
  dyStride?: number;
  dyCol?: number;
  xStride?: number;
  xCol?: number;
  xRowOffset?: number;
  scale?: number;
  accumulate?: boolean;
}

/** dW (+)= scale · dYᵀ X for a trainable [ROWS, COLS] matrix over `tokens` call rows. */
export async function checkBackWeight(ROWS: number, COLS: number, tokens: number, o: BackWeightOptions = {}) {
  const { device, pipes } = await gpu();
  const dyStride = o.dyStride ?? ROWS;
  const xStride = o.xStride ?? COLS;
  const off = o.xRowOffset ?? 0;
  const dyRows = tokens - off;
  const dy = randn(dyRows * dyStride, 3 + ROWS);
  const x = randn(tokens * xStride, 4 + COLS);
  const dw0 = randn(ROWS * COLS, 9);
  const want = o.accumulate ? Float64Array.from(dw0) : new Float64Array(ROWS * COLS);
  matmulBackWeight(
    columns(dy, dyRows, dyStride, o.dyCol ?? 0, ROWS),
    columns(x, dyRows, xStride, o.xCol ?? 0, COLS, off),
    dyRows,
    ROWS,
    COLS,
    want,
    o.scale ?? 1,
  );
  const dw = buffer(device, dw0);
  const d = recordMatmulBackWeight(device, pipes, {
    dw,
    rows: ROWS,
    cols: COLS,
    dy: buffer(device, dy),
    dyStride: o.dyStride,
    dyCol: o.dyCol,
    x: buffer(device, x),
    xStride: o.xStride,
    xCol: o.xCol,
    params: uniform(device, trainingParams(tokens, tokens, off)),
    scale: o.scale,
    accumulate: o.accumulate,
  });
  const [got] = await run(device, [{ d, rows: dyRows, kvLen: tokens }], [dw]);
  return relErr(got.subarray(0, want.length), want);
}

/**
 * One LoRA module's backward over a frozen base in `format`, y = W[rowStart..] x + s · B (A x), as
 * the trainer chains it: dx = Wᵀ dy; dB = s · dyᵀ h; dh = s · Bᵀ dy; dA = dhᵀ x; dx += Aᵀ dh, five
 * dispatches in one pass, against referenceTraining's matmulBackInput / matmulBackWeight in the
 * same order as its linearBack (no dropout). Returns the worst of dx, dA and dB.
 */
export async function checkLoraChain(format: WeightFormat, IN: number, outRows: number, rowStart: number, rows: number, r: number, tokens: number, s: number) {
  const { device, pipes } = await gpu();
  const w = gpuWeight(device, format, outRows, IN, 21 + IN, true);
  const a = randn(r * IN, 22, 0.3);
  const b = randn(rows * r, 23, 0.3);
  const x = randn(tokens * IN, 24);
  const dy = randn(tokens * rows, 25);
  // h = A x, the forward's cached value (f64 for the oracle, its f32 rounding for the GPU).
  const h64 = new Float64Array(tokens * r);
  for (let t = 0; t < tokens; t++)
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let c = 0; c < IN; c++) acc += a[j * IN + c] * x[t * IN + c];
      h64[t * r + j] = acc;
    }
  const h = Float32Array.from(h64);
  const dy64 = Float64Array.from(dy);
  const wantDx = new Float64Array(tokens * IN);
  const wantDa = new Float64Array(r * IN);
  const wantDb = new Float64Array(rows * r);
  matmulBackInput(dy64, tokens, w.dense, rowStart, rows, IN, wantDx);
  matmulBackWeight(dy64, Float64Array.from(h), tokens, rows, r, wantDb, s);
  const dh64 = new Float64Array(tokens * r);
  matmulBackInput(dy64, tokens, b, 0, rows, r, dh64);
  for (let i = 0; i < dh64.length; i++) dh64[i] *= s;
  matmulBackWeight(dh64, Float64Array.from(x), tokens, r, IN, wantDa);
  matmulBackInput(dh64, tokens, a, 0, r, IN, wantDx);

  const params = uniform(device, trainingParams(tokens, tokens));
  const f32 = (name: string, rowsN: number, cols: number, data: Float32Array): GpuMatrix => ({
    name,
    format: 'f32',
    rows: rowsN,
    cols,
    data: buffer(device, data),
  });
  const A = f32('lora A', r, IN, a);
  const B = f32('lora B', rows, r, b);
  const dyBuf = buffer(device, dy);
  const xBuf = buffer(device, x);
  const hBuf = buffer(device, h);
  const dx = buffer(device, randn(tokens * IN, 26));
  const dA = buffer(device, randn(r * IN, 27));
  const dB = buffer(device, randn(rows * r, 28));
  const dh = buffer(device, randn(tokens * r, 29));
  const steps = [
    recordMatmulBackInput(device, pipes, { w: w.m, rowStart, rows, dy: dyBuf, dx, params }),
    recordMatmulBackWeight(device, pipes, { dw: dB, rows, cols: r, dy: dyBuf, x: hBuf, params, scale: s }),
    recordMatmulBackInput(device, pipes, { w: B, dy: dyBuf, dx: dh, params, scale: s }),
    recordMatmulBackWeight(device, pipes, { dw: dA, rows: r, cols: IN, dy: dh, x: xBuf, params }),
    recordMatmulBackInput(device, pipes, { w: A, dy: dh, dx, params, accumulate: true }),
  ].map((d) => ({ d, rows: tokens, kvLen: tokens }));
  const [gotDx, gotDa, gotDb] = await run(device, steps, [dx, dA, dB]);
  return Math.max(
    relErr(gotDx.subarray(0, wantDx.length), wantDx),
    relErr(gotDa.subarray(0, wantDa.length), wantDa),
    relErr(gotDb.subarray(0, wantDb.length), wantDb),
  );
}

/**
 * Causal attention backward over B sequences of T tokens (H query heads, KV kv heads, head dim
 * hd) against causalAttentionBack of the reference's own causalAttention probabilities. Scores are
 * scaled by `sharpness` so the softmax is far from uniform. Returns the worst of dq, dk and dv.
 */
export async function checkAttentionBack(B: number, T: number, H: number, KV: number, hd: number, seed: number, sharpness = 1) {
  const { device, pipes } = await gpu();
  const n = B * T;
  const width = (H + 2 * KV) * hd;
  const q = randn(n * H * hd, seed, sharpness);
  const k = randn(n * KV * hd, seed + 1, sharpness);
  const v = randn(n * KV * hd, seed + 2);
  const dOut = randn(n * H * hd, seed + 3);
  const shape = { B, T, H, KV, hd };
  const q64 = Float64Array.from(q);
  const k64 = Float64Array.from(k);
  const v64 = Float64Array.from(v);
  const { probs } = causalAttention(q64, k64, v64, shape);
  const want = causalAttentionBack(q64, k64, v64, probs, Float64Array.from(dOut), shape);
  const qkv = new Float32Array(n * width);
  for (let t = 0; t < n; t++) {
    qkv.set(q.subarray(t * H * hd, (t + 1) * H * hd), t * width);
    qkv.set(k.subarray(t * KV * hd, (t + 1) * KV * hd), t * width + H * hd);
    qkv.set(v.subarray(t * KV * hd, (t + 1) * KV * hd), t * width + (H + KV) * hd);
  }
  const dqkv = buffer(device, randn(n * width, seed + 4, 100));
  const steps = recordAttentionBackward(device, pipes, {
    heads: { numHeads: H, numKvHeads: KV, headDim: hd },
    qkv: buffer(device, qkv),
    dOut: buffer(device, dOut),
    dqkv,
    stats: buffer(device, attentionStatsBytes(n, H)),
    params: uniform(device, trainingParams(n, T)),
  }).map((d) => ({ d, rows: n, kvLen: T }));
  const [got] = await run(device, steps, [dqkv]);
  return Math.max(
    relErr(columns(got, n, width, 0, H * hd), want.dq),
    relErr(columns(got, n, width, H * hd, KV * hd), want.dk),
    relErr(columns(got, n, width, (H + KV) * hd, KV * hd), want.dv),
  );
}

/** The message each wrapper gives for a shape its kernel cannot run (undefined: it recorded). */
export async function wrapperErrors(): Promise<string[]> {
  const { device, pipes } = await gpu();
  const buf = buffer(device, 64);
  const params = uniform(device, trainingParams(1, 1));
  const q4: GpuMatrix = { name: 'odd q4', format: 'q4f32', rows: 4, cols: 40, data: buf, scale: buf };
  const f32: GpuMatrix = { name: 'small', format: 'f32', rows: 4, cols: 8, data: buf };
  const attempts: Array<() => unknown> = [
    () => recordMatmulBackInput(device, pipes, { w: q4, dy: buf, dx: buf, params }),
    () => recordMatmulBackInput(device, pipes, { w: f32, rowStart: 2, rows: 3, dy: buf, dx: buf, params }),
    () => recordMatmulBackInput(device, pipes, { w: f32, rows: 4, dyStride: 4, dyCol: 1, dy: buf, dx: buf, params }),
    () => recordMatmulBackWeight(device, pipes, { dw: buf, rows: 4, cols: 8, dy: buf, x: buf, xStride: 8, xCol: 2, params }),
    () => recordAttentionBackward(device, pipes, { heads: { numHeads: 6, numKvHeads: 4, headDim: 8 }, qkv: buf, dOut: buf, dqkv: buf, stats: buf, params }),
    () => recordAttentionBackward(device, pipes, { heads: { numHeads: 2, numKvHeads: 1, headDim: 320 }, qkv: buf, dOut: buf, dqkv: buf, stats: buf, params }),
    () => trainingParams(3, 2, 4),
  ];
  const out = attempts.map((f) => {
    try {
      f();
      return 'recorded';
    } catch (e) {
      return (e as Error).message;
    }
  });
  for (const b of live.splice(0)) b.destroy();
  return out;
}
