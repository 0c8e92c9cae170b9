/**
 * An evaluation run as plain data: which configuration, which problems in which order, and the
 * scored result of each problem done so far. Pure (Node-testable); runStore.ts persists it.
 */
import type { AdapterKind } from './paper.ts';
import type { DatasetName } from './datasets.ts';
import { summarize, type ScoredItem, type ScoreSummary } from './score.ts';
import type { ExportRow } from './export.ts';

export interface RunConfig {
  dataset: DatasetName;
  /** PromptConfig id ("baseline", "alpaca+q_end", "custom"). */
  promptId: string;
  /** The template used (kept so a custom prompt's run stays reproducible). */
  promptTemplate: string;
  /** The adapter's name (adapter.json), null for the base model alone. */
  adapter: string | null;
  /** The adapter's kind as the engine reported it: picks the paper's cell. */
  adapterKind?: AdapterKind | null;
  model: string;
  /** Seed of the problem order; undefined: file order. */
  seed?: number;
  limit?: number;
}

export interface RunItem extends ScoredItem {
  output: string;
  generatedTokens?: number;
  ms?: number;
}

export interface Run extends RunConfig {
  id: string;
  createdAt: number;
  updatedAt: number;
  /** Problem indices to run, in order. */
  order: number[];
  items: RunItem[];
}

export function createRun(config: RunConfig, order: readonly number[], now = Date.now()): Run {
  // Adapter names are free text ("tiny lora (random)"): keep the id file-name safe.
  const adapter = (config.adapter ?? 'base').replace(/[^A-Za-z0-9._+-]+/g, '-').replace(/^-+|-+$/g, '');
  const id = `${config.dataset}-${config.promptId}-${adapter}-${now.toString(36)}`;
  return { ...config, id, createdAt: now, updatedAt: now, order: [...order], items: [] };
}

/** The run with one more result (replacing an earlier result for the same problem). */
export function addRunItem(run: Run, item: RunItem, now = Date.now()): Run {
  return { ...run, updatedAt: now, items: [...run.items.filter((i) => i.index !== item.index), item] };
}

/** Problem indices still to run, in order (what a resumed run does next). */
export function remainingIndices(run: Run): number[] {
  const done = new Set(run.items.map((i) => i.index));
  return run.order.filter((i) => !done.has(i));
}

export interface RunProgress {
  done: number;
  total: number;
  summary: ScoreSummary;
  /** Accuracy after each problem, in the order they were done (for the chart). */
  accuracyCurve: number[];
}

export function runProgress(run: Run): RunProgress {
  let correct = 0;
  const accuracyCurve = run.items.map((item, i) => (correct += item.correct ? 1 : 0) / (i + 1));
  return { done: run.items.length, total: run.order.length, summary: summarize(run.items), accuracyCurve };
}

/** Rows for JSONL/CSV export: one per problem done. */
export function runRows(run: Run): ExportRow[] {
  return run.items.map((item) => ({
    run: run.id,
    dataset: run.dataset,
    prompt: run.promptId,
    adapter: run.adapter,
    model: run.model,
    index: item.index,
    pred: item.pred,
    gold: item.gold,
    correct: item.correct,
    output: item.output,
  }));
}
