import { test, expect } from '@playwright/test';
import {
  download,
  makeTestModel,
  modelStatus,
  openStorage,
  settle,
  startShardServer,
  storedDigests,
  storeProblems,
  type ShardServer,
  type TestModel,
} from './helpers/shardServer.ts';

const CHUNK = 64 * 1024;

let model: TestModel;
let server: ShardServer;

test.beforeEach(async () => {
  model = await makeTestModel('tabs-model', [400_000, 300_000, 350_000, 200_000]);
  server = await startShardServer(model.files);
});
test.afterEach(async () => {
  await server.close();
});

async function expectAllStored(page: import('@playwright/test').Page) {
  const paths = [...model.files.keys()];
  const got = await storedDigests(page, model.id, paths);
  for (const p of paths) expect(got[p], p).toBe(model.sha256.get(p));
  expect(await storeProblems(page, model.id)).toEqual([]);
  expect((await modelStatus(page, model.manifest(server.url))).state).toBe('stored');
}

test('a page reload in the middle: complete shards are kept, the partial one resumes with Range', async ({ page }) => {
  await openStorage(page);
  const manifest = model.manifest(server.url);
  server.setRate(1_000_000);
  await download(page, manifest, { chunkSize: CHUNK, concurrency: 1 }, false);
  // Wait until two files are complete and the next shard has committed chunks.
  let complete: string[] = [];
  await expect
    .poll(
      async () => {
        const st = await modelStatus(page, manifest);
        complete = st.files.filter((f) => f.state === 'complete').map((f) => f.path);
        const partial = st.files.some((f) => f.state === 'partial' && f.bytesStored >= CHUNK);
        return complete.filter((p) => p.startsWith('params_shard')).length >= 1 && partial;
      },
      { timeout: 20_000, intervals: [50] },
    )
    .toBe(true);
  const before = await modelStatus(page, manifest);
  const partial = before.files.find((f) => f.state === 'partial' && f.bytesStored > 0)!;
  await page.reload();
  server.setRate(null);
  await openStorage(page);
  // After the reload nothing is downloading; the model is resumable.
  expect(await storeProblems(page, model.id)).toEqual([]);
  const after = await modelStatus(page, manifest);
  expect(after.state).toBe('partial');
  expect(after.files.find((f) => f.path === partial.path)!.bytesStored).toBeGreaterThanOrEqual(partial.bytesStored);
  const resumedFrom = after.files.find((f) => f.path === partial.path)!.bytesStored;

  expect(await download(page, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
  await expectAllStored(page);
  for (const p of complete) expect(server.gets(p), `${p} was complete before the reload`).toHaveLength(1);
  const ranges = server.gets(partial.path).map((g) => g.range);
  expect(ranges[ranges.length - 1]).toBe(`bytes=${resumedFrom}-`);
});

test("two tabs at once: the second waits, shows the first one's progress, and nothing is fetched twice", async ({ context }) => {
  const a = await context.newPage();
  const b = await context.newPage();
  await openStorage(a);
  await openStorage(b);
  const manifest = model.manifest(server.url);
  server.setRate(1_500_000);
  await download(a, manifest, { chunkSize: CHUNK, concurrency: 2 }, false);
  await expect.poll(() => server.log.filter((l) => l.method === 'GET').length).toBeGreaterThan(0);
  await download(b, manifest, { chunkSize: CHUNK, concurrency: 2 }, false);
  // Tab B sees 'downloading' state from the lock, and A's progress through the BroadcastChannel.
  await expect.poll(async () => (await modelStatus(b, manifest)).state).toBe('downloading');
  expect(await settle(a)).toEqual({ ok: true });
  expect(await settle(b)).toEqual({ ok: true });
  const seen = await b.evaluate(() => {
    const ev = (window as unknown as { events: { type: string; state?: string; remote?: boolean }[] }).events;
    return {
      waiting: ev.some((e) => e.type === 'state' && e.state === 'waiting' && !e.remote),
      remoteProgress: ev.filter((e) => e.type === 'progress' && e.remote).length,
      remoteStored: ev.some((e) => e.type === 'state' && e.state === 'stored' && e.remote),
    };
  });
  expect(seen.waiting).toBe(true);
  expect(seen.remoteProgress).toBeGreaterThan(0);
  expect(seen.remoteStored).toBe(true);
  for (const p of model.files.keys()) expect(server.gets(p), p).toHaveLength(1);
  await expectAllStored(a);
  await expectAllStored(b);
});

test('cancel from another tab', async ({ context }) => {
  const a = await context.newPage();
  const b = await context.newPage();
  await openStorage(a);
  await openStorage(b);
  const manifest = model.manifest(server.url);
  server.setRate(500_000);
  await download(a, manifest, { chunkSize: CHUNK, concurrency: 1 }, false);
  await expect.poll(() => server.log.filter((l) => l.method === 'GET').length).toBeGreaterThan(0);
  await b.evaluate((id) => (window as unknown as { S: typeof import('../../src/storage/index.ts') }).S.cancelDownload(id), model.id);
  expect(await settle(a)).toMatchObject({ ok: false, name: 'CancelledError' });
  server.setRate(null);
  expect(await download(b, manifest, { chunkSize: CHUNK })).toEqual({ ok: true });
  await expectAllStored(b);
});
