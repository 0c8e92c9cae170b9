import { test, expect, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';

/**
 * An accessibility scan (axe-core) of every view: the landing view before a model is loaded (a
 * first visit), then every view on the tiny model with one short run finished, so the accuracy
 * chart, the results table and the lab's explanation panel are on the page too. Serious and
 * critical findings fail the test. The lab compares two configurations, the baseline's long
 * few-shot prompt among them, so both previews and both explanations are on the page.
 */

const VIEWS = ['generate', 'lab', 'accuracy', 'train', 'models'] as const;

async function seriousViolations(page: Page, where: string): Promise<string[]> {
  const { violations } = await new AxeBuilder({ page }).analyze();
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${where}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

async function openView(page: Page, view: (typeof VIEWS)[number]) {
  await page.locator(`#tab-${view}`).click();
  await expect(page.locator(`#panel-${view}`)).toBeVisible();
  // Every disclosure open (the header's too): what is folded away is scanned too.
  await page.locator('details:not([open]) > summary').evaluateAll((els) => els.forEach((s) => ((s.parentElement as HTMLDetailsElement).open = true)));
}

test('every view has no serious or critical accessibility violation, before and after loading the tiny model', async ({ page }) => {
  test.setTimeout(300_000);
  await page.goto('./#view=lab&prompt=q_end&compare=baseline&max=4');
  // The page a first visit lands on, before anything is loaded (the other views differ from their
  // loaded state by a hint only, and each scan costs seconds on a busy CI machine).
  await openView(page, 'lab');
  const found = await seriousViolations(page, 'lab (no model)');

  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
  await openView(page, 'accuracy');
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('2');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('progress')).toHaveText('2 of 2 problems', { timeout: 120_000 });

  for (const view of VIEWS) {
    await openView(page, view);
    found.push(...(await seriousViolations(page, `${view} (tiny model)`)));
  }
  expect(found).toEqual([]);
});
