/**
 * An evaluation run as plain data: which configuration, which problems in which order, and the
 * scored result of each problem done so far. Pure (Node-testable); runStore.ts persists it.
 */
import type { AdapterKind } from './paper.ts';
import { DATASETS, type DatasetName } from './datasets.ts';
import { summarize, summarizeModes, type ScoredItem, type ScoreSummary, type ScoringMode } from './score.ts';
import { lmEvalSampleFields, scoresOf, summaryJson, type ExportRow, type JsonValue } from './export.ts';
import type { Decoding, RunRecord } from './runRecord.ts';

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
  /** How tokens are chosen; absent (runs stored before the choice existed): greedy. A resumed run keeps it. */
  decoding?: Decoding;
  /** What the run was made with, exactly (runRecord.ts); absent on runs stored before records. */
  record?: RunRecord;
}

export const GREEDY: Decoding = { kind: 'greedy' };

/** The decoding a run was made with (stored runs without one were greedy). */
export function decodingOf(run: Pick<RunConfig, 'decoding'>): Decoding {
  return run.decoding ?? GREEDY;
}

/** How the UI names a decoding: "greedy" or "4 beams". */
export function decodingLabel(decoding: Decoding): string {
  return decoding.kind === 'beam' ? `${decoding.numBeams} beams` : 'greedy';
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
  /** LLM-Adapters' accuracy (the paper's rule). */
  summary: ScoreSummary;
  /** Every scoring mode that applies to the dataset (lm-eval's need numeric answers). */
  modes: Partial<Record<ScoringMode, ScoreSummary>>;
  /** Accuracy after each problem, in the order they were done (for the chart). */
  accuracyCurve: number[];
}

export function runProgress(run: Run): RunProgress {
  let correct = 0;
  const accuracyCurve = run.items.map((item, i) => (correct += item.correct ? 1 : 0) / (i + 1));
  const modes = summarizeModes(DATASETS[run.dataset].answerKind, run.items);
  return { done: run.items.length, total: run.order.length, summary: summarize(run.items), modes, accuracyCurve };
}

/** Rows for CSV export (and the flat part of JSONL lines): one per problem done. */
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

/**
 * JSONL lines: runRows' fields, plus every mode's verdict (`scores`), lm-evaluation-harness'
 * sample fields (doc_id, target, resps, filtered_resps, filter, exact_match) and the run record.
 */
export function runJsonlRows(run: Run): ExportRow[] {
  const kind = DATASETS[run.dataset].answerKind;
  return runRows(run).map((row, i) => {
    const item = run.items[i];
    return {
      ...row,
      scores: scoresOf(kind, item) as JsonValue,
      ...(lmEvalSampleFields(kind, item) as unknown as Record<string, JsonValue>),
      ...(run.record ? { record: run.record as unknown as JsonValue } : {}),
    };
  });
}

/** Columns of the summary CSV: one row per (run, scoring mode), with the record's identifying fields. */
export const SUMMARY_COLUMNS = [
  'run',
  'dataset',
  'prompt',
  'adapter',
  'model',
  'mode',
  'correct',
  'total',
  'accuracy',
  'wilson95_lower',
  'wilson95_upper',
  'model_fingerprint',
  'adapter_fingerprint',
  'prompt_sha256',
  'decoding',
  'max_new_tokens',
  'dataset_url',
  'dataset_sha256',
  'app_version',
  'browser',
  'gpu_adapter',
  'engine',
  'started',
] as const;

/** One summary row per scoring mode that applies to the run's dataset. */
export function runSummaryRows(run: Run): ExportRow[] {
  const r = run.record;
  const modes = runProgress(run).modes;
  return Object.entries(modes).map(([mode, s]) => {
    const j = summaryJson(s);
    return {
      run: run.id,
      dataset: run.dataset,
      prompt: run.promptId,
      adapter: run.adapter,
      model: run.model,
      mode,
      correct: j.correct,
      total: j.total,
      accuracy: j.accuracy,
      wilson95_lower: j.wilson95[0],
      wilson95_upper: j.wilson95[1],
      model_fingerprint: r?.model.fingerprint ?? null,
      adapter_fingerprint: r?.adapter?.fingerprint ?? null,
      prompt_sha256: r?.prompt.sha256 ?? null,
      decoding: r ? (r.decoding.kind === 'beam' ? `beam ${r.decoding.numBeams}` : 'greedy') : null,
      max_new_tokens: r?.decoding.maxNewTokens ?? null,
      dataset_url: r?.dataset.url ?? null,
      dataset_sha256: r?.dataset.sha256 ?? null,
      app_version: r?.appVersion ?? null,
      browser: r?.environment.browser ?? null,
      gpu_adapter: r?.environment.gpuAdapter ?? null,
      engine: r?.environment.engine ?? null,
      started: r?.dates.started ?? null,
    };
  });
}
