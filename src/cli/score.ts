/**
 * Score model outputs.
 *
 *   npm run score -- --dataset <gsm8k|svamp|aqua|mawps> --data <file> --predictions <preds.jsonl>
 *     [--mode llm-adapters|lm-eval-strict|lm-eval-flexible] [--out scored.jsonl]
 *
 * --mode (src/reasoning/score.ts): llm-adapters (default; LLM-Adapters' evaluate.py), or
 * lm-evaluation-harness gsm8k_cot's strict-match / flexible-extract filter with its exact match
 * (numeric datasets only). --data: the OpenAI GSM8K jsonl or an LLM-Adapters json array.
 * Prediction lines: {"index", "output"} (an `npm run eval` result file is one), index = 0-based
 * position in the data file. Out lines: {"index", "pred", "gold", "correct"} in that mode (lm-eval:
 * pred is the filtered response, gold the text target). The last stdout line is the JSON summary
 * {"mode", "accuracy", "correct", "total", "wilson95", "scores": every mode's}.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DATASET_NAMES, describeSkipped, isDatasetName, parseDataset, type Problem } from '../reasoning/datasets.ts';
import { DATASETS } from '../reasoning/datasets.ts';
import {
  DEFAULT_SCORING_MODE,
  isScoringMode,
  modeResult,
  modesFor,
  SCORING_MODES,
  scoreOutput,
  summarize,
  type Prediction,
  type ScoredItem,
} from '../reasoning/score.ts';
import { resultSummary } from '../reasoning/export.ts';

class CliError extends Error {}

const USAGE = `usage: npm run score -- --dataset <${DATASET_NAMES.join('|')}> --data <file> --predictions <preds.jsonl> [--mode ${SCORING_MODES.join('|')}] [--out scored.jsonl]`;

function readText(path: string, what: string): string {
  if (!existsSync(path)) throw new CliError(`${what} file not found: ${path}`);
  return readFileSync(path, 'utf8');
}

/** Prediction lines; every malformed one is reported by line number. */
export function parsePredictions(text: string): Prediction[] {
  const predictions: Prediction[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      errors.push(`line ${i + 1}: invalid JSON (${(e as Error).message})`);
      return;
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return void errors.push(`line ${i + 1}: not a JSON object`);
    const { index, output } = o as Record<string, unknown>;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) return void errors.push(`line ${i + 1}: "index" must be a non-negative integer`);
    if (typeof output !== 'string') return void errors.push(`line ${i + 1}: "output" must be a string`);
    predictions.push({ index, output });
  });
  if (errors.length > 0) throw new CliError(`Malformed prediction lines:\n  ${errors.join('\n  ')}`);
  return predictions;
}

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      dataset: { type: 'string' },
      data: { type: 'string' },
      predictions: { type: 'string' },
      out: { type: 'string' },
      mode: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.dataset || !values.data || !values.predictions) throw new CliError(USAGE);
  if (!isDatasetName(values.dataset)) throw new CliError(`Unknown --dataset "${values.dataset}": use one of ${DATASET_NAMES.join(', ')}`);
  const dataset = values.dataset;
  const mode = values.mode ?? DEFAULT_SCORING_MODE;
  if (!isScoringMode(mode)) throw new CliError(`Unknown --mode "${mode}": use one of ${SCORING_MODES.join(', ')}`);
  const kind = DATASETS[dataset].answerKind;
  if (!modesFor(kind).includes(mode)) throw new CliError(`--mode ${mode} has no rule for ${dataset}'s option letters: use ${modesFor(kind).join(', ')}`);

  const parsed = parseDataset(readText(values.data, 'Data'), dataset);
  for (const line of describeSkipped(parsed.skipped)) console.error(`warning: skipped data ${line}`);
  const byIndex = new Map<number, Problem>(parsed.problems.map((p) => [p.index, p]));
  const skippedByIndex = new Map(parsed.skipped.map((s) => [s.index, s]));

  const predictions = parsePredictions(readText(values.predictions, 'Predictions'));
  const items: (ScoredItem & { output: string })[] = [];
  const errors: string[] = [];
  const seen = new Set<number>();
  for (const prediction of predictions) {
    const problem = byIndex.get(prediction.index);
    if (!problem) {
      const skipped = skippedByIndex.get(prediction.index);
      errors.push(
        skipped
          ? `index ${prediction.index} is a data item that was skipped (line ${skipped.line}: ${skipped.reason})`
          : `index ${prediction.index} is out of range (the data has ${parsed.total} items, 0..${parsed.total - 1})`,
      );
      continue;
    }
    if (seen.has(prediction.index)) {
      errors.push(`index ${prediction.index} appears more than once`);
      continue;
    }
    seen.add(prediction.index);
    items.push({ ...scoreOutput(dataset, problem, prediction.output), output: prediction.output });
  }
  if (errors.length > 0) throw new CliError(`Predictions do not match the data:\n  ${errors.join('\n  ')}`);

  const rows = items.map((it) => {
    const r = modeResult(kind, it, mode)!;
    return { index: it.index, pred: r.pred, gold: mode === 'llm-adapters' ? it.gold : (it.target ?? String(it.gold)), correct: r.correct };
  });
  if (values.out) writeFileSync(values.out, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
  const summary = summarize(rows);
  const { scores } = resultSummary(
    kind,
    items.map((it) => ({ ...it, scores: it.modes })),
  );
  console.log(
    JSON.stringify({
      dataset,
      mode,
      accuracy: summary.accuracy,
      correct: summary.correct,
      total: summary.total,
      wilson95: [summary.interval.lower, summary.interval.upper],
      scores,
    }),
  );
}

try {
  main(process.argv.slice(2));
} catch (e) {
  const message = e instanceof CliError ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  console.error(`score: ${message}`);
  process.exit(e instanceof CliError || (e instanceof Error && e.name === 'DatasetParseError') ? 2 : 1);
}
