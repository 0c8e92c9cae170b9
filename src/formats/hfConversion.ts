/**
 * The one Hugging Face → MLC conversion, shared by `npm run convert` (src/cli/convert.ts, reading a
 * directory with file handles) and the browser (src/storage/hfConvert.ts, reading the hub with
 * Range requests or picked files): the HF config check, the parameter plan, the source check, and
 * the tensor-by-tensor writer. Whatever reads the checkpoint, the same bytes come out.
 *
 * Mapping verified against mlc-ai/mlc-llm python/mlc_llm/model/llama/llama_loader.py (`huggingface`):
 *  - self_attn.qkv_proj.weight = concat([q_proj, k_proj, v_proj], axis=0)  (rows: q, then k, then v)
 *  - mlp.gate_up_proj.weight   = concat([gate_proj, up_proj], axis=0)      (rows: gate, then up)
 *  - every other parameter keeps its HF name, cast to the model dtype; rotary_emb.inv_freq is unused.
 * In q4 modes every nn.Linear AND the embedding are group-quantized (quantization.py: q4f16_1 /
 * q4f32_1 have quantize_embedding=True, quantize_final_fc=True; group_quantization.py maps
 * `<name>.weight` to `<name>.q_weight` + `<name>.q_scale`); norms stay in the model dtype.
 * With tie_word_embeddings no lm_head is written (llama_model.py reuses embed_tokens).
 *
 * Streaming: each output record is produced in row blocks read from the checkpoint at their
 * offsets, so memory stays at a few row blocks + one shard (32 MiB) + the q_scale of the current
 * tensor (1/16 of its float16 size), whatever the checkpoint size.
 */
import { f32ArrayToF16 } from './f16.ts';
import {
  EMBED_NAME,
  FINAL_NORM_NAME,
  LM_HEAD_NAME,
  floatDtype,
  isQ4,
  layerLinearNames,
  layerNormNames,
  type LlamaConfig,
  type QuantMode,
} from './llamaConfig.ts';
import { parseEosTokenIds, validateLlamaConfig } from './mlcChatConfig.ts';
import { q4PackedCols, q4ScaleCols, quantizeQ4 } from './quant.ts';
import type { TensorCacheWriter } from './tensorCache.ts';
import { SENTENCEPIECE_MODEL_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from './baseModelFiles.ts';

/** Tokenizer files a converted model takes over from its checkpoint, when the checkpoint has them. */
export const TOKENIZER_FILES = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SENTENCEPIECE_MODEL_FILE];
/** Llama-2's vocabulary size: the bundled Llama-2 tokenizer fits only a model with this many ids. */
export const LLAMA2_VOCAB_SIZE = 32000;
export const HF_CONFIG_FILE = 'config.json';
export const HF_GENERATION_CONFIG_FILE = 'generation_config.json';
export const HF_INDEX_FILE = 'model.safetensors.index.json';
export const HF_SINGLE_FILE = 'model.safetensors';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

type Json = Record<string, unknown>;

/** LlamaConfig from a HF config.json (+ generation_config.json), refusing what we do not implement. */
export function parseHfLlamaConfig(cfg: Json, gen: Json | null = null, where = 'config.json'): LlamaConfig {
  const archs = Array.isArray(cfg.architectures) ? (cfg.architectures as string[]) : [];
  if (!archs.includes('LlamaForCausalLM') && cfg.model_type !== 'llama') {
    throw new CheckpointError(`${where}: unknown architecture ${archs[0] ?? String(cfg.model_type ?? '(none)')}; only LlamaForCausalLM is supported`);
  }
  if (cfg.rope_scaling !== undefined && cfg.rope_scaling !== null) {
    throw new CheckpointError(`${where}: rope_scaling ${JSON.stringify(cfg.rope_scaling)} is not supported`);
  }
  if (cfg.attention_bias === true) throw new CheckpointError(`${where}: attention_bias = true is not supported`);
  if (cfg.mlp_bias === true) throw new CheckpointError(`${where}: mlp_bias = true is not supported`);
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu') {
    throw new CheckpointError(`${where}: hidden_act ${JSON.stringify(cfg.hidden_act)} is not supported (only silu)`);
  }
  const int = (k: string, fallback?: number): number => {
    const v = cfg[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      throw new CheckpointError(`${where}: ${k} must be a positive integer, got ${JSON.stringify(cfg[k])}`);
    return v;
  };
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const headDim = int('head_dim', hiddenSize / numHeads);
  const eos = gen?.eos_token_id ?? cfg.eos_token_id ?? 2;
  const config: LlamaConfig = {
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads: int('num_key_value_heads', numHeads),
    headDim,
    vocabSize: int('vocab_size'),
    rmsNormEps: typeof cfg.rms_norm_eps === 'number' ? cfg.rms_norm_eps : 1e-6,
    ropeTheta: typeof cfg.rope_theta === 'number' ? cfg.rope_theta : 10000,
    contextWindowSize: int('max_position_embeddings', 4096),
    tieWordEmbeddings: cfg.tie_word_embeddings === true,
    bosTokenId: Number(gen?.bos_token_id ?? cfg.bos_token_id ?? 1),
    eosTokenIds: parseEosTokenIds(eos, where),
  };
  validateLlamaConfig(config, where);
  return config;
}

/** A source tensor: where it is does not matter here, only what it is. */
export interface SourceTensor {
  dtype: string;
  shape: number[];
}

/** What the converter needs of a checkpoint, however it is read. */
export interface CheckpointTensors {
  /** Named in errors (a directory, a repo id). */
  readonly where: string;
  readonly tensors: ReadonlyMap<string, SourceTensor>;
  /** Rows [rowStart, rowStart + rowCount) of a tensor as float32 (a 1-D tensor is one row). */
  readRows(name: string, rowStart: number, rowCount: number): Promise<Float32Array>;
}

interface Segment {
  src: string;
  rows: number;
}
export type Param =
  { kind: 'linear'; base: string; segments: Segment[]; cols: number; colsWhat: string } | { kind: 'norm'; name: string; src: string; size: number };

/** The MLC parameters of a Llama, in MLC's order, with their HF sources. */
export function planParams(c: LlamaConfig): Param[] {
  const lin = (base: string, segments: Segment[], cols: number, colsWhat: string): Param => ({ kind: 'linear', base, segments, cols, colsWhat });
  const params: Param[] = [lin(EMBED_NAME, [{ src: `${EMBED_NAME}.weight`, rows: c.vocabSize }], c.hiddenSize, 'hidden_size')];
  const qRows = c.numHeads * c.headDim;
  const kvRows = c.numKvHeads * c.headDim;
  for (let i = 0; i < c.numLayers; i++) {
    const n = layerLinearNames(i);
    const hf = `model.layers.${i}`;
    params.push(
      lin(
        n.qkv,
        [
          { src: `${hf}.self_attn.q_proj.weight`, rows: qRows },
          { src: `${hf}.self_attn.k_proj.weight`, rows: kvRows },
          { src: `${hf}.self_attn.v_proj.weight`, rows: kvRows },
        ],
        c.hiddenSize,
        'hidden_size',
      ),
      lin(n.o, [{ src: `${hf}.self_attn.o_proj.weight`, rows: c.hiddenSize }], qRows, 'num_attention_heads·head_dim'),
      lin(
        n.gateUp,
        [
          { src: `${hf}.mlp.gate_proj.weight`, rows: c.intermediateSize },
          { src: `${hf}.mlp.up_proj.weight`, rows: c.intermediateSize },
        ],
        c.hiddenSize,
        'hidden_size',
      ),
      lin(n.down, [{ src: `${hf}.mlp.down_proj.weight`, rows: c.hiddenSize }], c.intermediateSize, 'intermediate_size'),
    );
    const norms = layerNormNames(i);
    params.push(
      { kind: 'norm', name: norms.input, src: norms.input, size: c.hiddenSize },
      { kind: 'norm', name: norms.postAttention, src: norms.postAttention, size: c.hiddenSize },
    );
  }
  params.push({ kind: 'norm', name: FINAL_NORM_NAME, src: FINAL_NORM_NAME, size: c.hiddenSize });
  if (!c.tieWordEmbeddings) params.push(lin(LM_HEAD_NAME, [{ src: `${LM_HEAD_NAME}.weight`, rows: c.vocabSize }], c.hiddenSize, 'hidden_size'));
  return params;
}

/** The source tensors a parameter reads, with their expected shapes. */
export function paramSources(p: Param): { src: string; shape: number[] }[] {
  return p.kind === 'norm' ? [{ src: p.src, shape: [p.size] }] : p.segments.map((s) => ({ src: s.src, shape: [s.rows, p.cols] }));
}

const FLOAT_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/**
 * Check every source tensor exists with the expected shape and a float dtype — before anything is
 * written. (q4 takes any width: MLC pads the last group.)
 * @returns the parameter count and the source bytes each parameter reads (progress, ETA)
 */
export function validateSources(ckpt: CheckpointTensors, params: Param[]): { totalParams: number; sourceBytes: number[] } {
  let totalParams = 0;
  const sourceBytes = params.map((p) => {
    let bytes = 0;
    for (const { src, shape: expected } of paramSources(p)) {
      const t = ckpt.tensors.get(src);
      if (!t) throw new CheckpointError(`missing tensor ${src} in checkpoint ${ckpt.where}`);
      if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
        throw new CheckpointError(`tensor ${src} has shape [${t.shape.join(', ')}], expected [${expected.join(', ')}]`);
      }
      if (!(t.dtype in FLOAT_BYTES)) throw new CheckpointError(`tensor ${src} has dtype ${t.dtype}; only F32, F16 and BF16 are supported`);
      const n = expected.reduce((a, b) => a * b, 1);
      totalParams += n;
      bytes += n * FLOAT_BYTES[t.dtype];
    }
    return bytes;
  });
  return { totalParams, sourceBytes };
}

const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export interface WriteParamsOptions {
  /** Bytes of float32 per row block while streaming (default 8 MiB). */
  blockBytes?: number;
  /** First parameter to write (resuming: the ones before are in the writer already). */
  from?: number;
  /** Called after parameter `index` is wholly in the writer (its records added): a safe point to save progress. */
  onParamDone?: (index: number, p: Param) => Promise<void> | void;
  /** Called after each row block is read: source bytes read so far in this parameter (progress). */
  onBytes?: (bytes: number) => void;
  signal?: AbortSignal;
}

/** A parameter's display name. */
export const paramName = (p: Param): string => (p.kind === 'norm' ? p.name : p.base);

/** Write parameters[from..] into the writer, tensor by tensor, in MLC's order and layout. */
export async function writeParams(
  ckpt: CheckpointTensors,
  params: Param[],
  mode: QuantMode,
  writer: TensorCacheWriter,
  opts: WriteParamsOptions = {},
): Promise<void> {
  const fdt = floatDtype(mode);
  const blockBytes = opts.blockBytes ?? 8 * 1024 * 1024;
  const encodeFloat = (a: Float32Array) => (fdt === 'float16' ? u8(f32ArrayToF16(a)) : u8(a));
  for (let index = opts.from ?? 0; index < params.length; index++) {
    opts.signal?.throwIfAborted();
    const p = params[index];
    if (p.kind === 'norm') {
      const w = await ckpt.readRows(p.src, 0, 1);
      opts.onBytes?.(p.size * FLOAT_BYTES[ckpt.tensors.get(p.src)!.dtype]);
      await writer.add({ name: p.name, shape: [p.size], dtype: fdt }, encodeFloat(w));
      await opts.onParamDone?.(index, p);
      continue;
    }
    const rows = p.segments.reduce((a, s) => a + s.rows, 0);
    const blockRows = Math.max(1, Math.floor(blockBytes / (p.cols * 4)));
    // Visit the fused rows block by block, in output order.
    const forEachBlock = async (fn: (w: Float32Array, n: number, row0: number) => Promise<void>) => {
      let row0 = 0;
      let read = 0;
      for (const s of p.segments) {
        const eb = FLOAT_BYTES[ckpt.tensors.get(s.src)!.dtype];
        for (let r = 0; r < s.rows; r += blockRows) {
          opts.signal?.throwIfAborted();
          const n = Math.min(blockRows, s.rows - r);
          const w = await ckpt.readRows(s.src, r, n);
          read += n * p.cols * eb;
          opts.onBytes?.(read);
          await fn(w, n, row0 + r);
        }
        row0 += s.rows;
      }
    };
    if (isQ4(mode)) {
      const nGroups = q4ScaleCols(p.cols);
      const scales = new Float32Array(rows * nGroups);
      await writer.add({ name: `${p.base}.q_weight`, shape: [rows, q4PackedCols(p.cols)], dtype: 'uint32' }, async (emit) => {
        await forEachBlock(async (w, n, row0) => {
          const q = quantizeQ4(w, n, p.cols, fdt);
          scales.set(q.qScale, row0 * nGroups);
          await emit(u8(q.qWeight));
        });
      });
      await writer.add({ name: `${p.base}.q_scale`, shape: [rows, nGroups], dtype: fdt }, encodeFloat(scales));
    } else {
      await writer.add({ name: `${p.base}.weight`, shape: [rows, p.cols], dtype: fdt }, async (emit) => {
        await forEachBlock(async (w) => emit(encodeFloat(w)));
      });
    }
    await opts.onParamDone?.(index, p);
  }
}

/** tensor-cache.json's metadata, as the CLI writes it. */
export function cacheMetadata(writer: TensorCacheWriter, totalParams: number): Record<string, unknown> {
  return { ParamSize: writer.recordCount, ParamBytes: writer.totalBytes, BitsPerParam: (writer.totalBytes * 8) / totalParams };
}
