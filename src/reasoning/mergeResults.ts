/**
 * Put the parts of one run back together (shards from `npm run eval -- --shard K/N`, or any split
 * of one run's result lines). Pure: src/cli/merge.ts reads the files and prints the summary.
 *
 * Rules:
 *  - every line carries a run record, and every record agrees with the first one on every field
 *    but RECORD_FREE_FIELDS (dates, environment, shard, file locations); a difference names the field;
 *  - every index of the record's selection (dataset.indices) is present: missing ones are listed;
 *    a line whose index is not in the selection is refused;
 *  - an index present twice with the same output (a shard file given twice, or a rerun that came
 *    out the same: decoding is deterministic) counts once; with different outputs it is refused,
 *    since nothing says which one the run should keep.
 * The merged lines come back in selection order with `dataset.shard` cleared: what one run writes.
 */
import { recordDifferences, type RunRecord } from './runRecord.ts';

/** What merging reads from a result line (src/cli/eval.ts ResultLine). */
export interface MergeLine {
  index: number;
  output: string;
  record?: RunRecord;
  [key: string]: unknown;
}

export interface MergeInput {
  /** How errors name the file. */
  name: string;
  lines: MergeLine[];
}

export interface Merged {
  record: RunRecord;
  lines: MergeLine[];
  /** Indices given more than once with the same output (counted once). */
  duplicates: number[];
  /** Distinct environments (browser, GPU adapter, engine) the parts ran in. */
  environments: RunRecord['environment'][];
}

export class MergeError extends Error {
  override name = 'MergeError';
}

/** "3, 5-9, 12": indices as ranges, for messages. */
export function describeIndices(indices: readonly number[], max = 40): string {
  const sorted = [...indices].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.length > max ? `${parts.slice(0, max).join(', ')}, … (${sorted.length} in all)` : parts.join(', ');
}

export function mergeResults(inputs: readonly MergeInput[]): Merged {
  let ref: { record: RunRecord; where: string } | null = null;
  const byIndex = new Map<number, { line: MergeLine; where: string }>();
  const duplicates: number[] = [];
  const environments = new Map<string, RunRecord['environment']>();
  for (const input of inputs) {
    input.lines.forEach((line, i) => {
      const where = `${input.name} line ${i + 1}`;
      if (!line.record) throw new MergeError(`${where} has no run record (it was written before records existed): rerun that part.`);
      if (!ref) ref = { record: line.record, where };
      const diffs = recordDifferences(ref.record, line.record);
      if (diffs.length > 0) throw new MergeError(`${where} belongs to a different run than ${ref.where}: ${diffs.join('; ')}.`);
      environments.set(JSON.stringify(line.record.environment), line.record.environment);
      const seen = byIndex.get(line.index);
      if (seen) {
        if (seen.line.output !== line.output) {
          throw new MergeError(`Problem ${line.index} is in ${seen.where} and ${where} with different outputs: refusing to choose one (remove one of them).`);
        }
        duplicates.push(line.index);
        return;
      }
      byIndex.set(line.index, { line, where });
    });
  }
  if (!ref) throw new MergeError('No result lines to merge.');
  const record: RunRecord = (ref as { record: RunRecord }).record;
  const selection = new Set(record.dataset.indices);
  const stray = [...byIndex.keys()].filter((i) => !selection.has(i));
  if (stray.length > 0) throw new MergeError(`Problems ${describeIndices(stray)} are not in the run's selection of ${selection.size} problems.`);
  const missing = record.dataset.indices.filter((i) => !byIndex.has(i));
  if (missing.length > 0) {
    throw new MergeError(
      `${missing.length} of the run's ${selection.size} problems are missing: ${describeIndices(missing)}. Run (or resume) the shards that hold them.`,
    );
  }
  const whole = (r: RunRecord): RunRecord => ({ ...r, dataset: { ...r.dataset, shard: null } });
  const lines = record.dataset.indices.map((i) => {
    const line = byIndex.get(i)!.line;
    return { ...line, record: whole(line.record!) };
  });
  return { record: whole(record), lines, duplicates, environments: [...environments.values()] };
}
