import { test, expect, type Page } from '@playwright/test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startShardServer, type ShardServer } from './helpers/shardServer.ts';
import { parseMlcChatConfig } from '../../src/formats/mlcChatConfig.ts';
import { randomPeftAdapter } from '../../src/formats/randomAdapter.ts';
import { convertPeftAdapter } from '../../src/formats/adapterConversion.ts';

/**
 * The models panel (src/ui/components/ModelsPanel.svelte), mounted alone on
 * tests/browser/pages/models.html: download, progress, pause, resume, verify, delete, errors in the
 * storage errors' words, manifest import, and bringing a PEFT adapter (AdapterDrop).
 */

const TINY_DIR = join(import.meta.dirname, '../../models/tiny/q4f32_1');
const readTiny = (f: string) => new Uint8Array(readFileSync(join(TINY_DIR, f)));

async function openPanel(page: Page) {
  await page.goto('/tests/browser/pages/models.html');
  await expect(page.getByTestId('model-tiny-q4f32_1')).toBeVisible();
  await expect(page.getByTestId('storage-used')).toContainText('free');
}

const card = (page: Page, id: string) => page.getByTestId(`model-${id}`);

test('download the tiny model: progress, stored, verify, delete', async ({ page }) => {
  await openPanel(page);
  const c = card(page, 'tiny-q4f32_1');
  await expect(c.getByTestId('state')).toHaveText('Not stored');
  await c.getByRole('button', { name: 'Download' }).click();
  await expect(c.getByTestId('state')).toHaveText('Stored', { timeout: 60_000 });
  await expect(c).toHaveAttribute('data-state', 'stored');
  await expect(c.locator('.size')).toContainText('MB');
  await c.getByRole('button', { name: 'Verify' }).click();
  await expect(c.getByTestId('notice')).toHaveText('Every stored byte checks out (5 files verified against their SHA-256).');
  await c.getByRole('button', { name: 'Delete' }).click();
  await expect(c.getByTestId('state')).toHaveText('Not stored');
  await expect(c.getByRole('button', { name: 'Download' })).toBeVisible();
});

test.describe('a model from an imported manifest, on a slow server', () => {
  let server: ShardServer;
  test.beforeEach(async () => {
    const files = new Map<string, Uint8Array>();
    for (const f of readdirSync(TINY_DIR)) files.set(`m/${f}`, readTiny(f));
    const manifest = {
      schema: 1,
      id: 'tiny-slow',
      name: 'Tiny model on a slow server',
      kind: 'base',
      baseUrl: 'm/',
      quantization: 'q4f32_1',
      shardIndex: ['tensor-cache.json'],
      files: [
        { path: 'mlc-chat-config.json', size: null },
        { path: 'tokenizer.json', size: null },
      ],
    };
    files.set('slow.json', new TextEncoder().encode(JSON.stringify(manifest)));
    files.set('broken.json', new TextEncoder().encode(JSON.stringify({ ...manifest, id: 'Bad Id', files: 'none' })));
    server = await startShardServer(files);
  });
  test.afterEach(async () => server.close());

  test('import by URL; progress with bytes, file i of N, rate and time left; pause, resume; a server error in words', async ({ page }) => {
    await openPanel(page);
    // A manifest that does not follow the schema: every problem, as ManifestError words it.
    await page.getByText('Add a model from a manifest').click();
    await page.getByTestId('import-url').fill(`${server.url}broken.json`);
    await page.getByRole('button', { name: 'Add' }).click();
    await expect(page.getByTestId('panel-error')).toContainText(`The model manifest ${server.url}broken.json is not valid:`);
    await expect(page.getByTestId('panel-error')).toContainText('"files" must be a list');

    await page.getByTestId('import-url').fill(`${server.url}slow.json`);
    await page.getByRole('button', { name: 'Add' }).click();
    const c = card(page, 'tiny-slow');
    await expect(c.getByTestId('state')).toHaveText('Not stored');

    // An HTTP 500 on the shard: the HttpError's message, and the model is resumable.
    server.fault('m/params_shard_0.bin', { kind: 'status', status: 500 }, 3);
    await c.getByRole('button', { name: 'Download' }).click();
    await expect(c.getByTestId('error')).toHaveText(
      'params_shard_0.bin could not be downloaded: the server had a problem (HTTP 500). Try again later — press Resume.',
      { timeout: 30_000 },
    );
    await expect(c.getByTestId('state')).toHaveText('Partly downloaded');

    // Slow now: progress shows, then pause.
    server.setRate(150_000);
    await c.getByRole('button', { name: 'Resume' }).click();
    const progress = c.getByTestId('progress');
    await expect(progress).toContainText(/(kB|MB) of 3\.8 MB · file \d of 4/);
    await expect(progress).toContainText('/s');
    await expect(progress).toContainText(/about .* left/);
    await expect(c.locator('progress')).toBeVisible();
    await c.getByRole('button', { name: 'Pause' }).click();
    await expect(c.getByTestId('state')).toHaveText('Partly downloaded');
    await expect(c.getByTestId('notice')).toContainText('was cancelled. What was already downloaded is kept — press Resume to continue.');

    server.setRate(null);
    await c.getByRole('button', { name: 'Resume' }).click();
    await expect(c.getByTestId('state')).toHaveText('Stored', { timeout: 60_000 });
    await expect(c.getByTestId('error')).toHaveCount(0);
    // The panel's model is the engine's: loads from IndexedDB.
    const ok = await page.evaluate(async () => {
      const S = await import(/* @vite-ignore */ '/src/storage/index.ts' as string);
      const s = S.idbModelSource('tiny-slow');
      return ((await s.readJson('tensor-cache.json')) as { records: unknown[] }).records.length;
    });
    expect(ok).toBe(1);
    await c.getByRole('button', { name: 'Delete' }).click();
    await expect(c.getByTestId('state')).toHaveText('Not stored');
  });
});

test('a manifest file that is not JSON: the error in words', async ({ page }) => {
  await openPanel(page);
  await page.getByText('Add a model from a manifest').click();
  await page.getByTestId('import-file').setInputFiles({ name: 'mine.json', mimeType: 'application/json', buffer: Buffer.from('{ not json') });
  await expect(page.getByTestId('panel-error')).toContainText('The model manifest mine.json is not valid: it is not JSON');
});

test.describe('bring your own adapter', () => {
  const chat = JSON.parse(new TextDecoder().decode(readTiny('mlc-chat-config.json')));
  const cache = JSON.parse(new TextDecoder().decode(readTiny('tensor-cache.json')));
  const config = parseMlcChatConfig(chat).config;

  async function pick(page: Page, files: { name: string; bytes: Uint8Array }[]) {
    await page.getByTestId('adapter-base').selectOption('tiny-q4f32_1');
    await page
      .getByTestId('adapter-files')
      .setInputFiles(files.map((f) => ({ name: f.name, mimeType: 'application/octet-stream', buffer: Buffer.from(f.bytes) })));
  }
  const peftFiles = (p: { adapterConfig: object; adapterWeights: Uint8Array }) => [
    { name: 'adapter_config.json', bytes: new TextEncoder().encode(JSON.stringify(p.adapterConfig)) },
    { name: 'adapter_model.safetensors', bytes: p.adapterWeights },
  ];

  test('a random PEFT LoRA is converted, stored in IndexedDB, listed, and loads in the engine', async ({ page }) => {
    await openPanel(page);
    await page.getByTestId('adapter-base').selectOption('tiny-q4f32_1');
    await page.getByPlaceholder('from the folder name').fill('my-lora');
    await pick(page, peftFiles(randomPeftAdapter(config, 'lora', { seed: 5 })));
    await expect(page.getByTestId('adapter-status')).toContainText('Stored my-lora (lora, yours): lora on q_proj, k_proj, v_proj, up_proj, down_proj', {
      timeout: 30_000,
    });
    await expect(page.getByTestId('your-adapters')).toContainText('my-lora (lora, yours)');
    // Also listed among the models, as a LoRA for its base.
    const c = card(page, 'user-adapter-my-lora-tiny-q4f32_1');
    await expect(c.getByTestId('state')).toHaveText('Stored');
    await expect(c).toContainText('LoRA for tiny-q4f32_1');
    // The stored adapter is what the engine loads (idbModelSource serves adapter.json and shards).
    const r = await page.evaluate(async () => {
      const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
      const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
      const S = await import(/* @vite-ignore */ '/src/storage/index.ts' as string);
      const e = new Engine();
      await e.load(httpModelSource('/models/tiny/q4f32_1/'), { contextLength: 64 });
      const prompt = [1, 450, 4996, 17354, 1701];
      const base = (await e.generate(prompt, { maxNewTokens: 6 })).ids;
      const { id, name } = await e.loadAdapter(S.idbModelSource('user-adapter-my-lora-tiny-q4f32_1'), 'user-adapter-my-lora-tiny-q4f32_1');
      await e.useAdapter(id);
      const adapted = (await e.generate(prompt, { maxNewTokens: 6 })).ids;
      await e.unload();
      return { name, changed: JSON.stringify(base) !== JSON.stringify(adapted) };
    });
    expect(r).toEqual({ name: 'my-lora', changed: true });
    await page.getByTestId('your-adapters').getByRole('button', { name: 'Delete' }).click();
    await expect(page.getByTestId('your-adapters')).not.toContainText('my-lora');
  });

  test('a picked folder (webkitdirectory): named after the folder, stored and listed', async ({ page }) => {
    const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const root = await mkdtemp(join(tmpdir(), 'rl-adapter-'));
    const dir = join(root, 'math-series');
    await mkdir(dir);
    for (const f of peftFiles(randomPeftAdapter(config, 'series', { seed: 3 }))) await writeFile(join(dir, f.name), f.bytes);
    await writeFile(join(dir, 'README.md'), 'a series adapter');
    try {
      await openPanel(page);
      await page.getByTestId('adapter-base').selectOption('tiny-q4f32_1');
      await page.getByTestId('adapter-folder').setInputFiles(dir);
      await expect(page.getByTestId('adapter-status')).toContainText('Stored math-series (series, yours): series on gate_proj, up_proj', { timeout: 30_000 });
      await expect(page.getByTestId('your-adapters')).toContainText('math-series (series, yours)');
      await expect(card(page, 'user-adapter-math-series-tiny-q4f32_1').getByTestId('state')).toHaveText('Stored');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a mismatched base, a missing file and a malformed config: clear errors, nothing stored', async ({ page }) => {
    await openPanel(page);
    // Made for a wider model than the selected base: the converter's own message.
    const other = { ...config, hiddenSize: 128, headDim: 32 };
    const wrong = randomPeftAdapter(other, 'parallel', { seed: 2 });
    const want = await convertPeftAdapter({
      adapterConfig: wrong.adapterConfig,
      adapterWeights: wrong.adapterWeights,
      baseChatConfig: chat,
      baseTensorCache: cache,
    }).then(
      () => 'converted?',
      (e: Error) => e.message,
    );
    expect(want).toMatch(/mismatch|shape/i);
    await pick(page, peftFiles(wrong));
    await expect(page.getByTestId('adapter-status')).toHaveText(want);

    await pick(page, [peftFiles(randomPeftAdapter(config, 'series'))[0]]);
    await expect(page.getByTestId('adapter-status')).toHaveText(
      'A PEFT adapter needs adapter_config.json and adapter_model.safetensors; missing: adapter_model.safetensors.',
    );

    const ok = randomPeftAdapter(config, 'series');
    await pick(page, [{ name: 'adapter_config.json', bytes: new TextEncoder().encode('{"peft_type": ') }, peftFiles(ok)[1]]);
    await expect(page.getByTestId('adapter-status')).toContainText('adapter_config.json is not valid JSON');
    await expect(page.getByTestId('your-adapters').locator('li')).toHaveCount(0);
    await expect(page.getByTestId('adapter-status')).toHaveAttribute('role', 'alert');
  });
});
