import { test, expect, type Page } from '@playwright/test';

/**
 * The training backward kernels on a real WebGPU device (SwiftShader here), recorded through their
 * host wrappers, against the f64 reference backward (src/engine/referenceTraining.ts, itself
 * checked against finite differences). Errors are max |got − want| / max |want| over the whole
 * output buffer (see kernelChecks.ts relErr).
 *
 * Tolerance 1e-4 for every case, why: the kernels compute in f32 from f32 inputs the oracle sees
 * exactly (f16 weights converted exactly; q4 dequantized by the forward's own weightQ4.wgsl, whose
 * (q − 7) · scale is one f32 rounding of an exact product, as reference.ts/quant.ts dequantizeQ4);
 * what is left is f32 rounding of sums of at most ~1000 terms (about 1e-6 of the output's scale)
 * and, in attention, f32 exp/log of a recomputed softmax (a few 1e-7). 1e-4 leaves two orders of
 * margin for that and is still 100x below any indexing mistake (a wrong row, column, head or
 * missing term moves the error to O(1e-2) or more).
 */
type Checks = typeof import('./harness/trainingMatmulChecks.ts');

async function call<K extends keyof Checks>(page: Page, name: K, ...args: Parameters<Checks[K]>): Promise<Awaited<ReturnType<Checks[K]>>> {
  return page.evaluate(
    async ({ name, args }) => {
      const checks = (await import(/* @vite-ignore */ '/tests/browser/harness/trainingMatmulChecks.ts' as string)) as Checks;
      return (checks[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    },
    { name, args: args as unknown[] },
  ) as Promise<Awaited<ReturnType<Checks[K]>>>;
}

// Each distinct shape is a pipeline of its own (shapes are override constants, as in the forward), and
// SwiftShader compiles each in seconds to tens of seconds on a loaded machine: time, not GPU work.
test.describe.configure({ timeout: 600_000 });

test.beforeEach(async ({ page }) => {
  await page.goto('/harness.html');
});

const TOL = 1e-4;

test('transposed matmul dX = dY·W over f32, f16 and q4 base weights, odd sizes, several rows and partial tiles', async ({ page }) => {
  // (IN = columns of W and of dX, rows of W, token rows)
  for (const [IN, OUT, rows] of [
    [37, 29, 11],
    [130, 70, 65],
    [5, 300, 3], // 300 reduced rows: ten stages of 32
  ] as const) {
    for (const format of ['f32', 'f16'] as const) {
      expect(await call(page, 'checkBackInput', format, IN, OUT, rows), `${format} ${OUT}x${IN} rows ${rows}`).toBeLessThan(TOL);
    }
  }
  for (const [IN, OUT, rows] of [
    [32, 1, 1],
    [160, 70, 70],
  ] as const) {
    for (const format of ['q4f32', 'q4f16'] as const) {
      expect(await call(page, 'checkBackInput', format, IN, OUT, rows), `${format} ${OUT}x${IN} rows ${rows}`).toBeLessThan(TOL);
    }
  }
});

test('transposed matmul over q4 weights packed by quant.ts (the converter), q4f16_1 and q4f32_1', async ({ page }) => {
  for (const format of ['q4f16', 'q4f32'] as const) {
    expect(await call(page, 'checkBackInput', format, 128, 45, 13, { packed: true }), format).toBeLessThan(TOL);
  }
});

test('transposed matmul over one module of a fused weight, with dY columns, scale, accumulate and a row offset', async ({ page }) => {
  // k_proj's rows 40..55 of a fused q|k|v [72, IN], its gradient in columns 40.. of a [*, 72] dY.
  for (const format of ['f32', 'q4f16'] as const) {
    const IN = format === 'f32' ? 37 : 64;
    const slice = { rowStart: 40, rows: 16, dyStride: 72, dyCol: 40 };
    expect(await call(page, 'checkBackInput', format, IN, 72, 10, slice), `${format} slice`).toBeLessThan(TOL);
    expect(await call(page, 'checkBackInput', format, IN, 72, 10, { ...slice, accumulate: true, scale: -2.5 }), `${format} accumulate, scale`).toBeLessThan(
      TOL,
    );
    // Rows before the offset keep their contents (the buffer is compared whole).
    expect(await call(page, 'checkBackInput', format, IN, 72, 70, { xRowOffset: 3, accumulate: true }), `${format} row offset`).toBeLessThan(TOL);
  }
});

test('adapter weight gradient dW += scale·dYᵀX, tiles and token stages, up to 1030 tokens', async ({ page }) => {
  // (rows of dW, columns of dW, token rows)
  for (const [R, C, N] of [
    [1, 1, 1],
    [70, 130, 33],
    [32, 100, 1030], // LoRA A with r = 32 over a micro-batch of ~1024 tokens
    [100, 8, 1024], // LoRA B (r = 8) over 1024 tokens
  ] as const) {
    expect(await call(page, 'checkBackWeight', R, C, N), `${R}x${C} over ${N}`).toBeLessThan(TOL);
  }
  expect(await call(page, 'checkBackWeight', 16, 20, 50, { accumulate: true, scale: 2 }), 'accumulate, scale').toBeLessThan(TOL);
  // One segment (v) of a fused gradient, one segment of z, and a row offset.
  expect(await call(page, 'checkBackWeight', 9, 7, 40, { dyStride: 30, dyCol: 21, xStride: 21, xCol: 14, xRowOffset: 5 }), 'strided').toBeLessThan(TOL);
});

test('a LoRA module backward chained over a frozen base: dx through W and B·A, dA and dB', async ({ page }) => {
  // (format, IN, fused rows, module rowStart, module rows, r, tokens, scaling)
  expect(await call(page, 'checkLoraChain', 'f32', 37, 50, 13, 20, 5, 17, 2), 'f32').toBeLessThan(TOL);
  expect(await call(page, 'checkLoraChain', 'q4f16', 96, 80, 32, 24, 8, 70, 2), 'q4f16').toBeLessThan(TOL);
});

test('causal grouped-query attention backward over right-padded sequences: dQ, dK and dV', async ({ page }) => {
  // (B, T, heads, kv heads, head dim, seed, sharpness)
  for (const [B, T, H, KV, hd, seed, sharp] of [
    [1, 1, 1, 1, 4, 1, 1],
    [2, 5, 4, 2, 6, 2, 1], // odd head dim, two sequences (no attention across them)
    [3, 7, 3, 1, 10, 3, 2], // three query heads on one kv head
    [1, 70, 2, 2, 8, 4, 1], // more than 64 keys (query side) and 64 queries (key side)
    [2, 40, 8, 2, 16, 5, 1.5], // 40 x 4 (query, head) pairs per key: several chunks
    [1, 9, 2, 1, 80, 6, 1], // head dim past 64: two columns per thread
    [1, 6, 2, 2, 256, 7, 0.5], // the largest head dim
  ] as const) {
    const err = await call(page, 'checkAttentionBack', B, T, H, KV, hd, seed, sharp);
    expect(err, `B ${B} T ${T} heads ${H}/${KV} hd ${hd}`).toBeLessThan(TOL);
  }
});

test('the wrappers refuse shapes their kernels cannot run, with a message that says why', async ({ page }) => {
  const messages = await call(page, 'wrapperErrors');
  expect(messages).toEqual([
    expect.stringContaining('multiple of 32 columns'),
    expect.stringContaining('past the 4 rows of small'),
    expect.stringContaining('dY columns 1..4 do not fit rows of 4 values'),
    expect.stringContaining('X columns 2..9 do not fit rows of 8 values'),
    expect.stringContaining('6 query heads cannot share 4 kv heads'),
    expect.stringContaining('head dimension 320'),
    expect.stringContaining('row offset 4 is past the 3 rows'),
  ]);
});
