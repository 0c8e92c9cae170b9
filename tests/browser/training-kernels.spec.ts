import { test, expect, type Page } from '@playwright/test';

/**
 * The training kernels that are not matmuls, each recorded by its host wrapper
 * (src/engine/trainingKernels.ts) and run on real WebGPU, against the reference training pass,
 * finite differences of the reference forward, or adamwStep (tests/browser/harness/trainingKernelChecks.ts).
 */
type Checks = typeof import('./harness/trainingKernelChecks.ts');

async function call<K extends keyof Checks>(page: Page, name: K, ...args: Parameters<Checks[K]>): Promise<Awaited<ReturnType<Checks[K]>>> {
  return page.evaluate(
    async ({ name, args }) => {
      const checks = (await import(/* @vite-ignore */ '/tests/browser/harness/trainingKernelChecks.ts' as string)) as Checks;
      return (checks[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    },
    { name, args: args as unknown[] },
  ) as Promise<Awaited<ReturnType<Checks[K]>>>;
}

test.beforeEach(async ({ page }) => {
  await page.goto('/harness.html');
});

/*
 * Tolerances (tolRatio: |got − want| ≤ atol·scale + rtol·|want|, scale = the output's largest
 * magnitude). The kernels compute in f32 (unit roundoff 6e-8) and the oracles in f64 from the same
 * f32 inputs, so what separates them is f32 rounding, a few ulps per operation: sums of up to
 * 32000 terms (cross-entropy, RMSNorm rows of 4096), and WGSL's exp, log, cosh and division, which
 * the spec lets be several ulps off (exp: 3 + 2|x| ulps). On SwiftShader the worst measured errors
 * were about 1.5e-7 relative (3.5e-7 for RMSNorm over 4096); rtol 1e-5 leaves a real GPU room for
 * its own rounding while any wrong term (a missing 1/count, a sign, a transposed rotation, a
 * derivative at the wrong point) is off by far more. atol 1e-6 covers entries near zero, where only
 * absolute accuracy at the output's scale is possible (softmax probabilities of 1e-20, dx where
 * RMSNorm's two terms cancel).
 */
const TOL = { rtol: 1e-5, atol: 1e-6 };

test('cross-entropy: the loss of each row and the in-place dlogits match the reference causal-LM loss (shifted labels, -100 ignored), odd vocab sizes', async ({
  page,
}) => {
  for (const [vocab, B, T, spread, gradScale, seed] of [
    [37, 2, 5, 3, 1, 1],
    [1001, 3, 7, 5, 0.25, 2], // a micro-batch's share of 4 accumulated ones
    [32000, 1, 4, 2, 1, 3], // Llama-2's vocabulary
    [65, 4, 3, 1, 1, 4], // more rows than threads count targets
    [1, 2, 3, 1, 1, 5], // one class: loss 0 and gradient 0
  ] as const) {
    const r = await call(page, 'checkCrossEntropy', vocab, B, T, { spread, offset: 0, gradScale, seed }, TOL);
    expect(r.ratio, `vocab ${vocab}, ${B}x${T}`).toBeLessThan(1);
    expect(r.meanLoss, `vocab ${vocab}: sum of row losses / count`).toBeCloseTo(r.wantLoss, 4);
  }
});

test('cross-entropy is max-subtracted: logits near ±1000 (exp overflows f32 past 88) give the same loss and gradient', async ({ page }) => {
  for (const [offset, spread, seed] of [
    [1000, 50, 6],
    [-1000, 30, 7],
  ] as const) {
    const r = await call(page, 'checkCrossEntropy', 257, 2, 6, { spread, offset, gradScale: 1, seed }, TOL);
    expect(r.ratio, `offset ${offset}`).toBeLessThan(1);
  }
});

test('RMSNorm backward (frozen weight) matches the reference on odd widths, overwriting dx or adding onto it', async ({ page }) => {
  for (const [dim, rows, accumulate] of [
    [37, 3, false],
    [4096, 2, true],
    [1, 1, false],
    [65, 4, true],
  ] as const) {
    expect(await call(page, 'checkRmsnormBack', dim, rows, accumulate, TOL), `dim ${dim} rows ${rows} accumulate ${accumulate}`).toBeLessThan(1);
  }
});

test('SwiGLU backward matches finite differences of the reference silu(gate)·up, into fused [dgate | dup] rows', async ({ page }) => {
  for (const [ffn, rows] of [
    [37, 3],
    [1, 1],
    [130, 2],
  ] as const) {
    expect(await call(page, 'checkSwigluBack', ffn, rows, TOL), `ffn ${ffn} rows ${rows}`).toBeLessThan(1);
  }
});

test('RoPE backward: the inverse rotation of the q and k heads of fused dqkv rows, as the reference, v untouched', async ({ page }) => {
  // (heads, kv heads, head dim, sequences, tokens each, theta). Head dims 6, 10 and 14 have an odd half.
  for (const [H, KV, hd, B, T, theta] of [
    [4, 2, 16, 2, 5, 10000],
    [3, 1, 6, 1, 40, 500000],
    [5, 1, 8, 3, 4, 10000], // the odd tiny model's heads
    [3, 3, 10, 2, 3, 10000],
    [8, 4, 14, 2, 9, 10000], // 84 pairs a row: more than one workgroup
  ] as const) {
    expect(await call(page, 'checkRopeBack', H, KV, hd, B, T, theta, TOL), `${H} heads, ${KV} kv heads, head dim ${hd}, ${B}x${T}`).toBeLessThan(1);
  }
});

test('adapter activation backward matches activationDerivative for tanh, relu, silu and gelu, with the adapter scaling folded in', async ({ page }) => {
  for (const activation of ['tanh', 'relu', 'silu', 'gelu'] as const) {
    for (const [width, rows, scale] of [
      [37, 3, 2],
      [1, 1, 1],
      [130, 2, -0.5],
    ] as const) {
      expect(await call(page, 'checkActivationBack', activation, width, rows, scale, TOL), `${activation} ${width}x${rows} scale ${scale}`).toBeLessThan(1);
    }
  }
});

/*
 * AdamW: the kernel does the f32 operations adamwStep does in the same order, so it can be held to
 * a few ulps (SwiftShader matched bit for bit): rtol 2e-6 is about 16 f32 ulps after several
 * steps, for a GPU whose division and sqrt are a couple of ulps off (WGSL allows 2.5) or that fuses
 * a multiply-add. Weight decay moves p by lr·wd·p ≈ 3e-6 of p per step, and eps inside rather than
 * outside the root changes the update of the |g| ≈ eps elements entirely: both are caught.
 */
const ADAMW_TOL = { rtol: 2e-6, atol: 1e-7 };

test('AdamW kernel: several steps with a changing learning rate match adamwStep (params, exp_avg, exp_avg_sq after every step)', async ({ page }) => {
  const trainer = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  expect(await call(page, 'checkAdamW', 1037, 6, { ...trainer, lr: 3e-4, weightDecay: 0.01 }, ADAMW_TOL), 'weight decay 0.01').toBeLessThan(1);
  expect(await call(page, 'checkAdamW', 1037, 6, { ...trainer, lr: 3e-4, weightDecay: 0 }, ADAMW_TOL), "the Trainer's weight decay 0").toBeLessThan(1);
  expect(await call(page, 'checkAdamW', 333, 4, { beta1: 0.8, beta2: 0.99, eps: 1e-6, lr: 1e-2, weightDecay: 0.1 }, ADAMW_TOL), 'other betas').toBeLessThan(1);
});

test('AdamW kernel covers tensors past 65535 workgroups of 64 (the 56M values of a 7B LoRA) with its 2-D grid', async ({ page }) => {
  const n = 65535 * 64 + 1001;
  expect(await call(page, 'checkAdamW', n, 2, { beta1: 0.9, beta2: 0.999, eps: 1e-8, lr: 3e-4, weightDecay: 0.01 }, ADAMW_TOL)).toBeLessThan(1);
});

test("dropout kernel: the mask equals engine/dropout.ts's hash bit for bit (forward), and accumulating src ⊙ mask onto dst is exact (backward)", async ({
  page,
}) => {
  for (const [width, rows, p, key, stream] of [
    [4099, 37, 0.3, 0xdeadbeef, 13], // odd width over 64 columns, a key with the top bit set
    [64, 200, 0.05, 1, 0], // the paper's LoRA dropout
    [11008, 3, 0.5, 0x12345, 31 * 8 + 6], // Llama-2-7B's down_proj input, layer 31
  ] as const) {
    const r = await call(page, 'checkDropout', width, rows, p, key, stream);
    expect(r.maskDiff, `${width}x${rows} p ${p}: mask entries that differ`).toBe(0);
    expect(r.accDiff, `${width}x${rows} p ${p}: accumulated entries that differ`).toBe(0);
    expect(Math.abs(r.keptFraction - (1 - p)), `kept ${r.keptFraction} of ${r.n}`).toBeLessThan(0.02);
  }
});
