import { test, expect, type Page } from '@playwright/test';
import { SMALL_VOCAB } from '../../src/cli/makeTinyModel.ts';

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
  {
    label: 'LoRA on every module with rsLoRA',
    kind: 'lora',
    opts: { seed: 12, r: 3, useRslora: true, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  },
  { label: 'series (paper targets up,gate; tanh)', kind: 'series', opts: { seed: 13, r: 8 } },
  {
    label: 'series on down_proj too, learned scaling, gelu',
    kind: 'series',
    opts: { seed: 14, r: 6, targets: ['gate_proj', 'up_proj', 'down_proj'], scaling: 'learned', nonLinearity: 'gelu' },
  },
  { label: 'parallel (paper targets up,down; tanh)', kind: 'parallel', opts: { seed: 15, r: 8 } },
  {
    label: 'parallel on q,v,o with relu and scaling 2',
    kind: 'parallel',
    opts: { seed: 16, r: 5, targets: ['q_proj', 'v_proj', 'o_proj'], nonLinearity: 'relu', scaling: 2 },
  },
];

// On the tiny shape with a 500-id vocabulary (small-*): an adapter acts on the layers, not the LM head,
// and on this CPU-emulated adapter the 32000-row head is most of each step. The 32000-id models run
// adapters in generate-cli.test.ts and app-adapters.spec.ts.
const SMALL_PROMPT = PROMPT.map((id) => id % SMALL_VOCAB);
for (const mode of ['small-q0f32', 'small-q4f32_1'] as const) {
  for (const c of CASES) {
    test(`${mode}: ${c.label} matches the reference and changes the output`, async ({ page }) => {
      const r = await call(page, 'checkAdapter', `/models/tiny/${mode}/`, c.kind, c.opts, SMALL_PROMPT, 48);
      expect(r.logitsErr).toBeLessThan(1e-4);
      expect(r.baseVsAdapter).toBeGreaterThan(1e-2);
      expect(r.wantIds.length).toBe(48);
      expect(r.gotIds).toEqual(r.wantIds);
      expect(r.gotIds).not.toEqual(r.baseIds);
    });
  }
}

// 'auto' keeps the per-row kernels on this CPU-emulated adapter: force the GPU ones (tiled prefill
// from 9 rows, the q4 workgroup decode kernel), into which LoRA and parallel up-projections are fused.
// Two cases cover every site (LoRA on all four, parallel with a nonlinearity); the kernel tests cover
// the fused variants in depth. On the tiny shape with a 500-id vocabulary: each call through these
// kernels costs a workgroup per LM-head row here, ~10 s for 32000 rows.
for (const c of [CASES[1], CASES[4]]) {
  test(`small-q4f32_1 through the GPU kernels (tiled prefill, q4 workgroup decode): ${c.label} matches the reference`, async ({ page }) => {
    const r = await call(page, 'checkAdapterGpuKernels', '/models/tiny/small-q4f32_1/', c.kind, c.opts, SMALL_PROMPT, 4);
    expect(r.labels.some((l) => l.startsWith('q4 matvec') && l.includes('tiled matmul'))).toBe(true);
    expect(r.prefillErr).toBeLessThan(1e-4);
    expect(r.decodeErr).toBeLessThan(1e-4);
    expect(r.baseVsAdapter).toBeGreaterThan(1e-2);
    expect(r.wantIds.length).toBe(4);
    expect(r.gotIds).toEqual(r.wantIds);
  });
}

test('a LoRA or parallel site costs one dispatch per layer (the up-projection rides in the base matmul), a series site two, plus what the base folds (norm, RoPE and the KV write; norm and SwiGLU)', async ({
  page,
}) => {
  const r = await call(
    page,
    'dispatchCounts',
    '/models/tiny/q4f32_1/',
    CASES.map(({ kind, opts }) => ({ kind, opts })),
  );
  // Sites per layer: LoRA paper qkv, gate/up, down; LoRA everywhere + o; series paper gate/up
  // (down and input up-projections); series + down (down and output up-projections); parallel
  // paper gate/up, down; parallel q,v,o: qkv, o.
  // The base folds the input norm, RoPE and the KV write into qkv, and the post-attention norm and
  // SwiGLU into gate/up; an adapter on qkv (on gate/up) reads the normed x and writes qkv through the
  // plain matmul, so there those run on their own again: +2 (+2).
  const sites = [3, 4, 2, 4, 2, 2];
  const unfolded = [2 + 2, 2 + 2, 2, 2, 2, 2];
  const extraPerLayer = r.adapters.map((labels) => (labels.length - r.base.length) / r.layers);
  expect(extraPerLayer).toEqual(sites.map((n, i) => n + unfolded[i]));
  // Up-projection passes of their own: only series sites have them.
  const upPerLayer = r.adapters.map((labels) => labels.filter((l) => /^layer \d+ adapter .* (up|inputs)$/.test(l)).length / r.layers);
  expect(upPerLayer).toEqual([0, 0, 1, 2, 0, 0]);
});

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
  expect(r.refused).toMatch(/^BufferLimitError: .*tokens.*maxStorageBufferBindingSize/);
  expect(r.after).toEqual({ contextLength: r.shape.contextLength, maxBatch: 3 });
  expect(r.afterIds).toEqual(r.wantIds[0]);
  expect(r.restored).toEqual(r.before);
  expect(r.restoredIds).toEqual(r.wantIds[0]);
  expect(r.adapterStillActive).toBe(true);
});
