/** Run results as JSONL and CSV for download. Model text is data: quoted, never interpreted. */
import { modeResult, modesFor, summarize, summarizeModes, type ModeResult, type ScoredItem, type ScoringMode, type ScoreSummary } from './score.ts';
import type { AnswerKind } from './datasets.ts';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined };
/** A row: flat values for CSV columns; JSONL rows may also nest (scores, the run record). */
export type ExportRow = Record<string, JsonValue | undefined>;

/** One JSON object per line, keys in the order given. */
export function toJsonl(rows: readonly ExportRow[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
}

/** A plain decimal number ("-3", "0.5", "-1e-3"): data, never a formula, so it stays as it is. */
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * A spreadsheet runs a cell that starts with = + - @ (or a tab / CR before one) as a formula, and
 * model output, dataset text and adapter names are steerable: such text cells get a leading ' so
 * they stay text (OWASP "CSV injection"). Numbers, negative ones too, are written as numbers.
 */
function neutralizeFormula(s: string): string {
  return /^[=+\-@\t\r]/.test(s) && !NUMBER.test(s) ? `'${s}` : s;
}

function csvField(value: ExportRow[string]): string {
  if (value === null || value === undefined) return '';
  const s = typeof value === 'object' ? JSON.stringify(value) : typeof value === 'string' ? neutralizeFormula(value) : String(value);
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV: header row from `columns`, CRLF line ends, fields with quotes/commas/newlines quoted, formula-like text neutralized. */
export function toCsv(rows: readonly ExportRow[], columns: readonly string[] = rows[0] ? Object.keys(rows[0]) : []): string {
  const lines = [columns.map((c) => csvField(c)).join(',')];
  for (const row of rows) lines.push(columns.map((c) => csvField(row[c])).join(','));
  return lines.join('\r\n') + '\r\n';
}

/** Parse CSV written by toCsv (for round-trip tests and re-import). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Per-problem fields shared by the CLI's result lines and the app's JSONL export.

/**
 * lm-evaluation-harness' --log_samples fields (lm_eval/evaluator.py, `example = {"doc_id", "doc",
 * "target", "arguments", "resps", "filtered_resps", "filter", "metrics", ...}` updated with the
 * metric values), for one problem, under its strict-match filter (numeric datasets) or LLM-Adapters'
 * letter rule (AQuA, which gsm8k_cot has no rule for). "doc" and "arguments" are left out: the
 * question and prompt are in our own fields. resps is [[output]] (one request, one repeat).
 */
export interface LmEvalSampleFields {
  doc_id: number;
  target: string;
  resps: string[][];
  filtered_resps: string[];
  filter: string;
  metrics: string[];
  exact_match: number;
}

/** Every applicable mode's verdict, for the `scores` field. */
export function scoresOf(kind: AnswerKind, item: ScoredItem & { output?: string }): Partial<Record<ScoringMode, ModeResult>> {
  const out: Partial<Record<ScoringMode, ModeResult>> = {};
  for (const mode of modesFor(kind)) {
    const r = modeResult(kind, item, mode);
    if (r) out[mode] = r;
  }
  return out;
}

export function lmEvalSampleFields(kind: AnswerKind, item: ScoredItem & { output: string }): LmEvalSampleFields {
  const mode: ScoringMode = kind === 'letter' ? 'llm-adapters' : 'lm-eval-strict';
  const r = modeResult(kind, item, mode) ?? { pred: item.pred, correct: item.correct };
  return {
    doc_id: item.index,
    target: item.target ?? String(item.gold),
    resps: [[item.output]],
    filtered_resps: [r.pred === null ? '' : String(r.pred)],
    filter: kind === 'letter' ? 'llm-adapters-letter' : 'strict-match',
    metrics: ['exact_match'],
    exact_match: r.correct ? 1 : 0,
  };
}

/** A summary's numbers for JSON: accuracy and Wilson bounds rounded to 4 decimals. */
export function summaryJson(s: ScoreSummary): { correct: number; total: number; accuracy: number; wilson95: [number, number] } {
  const r = (x: number) => Math.round(x * 1e4) / 1e4;
  return { correct: s.correct, total: s.total, accuracy: r(s.accuracy), wilson95: [r(s.interval.lower), r(s.interval.upper)] };
}

/** A result line as the CLI writes it, as far as summaries read it. */
export interface ScoredLine {
  pred: number | string | null;
  gold: number | string;
  correct: boolean;
  output?: string;
  target?: string;
  scores?: Partial<Record<ScoringMode, ModeResult>>;
}

/** The accuracy part of a run summary (eval and merge print the same): LLM-Adapters' at the top, every mode under `scores`. */
export function resultSummary(
  kind: AnswerKind,
  lines: readonly ScoredLine[],
): ReturnType<typeof summaryJson> & { scores: Partial<Record<ScoringMode, ReturnType<typeof summaryJson>>> } {
  const byMode = summarizeModes(
    kind,
    lines.map((l) => ({ ...l, modes: l.scores })),
  );
  return {
    ...summaryJson(summarize(lines)),
    scores: Object.fromEntries(Object.entries(byMode).map(([mode, s]) => [mode, summaryJson(s)])),
  };
}
