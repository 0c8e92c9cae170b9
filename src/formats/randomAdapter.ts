/**
 * Seeded random adapters in PEFT's on-disk layout (adapter_config.json + adapter_model.safetensors),
 * for the offline demo and the tests: LoRA as PEFT writes it, series and parallel bottleneck
 * adapters as LLM-Adapters writes them. Non-zero everywhere (PEFT initialises lora_B to zero; a test
 * of the adapter path needs an adapter that changes something).
 */
import type { LlamaConfig } from './llamaConfig.ts';
import { moduleFeatures, moduleParent, type AdapterModule, type AdapterKind, type AdapterActivation } from './adapterFormat.ts';
import { writeSafetensors, type SafetensorsInput } from './safetensors.ts';
import { seededRng } from './random.ts';

export interface RandomAdapterOptions {
  seed?: number;
  /** LoRA rank or bottleneck size. */
  r?: number;
  alpha?: number;
  targets?: AdapterModule[];
  nonLinearity?: AdapterActivation;
  scaling?: number | 'learned';
  useRslora?: boolean;
  std?: number;
}

/** The paper's target modules per kind (GUIDE.md: LLM-Adapters' recipe). */
export const PAPER_TARGETS: Record<AdapterKind, AdapterModule[]> = {
  lora: ['q_proj', 'k_proj', 'v_proj', 'up_proj', 'down_proj'],
  series: ['up_proj', 'gate_proj'],
  parallel: ['up_proj', 'down_proj'],
};

export function randomPeftAdapter(
  c: LlamaConfig,
  kind: AdapterKind,
  o: RandomAdapterOptions = {},
): { adapterConfig: Record<string, unknown>; adapterWeights: Uint8Array } {
  const rng = seededRng(o.seed ?? 1);
  const r = o.r ?? (kind === 'lora' ? 4 : 8);
  const targets = o.targets ?? PAPER_TARGETS[kind];
  const std = o.std ?? 0.2;
  const tensors: SafetensorsInput[] = [];
  const rand = (n: number) => rng.normalArray(n, std);
  for (let l = 0; l < c.numLayers; l++) {
    for (const m of targets) {
      const key = `base_model.model.model.layers.${l}.${moduleParent(m)}.${m}`;
      const [inF, outF] = moduleFeatures(c, m);
      if (kind === 'lora') {
        tensors.push({ name: `${key}.lora_A.weight`, dtype: 'F32', shape: [r, inF], data: rand(r * inF) });
        tensors.push({ name: `${key}.lora_B.weight`, dtype: 'F32', shape: [outF, r], data: rand(outF * r) });
      } else {
        // Series: gate/up act on the linear's input (in -> in), down_proj on its output (out -> out).
        const dIn = kind === 'parallel' ? inF : m === 'down_proj' ? outF : inF;
        const dOut = kind === 'parallel' ? outF : dIn;
        tensors.push({ name: `${key}.adapter_down.weight`, dtype: 'F32', shape: [r, dIn], data: rand(r * dIn) });
        tensors.push({ name: `${key}.adapter_up.weight`, dtype: 'F32', shape: [dOut, r], data: rand(dOut * r) });
        if (o.scaling === 'learned') tensors.push({ name: `${key}.adapter_scaling`, dtype: 'F32', shape: [1], data: new Float32Array([0.5 + rng.uniform()]) });
      }
    }
  }
  const adapterConfig: Record<string, unknown> =
    kind === 'lora'
      ? {
          peft_type: 'LORA',
          task_type: 'CAUSAL_LM',
          r,
          lora_alpha: o.alpha ?? 2 * r,
          target_modules: targets,
          lora_dropout: 0.05,
          bias: 'none',
          fan_in_fan_out: false,
          use_rslora: o.useRslora ?? false,
        }
      : {
          peft_type: 'BOTTLENECK',
          task_type: 'CAUSAL_LM',
          bottleneck_size: r,
          non_linearity: o.nonLinearity ?? 'tanh',
          adapter_dropout: 0.0,
          use_parallel_adapter: kind === 'parallel',
          use_adapterp: false,
          target_modules: targets,
          scaling: o.scaling ?? 1.0,
          bias: 'none',
        };
  return { adapterConfig, adapterWeights: writeSafetensors(tensors) };
}
