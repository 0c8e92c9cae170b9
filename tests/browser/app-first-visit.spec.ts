import { test, expect, type Page } from '@playwright/test';

/**
 * What a first visit meets on the tiny model (random weights, 512-token context): an 8-shot prompt
 * that cannot fit is refused before Solve is pressed, with the reason beside the button; the load
 * progress counts shards as they finish; every model and adapter has one name everywhere.
 */

async function loadTiny(page: Page, mode = 'q4f32_1') {
  await page.getByRole('combobox', { name: 'Model' }).selectOption(`tiny-${mode}`);
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText(mode, { timeout: 120_000 });
}

/** From now on, keep every "Loading weights: … N of M …" line the page shows (window.loadLines). */
async function recordLoadProgress(page: Page) {
  await page.evaluate(() => {
    const lines: string[] = [];
    (window as unknown as { loadLines: string[] }).loadLines = lines;
    new MutationObserver(() => {
      const m = /Loading weights:[^,]*?(\d+) of (\d+)/.exec(document.body.textContent ?? '');
      if (m && lines.at(-1) !== m[0]) lines.push(m[0]);
    }).observe(document.body, { childList: true, characterData: true, subtree: true });
  });
}

test('8-shot on the tiny model: Solve is disabled with the reason beside it; a prompt that fits enables it; shards are counted 1..N', async ({ page }) => {
  await page.goto('./#view=lab&dataset=gsm8k&problem=0&prompt=baseline&max=48');
  await recordLoadProgress(page);
  await loadTiny(page);
  const lines = await page.evaluate(() => (window as unknown as { loadLines: string[] }).loadLines);
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) {
    const [, done, count] = /(\d+) of (\d+)/.exec(line)!;
    expect(Number(done), line).toBeGreaterThanOrEqual(1);
    expect(Number(done), line).toBeLessThanOrEqual(Number(count));
  }

  const solve = page.getByRole('button', { name: 'Solve', exact: true });
  // The preview counts the 8-shot prompt with the model's tokenizer: more than the 512-token context.
  await expect(page.getByTestId('prompt-preview-a-count')).toHaveText(/^\d+ tokens$/);
  const tokens = Number((await page.getByTestId('prompt-preview-a-count').textContent())!.split(' ')[0]);
  expect(tokens + 48).toBeGreaterThan(512);
  await expect(solve).toBeDisabled();
  const reason = page.getByTestId('solve-blocked');
  await expect(reason).toContainText(`This prompt (${tokens} tokens) plus 48 new tokens does not fit this model's 512-token context`);
  await expect(solve).toHaveAttribute('aria-describedby', 'solve-blocked');
  // The preview's warning and the button's reason are one rule's words.
  await expect(page.getByTestId('prompt-preview-a').locator('..').getByRole('alert')).toHaveText((await reason.textContent())!);
  // Nothing was sent to the engine: no error banner.
  await expect(page.getByText('Something went wrong')).toHaveCount(0);

  // Q_end fits: Solve is enabled and the reason is gone.
  await page.locator('input[name="config-a"][value="q_end"]').check();
  await expect(solve).toBeEnabled();
  await expect(reason).toHaveCount(0);
  // Comparing with the 8-shot side: refused again, naming the side.
  await page.getByLabel('Compare two configurations side by side').check();
  await page.locator('input[name="config-b"][value="baseline"]').check();
  await expect(page.getByRole('button', { name: 'Solve with both' })).toBeDisabled();
  await expect(reason).toContainText('Configuration B: This prompt');
});
