import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startStaticServer, type StaticServer } from './helpers/staticServer.ts';

/**
 * Offline cold start of the built site (service worker, src/sw/): built once with `vite build`,
 * served under a sub-path by a plain static server, opened, the tiny model downloaded through the Models tab and a
 * GSM8K problem opened; then the server is shut and the browser offline, and a NEW page (and a
 * reload of it) must start from the service worker's cache, load the stored model from IndexedDB
 * in the engine worker, generate, and show the same GSM8K problem (dataset from IndexedDB).
 */

const ROOT = resolve(import.meta.dirname, '../..');
const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? join(ROOT, '../shared/data'));
const MODEL_ID = 'tiny-q4f32_1';

let outDir: string;
let server: StaticServer;

test.beforeAll(async () => {
  test.setTimeout(120_000);
  if (!existsSync(join(ROOT, 'models/tiny/q4f32_1/params_shard_0.bin'))) {
    throw new Error('models/tiny is missing: run `npm run make-tiny-model` first.');
  }
  outDir = mkdtempSync(join(tmpdir(), 'rl-offline-site-'));
  execFileSync(join(ROOT, 'node_modules/.bin/vite'), ['build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'error'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  // Under a sub-path, as on a static host serving several sites: relative URLs and scope throughout.
  server = await startStaticServer({ '/lab/': outDir, '/lab/data/': DATA_DIR });
});

test.afterAll(async () => {
  await server?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

test('the build ships sw.js, the shell and the model catalog', () => {
  const files = readdirSync(outDir);
  expect(files).toEqual(expect.arrayContaining(['index.html', 'sw.js', 'assets', 'models']));
  expect(readdirSync(join(outDir, 'assets')).some((f) => /^worker-.*\.js$/.test(f))).toBe(true);
  expect(existsSync(join(outDir, 'models/index.json'))).toBe(true);
});

test('opened with the network off, the built app starts from the service worker, loads the stored model from IndexedDB, generates, and shows a GSM8K problem', async ({
  context,
  page,
}) => {
  test.setTimeout(150_000);
  // Datasets from the same static host (data/ beside the app), as a classroom mirror would serve them.
  const site = `${server.url}lab/`;
  const app = `${site}?data=data/`;

  // Online, first visit: the service worker installs (precaching the shell) and takes the page.
  await page.goto(`${app}#view=models`);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });

  // Download the tiny model into IndexedDB through the Models tab.
  const card = page.getByTestId(`model-${MODEL_ID}`);
  await card.getByRole('button', { name: 'Download' }).click();
  await expect(card.getByTestId('state')).toHaveText('Stored', { timeout: 60_000 });

  // Open a GSM8K problem once online: the dataset is downloaded and kept in IndexedDB.
  await page.goto(`${app}#view=lab&dataset=gsm8k&problem=3`);
  const question = (await page.getByTestId('question').textContent())!;
  expect(question.length).toBeGreaterThan(20);

  // Flaky Wi-Fi: the host accepts requests and never answers. The page still starts, from the cache,
  // and the stored model is listed (the catalog from the cache after its 4 s wait).
  server.stall(true);
  const hanging = await context.newPage();
  await hanging.goto(`${app}#view=models`, { timeout: 20_000 });
  await expect(hanging.getByTestId(`model-${MODEL_ID}`).getByTestId('state')).toHaveText('Stored', { timeout: 20_000 });
  await hanging.close();

  // The network is gone: the host is down and the browser is offline.
  await server.close();
  await context.setOffline(true);

  // A new page, opened cold.
  const offline = await context.newPage();
  await offline.goto(`${app}#view=generate&model=${MODEL_ID}`);
  expect(await offline.evaluate(async () => (await navigator.serviceWorker.ready).scope)).toBe(site);
  expect(await offline.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
  await offline.getByRole('combobox', { name: 'Model' }).selectOption(MODEL_ID);
  await offline.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(offline.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 60_000 });
  await offline.getByTestId('gen-prompt').fill('Q: What is 2 + 3?\nA:');
  await offline.getByLabel('Max new tokens').fill('4');
  await offline.getByRole('button', { name: 'Generate', exact: true }).click();
  await expect(offline.getByTestId('gen-stats')).toContainText(/^4 tokens/, { timeout: 60_000 });
  expect((await offline.getByTestId('gen-output').textContent())!.length).toBeGreaterThan(0);

  // Reloaded, still offline: the shell again, and the GSM8K problem from the IndexedDB cache.
  await offline.reload();
  await offline.goto(`${app}#view=lab&dataset=gsm8k&problem=3`);
  await expect(offline.getByTestId('question')).toHaveText(question);

  const stored = await offline.evaluate(async () => {
    // The dataset's text as datasetStore.ts keeps it (idb-keyval store, keyed by URL).
    const db = await new Promise<IDBDatabase>((ok, fail) => {
      const r = indexedDB.open('reasoning-lab-datasets');
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
    const keys = await new Promise<IDBValidKey[]>((ok, fail) => {
      const r = db.transaction('files').objectStore('files').getAllKeys();
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
    db.close();
    const cached: string[] = [];
    for (const name of await caches.keys()) for (const r of await (await caches.open(name)).keys()) cached.push(r.url);
    return { datasetKeys: keys.map(String), cached };
  });
  expect(stored.datasetKeys).toContain(`${site}data/gsm8k/test.jsonl`);
  // The Cache API holds the shell, the engine worker chunk and the catalog, and no model file.
  expect(stored.cached).toContain(`${site}index.html`);
  expect(stored.cached.some((u) => /\/assets\/worker-[^/]+\.js$/.test(u))).toBe(true);
  expect(stored.cached).toContain(`${site}models/index.json`);
  expect(stored.cached.filter((u) => u.includes('/models/tiny/') || u.endsWith('.bin'))).toEqual([]);
});

test('the dev server registers no service worker (it would cache dev modules)', async ({ page }) => {
  await page.goto('./#view=models');
  await expect(page.getByRole('tab', { name: 'Models' })).toBeVisible();
  await page.waitForLoadState('load');
  expect(await page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length)).toBe(0);
});
