import { test, expect, type Page } from '@playwright/test';
import { ALPACA_INDENT_NOTE } from '../../src/reasoning/prompts.ts';

/** What a first visit meets besides the layout: the favicon, the block diagram, the explanations, the accuracy chart's axes. */

async function openExplanation(page: Page) {
  await page.locator('details.why > summary').first().click();
  await expect(page.getByTestId('block-diagram')).toBeVisible();
}

test('the favicon loads: a linked SVG the policy allows, no failed request and no console error on load', async ({ page }) => {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  // Any icon request that fails (the app itself aborts catalog fetches it no longer needs: not counted).
  page.on('requestfailed', (r) => {
    if (/favicon|\.ico$/.test(r.url())) problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`);
  });
  await page.goto('./');
  await expect(page.getByRole('tab', { name: 'Reasoning lab' })).toBeVisible();
  const icon = page.locator('link[rel="icon"]');
  await expect(icon).toHaveAttribute('href', /\.svg$/, { timeout: 5_000 });
  const href = await icon.getAttribute('href');
  // Loaded as the browser loads an icon (an image, under the page's img-src), and really an image.
  const size = await page.evaluate(async (href) => {
    const img = new Image();
    img.src = href;
    await img.decode();
    return { w: img.naturalWidth, h: img.naturalHeight };
  }, href!);
  expect(size.w).toBeGreaterThan(0);
  expect(size.h).toBeGreaterThan(0);
  const res = await page.request.get(new URL(href!, page.url()).href);
  expect(res.status()).toBe(200);
  expect(res.headers()['content-type']).toContain('image/svg+xml');
  await page.waitForLoadState('networkidle');
  expect(problems).toEqual([]);
});

test("the block diagram's group labels overlap no box, marker or other label, for every topic", async ({ page }) => {
  await page.goto('./#view=lab&prompt=q_end');
  await openExplanation(page);
  const explain = page.locator('section.explain').first();
  for (const topic of ['This prompt', 'LoRA', 'Series adapter', 'Parallel adapter']) {
    await explain.getByRole('radio', { name: topic }).check();
    const clashes = await page.getByTestId('block-diagram').evaluate((fig) => {
      const svg = fig.querySelector('svg')!;
      const frame = svg.getBoundingClientRect();
      const labels = [...svg.querySelectorAll('text.group')];
      const others = [...svg.querySelectorAll('rect, text')].filter((e) => !labels.includes(e));
      const out: string[] = [];
      if (labels.length !== 2) out.push(`expected the two group labels, found ${labels.length}`);
      for (const label of labels) {
        const a = label.getBoundingClientRect();
        const name = label.textContent;
        if (a.left < frame.left - 0.5 || a.right > frame.right + 0.5 || a.top < frame.top - 0.5 || a.bottom > frame.bottom + 0.5)
          out.push(`${name} leaves the drawing`);
        for (const o of others) {
          const b = o.getBoundingClientRect();
          const overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
          if (overlap) out.push(`${name} overlaps <${o.tagName} ${o.getAttribute('class') ?? ''}> ${o.textContent ?? ''}`);
        }
      }
      return out;
    });
    expect(clashes, topic).toEqual([]);
  }
});

test("the baseline's explanation says its zero-shot score once", async ({ page }) => {
  await page.goto('./#view=lab&prompt=baseline');
  await openExplanation(page);
  const text = (await page.locator('section.explain').first().textContent())!;
  expect(text).toContain('8-shot');
  expect(text.match(/scored 0/g)).toHaveLength(1);
});

test("where the Alpaca template is shown, one line says its 16-space indentation is LLM-Adapters' own", async ({ page }) => {
  await page.goto('./#view=lab&prompt=alpaca');
  await expect(page.getByTestId('prompt-preview-a')).toContainText('\n                ### Instruction:\n');
  await expect(page.getByTestId('prompt-preview-a-indent-note')).toHaveText(ALPACA_INDENT_NOTE);
  await page.locator('input[name="config-a"][value="alpaca+q_end"]').check();
  await expect(page.getByTestId('prompt-preview-a-indent-note')).toHaveText(ALPACA_INDENT_NOTE);
  // A configuration without the frame has no such note.
  await page.locator('input[name="config-a"][value="q_end"]').check();
  await expect(page.getByTestId('prompt-preview-a')).toContainText("Let's work through this problem step-by-step:");
  await expect(page.getByTestId('prompt-preview-a-indent-note')).toHaveCount(0);
});

test.describe('on a phone', () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test('the accuracy chart has ticks and titles on both axes, legible at 390 px', async ({ page }) => {
    await page.goto('./#view=accuracy&prompt=q_end&max=4');
    await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
    await page.getByRole('button', { name: /Load model|Reload/ }).click();
    await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
    await page.getByRole('radio', { name: /The first/ }).check();
    await page.getByLabel('Number of problems').fill('3');
    await page.getByRole('button', { name: 'Start run' }).click();
    await expect(page.getByTestId('progress')).toHaveText('3 of 3 problems', { timeout: 120_000 });

    const yAxis = page.getByTestId('accuracy-chart-y-axis');
    const xAxis = page.getByTestId('accuracy-chart-x-axis');
    await expect(yAxis.locator('.tick-label')).toHaveText(['0%', '25%', '50%', '75%', '100%']);
    await expect(yAxis.locator('line.tick')).toHaveCount(5);
    await expect(yAxis.locator('.title')).toHaveText('accuracy');
    const xLabels = (await xAxis.locator('.tick-label').allTextContents()).map(Number);
    expect(xLabels[0]).toBe(0);
    expect(xLabels.at(-1)).toBe(3);
    expect(xLabels.length).toBeGreaterThanOrEqual(2);
    await expect(xAxis.locator('line.tick')).toHaveCount(xLabels.length);
    await expect(xAxis.locator('.title')).toHaveText('problems done (of 3)');
    expect(await page.getByTestId('accuracy-chart').locator('circle').count()).toBe(3);

    // Legible: drawn at its own width, so 12 px text is 12 px on screen (a fixed viewBox shrank it to about 7 px here).
    const chart = await page.getByTestId('accuracy-chart').evaluate((svg) => ({
      width: svg.getBoundingClientRect().width,
      fontPx: [...svg.querySelectorAll('text')].map((t) => {
        const s = svg as SVGSVGElement;
        return parseFloat(getComputedStyle(t).fontSize) * (s.getBoundingClientRect().width / s.viewBox.baseVal.width);
      }),
    }));
    expect(chart.width).toBeLessThanOrEqual(390);
    expect(Math.min(...chart.fontPx)).toBeGreaterThanOrEqual(11.5);
  });
});
