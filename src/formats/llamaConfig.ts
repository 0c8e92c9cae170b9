/**
 * The Llama model description shared by the converter, the engine and the reference pass.
 *
 * Parameter names follow MLC-LLM's Llama (python/mlc_llm/model/llama/llama_model.py):
 * fused `self_attn.qkv_proj` (rows: q heads, then k heads, then v heads) and fused
 * `mlp.gate_up_proj` (rows: gate, then up), so MLC's published shards load unchanged.
 */

export type QuantMode = 'q4f16_1' | 'q4f32_1' | 'q0f16' | 'q0f32';
export const QUANT_MODES: readonly QuantMode[] = ['q4f16_1', 'q4f32_1', 'q0f16', 'q0f32'];

export interface LlamaConfig {
  hiddenSize: number; // dim
  intermediateSize: number; // ffn width
  numLayers: number;
  numHeads: number;
  numKvHeads: number; // < numHeads for grouped-query attention
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  contextWindowSize: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenIds: number[];
}

/** True for the 4-bit group-quantized modes (weights as q_weight/q_scale pairs). */
export function isQ4(mode: QuantMode): boolean {
  return mode === 'q4f16_1' || mode === 'q4f32_1';
}

/** The float type of activations, norms and scales in a mode. */
export function floatDtype(mode: QuantMode): 'float16' | 'float32' {
  return mode === 'q4f16_1' || mode === 'q0f16' ? 'float16' : 'float32';
}

export const Q4_GROUP_SIZE = 32;
export const Q4_PER_U32 = 8;
export const Q4_MAX_INT = 7;

/** The linear layers of one block, by their MLC names. */
export function layerLinearNames(i: number) {
  const p = `model.layers.${i}`;
  return {
    qkv: `${p}.self_attn.qkv_proj`,
    o: `${p}.self_attn.o_proj`,
    gateUp: `${p}.mlp.gate_up_proj`,
    down: `${p}.mlp.down_proj`,
  };
}

export function layerNormNames(i: number) {
  const p = `model.layers.${i}`;
  return { input: `${p}.input_layernorm.weight`, postAttention: `${p}.post_attention_layernorm.weight` };
}

export const EMBED_NAME = 'model.embed_tokens';
export const FINAL_NORM_NAME = 'model.norm.weight';
export const LM_HEAD_NAME = 'lm_head';

/**
 * Record names of a linear (or embedding) parameter in a mode: `<base>.weight` unquantized,
 * `<base>.q_weight` [out, ceil(in/8)] uint32 and `<base>.q_scale` [out, ceil(in/32)] float when q4.
 */
export function linearRecordNames(base: string, mode: QuantMode): { weight: string; scale?: string } {
  return isQ4(mode) ? { weight: `${base}.q_weight`, scale: `${base}.q_scale` } : { weight: `${base}.weight` };
}
