/**
 * A model made up on the fly for benchmarks: any Llama shape in any mode, with seeded random
 * weights generated shard by shard as the engine asks for them (one tensor per shard), so a
 * "7B layer shapes, few layers" model needs no files and no converter time. Its numbers are
 * meaningless; its bytes and shapes are exactly those of a converted model.
 */
import type { LlamaConfig, QuantMode } from './llamaConfig.ts';
import { EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, isQ4, layerLinearNames, layerNormNames, linearRecordNames } from './llamaConfig.ts';
import { writeMlcChatConfig } from './mlcChatConfig.ts';
import { f32ToF16Bits } from './f16.ts';
import type { ModelSource, TensorCache, TensorDtype, TensorRecord } from './tensorCacheTypes.ts';
import { DTYPE_BYTES } from './tensorCache.ts';
import { q4PackedCols, q4ScaleCols } from './quant.ts';
import { MLC_CHAT_CONFIG_FILE, TENSOR_CACHE_FILE } from './baseModelFiles.ts';

/** Llama-2-7B's shape (MLC's mlc-chat-config model_config), with a layer count to choose. */
export function llama2_7bShape(numLayers = 32): LlamaConfig {
  return {
    hiddenSize: 4096,
    intermediateSize: 11008,
    numLayers,
    numHeads: 32,
    numKvHeads: 32,
    headDim: 128,
    vocabSize: 32000,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    contextWindowSize: 4096,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  };
}

interface Planned {
  record: TensorRecord;
  fill: 'q4' | 'scale' | 'weight' | 'norm';
}

function plan(c: LlamaConfig, mode: QuantMode): Planned[] {
  const float: TensorDtype = mode === 'q4f16_1' || mode === 'q0f16' ? 'float16' : 'float32';
  const out: Planned[] = [];
  const add = (name: string, shape: number[], dtype: TensorDtype, fill: Planned['fill']) => {
    const nbytes = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    out.push({ record: { name, shape, dtype, format: 'raw', nbytes, byteOffset: 0 }, fill });
  };
  const linear = (base: string, rows: number, cols: number) => {
    const names = linearRecordNames(base, mode);
    if (isQ4(mode)) {
      add(names.weight, [rows, q4PackedCols(cols)], 'uint32', 'q4');
      add(names.scale!, [rows, q4ScaleCols(cols)], float, 'scale');
    } else add(names.weight, [rows, cols], float, 'weight');
  };
  const d = c.hiddenSize;
  linear(EMBED_NAME, c.vocabSize, d);
  for (let l = 0; l < c.numLayers; l++) {
    const n = layerLinearNames(l);
    const norms = layerNormNames(l);
    add(norms.input, [d], float, 'norm');
    linear(n.qkv, (c.numHeads + 2 * c.numKvHeads) * c.headDim, d);
    linear(n.o, d, c.numHeads * c.headDim);
    add(norms.postAttention, [d], float, 'norm');
    linear(n.gateUp, 2 * c.intermediateSize, d);
    linear(n.down, d, c.intermediateSize);
  }
  add(FINAL_NORM_NAME, [d], float, 'norm');
  if (!c.tieWordEmbeddings) linear(LM_HEAD_NAME, c.vocabSize, d);
  return out;
}

export function syntheticModelSource(c: LlamaConfig, mode: QuantMode, seed = 1): ModelSource {
  const planned = plan(c, mode);
  const cache: TensorCache = {
    metadata: { ParamSize: planned.length, ParamBytes: planned.reduce((a, p) => a + p.record.nbytes, 0), BitsPerParam: 0 },
    records: planned.map((p, i) => ({ dataPath: `params_shard_${i}.bin`, format: 'raw-shard', nbytes: p.record.nbytes, records: [p.record] })),
  };
  const chat = writeMlcChatConfig(c, mode, []);
  return {
    async readJson(path) {
      if (path === MLC_CHAT_CONFIG_FILE) return chat;
      if (path === TENSOR_CACHE_FILE) return cache;
      return null;
    },
    async readShard(path) {
      const i = Number(/params_shard_(\d+)\.bin$/.exec(path)?.[1] ?? NaN);
      const p = planned[i];
      if (!p) throw new Error(`synthetic model has no ${path}`);
      return fill(p, seed + i);
    },
  };
}

/** Seeded bytes for one tensor: any int4 words; small positive scales; weights ~U(-0.05, 0.05); norms ~1. */
function fill(p: Planned, seed: number): ArrayBuffer {
  const buf = new ArrayBuffer(Math.ceil(p.record.nbytes / 4) * 4);
  const words = new Uint32Array(buf);
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const value = () => {
    const u = next() / 4294967296;
    if (p.fill === 'scale') return 0.002 + 0.01 * u;
    if (p.fill === 'norm') return 0.9 + 0.2 * u;
    return (u - 0.5) * 0.1;
  };
  if (p.fill === 'q4') {
    for (let i = 0; i < words.length; i++) words[i] = next();
  } else if (p.record.dtype === 'float16') {
    const halves = new Uint16Array(buf);
    for (let i = 0; i < p.record.nbytes / 2; i++) halves[i] = f32ToF16Bits(value());
  } else {
    const floats = new Float32Array(buf);
    for (let i = 0; i < floats.length; i++) floats[i] = value();
  }
  return buf.byteLength === p.record.nbytes ? buf : buf.slice(0, p.record.nbytes);
}
