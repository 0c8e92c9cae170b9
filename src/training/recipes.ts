/**
 * The paper's three training recipes (AGI-Edgerunners/LLM-Adapters math_running_commands, as the
 * issue lists them): LoRA r 32, alpha 64, dropout 0.05 on q, k, v, up, down; series bottleneck 256,
 * tanh on up_proj and gate_proj; parallel bottleneck 256, tanh on up_proj and down_proj; all three
 * batch 16 (micro-batch 4 × accumulation 4), 3 epochs, lr 3e-4, warmup 100, cutoff 256.
 *
 * Bottleneck adapters start as the issue states (kaiming-uniform(a=√5) adapter_down, zero
 * adapter_up: BottleneckConfig's init_weights "mam_adapter"), so a fresh adapter leaves the model's
 * outputs unchanged, like a fresh LoRA; scaling 1.0 and adapter_dropout 0 (finetune.py's and
 * BottleneckConfig's defaults).
 */
import { ADAPTER_MODULES, type AdapterModule } from '../formats/adapterFormat.ts';
import { validateAdapterSpec, type AdapterSpec } from './init.ts';

export type TrainingMethod = 'lora' | 'series' | 'parallel';
export const TRAINING_METHODS: readonly TrainingMethod[] = ['lora', 'series', 'parallel'];

export interface RecipeRun {
  microBatch: number;
  gradAccum: number;
  epochs: number;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  cutoffLen: number;
}

export interface Recipe {
  method: TrainingMethod;
  label: string;
  spec: AdapterSpec;
  run: RecipeRun;
}

export const PAPER_RUN: RecipeRun = { microBatch: 4, gradAccum: 4, epochs: 3, lr: 3e-4, warmupSteps: 100, weightDecay: 0, cutoffLen: 256 };

const BOTTLENECK_DEFAULTS = { nonLinearity: 'tanh', dropout: 0, scaling: 1, initWeights: 'mam_adapter' } as const;

export function paperSpec(method: TrainingMethod): AdapterSpec {
  switch (method) {
    case 'lora':
      return { kind: 'lora', r: 32, alpha: 64, dropout: 0.05, targets: ['q_proj', 'k_proj', 'v_proj', 'up_proj', 'down_proj'] };
    case 'series':
      return { kind: 'series', bottleneckSize: 256, targets: ['up_proj', 'gate_proj'] as AdapterModule[], ...BOTTLENECK_DEFAULTS };
    case 'parallel':
      return { kind: 'parallel', bottleneckSize: 256, targets: ['up_proj', 'down_proj'] as AdapterModule[], ...BOTTLENECK_DEFAULTS };
  }
}

export function paperRecipe(method: TrainingMethod): Recipe {
  const label = method === 'lora' ? 'LoRA (r 32, α 64)' : method === 'series' ? 'Series adapter (256, tanh)' : 'Parallel adapter (256, tanh)';
  return { method, label, spec: paperSpec(method), run: { ...PAPER_RUN } };
}

/** Fields that reshape a recipe's adapter (the CLI's --r --alpha --dropout --bottleneck --targets, the Train view's fields). */
export interface SpecOverrides {
  r?: number;
  alpha?: number;
  dropout?: number;
  bottleneck?: number;
  targets?: string[];
}

export class RecipeError extends Error {
  override name = 'RecipeError';
}

/** The paper's recipe for `method` with the given fields replaced; a module a Llama layer lacks is refused by name. */
export function specFromRecipe(method: TrainingMethod, o: SpecOverrides): AdapterSpec {
  const spec = paperSpec(method);
  if (o.targets) {
    const unknown = o.targets.filter((t) => !(ADAPTER_MODULES as readonly string[]).includes(t));
    if (unknown.length)
      throw new RecipeError(`the model has no module ${unknown.map((t) => `"${t}"`).join(', ')} (a Llama layer has ${ADAPTER_MODULES.join(', ')})`);
    spec.targets = o.targets as AdapterModule[];
  }
  if (o.dropout !== undefined) spec.dropout = o.dropout;
  if (spec.kind === 'lora') {
    if (o.r !== undefined) spec.r = o.r;
    if (o.alpha !== undefined) spec.alpha = o.alpha;
  } else if (o.bottleneck !== undefined) spec.bottleneckSize = o.bottleneck;
  try {
    validateAdapterSpec(spec);
  } catch (e) {
    throw new RecipeError((e as Error).message, { cause: e });
  }
  return spec;
}
