import { test, expect, type Page } from '@playwright/test';

/**
 * The app on a 390 × 844 phone screen: no view is wider than the screen. Checked per view, with the
 * tiny model loaded and one short run finished (so the run summary, the chart and the results table
 * are there) and every disclosure open. An element may be wider than the screen only inside a box
 * of its own that scrolls sideways (the results table: a data table keeps its columns); what is
 * visible of it must still fit.
 */

const WIDTH = 390;
const VIEWS = ['generate', 'lab', 'accuracy', 'train', 'models'] as const;

test.use({ viewport: { width: WIDTH, height: 844 } });

/** Elements whose visible part (clipped by every ancestor that scrolls or hides overflow) leaves the screen. */
function overflowing(page: Page): Promise<{ scrollWidth: number; offenders: string[] }> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const offenders: string[] = [];
    for (const el of document.querySelectorAll('body *')) {
      const box = el.getBoundingClientRect();
      if (box.width === 0 && box.height === 0) continue;
      let left = box.left;
      let right = box.right;
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const ox = getComputedStyle(a).overflowX;
        if (ox === 'visible') continue;
        const clip = a.getBoundingClientRect();
        left = Math.max(left, clip.left);
        right = Math.min(right, clip.right);
      }
      if (right <= left) continue;
      if (left < -0.5 || right > width + 0.5) {
        const id = el.getAttribute('data-testid') ?? el.id;
        offenders.push(
          `<${el.tagName.toLowerCase()}${id ? ` ${id}` : ''} class="${el.getAttribute('class') ?? ''}"> ${Math.round(left)}..${Math.round(right)}`,
        );
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, offenders };
  });
}

test('at 390 px every view fits the screen: no horizontal overflow, form controls and tabs wrap', async ({ page }) => {
  test.setTimeout(240_000);
  await page.goto('./#view=lab&prompt=q_end&compare=baseline&max=4');
  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
  await page.locator('#tab-accuracy').click();
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('2');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('progress')).toHaveText('2 of 2 problems', { timeout: 120_000 });

  const found: string[] = [];
  for (const view of VIEWS) {
    await page.locator(`#tab-${view}`).click();
    await expect(page.locator(`#panel-${view}`)).toBeVisible();
    await page.locator('details:not([open]) > summary').evaluateAll((els) => els.forEach((s) => ((s.parentElement as HTMLDetailsElement).open = true)));
    const { scrollWidth, offenders } = await overflowing(page);
    if (scrollWidth > WIDTH) found.push(`${view}: the page is ${scrollWidth} px wide`);
    found.push(...offenders.slice(0, 10).map((o) => `${view}: ${o}`));
  }
  expect(found).toEqual([]);
});
