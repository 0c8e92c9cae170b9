import { test, expect, type Page } from '@playwright/test';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startShardServer, type ShardServer } from './helpers/shardServer.ts';

/**
 * Dataset files from another origin: the size is capped while streaming (nothing cached over the
 * cap), and the sha256 is pinned on first download, so a later different body is refused.
 * Real IndexedDB in real Chromium; the other origin is a local server started here.
 */

const GSM8K = new Uint8Array(readFileSync(resolve(import.meta.dirname, '../../../shared/data/gsm8k/test.jsonl')));

type Store = typeof import('../../src/reasoning/datasetStore.ts');
type Outcome = { ok: true; cached: boolean; count: number; sha256: string } | { ok: false; name: string; message: string };

async function loadIn(page: Page, baseUrl: string, opts: { maxBytes?: number; forgetFirst?: boolean } = {}): Promise<Outcome> {
  return page.evaluate(
    async ({ baseUrl, opts }) => {
      const S = (await import(/* @vite-ignore */ '/src/reasoning/datasetStore.ts' as string)) as Store;
      if (opts.forgetFirst) await S.forgetDataset('gsm8k', baseUrl);
      try {
        const d = await S.loadDataset('gsm8k', { baseUrl, maxBytes: opts.maxBytes });
        return { ok: true as const, cached: d.cached, count: d.problems.length, sha256: d.sha256 };
      } catch (e) {
        return { ok: false as const, name: (e as Error).name, message: (e as Error).message };
      }
    },
    { baseUrl, opts },
  );
}

/** Whether the dataset store holds text for this dataset URL (IndexedDB, read directly). */
async function cachedText(page: Page, url: string): Promise<boolean> {
  return page.evaluate(
    (url) =>
      new Promise<boolean>((ok, fail) => {
        const open = indexedDB.open('reasoning-lab-datasets');
        open.onerror = () => fail(open.error);
        open.onsuccess = () => {
          const req = open.result.transaction('files').objectStore('files').get(url);
          req.onerror = () => fail(req.error);
          req.onsuccess = () => {
            open.result.close();
            ok(typeof req.result === 'string');
          };
        };
      }),
    url,
  );
}

let data: ShardServer;
test.afterEach(async () => {
  await data?.close();
});

test('a dataset file is pinned on first download: a later different body at the same URL is refused', async ({ page }) => {
  data = await startShardServer({ 'gsm8k/test.jsonl': GSM8K });
  await page.goto('/');
  const first = await loadIn(page, data.url);
  expect(first).toMatchObject({ ok: true, cached: false });
  expect(data.gets('gsm8k/test.jsonl')).toHaveLength(1);
  // The cache serves it next time; forgetting the cached text keeps the pin.
  expect(await loadIn(page, data.url)).toMatchObject({ ok: true, cached: true });
  // Same URL, same body: accepted again.
  expect(await loadIn(page, data.url, { forgetFirst: true })).toMatchObject({ ok: true, cached: false, sha256: (first as { sha256: string }).sha256 });
  // Same URL, one answer changed: refused with the reason, nothing cached.
  const changed = new TextDecoder().decode(GSM8K).replace('#### 18', '#### 19');
  data.files.set('gsm8k/test.jsonl', new TextEncoder().encode(changed));
  const r = await loadIn(page, data.url, { forgetFirst: true });
  expect(r).toMatchObject({ ok: false, name: 'DatasetDownloadError' });
  if (r.ok) return;
  expect(r.message).toContain(`Refused GSM8K from ${data.url}gsm8k/test.jsonl: the file there has changed since it was first downloaded`);
  expect(r.message).toContain(`sha256 ${(first as { sha256: string }).sha256.slice(0, 12)}`);
  expect(await cachedText(page, `${data.url}gsm8k/test.jsonl`)).toBe(false);
});

test('a dataset body over the cap is refused while streaming (an endless body stops), and nothing is cached', async ({ page }) => {
  // A server that streams without Content-Length and never ends the body, counting what it sent.
  let sent = 0;
  let requests = 0;
  const endless = createServer((req, res) => {
    requests++;
    res.writeHead(200, { 'Access-Control-Allow-Origin': '*', 'Content-Type': 'application/x-ndjson' });
    const line = Buffer.from('{"question": "x", "answer": "#### 1"}\n'.repeat(1000));
    const pump = () => {
      while (!res.destroyed && res.write(line)) sent += line.length;
      if (!res.destroyed) res.once('drain', pump);
    };
    res.on('close', () => res.destroy());
    pump();
  });
  await new Promise<void>((ok) => endless.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${(endless.address() as AddressInfo).port}/`;
  try {
    await page.goto('/');
    const r = await loadIn(page, base);
    expect(r).toMatchObject({ ok: false, name: 'DatasetDownloadError' });
    if (!r.ok)
      expect(r.message).toBe(
        `Refused GSM8K from ${base}gsm8k/test.jsonl: it is more than 32 MiB, over the 32 MiB a dataset file may have. Nothing was stored.`,
      );
    expect(requests).toBe(1);
    expect(await cachedText(page, `${base}gsm8k/test.jsonl`)).toBe(false);
    // The reader stopped: the server was not drained of an unbounded body (it sent the cap plus what the pipes buffer).
    expect(sent).toBeLessThan(256 * 1024 * 1024);
  } finally {
    endless.closeAllConnections();
    await new Promise<void>((ok) => endless.close(() => ok()));
  }
  // A sized body over a small cap. This server is another origin, where the fetch layer does not take
  // Content-Length as the decoded size (CORS hides Content-Encoding), so it is refused as it streams past the cap.
  data = await startShardServer({ 'gsm8k/test.jsonl': GSM8K });
  const small = await loadIn(page, data.url, { maxBytes: 1000 });
  expect(small).toMatchObject({ ok: false, name: 'DatasetDownloadError' });
  if (!small.ok)
    expect(small.message).toMatch(/^Refused GSM8K from .*: it is more than 1000 bytes, over the 1000 bytes a dataset file may have\. Nothing was stored\.$/);
  expect(await cachedText(page, `${data.url}gsm8k/test.jsonl`)).toBe(false);
});
