import { test, expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startStaticServer, type StaticServer } from './helpers/staticServer.ts';
import {
  download,
  INDEX_HTML,
  makeTestModel,
  modelStatus,
  openStorage,
  startShardServer,
  storedDigests,
  storeProblems,
  type ShardServer,
  type TestModel,
} from './helpers/shardServer.ts';

/**
 * Every host read the same way (src/formats/fetchFile.ts): downloads, the engine's HTTP source, the
 * catalog and datasets against a real local server that does what hosts do: an index page for
 * every unknown path (SPA fallback), close-delimited bodies cut short, gzip, Content-Length larger
 * than the body, and a redirect to another origin. Each case was wrong before the fetch layer.
 */

const CHUNK = 64 * 1024;
const SIZES = [300_000, 250_001];

let model: TestModel;
let servers: ShardServer[] = [];

async function serve(files: Map<string, Uint8Array>, spa = true): Promise<ShardServer> {
  const s = await startShardServer(files, spa ? { spaFallback: INDEX_HTML } : {});
  servers.push(s);
  return s;
}

test.beforeEach(async ({ page }) => {
  model = await makeTestModel('hosts-model', SIZES);
  await openStorage(page);
});
test.afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

type Manifest = { files: { path: string; size: number | null; sha256?: string; optional?: boolean }[]; shardIndex?: string[] };

async function expectStored(page: Page, paths: string[]) {
  const got = await storedDigests(page, model.id, paths);
  for (const p of paths) expect(got[p], p).toBe(model.sha256.get(p));
  expect(await storeProblems(page, model.id)).toEqual([]);
}

test.describe('SPA fallback (an index page with 200 for every unknown path)', () => {
  test('the downloader falls back from tensor-cache.json to ndarray-cache.json', async ({ page }) => {
    const files = new Map(model.files);
    const cache = files.get('tensor-cache.json')!;
    files.delete('tensor-cache.json');
    files.set('ndarray-cache.json', cache);
    const server = await serve(files);
    const manifest = model.manifest(server.url, { derive: true }) as Manifest;
    manifest.shardIndex = ['tensor-cache.json', 'ndarray-cache.json'];
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    expect(server.gets('tensor-cache.json').map((g) => g.status)).toEqual([200]); // the index page, seen through
    const got = await storedDigests(page, model.id, ['ndarray-cache.json', ...model.shardPaths]);
    expect(got['ndarray-cache.json']).toBe(model.sha256.get('tensor-cache.json'));
    for (const p of model.shardPaths) expect(got[p], p).toBe(model.sha256.get(p));
    expect(await storeProblems(page, model.id)).toEqual([]);
  });

  test('an optional file the host lacks is skipped, never stored as the index page', async ({ page }) => {
    const server = await serve(model.files);
    const manifest = model.manifest(server.url) as Manifest;
    manifest.files.push({ path: 'tokenizer.json', size: null, optional: true });
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    await expectStored(page, [...model.files.keys()]);
    const read = await page.evaluate(async (id) => {
      const S = (window as unknown as { S: typeof import('../../src/storage/index.ts') }).S;
      return { json: await S.idbModelSource(id).readJson('tokenizer.json'), size: await S.idbModelSource(id).fileSize('tokenizer.json') };
    }, model.id);
    expect(read.json).toBeNull();
    expect((await modelStatus(page, manifest)).state).toBe('stored');
  });

  test('a missing shard is reported as missing (not "Connection lost … press Resume"), and nothing of it is stored', async ({ page }) => {
    const files = new Map(model.files);
    files.delete('params_shard_1.bin');
    const server = await serve(files);
    const manifest = model.manifest(server.url);
    const r = await download(page, manifest, { chunkSize: CHUNK, retries: 2 });
    expect(r).toMatchObject({ ok: false, name: 'FileNotFoundError' });
    if (!r.ok)
      expect(r.message).toBe(
        `params_shard_1.bin was not found at ${server.url}params_shard_1.bin: the server answered with a web page (HTML) instead of the file, as single-page-app hosts do for a missing file.`,
      );
    expect(server.gets('params_shard_1.bin')).toHaveLength(1); // not retried: missing is not a network problem
    expect(await storedDigests(page, model.id, ['params_shard_1.bin'])).toEqual({ 'params_shard_1.bin': expect.stringContaining('NotStoredError') });
    expect(await storeProblems(page, model.id)).toEqual([]);
    // A required file without a size the host lacks: the same.
    const m2 = model.manifest(server.url) as Manifest;
    m2.files = m2.files.filter((f) => f.path !== 'params_shard_1.bin');
    m2.files.push({ path: 'tokenizer.json', size: null });
    expect(await download(page, m2, { chunkSize: CHUNK })).toMatchObject({ ok: false, name: 'FileNotFoundError' });
    expect(await storeProblems(page, model.id)).toEqual([]);
  });

  test("the engine's HTTP source: tensor-cache.json falls back to ndarray-cache.json, a model without tokenizer.json or adapter.json reads as not found", async ({
    page,
  }) => {
    // A real converted model (the tiny demo), its tensor cache under the older name, no tokenizer.
    const dir = resolve('models/tiny/q4f32_1');
    const files = new Map(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(resolve(dir, f)))] as const));
    files.set('ndarray-cache.json', files.get('tensor-cache.json')!);
    files.delete('tensor-cache.json');
    files.delete('tokenizer.json');
    files.delete('tokenizer_config.json');
    const server = await serve(files);
    const got = await page.evaluate(async (base) => {
      const F = (await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string)) as typeof import('../../src/formats/modelFiles.ts');
      const src = F.httpModelSource(base);
      const info = await F.loadModelManifest(src);
      const shard = await src.readShard(info.cache.records[0].dataPath);
      const missingShard = await src.readShard('params_shard_9.bin').then(
        () => 'read',
        (e: Error) => `${e.name}: ${e.message}`,
      );
      return {
        records: info.cache.records.length,
        shardBytes: shard.byteLength,
        tokenizer: info.tokenizerJson,
        adapter: await src.readJson('adapter.json'),
        missingShard,
      };
    }, server.url);
    const cache = JSON.parse(new TextDecoder().decode(files.get('ndarray-cache.json'))) as { records: { nbytes: number }[] };
    expect(got).toEqual({
      records: cache.records.length,
      shardBytes: cache.records[0].nbytes,
      tokenizer: null,
      adapter: null,
      missingShard: `ModelFilesError: params_shard_9.bin not found at ${server.url}params_shard_9.bin`,
    });
  });

  test('a missing models/index.json is "not found", not a network error', async ({ page }) => {
    const server = await serve(new Map());
    const r = await page.evaluate(async (url) => {
      const S = (window as unknown as { S: typeof import('../../src/storage/index.ts') }).S;
      return S.builtinManifests(url).then(
        (m) => `found ${m.length}`,
        (e: Error) => `${e.name}: ${e.message}`,
      );
    }, `${server.url}models/index.json`);
    expect(r).toBe(
      `FileNotFoundError: models/index.json was not found at ${server.url}models/index.json: the server answered with a web page (HTML) instead of the file, as single-page-app hosts do for a missing file.`,
    );
  });

  test('a dataset URL answered with the index page is "not found" and never cached as the dataset', async ({ page }) => {
    const files = new Map<string, Uint8Array>();
    const server = await serve(files);
    const load = () =>
      page.evaluate(async (base) => {
        const D = (await import(/* @vite-ignore */ '/src/reasoning/datasetStore.ts' as string)) as typeof import('../../src/reasoning/datasetStore.ts');
        return D.loadDatasetText('gsm8k', { baseUrl: base }).then(
          (r) => ({ ok: true as const, cached: r.cached, length: r.text.length, start: r.text.slice(0, 20) }),
          (e: Error) => ({ ok: false as const, name: e.name, message: e.message }),
        );
      }, `${server.url}data`);
    expect(await load()).toEqual({
      ok: false,
      name: 'DatasetDownloadError',
      message: `Could not download GSM8K: it was not found at ${server.url}data/gsm8k/test.jsonl (the server answered with a web page instead). Check the data URL.`,
    });
    // The file appears on the host: the next load fetches it (nothing wrong was cached).
    const text = readFileSync(resolve('../shared/data/gsm8k/test.jsonl'));
    files.set('data/gsm8k/test.jsonl', new Uint8Array(text));
    expect(await load()).toEqual({ ok: true, cached: false, length: text.toString('utf8').length, start: text.toString('utf8').slice(0, 20) });
    expect(await load()).toMatchObject({ ok: true, cached: true });
  });
});

test.describe('bodies cut short, gzip, Content-Length', () => {
  test('a close-delimited body cut short: a small JSON file with no size is not stored truncated; the next attempt completes', async ({ page }) => {
    const server = await serve(model.files, false);
    const manifest = model.manifest(server.url) as Manifest;
    const cfg = manifest.files.find((f) => f.path === 'mlc-chat-config.json')!;
    cfg.size = null;
    delete cfg.sha256;
    server.fault('mlc-chat-config.json', { kind: 'close-delimited', afterBytes: 12 });
    const r = await download(page, manifest, { chunkSize: CHUNK, retries: 0 });
    expect(r).toMatchObject({ ok: false, name: 'BrokenFileError' });
    if (!r.ok) expect(r.message).toMatch(/^mlc-chat-config\.json from .* arrived broken \(not valid JSON/);
    expect(await storedDigests(page, model.id, ['mlc-chat-config.json'])).toEqual({ 'mlc-chat-config.json': expect.stringContaining('NotStoredError') });
    expect(await storeProblems(page, model.id)).toEqual([]);
    // Whole, close-delimited: stored and pinned.
    server.fault('mlc-chat-config.json', { kind: 'close-delimited' });
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    await expectStored(page, [...model.files.keys()]);
  });

  test('a close-delimited shard cut short of its manifest size: resumable, then complete', async ({ page }) => {
    const server = await serve(model.files, false);
    const manifest = model.manifest(server.url);
    server.fault('params_shard_0.bin', { kind: 'close-delimited', afterBytes: 200_000 });
    expect(await download(page, manifest, { chunkSize: CHUNK, retries: 0, concurrency: 1 })).toMatchObject({ ok: false, name: 'NetworkError' });
    expect(await storeProblems(page, model.id)).toEqual([]);
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    await expectStored(page, [...model.files.keys()]);
    expect(server.gets('params_shard_0.bin').map((g) => g.range)).toEqual([null, `bytes=${3 * CHUNK}-`]);
  });

  test('gzip: Content-Length counts the compressed bytes; files with and without a size are stored whole', async ({ page }) => {
    const server = await serve(model.files, false);
    const manifest = model.manifest(server.url) as Manifest;
    for (const f of manifest.files) if (f.path.endsWith('.json')) f.size = null;
    for (const p of model.files.keys()) server.fault(p, { kind: 'gzip' });
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    await expectStored(page, [...model.files.keys()]);
  });

  test('gzip cut short: a JSON file with no size is not stored truncated', async ({ page }) => {
    const server = await serve(model.files, false);
    const manifest = model.manifest(server.url) as Manifest;
    const tc = manifest.files.find((f) => f.path === 'mlc-chat-config.json')!;
    tc.size = null;
    delete tc.sha256;
    server.fault('mlc-chat-config.json', { kind: 'gzip', closeDelimited: true, afterBytes: 20 });
    const r = await download(page, manifest, { chunkSize: CHUNK, retries: 0 });
    expect(r.ok).toBe(false);
    expect(await storedDigests(page, model.id, ['mlc-chat-config.json'])).toEqual({ 'mlc-chat-config.json': expect.stringContaining('NotStoredError') });
    expect(await storeProblems(page, model.id)).toEqual([]);
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    await expectStored(page, [...model.files.keys()]);
  });

  test('a host whose file is shorter than the manifest says (whole by its own Content-Length): discarded as corrupt, not "Connection lost" forever', async ({
    page,
  }) => {
    const files = new Map(model.files);
    const server = await serve(files, false);
    const manifest = model.manifest(server.url);
    files.set('params_shard_1.bin', model.files.get('params_shard_1.bin')!.subarray(0, 100_000));
    const r = await download(page, manifest, { chunkSize: CHUNK, retries: 2, concurrency: 1 });
    expect(r).toMatchObject({ ok: false, name: 'IntegrityError' });
    if (!r.ok) expect(r.message).toBe('params_shard_1.bin is corrupted (size mismatch); it will be downloaded again when you press Resume.');
    expect(server.gets('params_shard_1.bin')).toHaveLength(1); // no retry can finish it
    expect(await storedDigests(page, model.id, ['params_shard_1.bin'])).toEqual({ 'params_shard_1.bin': expect.stringContaining('NotStoredError') });
    expect(await storeProblems(page, model.id)).toEqual([]);
    files.set('params_shard_1.bin', model.files.get('params_shard_1.bin')!);
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    await expectStored(page, [...model.files.keys()]);
  });

  test('Content-Length larger than the body, on a JSON file with no size: resumable, nothing pinned', async ({ page }) => {
    const server = await serve(model.files, false);
    const manifest = model.manifest(server.url) as Manifest;
    const cfg = manifest.files.find((f) => f.path === 'mlc-chat-config.json')!;
    cfg.size = null;
    delete cfg.sha256;
    server.fault('mlc-chat-config.json', { kind: 'drop', afterBytes: 10 });
    expect(await download(page, manifest, { chunkSize: CHUNK, retries: 0 })).toMatchObject({ ok: false, name: 'NetworkError' });
    expect(await storedDigests(page, model.id, ['mlc-chat-config.json'])).toEqual({ 'mlc-chat-config.json': expect.stringContaining('NotStoredError') });
    expect(await storeProblems(page, model.id)).toEqual([]);
    expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
    await expectStored(page, [...model.files.keys()]);
  });
});

test('a redirect to another origin (the hub to its CDN) is followed, a resumed Range request too', async ({ page }) => {
  const cdn = await serve(model.files, false);
  const hub = await serve(new Map(), false);
  hub.redirectTo(cdn.url);
  cdn.fault('params_shard_1.bin', { kind: 'drop', afterBytes: 150_000 });
  expect(await download(page, model.manifest(hub.url), { chunkSize: CHUNK, retries: 2 })).toEqual({ ok: true });
  await expectStored(page, [...model.files.keys()]);
  expect(hub.gets('params_shard_1.bin').map((g) => [g.status, g.range])).toEqual([
    [302, null],
    [302, `bytes=${2 * CHUNK}-`],
  ]);
  expect(cdn.gets('params_shard_1.bin').map((g) => [g.status, g.range])).toEqual([
    [200, null],
    [206, `bytes=${2 * CHUNK}-`],
  ]);
});

test('offline: the error names the host and says so; Resume then completes', async ({ page, context }) => {
  const server = await serve(model.files, false);
  const manifest = model.manifest(server.url);
  const host = new URL(server.url).host;
  await context.setOffline(true);
  const r = await download(page, manifest, { chunkSize: CHUNK, retries: 0, concurrency: 1 });
  expect(r).toMatchObject({ ok: false, name: 'NetworkError' });
  if (!r.ok)
    expect(r.message).toMatch(
      new RegExp(
        `^Could not reach ${host.replace(/\./g, '\\.')} to download [\\w.-]+: you appear to be offline\\. What was already downloaded is kept — press Retry when you are back online\\.$`,
      ),
    );
  await context.setOffline(false);
  expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
  await expectStored(page, [...model.files.keys()]);
});

test('the Models view: the size before download, an offline attempt names the host and offers Retry, which then completes', async ({ page, context }) => {
  const dir = resolve('models/tiny/q4f32_1');
  const files = new Map<string, Uint8Array>();
  for (const f of readdirSync(dir)) files.set(`m/${f}`, new Uint8Array(readFileSync(resolve(dir, f))));
  const total = [...files.values()].reduce((a, b) => a + b.length, 0);
  const manifest = {
    schema: 1,
    id: 'tiny-far',
    name: 'Tiny model on a far host',
    kind: 'base',
    baseUrl: 'm/',
    quantization: 'q4f32_1',
    approxBytes: total,
    shardIndex: ['tensor-cache.json'],
    files: [
      { path: 'mlc-chat-config.json', size: null },
      { path: 'tokenizer.json', size: null },
      { path: 'tokenizer_config.json', size: null, optional: true },
    ],
  };
  files.set('far.json', new TextEncoder().encode(JSON.stringify(manifest)));
  const server = await serve(files);
  await page.goto('/tests/browser/pages/models.html');
  await expect(page.getByTestId('storage-used')).toContainText('free');
  await page.getByText('Add a model from a manifest').click();
  await page.getByTestId('import-url').fill(`${server.url}far.json`);
  await page.getByRole('button', { name: 'Add' }).click();
  const c = page.getByTestId('model-tiny-far');
  await expect(c.getByTestId('state')).toHaveText('Not stored');
  await expect(c.locator('.size')).toHaveText(`about ${(total / 1e6).toFixed(1)} MB`);

  await context.setOffline(true);
  await c.getByRole('button', { name: 'Download' }).click();
  await expect(c.getByTestId('error')).toHaveText(
    `Could not reach ${new URL(server.url).host} to download tensor-cache.json: you appear to be offline. What was already downloaded is kept — press Retry when you are back online.`,
  );
  await context.setOffline(false);
  await c.getByRole('button', { name: 'Retry' }).click();
  await expect(c.getByTestId('state')).toHaveText('Stored', { timeout: 60_000 });
  await expect(c.getByTestId('error')).toHaveCount(0);
});

test.describe('the service worker on an SPA host (the built site)', () => {
  let outDir: string;
  let site: StaticServer;
  test.beforeAll(async () => {
    test.setTimeout(180_000);
    outDir = mkdtempSync(join(tmpdir(), 'rl-spa-site-'));
    execFileSync(resolve('node_modules/.bin/vite'), ['build', '--outDir', outDir, '--emptyOutDir', '--logLevel', 'error'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    site = await startStaticServer({ '/lab/': outDir }, { spaFallback: '/lab/' });
  });
  test.afterAll(async () => {
    await site?.close();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  test('never caches the index page as a manifest, a dataset or an assets/ chunk', async ({ page }) => {
    const base = `${site.url}lab/`;
    await page.goto(base);
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
    const missing = [`${base}models/not-a-model.json`, `${base}data/gsm8k/not-a-dataset.jsonl`, `${base}assets/not-a-chunk-0123.js`];
    const seen = await page.evaluate(async (urls) => {
      const answers = [];
      for (const u of urls) {
        const r = await fetch(u);
        answers.push({ status: r.status, type: r.headers.get('Content-Type') });
        await r.text();
      }
      // The service worker stores after answering: give it a moment, then list every cache.
      await new Promise((ok) => setTimeout(ok, 1000));
      const cached: string[] = [];
      for (const name of await caches.keys()) for (const r of await (await caches.open(name)).keys()) cached.push(r.url);
      return { answers, cached };
    }, missing);
    // The host answered each with its index page, and the app's fetch layer reads that as missing …
    for (const a of seen.answers) expect(a).toEqual({ status: 200, type: 'text/html; charset=utf-8' });
    // … and the service worker kept none of them (it keeps the shell and the real catalog).
    expect(seen.cached.filter((u) => missing.includes(u))).toEqual([]);
    expect(seen.cached).toContain(`${base}index.html`);
    expect(seen.cached).toContain(`${base}models/index.json`);
  });
});
