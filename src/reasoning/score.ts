/**
 * Scoring. Three modes, all computed for every output (the raw output is always kept):
 *  - `llm-adapters` (the default, and `correct` / `pred` of a ScoredItem): LLM-Adapters'
 *    evaluate.py — numeric answers correct when |pred - gold| <= 1e-3, AQuA letters when equal
 *    (extract.ts has both extractions). A missing prediction (no number / no letter) is incorrect.
 *  - `lm-eval-strict`, `lm-eval-flexible`: lm-evaluation-harness' gsm8k_cot filters and exact match
 *    against the text target (lmEval.ts). Numeric datasets only: they have no rule for letters.
 */
import { extractAnswer } from './extract.ts';
import { DATASETS, type AnswerKind, type DatasetName, type Problem } from './datasets.ts';
import { wilsonInterval, type Interval } from './wilson.ts';
import { exactMatch, GSM8K_COT_FLEXIBLE, GSM8K_COT_STRICT, regexFilter } from './lmEval.ts';

export type ScoringMode = 'llm-adapters' | 'lm-eval-strict' | 'lm-eval-flexible';
export const SCORING_MODES: readonly ScoringMode[] = ['llm-adapters', 'lm-eval-strict', 'lm-eval-flexible'];
export const DEFAULT_SCORING_MODE: ScoringMode = 'llm-adapters';

export const SCORING_MODE_LABELS: Record<ScoringMode, string> = {
  'llm-adapters': 'LLM-Adapters',
  'lm-eval-strict': 'lm-eval strict-match',
  'lm-eval-flexible': 'lm-eval flexible-extract',
};

export function isScoringMode(name: string): name is ScoringMode {
  return (SCORING_MODES as readonly string[]).includes(name);
}

/** The modes that have a rule for an answer kind (letters: LLM-Adapters' only). */
export function modesFor(kind: AnswerKind): ScoringMode[] {
  return kind === 'letter' ? ['llm-adapters'] : [...SCORING_MODES];
}

/** One mode's verdict: its prediction (lm-eval: the filtered response, "[invalid]" when none). */
export interface ModeResult {
  pred: number | string | null;
  correct: boolean;
}

export type ModeResults = Partial<Record<ScoringMode, ModeResult>>;

export const NUMERIC_TOLERANCE = 1e-3;

export interface Prediction {
  index: number;
  output: string;
}

/** `pred` / `correct` are LLM-Adapters' verdict; `modes` has every mode that applies. */
export interface ScoredItem {
  index: number;
  pred: number | string | null;
  gold: number | string;
  correct: boolean;
  /** The answer as text (lm-eval's target). */
  target?: string;
  modes?: ModeResults;
}

export interface ScoreSummary {
  accuracy: number;
  correct: number;
  total: number;
  /** 95% Wilson interval of the accuracy. */
  interval: Interval;
}

export class ScoreError extends Error {
  override name = 'ScoreError';
}

export function isCorrect(pred: number | string | null, gold: number | string, kind: AnswerKind): boolean {
  if (pred === null) return false;
  if (kind === 'letter') return typeof pred === 'string' && pred === String(gold).trim();
  const g = typeof gold === 'number' ? gold : Number(gold);
  return typeof pred === 'number' && Math.abs(pred - g) <= NUMERIC_TOLERANCE;
}

/** lm-eval's target for a problem: its text answer, else the gold value written out. */
export function targetOf(problem: Pick<Problem, 'gold' | 'target'>): string {
  return problem.target ?? String(problem.gold);
}

/** Every applicable mode's verdict on one output. */
export function scoreModes(kind: AnswerKind, output: string, gold: number | string, target: string): ModeResults {
  const pred = extractAnswer(kind, output);
  const modes: ModeResults = { 'llm-adapters': { pred, correct: isCorrect(pred, gold, kind) } };
  if (kind === 'number') {
    for (const [mode, spec] of [
      ['lm-eval-strict', GSM8K_COT_STRICT],
      ['lm-eval-flexible', GSM8K_COT_FLEXIBLE],
    ] as const) {
      const filtered = regexFilter(output, spec);
      modes[mode] = { pred: filtered, correct: exactMatch(filtered, target) };
    }
  }
  return modes;
}

/** Score one model output against its problem (every mode; `pred`/`correct` are LLM-Adapters'). */
export function scoreOutput(dataset: DatasetName, problem: Problem, output: string): ScoredItem {
  const kind = DATASETS[dataset].answerKind;
  const target = targetOf(problem);
  const modes = scoreModes(kind, output, problem.gold, target);
  const main = modes['llm-adapters']!;
  return { index: problem.index, pred: main.pred, gold: problem.gold, correct: main.correct, target, modes };
}

/**
 * An item's verdict in one mode: from its stored modes, else recomputed from its output (records
 * made before modes existed). null: the mode has no rule for this answer kind.
 */
export function modeResult(
  kind: AnswerKind,
  item: Pick<ScoredItem, 'pred' | 'gold' | 'correct' | 'target' | 'modes'> & { output?: string },
  mode: ScoringMode,
): ModeResult | null {
  if (!modesFor(kind).includes(mode)) return null;
  const stored = item.modes?.[mode];
  if (stored) return stored;
  if (mode === 'llm-adapters') return { pred: item.pred, correct: item.correct };
  if (item.output === undefined) return null;
  return scoreModes(kind, item.output, item.gold, item.target ?? String(item.gold))[mode] ?? null;
}

/** Accuracy per applicable mode. */
export function summarizeModes(
  kind: AnswerKind,
  items: readonly (Pick<ScoredItem, 'pred' | 'gold' | 'correct' | 'target' | 'modes'> & { output?: string })[],
): Partial<Record<ScoringMode, ScoreSummary>> {
  const out: Partial<Record<ScoringMode, ScoreSummary>> = {};
  for (const mode of modesFor(kind)) {
    out[mode] = summarize(items.map((item) => ({ correct: modeResult(kind, item, mode)?.correct ?? false })));
  }
  return out;
}

export function summarize(items: readonly Pick<ScoredItem, 'correct'>[]): ScoreSummary {
  const correct = items.filter((i) => i.correct).length;
  const total = items.length;
  return { accuracy: total === 0 ? 0 : correct / total, correct, total, interval: wilsonInterval(correct, total) };
}

/**
 * Score predictions ({index, output}, index = the problem's index in its data file) by LLM-Adapters' rules.
 * Throws ScoreError for an index with no problem (out of range, or an item skipped as malformed).
 */
export function scoreOutputs(
  dataset: DatasetName,
  problems: readonly Problem[],
  predictions: readonly Prediction[],
): { items: ScoredItem[]; summary: ScoreSummary } {
  const byIndex = new Map(problems.map((p) => [p.index, p]));
  const items = predictions.map((prediction) => {
    const problem = byIndex.get(prediction.index);
    if (!problem) throw new ScoreError(`Prediction index ${prediction.index} has no problem in the data`);
    // LLM-Adapters' verdict alone (summarizeModes / scoreModes give the others).
    const { index, pred, gold, correct } = scoreOutput(dataset, problem, prediction.output);
    return { index, pred, gold, correct };
  });
  return { items, summary: summarize(items) };
}
