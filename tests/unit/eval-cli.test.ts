/**
 * `npm run eval` end to end on the tiny random-weight model (outputs are gibberish, accuracy ~0:
 * what is tested is the pipeline). Each model run starts Vite + headless Chromium with software
 * WebGPU, so the runs are few and short (--max-new-tokens 8).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseDataset } from '../../src/reasoning/datasets.ts';
import { scoreOutput } from '../../src/reasoning/score.ts';
import { wilsonInterval } from '../../src/reasoning/wilson.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(ROOT, '../shared/data'));
const GSM8K = join(DATA_DIR, 'gsm8k/test.jsonl');
const TINY = join(ROOT, 'models/tiny/q4f32_1');
const RUN_TIMEOUT = 120_000;
let dir: string;

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
  last: string;
}

/** Run the CLI (async, so vitest's timeout keeps working while it runs). */
function evalCli(args: string[], script = 'src/cli/eval.ts'): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn('npx', ['tsx', script, ...args], { cwd: ROOT, env: { ...process.env, DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT);
    child.on('error', fail);
    child.on('close', (status) => {
      clearTimeout(timer);
      const lines = stdout.trim().split('\n');
      done({ status, stdout, stderr, last: lines[lines.length - 1] });
    });
  });
}

function readLines(path: string) {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

const gsm8k = () => parseDataset(readFileSync(GSM8K, 'utf8'), 'gsm8k').problems;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'eval-cli-'));
  if (!existsSync(join(TINY, 'tensor-cache.json'))) {
    const r = spawnSync('npx', ['tsx', 'src/cli/makeTinyModel.ts', '--if-missing'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`make-tiny-model failed: ${r.stderr}`);
  }
}, 70_000);

describe('npm run eval', () => {
  const out = () => join(dir, 'results.jsonl');
  const base = ['--model', 'models/tiny/q4f32_1', '--dataset', 'gsm8k', '--prompt', 'q_end', '--max-new-tokens', '8'];

  it(
    'runs 3 GSM8K problems: one scored line each in --out, progress on stderr, a JSON summary last',
    async () => {
      const r = await evalCli([...base, '--limit', '3', '--out', out()]);
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(r.last);
      expect(summary).toMatchObject({ dataset: 'gsm8k', prompt: 'q_end', model: 'models/tiny/q4f32_1', adapter: null, total: 3 });
      expect(summary.accuracy).toBe(summary.correct / 3);
      const w = wilsonInterval(summary.correct, 3);
      expect(summary.wilson95[0]).toBeCloseTo(w.lower, 3);
      expect(summary.wilson95[1]).toBeCloseTo(w.upper, 3);
      expect(summary.problems_per_minute).toBeGreaterThan(0);
      expect(summary.decode_tokens_per_s).toBeGreaterThan(0);
      // Progress: problems done / total, accuracy with its interval, tokens/s, time left.
      expect(r.stderr).toMatch(/\[3\/3\] accuracy \d+\.\d% \(\d\/3, 95% CI [\d.]+%–[\d.]+%\) \| [\d.]+ tok\/s .* left/);

      const lines = readLines(out());
      expect(lines.map((l) => l.index)).toEqual([0, 1, 2]);
      const problems = gsm8k();
      for (const line of lines) {
        expect(typeof line.correct).toBe('boolean');
        expect(line.prompt_config).toBe('q_end');
        expect(line.run).toMatchObject({ model: 'models/tiny/q4f32_1', prompt: 'q_end', dataset: 'gsm8k' });
        expect(line.new_tokens).toBeGreaterThan(0);
        expect(line.new_tokens).toBeLessThanOrEqual(8);
        const problem = problems[line.index];
        expect(line.question).toBe(problem.question);
        const scored = scoreOutput('gsm8k', problem, line.output);
        expect({ pred: line.pred, gold: line.gold, correct: line.correct }).toEqual({ pred: scored.pred, gold: scored.gold, correct: scored.correct });
      }
      expect(lines.filter((l) => l.correct).length).toBe(summary.correct);
    },
    RUN_TIMEOUT,
  );

  it(
    'resumes with the same --out: only the missing problem runs, a half-written last line is redone',
    async () => {
      // A line cut off mid-write (the process was killed while writing problem 3).
      appendFileSync(out(), '{"index":3,"question":"Every day, Wendi feeds');
      const r = await evalCli([...base, '--limit', '4', '--out', out()]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/3 problems already done, 1 to go/);
      expect(r.stderr).toMatch(/line 4 was cut off/);
      const lines = readLines(out());
      expect(lines.map((l) => l.index)).toEqual([0, 1, 2, 3]);
      expect(JSON.parse(r.last)).toMatchObject({ total: 4 });
      const scored = scoreOutput('gsm8k', gsm8k()[3], lines[3].output);
      expect(lines[3].correct).toBe(scored.correct);
    },
    RUN_TIMEOUT,
  );

  it('refuses to resume a file made with another --prompt', async () => {
    const before = readFileSync(out(), 'utf8');
    const r = await evalCli([...base.map((a) => (a === 'q_end' ? 'a_begin' : a)), '--limit', '5', '--out', out()]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/different run .*prompt was "q_end", now "a_begin"/);
    expect(readFileSync(out(), 'utf8')).toBe(before);
  });

  it(
    'a converted adapter (tiny LoRA), a custom template file, AQuA letters; a malformed data item is reported by line and skipped',
    async () => {
      const template = join(dir, 'template.txt');
      writeFileSync(template, 'Question: {question}\nAnswer:');
      const [first] = JSON.parse(readFileSync(join(DATA_DIR, 'llm-adapters/AQuA/test.json'), 'utf8'));
      const data = join(dir, 'aqua.json');
      writeFileSync(data, `[\n  {"instruction": "no answer here"},\n  ${JSON.stringify(first)}\n]\n`);
      const adapterOut = join(dir, 'adapter.jsonl');
      const adapter = 'models/tiny/adapters/q4f32_1-lora';
      const r = await evalCli([
        '--model',
        'models/tiny/q4f32_1',
        '--adapter',
        adapter,
        '--prompt',
        template,
        '--dataset',
        'aqua',
        '--data',
        data,
        '--max-new-tokens',
        '2',
        '--out',
        adapterOut,
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/line 2 \(item 0\): missing "answer"; skipped/);
      expect(r.stderr).toMatch(/with adapter tiny lora/);
      expect(JSON.parse(r.last)).toMatchObject({ dataset: 'aqua', prompt: expect.stringMatching(/^file:.*template\.txt$/), adapter, total: 1 });
      const [line] = readLines(adapterOut);
      expect(line.index).toBe(1);
      expect(line.new_tokens).toBeLessThanOrEqual(2);
      expect(line.run.adapter).toBe(adapter);
      const problem = parseDataset(readFileSync(data, 'utf8'), 'aqua').problems[0];
      expect(line.gold).toBe(problem.gold);
      expect(line.correct).toBe(scoreOutput('aqua', problem, line.output).correct);
    },
    RUN_TIMEOUT,
  );

  it(
    '--beams 2 decodes by beam search (the summary says so); --beams 0 and --beams 1.5 are refused',
    async () => {
      const beamOut = join(dir, 'beams.jsonl');
      const [r, zero, frac] = await Promise.all([
        evalCli([...base, '--limit', '2', '--beams', '2', '--out', beamOut]),
        evalCli([...base, '--beams', '0']),
        evalCli([...base, '--beams', '1.5']),
      ]);
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(r.last);
      expect(summary).toMatchObject({ total: 2, decoding: { kind: 'beam', numBeams: 2 } });
      // Beams decode as the batch's slots: the model is loaded with exactly 2.
      expect(r.stderr).toMatch(/batch of 2 \(context: /);
      const lines = readLines(beamOut);
      expect(lines.map((l) => l.index).sort()).toEqual([0, 1]);
      for (const line of lines) {
        expect(['eos', 'length']).toContain(line.stop_reason);
        expect(line.new_tokens).toBeLessThanOrEqual(8);
      }
      expect(zero.status).not.toBe(0);
      expect(zero.stderr).toMatch(/--beams must be at least 1 \(1: greedy decoding\)/);
      expect(frac.status).not.toBe(0);
      expect(frac.stderr).toMatch(/--beams expects a non-negative integer, got "1\.5"/);
    },
    RUN_TIMEOUT,
  );

  it(
    'an unknown --dataset, an unknown --prompt or a missing --data file fail with a clear message',
    async () => {
      // Independent, and each fails before any browser starts: run them side by side.
      const [unknown, missing, badPrompt] = await Promise.all([
        evalCli(['--model', 'models/tiny/q4f32_1', '--dataset', 'gsm9k', '--limit', '1']),
        evalCli(['--model', 'models/tiny/q4f32_1', '--dataset', 'svamp', '--data', join(dir, 'nope.json'), '--limit', '1']),
        evalCli(['--model', 'models/tiny/q4f32_1', '--dataset', 'gsm8k', '--prompt', 'q_middle']),
      ]);
      expect(unknown.status).not.toBe(0);
      expect(unknown.stderr).toMatch(/Unknown --dataset "gsm9k"\. Known: gsm8k, svamp, aqua, mawps/);
      expect(missing.status).not.toBe(0);
      expect(missing.stderr).toMatch(/svamp data file .*nope\.json does not exist/);
      expect(badPrompt.status).not.toBe(0);
      expect(badPrompt.stderr).toMatch(/--prompt "q_middle" is neither a prompt configuration/);
    },
    RUN_TIMEOUT,
  );
});

describe('npm run eval -- --shard K/N, npm run merge', () => {
  const base = ['--model', 'models/tiny/q4f32_1', '--dataset', 'gsm8k', '--prompt', 'q_end', '--max-new-tokens', '6', '--limit', '7', '--seed', '3'];
  const withoutWhen = (record: Record<string, unknown>) => ({ ...record, dates: undefined, environment: undefined });

  it(
    '3 shards merged equal one run: the same output for every problem, the same summary and record',
    async () => {
      const whole = join(dir, 'whole.jsonl');
      const one = await evalCli([...base, '--out', whole]);
      expect(one.status, one.stderr).toBe(0);
      const parts = [0, 1, 2].map((k) => join(dir, `part-${k}.jsonl`));
      // One after another: each starts its own browser, and the machine is small.
      const shardRuns: Result[] = [];
      for (const [k, out] of parts.entries()) shardRuns.push(await evalCli([...base, '--shard', `${k}/3`, '--out', out]));
      for (const r of shardRuns) expect(r.status, r.stderr).toBe(0);
      const wholeLines = readLines(whole);
      const selection: number[] = wholeLines[0].record.dataset.indices;
      expect(selection).toHaveLength(7);
      // Shard K holds the selection's positions i with i mod 3 = K.
      parts.forEach((part, k) => {
        expect(
          readLines(part)
            .map((l) => l.index)
            .sort(),
        ).toEqual(selection.filter((_, i) => i % 3 === k).sort());
        expect(JSON.parse(shardRuns[k].last).shard).toBe(`${k}/3`);
      });
      // A resumed shard skips what it has.
      const again = await evalCli([...base, '--shard', '1/3', '--out', parts[1]]);
      expect(again.status, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/2 problems already done, 0 to go/);

      const mergedOut = join(dir, 'merged.jsonl');
      const merged = await evalCli([...parts, '--out', mergedOut], 'src/cli/merge.ts');
      expect(merged.status, merged.stderr).toBe(0);
      const mergedLines = readLines(mergedOut);
      expect(mergedLines.map((l) => l.index)).toEqual(selection);
      const byIndex = new Map(wholeLines.map((l) => [l.index, l]));
      for (const l of mergedLines) {
        const w = byIndex.get(l.index);
        expect({ output: l.output, scores: l.scores, correct: l.correct }).toEqual({ output: w.output, scores: w.scores, correct: w.correct });
        expect(withoutWhen(l.record)).toEqual(withoutWhen(w.record));
      }
      const a = JSON.parse(one.last);
      const b = JSON.parse(merged.last);
      for (const key of ['dataset', 'prompt', 'model', 'adapter', 'total', 'correct', 'accuracy', 'wilson95', 'scores']) expect(b[key], key).toEqual(a[key]);
      expect(withoutWhen(b.record)).toEqual(withoutWhen(a.record));
      // Every mode is there, each with its Wilson interval.
      expect(Object.keys(a.scores)).toEqual(['llm-adapters', 'lm-eval-strict', 'lm-eval-flexible']);

      // Missing parts are listed; a part from another run is refused by the field that differs.
      const missing = await evalCli([parts[0], parts[2]], 'src/cli/merge.ts');
      expect(missing.status).not.toBe(0);
      expect(missing.stderr).toMatch(
        new RegExp(
          `2 of the run's 7 problems are missing: ${selection
            .filter((_, i) => i % 3 === 1)
            .sort((x, y) => x - y)
            .join(', ')}\\.`,
        ),
      );
      const foreign = join(dir, 'foreign.jsonl');
      writeFileSync(foreign, readFileSync(parts[1], 'utf8').replace(/"maxNewTokens":6/g, '"maxNewTokens":7'));
      const mixed = await evalCli([parts[0], foreign, parts[2]], 'src/cli/merge.ts');
      expect(mixed.status).not.toBe(0);
      expect(mixed.stderr).toMatch(/belongs to a different run than .*part-0\.jsonl line 1: decoding\.maxNewTokens: 6 vs 7/);
    },
    6 * RUN_TIMEOUT,
  );

  it(
    "--kv-cache f16: the record names the cache, and resume and merge refuse to mix it with the f32 (auto) cache's parts",
    async () => {
      const f16Part = join(dir, 'kv-f16-part-0.jsonl');
      const autoPart = join(dir, 'kv-auto-part-1.jsonl');
      const shortRun = ['--model', 'models/tiny/q4f32_1', '--dataset', 'gsm8k', '--prompt', 'q_end', '--max-new-tokens', '4', '--limit', '4'];
      const f16 = await evalCli([...shortRun, '--kv-cache', 'f16', '--shard', '0/2', '--out', f16Part]);
      expect(f16.status, f16.stderr).toBe(0);
      expect(f16.stderr).toMatch(/model loaded on .* \(KV cache f16\)/);
      expect(JSON.parse(f16.last).record.kvCache).toBe('f16');
      const auto = await evalCli([...shortRun, '--shard', '1/2', '--out', autoPart]);
      expect(auto.status, auto.stderr).toBe(0);
      // q4f32_1's own cache is f32: 'auto' keeps it, and the record says so.
      for (const [part, kv] of [
        [f16Part, 'f16'],
        [autoPart, 'f32'],
      ] as const) {
        for (const line of readLines(part)) expect(line.record.kvCache).toBe(kv);
      }
      const mixed = await evalCli([f16Part, autoPart], 'src/cli/merge.ts');
      expect(mixed.status).not.toBe(0);
      expect(mixed.stderr).toMatch(/belongs to a different run than .*kv-f16-part-0\.jsonl line 1: kvCache: "f16" vs "f32"/);
      // Resuming the f16 part without --kv-cache f16 is refused before anything runs.
      const before = readFileSync(f16Part, 'utf8');
      const resumed = await evalCli([...shortRun, '--shard', '0/2', '--out', f16Part]);
      expect(resumed.status).not.toBe(0);
      expect(resumed.stderr).toMatch(/different run .*record kvCache: "f16" vs "f32"/);
      expect(readFileSync(f16Part, 'utf8')).toBe(before);
      // A part written before records named the cache ran the mode's own (f32 for q4f32_1): resuming
      // it with 'auto' goes on, and with an f16 cache is refused.
      const oldPart = join(dir, 'kv-old-part-1.jsonl');
      const oldLines = readLines(autoPart).map((l) => {
        const { kvCache: _k, ...record } = l.record;
        return JSON.stringify({ ...l, record });
      });
      writeFileSync(oldPart, oldLines.join('\n') + '\n');
      const oldAuto = await evalCli([...shortRun, '--shard', '1/2', '--out', oldPart]);
      expect(oldAuto.status, oldAuto.stderr).toBe(0);
      expect(oldAuto.stderr).toMatch(/resuming .*kv-old-part-1\.jsonl: 2 problems already done, 0 to go/);
      const oldF16 = await evalCli([...shortRun, '--kv-cache', 'f16', '--shard', '1/2', '--out', oldPart]);
      expect(oldF16.status).not.toBe(0);
      expect(oldF16.stderr).toMatch(/different run .*record kvCache: "f32" vs "f16"/);
      const bad = await evalCli([...shortRun, '--kv-cache', 'fp16']);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--kv-cache expects one of auto, f16, f32, got "fp16"/);
    },
    4 * RUN_TIMEOUT,
  );

  it(
    'a bad --shard fails with a clear message before anything runs',
    async () => {
      const [over, negative, zero, letters] = await Promise.all(['4/3', '-1/2', '1/0', 'a/b'].map((spec) => evalCli([...base, '--shard', spec])));
      expect(over.stderr).toMatch(/--shard 4\/3: K must be less than N; shards of 3 are numbered 0 to 2/);
      expect(negative.stderr).toMatch(/--shard -1\/2: K \(this shard's number\) must not be negative/);
      expect(zero.stderr).toMatch(/--shard 1\/0: N \(the number of shards\) must be at least 1/);
      expect(letters.stderr).toMatch(/--shard expects K\/N with whole numbers .* got "a\/b"/);
      for (const r of [over, negative, zero, letters]) expect(r.status).toBe(2);
    },
    RUN_TIMEOUT,
  );
});
