/**
 * docs/screenshot.png, the README's picture: the app on the tiny demo model (random weights), the
 * Live accuracy view after an 8-problem Q_end run. Made from the running app in headless Chromium,
 * like the other CLIs (software WebGPU without a GPU). Run: npx tsx src/cli/screenshot.ts
 */
import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { openBrowserSession } from './browserSession.ts';

const OUT = resolve(import.meta.dirname, '../../docs/screenshot.png');
/** The README links it; kept small so the repository stays light. */
const MAX_BYTES = 300_000;

async function main() {
  // The dev server serves /models (the tiny model) and /data (../shared/data) itself.
  const session = await openBrowserSession({ quiet: true });
  try {
    const { page, url } = session;
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(`${url}/#view=accuracy&prompt=q_end&max=24`);
    await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
    await page.getByRole('button', { name: /Load model|Reload/ }).click();
    await page.getByTestId('model-status').waitFor({ timeout: 120_000 });
    await page.getByRole('radio', { name: /The first/ }).check();
    await page.getByLabel('Number of problems').fill('8');
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.getByText('8 of 8 problems', { exact: true }).waitFor({ timeout: 300_000 });
    mkdirSync(resolve(OUT, '..'), { recursive: true });
    await page.screenshot({ path: OUT, fullPage: true });
  } finally {
    await session.close();
  }
  const size = statSync(OUT).size;
  if (size > MAX_BYTES) throw new Error(`${OUT} is ${size} bytes, over ${MAX_BYTES}: shrink the viewport`);
  console.log(`wrote ${OUT} (${size} bytes)`);
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
