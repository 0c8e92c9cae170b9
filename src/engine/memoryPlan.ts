/**
 * GPU memory the engine allocates for a model, computed from the same sizes the engine uses to
 * create its buffers (buffers.ts calls these), so the printed number is the real one.
 */
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import { isQ4 } from '../formats/llamaConfig.ts';
import { q4PackedCols, q4ScaleCols } from '../formats/quant.ts';
import type { KvFormat } from './kvCache.ts';

export const DEFAULT_PREFILL_CHUNK = 128;

export interface ActivationSizes {
  x: number;
  xn: number;
  qkv: number;
  attn: number;
  gateUp: number;
  ffn: number;
  scores: number;
  logits: number;
  cosSin: number;
}

/**
 * Bytes of one float in the KV cache: f16 packs pairs into u32 words. The format is the resolved
 * one (kvCache.ts resolveKvFormat), never guessed from the mode here: an f32 mode may run an f16
 * cache, and every size below must agree with what buffers.ts allocates.
 */
export function kvBytesPerValue(kv: KvFormat): number {
  return kv === 'f16' ? 2 : 4;
}

/** Bytes of the K (or V) cache of one layer. */
export function kvLayerBytes(c: LlamaConfig, kv: KvFormat, ctx: number): number {
  return ctx * c.numKvHeads * c.headDim * kvBytesPerValue(kv);
}

export function activationSizes(c: LlamaConfig, ctx: number, chunk: number): ActivationSizes {
  const f = 4;
  return {
    x: chunk * c.hiddenSize * f,
    xn: chunk * Math.max(c.hiddenSize, c.intermediateSize) * f,
    qkv: chunk * (c.numHeads + 2 * c.numKvHeads) * c.headDim * f,
    attn: chunk * c.numHeads * c.headDim * f,
    gateUp: chunk * 2 * c.intermediateSize * f,
    ffn: chunk * c.intermediateSize * f,
    scores: chunk * c.numHeads * ctx * f,
    logits: chunk * c.vocabSize * f,
    cosSin: ctx * (c.headDim / 2) * 2 * f,
  };
}

/**
 * Bytes of the weights on the GPU in a mode, tensor by tensor as weights.ts uploads them: q4 words
 * and scales or plain floats as stored, norms as f32, each buffer padded to 4 bytes.
 */
export function weightBytes(c: LlamaConfig, mode: QuantMode): number {
  const pad4 = (n: number) => Math.ceil(n / 4) * 4;
  const linear = (rows: number, cols: number) => {
    if (isQ4(mode)) return pad4(rows * q4PackedCols(cols) * 4) + pad4(rows * q4ScaleCols(cols) * (mode === 'q4f16_1' ? 2 : 4));
    return pad4(rows * cols * (mode === 'q0f16' ? 2 : 4));
  };
  const d = c.hiddenSize;
  const norm = d * 4;
  const perLayer =
    linear((c.numHeads + 2 * c.numKvHeads) * c.headDim, d) +
    linear(d, c.numHeads * c.headDim) +
    linear(2 * c.intermediateSize, d) +
    linear(d, c.intermediateSize) +
    2 * norm;
  const embed = linear(c.vocabSize, d);
  return embed + (c.tieWordEmbeddings ? 0 : embed) + c.numLayers * perLayer + norm;
}

export interface MemoryPlan {
  weights: number;
  kvCache: number;
  activations: number;
  total: number;
}

/**
 * Greedy decode steps in flight at once (LlamaModel.decodeGreedy): each has its own small readback
 * buffer for the batch's next token ids, so the GPU runs the next step while one is read back.
 */
export const GREEDY_PIPELINE_DEPTH = 3;

/**
 * Bytes of the engine's own buffers for calls of up to `rows` rows and batches of up to `maxBatch`
 * sequences: the two 16-byte Params uniforms, token ids, row info (slot, position), activations,
 * the logits readback staging, the ring of greedy token-id readback buffers (one u32 per sequence)
 * and the greedy stream's set-aside ids (one u32 per sequence).
 */
export function activationBytes(c: LlamaConfig, ctx: number, rows: number, maxBatch: number): number {
  const a = activationSizes(c, ctx, rows);
  return 2 * 16 + rows * 4 + rows * 8 + Object.values(a).reduce((s, v) => s + v, 0) + a.logits + GREEDY_PIPELINE_DEPTH * maxBatch * 4 + maxBatch * 4;
}

/** GPU memory for a context of `ctx` tokens per sequence and up to `maxBatch` sequences decoded together. */
export function planMemory(c: LlamaConfig, mode: QuantMode, kv: KvFormat, ctx: number, chunk = DEFAULT_PREFILL_CHUNK, maxBatch = 1): MemoryPlan {
  const activations = activationBytes(c, ctx, Math.max(Math.min(chunk, ctx), maxBatch), maxBatch);
  const kvCache = 2 * c.numLayers * maxBatch * kvLayerBytes(c, kv, ctx);
  const weights = weightBytes(c, mode);
  return { weights, kvCache, activations, total: weights + kvCache + activations };
}

/** GPU memory in binary units, as GPU tools report it: "4.70 GiB", "512.0 MiB", "12.0 KiB" (storage's formatBytes is decimal). */
export function formatBinaryBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

/**
 * Bytes one decode step must read from GPU memory: every weight but the embedding table (only
 * `batch` rows of it are read; a tied table is read whole as the LM head), plus the keys and
 * values of every cached position of every sequence. `positions` is the mean cached length.
 */
export function decodeBytesPerStep(c: LlamaConfig, mode: QuantMode, kv: KvFormat, batch: number, positions: number, adapterBytes = 0): number {
  const embed = weightBytes({ ...c, numLayers: 0, tieWordEmbeddings: true }, mode) - c.hiddenSize * 4;
  const weights = weightBytes(c, mode) - (c.tieWordEmbeddings ? 0 : embed);
  const kvRead = 2 * c.numLayers * batch * positions * c.numKvHeads * c.headDim * kvBytesPerValue(kv);
  return weights + kvRead + adapterBytes;
}

/**
 * KV cache + activations an evaluation's batch may take when the user has not chosen (WebGPU cannot
 * tell what is free, so the page asks for a budget; the Accuracy view offers others, up to "all the
 * GPU gives", which halves the batch until allocation succeeds).
 */
export const DEFAULT_BATCH_MEMORY = 2 * 2 ** 30;

/** The two per-buffer limits of GPUSupportedLimits that a batch's buffers must each fit. */
export interface BufferLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/**
 * The largest batch, up to `limit`, whose every single buffer fits the device's per-buffer limits
 * (at least 1; a single sequence that does not fit is refused by the allocation, naming the
 * limit). Each layer's K and V caches hold all slots in one buffer each, and the activations have
 * max(chunk, batch) rows, so a budget alone can pick a batch no device can bind: on the default
 * 128 MiB maxStorageBufferBindingSize, 7B's f32 KV cache (q4f32_1) at 1300 tokens binds 6 slots.
 */
export function batchForLimits(c: LlamaConfig, kv: KvFormat, ctx: number, chunk: number, limits: BufferLimits, limit: number): number {
  const cap = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  for (let b = limit; b > 1; b--) {
    const rows = Math.max(Math.min(chunk, ctx), b);
    const largestActivation = Math.max(...Object.values(activationSizes(c, ctx, rows)));
    if (b * kvLayerBytes(c, kv, ctx) <= cap && largestActivation <= cap) return b;
  }
  return 1;
}

/**
 * The largest batch, up to `limit`, whose KV caches and activations fit in `budget` bytes (at
 * least 1: a single sequence is always tried). WebGPU cannot say how much memory is free, so a
 * page asks for a budget rather than taking whatever allocation happens to succeed.
 */
export function batchForBudget(c: LlamaConfig, mode: QuantMode, kv: KvFormat, ctx: number, chunk: number, budget: number, limit: number): number {
  for (let b = limit; b > 1; b--) {
    const m = planMemory(c, mode, kv, ctx, chunk, b);
    if (m.kvCache + m.activations <= budget) return b;
  }
  return 1;
}
