import { test, expect, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { parseCsv } from '../../src/reasoning/export.ts';

/** Live accuracy on the tiny model (random weights): runs, Wilson interval, results table, persistence, export. */

async function loadTiny(page: Page, mode = 'q4f32_1') {
  await page.getByRole('combobox', { name: 'Model' }).selectOption(`tiny-${mode}`);
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText(mode, { timeout: 120_000 });
}

async function startRun(page: Page, n: number, batch: 'auto' | number = 'auto') {
  await page.getByTestId('run-batch').selectOption(String(batch));
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill(String(n));
  await page.getByLabel('Seed').fill('7');
  await page.getByRole('button', { name: 'Start run' }).click();
}

/** A run's JSONL export, parsed line by line. */
async function exportedLines(page: Page, row: ReturnType<Page['locator']>) {
  const [jsonl] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'JSONL' }).click()]);
  return readFileSync((await jsonl.path())!, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { index: number; output: string; pred: unknown; correct: boolean; record?: { kvCache: string | null } });
}

/** A run's items from its JSONL export, by problem index. */
async function exportedItems(page: Page, row: ReturnType<Page['locator']>): Promise<Map<number, { output: string; pred: unknown; correct: boolean }>> {
  const lines = await exportedLines(page, row);
  return new Map(lines.map((l) => [l.index, { output: l.output, pred: l.pred, correct: l.correct }]));
}

/** Resume is refused while the model runs another KV cache format than the run did, and the run keeps what it had. */
async function expectKvRefusal(page: Page, row: ReturnType<Page['locator']>, r: { used: string; loaded: string; done: number; total: number }) {
  await row.getByRole('button', { name: 'Resume' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'KV cache' })).toContainText(
    `This run used an ${r.used} KV cache; the model is loaded with an ${r.loaded} one. Choose ${r.used} under KV cache to resume.`,
  );
  await expect(row.getByTestId('run-done')).toHaveText(`${r.done} of ${r.total}`);
}

/** How many weight shards the page fetches from now on (a counter to read later). */
function countShardReads(page: Page): () => number {
  let n = 0;
  page.on('request', (r) => {
    if (/\/params_shard_\d+\.bin$/.test(new URL(r.url()).pathname)) n++;
  });
  return () => n;
}

/** The GPU memory the model line reports, in MiB. */
async function gpuMiB(page: Page): Promise<number> {
  const m = /([\d.]+) MiB GPU memory/.exec((await page.getByTestId('model-status').textContent()) ?? '');
  expect(m, 'the model line names its GPU memory').not.toBeNull();
  return Number(m![1]);
}

/** Stop a run while tokens stream for the problems in flight; its row, and how many problems it finished. */
async function stopMidRun(page: Page) {
  await expect(page.getByTestId('current-output')).not.toBeEmpty({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Stop run' }).click();
  await expect(page.getByRole('button', { name: 'Start run' })).toBeEnabled({ timeout: 60_000 });
  const row = page.getByTestId('results-table').locator('tbody tr').first();
  return { row, done: Number((await row.getByTestId('run-done').textContent())!.split(' ')[0]) };
}

test('run 5 problems one at a time: accuracy, interval, chart and table update after each; export CSV', async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=q_end&max=8');
  await loadTiny(page);
  // Every text the progress line shows, recorded in the page as it changes: polling from here could
  // miss a value that lasts less than one poll, so the test would fail on a fast machine.
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { progressSeen: string[] }).progressSeen = seen;
    new MutationObserver(() => {
      const text = document.querySelector('[data-testid="progress"]')?.textContent ?? null;
      if (text !== null && seen[seen.length - 1] !== text) seen.push(text);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await startRun(page, 5, 1);
  await expect(page.getByTestId('progress')).toHaveText('5 of 5 problems', { timeout: 240_000 });
  await expect(page.getByTestId('interval')).toHaveText(/95% interval \d+\.\d% – \d+\.\d%/);
  // Progress is shown after each problem, not only at the end.
  const seen = await page.evaluate(() => (window as unknown as { progressSeen: string[] }).progressSeen);
  const counts = seen.map((t) => /^(\d+) of 5 problems$/.exec(t)?.[1]).filter((c) => c !== undefined);
  expect(counts).toEqual(['0', '1', '2', '3', '4', '5'].slice(counts[0] === '0' ? 0 : 1));
  await expect(page.getByTestId('accuracy')).toHaveText(/^\d+\.\d%$/);
  expect(await page.getByTestId('accuracy-chart').locator('circle').count()).toBe(5);

  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-done')).toHaveText('5 of 5');
  await expect(row.getByTestId('run-paper-value')).toHaveText('15.61%');
  const accuracy = (await page.getByTestId('accuracy').textContent())!;
  await expect(row.getByTestId('run-accuracy')).toHaveText(accuracy);
  await expect(row.getByTestId('run-interval')).toHaveText(/\d+\.\d% – \d+\.\d%/);

  // CSV export: header, one row per problem, the run's numbers.
  const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'CSV' }).click()]);
  expect(download.suggestedFilename()).toMatch(/\.csv$/);
  const rows = parseCsv(readFileSync((await download.path())!, 'utf8'));
  expect(rows[0]).toEqual(['run', 'dataset', 'prompt', 'adapter', 'model', 'index', 'pred', 'gold', 'correct', 'output']);
  const body = rows.slice(1);
  expect(body).toHaveLength(5);
  for (const r of body) {
    expect(r[1]).toBe('gsm8k');
    expect(r[2]).toBe('q_end');
    expect(r[4]).toBe('tiny-q4f32_1');
    expect(['true', 'false']).toContain(r[8]);
    expect(Number.isInteger(Number(r[5]))).toBe(true);
  }
  const correct = body.filter((r) => r[8] === 'true').length;
  expect(accuracy).toBe(`${((correct / 5) * 100).toFixed(1)}%`);
  // Problems are the first 5 of the order seeded with 7 (distinct indices).
  expect(new Set(body.map((r) => r[5])).size).toBe(5);

  // JSONL export too.
  const [jsonl] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'JSONL' }).click()]);
  const lines = readFileSync((await jsonl.path())!, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(lines.map((l) => String(l.index))).toEqual(body.map((r) => r[5]));
});

test('a batched run gives each problem exactly the output it gets alone', async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=q_end&max=16');
  await loadTiny(page);
  const rows = page.getByTestId('results-table').locator('tbody tr');
  await startRun(page, 6, 1);
  await expect(rows.first().getByTestId('run-done')).toHaveText('6 of 6', { timeout: 120_000 });
  const alone = await exportedItems(page, rows.first());
  await startRun(page, 6, 'auto');
  await expect(rows).toHaveCount(2);
  await expect(rows.first().getByTestId('run-done')).toHaveText('6 of 6', { timeout: 120_000 });
  const together = await exportedItems(page, rows.first());
  expect([...together.keys()].sort()).toEqual([...alone.keys()].sort());
  for (const [index, item] of alone) expect(together.get(index), `problem ${index}`).toEqual(item);
  expect(new Set([...alone.values()].map((i) => i.output)).size).toBeGreaterThan(1);
});

test('a run whose prompts share a long preamble says it prefills it once', async ({ page }) => {
  const preamble = 'Read the problem, reason one small step at a time, check each number, and end with the answer. '.repeat(8);
  await page.goto(`./#view=accuracy&prompt=custom&template=${encodeURIComponent(`${preamble}\nProblem: {question}\nSolution:`)}&max=24`);
  await loadTiny(page);
  await startRun(page, 8, 2);
  // Whole 128-token prefill chunks of the preamble (sharedPrefix.ts).
  const shared = page.getByTestId('run-shared-prefix');
  await expect(shared).toHaveText(/^\d+ prompt tokens all problems share, prefilled once$/);
  const n = Number((await shared.textContent())!.split(' ')[0]);
  expect(n % 128).toBe(0);
  expect(n).toBeGreaterThanOrEqual(128);
  await expect(page.getByTestId('results-table').locator('tbody tr').first().getByTestId('run-done')).toHaveText('8 of 8', { timeout: 120_000 });
});

test('a run interrupted by a reload is kept and resumes where it stopped', async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=q_end&max=24');
  await loadTiny(page);
  // Two at a time: results arrive in pairs, so the reload falls between them.
  await startRun(page, 10, 2);
  await expect(page.getByTestId('throughput')).toContainText('2 problems at a time');
  await expect(page.getByTestId('progress')).toHaveText(/^[2-6] of 10 problems$/, { timeout: 60_000 });
  // The pace once a problem is done: time left at it, and every token decoded so far.
  await expect(page.getByTestId('run-eta')).toHaveText(/^about (under a minute|\d+ min) left$/);
  await expect(page.getByTestId('run-decoded')).toHaveText(/^[1-9]\d* tokens decoded$/);
  await page.reload();

  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-done')).toHaveText(/^[2-8] of 10$/);
  const before = Number((await row.getByTestId('run-done').textContent())!.split(' ')[0]);
  await loadTiny(page);
  await row.getByRole('button', { name: 'Resume' }).click();
  await expect(row.getByTestId('run-done')).toHaveText('10 of 10', { timeout: 120_000 });
  await expect(page.getByTestId('progress')).toHaveText('10 of 10 problems');
  expect(before).toBeLessThan(10);
  // Still one run (resumed, not restarted), with ten distinct problems.
  await expect(page.getByTestId('results-table').locator('tbody tr')).toHaveCount(1);
  expect(await page.getByTestId('accuracy-chart').locator('circle').count()).toBe(10);
});

test('stopping a batched run keeps what finished, scores nothing half-done, and it resumes', async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=q_end&max=32');
  await loadTiny(page);
  await startRun(page, 8, 'auto');
  const { row, done } = await stopMidRun(page);
  expect(done).toBeLessThan(8);
  if (done > 0) expect((await exportedItems(page, row)).size).toBe(done);
  await row.getByRole('button', { name: 'Resume' }).click();
  await expect(row.getByTestId('run-done')).toHaveText('8 of 8', { timeout: 120_000 });
  expect((await exportedItems(page, row)).size).toBe(8);
});

test('the KV cache format is chosen at load and switched in place: an f32 mode with an f16 cache says so, the run records it, and it resumes only with that format', async ({
  page,
}) => {
  test.setTimeout(240_000);
  // A link carries the choice (it changes the numbers a run gets).
  await page.goto('./#view=accuracy&prompt=q_end&max=32&kv=f16');
  const kv = page.getByRole('combobox', { name: 'KV cache' });
  await expect(kv).toHaveValue('f16');
  const shardReads = countShardReads(page);
  await loadTiny(page);
  const loadReads = shardReads();
  expect(loadReads, 'the load reads the weight shards').toBeGreaterThan(0);
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1 · 2 layers');
  await expect(page.getByTestId('model-status')).toContainText('KV cache f16');
  await startRun(page, 6, 2);
  const { row, done } = await stopMidRun(page);
  expect(done).toBeLessThan(6);

  // Another format switches the loaded model in place: no weight is read again, and the cache (so the GPU memory) doubles.
  const mibF16 = await gpuMiB(page);
  await kv.selectOption('auto');
  await expect(page.getByTestId('model-status')).toContainText('KV cache f32');
  await expect(page.getByRole('button', { name: 'Reload' })).toBeVisible();
  expect(await gpuMiB(page)).toBeGreaterThan(mibF16);
  await expect.poll(() => page.url()).not.toContain('kv=');
  await expectKvRefusal(page, row, { used: 'f16', loaded: 'f32', done, total: 6 });

  await kv.selectOption('f16');
  await expect(page.getByTestId('model-status')).toContainText('KV cache f16');
  expect(await gpuMiB(page)).toBe(mibF16);
  await expect.poll(() => page.url()).toContain('kv=f16');
  expect(shardReads()).toBe(loadReads);
  await row.getByRole('button', { name: 'Resume' }).click();
  await expect(row.getByTestId('run-done')).toHaveText('6 of 6', { timeout: 120_000 });
  // Every line carries the run record, and the record names the format the run decoded with.
  const lines = await exportedLines(page, row);
  expect(new Set(lines.map((l) => l.index)).size).toBe(6);
  expect(lines.map((l) => l.record?.kvCache)).toEqual(Array(6).fill('f16'));
});

test("a run stored before records named the KV cache ran its mode's own: it resumes with that format only", async ({ page }) => {
  test.setTimeout(240_000);
  // A link's unknown format is the mode's own.
  await page.goto('./#view=accuracy&prompt=q_end&max=32&kv=half');
  await expect(page.getByRole('combobox', { name: 'KV cache' })).toHaveValue('auto');
  await loadTiny(page);
  await expect(page.getByTestId('model-status')).toContainText('KV cache f32');
  await startRun(page, 4, 2);
  const { row, done } = await stopMidRun(page);
  expect(done).toBeLessThan(4);

  // Make it an old run: its stored header's record loses the field, as records were before it existed.
  const stripped = await page.evaluate(
    () =>
      new Promise<number>((resolve, reject) => {
        const open = indexedDB.open('reasoning-lab-runs');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction('runs', 'readwrite');
          let n = 0;
          tx.objectStore('runs').openCursor().onsuccess = (e) => {
            const cursor = (e.target as IDBRequest<IDBCursorWithValue | null>).result;
            if (!cursor) return;
            const run = cursor.value as { record?: { kvCache?: string | null } };
            if (run.record && 'kvCache' in run.record) {
              delete run.record.kvCache;
              cursor.update(run);
              n++;
            }
            cursor.continue();
          };
          tx.oncomplete = () => resolve(n);
          tx.onerror = () => reject(tx.error);
        };
      }),
  );
  expect(stripped).toBe(1);
  await page.reload();

  const kv = page.getByRole('combobox', { name: 'KV cache' });
  await kv.selectOption('f16');
  await loadTiny(page);
  await expect(page.getByTestId('model-status')).toContainText('KV cache f16');
  await expectKvRefusal(page, row, { used: 'f32', loaded: 'f16', done, total: 4 });

  await kv.selectOption('auto');
  await expect(page.getByTestId('model-status')).toContainText('KV cache f32');
  await row.getByRole('button', { name: 'Resume' }).click();
  await expect(row.getByTestId('run-done')).toHaveText('4 of 4', { timeout: 120_000 });
});
