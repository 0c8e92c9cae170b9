import { test, expect, type Page } from '@playwright/test';

/**
 * LoRA, series and parallel adapters on the tiny model, against the reference pass: logits within
 * tolerance, greedy 48-token generations identical, and each adapter changes the output.
 */
type Checks = typeof import('./harness/adapterChecks.ts');
type Case = { label: string; kind: 'lora' | 'series' | 'parallel'; opts: import('../../src/formats/randomAdapter.ts').RandomAdapterOptions };

async function call<K extends keyof Checks>(page: Page, name: K, ...args: Parameters<Checks[K]>): Promise<Awaited<ReturnType<Checks[K]>>> {
  return page.evaluate(
    async ({ name, args }) => {
      const m = (await import(/* @vite-ignore */ '/tests/browser/harness/adapterChecks.ts' as string)) as Checks;
      return (m[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    },
    { name, args: args as unknown[] },
  ) as Promise<Awaited<ReturnType<Checks[K]>>>;
}

test.beforeEach(async ({ page }) => {
  await page.goto('/harness.html');
});

const PROMPT = [1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975];

const CASES: Case[] = [
  { label: 'LoRA (paper targets q,k,v,up,down)', kind: 'lora', opts: { seed: 11, r: 4 } },
  { label: 'LoRA on every module with rsLoRA', kind: 'lora', opts: { seed: 12, r: 3, useRslora: true, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } },
  { label: 'series (paper targets up,gate; tanh)', kind: 'series', opts: { seed: 13, r: 8 } },
  { label: 'series on down_proj too, learned scaling, gelu', kind: 'series', opts: { seed: 14, r: 6, targets: ['gate_proj', 'up_proj', 'down_proj'], scaling: 'learned', nonLinearity: 'gelu' } },
  { label: 'parallel (paper targets up,down; tanh)', kind: 'parallel', opts: { seed: 15, r: 8 } },
  { label: 'parallel on q,v,o with relu and scaling 2', kind: 'parallel', opts: { seed: 16, r: 5, targets: ['q_proj', 'v_proj', 'o_proj'], nonLinearity: 'relu', scaling: 2 } },
];

for (const mode of ['q0f32', 'q4f32_1'] as const) {
  for (const c of CASES) {
    test(`${mode}: ${c.label} matches the reference and changes the output`, async ({ page }) => {
      const r = await call(page, 'checkAdapter', `/models/tiny/${mode}/`, c.kind, c.opts, PROMPT, 48);
      expect(r.logitsErr).toBeLessThan(1e-4);
      expect(r.baseVsAdapter).toBeGreaterThan(1e-2);
      expect(r.wantIds.length).toBe(48);
      expect(r.gotIds).toEqual(r.wantIds);
      expect(r.gotIds).not.toEqual(r.baseIds);
    });
  }
}

test('an adapter converted for one base is refused by another, with a clear message', async ({ page }) => {
  const msg = await call(page, 'loadIntoOtherBase', '/models/tiny/q0f32/', '/models/tiny/q4f32_1/');
  expect(msg).toMatch(/different base model/);
});

test('a loaded model takes another context and batch without reloading: adapter kept, exact, and an impossible shape refused', async ({ page }) => {
  const prompts = [PROMPT, PROMPT.slice(0, 4), [1, 29871, 13, 450, 3148]];
  const r = await call(page, 'checkReshape', '/models/tiny/q4f32_1/', prompts, 12);
  expect(r.shape).toEqual({ contextLength: Math.max(...prompts.map((p) => p.length)) + 12, maxBatch: 3 });
  expect(r.planned).toEqual(r.actual);
  expect(r.batched).toEqual(r.wantIds);
  expect(r.refused).toMatch(/^GPUOutOfMemoryError: .*tokens/);
  expect(r.after).toEqual({ contextLength: r.shape.contextLength, maxBatch: 3 });
  expect(r.afterIds).toEqual(r.wantIds[0]);
  expect(r.restored).toEqual(r.before);
  expect(r.restoredIds).toEqual(r.wantIds[0]);
  expect(r.adapterStillActive).toBe(true);
});
