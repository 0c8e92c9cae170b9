/**
 * Scoring as LLM-Adapters does it: numeric answers are correct when |pred - gold| <= 1e-3,
 * AQuA letters when equal. A missing prediction (no number / no letter) is incorrect.
 */
import { extractAnswer } from './extract.ts';
import { DATASETS, type AnswerKind, type DatasetName, type Problem } from './datasets.ts';
import { wilsonInterval, type Interval } from './wilson.ts';

export const NUMERIC_TOLERANCE = 1e-3;

export interface Prediction {
  index: number;
  output: string;
}

export interface ScoredItem {
  index: number;
  pred: number | string | null;
  gold: number | string;
  correct: boolean;
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

/** Score one model output against its problem. */
export function scoreOutput(dataset: DatasetName, problem: Problem, output: string): ScoredItem {
  const kind = DATASETS[dataset].answerKind;
  const pred = extractAnswer(kind, output);
  return { index: problem.index, pred, gold: problem.gold, correct: isCorrect(pred, problem.gold, kind) };
}

export function summarize(items: readonly Pick<ScoredItem, 'correct'>[]): ScoreSummary {
  const correct = items.filter((i) => i.correct).length;
  const total = items.length;
  return { accuracy: total === 0 ? 0 : correct / total, correct, total, interval: wilsonInterval(correct, total) };
}

/**
 * Score predictions ({index, output}, index = the problem's index in its data file).
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
    return scoreOutput(dataset, problem, prediction.output);
  });
  return { items, summary: summarize(items) };
}
