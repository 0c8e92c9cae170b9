import { test, expect, type Page } from '@playwright/test';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCsv } from '../../src/reasoning/export.ts';
import { parseDataset, selectProblems } from '../../src/reasoning/datasets.ts';
import { scoreModes } from '../../src/reasoning/score.ts';

/** Scoring modes and run records in the app, on the tiny model (random weights). */

const ROOT = resolve(import.meta.dirname, '../..');
const GSM8K = join(resolve(process.env.REASONING_LAB_DATA ?? resolve(ROOT, '../shared/data')), 'gsm8k/test.jsonl');

async function download(page: Page, button: ReturnType<Page['locator']>): Promise<string> {
  const [file] = await Promise.all([page.waitForEvent('download'), button.click()]);
  return readFileSync((await file.path())!, 'utf8');
}

test('every mode with its interval in the table and the summary CSV; JSONL lines carry lm-eval sample fields and the run record', async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=q_end&max=12');
  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('4');
  await page.getByLabel('Seed').fill('11');
  await page.getByRole('button', { name: 'Start run' }).click();
  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-done')).toHaveText('4 of 4', { timeout: 120_000 });

  const lines = (await download(page, row.getByRole('button', { name: 'JSONL' })))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const text = readFileSync(GSM8K, 'utf8');
  const problems = parseDataset(text, 'gsm8k').problems;
  const byIndex = new Map(problems.map((p) => [p.index, p]));
  const record = lines[0].record;
  // The record: what was run, checked against files and hashes computed here.
  expect(record.dataset.indices).toEqual(selectProblems(problems, { limit: 4, seed: 11 }).map((p) => p.index));
  expect(record.dataset.sha256).toBe(createHash('sha256').update(readFileSync(GSM8K)).digest('hex'));
  expect(record.prompt.sha256).toBe(createHash('sha256').update(record.prompt.text, 'utf8').digest('hex'));
  expect(JSON.parse(record.prompt.text).id).toBe('q_end');
  expect(record.decoding).toMatchObject({ kind: 'greedy', maxNewTokens: 12 });
  expect(record.appVersion).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  expect(record.model.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  expect(record.environment.gpuAdapter).toBeTruthy();
  expect(record.environment.browser).toMatch(/Chrome/);

  const strict = { correct: 0 };
  const flexible = { correct: 0 };
  for (const line of lines) {
    const problem = byIndex.get(line.index)!;
    // lm-eval's sample fields: doc_id, target (the text after ####), resps, filtered_resps, exact_match.
    expect(line.doc_id).toBe(line.index);
    expect(line.target).toBe(problem.goldSolution!.split('####').pop()!.trim());
    expect(line.resps).toEqual([[line.output]]);
    const modes = scoreModes('number', line.output, problem.gold, line.target);
    expect(line.scores).toEqual(modes);
    expect(line.filtered_resps).toEqual([modes['lm-eval-strict']!.pred]);
    expect(line.exact_match).toBe(modes['lm-eval-strict']!.correct ? 1 : 0);
    strict.correct += modes['lm-eval-strict']!.correct ? 1 : 0;
    flexible.correct += modes['lm-eval-flexible']!.correct ? 1 : 0;
  }
  const pct = (c: number) => `${((c / 4) * 100).toFixed(1)}%`;
  await expect(row.getByTestId('run-strict')).toHaveText(new RegExp(`^${pct(strict.correct).replace('.', '\\.')} \\(\\d+\\.\\d% – \\d+\\.\\d%\\)$`));
  await expect(row.getByTestId('run-flexible')).toHaveText(new RegExp(`^${pct(flexible.correct).replace('.', '\\.')} \\(`));

  const csv = parseCsv(await download(page, row.getByRole('button', { name: 'Summary' })));
  const header = csv[0];
  const rows = csv.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
  expect(rows.map((r) => r.mode)).toEqual(['llm-adapters', 'lm-eval-strict', 'lm-eval-flexible']);
  expect(rows[1]).toMatchObject({
    correct: String(strict.correct),
    total: '4',
    prompt_sha256: record.prompt.sha256,
    dataset_sha256: record.dataset.sha256,
    decoding: 'greedy',
  });
  expect(rows[2].correct).toBe(String(flexible.correct));
  for (const r of rows) expect(Number(r.wilson95_lower)).toBeLessThanOrEqual(Number(r.accuracy));

  // Rerun this: a new run with the record's configuration gets the same problems and outputs.
  await row.getByRole('button', { name: 'Rerun' }).click();
  const table = page.getByTestId('results-table').locator('tbody tr');
  await expect(table).toHaveCount(2);
  await expect(table.first().getByTestId('run-done')).toHaveText('4 of 4', { timeout: 120_000 });
  const again = (await download(page, table.first().getByRole('button', { name: 'JSONL' })))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(again[0].run).not.toBe(lines[0].run);
  const when = (r: Record<string, unknown>) => ({ ...r, dates: undefined });
  expect(when(again[0].record)).toEqual(when(record));
  const outputs = (ls: { index: number; output: string }[]) => new Map(ls.map((l) => [l.index, l.output]));
  expect(outputs(again)).toEqual(outputs(lines));
});
