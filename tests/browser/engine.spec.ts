import { test, expect, type Page } from '@playwright/test';
import { TINY_MODES } from './harness/tinyModes.ts';
import { tinyModelVocab } from '../../src/cli/makeTinyModel.ts';

/** The tiny generated model (npm run make-tiny-model) through the WebGPU engine against the reference pass. */
type Checks = typeof import('./harness/modelChecks.ts');

async function call<K extends keyof Checks>(page: Page, name: K, ...args: Parameters<Checks[K]>): Promise<Awaited<ReturnType<Checks[K]>>> {
  return page.evaluate(
    async ({ name, args }) => {
      const m = (await import(/* @vite-ignore */ '/tests/browser/harness/modelChecks.ts' as string)) as Checks;
      return (m[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    },
    { name, args: args as unknown[] },
  ) as Promise<Awaited<ReturnType<Checks[K]>>>;
}

test.beforeEach(async ({ page }) => {
  await page.goto('/harness.html');
});

for (const { mode, tol, vocab } of TINY_MODES) {
  test(`${mode}: logits of every token match the reference`, async ({ page }) => {
    const url = `/models/tiny/${mode}/`;
    const ids = await call(page, 'randomIds', 24, 7, vocab);
    expect(await call(page, 'checkAllLogits', url, ids)).toBeLessThan(tol);
    // Prefill in chunks of 5 rows (the chunked path a long prompt takes).
    expect(await call(page, 'checkAllLogits', url, ids, { prefillChunk: 5 })).toBeLessThan(tol);
  });
}

// The forced-kernel tests run the tiny shape with a 500-id vocabulary (small-*, and padded-*): on this
// CPU-emulated adapter a call through them costs about as many workgroups as the LM head has rows.
for (const mode of ['small-q4f32_1', 'small-q4f16_1', 'odd-q0f32', 'padded-q4f32_1'] as const) {
  test(`${mode}: the GPU prefill kernel (tiled in workgroup memory) gives the reference's logits`, async ({ page }) => {
    // 'auto' keeps per-row kernels on this CPU-emulated adapter (barriers are slow here); force the GPU one.
    const tol = mode.includes('f16') ? 1e-2 : 1e-4;
    const ids = await call(page, 'randomIds', 12, 9, tinyModelVocab(mode));
    expect(await call(page, 'checkAllLogits', `/models/tiny/${mode}/`, ids, { prefillMatmul: 'tiled', prefillChunk: 10 })).toBeLessThan(tol);
  });
}

for (const mode of ['small-q4f32_1', 'small-q4f16_1', 'padded-q4f32_1', 'padded-q4f16_1'] as const) {
  test(`${mode}: the GPU decode kernel (workgroup reduction over wide q4 loads) gives the reference's greedy ids`, async ({ page }) => {
    // 'auto' picks the one-thread-per-row kernel on this CPU-emulated adapter; force the GPU one.
    // 8 ids: the 6-row prefill (6 rows of the kernel's 8-row tile) and 7 one-row steps.
    const prompt = await call(page, 'randomIds', 6, 5, tinyModelVocab(mode));
    const { got, want } = await call(page, 'greedyBoth', `/models/tiny/${mode}/`, prompt, 8, { q4Decode: 'workgroup', stopTokenIds: [] });
    expect(want).toHaveLength(8);
    expect(got).toEqual(want);
  });
}

for (const mode of ['q0f32', 'q4f32_1'] as const) {
  test(`${mode}: float32 records stored as MLC's "f32-to-bf16" (bf16 bytes) are decoded on load: logits match the reference on the same records`, async ({
    page,
  }) => {
    const ids = await call(page, 'randomIds', 10, 13);
    const r = await call(page, 'checkBf16EncodedLogits', `/models/tiny/${mode}/`, ids);
    expect(r.encodedRecords).toBeGreaterThan(0);
    expect(r.vsReference).toBeLessThan(1e-4);
    // bf16 keeps 8 bits of mantissa: the encoded copy really differs from the float32 model.
    expect(r.vsRaw).toBeGreaterThan(1e-4);
  });
}

test('the memory planner predicts exactly the buffers the engine allocates, in every mode', async ({ page }) => {
  for (const { mode } of TINY_MODES) {
    const { actual, planned } = await call(page, 'memoryReport', `/models/tiny/${mode}/`);
    expect(planned, mode).toEqual(actual);
  }
});

// The 500-id models, and odd-q0f32 for the 32000-row head with tied embeddings: the reference's
// greedy pass over 32000 rows a token is most of these tests' time (the logits tests above keep all 8 modes).
for (const mode of ['small-q0f32', 'small-q4f32_1', 'odd-q0f32', 'padded-q4f32_1'] as const) {
  test(`${mode}: greedy 64-token generation is identical to the reference's`, async ({ page }) => {
    const url = `/models/tiny/${mode}/`;
    for (const seed of [1, 2]) {
      const prompt = await call(page, 'randomIds', 9, seed, tinyModelVocab(mode));
      // No stop id: all 64 steps run (a 500-id vocabulary draws EOS far more often than 32000 ids do).
      const { got, want } = await call(page, 'greedyBoth', url, prompt, 64, { stopTokenIds: [] });
      expect(want.length).toBe(64);
      expect(got).toEqual(want);
    }
  });

  test(`${mode}: prefill of N tokens then decode equals feeding tokens one by one`, async ({ page }) => {
    const url = `/models/tiny/${mode}/`;
    const ids = await call(page, 'randomIds', 20, 3, tinyModelVocab(mode));
    const r = await call(page, 'checkPrefillThenDecode', url, ids, 12);
    expect(r.engineVsEngine).toBeLessThan(1e-4);
    expect(r.engineVsReference).toBeLessThan(1e-4);
  });
}

// Batching on the 500-id models: which rows decode together does not depend on the vocabulary (the
// app's "a batched run gives each problem exactly the output it gets alone" runs the 32000-id model).
for (const mode of ['small-q0f32', 'small-q4f32_1'] as const) {
  test(`${mode}: batched greedy generation gives each prompt exactly its ids alone (early stops, late joins)`, async ({ page }) => {
    const url = `/models/tiny/${mode}/`;
    const lengths = [3, 17, 6, 11, 2];
    const prompts = await Promise.all(lengths.map((n, i) => call(page, 'randomIds', n, 40 + i, tinyModelVocab(mode))));
    // Batch of 3 for 5 prompts: two join late. Sequences 0-3 stop early by their own rule; 4 runs to the limit.
    const r = await call(page, 'batchedVsAlone', url, prompts, 3, 14, [4, 9, 2, 6, 99]);
    expect(r.want.map((w) => w.length)).toEqual([4, 9, 2, 6, 14]);
    expect(r.batched).toEqual(r.want);
    expect(r.alone).toEqual(r.want);
    expect(r.stopReasons).toEqual(['stop', 'stop', 'stop', 'stop', 'length']);
    expect(r.joinOrder).toEqual([0, 1, 2, 3, 4]);
  });
}

for (const mode of ['small-q4f32_1', 'small-q4f16_1'] as const) {
  test(`${mode}: a batch prefills the prompts' shared prefix once and still gives each prompt exactly its ids alone`, async ({ page }) => {
    const url = `/models/tiny/${mode}/`;
    // 11 shared tokens, then each prompt's own (distinct first tokens, so the common prefix is
    // exactly 11). Prefill chunks of 4: the prefix prefilled once is 8 tokens, two whole chunks.
    const shared = await call(page, 'randomIds', 11, 60, tinyModelVocab(mode));
    const own = [5, 1, 9, 3, 2].map((n, i) => [100 + i, ...Array.from({ length: n - 1 }, (_, j) => 7 + ((i * 13 + j * 5) % 90))]);
    const prompts = own.map((o) => [...shared, ...o]);
    // Batch of 2 for 5 prompts: prompt 1 gets a copy of slot 0's prefix rows, later ones reuse their slot's.
    const r = await call(page, 'batchedVsAlone', url, prompts, 2, 10, [3, 8, 2, 99, 5], 4);
    expect(r.sharedPrefixTokens).toBe(8);
    expect(r.cached).toEqual([0, 8, 8, 8, 8]);
    expect(r.prefilled).toEqual(prompts.map((p, i) => p.length - (i === 0 ? 0 : 8)));
    expect(r.want.map((w) => w.length)).toEqual([3, 8, 2, 10, 5]);
    expect(r.batched).toEqual(r.want);
    expect(r.alone).toEqual(r.want);
  });
}

for (const mode of ['small-q0f32', 'small-q4f32_1'] as const) {
  test(`${mode}: a lane whose sequence ended takes the next prompt while the other lane's steps are still in flight`, async ({ page }) => {
    const prompts = await Promise.all([9, 3, 6].map((n, i) => call(page, 'randomIds', n, 70 + i, tinyModelVocab(mode))));
    const steps = [2, 12, 5];
    const r = await call(page, 'greedyStreamRefill', `/models/tiny/${mode}/`, prompts, steps);
    expect(r.ids).toEqual(r.want);
    // Prompt 2 joins lane 0 when prompt 0 ends. Steps of prompt 1 that were already in flight
    // arrive after that refill and before prompt 2's first id: the pipeline did not drain.
    const refill = r.log.indexOf('refill 2');
    const first = r.log.findIndex((e, i) => i > refill && e.startsWith('ids') && e.split(' ')[1].split(',').includes('2'));
    expect(refill).toBeGreaterThan(0);
    expect(r.log.slice(refill + 1, first).filter((e) => e === 'ids 1').length).toBeGreaterThanOrEqual(1);
    // Then both lanes decode together, and each slot holds its prompt and every id but the last.
    expect(r.log.slice(first + 1)).toContain('ids 2,1');
    // Prompt 2 (5 steps) ends first; nothing waits, so the stream returns and prompt 1 goes on alone.
    expect(r.log.filter((e) => e === 'return')).toHaveLength(2);
    expect(r.log[r.log.length - 2]).toBe('ids 1');
    // Each slot holds its prompt and every id but the last (slot 0's last sequence is prompt 2's).
    expect(r.positions[1]).toBe(prompts[1].length + steps[1]);
    expect(r.positions[2]).toBe(prompts[2].length + steps[2]);
  });
}

// On the 500-id models: what the cache format changes does not depend on the vocabulary.
for (const mode of ['small-q0f32', 'small-q4f32_1'] as const) {
  test(`${mode} with kvCache 'f16': logits, greedy ids and batched = alone match the reference whose cache rounds keys and values to f16`, async ({ page }) => {
    const url = `/models/tiny/${mode}/`;
    const vocab = tinyModelVocab(mode);
    const f16 = { kvCache: 'f16' } as const;
    // Half the cache bytes of the default f32 one, and the planner predicts them exactly.
    const mem = await call(page, 'memoryReport', url, f16);
    const auto = await call(page, 'memoryReport', url);
    expect([mem.kvCache, auto.kvCache]).toEqual(['f16', 'f32']);
    expect(mem.planned).toEqual(mem.actual);
    expect(mem.actual.kvCache * 2).toBe(auto.actual.kvCache);
    // Logits of every token, at the f32 paths' tolerance: in one prefill call and in chunks of 5.
    const ids = await call(page, 'randomIds', 24, 7, vocab);
    expect(await call(page, 'checkAllLogits', url, ids, f16)).toBeLessThan(1e-4);
    expect(await call(page, 'checkAllLogits', url, ids, { ...f16, prefillChunk: 5 })).toBeLessThan(1e-4);
    // The check can fail: the f16 rounding is visible against the f32-cache reference.
    expect(await call(page, 'checkAllLogits', url, ids, { ...f16, against: 'f32' })).toBeGreaterThan(1e-4);
    // Greedy decoding (the fused qkv epilogue writes decode rows' keys and values).
    for (const seed of [1, 2]) {
      const prompt = await call(page, 'randomIds', 9, seed, vocab);
      const { got, want } = await call(page, 'greedyBoth', url, prompt, 64, { ...f16, stopTokenIds: [] });
      expect(want.length).toBe(64);
      expect(got).toEqual(want);
    }
    // Continuous batching over the f16 cache, as the f32 test above runs it.
    const lengths = [3, 17, 6, 11, 2];
    const prompts = await Promise.all(lengths.map((n, i) => call(page, 'randomIds', n, 40 + i, vocab)));
    const r = await call(page, 'batchedVsAlone', url, prompts, 3, 14, [4, 9, 2, 6, 99], undefined, 'f16');
    expect(r.want.map((w) => w.length)).toEqual([4, 9, 2, 6, 14]);
    expect(r.batched).toEqual(r.want);
    expect(r.alone).toEqual(r.want);
  });
}

test("setKvCache switches a loaded model between f32 and f16 in place: each time its logits and greedy ids are the reference's for that format", async ({
  page,
}) => {
  const url = '/models/tiny/small-q4f32_1/';
  const vocab = tinyModelVocab('small-q4f32_1');
  const ids = await call(page, 'randomIds', 16, 7, vocab);
  const prompt = await call(page, 'randomIds', 9, 1, vocab);
  const r = await call(page, 'kvCacheSwitches', url, ['auto', 'f16', 'f32', 'f16', 'auto'], ids, prompt, 24);
  expect(r.steps.map((s) => s.kvCache)).toEqual(['f32', 'f16', 'f32', 'f16', 'f32']);
  for (const s of r.steps) {
    expect(s.memory).toEqual(s.planned);
    // The format really changed: the reference storing it agrees, the one storing the other does not.
    expect(s.errorOwn).toBeLessThan(1e-4);
    expect(s.errorOther).toBeGreaterThan(1e-4);
    expect(s.want).toHaveLength(24);
    expect(s.got).toEqual(s.want);
  }
  // The weights stay; the cache halves and doubles.
  expect(new Set(r.steps.map((s) => s.memory.weights)).size).toBe(1);
  expect(r.steps[0].memory.kvCache).toBe(r.steps[1].memory.kvCache * 2);
  expect(r.refused).toBe('kvCache must be one of auto, f16, f32, not "half".');
  expect(r.after).toBe('f32');
});

test('a KV cache switch that does not fit is refused by name, and the model keeps its format, shape and greedy ids', async ({ page }) => {
  // The shape that is over the limit in f32 holds ~2000 sequences; it is made twice (before the
  // switch, and again after the refusal), about a minute on SwiftShader: out of the default run.
  test.skip(!process.env.RL_HEAVY, 'heavy: set RL_HEAVY=1');
  const url = '/models/tiny/small-q4f32_1/';
  const prompt = await call(page, 'randomIds', 9, 3, tinyModelVocab('small-q4f32_1'));
  const r = await call(page, 'kvCacheSwitchRefused', url, prompt, 12);
  // The batch is one past what an f32 cache allows, and within what f16 allows.
  expect(r.slots).toBeLessThanOrEqual(r.f16Fits);
  expect(r.before).toMatchObject({ kvCache: 'f16', maxBatch: r.slots });
  expect(r.refused).toMatch(/^BufferLimitError: .*maxStorageBufferBindingSize/);
  expect(r.after).toEqual(r.before);
  expect(r.want).toHaveLength(12);
  expect(r.got).toEqual(r.want);
});

test("small-q4f16_1 with kvCache 'f32': an f16 mode runs a full-precision cache, and its logits match the f32 reference at 1e-4", async ({ page }) => {
  const url = '/models/tiny/small-q4f16_1/';
  const vocab = tinyModelVocab('small-q4f16_1');
  const f32 = { kvCache: 'f32' } as const;
  const mem = await call(page, 'memoryReport', url, f32);
  const auto = await call(page, 'memoryReport', url);
  expect([mem.kvCache, auto.kvCache]).toEqual(['f32', 'f16']);
  expect(mem.planned).toEqual(mem.actual);
  expect(mem.actual.kvCache).toBe(auto.actual.kvCache * 2);
  const ids = await call(page, 'randomIds', 24, 7, vocab);
  expect(await call(page, 'checkAllLogits', url, ids, f32)).toBeLessThan(1e-4);
  const prompt = await call(page, 'randomIds', 9, 1, vocab);
  const { got, want } = await call(page, 'greedyBoth', url, prompt, 32, f32);
  expect(got).toEqual(want);
});

// Where a run stops does not depend on the vocabulary: the 500-id models.
for (const mode of ['small-q0f32', 'small-q4f32_1'] as const) {
  test(`${mode}: greedy decoding on the GPU stopped mid-pipeline delivers the steps in flight and keeps positions consistent`, async ({ page }) => {
    const url = `/models/tiny/${mode}/`;
    const prompt = await call(page, 'randomIds', 7, 21, tinyModelVocab(mode));
    // Stop at step 4 of 20: steps 5 and 6 were already in flight (3 deep) and still arrive.
    const r = await call(page, 'greedyStopInFlight', url, prompt, 4, 20, 5);
    expect(r.stepsSeen).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(r.ran).toBe(7);
    expect(r.positionAfterStop).toBe(prompt.length + 7);
    expect(r.ran2).toBe(5);
    expect(r.positionAtEnd).toBe(prompt.length + 12);
    expect(r.ids).toHaveLength(13);
    expect(r.ids).toEqual(r.want);
  });

  test(`${mode}: after a greedy generate() stopped early the cache holds prompt + ids - 1 tokens and decoding continues like the reference`, async ({
    page,
  }) => {
    const url = `/models/tiny/${mode}/`;
    const prompt = await call(page, 'randomIds', 5, 22, tinyModelVocab(mode));
    const r = await call(page, 'generateThenContinue', url, prompt, 30, 6, 4);
    expect(r.stopReason).toBe('stop');
    expect(r.generated).toHaveLength(6);
    expect(r.position).toBe(prompt.length + 6 - 1);
    expect(r.ids).toEqual(r.want);
    // Run to the length limit: nothing stops it early.
    const full = await call(page, 'generateThenContinue', url, prompt, 9, 99, 2);
    expect(full.stopReason).toBe('length');
    expect(full.position).toBe(prompt.length + 9 - 1);
    expect(full.ids).toEqual(full.want);
  });
}

test('sampling with a temperature keeps the logits path (a near-zero temperature gives the reference greedy ids)', async ({ page }) => {
  const prompts = await Promise.all([4, 9, 6].map((n, i) => call(page, 'randomIds', n, 60 + i, tinyModelVocab('small-q0f32'))));
  const r = await call(page, 'samplingPath', '/models/tiny/small-q0f32/', prompts, 10);
  expect(r.samplingCalls).toBe(0);
  expect(r.greedyCalls).toBe(1);
  expect(r.alone).toEqual(r.want);
  expect(r.batched).toEqual(r.want);
});

test('decodeGreedy refuses repeated slots, too many sequences and overflowing the context, and recovers when onStep throws', async ({ page }) => {
  const r = await call(page, 'greedyMisuse', '/models/tiny/q0f32/');
  expect(r.errors[0]).toMatch(/^EngineError: decodeGreedy needs distinct slots/);
  expect(r.errors[1]).toMatch(/^EngineError: 3 sequences exceed the batch of 2/);
  expect(r.errors[2]).toMatch(/^EngineError: The context window is full \(32 tokens\)/);
  expect(r.errors[3]).toBe('Error: onStep failed');
  expect(r.calls).toBe(2);
  expect(r.afterThrow).toBe(r.before + 2);
  expect(r.ran).toBe(8);
});
