import { test, expect, type Page, type Worker } from '@playwright/test';

/**
 * A GPU device lost in the middle of a generation (a real device.destroy() inside the engine
 * worker): the page says what happened and one click on "Reload the model" recovers, after which
 * the same greedy generation gives the same text as before the loss.
 */

async function engineWorker(page: Page): Promise<Worker> {
  await expect.poll(() => page.workers().some((w) => w.url().includes('worker'))).toBe(true);
  return page.workers().find((w) => w.url().includes('worker'))!;
}

/**
 * Count the command encoders the worker's device makes; with `destroyAt`, the device that makes
 * encoder number `destroyAt` (counted from now) is destroyed right there, once. The engine has no
 * test hook: this reaches its real device through the prototype every encoder comes from.
 */
async function watchEncoders(worker: Worker, destroyAt: number | null): Promise<void> {
  await worker.evaluate((destroyAt) => {
    const g = globalThis as unknown as { rlEncoders?: number; rlOriginal?: GPUDevice['createCommandEncoder'] };
    g.rlOriginal ??= GPUDevice.prototype.createCommandEncoder;
    const original = g.rlOriginal;
    g.rlEncoders = 0;
    GPUDevice.prototype.createCommandEncoder = function (this: GPUDevice, d?: GPUCommandEncoderDescriptor) {
      g.rlEncoders!++;
      if (g.rlEncoders === destroyAt) {
        GPUDevice.prototype.createCommandEncoder = original;
        this.destroy();
      }
      return original.call(this, d);
    };
  }, destroyAt);
}

async function generateText(page: Page): Promise<string> {
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await expect(page.getByTestId('gen-stats')).toContainText(/^24 tokens/, { timeout: 120_000 });
  return (await page.getByTestId('gen-output').textContent()) ?? '';
}

test('a device destroyed mid-generation: the page names the loss, "Reload the model" recovers in one click, and generation gives the same text again', async ({
  page,
}) => {
  await page.goto('./#view=generate');
  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  // An f32 mode with an f16 cache: the reload must bring back the cache format too, not only the model.
  const kv = page.getByRole('combobox', { name: 'KV cache' });
  await kv.selectOption('f16');
  await page.getByRole('button', { name: 'Load model' }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
  await expect(page.getByTestId('model-status')).toContainText('KV cache f16');
  await page.getByTestId('gen-prompt').fill('Q: What is 2 + 3?\nA:');
  await page.getByLabel('Max new tokens').fill('24');
  await page.getByLabel('Temperature').fill('0');

  const worker = await engineWorker(page);
  await watchEncoders(worker, null);
  const before = await generateText(page);
  const encoders = await worker.evaluate(() => (globalThis as unknown as { rlEncoders: number }).rlEncoders);
  expect(encoders).toBeGreaterThan(4);

  // Lose the device halfway through the same generation.
  await watchEncoders(worker, Math.floor(encoders / 2));
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  const banner = page.getByRole('alert').filter({ hasText: 'The GPU stopped responding' });
  await expect(banner).toContainText('The GPU device was lost', { timeout: 120_000 });
  await expect(page.getByTestId('gen-stats')).not.toContainText('24 tokens');

  // The choice changed meanwhile; "Reload the model" still reloads what was lost.
  await kv.selectOption('f32');
  await banner.getByRole('button', { name: 'Reload the model' }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
  await expect(page.getByTestId('model-status')).toContainText('KV cache f16');
  await expect(kv).toHaveValue('f16');
  await expect(banner).toHaveCount(0);
  expect(await generateText(page)).toBe(before);
});
