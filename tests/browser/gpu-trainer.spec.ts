import { test, expect, type Page } from '@playwright/test';

/**
 * The WebGPU trainer (src/training/gpuTrainer.ts: engine/trainingPass.ts's forward + backward with
 * gradient checkpointing, AdamW as a kernel) on the tiny models, against the f64 reference
 * (referenceTraining.ts, whose gradients tests/unit/training-reference.test.ts checks against
 * finite differences, and referenceTrainer.ts's steps), and directly against central finite
 * differences of the reference forward along a random direction over all adapter tensors.
 *
 * Tolerances, why: the GPU computes in f32 from the same frozen weights the reference sees exactly
 * (q4 dequantized by the forward's own weightQ4.wgsl, one f32 rounding of an exact product), so
 * what is left is f32 rounding through 2 layers, softmaxes and a 500-way cross-entropy: about
 * 1e-6 to 1e-5 of each gradient's scale. 1e-3 leaves margin for that and is far below what a wrong
 * row, column, head, scaling or a missing term gives (O(1e-1) or more: each is a whole term of the
 * gradient). Steps: AdamW divides by sqrt(v), so a tiny gradient's f32 error can move the update
 * by more; the weights' change over 2 steps is compared at 1e-2 of its size, losses at 1e-4.
 */
type Checks = typeof import('./harness/gpuTrainerChecks.ts');

async function call<K extends keyof Checks>(page: Page, name: K, ...args: Parameters<Checks[K]>): Promise<Awaited<ReturnType<Checks[K]>>> {
  return page.evaluate(
    async ({ name, args }) => {
      const checks = (await import(/* @vite-ignore */ '/tests/browser/harness/gpuTrainerChecks.ts' as string)) as Checks;
      return (checks[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    },
    { name, args: args as unknown[] },
  ) as Promise<Awaited<ReturnType<Checks[K]>>>;
}

// The models are the tiny shape with a 500-id vocabulary (small-*): on this CPU-emulated adapter a
// training step's cost is mostly the LM head and its backward, whose rows are the vocabulary.
// Pipelines are compiled per shape, which on SwiftShader takes a second or more each: time, not
// GPU work. The tests share one page, so the trainer's per-device pipeline cache compiles each
// shape once for the whole file (the modes differ only in the base weights' kernels).
test.describe.configure({ timeout: 600_000, mode: 'serial' });

let page: Page;
test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
  await page.goto('/harness.html');
});
test.afterAll(async () => {
  await page.close();
});

const GRAD_TOL = 1e-3;

for (const mode of ['small-q0f32', 'small-q4f32_1'] as const) {
  test(`${mode}: every adapter tensor's whole-model gradient (LoRA, series, parallel) equals the reference backward`, async () => {
    for (const method of ['lora', 'series', 'parallel'] as const) {
      const r = await call(page, 'gradientsVsReference', `/models/tiny/${mode}/`, method);
      expect(r.allNonZero, `${method}: the reference's gradients are all non-zero`).toBe(true);
      expect(r.maxErr, `${method} ${JSON.stringify(r.errors)}`).toBeLessThan(GRAD_TOL);
      expect(r.lossErr, `${method} loss`).toBeLessThan(1e-5);
      // and the GPU's gradient against finite differences of the reference forward, along one random direction
      expect(r.fdErr, `${method} finite differences (the reference backward's own error: ${r.refFdErr})`).toBeLessThan(GRAD_TOL);
      expect(r.peakGpuBytes).toBeGreaterThan(0);
    }
  });
}

// 4 + checkpoint + 4: the checkpoint goes through the app's IndexedDB store and a new backend, as
// a reload resumes (src/training/worker.ts); warmup 5 puts the checkpoint inside warmup, so the
// schedule turns to its linear decay after the reload (both halves of the schedule are resumed).
// 4 steps of 4 examples out of 6 cross an epoch (a new shuffle) on each side of the reload.
const HALF = 4;
const WARMUP = 5;
test(`small-q4f32_1: 2 optimizer steps give the reference trainer's losses and weights; ${HALF} + IndexedDB checkpoint/reload + ${HALF} steps = ${2 * HALF} steps, exactly (LoRA dropout 0.05)`, async () => {
  const r = await call(page, 'stepsVsReference', '/models/tiny/small-q4f32_1/', 'lora', 2);
  expect(r.step).toBe(2);
  expect(r.moved, 'the steps changed the weights').toBeGreaterThan(1e-4);
  expect(r.lossErr, 'losses').toBeLessThan(1e-4);
  expect(r.weightErr, 'weights').toBeLessThan(1e-2);
  // The GPU pass is deterministic (no atomics, fixed reduction order): a resumed run is bit-identical.
  const resumed = await call(page, 'resumeEqualsStraight', '/models/tiny/small-q4f32_1/', 'lora', HALF, WARMUP);
  expect(resumed.step).toBe(2 * HALF);
  expect(resumed.optimSteps).toBe(2 * HALF);
  expect(resumed.resumed).toHaveLength(2 * HALF);
  expect(resumed.resumed).toEqual(resumed.straight);
  expect(resumed.resumedLrs).toEqual(resumed.straightLrs);
  // the schedule really crossed its warmup: 0 at step 0, the peak at step WARMUP (after the reload), then falling
  expect(resumed.straightLrs[0]).toBe(0);
  expect(resumed.straightLrs[WARMUP]).toBeCloseTo(1e-2, 12);
  expect(resumed.straightLrs[2 * HALF - 1]).toBeLessThan(resumed.straightLrs[WARMUP]);
  expect(resumed.moved, 'the steps changed the weights').toBeGreaterThan(1e-3);
  expect(resumed.weightsEqual, 'adapter weights bit-identical').toBe(true);
  expect(resumed.momentsEqual, 'AdamW moments and steps bit-identical').toBe(true);
  expect(resumed.equal, 'the whole serialised state is identical').toBe(true);
});

test("a micro-batch over the device's largest buffer is refused before allocating, saying what fits", async () => {
  const msg = await call(page, 'tooLargeMessage', '/models/tiny/q0f32/', 4096, 512);
  expect(msg).toMatch(
    /a micro-batch of 4096 × 512 tokens does not fit this GPU: the logits would take .* what fits: a micro-batch of at most \d+ sequences of 512 tokens/,
  );
});

test("small-q0f32: with dropout (p 0.3) the GPU's gradients (LoRA, series) equal the reference backward's under the same hashed masks, and differ from the no-dropout ones", async () => {
  for (const method of ['lora', 'series'] as const) {
    const r = await call(page, 'dropoutGradientsVsReference', '/models/tiny/small-q0f32/', method, 0.3);
    expect(r.allNonZero, `${method}: the reference's gradients are all non-zero`).toBe(true);
    expect(r.maxErr, `${method} ${JSON.stringify(r.errors)}`).toBeLessThan(GRAD_TOL);
    expect(r.lossErr, `${method} loss`).toBeLessThan(1e-5);
    // dropout moves every tensor's gradient by far more than the tolerance, on the reference and on the GPU
    expect(r.minDropoutEffect, `${method}: reference with vs without dropout`).toBeGreaterThan(100 * GRAD_TOL);
    expect(r.gpuVsPlain, `${method}: GPU with dropout vs reference without`).toBeGreaterThan(100 * GRAD_TOL);
  }
});

// The reference unit test's pattern (tests/unit/training-loop.test.ts) learnt on the GPU. The bound
// comes from the task, not from a run: after BOS the 4 tokens of the cycle 3 4 5 6 appear equally
// often, so a model that learnt only which tokens occur (their unigram distribution) scores ln 4;
// below that it must predict each token from the one before (the ideal is ln 4 / (len − 1): only the
// first token's offset is unknowable). 8 examples in micro-batches 2 × 2 make an epoch of 2 steps, so the
// last 2 steps' mean is the loss over every example once (single steps differ with the shuffle).
test("LoRA on the GPU learns a fixed pattern: the last epoch's loss falls below the pattern's unigram entropy ln 4", async () => {
  const len = 7; // the resume test's longest example: the same pass shapes, no new pipelines
  const steps = 16;
  const r = await call(page, 'learnsPattern', '/models/tiny/small-q4f32_1/', 'lora', steps, 3e-2, len);
  expect(r.losses).toHaveLength(steps);
  expect(r.stepsPerEpoch).toBe(2);
  const lastEpoch = (r.losses[steps - 1] + r.losses[steps - 2]) / 2;
  expect(r.losses[0], 'an untrained model is far from the pattern').toBeGreaterThan(2 * Math.log(4));
  expect(lastEpoch, JSON.stringify(r.losses)).toBeLessThan(Math.log(4));
});
