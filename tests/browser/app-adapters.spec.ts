import { test, expect, type Page } from '@playwright/test';

/**
 * Adapters in the app on the tiny model (random weights, random demo adapters): pick one, see it
 * change the output, switch between resident adapters without reloading the base, runs that
 * record their adapter beside the paper's cell, share links, and a mismatched adapter refused.
 */

// The software WebGPU adapter is slow (seconds per token on a busy machine): room for a few generations.
test.describe.configure({ timeout: 420_000 });

async function loadTiny(page: Page, mode = 'q4f32_1') {
  await page.getByRole('combobox', { name: 'Model' }).selectOption(`tiny-${mode}`);
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText(mode, { timeout: 120_000 });
}

async function pickAdapter(page: Page, id: string, using: string | RegExp) {
  await page.getByTestId('adapter-select').selectOption(id);
  await expect(page.getByTestId('adapter-active')).toContainText(using, { timeout: 60_000 });
}

/** Generate greedily in the Generate tab; resolves with the output text once finished. */
async function generate(page: Page): Promise<string> {
  await expect(page.getByRole('button', { name: 'Generate', exact: true })).toBeEnabled();
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await expect(page.getByTestId('gen-stats')).toContainText('stopped:', { timeout: 120_000 });
  const text = (await page.getByTestId('gen-output').textContent()) ?? '';
  return text;
}

/** From now on, count DOM changes that leave an element matching `selector` in the page (window[counter]). */
async function countAppearances(page: Page, selector: string, counter: string) {
  await page.evaluate(
    ({ selector, counter }) => {
      const w = window as unknown as Record<string, number>;
      w[counter] = 0;
      new MutationObserver(() => {
        if (document.querySelector(selector)) w[counter]++;
      }).observe(document.body, { childList: true, subtree: true });
    },
    { selector, counter },
  );
}

function counted(page: Page, counter: string): Promise<number> {
  return page.evaluate((c) => (window as unknown as Record<string, number>)[c], counter);
}

test('pick LoRA, series, parallel and none: outputs change, and the base output comes back exactly without a reload', async ({ page }) => {
  await page.goto('./#view=generate');
  await loadTiny(page);
  // The picker offers the tiny mode's demo adapters, labelled as random weights.
  const options = await page.getByTestId('adapter-select').locator('option').allTextContents();
  expect(options[0]).toBe('None (base model)');
  expect(options.filter((o) => /random weights/.test(o))).toHaveLength(3);

  // Watch for any base reload from here on (the model's load progress bar appearing).
  await countAppearances(page, 'progress[aria-label="Loading model"]', 'baseReloads');

  await page.getByTestId('gen-prompt').fill('Q: 3 + 5 =');
  await page.getByLabel('Max new tokens').fill('12');
  const base = await generate(page);
  expect(base.length).toBeGreaterThan(0);
  await expect(page.getByTestId('gen-adapter')).toHaveText('none (base model)');

  await pickAdapter(page, 'tiny-q4f32_1-lora', 'Using Tiny LoRA demo (q4f32_1) · LoRA · 1 adapter resident');
  const lora = await generate(page);
  await expect(page.getByTestId('gen-adapter')).toHaveText('Tiny LoRA demo (q4f32_1) · LoRA');
  expect(lora).not.toBe(base);

  // Series and parallel join it: all three resident at once beside the one base.
  await pickAdapter(page, 'tiny-q4f32_1-series', 'Using Tiny series adapter demo (q4f32_1) · series adapter · 2 adapters resident');
  await pickAdapter(page, 'tiny-q4f32_1-parallel', 'Using Tiny parallel adapter demo (q4f32_1) · parallel adapter · 3 adapters resident');

  // Back to none: the very same base text, with the adapters still resident.
  await pickAdapter(page, 'none', 'Using the base model alone · 3 adapters resident');
  expect(await generate(page)).toBe(base);
  await expect(page.getByTestId('gen-adapter')).toHaveText('none (base model)');
  // And back to LoRA: no loading this time (it is resident), nothing more made resident.
  await countAppearances(page, '[data-testid="adapter-loading"]', 'adapterLoads');
  await pickAdapter(page, 'tiny-q4f32_1-lora', 'Using Tiny LoRA demo (q4f32_1) · LoRA · 3 adapters resident');
  expect(await counted(page, 'adapterLoads')).toBe(0);
  expect(await counted(page, 'baseReloads')).toBe(0);
});

test("a run with the LoRA adapter records it; the results table shows the paper's LoRA cell (Alpaca prompt, GSM8K: 44.66%)", async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=alpaca&dataset=gsm8k&max=8');
  await loadTiny(page);
  await pickAdapter(page, 'tiny-q4f32_1-lora', 'Using Tiny LoRA demo (q4f32_1) · LoRA');
  await expect(page.getByTestId('run-adapter-planned')).toHaveText('Tiny LoRA demo (q4f32_1) · LoRA');
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('2');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('progress')).toHaveText('2 of 2 problems', { timeout: 120_000 });
  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-done')).toHaveText('2 of 2');
  await expect(row.getByTestId('run-adapter')).toHaveText('Tiny LoRA demo (q4f32_1) · LoRA');
  await expect(row.getByTestId('run-paper-value')).toHaveText('44.66%');
  await expect(page.locator('.summary h3')).toContainText('Tiny LoRA demo (q4f32_1) · LoRA');
});

test('compare side by side with a different adapter on each side; the diagram marks the adapter in use', async ({ page }) => {
  await page.goto('./#view=lab&dataset=gsm8k&problem=0&prompt=alpaca&max=8');
  await loadTiny(page);
  await page.getByLabel('Compare two configurations side by side').check();
  await page.locator('input[name="config-b"][value="alpaca"]').check();
  await page.getByTestId('adapter-b').selectOption('tiny-q4f32_1-parallel');
  await expect(page.getByTestId('solution-a-adapter')).toHaveText('none (base model)');
  await page.getByRole('button', { name: 'Solve with both' }).click();
  await expect(page.getByTestId('solution-b-verdict')).toHaveText(/Correct|Incorrect/, { timeout: 120_000 });
  await expect(page.getByTestId('solution-a-adapter')).toHaveText('none (base model)');
  await expect(page.getByTestId('solution-b-adapter')).toHaveText('Tiny parallel adapter demo (q4f32_1) · parallel adapter');
  // The engine is back on A's adapter (the one the picker shows); B's stays resident.
  await expect(page.getByTestId('adapter-active')).toHaveText('Using the base model alone · 1 adapter resident');
  expect(page.url()).toContain('compareAdapter=tiny-q4f32_1-parallel');

  const explainB = page.getByTestId('solution-b').locator('xpath=..').locator('details.why');
  await explainB.locator('summary').click();
  await expect(explainB.getByTestId('block-diagram')).toHaveAttribute('data-active', 'parallel');
  await expect(explainB.getByTestId('diagram-in-use')).toContainText('parallel adapter');
  await expect(explainB.locator('rect[data-in-use]')).toHaveCount(2); // up_proj and down_proj
  const explainA = page.getByTestId('solution-a').locator('xpath=..').locator('details.why');
  await explainA.locator('summary').click();
  await expect(explainA.getByTestId('block-diagram')).toHaveAttribute('data-active', 'none');
});

test('the share link restores the adapter once the model loads', async ({ page }) => {
  await page.goto('./#view=lab&problem=2&prompt=alpaca');
  await loadTiny(page);
  await pickAdapter(page, 'tiny-q4f32_1-series', 'Using Tiny series adapter demo (q4f32_1) · series adapter');
  await expect.poll(() => page.url()).toContain('adapter=tiny-q4f32_1-series');
  await page.reload();
  await expect(page.getByTestId('adapter-select')).toHaveValue('tiny-q4f32_1-series');
  await loadTiny(page);
  await expect(page.getByTestId('adapter-active')).toHaveText('Using Tiny series adapter demo (q4f32_1) · series adapter · 1 adapter resident', {
    timeout: 60_000,
  });
  await expect(page.getByTestId('solution-a-adapter')).toHaveText('Tiny series adapter demo (q4f32_1) · series adapter');
  const explain = page.locator('details.why').first();
  await explain.locator('summary').click();
  await expect(explain.getByTestId('block-diagram')).toHaveAttribute('data-active', 'series');
  await expect(explain.getByRole('radio', { name: /Series adapter \(in use\)/ })).toBeChecked();
});

test('an adapter made for another base is refused with the reason in words', async ({ page }) => {
  await page.goto('./#view=generate');
  await loadTiny(page, 'q4f32_1');
  // The q0f32 demo adapter is not listed for q4f32_1: give its folder by URL.
  await page.getByText('Adapter from a URL').click();
  await page.getByLabel('Adapter folder URL').fill('/models/tiny/adapters/q0f32-lora/');
  await page.getByRole('button', { name: 'Use', exact: true }).click();
  const banner = page.getByRole('alert').filter({ hasText: 'this adapter was made for a different base model' });
  await expect(banner).toBeVisible({ timeout: 60_000 });
  await expect(banner).toContainText('Could not use the adapter');
  await expect(page.getByTestId('adapter-select')).toHaveValue('none');
  await expect(page.getByTestId('adapter-active')).toHaveText('Using the base model alone');
  // The same through a share link.
  await banner.getByRole('button', { name: 'Dismiss this message' }).click();
  const url = new URL('/models/tiny/adapters/q0f32-series/', page.url()).href;
  await page.goto(`./#view=generate&model=tiny%2Fq4f32_1&adapter=${encodeURIComponent(`url:${url}`)}`);
  await page.reload();
  await loadTiny(page, 'q4f32_1');
  await expect(page.getByRole('alert').filter({ hasText: 'this adapter was made for a different base model' })).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId('adapter-active')).toHaveText('Using the base model alone');
});

test('a run with an adapter (its 4 beams), interrupted by a reload, resumes with that adapter and decoding whatever the pickers show', async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=alpaca&dataset=gsm8k&max=16');
  await loadTiny(page);
  await pickAdapter(page, 'tiny-q4f32_1-parallel', 'Using Tiny parallel adapter demo (q4f32_1) · parallel adapter');
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('4');
  // One at a time, so the reload falls between results.
  await page.getByTestId('run-batch').selectOption('1');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('progress')).toHaveText(/^[1-3] of 4 problems$/, { timeout: 120_000 });
  await page.reload();

  await loadTiny(page);
  await pickAdapter(page, 'none', 'Using the base model alone');
  await expect(page.getByTestId('decoding')).toHaveValue('1');
  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-adapter')).toHaveText('Tiny parallel adapter demo (q4f32_1) · parallel adapter');
  await expect(row.getByTestId('run-decoding')).toHaveText('4 beams');
  await row.getByRole('button', { name: 'Resume' }).click();
  await expect(row.getByTestId('run-done')).toHaveText('4 of 4', { timeout: 240_000 });
  await expect(row.getByTestId('run-paper-value')).toHaveText('41.02%');
  // The run used its own adapter; the picker's choice (none) is in use again afterwards.
  await expect(page.getByTestId('adapter-active')).toHaveText('Using the base model alone · 1 adapter resident');
  await expect(page.getByTestId('results-table').locator('tbody tr')).toHaveCount(1);
});

test('a share link with the old ids (tiny/<mode>, demo:<kind>) opens on the same model and adapter, under their catalog ids', async ({ page }) => {
  await page.goto('./#view=lab&model=tiny%2Fq4f32_1&adapter=demo%3Aseries&compare=a_begin&compareAdapter=demo%3Alora');
  await expect(page.getByRole('combobox', { name: 'Model' })).toHaveValue('tiny-q4f32_1');
  await expect(page.getByTestId('adapter-select')).toHaveValue('tiny-q4f32_1-series');
  await expect(page.getByTestId('adapter-b')).toHaveValue('tiny-q4f32_1-lora');
  await expect.poll(() => page.url()).toContain('model=tiny-q4f32_1&');
  expect(page.url()).toContain('adapter=tiny-q4f32_1-series');
  expect(page.url()).toContain('compareAdapter=tiny-q4f32_1-lora');
});
