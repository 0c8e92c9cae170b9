import { test, expect, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';

/**
 * Beam search from the app (issue 14): the Decoding choice on the tiny model (random weights).
 * The oracle for a run's outputs is the engine's own beam search called directly in the page
 * (Engine.generate with numBeams, itself checked against transformers' algorithm on the reference
 * forward pass in beam-search.spec.ts): the app must hand the run's problems to it unchanged.
 */

async function loadTiny(page: Page, mode = 'q4f32_1') {
  await page.getByRole('combobox', { name: 'Model' }).selectOption(`tiny-${mode}`);
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText(mode, { timeout: 120_000 });
}

type Line = { index: number; output: string; record: { decoding: { kind: string; numBeams?: number; maxNewTokens: number } } };

test('a 4-beam run gives each problem what the engine\'s beam search gives its prompt, and lists "4 beams"; the share link keeps the decoding', async ({
  page,
}) => {
  const maxNewTokens = 8;
  await page.goto(`./#view=accuracy&prompt=q_end&dataset=gsm8k&max=${maxNewTokens}`);
  // Absent from the link: greedy.
  await expect(page.getByTestId('decoding')).toHaveValue('1');
  await loadTiny(page);
  await page.getByTestId('decoding').selectOption('4');
  await expect.poll(() => page.url()).toContain('beams=4');
  await page.getByRole('radio', { name: /The first/ }).check();
  await page.getByLabel('Number of problems').fill('2');
  await page.getByLabel('Seed').fill('7');
  await page.getByRole('button', { name: 'Start run' }).click();
  const row = page.getByTestId('results-table').locator('tbody tr').first();
  await expect(row.getByTestId('run-done')).toHaveText('2 of 2', { timeout: 240_000 });
  await expect(row.getByTestId('run-decoding')).toHaveText('4 beams');
  await expect(page.getByTestId('selected-decoding')).toHaveText('4 beams');

  const [jsonl] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'JSONL' }).click()]);
  const lines = readFileSync((await jsonl.path())!, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
  expect(lines).toHaveLength(2);
  for (const l of lines) expect(l.record.decoding).toMatchObject({ kind: 'beam', numBeams: 4, maxNewTokens });

  // The oracle: the same prompts through an in-thread engine on the same model, by 4-beam search and greedily.
  const want = await page.evaluate(
    async ({ indices, maxNewTokens }) => {
      const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
      const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
      const P = await import(/* @vite-ignore */ '/src/reasoning/prompts.ts' as string);
      const { datasets } = await import(/* @vite-ignore */ '/src/ui/stores/datasets.svelte.ts' as string);
      const data = await datasets.load('gsm8k');
      const config = P.getPromptConfig('q_end');
      const e = new Engine();
      await e.load(httpModelSource('/models/tiny/q4f32_1/'));
      const out: Record<number, { beams: string; greedy: string }> = {};
      for (const index of indices) {
        const problem = data.problems.find((p: { index: number }) => p.index === index);
        const prompt = P.buildPrompt(config, problem) as string;
        const stopStrings = config.stopSequences as string[];
        // No onToken: beam search builds its text for the result either way.
        const beams = await e.generate(prompt, { maxNewTokens, numBeams: 4, stopStrings });
        const greedy = await e.generate(prompt, { maxNewTokens, temperature: 0, stopStrings });
        out[index] = { beams: P.cutAtStop(beams.text, stopStrings), greedy: P.cutAtStop(greedy.text, stopStrings) };
      }
      await e.unload();
      return out;
    },
    { indices: lines.map((l) => l.index), maxNewTokens },
  );
  for (const l of lines) expect(l.output, `problem ${l.index}`).toBe(want[l.index].beams);
  // Beam search chose differently from greedy somewhere, so the comparison above can tell them apart.
  expect(lines.some((l) => want[l.index].beams !== want[l.index].greedy)).toBe(true);

  // The link restores the decoding; a malformed one is greedy.
  const hash = new URL(page.url()).hash;
  await page.goto(`./${hash.replace('beams=4', 'beams=3')}`);
  await page.reload();
  await expect(page.getByTestId('decoding')).toHaveValue('3');
  await page.goto(`./${hash.replace('beams=4', 'beams=banana')}`);
  await page.reload();
  await expect(page.getByTestId('decoding')).toHaveValue('1');
  // The stored run still says how it was decoded.
  await expect(page.getByTestId('results-table').locator('tbody tr').first().getByTestId('run-decoding')).toHaveText('4 beams');
});

test("picking a LoRA, series or parallel adapter brings the paper's 4 beams; the base model, greedy", async ({ page }) => {
  await page.goto('./#view=accuracy&prompt=alpaca&dataset=gsm8k');
  await expect(page.getByTestId('decoding')).toHaveValue('1');
  await page.getByTestId('adapter-select').selectOption('tiny-q4f32_1-lora');
  await expect(page.getByTestId('decoding')).toHaveValue('4');
  await expect.poll(() => page.url()).toContain('beams=4');
  // The user may change it.
  await page.getByTestId('decoding').selectOption('2');
  await expect.poll(() => page.url()).toContain('beams=2');
  await page.getByTestId('adapter-select').selectOption('tiny-q4f32_1-series');
  await expect(page.getByTestId('decoding')).toHaveValue('4');
  await page.getByTestId('adapter-select').selectOption('none');
  await expect(page.getByTestId('decoding')).toHaveValue('1');
  await expect.poll(() => page.url()).not.toContain('beams=');
});
