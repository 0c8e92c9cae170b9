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
