import { test, expect, type Page } from '@playwright/test';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { startShardServer, type ShardServer } from './helpers/shardServer.ts';

/**
 * A share link is state, not instructions. A link naming a data site (`?data=`) and an adapter
 * folder (`adapter=url:…`) on another origin shows what it would fetch and from where, and fetches
 * only after the user says yes. A second local server plays the attacker and records every request.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const ADAPTER_DIR = resolve(ROOT, 'models/tiny/adapters/q4f32_1-lora');
const PAYLOAD = 'ATTACKER question <img src=x onerror=alert(1)> <b>bold</b>';

/** The attacker's site: a GSM8K file whose first question carries markup, and the tiny LoRA's folder. */
async function startAttacker(): Promise<ShardServer> {
  const gsm8k = readFileSync(resolve(ROOT, '../shared/data/gsm8k/test.jsonl'), 'utf8').split('\n');
  gsm8k[0] = JSON.stringify({ ...(JSON.parse(gsm8k[0]) as object), question: PAYLOAD });
  const files: Record<string, Uint8Array> = { 'gsm8k/test.jsonl': new TextEncoder().encode(gsm8k.join('\n')) };
  for (const f of readdirSync(ADAPTER_DIR, { withFileTypes: true }))
    if (f.isFile()) files[`adapters/lora/${f.name}`] = new Uint8Array(readFileSync(resolve(ADAPTER_DIR, f.name)));
  return startShardServer(files);
}

function linkTo(attacker: ShardServer): string {
  const adapter = encodeURIComponent(`url:${attacker.url}adapters/lora/`);
  return `/?data=${encodeURIComponent(attacker.url)}#view=lab&dataset=gsm8k&problem=0&model=tiny-q4f32_1&adapter=${adapter}`;
}

async function loadTiny(page: Page) {
  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
}

let attacker: ShardServer;
test.beforeEach(async () => {
  attacker = await startAttacker();
});
test.afterEach(async () => {
  await attacker.close();
});

test('a link naming another site asks first: nothing is fetched from it before the click, exactly what was shown after', async ({ page }) => {
  const origin = new URL(attacker.url).origin;
  await page.goto(linkTo(attacker));
  const data = page.getByTestId('consent-data');
  await expect(data).toContainText(`This link asks to read the datasets from another site, ${origin}`);
  await expect(data).toContainText(`${attacker.url}`);
  await expect(data).toContainText('Nothing has been fetched from there yet.');
  const adapter = page.getByTestId('consent-adapter');
  await expect(adapter).toContainText(`This link asks to use an adapter from another site, ${origin}`);
  await expect(adapter).toContainText(`${attacker.url}adapters/lora/`);

  // The model loads (the point where a link's adapter used to be applied): still nothing asked of the attacker.
  await loadTiny(page);
  await expect(page.getByTestId('adapter-active')).toHaveText('Using the base model alone');
  await expect(page.getByTestId('question')).toHaveCount(0);
  expect(attacker.log).toEqual([]);
  // Nor cached: the dataset store holds nothing from there.
  const stored = await page.evaluate(async () => {
    // Opened only when it exists (opening would create it empty, under the store's feet).
    if (!(await indexedDB.databases()).some((d) => d.name === 'reasoning-lab-datasets')) return [];
    return new Promise<string[]>((ok) => {
      const open = indexedDB.open('reasoning-lab-datasets');
      open.onsuccess = () => {
        const req = open.result.transaction('files').objectStore('files').getAllKeys();
        req.onsuccess = () => {
          open.result.close();
          ok(req.result.map(String));
        };
      };
    });
  });
  expect(stored.filter((k) => k.includes(new URL(attacker.url).host))).toEqual([]);

  // Yes to the data site: the one file is fetched, and its markup shows as text.
  await data.getByRole('button', { name: `Fetch datasets from ${new URL(attacker.url).host}` }).click();
  await expect(page.getByTestId('question')).toHaveText(PAYLOAD, { timeout: 60_000 });
  expect(await page.getByTestId('question').locator('img, b').count()).toBe(0);
  expect(attacker.log.map((r) => `${r.method} ${r.path}`)).toEqual(['GET gsm8k/test.jsonl']);
  await expect(data).toHaveCount(0);

  // Yes to the adapter: its folder (adapter.json and its shard) is fetched and it is used.
  await adapter.getByRole('button', { name: `Fetch and use the adapter from ${new URL(attacker.url).host}` }).click();
  await expect(page.getByTestId('adapter-active')).toContainText('· LoRA', { timeout: 60_000 });
  const after = attacker.log.slice(1).map((r) => r.path);
  expect(after).toContain('adapters/lora/adapter.json');
  expect(after).toContain('adapters/lora/adapter_shard_0.bin');
  expect(after.every((p) => p.startsWith('adapters/lora/'))).toBe(true);
  await expect(adapter).toHaveCount(0);
});

test("saying no to a link's site uses the built-in datasets and the base model, and the site gets no request at all", async ({ page }) => {
  await page.goto(linkTo(attacker));
  await page.getByRole('button', { name: 'Use the built-in datasets' }).click();
  await page.getByRole('button', { name: 'Keep the base model' }).click();
  await expect(page.getByTestId('consent-data')).toHaveCount(0);
  await expect(page.getByTestId('consent-adapter')).toHaveCount(0);
  await loadTiny(page);
  const builtIn = JSON.parse(readFileSync(resolve(ROOT, '../shared/data/gsm8k/test.jsonl'), 'utf8').split('\n')[0]) as { question: string };
  await expect(page.getByTestId('question')).toHaveText(builtIn.question, { timeout: 60_000 });
  await expect(page.getByTestId('adapter-active')).toHaveText('Using the base model alone');
  await expect(page.getByTestId('adapter-select')).toHaveValue('none');
  expect(attacker.log).toEqual([]);
});

test('a link to an adapter folder on this same site needs no question (the existing share links keep working)', async ({ page }) => {
  await page.goto('/');
  const same = new URL('/models/tiny/adapters/q4f32_1-series/', page.url()).href;
  await page.goto(`/#view=generate&model=tiny-q4f32_1&adapter=${encodeURIComponent(`url:${same}`)}`);
  await page.reload();
  await expect(page.getByTestId('consent-adapter')).toHaveCount(0);
  await loadTiny(page);
  await expect(page.getByTestId('adapter-active')).toContainText('· series adapter', { timeout: 60_000 });
});
