import { test, expect, type Page } from '@playwright/test';

/**
 * Beam search on the WebGPU engine (Engine.generateBeams: beams are slots of the batch, forks copy
 * KV rows) against the literal port of transformers' beam search on the reference forward pass
 * (src/engine/referenceBeamSearch.ts), on the generated tiny model (random weights).
 */
type Beams = typeof import('./harness/beamChecks.ts');
type Models = typeof import('./harness/modelChecks.ts');

async function call<M, K extends keyof M>(
  page: Page,
  file: string,
  name: K,
  ...args: M[K] extends (...a: infer A) => unknown ? A : never
): Promise<M[K] extends (...a: never[]) => infer R ? Awaited<R> : never> {
  return page.evaluate(
    async ({ file, name, args }) => {
      const m = (await import(/* @vite-ignore */ file)) as Record<string, (...a: unknown[]) => Promise<unknown>>;
      return m[name](...args);
    },
    { file, name: name as string, args: args as unknown[] },
  ) as never;
}
const beams = <K extends keyof Beams>(page: Page, name: K, ...args: Parameters<Beams[K]>) =>
  call<Beams, K>(page, '/tests/browser/harness/beamChecks.ts', name, ...(args as never));
const randomIds = (page: Page, n: number, seed: number) => call<Models, 'randomIds'>(page, '/tests/browser/harness/modelChecks.ts', 'randomIds', n, seed);

/** Scores are sums of f64 log-probabilities of f32 logits: the GPU's logits differ from the reference's by ~1e-6. */
const closeScore = (got: number, want: number) => expect(Math.abs(got - want)).toBeLessThan(1e-5 * Math.abs(want));

test.beforeEach(async ({ page }) => {
  await page.goto('/harness.html');
});

for (const mode of ['q0f32', 'q4f32_1'] as const) {
  const url = `/models/tiny/${mode}/`;

  test(`${mode}: 4-beam search gives the reference's ids and score, to the length limit and ended by a stop token`, async ({ page }) => {
    let differsFromGreedy = 0;
    for (const seed of [71, 72, 73]) {
      const prompt = await randomIds(page, 8, seed);
      const { got, want } = await beams(page, 'beamsBoth', url, prompt, 4, 10);
      expect(got.ids, `seed ${seed}`).toEqual(want.ids);
      closeScore(got.score, want.score);
      expect(got.stopReason).toBe('length');
      expect(got.ids).toHaveLength(10);
      const greedy = await beams(page, 'referenceGreedy', url, prompt, 10);
      if (JSON.stringify(greedy) !== JSON.stringify(got.ids)) differsFromGreedy++;
      // A stop id met early on (random weights rarely pick the real EOS): the greedy path's second token.
      if (seed !== 73) {
        const stop = [greedy[1]];
        const ended = await beams(page, 'beamsBoth', url, prompt, 4, 10, stop);
        expect(ended.got.ids, `seed ${seed}, stop ${stop}`).toEqual(ended.want.ids);
        closeScore(ended.got.score, ended.want.score);
        expect(ended.got.stopReason).toBe('eos');
        expect(ended.got.ids[ended.got.ids.length - 1]).toBe(stop[0]);
        expect(ended.got.ids.length).toBeLessThan(10);
      }
    }
    // Beam search is doing more than greedy decoding here.
    expect(differsFromGreedy).toBeGreaterThan(0);
  });

  test(`${mode}: one beam is greedy decoding (generate's GPU argmax path and the reference)`, async ({ page }) => {
    for (const seed of [81, 82]) {
      const prompt = await randomIds(page, 7, seed);
      const r = await beams(page, 'oneBeamVsGreedy', url, prompt, 12);
      expect(r.want).toHaveLength(12);
      expect(r.beam).toEqual(r.want);
      expect(r.greedy).toEqual(r.want);
      expect(r.beamStop).toBe('length');
      // Ended by a stop id: the greedy path's fourth token.
      const stop = [r.want[3]];
      const s = await beams(page, 'oneBeamVsGreedy', url, prompt, 12, stop);
      expect(s.beam).toEqual(s.want);
      expect(s.greedy).toEqual(s.want);
      expect(s.beamStop).toBe('eos');
      expect(s.want[s.want.length - 1]).toBe(stop[0]);
    }
  });
}

for (const { mode, tol } of [
  { mode: 'q0f32', tol: 1e-4 },
  // f16 KV cache: two values a u32 word, copied as words.
  { mode: 'q4f16_1', tol: 1e-2 },
  { mode: 'odd-q0f16', tol: 1e-2 },
] as const) {
  test(`${mode}: copySlot gives another slot a prefix of a sequence, which then decodes like the reference`, async ({ page }) => {
    const ids = await randomIds(page, 11, 91);
    const r = await beams(page, 'copySlotThenDecode', `/models/tiny/${mode}/`, ids, 6, [17, 4000, 29999]);
    expect(r.positionAfterCopy).toBe(6);
    expect(r.copyVsReference).toBeLessThan(tol);
    expect(r.originalVsReference).toBeLessThan(tol);
  });
}

test('generateBeams refuses a bad numBeams and more beams than slots, copySlot a bad range; the engine stays usable', async ({ page }) => {
  const r = await beams(page, 'beamMisuse', '/models/tiny/q0f32/');
  expect(r.errors).toEqual([
    'EngineError: numBeams must be a whole number of at least 1, not 0.',
    'EngineError: numBeams must be a whole number of at least 1, not 2.5.',
    'EngineError: 5 beams need 5 sequences decoded together, but the model was loaded with room for 4 (maxBatch): use at most 4 beams, or load or configure it with maxBatch 5.',
    'EngineError: Cannot copy 4 tokens of slot 0, which holds 3.',
    'EngineError: Slot 4 is outside the batch of 4.',
  ]);
  expect(r.afterLength).toBe(3);
});

test("more beams than the run's memory budget holds: the refusal says how many fit, and that many run", async ({ page }) => {
  const r = await beams(page, 'beamsOverBudget', '/models/tiny/q0f32/');
  expect(r.refusal).toMatch(
    /^EngineError: 4 beams need 4 sequences of 7 tokens decoded together, but only 2 fit in the .+ this run may take: use at most 2 beams/,
  );
  expect(r.fitsIds).toBe(4);
  expect(r.fitsBatch).toBe(2);
});
