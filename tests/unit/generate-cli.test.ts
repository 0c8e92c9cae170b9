import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadReferenceLlama, referenceAdapterFromManifest } from '../../src/engine/reference.ts';
import { parseAdapterManifest, readAdapterTensors } from '../../src/formats/adapterFormat.ts';
import { dirModelSource } from '../../src/cli/hfCheckpoint.ts';

/**
 * `npm run generate` end to end (Vite + headless Chromium + the WebGPU engine) against the
 * reference pass run here in Node on the same converted files.
 */
const run = promisify(execFile);
const PROMPT = [1, 450, 4996, 17354, 1701];

async function generate(args: string[]) {
  const { stdout } = await run('npx', ['tsx', 'src/cli/generate.ts', ...args], { timeout: 120_000, maxBuffer: 1 << 24 });
  const last = stdout.trim().split('\n').pop()!;
  return JSON.parse(last) as { ids: number[]; text: string | null; adapter: string | null; prefill_tokens_per_s: number; decode_tokens_per_s: number };
}

async function referenceIds(modelDir: string, adapterDir: string | null, n: number) {
  let adapter;
  if (adapterDir) {
    const manifest = parseAdapterManifest(readFileSync(`${adapterDir}/adapter.json`, 'utf8'));
    const shards = new Map(manifest.shards.map((s) => [s.dataPath, readFileSync(`${adapterDir}/${s.dataPath}`)] as const));
    adapter = referenceAdapterFromManifest(manifest, await readAdapterTensors(manifest, shards));
  }
  const ref = await loadReferenceLlama(dirModelSource(modelDir), adapter);
  return ref.greedyGenerate(PROMPT, n);
}

describe('npm run generate', () => {
  it('prints the reference greedy ids, text and speeds as JSON (odd widths, q0f32, no tokenizer needed)', async () => {
    const out = await generate(['--model', 'models/tiny/odd-q0f32', '--prompt-ids', PROMPT.join(','), '--max-new-tokens', '12', '--json']);
    expect(out.ids).toEqual(await referenceIds('models/tiny/odd-q0f32', null, 12));
    expect(typeof out.text).toBe('string');
    expect(out.adapter).toBeNull();
    expect(out.decode_tokens_per_s).toBeGreaterThan(0);
  }, 150_000);

  it('runs a converted checkpoint that has no tokenizer.json (the dev server answers the missing file with its index page)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rl-no-tokenizer-'));
    try {
      cpSync('models/tiny/odd-q0f32', dir, { recursive: true, filter: (p) => !/tokenizer(_config)?\.json$/.test(p) });
      const out = await generate(['--model', dir, '--prompt-ids', PROMPT.join(','), '--max-new-tokens', '6', '--json']);
      expect(out.ids).toEqual(await referenceIds(dir, null, 6));
      expect(out.text).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);

  it.each(['lora', 'series', 'parallel'])(
    'runs with a converted %s adapter and matches the reference',
    async (kind) => {
      const adapterDir = `models/tiny/adapters/q4f32_1-${kind}`;
      const out = await generate([
        '--model',
        'models/tiny/q4f32_1',
        '--adapter',
        adapterDir,
        '--prompt-ids',
        PROMPT.join(','),
        '--max-new-tokens',
        '10',
        '--json',
      ]);
      expect(out.adapter).toBe(`tiny ${kind} (random)`);
      expect(out.ids).toEqual(await referenceIds('models/tiny/q4f32_1', adapterDir, 10));
    },
    150_000,
  );

  it('refuses an adapter made for another base with a clear message', async () => {
    await expect(
      generate(['--model', 'models/tiny/q0f32', '--adapter', 'models/tiny/adapters/q4f32_1-lora', '--prompt-ids', '1,2', '--max-new-tokens', '2', '--json']),
    ).rejects.toThrow(/different base model/);
  }, 150_000);

  it.each([
    [['--adapter', 'models/tiny/adapters/no-such-adapter'], /--adapter models\/tiny\/adapters\/no-such-adapter: no such directory/],
    [['--adapter', 'models/tiny/q4f32_1'], /is not a converted adapter directory \(no adapter\.json\)/],
    [['--temperature', 'hot'], /--temperature got "hot"/],
    [['--top-p', '1.5'], /--top-p got "1.5"/],
    [['--seed', '-1'], /--seed expects a non-negative integer/],
  ])(
    'checks %j before the browser starts: one clear line, no stack trace',
    async (bad, message) => {
      const args = ['tsx', 'src/cli/generate.ts', '--model', 'models/tiny/q4f32_1', '--prompt-ids', '1,2', '--max-new-tokens', '2', ...bad];
      const err = (await run('npx', args, { timeout: 60_000 }).then(
        () => null,
        (e: { stderr: string; code: number }) => e,
      ))!;
      expect(err).not.toBeNull();
      expect(err.stderr).toMatch(message);
      expect(err.code).toBe(2);
      // Nothing was started: the first progress line of a run is "starting the browser".
      expect(err.stderr).not.toContain('starting the browser');
      expect(err.stderr).not.toMatch(/^\s+at /m);
    },
    60_000,
  );

  it('reports its phases on stderr as it goes: browser, model shards, generation', async () => {
    const { stderr } = await run(
      'npx',
      ['tsx', 'src/cli/generate.ts', '--model', 'models/tiny/q4f32_1', '--prompt-ids', '1,450', '--max-new-tokens', '3', '--json'],
      {
        timeout: 120_000,
      },
    );
    const lines = stderr.split('\n').filter((l) => l.startsWith('generate: '));
    expect(lines[0]).toBe('generate: starting the browser');
    expect(lines).toContain('generate: loading the model');
    expect(lines.some((l) => /^generate: loading the model: shard 1 of \d+/.test(l))).toBe(true);
    expect(lines[lines.length - 1]).toBe('generate: generating 3 tokens after 2 prompt tokens');
  }, 150_000);

  it('explains a directory that is not a converted model', async () => {
    await expect(generate(['--model', 'src', '--prompt-ids', '1', '--json'])).rejects.toThrow(/not a converted model directory/);
  }, 60_000);
});
