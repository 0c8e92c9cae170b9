import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(ROOT, '../shared/data'));
let dir: string;

function score(args: string[]) {
  const r = spawnSync('npx', ['tsx', 'src/cli/score.ts', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const lines = r.stdout.trim().split('\n');
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, last: lines[lines.length - 1] };
}

function file(name: string, lines: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'score-cli-'));
});

describe('npm run score', () => {
  it('scores GSM8K predictions against the OpenAI jsonl and writes --out', () => {
    const preds = file('gsm8k.jsonl', [
      { index: 0, output: 'Janet sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 = $18. The answer is 18.' },
      { index: 1, output: 'It takes 2 + 1 = 3 bolts.\n#### 3' },
      { index: 2, output: 'I am not sure.' },
      { index: 3, output: 'A: 1,000' },
    ]);
    const out = join(dir, 'scored.jsonl');
    const r = score(['--dataset', 'gsm8k', '--data', join(DATA_DIR, 'gsm8k/test.jsonl'), '--predictions', preds, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.last);
    expect(summary).toMatchObject({ accuracy: 0.5, correct: 2, total: 4 });
    const rows = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows).toEqual([
      { index: 0, pred: 18, gold: 18, correct: true },
      { index: 1, pred: 3, gold: 3, correct: true },
      { index: 2, pred: null, gold: 70000, correct: false },
      { index: 3, pred: 1000, gold: 540, correct: false },
    ]);
  });

  it('scores AQuA letters and SVAMP numbers from the LLM-Adapters json', () => {
    const aqua = score([
      '--dataset',
      'aqua',
      '--data',
      join(DATA_DIR, 'llm-adapters/AQuA/test.json'),
      '--predictions',
      file('aqua.jsonl', [
        { index: 0, output: 'The answer is (A).' },
        { index: 1, output: 'so (C)' },
      ]),
    ]);
    expect(aqua.status, aqua.stderr).toBe(0);
    expect(JSON.parse(aqua.last)).toMatchObject({ total: 2 });
    const svamp = score([
      '--dataset',
      'svamp',
      '--data',
      join(DATA_DIR, 'llm-adapters/SVAMP/test.json'),
      '--predictions',
      file('svamp.jsonl', [{ index: 0, output: 'Each person ate 8 crackers. The answer is 8.' }]),
    ]);
    expect(svamp.status, svamp.stderr).toBe(0);
    expect(JSON.parse(svamp.last)).toMatchObject({ accuracy: 1, correct: 1, total: 1 });
  });

  it('clear errors: missing file, index out of range, malformed lines by number', () => {
    const data = join(DATA_DIR, 'gsm8k/test.jsonl');
    const missing = score(['--dataset', 'gsm8k', '--data', join(dir, 'nope.jsonl'), '--predictions', file('p.jsonl', [{ index: 0, output: '1' }])]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/Data file not found: .*nope\.jsonl/);

    const range = score(['--dataset', 'gsm8k', '--data', data, '--predictions', file('range.jsonl', [{ index: 1319, output: '1' }])]);
    expect(range.status).toBe(2);
    expect(range.stderr).toMatch(/index 1319 is out of range \(the data has 1319 items, 0\.\.1318\)/);

    const bad = score([
      '--dataset',
      'gsm8k',
      '--data',
      data,
      '--predictions',
      file('bad.jsonl', [{ index: 0, output: 'fine' }, '{"index": 1, "output": ', { index: -1, output: 'x' }, { index: 2 }]),
    ]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/line 2: invalid JSON/);
    expect(bad.stderr).toMatch(/line 3: "index" must be a non-negative integer/);
    expect(bad.stderr).toMatch(/line 4: "output" must be a string/);

    const unknown = score(['--dataset', 'math', '--data', data, '--predictions', file('p2.jsonl', [{ index: 0, output: '1' }])]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown --dataset "math"/);
  });
});

describe('npm run score -- --mode', () => {
  const outputs = [
    { index: 0, output: 'Janet sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 = $18. The answer is 18.' },
    { index: 1, output: 'It takes 2 + 1 = 3 bolts.\n#### 3' },
    { index: 2, output: 'I am not sure.' },
    { index: 3, output: 'A: 1,000' },
  ];

  it('lm-eval-strict: "The answer is (\\-?[0-9\\.\\,]+)." against the text after ####; the summary has every mode', () => {
    const out = join(dir, 'strict.jsonl');
    const r = score([
      '--dataset',
      'gsm8k',
      '--data',
      join(DATA_DIR, 'gsm8k/test.jsonl'),
      '--predictions',
      file('modes.jsonl', outputs),
      '--mode',
      'lm-eval-strict',
      '--out',
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.last);
    expect(summary).toMatchObject({ mode: 'lm-eval-strict', correct: 1, total: 4, accuracy: 0.25 });
    // By hand: strict finds only line 0's "The answer is 18."; flexible's last number-like match is
    // "18." (-> 18), "3", nothing, "1,000" (-> 1000 != 540).
    expect(summary.scores).toMatchObject({
      'llm-adapters': { correct: 2, total: 4 },
      'lm-eval-strict': { correct: 1, total: 4 },
      'lm-eval-flexible': { correct: 2, total: 4 },
    });
    expect(
      readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { index: 0, pred: '18', gold: '18', correct: true },
      { index: 1, pred: '[invalid]', gold: '3', correct: false },
      { index: 2, pred: '[invalid]', gold: '70000', correct: false },
      { index: 3, pred: '[invalid]', gold: '540', correct: false },
    ]);
  });

  it('lm-eval-flexible, and clear errors for an unknown mode or an lm-eval mode on AQuA letters', () => {
    const flexible = score([
      '--dataset',
      'gsm8k',
      '--data',
      join(DATA_DIR, 'gsm8k/test.jsonl'),
      '--predictions',
      file('modes2.jsonl', outputs),
      '--mode',
      'lm-eval-flexible',
    ]);
    expect(flexible.status, flexible.stderr).toBe(0);
    expect(JSON.parse(flexible.last)).toMatchObject({ mode: 'lm-eval-flexible', correct: 2, total: 4 });
    const unknown = score([
      '--dataset',
      'gsm8k',
      '--data',
      join(DATA_DIR, 'gsm8k/test.jsonl'),
      '--predictions',
      file('modes3.jsonl', outputs),
      '--mode',
      'lm-eval',
    ]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown --mode "lm-eval": use one of llm-adapters, lm-eval-strict, lm-eval-flexible/);
    const aqua = score([
      '--dataset',
      'aqua',
      '--data',
      join(DATA_DIR, 'llm-adapters/AQuA/test.json'),
      '--predictions',
      file('modes4.jsonl', [{ index: 0, output: '(A)' }]),
      '--mode',
      'lm-eval-strict',
    ]);
    expect(aqua.status).toBe(2);
    expect(aqua.stderr).toMatch(/--mode lm-eval-strict has no rule for aqua's option letters/);
  });
});
