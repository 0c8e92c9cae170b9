/**
 * npm run merge -- <results.jsonl ...> [--out merged.jsonl]
 *
 * Merges the result files of one run's parts (`npm run eval -- --shard K/N --out part-K.jsonl`)
 * into one: checks that every line's run record agrees (naming the field that differs), that every
 * selected problem is there (listing the missing ones), and refuses a problem present twice with
 * different outputs; a duplicate with the same output counts once (src/reasoning/mergeResults.ts).
 * The last stdout line is the summary `npm run eval` prints for a whole run (throughput, which
 * the parts measured apart, is null). --out writes the merged lines in run order.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runMain, UsageError } from './args.ts';
import { DATASETS } from '../reasoning/datasets.ts';
import { describeIndices, mergeResults, type MergeInput, type MergeLine } from '../reasoning/mergeResults.ts';
import { resultSummary, type ScoredLine } from '../reasoning/export.ts';

const USAGE = 'usage: npm run merge -- <results.jsonl ...> [--out merged.jsonl]';

function readLines(path: string): MergeInput {
  if (!existsSync(path)) throw new Error(`${path}: no such file.`);
  const lines: MergeLine[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      if (raw.trim() === '') return;
      let line: unknown;
      try {
        line = JSON.parse(raw);
      } catch (e) {
        throw new Error(`${path} line ${i + 1} is not JSON (${(e as Error).message}); a part cut off mid-write is finished by resuming it with npm run eval.`, {
          cause: e,
        });
      }
      const l = line as Partial<MergeLine>;
      if (typeof line !== 'object' || line === null || !Number.isInteger(l.index) || typeof l.output !== 'string') {
        throw new Error(`${path} line ${i + 1} is not a result line of npm run eval (no "index" and "output").`);
      }
      lines.push(line as MergeLine);
    });
  return { name: path, lines };
}

async function main() {
  const { values, positionals } = (() => {
    try {
      return parseArgs({ args: process.argv.slice(2), options: { out: { type: 'string' } }, allowPositionals: true, strict: true });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })();
  if (positionals.length === 0) throw new UsageError('Give the result files to merge.');
  const merged = mergeResults(positionals.map(readLines));
  if (merged.duplicates.length > 0) {
    process.stderr.write(`note: problems ${describeIndices(merged.duplicates)} appear more than once with the same output; counted once\n`);
  }
  if (merged.environments.length > 1) {
    process.stderr.write(
      `note: the parts ran in ${merged.environments.length} environments: ${merged.environments.map((e) => `${e.browser} on ${e.gpuAdapter}`).join('; ')}\n`,
    );
  }
  const { record } = merged;
  const started = merged.lines.map((l) => l.record!.dates.started).sort()[0];
  if (values.out) writeFileSync(values.out, merged.lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const run = (merged.lines[0] as { run?: { prompt?: string; adapter?: string | null; model?: string } }).run;
  const summary = resultSummary(DATASETS[record.dataset.name].answerKind, merged.lines as unknown as ScoredLine[]);
  process.stdout.write(
    JSON.stringify({
      dataset: record.dataset.name,
      prompt: run?.prompt ?? record.prompt.id,
      model: run?.model ?? record.model.id,
      adapter: run?.adapter ?? record.adapter?.source ?? null,
      ...summary,
      problems_per_minute: null,
      decode_tokens_per_s: null,
      ...(values.out ? { out: values.out } : {}),
      parts: positionals.length,
      record: { ...record, dates: { started, finished: new Date().toISOString() } },
    }) + '\n',
  );
}

runMain(main, USAGE);
