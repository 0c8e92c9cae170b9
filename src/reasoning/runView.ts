/**
 * A run read problem by problem: each result beside its question and gold, the wrong ones on
 * their own, a page at a time (a GSM8K run has 1319), and one problem's record as plain text to
 * copy. Pure (Node-testable); the Accuracy view's RunProblems shows it.
 */
import { DATASETS, type Problem } from './datasets.ts';
import type { Run } from './runs.ts';

export interface RunViewRow {
  /** 1-based position in the order the run solved its problems. */
  position: number;
  /** The problem's index in the dataset file. */
  index: number;
  /** null when the dataset loaded now has no problem at that index (another file). */
  question: string | null;
  output: string;
  pred: number | string | null;
  gold: number | string;
  correct: boolean;
}

/** One row per finished problem, in the order they finished. */
export function runViewRows(run: Pick<Run, 'items'>, problems: readonly Problem[] | null): RunViewRow[] {
  const byIndex = new Map((problems ?? []).map((p) => [p.index, p]));
  return run.items.map((item, i) => ({
    position: i + 1,
    index: item.index,
    question: byIndex.get(item.index)?.question ?? null,
    output: item.output,
    pred: item.pred,
    gold: item.gold,
    correct: item.correct,
  }));
}

export interface RunViewPage {
  rows: RunViewRow[];
  /** 0-based page shown (clamped to the pages there are). */
  page: number;
  pages: number;
  /** Rows after the filter. */
  matching: number;
  /** 1-based range shown ("26–50"), 0–0 when none. */
  first: number;
  last: number;
}

/** The `page`-th page of `pageSize` rows, the wrong answers only when `onlyWrong`. */
export function runViewPage(rows: readonly RunViewRow[], options: { onlyWrong: boolean; page: number; pageSize: number }): RunViewPage {
  const matching = options.onlyWrong ? rows.filter((r) => !r.correct) : rows;
  const pages = Math.max(1, Math.ceil(matching.length / options.pageSize));
  const page = Math.min(Math.max(0, Math.floor(options.page)), pages - 1);
  const shown = matching.slice(page * options.pageSize, (page + 1) * options.pageSize);
  return {
    rows: shown,
    page,
    pages,
    matching: matching.length,
    first: shown.length ? page * options.pageSize + 1 : 0,
    last: page * options.pageSize + shown.length,
  };
}

/** One problem's record as plain text, for the clipboard. */
export function runViewRecordText(run: Pick<Run, 'id' | 'dataset' | 'promptId' | 'model' | 'adapter'>, row: RunViewRow): string {
  return [
    `Run: ${run.id}`,
    `Model: ${run.model}; adapter: ${run.adapter ?? 'none'}; prompt: ${run.promptId}`,
    `Problem: ${DATASETS[run.dataset].label} #${row.index} (solved ${row.position})`,
    `Question: ${row.question ?? '(not in the dataset loaded now)'}`,
    'Output:',
    row.output,
    `Extracted answer: ${row.pred ?? 'none found'}`,
    `Gold: ${row.gold}`,
    `Verdict: ${row.correct ? 'correct' : 'incorrect'}`,
  ].join('\n');
}
