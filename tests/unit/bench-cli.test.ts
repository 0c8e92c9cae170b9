import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { decodeStepDispatches } from './forwardStructure.ts';
import { tinyModelVocab } from '../../src/cli/makeTinyModel.ts';

/**
 * `npm run bench` smoke test on the tiny model: it runs end to end in headless Chromium and reports
 * the efficiency table. No speed is asserted (CI's software adapter says nothing about GPUs); the
 * numbers it does check are ones the bench computes from shapes, not timings.
 */
const run = promisify(execFile);

// The plain batched-decode run, shared by the JSON test and the --kv-cache test's f32 side (each
// run starts its own browser, and the machine is small): started by whichever test needs it first.
// The 500-id tiny model: the byte counts read its vocabulary from the maker, and its LM head costs
// SwiftShader a sixty-fourth of the 32000-id one's.
const JSON_MODEL = 'small-q0f32';
const JSON_ARGS = ['tsx', 'src/cli/bench.ts', '--model', `models/tiny/${JSON_MODEL}`, '--batch', '3', '--prompt-len', '8', '--gen', '4', '--json'];
const EMBEDDING_BYTES = tinyModelVocab(JSON_MODEL) * 64 * 4;
let jsonRun: Promise<{ stdout: string; stderr: string }> | undefined;
const plainJsonRun = () => (jsonRun ??= run('npx', JSON_ARGS, { timeout: 150_000 }));

describe('npm run bench', () => {
  it('prints the efficiency table for the tiny model with each tiny adapter', async () => {
    const { stdout } = await run(
      'npx',
      [
        'tsx',
        'src/cli/bench.ts',
        '--model',
        'models/tiny/q4f16_1',
        '--adapter',
        ['lora', 'series', 'parallel'].map((k) => `models/tiny/adapters/q4f16_1-${k}`).join(','),
        '--prompt-len',
        '16',
        '--gen',
        '6',
      ],
      { timeout: 150_000 },
    );
    console.log(stdout);
    expect(stdout).toMatch(/copy bandwidth\s+\d+\.\d+ GB\/s/);
    expect(stdout).toMatch(/prefill\s+\d+\.\d+ tokens\/s/);
    for (const name of ['none (base)', 'tiny lora (random)', 'tiny series (random)', 'tiny parallel (random)']) expect(stdout).toContain(name);
    expect(stdout).toContain('efficiency = bytes one decode step must read');
    expect(stdout).toMatch(/^per-kernel profile, greedy step at batch 1 .*\(\d+ dispatches/m);
    expect(stdout).toContain('GSM8K estimate: needs the batch-32 step time');
  }, 160_000);

  it('reports JSON with batched decode and consistent byte counts', async () => {
    const { stdout } = await plainJsonRun();
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r.batch).toBe(3);
    expect(r.layers).toBe(2);
    expect(r.copyBytesPerSecond).toBeGreaterThan(0);
    const d = r.decode[0];
    // Weights minus the embedding table, plus K and V of 3 sequences at a mean of 8 + 1 + 3/2 positions.
    const weights = r.memory.weights - EMBEDDING_BYTES;
    const kv = 2 * 2 * 3 * (8 + 1 + 1.5) * 2 * 16 * 4;
    expect(d.bytesPerStep).toBeCloseTo(weights + kv, 0);
    expect(d.efficiency).toBeCloseTo((d.bytesPerStep * (1000 / d.msPerStep)) / r.copyBytesPerSecond, 6);
    // Dispatches the engine counted as it encoded a step, against the forward's structure.
    expect(d.dispatchesPerStep).toBe(decodeStepDispatches(r.layers, false));
    expect(d.greedy.dispatchesPerStep).toBe(decodeStepDispatches(r.layers, true));
    expect(d.encodeMsPerStep).toBeGreaterThan(0);
    expect(d.greedy.encodeMsPerStep).toBeGreaterThan(0);
    // The per-kernel profile replays the same greedy step, one timed pass per dispatch.
    expect(r.profile.batch).toBe(3);
    expect(r.profile.dispatches).toBe(d.greedy.dispatchesPerStep);
    expect(r.profile.kernels.reduce((a: number, k: { count: number }) => a + k.count, 0)).toBe(r.profile.dispatches);
    expect(r.profile.totalUs).toBeGreaterThan(0);
    expect(r.gsm8k).toBeNull();
    expect(r.gsm8kSkipped).toMatch(/--batch 32/);
  }, 160_000);

  it('--kv-cache f16 runs small-q0f32 with an f16 cache: the report names it, and bytes per step count the cache at 2 bytes a value', async () => {
    // One after another: each starts its own browser, and the machine is small.
    const f16 = await run('npx', [...JSON_ARGS, '--kv-cache', 'f16'], { timeout: 150_000 });
    const auto = await plainJsonRun();
    const r = JSON.parse(f16.stdout.trim().split('\n').pop()!);
    const a = JSON.parse(auto.stdout.trim().split('\n').pop()!);
    expect([r.kvCache, a.kvCache]).toEqual(['f16', 'f32']);
    expect(r.memory.kvCache * 2).toBe(a.memory.kvCache);
    expect(r.memory.weights).toBe(a.memory.weights);
    // As above, with K and V in f16: 3 sequences at a mean of 8 + 1 + 3/2 positions.
    const kv = 2 * 2 * 3 * (8 + 1 + 1.5) * 2 * 16 * 2;
    expect(r.decode[0].bytesPerStep).toBeCloseTo(r.memory.weights - EMBEDDING_BYTES + kv, 0);
    await expect(run('npx', [...JSON_ARGS, '--kv-cache', 'half'], { timeout: 60_000 })).rejects.toThrow(/--kv-cache expects one of auto, f16, f32, got "half"/);
  }, 320_000);

  it('times a beam-search step at N beams beside the greedy step at batch N, and at batch 32 estimates GSM8K (labelled SwiftShader)', async () => {
    // The 500-id tiny model: nothing here reads the vocabulary, and the run takes 28 s instead of q0f32's 42 s on a 2-core machine.
    const { stdout } = await run(
      'npx',
      ['tsx', 'src/cli/bench.ts', '--model', 'models/tiny/small-q0f32', '--batch', '32', '--prompt-len', '8', '--gen', '2', '--json'],
      { timeout: 150_000 },
    );
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    // No speed is asserted (software adapter); the ratios must be the ratios of the reported times.
    expect(r.beam.numBeams).toBe(32);
    expect(r.beam.msPerStep).toBeGreaterThan(0);
    expect(r.beam.vsGreedyStep).toBeCloseTo(r.beam.msPerStep / r.decode[0].greedy.msPerStep, 6);
    expect(r.beam.vsReadBackStep).toBeCloseTo(r.beam.msPerStep / r.decode[0].msPerStep, 6);
    // 768 shared prompt tokens once and 1319 x 132 own ones at the measured prefill rate, ceil(1319 / 32) batches of 256 batch-32 greedy steps.
    const g = r.gsm8k;
    expect(g.software).toBe(true);
    expect(g.label).toMatch(/SwiftShader/);
    expect(g.prefillSeconds).toBeCloseTo((768 + 1319 * (900 - 768)) / r.prefillTokensPerSecond, 6);
    expect(g.decodeSeconds).toBeCloseTo((Math.ceil(1319 / 32) * 256 * r.decode[0].greedy.msPerStep) / 1000, 6);
    expect(g.totalSeconds).toBeCloseTo(g.prefillSeconds + g.decodeSeconds, 6);
  }, 160_000);

  it('prints every phase and step with its rate on stderr as it goes, before the table', async () => {
    const { spawn } = await import('node:child_process');
    // Which stream each chunk came on, in arrival order: progress must precede the result.
    const chunks: { stream: 'out' | 'err'; text: string }[] = [];
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('npx', [
        'tsx',
        'src/cli/bench.ts',
        '--model',
        'models/tiny/q0f32',
        '--adapter',
        'models/tiny/adapters/q0f32-lora',
        '--prompt-len',
        '8',
        '--gen',
        '4',
      ]);
      child.stdout.on('data', (d: Buffer) => chunks.push({ stream: 'out', text: d.toString() }));
      child.stderr.on('data', (d: Buffer) => chunks.push({ stream: 'err', text: d.toString() }));
      child.on('error', reject);
      child.on('close', (c) => resolve(c ?? -1));
    });
    expect(code).toBe(0);
    const err = chunks
      .filter((c) => c.stream === 'err')
      .map((c) => c.text)
      .join('');
    const lines = err.split('\n').filter((l) => l.startsWith('bench: '));
    expect(lines[0]).toBe('bench: starting the browser');
    expect(lines.some((l) => /^bench: loading the model: shard 1 of \d+/.test(l))).toBe(true);
    expect(lines).toContain('bench: measuring copy bandwidth');
    expect(lines.some((l) => l.startsWith('bench: prefill, 8 tokens'))).toBe(true);
    for (const which of ['base model', 'adapter tiny lora (random)'])
      for (const path of ['logits read back', 'GPU argmax, pipelined']) {
        const phase = `bench: decode, ${which} (${path})`;
        expect(lines, phase).toContain(`${phase}: step 0 of 3`);
        expect(
          lines.some((l) => new RegExp(`^${phase.replace(/[()]/g, '\\$&')}: step 3 of 3, \\d+\\.\\d\\d steps/s$`).test(l)),
          phase,
        ).toBe(true);
      }
    expect(lines.some((l) => l.startsWith('bench: beam search, 1 beams'))).toBe(true);
    // Every progress line came before the first byte of the table.
    const firstOut = chunks.findIndex((c) => c.stream === 'out');
    const lastProgress = chunks.findLastIndex((c) => c.stream === 'err' && c.text.includes('bench: '));
    expect(firstOut).toBeGreaterThan(lastProgress);
  }, 160_000);

  it('refuses --train without a synthetic 7B-shaped model, before starting a browser', async () => {
    await expect(run('npx', ['tsx', 'src/cli/bench.ts', '--model', 'models/tiny/q0f32', '--train'], { timeout: 60_000 })).rejects.toThrow(
      /--train needs --model synthetic:LAYERS/,
    );
  }, 60_000);

  it('explains a bad --model', async () => {
    await expect(run('npx', ['tsx', 'src/cli/bench.ts', '--model', 'src'], { timeout: 60_000 })).rejects.toThrow(/not a converted model directory/);
  }, 60_000);
});
