/**
 * The evaluation runner: hands a dataset's remaining problems to any ReasoningEngine's
 * `generateBatch`, scoring each answer and handing back the updated run after every problem (so
 * the UI can redraw accuracy and persist it); solveProblem solves one with its `generate`.
 * Engine-agnostic (only the interface's types) and DOM-free.
 */
import type { DatasetName, Problem } from './datasets.ts';
import { selectProblems } from './datasets.ts';
import { buildPrompt, cutAtStop, type PromptConfig } from './prompts.ts';
import { scoreOutput, type ScoredItem } from './score.ts';
import { addRunItem, createRun, decodingOf, remainingIndices, type Run, type RunConfig, type RunItem } from './runs.ts';
import type { Decoding } from './runRecord.ts';
import { paperAccuracy } from './paper.ts';
import type { BatchShape, GenerateOptions, ReasoningEngine } from '../engine/reasoningEngine.ts';

/** What solveProblem needs from an engine: ReasoningEngine.generate (the UI store's has the same shape). */
export type GenerateFn = ReasoningEngine['generate'];

/** Many prompts at once with continuous batching: ReasoningEngine.generateBatch. */
export type GenerateBatchFn = ReasoningEngine['generateBatch'];

export interface Solution extends ScoredItem {
  prompt: string;
  /** The model's answer text, cut at the configuration's first stop sequence. */
  output: string;
  stopReason?: string;
  generatedTokens?: number;
  prefillTokensPerS?: number;
  decodeTokensPerS?: number;
  ms: number;
}

/** The engine options a decoding adds: numBeams for beam search, nothing for greedy (GenerateOptions' default). */
export function decodingOptions(decoding: Decoding): Pick<GenerateOptions, 'numBeams'> {
  return decoding.kind === 'beam' ? { numBeams: decoding.numBeams } : {};
}

export interface SolveOptions {
  maxNewTokens: number;
  /** Absent: greedy. */
  decoding?: Decoding;
  signal?: AbortSignal;
  /** Called with the whole output so far after every token. */
  onText?: (textSoFar: string) => void;
}

export class RunCancelled extends Error {
  override name = 'RunCancelled';
  constructor() {
    super('The run was stopped.');
  }
}

/** Tokens per second, or undefined when not measurable. */
export function tokensPerSecond(tokens: number | undefined, ms: number | undefined): number | undefined {
  return tokens && ms && ms > 0 ? (tokens * 1000) / ms : undefined;
}

/** Solve one problem with one prompt configuration: build the prompt, generate (greedily unless options.decoding says beams), score. */
export async function solveProblem(
  generate: GenerateFn,
  config: PromptConfig,
  dataset: DatasetName,
  problem: Problem,
  options: SolveOptions,
): Promise<Solution> {
  if (options.signal?.aborted) throw new RunCancelled();
  const prompt = buildPrompt(config, problem);
  const t0 = performance.now();
  let streamed = '';
  const result = await generate(
    prompt,
    { maxNewTokens: options.maxNewTokens, temperature: 0, stopStrings: config.stopSequences, ...decodingOptions(options.decoding ?? { kind: 'greedy' }) },
    {
      signal: options.signal,
      onToken: (t) => {
        streamed += t.textDelta;
        options.onText?.(cutAtStop(streamed, config.stopSequences));
      },
    },
  );
  // A cancelled generation is not an answer: it must not be scored.
  if (options.signal?.aborted || result.stopReason === 'cancelled') throw new RunCancelled();
  const output = cutAtStop(result.text ?? streamed, config.stopSequences);
  options.onText?.(output);
  const scored = scoreOutput(dataset, problem, output);
  return {
    ...scored,
    prompt,
    output,
    stopReason: result.stopReason,
    generatedTokens: result.decodeTokens,
    prefillTokensPerS: tokensPerSecond(result.prefillTokens, result.prefillMs),
    decodeTokensPerS: tokensPerSecond(result.decodeTokens, result.decodeMs),
    ms: performance.now() - t0,
  };
}

/** A new run over the whole dataset, or the first `limit` problems of the order seeded by `seed`. */
export function planRun(config: RunConfig, problems: readonly Problem[], now = Date.now()): Run {
  const picked = selectProblems(problems, { limit: config.limit, seed: config.seed });
  return createRun(
    config,
    picked.map((p) => p.index),
    now,
  );
}

export interface RunOptions {
  /** The problems go through it together (continuous batching; a batch of 1 solves them one by one). */
  generateBatch: GenerateBatchFn;
  /** How many sequences the engine decodes together. */
  onBatchStart?: (shape: BatchShape) => void;
  /** The run to continue (a new one from planRun, or one loaded from storage). */
  run: Run;
  /** The dataset's problems (looked up by index). */
  problems: readonly Problem[];
  config: PromptConfig;
  maxNewTokens: number;
  signal?: AbortSignal;
  /** When the problem shown changes: the oldest one still being solved. */
  onProblemStart?: (problem: Problem, position: number) => void;
  /** Output so far of the problem being solved. */
  onText?: (problem: Problem, textSoFar: string) => void;
  /**
   * After every token and every finished problem: tokens generated so far by the problems still
   * being solved (a batch can run for minutes before its first problem finishes).
   */
  onTokens?: (inFlight: number) => void;
  /** After each problem: the run with its new item (already saved when `save` is given). */
  onProgress?: (run: Run, item: RunItem) => void;
  /** Persist each problem's result as it finishes (runStore.appendRunItem: the new item alone, not the whole run again). */
  save?: (run: Run, item: RunItem) => Promise<void>;
}

/** The run's problems not done yet, in run order (an error names one missing from the data). */
function remainingProblems(opts: RunOptions): Problem[] {
  const byIndex = new Map(opts.problems.map((p) => [p.index, p]));
  return remainingIndices(opts.run).map((index) => {
    const problem = byIndex.get(index);
    if (!problem) throw new Error(`Problem ${index} of the run is not in the ${opts.run.dataset} data (was the file changed?)`);
    return problem;
  });
}

/**
 * Run (or resume) an evaluation: every problem of `run.order` not done yet goes to the engine at
 * once, which decodes as many together as fit and admits the next as one finishes. Items are
 * scored, saved and reported in the order they finish (a run's accuracy does not depend on it).
 * Returns the final run; throws RunCancelled when stopped (what finished is already saved).
 */
export async function runEvaluation(opts: RunOptions): Promise<Run> {
  if (opts.signal?.aborted) throw new RunCancelled();
  const problems = remainingProblems(opts);
  const stops = opts.config.stopSequences;
  const done0 = opts.run.items.length;
  let run = opts.run;
  const texts = problems.map(() => '');
  const tokens = problems.map(() => 0);
  let inFlight = 0;
  const finished = new Set<number>();
  // The UI follows one problem: the oldest one still being solved.
  let shown = -1;
  const follow = () => {
    let oldest = -1;
    for (let seq = 0; seq < problems.length && oldest < 0; seq++) if (!finished.has(seq) && texts[seq] !== '') oldest = seq;
    if (oldest >= 0 && oldest !== shown) {
      shown = oldest;
      opts.onProblemStart?.(problems[oldest], done0 + oldest);
      opts.onText?.(problems[oldest], cutAtStop(texts[oldest], stops));
    }
  };
  // Saves happen one after another, in the order problems finish.
  let saving: Promise<void> = Promise.resolve();
  // Stopped by the caller, or by a result that cannot be saved.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const generating = opts.generateBatch(
    problems.map((p) => buildPrompt(opts.config, p)),
    // The run's own decoding, so a resumed run decodes as it started.
    { maxNewTokens: opts.maxNewTokens, temperature: 0, stopStrings: stops, ...decodingOptions(decodingOf(opts.run)) },
    {
      signal: stop.signal,
      onStart: (shape) => opts.onBatchStart?.(shape),
      onToken: (seq, t) => {
        texts[seq] += t.textDelta;
        tokens[seq]++;
        opts.onTokens?.(++inFlight);
        if (seq === shown) opts.onText?.(problems[seq], cutAtStop(texts[seq], stops));
        else if (shown < 0 || finished.has(shown)) follow();
      },
      onDone: (seq, outcome) => {
        finished.add(seq);
        inFlight -= tokens[seq];
        opts.onTokens?.(inFlight);
        if (seq === shown) follow();
        // A cancelled generation is not an answer: it must not be scored.
        if (outcome.stopReason === 'cancelled') return;
        const problem = problems[seq];
        const output = cutAtStop(outcome.text ?? texts[seq], stops);
        const s = scoreOutput(run.dataset, problem, output);
        const item: RunItem = {
          index: problem.index,
          pred: s.pred,
          gold: s.gold,
          correct: s.correct,
          target: s.target,
          modes: s.modes,
          output,
          generatedTokens: outcome.decodeTokens,
          ms: Math.round(outcome.prefillMs + outcome.decodeMs),
        };
        saving = saving.then(async () => {
          run = addRunItem(run, item);
          await opts.save?.(run, item);
          opts.onProgress?.(run, item);
        });
        // A result that cannot be saved stops the run (the error surfaces below).
        saving.catch(() => stop.abort());
      },
    },
  );
  try {
    await generating;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await saving;
  }
  if (opts.signal?.aborted) throw new RunCancelled();
  return run;
}

/** The paper's accuracy (%) for a run's cell, when the paper reports one. */
export function paperValueForRun(run: Pick<Run, 'promptId' | 'adapter' | 'dataset' | 'adapterKind'>): number | undefined {
  // The kind the engine reported picks the cell; an adapter whose kind was not recorded fills none.
  const kind = run.adapter === null ? null : (run.adapterKind ?? undefined);
  return kind === undefined ? undefined : paperAccuracy(run.promptId, kind, run.dataset);
}

/** Columns of the CSV export, in order. */
export const EXPORT_COLUMNS = ['run', 'dataset', 'prompt', 'adapter', 'model', 'index', 'pred', 'gold', 'correct', 'output'] as const;
