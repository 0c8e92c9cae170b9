/**
 * Score model outputs with LLM-Adapters' rules.
 *
 *   npm run score -- --dataset <gsm8k|svamp|aqua|mawps> --data <file> --predictions <preds.jsonl> [--out scored.jsonl]
 *
 * --data: the OpenAI GSM8K jsonl or an LLM-Adapters json array. Prediction lines: {"index", "output"},
 * index = 0-based position in the data file. Out lines: {"index", "pred", "gold", "correct"}.
 * The last stdout line is the JSON summary {"accuracy", "correct", "total", ...}.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DATASET_NAMES, describeSkipped, isDatasetName, parseDataset, type Problem } from '../reasoning/datasets.ts';
import { scoreOutput, summarize, type Prediction, type ScoredItem } from '../reasoning/score.ts';

class CliError extends Error {}

const USAGE = `usage: npm run score -- --dataset <${DATASET_NAMES.join('|')}> --data <file> --predictions <preds.jsonl> [--out scored.jsonl]`;

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

  const parsed = parseDataset(readText(values.data, 'Data'), dataset);
  for (const line of describeSkipped(parsed.skipped)) console.error(`warning: skipped data ${line}`);
  const byIndex = new Map<number, Problem>(parsed.problems.map((p) => [p.index, p]));
  const skippedByIndex = new Map(parsed.skipped.map((s) => [s.index, s]));

  const predictions = parsePredictions(readText(values.predictions, 'Predictions'));
  const items: ScoredItem[] = [];
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
    items.push(scoreOutput(dataset, problem, prediction.output));
  }
  if (errors.length > 0) throw new CliError(`Predictions do not match the data:\n  ${errors.join('\n  ')}`);

  if (values.out) writeFileSync(values.out, items.map((it) => JSON.stringify({ index: it.index, pred: it.pred, gold: it.gold, correct: it.correct })).join('\n') + (items.length ? '\n' : ''));
  const summary = summarize(items);
  console.log(JSON.stringify({ dataset, accuracy: summary.accuracy, correct: summary.correct, total: summary.total, wilson95: [summary.interval.lower, summary.interval.upper] }));
}

try {
  main(process.argv.slice(2));
} catch (e) {
  const message = e instanceof CliError ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  console.error(`score: ${message}`);
  process.exit(e instanceof CliError || (e instanceof Error && e.name === 'DatasetParseError') ? 2 : 1);
}
