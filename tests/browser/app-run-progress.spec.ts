import { test, expect } from '@playwright/test';

/** An Accuracy run shows tokens as they are generated, before its first problem finishes (it showed "0 of N" until a batch ended). */

test('a batched run shows the tokens of the problems being solved while none has finished yet', async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=q_end&max=24');
  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
  // Every (problems done, tokens) pair the page shows, recorded in the page as it changes.
  await page.evaluate(() => {
    const seen: [string, string][] = [];
    (window as unknown as { seen: [string, string][] }).seen = seen;
    new MutationObserver(() => {
      const done = document.querySelector('[data-testid="progress"]')?.textContent ?? '';
      const tokens = document.querySelector('[data-testid="run-tokens"]')?.textContent ?? '';
      const last = seen[seen.length - 1];
      if (!last || last[0] !== done || last[1] !== tokens) seen.push([done, tokens]);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.getByTestId('run-batch').selectOption('auto');
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('4');
  await page.getByLabel('Seed').fill('7');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('progress')).toHaveText('4 of 4 problems', { timeout: 240_000 });
  await expect(page.getByTestId('run-tokens')).toHaveCount(0);

  const seen = await page.evaluate(() => (window as unknown as { seen: [string, string][] }).seen);
  const beforeFirst = seen
    .filter(([done]) => done === '0 of 4 problems')
    .map(([, t]) => /^· (\d+) tokens? in the problems being solved$/.exec(t)?.[1])
    .filter((n) => n !== undefined)
    .map(Number);
  // Several counts while nothing had finished, growing token by token until the first problem
  // ends (its tokens leave the count just before its result is shown), never over 4 problems × 24.
  const firstDrop = beforeFirst.findIndex((n, i) => i > 0 && n < beforeFirst[i - 1]);
  const growing = firstDrop < 0 ? beforeFirst : beforeFirst.slice(0, firstDrop);
  expect(growing.length).toBeGreaterThan(3);
  for (let i = 1; i < growing.length; i++) expect(growing[i]).toBeGreaterThan(growing[i - 1]);
  expect(Math.max(...beforeFirst)).toBeLessThanOrEqual(4 * 24);
});
