/**
 * PEFT checkpoints as they come in: `adapter_config.json` (Hugging Face PEFT LoRA, LLM-Adapters
 * bottleneck series/parallel), which modules it targets, and the tensor keys of
 * `adapter_model.safetensors`. adapterConversion.ts turns them into our format.
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
 */

import {
  ADAPTER_MODULES,
  AdapterError,
  moduleParent,
  parseAdapterJson,
  SERIES_MODULES,
  type AdapterActivation,
  type AdapterModule,
  type AdapterRole,
} from './adapterFormat.ts';
import { isJsonObject as isObj, type JsonObject as Obj } from './jsonObject.ts';

/** The files of a PEFT adapter directory (`save_pretrained`). */
export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';
/** Older PEFT's pickled weights (torch.save): read by formats/torchPickle.ts, which runs no pickled code. */
export const PEFT_PICKLED_WEIGHTS_FILE = 'adapter_model.bin';

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
export function parsePeftAdapterConfig(input: unknown, source = PEFT_CONFIG_FILE): PeftAdapterConfig {
  const cfg = parseAdapterJson(input, source);
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
    refuse('layer_replication', "it changes the base model's layer stack");
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
export function resolveTargets(cfg: PeftAdapterConfig, numLayers: number, source = PEFT_CONFIG_FILE): Set<AdapterModule>[] {
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
