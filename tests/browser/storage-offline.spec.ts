import { test, expect } from '@playwright/test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStorage, startShardServer, storeProblems, type ShardServer } from './helpers/shardServer.ts';

/**
 * Download once, then run with the network cut: the tiny q4f32_1 model is served by a server this
 * test starts, downloaded into IndexedDB, and after the server is closed and the browser context
 * is offline, the engine worker loads it from IndexedDB ({kind: 'idb'}) and generates. The stored
 * bytes must give the same model: the same ids as the HTTP-loaded engine before going offline, and
 * the reference forward pass (read from IndexedDB too) as the oracle.
 */

const MODEL_DIR = join(import.meta.dirname, '../../models/tiny/q4f32_1');
const ID = 'tiny-offline-q4f32_1';
const PROMPT = 'Natalia sold clips to 48 of her friends.';
const NEW_TOKENS = 8;

type Win = Window & {
  S: typeof import('../../src/storage/index.ts');
  client: import('../../src/engine/client.ts').EngineClient;
  ref: typeof import('../../src/engine/reference.ts');
  tok: typeof import('../../src/formats/tokenizer.ts');
};

let server: ShardServer;

test.beforeEach(async () => {
  const files = new Map<string, Uint8Array>();
  for (const f of readdirSync(MODEL_DIR)) files.set(f, new Uint8Array(readFileSync(join(MODEL_DIR, f))));
  server = await startShardServer(files);
});
test.afterEach(async ({ context }) => {
  await context.setOffline(false);
  await server.close();
});

test('after a download, with the network cut, the model loads from IndexedDB and generates the same ids as over HTTP and as the reference', async ({
  page,
  context,
}) => {
  await openStorage(page);
  const base = server.url;

  // Online: load every module the offline run needs (the worker's IndexedDB reader and the lazily
  // imported tokenizer included), generate over HTTP, and download the model into IndexedDB.
  const online = await page.evaluate(
    async ({ base, id, prompt, n }) => {
      const w = window as unknown as Win;
      const { EngineClient } = await import(/* @vite-ignore */ '/src/engine/client.ts' as string);
      w.ref = await import(/* @vite-ignore */ '/src/engine/reference.ts' as string);
      w.tok = await import(/* @vite-ignore */ '/src/formats/tokenizer.ts' as string);
      w.client = new EngineClient();
      // A load of a model that is not stored imports the worker's IndexedDB reader and fails cleanly.
      const notStored = await w.client.load({ kind: 'idb', modelId: 'nothing-here' }).then(
        () => 'loaded?',
        (e: Error) => `${e.name}: ${e.message}`,
      );
      await w.client.load({ kind: 'http', baseUrl: base });
      const r = await w.client.generate(prompt, { maxNewTokens: n });
      const manifest = w.S.parseManifest(
        {
          schema: 1,
          id,
          name: 'Tiny offline test model',
          kind: 'base',
          baseUrl: base,
          quantization: 'q4f32_1',
          shardIndex: ['tensor-cache.json'],
          files: [
            { path: 'mlc-chat-config.json', size: null },
            { path: 'tokenizer.json', size: null },
            { path: 'tokenizer_config.json', size: null, optional: true },
          ],
        },
        'offline test manifest',
      );
      await w.S.downloadModel(manifest, { retryDelayMs: 10 });
      const status = await w.S.getModelStatus(manifest);
      // Warm the tokenizer's lazy import in this page (the bytes it parses are re-read offline below).
      await w.tok.loadTokenizer((await (await fetch(`${base}tokenizer.json`)).json()) as object);
      return { notStored, promptIds: r.promptIds, ids: r.ids, text: r.text, state: status.state, files: status.files.map((f) => f.path).sort() };
    },
    { base, id: ID, prompt: PROMPT, n: NEW_TOKENS },
  );
  expect(online.notStored).toMatch(/mlc-chat-config\.json not found/);
  expect(online.state).toBe('stored');
  expect(online.files).toEqual(['mlc-chat-config.json', 'params_shard_0.bin', 'tensor-cache.json', 'tokenizer.json', 'tokenizer_config.json']);
  expect(online.ids).toHaveLength(NEW_TOKENS);
  expect(await storeProblems(page, ID)).toEqual([]);

  // Cut the network: the model's server is gone and the browser is offline.
  await server.close();
  await context.setOffline(true);
  const netCheck = await page.evaluate(async (base) => {
    const r = await Promise.allSettled([fetch(`${base}mlc-chat-config.json`, { cache: 'no-store' }), fetch('/models/index.json', { cache: 'no-store' })]);
    return r.map((x) => x.status);
  }, base);
  expect(netCheck).toEqual(['rejected', 'rejected']);

  const offline = await page.evaluate(
    async ({ id, prompt, n }) => {
      const w = window as unknown as Win;
      const progress: number[] = [];
      const info = await w.client.load({ kind: 'idb', modelId: id }, { onProgress: (p) => progress.push(p.bytesLoaded) });
      const r = await w.client.generate(prompt, { maxNewTokens: n });
      // The tokenizer, read from IndexedDB (tokenizer.json through readJson), in the page.
      const src = w.S.idbModelSource(id);
      const tokJson = (await src.readJson('tokenizer.json')) as object;
      const tokCfg = (await src.readJson('tokenizer_config.json')) as object | null;
      const tokenizer = await w.tok.loadTokenizer(tokJson, tokCfg ?? undefined);
      // The oracle: the reference forward pass on the weights read back from IndexedDB.
      const reference = await w.ref.loadReferenceLlama(src);
      const want = reference.greedyGenerate(r.promptIds, n);
      // The models panel's view of the store works offline too (the catalog is unreachable).
      const listed = (await w.S.listModels(await w.S.allManifests())).filter((m) => m.id === id).map((m) => m.state);
      return {
        hasTokenizer: info.hasTokenizer,
        progress,
        promptIds: r.promptIds,
        ids: r.ids,
        text: r.text,
        pageTokenizerIds: tokenizer.encode(prompt),
        pageDecoded: tokenizer.decode(r.ids),
        reference: want,
        listed,
      };
    },
    { id: ID, prompt: PROMPT, n: NEW_TOKENS },
  );
  expect(offline.hasTokenizer).toBe(true);
  expect(offline.progress.length).toBeGreaterThan(0);
  expect(offline.promptIds).toEqual(online.promptIds);
  expect(offline.pageTokenizerIds).toEqual(online.promptIds);
  expect(offline.ids).toEqual(online.ids);
  expect(offline.ids).toEqual(offline.reference);
  expect(offline.text).toBe(online.text);
  expect(offline.pageDecoded).toBe(online.text);
  expect(offline.listed).toEqual(['stored']);
});
