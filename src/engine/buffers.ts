/**
 * The engine's own GPU buffers for one model shape (context length, rows per call, batch): the
 * per-call uniforms and inputs, the activations, the KV caches and the readback buffers; and the
 * scratch that resident adapters share. Sizes come from memoryPlan.ts, so the planner's numbers
 * are the bytes allocated here (tests/browser/engine.spec.ts checks they agree).
 */
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { createBufferChecked } from './gpu.ts';
import type { KvFormat } from './kvCache.ts';
import { activationSizes, kvLayerBytes, GREEDY_PIPELINE_DEPTH } from './memoryPlan.ts';

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const UNIFORM = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
const READBACK = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
/** The Params struct of params.wgsl: rows, unused, xRowOffset, kvLen (u32 each). */
const PARAMS_BYTES = 16;

/** Rows one call's activation buffers hold: a prefill chunk, or one token of each batched sequence. */
export function maxRowsPerCall(prefillChunk: number, maxBatch: number): number {
  return Math.max(prefillChunk, maxBatch);
}

/** One layer's KV cache: [slots, ctx, KV hd] each, f32 or packed f16 pairs. */
export interface KvCache {
  k: GPUBuffer;
  v: GPUBuffer;
}

/** Buffers of one model shape; `rows` below is maxRowsPerCall, `slots` the batch. */
export interface ModelBuffers {
  params: GPUBuffer; // uniform Params of the body and the final norm: [rows, 0, 0, kvLen]
  paramsHead: GPUBuffer; // uniform Params of the LM head and argmax: [rows, 0, headRow0, kvLen]
  tokens: GPUBuffer; // [rows] u32: the call's input ids (greedy: written by argmax)
  rowInfo: GPUBuffer; // [rows] (slot, pos) u32 pairs
  x: GPUBuffer; // [rows, dim] the residual stream
  xn: GPUBuffer; // [rows, max(dim, ffn)] normed x
  qkv: GPUBuffer; // [rows, (H + 2 KV) hd]
  attn: GPUBuffer; // [rows, H hd]
  gateUp: GPUBuffer; // [rows, 2 ffn]
  ffn: GPUBuffer; // [rows, ffn]
  scores: GPUBuffer; // [rows, H, ctx]
  logits: GPUBuffer; // [rows, vocab]
  cosSin: GPUBuffer; // [ctx, hd/2, 2] rotary table
  staging: GPUBuffer; // [rows, vocab] logits readback
  idStaging: GPUBuffer[]; // [GREEDY_PIPELINE_DEPTH][slots] u32: decodeGreedy's readback ring
  laneTokens: GPUBuffer; // [slots] u32: a greedy stream's next ids, set aside while a newcomer prefills
  kv: KvCache[]; // [layers]
  kvFormat: KvFormat;
  activationBytes: number; // every buffer above but the KV caches
  kvBytes: number;
}

/**
 * Allocate a shape's buffers and fill the rotary table; on failure frees what it made. A buffer
 * over the device's limits is refused by createBufferChecked (BufferLimitError, naming the limit).
 * `kvFormat` is the resolved one (kvCache.ts), which the kernels are then recorded for.
 */
export async function allocateModelBuffers(
  device: GPUDevice,
  c: LlamaConfig,
  kvFormat: KvFormat,
  shape: { contextLength: number; rows: number; slots: number },
): Promise<ModelBuffers> {
  const { contextLength: ctx, rows, slots } = shape;
  const own: GPUBuffer[] = [];
  const mk = async (what: string, size: number, usage = STORAGE) => {
    const b = await createBufferChecked(device, what, size, usage);
    own.push(b);
    return b;
  };
  try {
    const a = activationSizes(c, ctx, rows);
    const activations = {
      params: await mk('params', PARAMS_BYTES, UNIFORM),
      paramsHead: await mk('paramsHead', PARAMS_BYTES, UNIFORM),
      tokens: await mk('tokens', rows * 4),
      rowInfo: await mk('rowInfo', rows * 8),
      x: await mk('x', a.x),
      xn: await mk('xn', a.xn),
      qkv: await mk('qkv', a.qkv),
      attn: await mk('attn', a.attn),
      gateUp: await mk('gateUp', a.gateUp),
      ffn: await mk('ffn', a.ffn),
      scores: await mk('scores', a.scores),
      logits: await mk('logits', a.logits),
      cosSin: await mk('cosSin', a.cosSin),
      staging: await mk('staging', a.logits, READBACK),
      laneTokens: await mk('laneTokens', slots * 4),
    };
    const idStaging: GPUBuffer[] = [];
    for (let i = 0; i < GREEDY_PIPELINE_DEPTH; i++) idStaging.push(await mk(`greedy ids staging ${i}`, slots * 4, READBACK));
    const activationBytes = own.reduce((s, b) => s + b.size, 0);
    device.queue.writeBuffer(activations.cosSin, 0, ropeTable(ctx, c.headDim, c.ropeTheta));
    const kv: KvCache[] = [];
    const layerBytes = slots * kvLayerBytes(c, kvFormat, ctx);
    for (let l = 0; l < c.numLayers; l++) kv.push({ k: await mk(`kCache.${l}`, layerBytes), v: await mk(`vCache.${l}`, layerBytes) });
    const kvBytes = kv.reduce((s, l) => s + l.k.size + l.v.size, 0);
    return { ...activations, idStaging, kv, kvFormat, activationBytes, kvBytes };
  } catch (e) {
    for (const b of own) b.destroy();
    throw e;
  }
}

export function destroyModelBuffers(b: ModelBuffers) {
  const { idStaging, kv, kvFormat: _f, activationBytes: _a, kvBytes: _k, ...single } = b;
  for (const buffer of [...Object.values(single), ...idStaging, ...kv.flatMap((l) => [l.k, l.v])]) buffer.destroy();
}

/** Scratch every resident adapter shares (sized for the widest): `rows` as in ModelBuffers. */
export interface AdapterScratch {
  zWidth: number; // widest segments * r of any resident adapter's site
  z: GPUBuffer; // [rows, zWidth] bottleneck activations act(D x)
  xSplit: GPUBuffer; // [2, rows, dim] series gate/up: each half's own input
  tmp: GPUBuffer; // [rows, dim] series down: the linear's output before its adapter
}

export async function allocateAdapterScratch(device: GPUDevice, c: LlamaConfig, rows: number, zWidth: number): Promise<AdapterScratch> {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const made: GPUBuffer[] = [];
  const mk = async (what: string, size: number) => {
    const b = await createBufferChecked(device, what, size, usage);
    made.push(b);
    return b;
  };
  try {
    return {
      zWidth,
      z: await mk('adapter z', rows * zWidth * 4),
      xSplit: await mk('adapter split inputs', 2 * rows * c.hiddenSize * 4),
      tmp: await mk('adapter down output', rows * c.hiddenSize * 4),
    };
  } catch (e) {
    for (const b of made) b.destroy();
    throw e;
  }
}

export function destroyAdapterScratch(s: AdapterScratch) {
  for (const b of [s.z, s.xSplit, s.tmp]) b.destroy();
}

/**
 * cos/sin of the rotary angle for every position and pair. [ctx, hd/2, 2]
 * Hugging Face's LlamaRotaryEmbedding computes inv_freq = 1 / theta^(2i/hd) and the angle
 * pos * inv_freq in float32; we round the same way (so greedy ids match HF's), then take cos/sin
 * in double precision, which is closer than the GPU's f32 cos on large angles.
 */
export function ropeTable(ctx: number, headDim: number, theta: number): Float32Array<ArrayBuffer> {
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
  const out = new Float32Array(ctx * half * 2);
  for (let pos = 0; pos < ctx; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * invFreq[i]);
      out[(pos * half + i) * 2] = Math.cos(angle);
      out[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return out;
}
