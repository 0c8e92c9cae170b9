import { test, expect, type Page } from '@playwright/test';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';

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

test('one name per model and adapter: the Models view, the model bar, the picker, the status lines and a solution say the same', async ({ page }) => {
  await page.goto('./#view=models');
  const baseRow = page.getByTestId('model-tiny-q4f32_1');
  const loraRow = page.getByTestId('model-tiny-q4f32_1-lora');
  const baseName = (await baseRow.getByTestId('name').textContent())!.trim();
  const loraName = (await loraRow.getByTestId('name').textContent())!.trim();
  expect(baseName.length).toBeGreaterThan(3);
  expect(loraName.length).toBeGreaterThan(3);
  // Served with the site: the row says it loads without a download.
  await expect(baseRow.getByTestId('served')).toContainText('without downloading');

  await page.getByRole('tab', { name: 'Reasoning lab' }).click();
  await loadTiny(page);
  const modelSelect = page.getByRole('combobox', { name: 'Model', exact: true });
  expect(await modelSelect.locator('option:checked').textContent()).toContain(baseName);
  await expect(page.getByTestId('model-status')).toContainText(`Loaded: ${baseName} ·`);

  await page.getByTestId('adapter-select').selectOption('tiny-q4f32_1-lora');
  await expect(page.getByTestId('adapter-active')).toContainText(`Using ${loraName} · LoRA`, { timeout: 60_000 });
  expect(await page.getByTestId('adapter-select').locator('option:checked').textContent()).toContain(loraName);
  await page.getByRole('tab', { name: 'Generate' }).click();
  await expect(page.getByTestId('gen-adapter')).toHaveText(`${loraName} · LoRA`);
  await page.getByRole('tab', { name: 'Live accuracy' }).click();
  await expect(page.getByTestId('run-adapter-planned')).toHaveText(`${loraName} · LoRA`);
  await page.getByRole('tab', { name: 'Reasoning lab' }).click();
  await expect(page.getByTestId('solution-a-adapter')).toHaveText(`${loraName} · LoRA`);
});

test("the paper's number is greyed out with the reason when the model or the adapter is not the paper's", async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=alpaca&dataset=gsm8k&max=4');
  await loadTiny(page);
  await page.getByTestId('adapter-select').selectOption('tiny-q4f32_1-lora');
  await expect(page.getByTestId('adapter-active')).toContainText('LoRA', { timeout: 60_000 });
  // The cell is the paper's LoRA row (Alpaca, GSM8K), but a tiny random LoRA is not its 7B math_10k LoRA.
  const planned = page.getByTestId('planned-paper-value').locator('..');
  await expect(page.getByTestId('planned-paper-value')).toHaveText('44.66%');
  await expect(planned).toHaveAttribute('data-comparable', 'false');
  await expect(page.getByTestId('planned-paper-reason')).toContainText('not comparable');
  await expect(page.getByTestId('planned-paper-reason')).toContainText('tiny-q4f32_1');
  const grey = await planned.evaluate((el) => getComputedStyle(el).color);
  const text = await page.getByTestId('run-adapter-planned').evaluate((el) => getComputedStyle(el).color);
  expect(grey).not.toBe(text);
  // A finished run in the table: the same verdict and reason.
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('1');
  await page.getByRole('button', { name: 'Start run' }).click();
  await expect(page.getByTestId('progress')).toHaveText('1 of 1 problems', { timeout: 120_000 });
  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-paper-value')).toHaveText('44.66%');
  await expect(row.getByTestId('run-paper-value').locator('..')).toHaveAttribute('data-comparable', 'false');
  await expect(row.getByTestId('run-paper-reason')).toContainText('the paper measured Llama-2-7B (base), this is tiny-q4f32_1');
  await expect(page.getByTestId('selected-paper-reason')).toContainText('not comparable');
  // and the chart's paper line says the same, in grey
  const line = page.getByTestId('accuracy-chart-paper');
  await expect(line).toHaveAttribute('data-comparable', 'false');
  await expect(line).toContainText('paper 44.66% (not comparable)');
});

test('the 7B download offline: its size before anything is fetched, the error names the host and says offline, Retry really tries again', async ({
  page,
  context,
}) => {
  await page.goto('./#view=models');
  const row = page.getByTestId('model-llama-2-7b-chat-q4f16_1');
  // The catalog's approxBytes (3.6 GB), shown before any byte is downloaded.
  await expect(row.locator('.size')).toHaveText('about 3.6 GB');
  const host = new URL((await page.evaluate(async () => (await (await fetch('models/llama-2-7b-chat-q4f16_1.json')).json()) as { baseUrl: string })).baseUrl)
    .host;
  const tries: string[] = [];
  page.on('requestfailed', (r) => {
    if (new URL(r.url()).host === host) tries.push(r.url());
  });
  await context.setOffline(true);
  await row.getByRole('button', { name: 'Download' }).click();
  const error = row.getByTestId('error');
  await expect(error).toContainText(`Could not reach ${host} to download`);
  await expect(error).toContainText('you appear to be offline');
  const retry = row.getByRole('button', { name: 'Retry' });
  await expect(retry).toBeVisible();
  await expect.poll(() => tries.length).toBeGreaterThan(0);
  const before = tries.length;
  await retry.click();
  await expect.poll(() => tries.length).toBeGreaterThan(before);
  await expect(error).toContainText('you appear to be offline');
  await expect(row.getByTestId('state')).toHaveText('Not stored');
  await context.setOffline(false);
});

test('a host that refuses the connection: named, offline or down said, and Retry completes once it answers', async ({ page }) => {
  // A port nobody listens on (taken, then released): connections to it are refused.
  const port = await new Promise<number>((ok) => {
    const s = createNetServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => ok(p));
    });
  });
  const dir = resolve('models/tiny/q4f32_1');
  const manifest = {
    schema: 1,
    id: 'tiny-refused',
    name: 'Tiny model on a host that is down',
    kind: 'base',
    baseUrl: `http://127.0.0.1:${port}/m/`,
    quantization: 'q4f32_1',
    shardIndex: ['tensor-cache.json'],
    files: [
      { path: 'mlc-chat-config.json', size: null },
      { path: 'tokenizer.json', size: null },
      { path: 'tokenizer_config.json', size: null, optional: true },
    ],
  };
  await page.goto('./#view=models');
  await page.getByText('Add a model from a manifest').click();
  await page.getByTestId('import-file').setInputFiles({ name: 'refused.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(manifest)) });
  const row = page.getByTestId('model-tiny-refused');
  await row.getByRole('button', { name: 'Download' }).click();
  const error = row.getByTestId('error');
  await expect(error).toContainText(`Could not reach 127.0.0.1:${port} to download`);
  await expect(error).toContainText(`you appear to be offline, or 127.0.0.1:${port} is down`);
  // The host comes back: Retry fetches everything.
  const server = createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/m\//, ''));
    if (!readdirSync(dir).includes(name)) return void res.writeHead(404).end();
    res.writeHead(200, { 'Access-Control-Allow-Origin': '*', 'Content-Type': 'application/octet-stream' }).end(readFileSync(resolve(dir, name)));
  });
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  try {
    await row.getByRole('button', { name: 'Retry' }).click();
    await expect(row.getByTestId('state')).toHaveText('Stored', { timeout: 60_000 });
    await expect(error).toHaveCount(0);
  } finally {
    await new Promise((ok) => server.close(ok));
  }
});

test('a dataset URL typed in the page: a file with no valid problem says so, keeps nothing, and the built-in source comes back', async ({ page }) => {
  await page.goto('./#view=lab&dataset=gsm8k&problem=0');
  await expect(page.getByTestId('question')).toBeVisible();
  await page.getByText('Dataset source').click();
  // A committed fixture whose lines lack an answer (or are no problem at all).
  await page.getByTestId('dataset-url').fill('/tests/fixtures/no-answers/');
  await page.getByRole('button', { name: 'Use', exact: true }).click();
  const url = new URL('/tests/fixtures/no-answers/gsm8k/test.jsonl', page.url()).href;
  const alert = page.getByRole('alert').filter({ hasText: 'No valid problems' });
  await expect(alert).toHaveText(
    `No valid problems at ${url}: none of its 3 items is a GSM8K problem (line 1 (item 0): missing "answer"; line 2 (item 1): answer has no parseable "#### <number>" line; line 3 (item 2): missing "question"/"instruction"). Check the data URL.`,
  );
  await expect(page.getByTestId('dataset-source')).toHaveText(new URL('/tests/fixtures/no-answers/', page.url()).href);
  await expect(page.getByText(/There is no (valid )?problem/)).toHaveCount(0);
  await expect(page.getByTestId('question')).toHaveCount(0);
  // Nothing of it was cached or pinned in IndexedDB.
  const keys = await page.evaluate(
    () =>
      new Promise<string[]>((ok, fail) => {
        const open = indexedDB.open('reasoning-lab-datasets');
        open.onerror = () => fail(open.error);
        open.onsuccess = () => {
          const req = open.result.transaction('files').objectStore('files').getAllKeys();
          req.onsuccess = () => ok(req.result.map(String));
          req.onerror = () => fail(req.error);
        };
      }),
  );
  expect(keys.filter((k) => k.includes('no-answers'))).toEqual([]);
  // Empty and Use: the built-in source again, and the problem is back.
  await page.getByTestId('dataset-url').fill('');
  await page.getByRole('button', { name: 'Use', exact: true }).click();
  await expect(page.getByTestId('question')).toBeVisible();
  await expect(alert).toHaveCount(0);
});

test("a finished run's Show lists every problem a page at a time: question, steps, extracted answer, gold, verdict; wrong ones filtered; a record copied; all as text", async ({
  page,
  context,
}) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await page.goto('./#view=accuracy');
  // A whole GSM8K run (1319 problems), stored as the app stores one, scored by the app's own scorer;
  // every other output carries markup that must stay text.
  const seeded = await page.evaluate(async () => {
    const ds = await import(/* @vite-ignore */ '/src/reasoning/datasetStore.ts' as string);
    const runsMod = await import(/* @vite-ignore */ '/src/reasoning/runs.ts' as string);
    const score = await import(/* @vite-ignore */ '/src/reasoning/score.ts' as string);
    const store = await import(/* @vite-ignore */ '/src/reasoning/runStore.ts' as string);
    type P = { index: number; question: string; gold: number };
    const data = (await ds.loadDataset('gsm8k', { baseUrl: new URL('data/', document.baseURI).href })) as { problems: P[] };
    const run = runsMod.createRun(
      { dataset: 'gsm8k', promptId: 'q_end', promptTemplate: 'Q: {question}', adapter: null, adapterKind: null, model: 'tiny-q4f32_1' },
      data.problems.map((p) => p.index),
    );
    const items = data.problems.map((p, i) => {
      const output =
        i % 3 === 0 ? `First add them.\nSo the total is ${p.gold}.` : `First <img src=x onerror="window.__xss=1"> add them.\nThe answer is ${p.gold + 1}.`;
      return { ...score.scoreOutput('gsm8k', p, output), output };
    });
    await store.saveRun({ ...run, items, maxNewTokens: 8, stopSequences: [], promptLabel: 'Q_end' });
    return {
      id: run.id as string,
      total: items.length,
      wrong: items.filter((i: { correct: boolean }) => !i.correct).length,
      first: { question: data.problems[0].question, gold: items[0].gold, pred: items[0].pred, output: items[0].output },
      second: { question: data.problems[1].question, pred: items[1].pred },
    };
  });
  expect(seeded.total).toBe(1319);
  await page.reload();
  const t0 = Date.now();
  await page.getByRole('button', { name: `Show run ${seeded.id}` }).click();
  const list = page.getByTestId('run-problems');
  await expect(list).toBeInViewport();
  await expect(list.getByTestId('run-problems-range')).toHaveText(`1–20 of ${seeded.total} problems`);
  // Paged: 20 in the page, not 1319.
  await expect(list.getByTestId('run-problem')).toHaveCount(20);
  expect(Date.now() - t0).toBeLessThan(10_000);
  const first = list.getByTestId('run-problem').first();
  await expect(first.getByTestId('run-problem-question')).toHaveText(seeded.first.question);
  await expect(first.getByTestId('run-problem-gold')).toHaveText(String(seeded.first.gold));
  await expect(first.getByTestId('run-problem-pred')).toHaveText(String(seeded.first.pred));
  await expect(first.getByTestId('run-problem-verdict')).toHaveText('✓ Correct');
  await expect(first.getByTestId('run-problem-steps').locator('li')).toHaveCount(2);
  const second = list.getByTestId('run-problem').nth(1);
  await expect(second.getByTestId('run-problem-verdict')).toHaveText('✗ Incorrect');
  await expect(second.getByTestId('run-problem-pred')).toHaveText(String(seeded.second.pred));
  // Untrusted output stays text: the markup shows, nothing of it runs.
  await expect(second.getByTestId('run-problem-steps')).toContainText('<img src=x onerror="window.__xss=1">');
  expect(await list.locator('img').count()).toBe(0);
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();

  await list.getByRole('button', { name: 'Next' }).click();
  await expect(list.getByTestId('run-problems-range')).toHaveText(`21–40 of ${seeded.total} problems`);
  // Only the wrong answers: every row shown is incorrect, counted among all 1319.
  await list.getByTestId('only-wrong').check();
  await expect(list.getByTestId('run-problems-range')).toHaveText(`1–20 of ${seeded.wrong} wrong problems`);
  expect(await list.getByTestId('run-problem').evaluateAll((els) => els.map((e) => e.getAttribute('data-correct')))).toEqual(Array(20).fill('false'));
  await list.getByTestId('only-wrong').uncheck();

  // Copy: the problem's record as text.
  await list.getByRole('button', { name: 'Copy problem 0', exact: true }).click();
  await expect(list.getByText('Copied problem #0.')).toBeVisible();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toContain(`Question: ${seeded.first.question}`);
  expect(copied).toContain(seeded.first.output);
  expect(copied).toContain(`Extracted answer: ${seeded.first.pred}`);
  expect(copied).toContain(`Gold: ${seeded.first.gold}`);
  expect(copied).toContain('Verdict: correct');
});

/**
 * The layout shift the page has had so far (the Layout Instability API's entries, as Core Web Vitals
 * sums them; shifts right after a user input do not count), read in the page.
 */
function layoutShift(page: Page): Promise<number> {
  return page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        let sum = 0;
        new PerformanceObserver((list) => {
          for (const e of list.getEntries() as (PerformanceEntry & { value: number; hadRecentInput: boolean })[]) if (!e.hadRecentInput) sum += e.value;
        }).observe({ type: 'layout-shift', buffered: true });
        // Buffered entries are delivered in the observer's first callback, before this timer.
        setTimeout(() => resolve(sum), 200);
      }),
  );
}

/** A slow host: the catalog's manifests arrive `ms` after they are asked for, so the first paint comes before the model list. */
async function catalogLate(page: Page, ms: number) {
  await page.route(/\/models\/[^/]+\.json$/, async (route) => {
    await new Promise((r) => setTimeout(r, ms));
    await route.continue();
  });
}

for (const viewport of [
  { width: 1280, height: 720 },
  { width: 390, height: 844 },
])
  test(`the page does not move as the stored models are read (${viewport.width} px): a first click lands where it was aimed`, async ({ page }) => {
    await page.setViewportSize(viewport);
    await catalogLate(page, 1000);
    await page.goto('./#view=generate');
    const webllm = page.getByRole('radio', { name: 'WebLLM (base model + hard prompts only)' });
    const before = await webllm.boundingBox();
    // The model list comes from IndexedDB and the catalog after the first paint: its note is the last to arrive.
    await expect(page.getByRole('combobox', { name: 'Model' }).locator('option')).toHaveCount(4);
    await expect(page.getByRole('note').filter({ hasText: 'Tiny demo model' })).toBeVisible();
    await page.waitForTimeout(500);
    const after = await webllm.boundingBox();
    // Within a pixel: a reserved line and the line it holds can differ by rounding.
    expect(Math.abs((after?.y ?? NaN) - (before?.y ?? NaN))).toBeLessThan(1);
    expect(Math.abs((after?.x ?? NaN) - (before?.x ?? NaN))).toBeLessThan(1);
    // "Good" in Core Web Vitals is under 0.1; before the model bar kept its size it was 0.41 here.
    expect(await layoutShift(page)).toBeLessThan(0.1);
  });

test('no view jumps as the stored models are read: layout shift under 0.1 in every other view', async ({ page }) => {
  await catalogLate(page, 500);
  // The Models view wide and on a phone (its list is the most that arrives late), the other views on a phone (where more wraps).
  const cases = [...['lab', 'accuracy', 'train', 'models'].map((view) => ({ view, width: 390 })), { view: 'models', width: 1280 }];
  for (const { view, width } of cases) {
    await page.setViewportSize({ width, height: 800 });
    await page.goto('about:blank'); // then a new document, with its own layout-shift entries
    await page.goto(`./#view=${view}`);
    await expect(page.getByRole('region', { name: 'Model choice' }).getByRole('combobox', { name: 'Model' }).locator('option')).toHaveCount(4);
    await page.waitForTimeout(500);
    expect(await layoutShift(page), `${view} at ${width} px`).toBeLessThan(0.1);
  }
});
