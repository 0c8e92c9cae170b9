/**
 * Initial adapter weights, as the code the paper trained with creates them:
 * - LoRA (huggingface/peft src/peft/tuners/lora/layer.py @b28a09c, LoraLayer.reset_lora_parameters
 *   with init_lora_weights=True): nn.init.kaiming_uniform_(lora_A, a=math.sqrt(5)); zeros_(lora_B).
 * - Bottleneck (AGI-Edgerunners/LLM-Adapters peft/src/peft/tuners/bottleneck.py @0059d7c,
 *   Linear.reset_parameters): BottleneckConfig.init_weights defaults to "bert" (finetune.py does not
 *   set it): adapter_down and adapter_up both ~ Normal(0, 0.02) (init_bert_weights). "mam_adapter":
 *   kaiming_uniform_(adapter_down, a=√5) and zeros_(adapter_up).
 *
 * kaiming_uniform_(w, a) (torch/nn/init.py): fan_in = w.size(1) (the in-features of a [out, in]
 * weight); gain = calculate_gain("leaky_relu", a) = sqrt(2 / (1 + a²)); std = gain / sqrt(fan_in);
 * bound = sqrt(3) · std. With a = √5: gain = sqrt(2/6) = 1/√3, so bound = √3 · (1/√3) / sqrt(fan_in)
 * = 1 / sqrt(fan_in); w ~ Uniform(−bound, bound).
 *
 * Values come from our seeded Rng (random.ts), not torch's generator: the distributions match,
 * the draws do not.
 */
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { SERIES_MODULES, moduleFeatures, type AdapterActivation, type AdapterModule } from '../formats/adapterFormat.ts';
import type { Rng } from '../formats/random.ts';
import type { TrainableAdapter } from '../engine/referenceTraining.ts';

export type BottleneckInit = 'bert' | 'mam_adapter';

/** What to train: PEFT LoraConfig / LLM-Adapters BottleneckConfig fields. */
export type AdapterSpec =
  | { kind: 'lora'; r: number; alpha: number; targets: AdapterModule[]; dropout: number }
  | {
      kind: 'series' | 'parallel';
      bottleneckSize: number;
      nonLinearity: AdapterActivation;
      targets: AdapterModule[];
      dropout: number;
      /** the config's float `scaling` (a learned scaling is not supported for training) */
      scaling: number;
      initWeights?: BottleneckInit;
    };

/** kaiming_uniform_(a=√5) for a [rows, cols] weight: Uniform(−1/√cols, 1/√cols). */
export function kaimingUniformA5(rows: number, cols: number, rng: Rng): Float32Array {
  const bound = 1 / Math.sqrt(cols);
  return rng.uniformArray(rows * cols, -bound, bound);
}

/** [d_in, d_out] of the bottleneck on a module (LLM-Adapters: mh_adapter in→in, output_adapter out→out). */
export function bottleneckFeatures(c: LlamaConfig, kind: 'series' | 'parallel', m: AdapterModule): [number, number] {
  const [inF, outF] = moduleFeatures(c, m);
  if (kind === 'parallel') return [inF, outF];
  return m === 'down_proj' ? [outF, outF] : [inF, inF];
}

/** The input width of a module's adapter (the size of one token's dropout mask row). */
export function adapterInputWidth(c: LlamaConfig, kind: AdapterSpec['kind'], m: AdapterModule): number {
  return kind === 'lora' ? moduleFeatures(c, m)[0] : bottleneckFeatures(c, kind, m)[0];
}

export function validateAdapterSpec(spec: AdapterSpec): void {
  if (spec.targets.length === 0) throw new Error('an adapter needs at least one target module');
  if (new Set(spec.targets).size !== spec.targets.length) throw new Error(`target modules repeat: ${spec.targets.join(', ')}`);
  if (!(spec.dropout >= 0 && spec.dropout < 1)) throw new Error(`dropout ${spec.dropout} must be in [0, 1)`);
  const size = spec.kind === 'lora' ? spec.r : spec.bottleneckSize;
  if (!Number.isInteger(size) || size < 1) throw new Error(`${spec.kind === 'lora' ? 'r' : 'bottleneck_size'} ${size} must be a positive integer`);
  if (spec.kind === 'series') {
    const bad = spec.targets.filter((m) => !SERIES_MODULES.includes(m));
    if (bad.length) throw new Error(`series adapters only apply to gate_proj, up_proj and down_proj (LLM-Adapters), not ${bad.join(', ')}`);
  }
}

/** Fresh trainable adapter tensors (f32) for a spec, layer by layer, module by module in spec order. */
export function initAdapter(c: LlamaConfig, spec: AdapterSpec, rng: Rng): TrainableAdapter {
  validateAdapterSpec(spec);
  if (spec.kind === 'lora') {
    return {
      kind: 'lora',
      r: spec.r,
      scaling: spec.alpha / spec.r,
      layers: Array.from({ length: c.numLayers }, () =>
        Object.fromEntries(
          spec.targets.map((m) => {
            const [inF, outF] = moduleFeatures(c, m);
            return [m, { a: kaimingUniformA5(spec.r, inF, rng), b: new Float32Array(outF * spec.r) }];
          }),
        ),
      ),
    };
  }
  const init = spec.initWeights ?? 'bert';
  const b = spec.bottleneckSize;
  return {
    kind: spec.kind,
    bottleneckSize: b,
    activation: spec.nonLinearity,
    layers: Array.from({ length: c.numLayers }, () =>
      Object.fromEntries(
        spec.targets.map((m) => {
          const [dIn, dOut] = bottleneckFeatures(c, spec.kind as 'series' | 'parallel', m);
          const down = init === 'bert' ? rng.normalArray(b * dIn, 0.02) : kaimingUniformA5(b, dIn, rng);
          const up = init === 'bert' ? rng.normalArray(dOut * b, 0.02) : new Float32Array(dOut * b);
          return [m, { down, up, scaling: spec.scaling }];
        }),
      ),
    ),
  };
}
