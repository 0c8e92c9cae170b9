/**
 * mlc-chat-config.json <-> LlamaConfig.
 *
 * Field names verified against mlc-ai/mlc-llm python/mlc_llm/model/llama/llama_model.py
 * (`LlamaConfig`: hidden_size, intermediate_size, num_attention_heads, num_hidden_layers, rms_norm_eps,
 * vocab_size, tie_word_embeddings=False, position_embedding_base (falls back to rope_theta, then 10000),
 * rope_scaling, context_window_size, prefill_chunk_size, num_key_value_heads (0 -> heads),
 * head_dim (0 -> hidden/heads)) and a published Llama-2-7b-chat-hf q4f16_1 config as quoted in
 * WebLLM's tests: model_type "llama", quantization "q4f16_1", model_config{...}, top-level vocab_size,
 * context_window_size, prefill_chunk_size, bos_token_id 1, eos_token_id 2 (a number, or an array in
 * newer models), tokenizer_files ["tokenizer.model", "tokenizer.json", "tokenizer_config.json"], version "0.1.0".
 */
import { parseJsonObject } from './jsonObject.ts';
import { MLC_CHAT_CONFIG_FILE } from './baseModelFiles.ts';
import { QUANT_MODES, type LlamaConfig, type QuantMode } from './llamaConfig.ts';

export class MlcChatConfigError extends Error {
  override name = 'MlcChatConfigError';
}

export interface MlcChatConfigInfo {
  config: LlamaConfig;
  quantization: QuantMode;
  tokenizerFiles: string[];
}

type Obj = Record<string, unknown>;

function num(o: Obj, key: string, where: string, fallback?: number): number {
  const v = o[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new MlcChatConfigError(`${where}: missing ${key}`);
  }
  throw new MlcChatConfigError(`${where}: ${key} must be a number, got ${JSON.stringify(v)}`);
}

function positiveInt(o: Obj, key: string, where: string, fallback?: number): number {
  const v = num(o, key, where, fallback);
  if (!Number.isInteger(v) || v <= 0) throw new MlcChatConfigError(`${where}: ${key} must be a positive integer, got ${v}`);
  return v;
}

/** eos_token_id as MLC/HF write it: a number or an array of numbers. */
export function parseEosTokenIds(v: unknown, where: string): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isInteger(x))) return v as number[];
  throw new MlcChatConfigError(`${where}: eos_token_id must be an integer or a non-empty array of integers`);
}

/** Check head/width relations every Llama loader relies on. */
export function validateLlamaConfig(c: LlamaConfig, where: string): void {
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new MlcChatConfigError(`${where}: num_attention_heads ${c.numHeads} is not a multiple of num_key_value_heads ${c.numKvHeads}`);
  }
  if (c.headDim % 2 !== 0) throw new MlcChatConfigError(`${where}: head_dim ${c.headDim} must be even for rotary embeddings`);
}

/** Parse mlc-chat-config.json (object, text or bytes). */
export function parseMlcChatConfig(input: unknown, where = MLC_CHAT_CONFIG_FILE): MlcChatConfigInfo {
  const top = parseJsonObject(input, {
    notJson: (detail) => new MlcChatConfigError(`${where}: not JSON: ${detail}`),
    notObject: () => new MlcChatConfigError(`${where}: expected a JSON object`),
  });
  if (top.model_type !== 'llama') {
    throw new MlcChatConfigError(`${where}: unsupported model_type ${JSON.stringify(top.model_type)}; only "llama" is supported`);
  }
  const quantization = top.quantization;
  if (typeof quantization !== 'string' || !(QUANT_MODES as readonly string[]).includes(quantization)) {
    throw new MlcChatConfigError(`${where}: unsupported quantization ${JSON.stringify(quantization)}; supported: ${QUANT_MODES.join(', ')}`);
  }
  const mc = top.model_config;
  if (!mc || typeof mc !== 'object') throw new MlcChatConfigError(`${where}: missing model_config`);
  const m = mc as Obj;
  const w = `${where} model_config`;
  if (m.rope_scaling !== undefined && m.rope_scaling !== null) {
    throw new MlcChatConfigError(`${w}: rope_scaling ${JSON.stringify(m.rope_scaling)} is not supported`);
  }
  const hiddenSize = positiveInt(m, 'hidden_size', w);
  const numHeads = positiveInt(m, 'num_attention_heads', w);
  const kv = num(m, 'num_key_value_heads', w, 0);
  const hd = num(m, 'head_dim', w, 0);
  const ctx = num(m, 'context_window_size', w, num(top, 'context_window_size', where, 0));
  const config: LlamaConfig = {
    hiddenSize,
    intermediateSize: positiveInt(m, 'intermediate_size', w),
    numLayers: positiveInt(m, 'num_hidden_layers', w),
    numHeads,
    numKvHeads: kv > 0 ? kv : numHeads,
    headDim: hd > 0 ? hd : hiddenSize / numHeads,
    vocabSize: positiveInt(m, 'vocab_size', w, typeof top.vocab_size === 'number' ? top.vocab_size : undefined),
    rmsNormEps: num(m, 'rms_norm_eps', w),
    ropeTheta: num(m, 'position_embedding_base', w, num(m, 'rope_theta', w, 10000)),
    contextWindowSize: ctx > 0 ? ctx : 4096,
    tieWordEmbeddings: m.tie_word_embeddings === true,
    bosTokenId: num(top, 'bos_token_id', where, 1),
    eosTokenIds: parseEosTokenIds(top.eos_token_id ?? 2, where),
  };
  if (!Number.isInteger(config.headDim)) throw new MlcChatConfigError(`${w}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  validateLlamaConfig(config, w);
  const tf = top.tokenizer_files;
  const tokenizerFiles = Array.isArray(tf) ? tf.filter((x): x is string => typeof x === 'string') : [];
  return { config, quantization: quantization as QuantMode, tokenizerFiles };
}

/** The mlc-chat-config.json object for a Llama in a mode (MLC's field names). */
export function writeMlcChatConfig(config: LlamaConfig, mode: QuantMode, tokenizerFiles: string[]): Record<string, unknown> {
  const prefill = Math.min(config.contextWindowSize, 8192);
  return {
    version: '0.1.0',
    model_type: 'llama',
    quantization: mode,
    model_config: {
      hidden_size: config.hiddenSize,
      intermediate_size: config.intermediateSize,
      num_attention_heads: config.numHeads,
      num_hidden_layers: config.numLayers,
      rms_norm_eps: config.rmsNormEps,
      vocab_size: config.vocabSize,
      tie_word_embeddings: config.tieWordEmbeddings,
      position_embedding_base: config.ropeTheta,
      rope_scaling: null,
      context_window_size: config.contextWindowSize,
      prefill_chunk_size: prefill,
      num_key_value_heads: config.numKvHeads,
      head_dim: config.headDim,
      tensor_parallel_shards: 1,
      max_batch_size: 1,
    },
    vocab_size: config.vocabSize,
    context_window_size: config.contextWindowSize,
    sliding_window_size: -1,
    prefill_chunk_size: prefill,
    attention_sink_size: -1,
    tensor_parallel_shards: 1,
    temperature: 0,
    top_p: 1,
    repetition_penalty: 1,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds,
    pad_token_id: 0,
    tokenizer_files: tokenizerFiles,
  };
}
