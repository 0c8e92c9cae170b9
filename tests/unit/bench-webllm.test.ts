import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * `npm run bench -- --webllm <id>`: after our measurements, WebLLM on the same page. Here there is no
 * internet (and no shader-f16), so WebLLM cannot load its model library and weights: the run must
 * say so in one line and still succeed. On a machine with internet and a GPU the same command prints
 * a measured row instead; either is right, one of the two is required.
 */
const run = promisify(execFile);
const ID = 'Llama-2-7b-chat-hf-q4f16_1-MLC';
const ARGS = ['tsx', 'src/cli/bench.ts', '--model', 'models/tiny/q4f32_1', '--prompt-len', '8', '--gen', '3', '--webllm', ID];

describe('npm run bench -- --webllm', () => {
  it('prints WebLLM side by side, or one clear line saying why it was skipped, and exits 0', async () => {
    // execFile rejects on a non-zero exit: resolving is the exit-0 assertion.
    const { stdout } = await run('npx', ARGS, { timeout: 170_000 });
    console.log(stdout);
    expect(stdout).toMatch(/prefill\s+\d+\.\d+ tokens\/s/); // our measurements still ran
    const skipped = new RegExp(`^WebLLM: could not load ${ID} \\((.+)\\): skipped$`, 'm').exec(stdout);
    const measured = new RegExp(`^WebLLM ${ID}\\s+\\d+\\.\\d\\s+\\d+\\.\\d$`, 'm').test(stdout);
    expect(skipped !== null || measured, 'a skipped line or a measured WebLLM row').toBe(true);
    if (skipped) expect(skipped[1].length).toBeGreaterThan(10); // a reason in words
    if (measured) expect(stdout).toMatch(/^Reasoning Lab\s+\d+\.\d\s+\d+\.\d$/m);
  }, 180_000);

  it('gives the JSON a webllm field: tokens/s, or skipped with the reason', async () => {
    const { stdout } = await run('npx', [...ARGS.slice(0, -1), 'Llama-2-7b-hf-q4f32_1-MLC', '--json'], { timeout: 170_000 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r.decode[0].tokensPerSecond).toBeGreaterThan(0);
    expect(r.webllm.model_id).toBe('Llama-2-7b-hf-q4f32_1-MLC');
    if ('skipped' in r.webllm) expect(r.webllm.skipped).toMatch(/\w{3,}/);
    else {
      expect(r.webllm.prefill_tokens_per_s).toBeGreaterThan(0);
      expect(r.webllm.decode_tokens_per_s).toBeGreaterThan(0);
    }
  }, 180_000);
});
