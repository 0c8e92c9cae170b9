import { test, expect, type Page } from '@playwright/test';

/**
 * How the Accuracy view stores a run in the browser's real IndexedDB: each finished problem is
 * one small write of that result (not the whole run again), and a reload in the middle of the
 * run keeps every result that had finished.
 */

interface Write {
  db: string;
  store: string;
  /** Size of the value as JSON: what the write carries (the run's problem order alone is hundreds of numbers). */
  bytes: number;
  /** Problem results the written value holds. */
  results: number;
}

/** Record every put/add into the run databases, as the page makes it (the calls go through unchanged). */
function recordRunWrites(page: Page) {
  return page.addInitScript(() => {
    const log: Write[] = [];
    (window as unknown as { runWrites: Write[] }).runWrites = log;
    for (const method of ['put', 'add'] as const) {
      const original = IDBObjectStore.prototype[method];
      IDBObjectStore.prototype[method] = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
        const db = this.transaction.db.name;
        if (db.startsWith('reasoning-lab-run')) {
          const v = value as { items?: unknown[]; item?: unknown };
          log.push({ db, store: this.name, bytes: JSON.stringify(value).length, results: v.items?.length ?? (v.item ? 1 : 0) });
        }
        return original.call(this, value, key);
      };
    }
  });
}

async function loadTiny(page: Page) {
  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
}

test('each finished problem is written as one record of its own size, and a reload mid-run keeps every finished result', async ({ page }) => {
  await recordRunWrites(page);
  await page.goto('./#view=accuracy&prompt=q_end&max=8');
  await loadTiny(page);
  await page.getByTestId('run-batch').selectOption('1');
  await page.getByRole('radio', { name: /The first/ }).check();
  // A long run: its header (problem order, run record) is far larger than one result.
  await page.getByLabel('Number of problems').fill('300');
  await page.getByLabel('Seed').fill('7');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('progress')).toHaveText(/^([4-9]|\d\d) of 300 problems$/, { timeout: 180_000 });

  const writes = await page.evaluate(() => (window as unknown as { runWrites: Write[] }).runWrites);
  const shown = Number((await page.getByTestId('progress').textContent())!.split(' ')[0]);
  const header = Math.max(...writes.filter((w) => w.results === 0).map((w) => w.bytes));
  const perProblem = writes.filter((w) => w.results > 0);
  // Every finished problem so far was written (its progress is shown after its write), one record each...
  expect(perProblem.length).toBeGreaterThanOrEqual(shown);
  // ...holding that one result only, and no larger for the tenth problem than for the first.
  expect(perProblem.map((w) => w.results)).toEqual(perProblem.map(() => 1));
  expect(header).toBeGreaterThan(2000);
  for (const w of perProblem) expect(w.bytes).toBeLessThan(header / 2);
  const total = perProblem.reduce((s, w) => s + w.bytes, 0);
  expect(total).toBeLessThan(perProblem.length * (header / 2));

  // Reload mid-run: every result whose progress was shown is still there.
  await page.reload();
  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-done')).toHaveText(/^\d+ of 300$/);
  const kept = Number((await row.getByTestId('run-done').textContent())!.split(' ')[0]);
  expect(kept).toBeGreaterThanOrEqual(shown);
  expect(kept).toBeLessThan(300);
  expect(await page.getByTestId('accuracy-chart').locator('circle').count()).toBe(kept);
});
