/**
 * A trained adapter in PEFT's on-disk layout, loadable by the libraries the paper used:
 * adapter_config.json + adapter_model.safetensors (F32, metadata {"format": "pt"} as PEFT's
 * save_pretrained writes it).
 *
 * Keys are what get_peft_model_state_dict saves for a LlamaForCausalLM wrapped in a PeftModel
 * (the adapter name "default" removed):
 *   LoRA (huggingface/peft):  base_model.model.model.layers.N.<self_attn|mlp>.<module>.lora_A.weight [r, in]
 *                             … .lora_B.weight [out, r]
 *   Bottleneck (LLM-Adapters peft/src/peft/tuners/bottleneck.py @0059d7c, the nn.Linear children
 *   adapter_down = Linear(d_in, b), adapter_up = Linear(b, d_out)):
 *                             … .<module>.adapter_down.weight [b, d_in], … .adapter_up.weight [d_out, b]
 * Config fields: PEFT's LoraConfig (peft_type "LORA", r, lora_alpha, lora_dropout, target_modules,
 * bias "none", fan_in_fan_out false, …) and LLM-Adapters' BottleneckConfig (peft_type "BOTTLENECK",
 * bottleneck_size, non_linearity, adapter_dropout, use_parallel_adapter, use_adapterp, target_modules,
 * scaling, bias "none", init_weights).
 */
import { moduleParent, type AdapterActivation, type AdapterModule } from './adapterFormat.ts';
import { writeSafetensors, type SafetensorsInput } from './safetensors.ts';

export type PeftExportConfig =
  | { kind: 'lora'; r: number; alpha: number; dropout: number; targets: AdapterModule[] }
  | {
      kind: 'series' | 'parallel';
      bottleneckSize: number;
      nonLinearity: AdapterActivation;
      dropout: number;
      scaling: number;
      targets: AdapterModule[];
      initWeights?: 'bert' | 'mam_adapter';
    };

export interface PeftExportTensor {
  layer: number;
  module: AdapterModule;
  role: 'lora_A' | 'lora_B' | 'adapter_down' | 'adapter_up';
  shape: [number, number];
  data: Float32Array;
}

export interface PeftExport {
  adapterConfig: Record<string, unknown>;
  /** adapter_config.json's text (pretty-printed like PEFT's to_json_string) */
  adapterConfigJson: string;
  /** adapter_model.safetensors */
  adapterWeights: Uint8Array;
}

/** PEFT's key for one adapter tensor. */
export function peftTensorKey(layer: number, module: AdapterModule, role: PeftExportTensor['role']): string {
  return `base_model.model.model.layers.${layer}.${moduleParent(module)}.${module}.${role}.weight`;
}

export function peftAdapterConfig(cfg: PeftExportConfig, baseModelNameOrPath: string | null = null): Record<string, unknown> {
  if (cfg.kind === 'lora') {
    return {
      base_model_name_or_path: baseModelNameOrPath,
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      lora_alpha: cfg.alpha,
      lora_dropout: cfg.dropout,
      modules_to_save: null,
      peft_type: 'LORA',
      r: cfg.r,
      target_modules: [...cfg.targets],
      task_type: 'CAUSAL_LM',
    };
  }
  return {
    adapter_dropout: cfg.dropout,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    bottleneck_size: cfg.bottleneckSize,
    inference_mode: true,
    init_weights: cfg.initWeights ?? 'bert',
    modules_to_save: null,
    non_linearity: cfg.nonLinearity,
    peft_type: 'BOTTLENECK',
    scaling: cfg.scaling,
    target_modules: [...cfg.targets],
    task_type: 'CAUSAL_LM',
    use_adapterp: false,
    use_parallel_adapter: cfg.kind === 'parallel',
  };
}

/** The two files of a PEFT adapter folder. Refuses tensors that do not fit the config, by name. */
export function exportPeftAdapter(cfg: PeftExportConfig, tensors: PeftExportTensor[], opts: { baseModelNameOrPath?: string | null } = {}): PeftExport {
  const roles = cfg.kind === 'lora' ? ['lora_A', 'lora_B'] : ['adapter_down', 'adapter_up'];
  const inputs: SafetensorsInput[] = tensors.map((t) => {
    const key = peftTensorKey(t.layer, t.module, t.role);
    if (!roles.includes(t.role)) throw new Error(`${key}: a ${cfg.kind} adapter has no ${t.role}`);
    if (!cfg.targets.includes(t.module)) throw new Error(`${key}: ${t.module} is not among target_modules (${cfg.targets.join(', ')})`);
    const inner = cfg.kind === 'lora' ? cfg.r : cfg.bottleneckSize;
    const innerDim = t.role === 'lora_A' || t.role === 'adapter_down' ? t.shape[0] : t.shape[1];
    if (innerDim !== inner) throw new Error(`${key}: shape [${t.shape}] does not have ${cfg.kind === 'lora' ? 'r' : 'bottleneck_size'} = ${inner}`);
    if (t.data.length !== t.shape[0] * t.shape[1]) throw new Error(`${key}: ${t.data.length} values for shape [${t.shape}]`);
    return { name: key, dtype: 'F32', shape: [...t.shape], data: t.data };
  });
  const adapterConfig = peftAdapterConfig(cfg, opts.baseModelNameOrPath ?? null);
  return { adapterConfig, adapterConfigJson: JSON.stringify(adapterConfig, null, 2) + '\n', adapterWeights: writeSafetensors(inputs, { format: 'pt' }) };
}
