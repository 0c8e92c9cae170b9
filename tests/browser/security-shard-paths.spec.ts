import { test, expect } from '@playwright/test';
import { download, makeTestModel, openStorage, startShardServer, storeProblems, type ShardServer } from './helpers/shardServer.ts';

/**
 * Whoever edits a tensor cache or a manifest must not choose where shards come from: a shard named
 * by an absolute URL on another origin, or by ../, is refused with the reason before any fetch. A
 * second local server plays the attacker and records every request it gets.
 */

let site: ShardServer;
let attacker: ShardServer;

test.beforeEach(async ({ page }) => {
  attacker = await startShardServer({ 'evil.bin': new Uint8Array(16) });
  await openStorage(page);
});
test.afterEach(async () => {
  await site?.close();
  await attacker.close();
});

test('a tensor cache naming a shard on another origin, or by ../, is refused before any shard is fetched', async ({ page }) => {
  for (const bad of [`${attacker.url}evil.bin`, '../evil.bin', `//${new URL(attacker.url).host}/evil.bin`]) {
    const model = await makeTestModel('shard-path-test', [1000, 2000]);
    const cache = JSON.parse(new TextDecoder().decode(model.files.get('tensor-cache.json')!)) as { records: { dataPath: string }[] };
    cache.records[1].dataPath = bad;
    model.files.set('tensor-cache.json', new TextEncoder().encode(JSON.stringify(cache)));
    site = await startShardServer(model.files);
    const r = await download(page, model.manifest(site.url, { derive: true }), { retries: 0 });
    expect(r, bad).toMatchObject({ ok: false, name: 'ManifestError' });
    if (!r.ok) expect(r.message).toContain(`shard 1: dataPath ${JSON.stringify(bad)} must be a file name under the model folder`);
    // Nothing was fetched from the attacker, and no shard from the site either (refused before step 5).
    expect(attacker.log, bad).toEqual([]);
    expect(site.gets('params_shard_0.bin'), bad).toEqual([]);
    expect(await storeProblems(page, model.id)).toEqual([]);
    await site.close();
  }
});

test('a manifest whose file url points at another origin is refused; the same origin as its base is fetched', async ({ page }) => {
  const model = await makeTestModel('file-url-test', [1000]);
  site = await startShardServer(model.files);
  const manifest = model.manifest(site.url) as { files: { path: string; url?: string }[] };
  manifest.files[0].url = `${attacker.url}evil.bin`;
  // Refused when the manifest is read (the app reads every manifest with parseManifest before it downloads).
  const refused = await page.evaluate((m) => {
    try {
      (window as unknown as { S: typeof import('../../src/storage/index.ts') }).S.parseManifest(m, 'test manifest');
      return 'accepted';
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
  }, manifest);
  expect(refused).toContain('ManifestError: ');
  expect(refused).toContain(`not on the manifest's own origin (${new URL(site.url).origin})`);
  expect(attacker.log).toEqual([]);
  expect(site.log).toEqual([]);
  // The same file by an absolute URL on the base's own origin downloads.
  manifest.files[0].url = `${site.url}${manifest.files[0].path}`;
  expect(await download(page, manifest, { retries: 0 })).toEqual({ ok: true });
  expect(attacker.log).toEqual([]);
});
