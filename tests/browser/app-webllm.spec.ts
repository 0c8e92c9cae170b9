import { test, expect, type Page } from '@playwright/test';

/**
 * WebLLM as the Generate view's optional engine, offline: its model library (GitHub) and weights
 * (Hugging Face) cannot be fetched, so loading fails fast with a message in words, adapters are off
 * while it is chosen, and our engine still works afterwards. The external hosts are made to fail
 * (or hang) here with page.route, so the test behaves the same on a machine with internet.
 */

const EXTERNAL = /^https:\/\/([^/]*\.)?(huggingface\.co|hf\.co|githubusercontent\.com|github\.com)\//;

async function offline(page: Page, how: 'fail' | 'hang') {
  await page.route(EXTERNAL, (route) => (how === 'fail' ? route.abort('internetdisconnected') : new Promise<void>(() => {})));
}

test('choosing WebLLM offline explains why it cannot load; our engine still generates afterwards', async ({ page }) => {
  test.setTimeout(120_000);
  await offline(page, 'fail');
  await page.goto('./#view=generate');

  await page.getByRole('radio', { name: 'WebLLM (base model + hard prompts only)' }).check();
  // Adapters are off with WebLLM, and the view says why.
  await expect(page.getByTestId('webllm-adapters-off')).toContainText('Adapters are off with WebLLM');
  await expect(page.getByTestId('adapter-select')).toBeDisabled();
  await expect(page.getByTestId('gen-adapter')).toContainText('WebLLM runs the base model alone');
  await expect(page.getByRole('button', { name: 'Generate', exact: true })).toBeDisabled();

  // An f16 model on a GPU without shader-f16 (the software adapter here) is refused before any download.
  const webllmModel = page.getByRole('combobox', { name: 'WebLLM model' });
  await webllmModel.selectOption('Llama-2-7b-hf-q4f16_1-MLC');
  await page.getByRole('button', { name: 'Load in WebLLM' }).click();
  // The first load asks about WebLLM's unpinned model library (see the test below).
  await page.getByRole('button', { name: 'Load this third-party code' }).click();
  const banner = page.getByTestId('engine-choice').getByRole('alert');
  await expect(banner).toContainText('WebLLM is not available');
  await expect(banner).toContainText(/shader-f16|could not be fetched/); // a GPU with f16 goes on to the network

  // The f32 base model: the library and weights cannot be fetched.
  await banner.getByRole('button', { name: 'Dismiss this message' }).click();
  await webllmModel.selectOption('Llama-2-7b-hf-q4f32_1-MLC');
  await page.getByRole('button', { name: 'Load in WebLLM' }).click();
  await expect(banner).toContainText('WebLLM could not load Llama-2-7b-hf-q4f32_1-MLC', { timeout: 30_000 });
  await expect(banner).toContainText('could not be fetched');
  await expect(banner).toContainText('connect and try again');
  await expect(page.getByRole('button', { name: 'Generate', exact: true })).toBeDisabled();

  // Back to our engine: the adapter picker comes back, the tiny model loads and generates.
  await page.getByRole('radio', { name: 'Reasoning Lab' }).check();
  await expect(page.getByTestId('webllm-adapters-off')).toHaveCount(0);
  await expect(page.getByTestId('adapter-select')).toBeEnabled();
  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 60_000 });
  await page.getByLabel('Max new tokens').fill('4');
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await expect(page.getByTestId('gen-stats')).toContainText(/decode [\d.]+ tokens\/s/, { timeout: 60_000 });
  await expect(page.getByTestId('gen-stats')).toContainText(/^4 tokens/);
  await expect(page.getByTestId('gen-adapter')).not.toContainText('WebLLM');
});

test('WebLLM says its model library is unpinned third-party code from GitHub and fetches nothing before the user says yes', async ({ page }) => {
  test.setTimeout(120_000);
  const external: string[] = [];
  await page.route(EXTERNAL, (route) => {
    external.push(route.request().url());
    return route.abort('internetdisconnected');
  });
  await page.goto('./#view=generate');
  await page.getByRole('radio', { name: 'WebLLM (base model + hard prompts only)' }).check();
  await expect(page.getByTestId('webllm-unpinned-note')).toContainText('unpinned third-party code from GitHub: you are asked before it loads');
  await page.getByRole('combobox', { name: 'WebLLM model' }).selectOption('Llama-2-7b-hf-q4f32_1-MLC');
  await page.getByRole('button', { name: 'Load in WebLLM' }).click();
  const ask = page.getByTestId('webllm-unpinned');
  await expect(ask).toContainText(
    'downloads from https://raw.githubusercontent.com/mlc-ai/binary-mlc-llm-libs/main/web-llm-models/: third-party code from the moving main branch',
  );
  await expect(ask).toContainText('not pinned to a commit and not checked against a hash');
  // Cancel: nothing fetched, nothing loading.
  await ask.getByRole('button', { name: 'Cancel' }).click();
  await expect(ask).toHaveCount(0);
  await page.waitForTimeout(500);
  expect(external).toEqual([]);
  // Yes: WebLLM goes to the network (refused here), and the failure is explained.
  await page.getByRole('button', { name: 'Load in WebLLM' }).click();
  await page.getByRole('button', { name: 'Load this third-party code' }).click();
  await expect(page.getByTestId('engine-choice').getByRole('alert')).toContainText('could not be fetched', { timeout: 60_000 });
  expect(external.some((u) => u.startsWith('https://raw.githubusercontent.com/mlc-ai/binary-mlc-llm-libs/') || /huggingface\.co/.test(u))).toBe(true);
});

test('a network that never answers does not hang WebLLM: it gives up after the stall time, in words', async ({ page }) => {
  test.setTimeout(60_000);
  await offline(page, 'hang');
  await page.goto('./#view=generate');
  const r = await page.evaluate(async () => {
    const { loadWebLLM } = (await import(/* @vite-ignore */ '/src/engine/webllm.ts' as string)) as typeof import('../../src/engine/webllm.ts');
    const t0 = performance.now();
    try {
      await loadWebLLM('Llama-2-7b-hf-q4f32_1-MLC', { stallMs: 2000 });
      return { ok: true, ms: performance.now() - t0 };
    } catch (e) {
      return { ok: false, name: (e as Error).name, message: (e as Error).message, ms: performance.now() - t0 };
    }
  });
  expect(r.ok).toBe(false);
  expect(r.name).toBe('WebLLMUnavailableError');
  expect(r.message).toContain('nothing arrived for 2 s');
  expect(r.ms).toBeLessThan(15_000);
});
