import { test, expect, type Page } from '@playwright/test';

/** The reasoning lab on the tiny model (random weights): prompt configurations, solving, comparing, share links. */

async function loadTiny(page: Page, mode = 'q4f32_1') {
  await page.getByRole('combobox', { name: 'Model' }).selectOption(`tiny-${mode}`);
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText(mode, { timeout: 120_000 });
}

async function expectedPrompt(page: Page, id: string, question: string): Promise<string> {
  return page.evaluate(
    async ({ id, question }) => {
      const m = await import(/* @vite-ignore */ '/src/reasoning/prompts.ts' as string);
      return m.buildPrompt(m.getPromptConfig(id), { question }) as string;
    },
    { id, question },
  );
}

test('each prompt configuration shows its exact prompt and token count', async ({ page }) => {
  await page.goto('./#view=lab&dataset=gsm8k&problem=3');
  await loadTiny(page);
  const question = (await page.getByTestId('question').textContent())!;
  expect(question.length).toBeGreaterThan(20);
  const ids = await page.locator('input[name="config-a"]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
  expect(ids).toEqual(expect.arrayContaining(['baseline', 'zero_shot', 'q_end', 'a_begin', 'alpaca', 'alpaca+q_end', 'alpaca+a_begin', 'custom']));
  for (const id of ids.filter((i) => i !== 'custom')) {
    await page.locator(`input[name="config-a"][value="${id}"]`).check();
    const want = await expectedPrompt(page, id, question);
    await expect.poll(() => page.getByTestId('prompt-preview-a').textContent()).toBe(want);
    await expect(page.getByTestId('prompt-preview-a-count')).toHaveText(/^\d+ tokens$/);
    expect(page.url()).toContain(`prompt=${encodeURIComponent(id)}`);
  }
  // The paper's hints are there: Q_end sentence, A_begin sentence, 8-shot exemplars ending "The answer is".
  await page.locator('input[name="config-a"][value="baseline"]').check();
  await expect(page.getByTestId('prompt-preview-a')).toContainText('The answer is');
  // Custom: the template as written, the question in place of {question}; a bad template is explained.
  await page.locator('input[name="config-a"][value="custom"]').check();
  await page.getByLabel('Template', { exact: true }).fill('Solve: {question}\nWork:');
  await expect.poll(() => page.getByTestId('prompt-preview-a').textContent()).toBe(`Solve: ${question}\nWork:`);
  await page.getByLabel('Template', { exact: true }).fill('no placeholder');
  await expect(page.getByRole('alert').filter({ hasText: 'exactly one {question}' })).toBeVisible();
});

test('solve a problem: steps stream, answer beside gold with a verdict; compare two configurations', async ({ page }) => {
  await page.goto('./#view=lab&dataset=gsm8k&problem=0&prompt=q_end&max=20');
  await loadTiny(page);
  await expect(page.getByTestId('gold')).toHaveText('18');
  await page.evaluate(() => {
    const seen = new Set<string>();
    (window as unknown as { seen: Set<string> }).seen = seen;
    new MutationObserver(() => {
      const el = document.querySelector('[data-testid="solution-a-steps"]');
      if (el) seen.add(el.textContent ?? '');
    }).observe(document.body, { childList: true, characterData: true, subtree: true });
  });
  await page.getByRole('button', { name: 'Solve', exact: true }).click();
  await expect(page.getByTestId('solution-a-verdict')).toHaveText(/Correct|Incorrect/, { timeout: 120_000 });
  expect(await page.getByTestId('solution-a-steps').locator('li').count()).toBeGreaterThan(0);
  expect(await page.evaluate(() => (window as unknown as { seen: Set<string> }).seen.size)).toBeGreaterThan(2);
  await expect(page.getByTestId('solution-a-answer')).toContainText('Gold: 18');

  // Side by side: A = q_end, B = a_begin, on the same problem.
  await page.getByLabel('Compare two configurations side by side').check();
  await expect(page.locator('input[name="config-b"][value="a_begin"]')).toBeChecked();
  await page.getByRole('button', { name: 'Solve with both' }).click();
  await expect(page.getByTestId('solution-b-verdict')).toHaveText(/Correct|Incorrect/, { timeout: 120_000 });
  await expect(page.getByTestId('solution-a-verdict')).toHaveText(/Correct|Incorrect/);
  await expect(page.getByTestId('prompt-preview-b')).toContainText('Take a deep breath and work on this problem step-by-step.');
  await expect(page.getByTestId('prompt-preview-a')).toContainText("Let's work through this problem step-by-step:");
});

test('a share link restores the configuration and the problem', async ({ page }) => {
  await page.goto('./#view=lab');
  await page.locator('input[name="config-a"][value="a_begin"]').check();
  await page.getByLabel('Compare two configurations side by side').check();
  await page.locator('input[name="config-b"][value="alpaca"]').check();
  await page.getByLabel('Problem number').fill('7');
  await expect(page.getByTestId('question')).toBeVisible();
  const question = await page.getByTestId('question').textContent();
  const url = page.url();
  expect(url).toContain('problem=7');

  const other = await page.context().newPage();
  await other.goto(url);
  await expect(other.locator('input[name="config-a"][value="a_begin"]')).toBeChecked();
  await expect(other.locator('input[name="config-b"][value="alpaca"]')).toBeChecked();
  await expect(other.getByTestId('question')).toHaveText(question!);
});

test('the explanation panel shows a diagram for hard prompts and each adapter', async ({ page }) => {
  await page.goto('./#view=lab&prompt=q_end');
  await page.getByText('What does this do?').click();
  await expect(page.getByRole('img', { name: /hard prompt/ })).toBeVisible();
  for (const [label, name] of [
    ['LoRA', /lora adapter/],
    ['Series adapter', /series adapter/],
    ['Parallel adapter', /parallel adapter/],
  ] as const) {
    await page.getByRole('radio', { name: label, exact: true }).check();
    await expect(page.getByRole('img', { name })).toBeVisible();
  }
});
