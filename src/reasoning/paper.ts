import type { DatasetName } from './datasets.ts';
import type { AdapterKind } from '../formats/adapterFormat.ts';

export type { AdapterKind };

/**
 * The study this app reproduces (GUIDE.md): Llama-2-7B accuracy (%) per configuration and dataset.
 * `prompt` is a PromptConfig id, `adapter` null for the base model.
 */
export interface PaperResult {
  label: string;
  prompt: string;
  adapter: AdapterKind | null;
  accuracy: Partial<Record<DatasetName, number>>;
}

export const PAPER_RESULTS: readonly PaperResult[] = [
  { label: 'Baseline, zero-shot', prompt: 'zero_shot', adapter: null, accuracy: { gsm8k: 0 } },
  { label: 'Baseline, 8-shot chain of thought', prompt: 'baseline', adapter: null, accuracy: { gsm8k: 14.6 } },
  { label: 'Q_end, zero-shot', prompt: 'q_end', adapter: null, accuracy: { gsm8k: 15.61 } },
  { label: 'A_begin, zero-shot', prompt: 'a_begin', adapter: null, accuracy: { gsm8k: 20.32 } },
  { label: 'Series adapter', prompt: 'alpaca', adapter: 'series', accuracy: { gsm8k: 32.45, aqua: 17.32, mawps: 77.73, svamp: 42.3 } },
  { label: 'Parallel adapter', prompt: 'alpaca', adapter: 'parallel', accuracy: { gsm8k: 41.02, aqua: 18.9, mawps: 83.61, svamp: 43.8 } },
  { label: 'LoRA', prompt: 'alpaca', adapter: 'lora', accuracy: { gsm8k: 44.66, aqua: 18.9, mawps: 82.35, svamp: 46.8 } },
];

/** The paper's accuracy (%) for a cell, or undefined when the paper has none. */
export function paperAccuracy(prompt: string, adapter: PaperResult['adapter'], dataset: DatasetName): number | undefined {
  return PAPER_RESULTS.find((r) => r.prompt === prompt && r.adapter === adapter)?.accuracy[dataset];
}

/** The paper's base model in our catalog: Llama-2-7B (base, not chat), in either 4-bit mode. */
export const PAPER_BASE_MODELS: readonly string[] = ['llama-2-7b-q4f16_1', 'llama-2-7b-q4f32_1'];

/** The catalog id of the paper's math_10k adapter of `kind` for the paper's base `modelId` (models/llama-2-7b-<kind>-math10k-<mode>.json). */
export function paperAdapterId(kind: AdapterKind, modelId: string): string | null {
  return PAPER_BASE_MODELS.includes(modelId) ? `llama-2-7b-${kind}-math10k-${modelId.slice('llama-2-7b-'.length)}` : null;
}

const KIND_NAMES: Record<AdapterKind, string> = { lora: 'LoRA', series: 'series adapter', parallel: 'parallel adapter' };

/** Whether a run can be set beside the paper's number for its cell, and why not. */
export type PaperComparability = { comparable: true } | { comparable: false; reason: string };

/**
 * A run is comparable with the paper's number only when it ran the paper's model and, for an
 * adapter row, the paper's adapter itself: the cell is picked by the adapter's kind, but a tiny
 * random LoRA (or a LoRA trained on other data) says nothing about the 7B math_10k LoRA's 44.66%.
 * `adapterId` is the adapter's catalog id (adapterChoices.ts), `adapter` null for the base alone.
 */
export function paperComparability(run: { model: string; adapter: string | null; adapterKind?: AdapterKind | null; adapterId?: string }): PaperComparability {
  if (!PAPER_BASE_MODELS.includes(run.model))
    return { comparable: false, reason: `not comparable: the paper measured Llama-2-7B (base), this is ${run.model}` };
  if (run.adapter === null) return { comparable: true };
  const paperAdapter = run.adapterKind ? paperAdapterId(run.adapterKind, run.model) : null;
  if (paperAdapter === null || run.adapterId !== paperAdapter)
    return {
      comparable: false,
      reason: `not comparable: the paper's number is for its own math_10k ${run.adapterKind ? KIND_NAMES[run.adapterKind] : 'adapter'} on Llama-2-7B, this is ${run.adapter}`,
    };
  return { comparable: true };
}
