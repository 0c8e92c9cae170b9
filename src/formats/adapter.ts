/**
 * Adapters: PEFT `adapter_config.json` + `adapter_model.safetensors` in, our adapter format out
 * (`adapter.json` + `adapter_shard_N.bin`), bound to one converted base model by its fingerprint.
 * Pure functions (bytes in, bytes out) so the CLI and the browser (dropped files) share them.
 *
 * Verified against:
 * - PEFT src/peft/tuners/lora/layer.py (`LoraLayer.update_layer`): lora_A = nn.Linear(in, r) so its
 *   weight is [r, in]; lora_B = nn.Linear(r, out) -> [out, r]; scaling = lora_alpha / r, or
 *   lora_alpha / sqrt(r) with use_rslora; forward y = base(x) + lora_B(lora_A(dropout(x))) · scaling.
 *   src/peft/tuners/lora/model.py (`dispatch_default`): for a torch.nn.Linear target PEFT warns and
 *   sets fan_in_fan_out = False, so Llama LoRA weights are always in nn.Linear layout; we accept the
 *   transposed layout only when the config says fan_in_fan_out and the shapes prove it, and
 *   transpose at conversion. Saved keys drop the adapter name: `...q_proj.lora_A.weight`.
 *   Target matching (`check_target_module_exists`): a list entry matches a module key equal to it or
 *   ending in "." + entry; a string is a regex that must fullmatch the key; "all-linear" means every
 *   linear layer but the output layer.
 * - LLM-Adapters peft/src/peft/tuners/bottleneck.py (`BottleneckConfig`, `BottleneckModel`,
 *   `Linear`): fields bottleneck_size (256), non_linearity ("tanh", through transformers' ACT2FN),
 *   adapter_dropout, scaling (float or "learned": `adapter_scaling = nn.Parameter(torch.ones(1))`,
 *   saved as `...<module>.adapter_scaling`, shape [1]), use_parallel_adapter, bias, init_weights,
 *   target_modules (list: a module key that *ends with* the entry, no dot required; string:
 *   regex fullmatch). Submodules `adapter_down = nn.Linear(in_features, bottleneck_size)` and
 *   `adapter_up = nn.Linear(bottleneck_size, out_features)`, no bias, where for Llama
 *   (TRANSFORMERS_MODELS_TO_ADAPTER_TYPE_MAPPING) gate_proj / up_proj are "mh_adapter"
 *   (in = out = the linear's in), down_proj is "output_adapter" (in = out = the linear's out),
 *   and with use_parallel_adapter every target is "parallel_adapter" (linear's in -> linear's out).
 *   Other Llama modules have no series mapping there (KeyError), so we refuse them for series.
 *   `use_adapterp` is declared in later BottleneckConfig versions but never read by
 *   `_find_and_replace`, so it changes nothing; we record it and ignore it.
 *   peft/src/peft/utils/save_and_load.py: bias "none" saves only keys containing "adapter_".
 */

import { f16ArrayToF32, f32ArrayToF16 } from './f16.ts';
import { parseMlcChatConfig } from './mlcChatConfig.ts';
import { parseSafetensorsHeader, readSafetensorsTensor } from './safetensors.ts';
import { parseTensorCache } from './tensorCache.ts';
import type { LlamaConfig } from './llamaConfig.ts';

// ---------------------------------------------------------------------------------------------
// Names

/** The Llama linear modules an adapter may target (Hugging Face names), in canonical order. */
export type AdapterModule = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';
export const ADAPTER_MODULES: readonly AdapterModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
/** Bottleneck modules LLM-Adapters can put a series adapter on for Llama. */
export const SERIES_MODULES: readonly AdapterModule[] = ['gate_proj', 'up_proj', 'down_proj'];

export type AdapterActivation = 'tanh' | 'relu' | 'silu' | 'gelu';
export type AdapterKind = 'lora' | 'series' | 'parallel';
export type AdapterRole = 'lora_A' | 'lora_B' | 'adapter_down' | 'adapter_up' | 'adapter_scaling';

export const ADAPTER_FORMAT = 'reasoning-lab-adapter';
export const ADAPTER_FORMAT_VERSION = 1;
export const ADAPTER_MANIFEST_FILE = 'adapter.json';
export const DEFAULT_ADAPTER_SHARD_BYTES = 32 * 1024 * 1024;

/** Anything wrong with an adapter: the message names the field, key or shape and what to do. */
export class AdapterError extends Error {
  override name = 'AdapterError';
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

function parseJson(input: unknown, source: string): Obj {
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) input = new TextDecoder().decode(input);
  let json = input;
  if (typeof input === 'string') {
    try {
      json = JSON.parse(input);
    } catch (e) {
      throw new AdapterError(`${source} is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!isObj(json)) throw new AdapterError(`${source} must be a JSON object`);
  return json;
}

/** `parent` of a module in Hugging Face's LlamaDecoderLayer. */
export function moduleParent(m: AdapterModule): 'self_attn' | 'mlp' {
  return m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn';
}

/** [in, out] features of a module's nn.Linear in a Llama of this shape. */
export function moduleFeatures(c: Pick<LlamaConfig, 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim'>, m: AdapterModule): [number, number] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj':
      return [c.hiddenSize, q];
    case 'k_proj':
    case 'v_proj':
      return [c.hiddenSize, kv];
    case 'o_proj':
      return [q, c.hiddenSize];
    case 'gate_proj':
    case 'up_proj':
      return [c.hiddenSize, c.intermediateSize];
    case 'down_proj':
      return [c.intermediateSize, c.hiddenSize];
  }
}

/** Our record name for one adapter tensor: `layers.N.<module>.<role>`. */
export function adapterTensorName(layer: number, module: AdapterModule, role: Exclude<AdapterRole, 'adapter_scaling'>): string {
  return `layers.${layer}.${module}.${role}`;
}

// ---------------------------------------------------------------------------------------------
// adapter_config.json

export interface PeftLoraConfig {
  peftType: 'LORA';
  kind: 'lora';
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  /** alpha / r, or alpha / sqrt(r) with rslora */
  scaling: number;
  fanInFanOut: boolean;
  targetModules: string[] | string;
  /** PEFT layers_to_transform: only these layer indices carry LoRA; null: all */
  layersToTransform: number[] | null;
  baseModelNameOrPath: string | null;
}

export interface PeftBottleneckConfig {
  peftType: 'BOTTLENECK';
  kind: 'series' | 'parallel';
  bottleneckSize: number;
  nonLinearity: AdapterActivation;
  /** a float, or "learned": one scalar per adapted module stored in the checkpoint */
  scaling: number | 'learned';
  useParallelAdapter: boolean;
  /** recorded only: LLM-Adapters' bottleneck.py declares but never reads it */
  useAdapterp: boolean;
  targetModules: string[] | string;
  baseModelNameOrPath: string | null;
}

export type PeftAdapterConfig = PeftLoraConfig | PeftBottleneckConfig;

/** ACT2FN names (transformers/activations.py) we implement, to our activation. */
const ACTIVATIONS: Record<string, AdapterActivation> = { tanh: 'tanh', relu: 'relu', silu: 'silu', swish: 'silu', gelu: 'gelu' };

function targetModulesField(cfg: Obj, source: string, fallback: string[] | null): string[] | string {
  const t = cfg.target_modules;
  if (t === undefined || t === null) {
    if (fallback) return fallback;
    throw new AdapterError(`${source}: target_modules is missing`);
  }
  if (typeof t === 'string') return t;
  if (Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === 'string')) return t as string[];
  throw new AdapterError(`${source}: target_modules must be a module name, a list of module names or a regex string`);
}

function empty(v: unknown): boolean {
  return v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0) || (isObj(v) && Object.keys(v).length === 0);
}

/**
 * Parses PEFT's adapter_config.json (object, text or bytes): peft_type LORA (Hugging Face PEFT) or
 * BOTTLENECK (LLM-Adapters). Unsupported options are refused by name, not ignored.
 */
export function parsePeftAdapterConfig(input: unknown, source = 'adapter_config.json'): PeftAdapterConfig {
  const cfg = parseJson(input, source);
  const peftType = typeof cfg.peft_type === 'string' ? cfg.peft_type.toUpperCase() : cfg.peft_type;
  const base = typeof cfg.base_model_name_or_path === 'string' ? cfg.base_model_name_or_path : null;
  const refuse = (field: string, why: string) => {
    if (!empty(cfg[field])) throw new AdapterError(`${source}: ${field} = ${JSON.stringify(cfg[field])} is not supported (${why})`);
  };
  const biasNone = () => {
    if (cfg.bias !== undefined && cfg.bias !== 'none') {
      throw new AdapterError(`${source}: bias = ${JSON.stringify(cfg.bias)} is not supported; only "none" (no trained biases)`);
    }
  };
  const positiveInt = (field: string, fallback?: number): number => {
    const v = cfg[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new AdapterError(`${source}: ${field} must be a positive integer, got ${JSON.stringify(cfg[field])}`);
    }
    return v;
  };
  const bool = (field: string): boolean => {
    const v = cfg[field];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw new AdapterError(`${source}: ${field} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };

  if (peftType === 'LORA') {
    biasNone();
    refuse('modules_to_save', 'extra trained modules such as a new LM head cannot be attached at run time');
    refuse('use_dora', 'DoRA is a different method');
    refuse('lora_bias', 'LoRA biases');
    refuse('rank_pattern', 'per-module ranks');
    refuse('alpha_pattern', 'per-module alphas');
    refuse('exclude_modules', 'module exclusion');
    refuse('trainable_token_indices', 'trained token embeddings');
    refuse('target_parameters', 'parameter targets');
    refuse('use_qalora', 'QA-LoRA');
    refuse('enable_lora', 'merged-linear LoRA of old PEFT');
    refuse('layer_replication', 'it changes the base model\'s layer stack');
    const r = positiveInt('r', 8);
    const alpha = cfg.lora_alpha ?? 8; // PEFT's default
    if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new AdapterError(`${source}: lora_alpha must be a number`);
    const useRslora = bool('use_rslora');
    let layersToTransform: number[] | null = null;
    const ltt = cfg.layers_to_transform;
    if (typeof ltt === 'number') layersToTransform = [ltt];
    else if (Array.isArray(ltt) && ltt.every((x) => Number.isInteger(x) && x >= 0)) layersToTransform = ltt as number[];
    else if (ltt !== undefined && ltt !== null) throw new AdapterError(`${source}: layers_to_transform must be a layer index or a list of them`);
    return {
      peftType: 'LORA',
      kind: 'lora',
      r,
      loraAlpha: alpha,
      useRslora,
      scaling: useRslora ? alpha / Math.sqrt(r) : alpha / r,
      fanInFanOut: bool('fan_in_fan_out'),
      // PEFT's default for llama (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING) is q_proj, v_proj
      targetModules: targetModulesField(cfg, source, ['q_proj', 'v_proj']),
      layersToTransform,
      baseModelNameOrPath: base,
    };
  }

  if (peftType === 'BOTTLENECK') {
    biasNone();
    refuse('modules_to_save', 'extra trained modules cannot be attached at run time');
    const bottleneckSize = positiveInt('bottleneck_size', 256);
    const act = cfg.non_linearity ?? 'tanh';
    if (typeof act !== 'string' || !(act.toLowerCase() in ACTIVATIONS)) {
      throw new AdapterError(`${source}: non_linearity ${JSON.stringify(act)} is not supported; use one of tanh, relu, silu, gelu`);
    }
    const s = cfg.scaling ?? 1.0;
    if (!(typeof s === 'number' && Number.isFinite(s)) && s !== 'learned') {
      throw new AdapterError(`${source}: scaling must be a number or "learned", got ${JSON.stringify(s)}`);
    }
    const useParallelAdapter = bool('use_parallel_adapter');
    const targetModules = targetModulesField(cfg, source, null);
    return {
      peftType: 'BOTTLENECK',
      kind: useParallelAdapter ? 'parallel' : 'series',
      bottleneckSize,
      nonLinearity: ACTIVATIONS[act.toLowerCase()],
      scaling: s as number | 'learned',
      useParallelAdapter,
      useAdapterp: bool('use_adapterp'),
      targetModules,
      baseModelNameOrPath: base,
    };
  }

  throw new AdapterError(
    `${source}: peft_type ${JSON.stringify(peftType)} is not supported; supported: "LORA" (PEFT LoRA) and "BOTTLENECK" (LLM-Adapters series/parallel adapters)`,
  );
}

/** Every module key of Hugging Face's LlamaForCausalLM (named_modules), for target matching. */
function llamaModuleKeys(numLayers: number): string[] {
  const keys = ['model', 'model.embed_tokens', 'model.layers', 'model.norm', 'model.rotary_emb', 'lm_head'];
  for (let i = 0; i < numLayers; i++) {
    const p = `model.layers.${i}`;
    keys.push(p, `${p}.self_attn`, `${p}.mlp`, `${p}.input_layernorm`, `${p}.post_attention_layernorm`, `${p}.mlp.act_fn`, `${p}.self_attn.rotary_emb`);
    for (const m of ADAPTER_MODULES) keys.push(`${p}.${moduleParent(m)}.${m}`);
  }
  return keys;
}

const LINEAR_KEY_RE = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$/;

/**
 * Which (layer, module) pairs the config adapts, evaluated like the library that trained it:
 * PEFT LoRA (list: key == t or key ends with "." + t) or LLM-Adapters (list: key ends with t);
 * a string is a regex that must match the whole key. @returns per layer, the set of modules.
 */
export function resolveTargets(cfg: PeftAdapterConfig, numLayers: number, source = 'adapter_config.json'): Set<AdapterModule>[] {
  const keys = llamaModuleKeys(numLayers);
  const perLayer = Array.from({ length: numLayers }, () => new Set<AdapterModule>());
  const tm = cfg.targetModules;
  let match: (key: string) => boolean;
  if (typeof tm === 'string') {
    if (cfg.peftType === 'LORA' && tm === 'all-linear') {
      match = (k) => LINEAR_KEY_RE.test(k);
    } else {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${tm})$`);
      } catch (e) {
        throw new AdapterError(`${source}: target_modules regex ${JSON.stringify(tm)} is not valid: ${(e as Error).message}`);
      }
      match = (k) => re.test(k);
    }
  } else {
    for (const t of tm) {
      const hit = keys.some((k) => (cfg.peftType === 'LORA' ? k === t || k.endsWith(`.${t}`) : k.endsWith(t)));
      if (!hit) {
        throw new AdapterError(`${source}: unknown target module ${JSON.stringify(t)}; a Llama has ${ADAPTER_MODULES.join(', ')}`);
      }
    }
    match = (k) => tm.some((t) => (cfg.peftType === 'LORA' ? k === t || k.endsWith(`.${t}`) : k.endsWith(t)));
  }
  let any = false;
  for (const k of keys) {
    if (!match(k)) continue;
    const m = LINEAR_KEY_RE.exec(k);
    if (!m) {
      throw new AdapterError(`${source}: target_modules selects ${k}, which is not supported; adapters attach to ${ADAPTER_MODULES.join(', ')}`);
    }
    const layer = Number(m[1]);
    const mod = m[2] as AdapterModule;
    if (cfg.peftType === 'LORA' && cfg.layersToTransform && !cfg.layersToTransform.includes(layer)) continue;
    if (cfg.kind === 'series' && !SERIES_MODULES.includes(mod)) {
      throw new AdapterError(
        `${source}: a series bottleneck adapter on ${mod} is not supported; LLM-Adapters defines series adapters for Llama only on gate_proj, up_proj (input side) and down_proj (output side)`,
      );
    }
    perLayer[layer].add(mod);
    any = true;
  }
  if (!any) throw new AdapterError(`${source}: target_modules ${JSON.stringify(tm)} selects no module of this model`);
  return perLayer;
}

// ---------------------------------------------------------------------------------------------
// adapter_model.safetensors keys

const PEFT_KEY_RE =
  /^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.(?:(lora_A|lora_B|adapter_down|adapter_up)(?:\.default)?\.weight|(adapter_scaling)(?:\.default)?)$/;

/**
 * (layer, module, role) of a PEFT checkpoint key such as
 * `base_model.model.model.layers.3.mlp.up_proj.adapter_down.weight`; null when it is not one.
 */
export function parsePeftTensorKey(key: string): { layer: number; module: AdapterModule; role: AdapterRole } | null {
  const m = PEFT_KEY_RE.exec(key);
  if (!m) return null;
  const module = m[3] as AdapterModule;
  if (moduleParent(module) !== m[2]) return null;
  return { layer: Number(m[1]), module, role: (m[4] ?? m[5]) as AdapterRole };
}

// ---------------------------------------------------------------------------------------------
// Our format

export interface AdapterTensorRecord {
  name: string; // layers.N.<module>.<lora_A|lora_B|adapter_down|adapter_up>
  shape: number[];
  dtype: 'float32' | 'float16';
  byteOffset: number;
  nbytes: number;
}

export interface AdapterShard {
  dataPath: string; // adapter_shard_N.bin
  nbytes: number;
  sha256: string;
  records: AdapterTensorRecord[];
}

export interface AdapterBaseInfo {
  fingerprint: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * adapter.json. Every layer carries every module of `targets` (a PEFT adapter that skipped a layer
 * gets zero lora_B / adapter_up there, which leaves that layer's output unchanged), so the engine
 * can treat layers uniformly. Tensor shapes: lora_A [r, in], lora_B [out, r]; adapter_down
 * [b, d_in], adapter_up [d_out, b] with d_in/d_out the linear's in/out for parallel, both the
 * linear's in for series on gate/up and both its out for series on down_proj.
 */
export interface AdapterManifest {
  format: typeof ADAPTER_FORMAT;
  version: typeof ADAPTER_FORMAT_VERSION;
  kind: AdapterKind;
  name: string;
  base: AdapterBaseInfo;
  targets: AdapterModule[];
  /** LoRA: y = W x + scaling · B (A x) */
  lora?: { r: number; alpha: number; rslora: boolean; scaling: number };
  /** Bottleneck: act and s; `scales[layer][i]` is s for targets[i] (the float, or the learned value) */
  bottleneck?: { bottleneckSize: number; nonLinearity: AdapterActivation; scaling: number | 'learned'; scales: number[][] };
  /** Where it came from: the original adapter_config.json, verbatim. */
  source: { peftType: 'LORA' | 'BOTTLENECK'; baseModelNameOrPath: string | null; config: Obj };
  shards: AdapterShard[];
}

// ---------------------------------------------------------------------------------------------
// Hashing

function toBytes(b: Uint8Array | ArrayBuffer): Uint8Array {
  return b instanceof Uint8Array ? b : new Uint8Array(b);
}

/** SHA-256 as lowercase hex, with WebCrypto (Node 20+ and browsers). */
export async function sha256Hex(bytes: Uint8Array | ArrayBuffer | string): Promise<string> {
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : toBytes(bytes);
  // Copy into a fresh ArrayBuffer-backed view (subtle.digest refuses SharedArrayBuffer views).
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new Uint8Array(data));
  return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * The identity of a converted base model: SHA-256 over a canonical JSON of the architecture
 * (from mlc-chat-config.json: model_type, quantization, hidden/intermediate sizes, layers, heads,
 * kv heads, head dim, vocab, eps, rope theta, tied embeddings) and of the tensor cache (every
 * shard's dataPath and md5sum / sha256 when present, every record's name, shape and dtype).
 * Context window, tokenizer and conversation settings are left out: they do not change weights.
 * Note: it names one conversion; the same weights in another quantization mode are another base.
 */
export async function baseFingerprint(chatConfigJson: unknown, tensorCacheJson: unknown): Promise<string> {
  const info = parseMlcChatConfig(chatConfigJson);
  const cache = parseTensorCache(tensorCacheJson);
  const c = info.config;
  const canonical = {
    fingerprint: 1,
    model_type: 'llama',
    quantization: info.quantization,
    arch: [c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize, c.rmsNormEps, c.ropeTheta, c.tieWordEmbeddings],
    shards: cache.records.map((s) => ({
      path: s.dataPath,
      md5: s.md5sum ?? null,
      sha256: s.sha256 ?? null,
      records: s.records.map((r) => [r.name, r.shape, r.dtype]),
    })),
  };
  return sha256Hex(JSON.stringify(canonical));
}

function baseInfoFrom(c: LlamaConfig, fingerprint: string): AdapterBaseInfo {
  return {
    fingerprint,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
  };
}

// ---------------------------------------------------------------------------------------------
// Conversion

export interface ConvertAdapterInput {
  /** adapter_config.json: object, text or bytes */
  adapterConfig: unknown;
  /** adapter_model.safetensors bytes */
  adapterWeights: Uint8Array | ArrayBuffer;
  /** the converted base's mlc-chat-config.json and tensor-cache.json (objects or text) */
  baseChatConfig: unknown;
  baseTensorCache: unknown;
  /** shown in the app; default: the config's base_model_name_or_path-free "adapter" */
  name?: string;
  /** stored dtype: "auto" keeps F16 as float16 and turns F32 / BF16 into float32 (exact) */
  dtype?: 'auto' | 'float32' | 'float16';
  maxShardBytes?: number;
}

export interface ConvertedAdapter {
  manifest: AdapterManifest;
  /** shard files by dataPath */
  shards: Map<string, Uint8Array>;
}

function shapeStr(s: number[]): string {
  return `[${s.join(', ')}]`;
}

/** Transposes a row-major [rows, cols] matrix. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

/**
 * PEFT adapter -> our adapter, checked against the base: every error names the key, field or
 * shape at fault. Throws AdapterError; returns the manifest and shard bytes (nothing is written).
 */
export async function convertPeftAdapter(input: ConvertAdapterInput): Promise<ConvertedAdapter> {
  const cfgObj = parseJson(input.adapterConfig, 'adapter_config.json');
  const cfg = parsePeftAdapterConfig(cfgObj);
  let baseInfo;
  try {
    baseInfo = parseMlcChatConfig(input.baseChatConfig);
    parseTensorCache(input.baseTensorCache);
  } catch (e) {
    throw new AdapterError(`the base model is not usable: ${(e as Error).message}`);
  }
  const base = baseInfo.config;
  const fingerprint = await baseFingerprint(input.baseChatConfig, input.baseTensorCache);

  const file = toBytes(input.adapterWeights);
  let header;
  try {
    header = parseSafetensorsHeader(file, { source: 'adapter_model.safetensors' });
  } catch (e) {
    throw new AdapterError((e as Error).message);
  }

  // Index the checkpoint's tensors by (layer, module, role); refuse anything else.
  const found = new Map<string, string>(); // "layer.module.role" -> key
  let maxLayer = -1;
  for (const key of header.tensors.keys()) {
    const p = parsePeftTensorKey(key);
    if (!p) {
      throw new AdapterError(
        `adapter_model.safetensors: unexpected tensor ${key}; only LoRA (lora_A/lora_B) and bottleneck (adapter_down/adapter_up/adapter_scaling) weights of a Llama's q/k/v/o/gate/up/down projections are supported`,
      );
    }
    const loraRole = p.role === 'lora_A' || p.role === 'lora_B';
    if (loraRole !== (cfg.kind === 'lora')) {
      throw new AdapterError(`adapter_model.safetensors: tensor ${key} does not belong to a ${cfg.peftType} adapter (peft_type in adapter_config.json)`);
    }
    if (p.layer >= base.numLayers) {
      throw new AdapterError(
        `layer count mismatch: adapter_model.safetensors has ${key} (layer ${p.layer}) but the base model has ${base.numLayers} layers`,
      );
    }
    maxLayer = Math.max(maxLayer, p.layer);
    found.set(`${p.layer}.${p.module}.${p.role}`, key);
  }

  const perLayer = resolveTargets(cfg, base.numLayers);
  const targets = ADAPTER_MODULES.filter((m) => perLayer.some((s) => s.has(m)));
  const roles: AdapterRole[] = cfg.kind === 'lora' ? ['lora_A', 'lora_B'] : ['adapter_down', 'adapter_up'];
  if (cfg.kind !== 'lora' && cfg.scaling === 'learned') roles.push('adapter_scaling');

  // Every key the config implies must be there, and nothing else.
  const expectedKeys = new Set<string>();
  for (let l = 0; l < base.numLayers; l++) {
    for (const m of perLayer[l]) {
      for (const role of roles) {
        const id = `${l}.${m}.${role}`;
        expectedKeys.add(id);
        if (!found.has(id)) {
          const key = `base_model.model.model.layers.${l}.${moduleParent(m)}.${m}.${role}${role === 'adapter_scaling' ? '' : '.weight'}`;
          const hint =
            maxLayer >= 0 && l > maxLayer
              ? ` (the adapter has weights up to layer ${maxLayer}, the base model has ${base.numLayers} layers: layer count mismatch?)`
              : '';
          throw new AdapterError(`adapter_model.safetensors: missing key ${key}${hint}`);
        }
      }
    }
  }
  for (const [id, key] of found) {
    if (!expectedKeys.has(id)) {
      throw new AdapterError(
        `adapter_model.safetensors: tensor ${key} is not selected by target_modules ${JSON.stringify(cfg.targetModules)} in adapter_config.json` +
          (id.endsWith('adapter_scaling') ? ' (adapter_scaling is only used with scaling "learned")' : ''),
      );
    }
  }

  const sourceDtypes = new Set([...found.values()].map((k) => header.tensors.get(k)!.dtype));
  const outDtype: 'float32' | 'float16' =
    input.dtype === 'float16' || input.dtype === 'float32' ? input.dtype : sourceDtypes.size === 1 && sourceDtypes.has('F16') ? 'float16' : 'float32';

  const read = (layer: number, m: AdapterModule, role: AdapterRole): { data: Float32Array; shape: number[]; key: string } => {
    const key = found.get(`${layer}.${m}.${role}`)!;
    const info = header.tensors.get(key)!;
    try {
      return { data: readSafetensorsTensor(file, key, header), shape: info.shape, key };
    } catch (e) {
      throw new AdapterError(`adapter_model.safetensors: ${(e as Error).message}`);
    }
  };
  const shapeError = (key: string, got: number[], want: number[], why: string) => {
    const i = want.findIndex((w, j) => w === base.hiddenSize && got.length === want.length && got[j] !== w);
    const hidden = i >= 0 ? `hidden size mismatch: the adapter has ${got[i]} where the base's hidden size is ${base.hiddenSize}; ` : '';
    return new AdapterError(
      `module shape mismatch: ${hidden}${key} has shape ${shapeStr(got)} but the base model needs ${shapeStr(want)} (${why}; ` +
        `base: hidden size ${base.hiddenSize}, intermediate size ${base.intermediateSize}, ${base.numHeads} heads, ${base.numKvHeads} kv heads, head dim ${base.headDim})`,
    );
  };

  // Collect our tensors in canonical order: layer, module, role.
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  const scales: number[][] = [];
  for (let l = 0; l < base.numLayers; l++) {
    const layerScales: number[] = [];
    for (const m of targets) {
      const [inF, outF] = moduleFeatures(base, m);
      const present = perLayer[l].has(m);
      if (cfg.kind === 'lora') {
        const r = cfg.r;
        const shapes: Record<'lora_A' | 'lora_B', [number, number]> = { lora_A: [r, inF], lora_B: [outF, r] };
        for (const role of ['lora_A', 'lora_B'] as const) {
          const want = shapes[role];
          let data: Float32Array;
          if (!present) {
            data = new Float32Array(want[0] * want[1]); // zero: this layer is not adapted
          } else {
            const t = read(l, m, role);
            if (t.shape.length === 2 && t.shape[0] === want[0] && t.shape[1] === want[1]) {
              data = t.data;
            } else if (cfg.fanInFanOut && t.shape.length === 2 && t.shape[0] === want[1] && t.shape[1] === want[0]) {
              data = transpose(t.data, want[1], want[0]); // fan_in_fan_out layout [in, r] / [r, out]
            } else {
              throw shapeError(t.key, t.shape, want, role === 'lora_A' ? `lora_A is [r = ${r}, in features of ${m}]` : `lora_B is [out features of ${m}, r = ${r}]`);
            }
          }
          tensors.push({ name: adapterTensorName(l, m, role), shape: want, data });
        }
      } else {
        const b = cfg.bottleneckSize;
        const [dIn, dOut] = cfg.kind === 'parallel' ? [inF, outF] : m === 'down_proj' ? [outF, outF] : [inF, inF];
        const shapes: Record<'adapter_down' | 'adapter_up', [number, number]> = { adapter_down: [b, dIn], adapter_up: [dOut, b] };
        for (const role of ['adapter_down', 'adapter_up'] as const) {
          const want = shapes[role];
          let data: Float32Array;
          if (!present) {
            data = new Float32Array(want[0] * want[1]);
          } else {
            const t = read(l, m, role);
            if (!(t.shape.length === 2 && t.shape[0] === want[0] && t.shape[1] === want[1])) {
              const kindWhy =
                cfg.kind === 'parallel'
                  ? `parallel adapter: ${role} maps ${role === 'adapter_down' ? `the linear's in features to bottleneck_size ${b}` : `bottleneck_size ${b} to the linear's out features`}`
                  : `series adapter on ${m}: ${role} works on the linear's ${m === 'down_proj' ? 'output' : 'input'} with bottleneck_size ${b}`;
              throw shapeError(t.key, t.shape, want, kindWhy);
            }
            data = t.data;
          }
          tensors.push({ name: adapterTensorName(l, m, role), shape: want, data });
        }
        if (cfg.scaling === 'learned') {
          if (present) {
            const t = read(l, m, 'adapter_scaling');
            if (t.data.length !== 1) throw shapeError(t.key, t.shape, [1], 'adapter_scaling is one learned scalar');
            layerScales.push(t.data[0]);
          } else layerScales.push(1);
        } else layerScales.push(cfg.scaling);
      }
    }
    scales.push(layerScales);
  }

  // Lay the tensors out in shards, 16-byte aligned, splitting at maxShardBytes.
  const maxShard = input.maxShardBytes ?? DEFAULT_ADAPTER_SHARD_BYTES;
  const elemBytes = outDtype === 'float16' ? 2 : 4;
  const groups: { name: string; shape: number[]; data: Float32Array; offset: number }[][] = [[]];
  let offset = 0;
  for (const t of tensors) {
    const nbytes = t.data.length * elemBytes;
    if (offset > 0 && offset + nbytes > maxShard) {
      groups.push([]);
      offset = 0;
    }
    groups[groups.length - 1].push({ ...t, offset });
    offset = Math.ceil((offset + nbytes) / 16) * 16;
  }
  const shards = new Map<string, Uint8Array>();
  const shardEntries: AdapterShard[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    const last = g[g.length - 1];
    const size = last ? last.offset + last.data.length * elemBytes : 0;
    const bytes = new Uint8Array(size);
    const records: AdapterTensorRecord[] = g.map((t) => {
      const raw = outDtype === 'float16' ? f32ArrayToF16(t.data) : t.data;
      const src = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
      bytes.set(src, t.offset);
      return { name: t.name, shape: t.shape, dtype: outDtype, byteOffset: t.offset, nbytes: src.length };
    });
    const dataPath = `adapter_shard_${i}.bin`;
    shards.set(dataPath, bytes);
    shardEntries.push({ dataPath, nbytes: size, sha256: await sha256Hex(bytes), records });
  }

  const manifest: AdapterManifest = {
    format: ADAPTER_FORMAT,
    version: ADAPTER_FORMAT_VERSION,
    kind: cfg.kind,
    name: input.name ?? defaultAdapterName(cfg),
    base: baseInfoFrom(base, fingerprint),
    targets,
    source: { peftType: cfg.peftType, baseModelNameOrPath: cfg.baseModelNameOrPath, config: cfgObj },
    shards: shardEntries,
  };
  if (cfg.kind === 'lora') {
    manifest.lora = { r: cfg.r, alpha: cfg.loraAlpha, rslora: cfg.useRslora, scaling: cfg.scaling };
  } else {
    manifest.bottleneck = { bottleneckSize: cfg.bottleneckSize, nonLinearity: cfg.nonLinearity, scaling: cfg.scaling, scales };
  }
  return { manifest, shards };
}

function defaultAdapterName(cfg: PeftAdapterConfig): string {
  const t = Array.isArray(cfg.targetModules) ? cfg.targetModules.join(',') : cfg.targetModules;
  return cfg.kind === 'lora' ? `LoRA r=${cfg.r} (${t})` : `${cfg.kind === 'series' ? 'Series' : 'Parallel'} adapter b=${cfg.bottleneckSize} (${t})`;
}

// ---------------------------------------------------------------------------------------------
// Loading our format

/** Parses and structurally checks adapter.json (object, text or bytes). */
export function parseAdapterManifest(input: unknown, source = ADAPTER_MANIFEST_FILE): AdapterManifest {
  const m = parseJson(input, source);
  const bad = (why: string): never => {
    throw new AdapterError(`${source}: ${why}`);
  };
  if (m.format !== ADAPTER_FORMAT) bad(`format must be "${ADAPTER_FORMAT}", got ${JSON.stringify(m.format)} (is this a converted adapter? convert PEFT adapters with npm run convert-adapter)`);
  if (m.version !== ADAPTER_FORMAT_VERSION) bad(`version ${JSON.stringify(m.version)} is not supported (this app reads version ${ADAPTER_FORMAT_VERSION})`);
  if (m.kind !== 'lora' && m.kind !== 'series' && m.kind !== 'parallel') bad(`kind must be lora, series or parallel, got ${JSON.stringify(m.kind)}`);
  if (typeof m.name !== 'string') bad('name must be a string');
  const b = m.base;
  if (!isObj(b) || typeof b.fingerprint !== 'string') bad('base.fingerprint is missing');
  for (const k of ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim']) {
    if (!Number.isInteger((b as Obj)[k])) bad(`base.${k} must be an integer`);
  }
  if (!Array.isArray(m.targets) || m.targets.length === 0 || !m.targets.every((t) => ADAPTER_MODULES.includes(t as AdapterModule))) {
    bad(`targets must list modules among ${ADAPTER_MODULES.join(', ')}`);
  }
  if (m.kind === 'lora') {
    const l = m.lora;
    if (!isObj(l) || !Number.isInteger(l.r) || typeof l.scaling !== 'number') bad('lora.r and lora.scaling are required for kind lora');
  } else {
    const bn = m.bottleneck;
    if (!isObj(bn) || !Number.isInteger(bn.bottleneckSize) || !Object.values(ACTIVATIONS).includes(bn.nonLinearity as AdapterActivation)) {
      bad('bottleneck.bottleneckSize and bottleneck.nonLinearity are required for series and parallel adapters');
    }
    const sc = (bn as Obj).scales;
    if (!Array.isArray(sc) || sc.length !== (b as Obj).numLayers || !sc.every((r) => Array.isArray(r) && r.length === (m.targets as unknown[]).length)) {
      bad('bottleneck.scales must hold one scale per layer and target');
    }
  }
  if (!Array.isArray(m.shards) || m.shards.length === 0) bad('shards must be a non-empty list');
  for (const s of m.shards as unknown[]) {
    if (!isObj(s) || typeof s.dataPath !== 'string' || !Number.isInteger(s.nbytes) || !Array.isArray(s.records)) bad('every shard needs dataPath, nbytes and records');
    const sh = s as Obj;
    if (sh.dataPath === '' || (sh.dataPath as string).includes('/') || (sh.dataPath as string).includes('\\')) bad(`shard dataPath ${JSON.stringify(sh.dataPath)} must be a plain file name`);
    for (const r of sh.records as unknown[]) {
      if (!isObj(r) || typeof r.name !== 'string' || !Array.isArray(r.shape) || (r.dtype !== 'float32' && r.dtype !== 'float16')) bad('every record needs name, shape and dtype float32 or float16');
      const rec = r as unknown as AdapterTensorRecord;
      const n = rec.shape.reduce((a, x) => a * x, 1) * (rec.dtype === 'float16' ? 2 : 4);
      if (rec.nbytes !== n || !Number.isInteger(rec.byteOffset) || rec.byteOffset + rec.nbytes > (sh.nbytes as number)) {
        bad(`record ${rec.name}: byteOffset/nbytes do not fit its shape and shard`);
      }
    }
  }
  return m as unknown as AdapterManifest;
}

/**
 * Refuses an adapter made for another base: compares the recorded fingerprint and shape with the
 * base's mlc-chat-config.json and tensor-cache.json. @throws AdapterError naming the difference
 */
export async function checkAdapterAgainstBase(manifest: AdapterManifest, baseChatConfig: unknown, baseTensorCache: unknown): Promise<void> {
  const c = parseMlcChatConfig(baseChatConfig).config;
  const diffs: string[] = [];
  const want = manifest.base;
  const pairs: [string, number, number][] = [
    ['hidden size', want.hiddenSize, c.hiddenSize],
    ['intermediate size', want.intermediateSize, c.intermediateSize],
    ['layer count', want.numLayers, c.numLayers],
    ['attention heads', want.numHeads, c.numHeads],
    ['kv heads', want.numKvHeads, c.numKvHeads],
    ['head dim', want.headDim, c.headDim],
  ];
  for (const [what, a, b] of pairs) if (a !== b) diffs.push(`${what} ${a} (adapter) vs ${b} (base)`);
  if (diffs.length) {
    throw new AdapterError(`this adapter was made for a different base model: ${diffs.join(', ')}`);
  }
  const fp = await baseFingerprint(baseChatConfig, baseTensorCache);
  if (fp !== want.fingerprint) {
    throw new AdapterError(
      `this adapter was made for a different base model: its base fingerprint is ${want.fingerprint.slice(0, 16)}…, ` +
        `the loaded base's is ${fp.slice(0, 16)}… (same shape, different weights or quantization); convert the adapter against this base with npm run convert-adapter`,
    );
  }
}

/**
 * Decodes every record of the adapter's shards to f32, by record name. Checks each shard's length
 * and (unless verify is false) its sha256.
 */
export async function readAdapterTensors(
  manifest: AdapterManifest,
  shards: Map<string, Uint8Array | ArrayBuffer>,
  opts: { verify?: boolean } = {},
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const s of manifest.shards) {
    const raw = shards.get(s.dataPath);
    if (!raw) throw new AdapterError(`adapter shard ${s.dataPath} is missing`);
    const bytes = toBytes(raw);
    if (bytes.length !== s.nbytes) throw new AdapterError(`adapter shard ${s.dataPath} has ${bytes.length} bytes, adapter.json says ${s.nbytes} (truncated?)`);
    if (opts.verify !== false && (await sha256Hex(bytes)) !== s.sha256) {
      throw new AdapterError(`adapter shard ${s.dataPath} is corrupt: its sha256 does not match adapter.json`);
    }
    for (const r of s.records) {
      // An aligned copy with its own buffer (Node Buffers share a pooled ArrayBuffer; .slice there is a view).
      const slice = new Uint8Array(bytes.subarray(r.byteOffset, r.byteOffset + r.nbytes));
      out.set(r.name, r.dtype === 'float16' ? f16ArrayToF32(new Uint16Array(slice.buffer)) : new Float32Array(slice.buffer));
    }
  }
  return out;
}

