import { test, expect, type Page } from '@playwright/test';

/** The app page on the tiny generated model (random weights): load, stream, tokens/s, text-only output. */

async function loadTiny(page: Page, mode = 'q4f32_1') {
  await page.getByRole('combobox', { name: 'Model' }).selectOption(`tiny-${mode}`);
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText(mode, { timeout: 120_000 });
}

test('load the tiny model, generate 16 tokens, see them stream and tokens/s', async ({ page }) => {
  await page.goto('./#view=generate');
  await expect(page.getByRole('note')).toContainText('random weights: shows the pipeline, not the reasoning');
  await loadTiny(page);
  await page.getByTestId('gen-prompt').fill('Q: What is 2 + 3?\nA:');
  await page.getByLabel('Max new tokens').fill('16');
  // Count how many distinct non-empty output states we see while it streams.
  await page.evaluate(() => {
    const el = document.querySelector('[data-testid="gen-output"]')!;
    const seen = new Set<string>();
    (window as unknown as { seen: Set<string> }).seen = seen;
    new MutationObserver(() => seen.add(el.textContent ?? '')).observe(el, { childList: true, characterData: true, subtree: true });
  });
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await expect(page.getByTestId('gen-stats')).toContainText(/decode [\d.]+ tokens\/s/, { timeout: 120_000 });
  await expect(page.getByTestId('gen-stats')).toContainText(/prefill \d+ tokens at [\d.]+ tokens\/s/);
  await expect(page.getByTestId('gen-stats')).toContainText(/^16 tokens/);
  const text = await page.getByTestId('gen-output').textContent();
  expect(text!.length).toBeGreaterThan(0);
  const states = await page.evaluate(() => (window as unknown as { seen: Set<string> }).seen.size);
  expect(states).toBeGreaterThan(2); // more than one update: it streamed
});

test('model text is shown as text, never as HTML', async ({ page }) => {
  await page.goto('./#view=lab');
  // The step renderer on a solution containing markup.
  const html = await page.evaluate(async () => {
    const { layoutSolution } = await import(/* @vite-ignore */ '/src/ui/steps.ts' as string);
    return layoutSolution('She has <b>x</b> apples. 48/2 = <<48/2=24>>24 <img src=x onerror=alert(1)>') as unknown;
  });
  expect(JSON.stringify(html)).toContain('<b>x</b>');
  // The custom prompt editor previews markup literally.
  await page
    .getByRole('radio', { name: /Custom/ })
    .first()
    .check();
  await page.getByLabel('Template', { exact: true }).fill('<b>bold</b> {question} <img src=x>');
  const preview = page.getByTestId('prompt-preview-a');
  await expect(preview).toContainText('<b>bold</b>');
  expect(await preview.locator('b, img').count()).toBe(0);
});
