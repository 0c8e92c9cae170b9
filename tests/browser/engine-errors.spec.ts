import { test, expect } from '@playwright/test';

/** The engine's failures reach the user as named errors that say what to do. */

test.beforeEach(async ({ page }) => {
  await page.goto('/harness.html');
});

test('a browser without WebGPU gets WebGPUUnavailableError naming browsers that work', async ({ page }) => {
  const r = await page.evaluate(async () => {
    Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
    const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
    try {
      await new Engine().load(httpModelSource('/models/tiny/q4f32_1/'));
      return null;
    } catch (e) {
      return { name: (e as Error).name, message: (e as Error).message };
    }
  });
  expect(r?.name).toBe('WebGPUUnavailableError');
  expect(r?.message).toMatch(/WebGPU is not available/);
  expect(r?.message).toMatch(/Chrome or Edge/);
});

test('a lost GPU device fails the next generation with DeviceLostError saying to reload', async ({ page }) => {
  const r = await page.evaluate(async () => {
    const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
    const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
    const engine = new Engine();
    await engine.load(httpModelSource('/models/tiny/q4f32_1/'));
    const before = (await engine.generate([1, 450], { maxNewTokens: 2 })).ids.length;
    engine.llamaModel().gpu.device.destroy(); // what a driver reset looks like from the page
    try {
      await engine.generate([1, 450], { maxNewTokens: 2 });
      return { before, error: null };
    } catch (e) {
      return { before, error: { name: (e as Error).name, message: (e as Error).message } };
    }
  });
  expect(r.before).toBe(2);
  expect(r.error?.name).toBe('DeviceLostError');
  expect(r.error?.message).toMatch(/GPU device was lost/);
  expect(r.error?.message).toMatch(/Reload the model/);
});

test('after a device lost mid-generation, loading again asks for a new device and generation gives the reference greedy ids', async ({ page }) => {
  const r = await page.evaluate(async () => {
    const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
    const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
    const { referenceFor } = await import(/* @vite-ignore */ '/tests/browser/harness/modelChecks.ts' as string);
    const url = '/models/tiny/q4f32_1/';
    const prompt = [1, 450, 4996];
    const engine = new Engine();
    await engine.load(httpModelSource(url));
    const lostDevice = engine.llamaModel().gpu.device;
    let error: string | null = null;
    try {
      await engine.generate(
        prompt,
        { maxNewTokens: 12, stopTokenIds: [] },
        { onToken: ({ index }: { index: number }) => void (index === 2 && lostDevice.destroy()) },
      );
    } catch (e) {
      error = (e as Error).name;
    }
    // "Reload the model": the same engine loads the same model again.
    await engine.load(httpModelSource(url));
    const newDevice = engine.llamaModel().gpu.device !== lostDevice;
    const got = (await engine.generate(prompt, { maxNewTokens: 12, stopTokenIds: [] })).ids;
    const want = (await referenceFor(url)).greedyGenerate(prompt, 12, []);
    return { error, newDevice, got, want };
  });
  expect(r.error).toBe('DeviceLostError');
  expect(r.newDevice).toBe(true);
  expect(r.got).toEqual(r.want);
});

test('a device lost while greedy steps are in flight fails the generation with DeviceLostError, leaving no unhandled rejection', async ({ page }) => {
  const unhandled: string[] = [];
  page.on('pageerror', (e) => unhandled.push(e.message));
  const r = await page.evaluate(async () => {
    const rejections: string[] = [];
    addEventListener('unhandledrejection', (e) => rejections.push(String((e as PromiseRejectionEvent).reason)));
    const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
    const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
    const engine = new Engine();
    await engine.load(httpModelSource('/models/tiny/q4f32_1/'));
    let seen = 0;
    let error: { name: string; message: string } | null = null;
    try {
      // Token 3 arrives while the next steps' readbacks are pending: lose the device then.
      await engine.generate(
        [1, 450],
        { maxNewTokens: 30 },
        { onToken: ({ index }: { index: number }) => void ((seen = index + 1) === 3 && engine.llamaModel().gpu.device.destroy()) },
      );
    } catch (e) {
      error = { name: (e as Error).name, message: (e as Error).message };
    }
    await new Promise((res) => setTimeout(res, 500));
    return { seen, error, rejections };
  });
  expect(r.error?.name).toBe('DeviceLostError');
  expect(r.seen).toBeGreaterThanOrEqual(3);
  expect(r.seen).toBeLessThan(30);
  expect(r.rejections).toEqual([]);
  expect(unhandled).toEqual([]);
});

test('a buffer over the device limit (activations for 100 000 sequences) is refused with BufferLimitError naming the limit and the buffer', async ({
  page,
}) => {
  const r = await page.evaluate(async () => {
    const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
    const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
    try {
      // 100 000 sequences of 512 tokens: buffers far beyond any device's binding limit.
      await new Engine().load(httpModelSource('/models/tiny/q4f32_1/'), { maxBatch: 100_000 });
      return null;
    } catch (e) {
      return { name: (e as Error).name, message: (e as Error).message };
    }
  });
  expect(r?.name).toBe('BufferLimitError');
  expect(r?.message).toMatch(/^\w+ needs [\d.]+ GiB in one GPU buffer, more than this GPU's maxStorageBufferBindingSize \([\d.]+ GiB\)/);
  // A per-buffer limit is not a matter of free memory: no advice to close tabs.
  expect(r?.message).not.toMatch(/tabs/);
});

test('a weight tensor over the device limit fails the load before any shard is read, naming the tensor and the limit', async ({ page }) => {
  const r = await page.evaluate(async () => {
    const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
    const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
    const { syntheticModelSource, llama2_7bShape } = await import(/* @vite-ignore */ '/src/formats/syntheticModel.ts' as string);
    const adapter = (await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' }))!;
    // The engine asks for the adapter's own limits; an f32 embedding table one row over them.
    const limit = adapter.limits.maxStorageBufferBindingSize;
    const shape = llama2_7bShape(1);
    const config = { ...shape, vocabSize: Math.floor(limit / (shape.hiddenSize * 4)) + 1 };
    const source = syntheticModelSource(config, 'q0f32');
    let shardsRead = 0;
    const counted = { ...source, readShard: (path: string) => (shardsRead++, source.readShard(path)) };
    const engine = new Engine();
    let error: { name: string; message: string } | null = null;
    try {
      await engine.load(counted);
    } catch (e) {
      error = { name: (e as Error).name, message: (e as Error).message };
    }
    // The engine is left usable: the tiny model loads and generates after it.
    await engine.load(httpModelSource('/models/tiny/q4f32_1/'));
    const after = (await engine.generate([1, 450], { maxNewTokens: 2 })).ids.length;
    return { error, shardsRead, after, limitGiB: (limit / 2 ** 30).toFixed(2) };
  });
  expect(r.error?.name).toBe('BufferLimitError');
  expect(r.error?.message).toContain('The weight tensor model.embed_tokens');
  expect(r.error?.message).toContain(`maxStorageBufferBindingSize (${r.limitGiB} GiB)`);
  expect(r.shardsRead).toBe(0);
  expect(r.after).toBe(2);
});
