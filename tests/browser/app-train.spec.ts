import { test, expect, type Download, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { dirModelSource } from '../../src/cli/hfCheckpoint.ts';
import { prepareTrainingData } from '../../src/training/data.ts';
import { baseTokenizer, loadTrainingBase } from '../../src/training/referenceModel.ts';
import { createTrainerState, defaultHyper, trainStep } from '../../src/training/referenceTrainer.ts';
import { paperSpec } from '../../src/training/recipes.ts';
import { adapterTensorList } from '../../src/training/checkpoint.ts';
import { parseSafetensorsHeader, readSafetensorsTensor } from '../../src/formats/safetensors.ts';
import { peftTensorKey } from '../../src/formats/peftExport.ts';

/**
 * The Train view end to end on the tiny model (q4f32_1, frozen q4 base) with the paper's LoRA
 * recipe, shrunk to a few steps: start, watch the loss curve fill, pause, reload the page, resume;
 * the losses equal an uninterrupted run of the reference trainer computed here in Node; "Use this
 * adapter" puts it in the picker and the Lab solves with it; Export downloads PEFT files whose
 * tensors are the reference's.
 */
test.describe.configure({ timeout: 900_000 });

const MODE = 'q4f32_1';
const STEPS = 4;
const MICRO = 1;
const ACCUM = 2;
const CUTOFF = 56; // the prompt template alone is 47 tokens
const WARMUP = 1;
const RECORDS = (JSON.parse(readFileSync('../shared/data/llm-adapters/train/math_data.json', 'utf8')) as unknown[]).slice(0, 6);
const DATA_TEXT = JSON.stringify(RECORDS);

async function loadTiny(page: Page) {
  await page.getByRole('combobox', { name: 'Model' }).selectOption(`tiny-${MODE}`);
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText(MODE, { timeout: 120_000 });
}

async function referenceRun() {
  const base = await loadTrainingBase(dirModelSource(`models/tiny/${MODE}`));
  const tok = (await baseTokenizer(base.info))!;
  const data = prepareTrainingData(tok, DATA_TEXT, 'math6.json', { cutoffLen: CUTOFF }).examples;
  const state = createTrainerState(
    base.config,
    paperSpec('lora'),
    defaultHyper({ microBatch: MICRO, gradAccum: ACCUM, lr: 3e-4, warmupSteps: WARMUP, totalSteps: STEPS, shuffle: true, seed: 42, weightDecay: 0 }),
  );
  const losses = Array.from({ length: STEPS }, () => trainStep(base, data, state).loss);
  return { losses, state };
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

test('LoRA recipe: start, loss curve, pause / reload / resume = uninterrupted reference run; use in the Lab; export PEFT files', async ({ page }) => {
  await page.goto('./#view=train');
  await loadTiny(page);
  await expect(page.getByTestId('train-base')).toContainText('Tiny demo model (q4f32_1)');

  await page.getByRole('button', { name: /LoRA \(r 32/ }).click();
  await expect(page.getByLabel('r', { exact: true })).toHaveValue('32');
  await expect(page.getByLabel('Target modules')).toHaveValue('q_proj, k_proj, v_proj, up_proj, down_proj');
  await expect(page.getByLabel('Learning rate')).toHaveValue('0.0003');
  await page.getByLabel('Steps (empty: epochs)').fill(String(STEPS));
  await page.getByLabel('Micro-batch').fill(String(MICRO));
  await page.getByLabel('Gradient accumulation').fill(String(ACCUM));
  await page.getByLabel('Warmup steps').fill(String(WARMUP));
  await page.getByLabel('Cutoff length').fill(String(CUTOFF));
  await page.getByLabel('Checkpoint every (steps)').fill('1');
  await page.getByLabel('A file on this computer').check();
  await page.getByLabel('Training file').setInputFiles({ name: 'math6.json', mimeType: 'application/json', buffer: Buffer.from(DATA_TEXT) });

  await page.getByRole('button', { name: 'Start' }).click();
  await expect(page.getByTestId('train-status')).toContainText('Training on reference (CPU, f64)', { timeout: 120_000 });
  await expect(page.getByTestId('train-data-summary')).toContainText('6 examples from math6.json; 6 cut at 56 tokens');
  const chart = page.getByTestId('loss-chart');
  await expect.poll(async () => Number(await chart.getAttribute('data-points')), { timeout: 300_000 }).toBeGreaterThanOrEqual(1);
  await expect(chart.locator('canvas')).toHaveCount(1); // uPlot drew it
  await expect(page.getByTestId('train-rate')).toHaveText(/^\d+(\.\d)?$/);
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByTestId('train-notice')).toContainText(/Paused after step \d/, { timeout: 300_000 });
  const pausedAt = Number(await chart.getAttribute('data-points'));
  expect(pausedAt).toBeLessThan(STEPS);

  // A reload: the run comes back from IndexedDB, paused at its checkpoint.
  await page.reload();
  await expect(page.getByTestId('train-status')).toHaveText(`Paused: step ${pausedAt} of ${STEPS} (reference (CPU, f64))`);
  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(page.getByTestId('train-status')).toContainText(`Finished: step ${STEPS} of ${STEPS}`, { timeout: 600_000 });
  const losses = JSON.parse((await chart.getAttribute('data-losses'))!) as number[];
  const { losses: want, state } = await referenceRun(); // in Node (it holds the test process: run it while the page idles)
  expect(losses).toHaveLength(STEPS);
  losses.forEach((l, i) => expect(close(l, want[i]), `step ${i}: ${l} vs ${want[i]}`).toBe(true));

  // Export: PEFT's two files, the reference's tensors under PEFT's keys.
  const downloads: Download[] = [];
  page.on('download', (d) => downloads.push(d));
  await page.getByRole('button', { name: 'Export (PEFT)' }).click();
  await expect.poll(() => downloads.length).toBe(2);
  const byName = new Map(downloads.map((d) => [d.suggestedFilename(), d]));
  const cfg = JSON.parse(readFileSync((await byName.get('adapter_config.json')!.path())!, 'utf8'));
  expect([cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.lora_dropout]).toEqual(['LORA', 32, 64, 0.05]);
  expect(cfg.target_modules).toEqual(['q_proj', 'k_proj', 'v_proj', 'up_proj', 'down_proj']);
  const bytes = new Uint8Array(readFileSync((await byName.get('adapter_model.safetensors')!.path())!));
  const header = parseSafetensorsHeader(bytes);
  const tensors = adapterTensorList(state.adapter);
  expect(header.tensors.size).toBe(tensors.length);
  for (const t of tensors) {
    const got = readSafetensorsTensor(bytes, peftTensorKey(t.layer, t.module, t.role), header);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - t.data[i]));
    expect(worst, t.name).toBeLessThan(1e-6);
  }

  // Use this adapter: it joins the picker; the Lab solves with it.
  await page.getByRole('button', { name: 'Use this adapter' }).click();
  await expect(page.getByTestId('train-notice')).toContainText('is in the Adapter picker', { timeout: 60_000 });
  await page.goto('./#view=lab&problem=0&max=8');
  await loadTiny(page);
  const option = page.getByTestId('adapter-select').locator('option', { hasText: 'trained-lora' });
  await expect(option).toHaveCount(1);
  await page.getByTestId('adapter-select').selectOption((await option.getAttribute('value'))!);
  await expect(page.getByTestId('adapter-active')).toContainText('trained-lora', { timeout: 60_000 });
  await page.getByRole('button', { name: 'Solve', exact: true }).click();
  await expect(page.getByTestId('solution-a-verdict')).toHaveText(/Correct|Incorrect/, { timeout: 300_000 });
  await expect(page.getByTestId('solution-a-adapter')).toContainText('trained-lora');
});

test('bad input is refused with the reason and stores nothing: a record without output, a bad field, a URL that is no training file', async ({ page }) => {
  await page.goto('./#view=train');
  await loadTiny(page);
  await page.getByLabel('A file on this computer').check();
  const bad = JSON.stringify([RECORDS[0], { instruction: 'Add 3 and 3.', input: '' }]);
  await page.getByLabel('Training file').setInputFiles({ name: 'bad.json', mimeType: 'application/json', buffer: Buffer.from(bad) });
  await page.getByRole('button', { name: 'Start' }).click();
  await expect(page.getByTestId('train-error')).toHaveText('bad.json record 1: "output" is missing (every training record needs an output string)');
  await page.getByLabel('Training file').setInputFiles({ name: 'math6.json', mimeType: 'application/json', buffer: Buffer.from(DATA_TEXT) });
  await page.getByLabel('Target modules').fill('q_proj, lm_head');
  await page.getByRole('button', { name: 'Start' }).click();
  await expect(page.getByTestId('train-error')).toContainText('the model has no module "lm_head"');
  await page.getByLabel('Target modules').fill('q_proj');
  await page.getByLabel('Learning rate').fill('fast');
  await page.getByRole('button', { name: 'Start' }).click();
  await expect(page.getByTestId('train-error')).toHaveText('Learning rate must be a non-negative number, not "fast".');
  await page.getByLabel('Learning rate').fill('3e-4');
  await page.getByLabel('From a URL').check();
  await page.getByLabel('Training file URL').fill('/data/llm-adapters/train/no-such-file.json');
  await page.getByRole('button', { name: 'Start' }).click();
  await expect(page.getByTestId('train-error')).toContainText('no-such-file.json is a web page, not a training file');
  await expect(page.getByTestId('train-runs')).toHaveCount(0);
  await expect(page.getByTestId('train-status')).toHaveCount(0);
});
