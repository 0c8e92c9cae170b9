import { test, expect, type Page } from '@playwright/test';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { unzipSync } from 'fflate';
import { convertCheckpoint } from '../../src/cli/convert.ts';
import { writeHfCheckpoint } from '../../src/cli/hfCheckpoint.ts';
import { TINY_SHAPE, tinyHfConfig, tinyHfTensors } from '../../src/cli/makeTinyModel.ts';
import { parseSafetensorsHeader } from '../../src/formats/safetensors.ts';
import { startFakeHub, type FakeHub } from './helpers/fakeHub.ts';

/**
 * "Add from Hugging Face" in the Models view (HfConvert → stores/hfConvert → storage/convertWorker
 * → storage/hfConvert, reading through @huggingface/hub) against a local server that behaves like
 * the hub: its tree API, resolve URLs answering 302 to a CDN on another port, Range and ETag, a
 * sharded checkpoint with model.safetensors.index.json, a gated repository.
 *
 * The checkpoints are generated with 7B's tensor names (tiny dims, the tiny model's generator) and
 * the expected bytes come from `npm run convert`'s convertCheckpoint run here on the same files.
 * All six pairs of source dtype (F16, BF16, F32) and quantization (q4f16_1, q4f32_1) convert here
 * and store the CLI's bytes. Three of them also take the three ways in: F16 by repo id in the form
 * (sharded, reloaded midway), BF16 from the catalog row of Llama-2-7B, F32 from a picked folder.
 */

test.describe.configure({ timeout: 300_000 });

const ROOT = resolve(import.meta.dirname, '../..');
const SHARD_BYTES = 2 ** 20; // small shards: the tiny model spans several, some out of band
const BLOCK_BYTES = 2 ** 20;
type Dtype = 'F16' | 'BF16' | 'F32';
const REPOS: { repo: string; dtype: Dtype; shards: number; tokenizer: boolean }[] = [
  { repo: 'test-user/llama-f16', dtype: 'F16', shards: 2, tokenizer: false },
  { repo: 'test-user/llama-bf16', dtype: 'BF16', shards: 1, tokenizer: true },
  { repo: 'test-user/llama-f32', dtype: 'F32', shards: 1, tokenizer: true },
];
const TOKENIZER = join(ROOT, 'models/tiny/q4f32_1/tokenizer.json');

let dir: string;
let hub: FakeHub;
const hubFiles = new Map<string, Map<string, Uint8Array>>();
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** `npm run convert`'s output for a repo's checkpoint: file → sha256 (shards and tensor-cache.json). */
async function cliConversion(repo: string, quant: 'q4f16_1' | 'q4f32_1'): Promise<{ shards: Record<string, string>; cache: unknown }> {
  const out = join(dir, `cli-${repo.replace('/', '_')}-${quant}`);
  await convertCheckpoint({ inDir: join(dir, repo.replace('/', '_')), outDir: out, quant, shardBytes: SHARD_BYTES });
  const shards: Record<string, string> = {};
  for (const f of readdirSync(out).filter((f) => f.endsWith('.bin'))) shards[f] = sha(readFileSync(join(out, f)));
  return { shards, cache: JSON.parse(readFileSync(join(out, 'tensor-cache.json'), 'utf8')) };
}

test.beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rl-hf-convert-'));
  for (const r of REPOS) {
    const d = join(dir, r.repo.replace('/', '_'));
    await writeHfCheckpoint(d, {
      config: { ...tinyHfConfig(TINY_SHAPE), torch_dtype: r.dtype === 'F32' ? 'float32' : r.dtype === 'F16' ? 'float16' : 'bfloat16' },
      tensors: tinyHfTensors(TINY_SHAPE, 77, r.dtype),
      shards: r.shards,
      copyFiles: r.tokenizer ? [TOKENIZER] : [],
    });
    hubFiles.set(r.repo, new Map(readdirSync(d).map((f) => [f, new Uint8Array(readFileSync(join(d, f)))])));
  }
  hubFiles.set('test-user/gated-llama', hubFiles.get('test-user/llama-bf16')!);
  // The catalog's Llama-2-7B entries convert from this repo id: here it holds the tiny BF16 checkpoint.
  hubFiles.set('NousResearch/Llama-2-7b-hf', hubFiles.get('test-user/llama-bf16')!);
  hubFiles.set(
    'test-user/not-llama',
    new Map([['config.json', new TextEncoder().encode(JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }))]]),
  );
  hubFiles.set('test-user/no-weights', new Map([['config.json', new TextEncoder().encode(JSON.stringify(tinyHfConfig(TINY_SHAPE)))]]));
  hub = await startFakeHub(hubFiles, { gated: new Map([['test-user/gated-llama', 'hf_test_token']]) });
});
test.afterAll(async () => {
  await hub?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const storedId = (repo: string, quant: string) => `hf-${repo.toLowerCase().replace('/', '-')}-${quant.replace('_', '-')}`;

/** Small shards and read blocks for the store (set again after every page load), so the tiny model spans several. */
async function useSmallShards(page: Page) {
  await page.evaluate(
    async ({ shardBytes, blockBytes }) => {
      const { hfConvert } = await import(/* @vite-ignore */ '/src/ui/stores/hfConvert.svelte.ts' as string);
      hfConvert.shardBytes = shardBytes;
      hfConvert.blockBytes = blockBytes;
    },
    { shardBytes: SHARD_BYTES, blockBytes: BLOCK_BYTES },
  );
}

async function openPanel(page: Page) {
  await page.goto(`/tests/browser/pages/models.html?hub=${encodeURIComponent(hub.url)}`);
  await expect(page.getByTestId('models-panel')).toBeVisible();
  await useSmallShards(page);
  const details = page.getByTestId('hf-convert');
  if (!(await details.evaluate((d) => (d as HTMLDetailsElement).open))) await details.locator('summary').click();
}

async function startConversion(page: Page, repo: string, quant: string, token = '') {
  await page.getByTestId('hf-repo').fill(repo);
  await page.getByTestId('hf-token').fill(token);
  await page.getByTestId('hf-quant').selectOption(quant);
  await page.getByRole('button', { name: 'Convert', exact: true }).click();
}

/** sha256 of every stored file of a model, read back from IndexedDB, and its tensor cache. */
async function storedFiles(page: Page, id: string): Promise<{ files: Record<string, string>; cache: unknown; manifestShas: Record<string, string> }> {
  return page.evaluate(async (id) => {
    const S = await import(/* @vite-ignore */ '/src/storage/index.ts' as string);
    const { getModel } = await import(/* @vite-ignore */ '/src/storage/db.ts' as string);
    const model = await getModel(id);
    const src = S.idbModelSource(id, { verify: true });
    const files: Record<string, string> = {};
    const manifestShas: Record<string, string> = {};
    for (const f of model.files as { path: string; sha256: string }[]) {
      const bytes = await src.readShard(f.path);
      files[f.path] = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
      manifestShas[f.path] = f.sha256;
    }
    return { files, cache: await src.readJson('tensor-cache.json'), manifestShas };
  }, id);
}

function expectCliBytes(
  stored: { files: Record<string, string>; cache: unknown; manifestShas: Record<string, string> },
  cli: { shards: Record<string, string>; cache: unknown },
) {
  const storedShards = Object.keys(stored.files).filter((f) => f.endsWith('.bin'));
  expect(storedShards.sort()).toEqual(Object.keys(cli.shards).sort());
  expect(storedShards.length).toBeGreaterThan(2);
  for (const [f, h] of Object.entries(cli.shards)) expect(stored.files[f], f).toBe(h);
  expect(stored.cache).toEqual(cli.cache);
  // Every file is pinned by the sha256 of what is stored.
  for (const [f, h] of Object.entries(stored.files)) expect(stored.manifestShas[f], f).toBe(h);
}

test('F16 (sharded index, no tokenizer) → q4f16_1 survives a page reload mid-conversion, stores the CLI bytes, generates the reference greedy ids, and exports a zip of the stored files', async ({
  page,
}) => {
  const repo = 'test-user/llama-f16';
  const id = storedId(repo, 'q4f16_1');
  const cli = await cliConversion(repo, 'q4f16_1');
  hub.delayMs = 120;
  try {
    await openPanel(page);
    await startConversion(page, repo, 'q4f16_1');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=convert-progress]')?.getAttribute('data-tensors-done') ?? 0) >= 5, null, {
      timeout: 60_000,
    });
    await expect(page.getByTestId('convert-progress')).toContainText(/ of .* · tensor \d+ of 15/);
    await page.reload();
    await expect(page.getByTestId('models-panel')).toBeVisible();
    await useSmallShards(page);
    const pending = page.getByTestId('convert-pending');
    await expect(pending).toContainText(/stopped at tensor \d+ of 15/);
    const stoppedAt = Number(/stopped at tensor (\d+) of 15/.exec((await pending.textContent()) ?? '')![1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(5);
    expect(stoppedAt).toBeLessThan(15);
    const before = hub.log.length;
    await pending.getByRole('button', { name: 'Resume' }).click();
    await expect(page.getByTestId('convert-progress')).toHaveAttribute('data-resumed-at', String(stoppedAt));
    await expect(page.getByTestId('convert-notice')).toContainText('Stored test-user/llama-f16 (q4f16_1, converted here)', { timeout: 120_000 });
    // Resumed, not restarted: after the reload nothing re-reads the embedding (tensor 0), only headers.
    const file1 = 'model-00001-of-00002.safetensors';
    const bytes1 = hubFiles.get(repo)!.get(file1)!;
    const h = parseSafetensorsHeader(bytes1);
    const embed = h.tensors.get('model.embed_tokens.weight')!;
    const [e0, e1] = [h.dataStart + embed.dataOffsets[0], h.dataStart + embed.dataOffsets[1]];
    const rereads = hub.log
      .slice(before)
      .map((l) => new RegExp(`^cdn GET /${repo}/${file1}  bytes=(\\d+)-(\\d+)$`).exec(l))
      .filter((m) => m !== null && Number(m[2]) >= e0 && Number(m[1]) < e1);
    expect(rereads).toEqual([]);
    expect(hub.log.slice(before).some((l) => l.startsWith(`cdn GET /${repo}/model-00002-of-00002.safetensors  bytes=`))).toBe(true);
  } finally {
    hub.delayMs = 0;
  }

  const stored = await storedFiles(page, id);
  expectCliBytes(stored, cli);
  // No tokenizer in the repo: the bundled Llama-2 one, which the engine loads.
  expect(Object.keys(stored.files)).toContain('tokenizer.json');

  const gen = await page.evaluate(async (id) => {
    const S = await import(/* @vite-ignore */ '/src/storage/index.ts' as string);
    const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
    const { ReferenceLlama } = await import(/* @vite-ignore */ '/src/engine/reference.ts' as string);
    const { loadTrainingBase } = await import(/* @vite-ignore */ '/src/training/referenceModel.ts' as string);
    const prompt = [1, 450, 4996, 17354, 1701];
    const e = new Engine();
    await e.load(S.idbModelSource(id), { contextLength: 64 });
    const got = (await e.generate(prompt, { maxNewTokens: 8 })).ids;
    await e.unload();
    const base = await loadTrainingBase(S.idbModelSource(id));
    const want = new ReferenceLlama(base.config, base.weights).greedyGenerate(prompt, 8);
    return { got, want };
  }, id);
  expect(gen.got).toEqual(gen.want);
  expect(gen.got.length).toBe(8);

  // Export as MLC folder: the zip holds exactly the stored files.
  const row = page.getByTestId(`model-${id}`);
  await expect(row.getByTestId('state')).toHaveText('Stored');
  const downloadP = page.waitForEvent('download');
  await row.getByRole('button', { name: 'Export as MLC folder' }).click();
  const download = await downloadP;
  expect(download.suggestedFilename()).toBe(`${id}.zip`);
  const entries = unzipSync(new Uint8Array(readFileSync(await download.path())));
  const unzipped = Object.fromEntries(Object.entries(entries).map(([p, b]) => [p, sha(b)]));
  expect(unzipped).toEqual(Object.fromEntries(Object.entries(stored.files).map(([p, h]) => [`${id}/${p}`, h])));
});

test('the catalog row "Convert in this browser" (BF16 → q4f32_1) stores the CLI bytes under the entry, which then shows Stored', async ({ page }) => {
  const cli = await cliConversion('test-user/llama-bf16', 'q4f32_1');
  await openPanel(page);
  const row = page.getByTestId('model-llama-2-7b-q4f32_1');
  await expect(row.getByRole('button', { name: 'Download' })).toHaveCount(0);
  const t0 = Date.now();
  await row.getByRole('button', { name: 'Convert in this browser' }).click();
  await expect(page.getByTestId('convert-notice')).toContainText('Stored Llama-2-7B (q4f32_1)', { timeout: 120_000 });
  console.log(`BF16 → q4f32_1 (tiny): converted and stored in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await expect(row.getByTestId('state')).toHaveText('Stored');
  expect(hub.log.some((l) => l.startsWith('hub GET /NousResearch/Llama-2-7b-hf/resolve/main/'))).toBe(true);
  const stored = await storedFiles(page, 'llama-2-7b-q4f32_1');
  expectCliBytes(stored, cli);
  expect(stored.files['tokenizer.json']).toBe(sha(readFileSync(TOKENIZER)));
});

test("a picked checkpoint folder (F32, webkitdirectory) → q4f16_1: stores exactly what npm run convert writes, with the folder's tokenizer", async ({
  page,
}) => {
  const folder = 'test-user_llama-f32';
  const cli = await cliConversion('test-user/llama-f32', 'q4f16_1');
  await openPanel(page);
  await page.getByTestId('hf-quant').selectOption('q4f16_1');
  await page.getByTestId('hf-folder').setInputFiles(join(dir, folder));
  await expect(page.getByTestId('convert-notice')).toContainText(`Stored ${folder} (q4f16_1, converted here)`, { timeout: 120_000 });
  const stored = await storedFiles(page, `hf-${folder}-q4f16-1`);
  expectCliBytes(stored, cli);
  expect(stored.files['tokenizer.json']).toBe(sha(readFileSync(TOKENIZER)));
});

test('the other three dtype × quantization pairs (F16 → q4f32_1, BF16 → q4f16_1, F32 → q4f32_1) by repo id store the CLI bytes', async ({ page }) => {
  await openPanel(page);
  const pairs: [string, 'q4f16_1' | 'q4f32_1'][] = [
    ['test-user/llama-f16', 'q4f32_1'],
    ['test-user/llama-bf16', 'q4f16_1'],
    ['test-user/llama-f32', 'q4f32_1'],
  ];
  for (const [repo, quant] of pairs) {
    const cli = await cliConversion(repo, quant);
    await startConversion(page, repo, quant);
    await expect(page.getByTestId('convert-notice')).toContainText(`Stored ${repo} (${quant}, converted here)`, { timeout: 120_000 });
    expectCliBytes(await storedFiles(page, storedId(repo, quant)), cli);
  }
});

test('a gated repository without a token, a config that is not Llama and a repository without weights are refused by name, and nothing is stored', async ({
  page,
}) => {
  await openPanel(page);
  await startConversion(page, 'test-user/gated-llama', 'q4f32_1');
  await expect(page.getByTestId('convert-error')).toHaveText(
    'test-user/gated-llama is gated or private (HTTP 401): accept its license on Hugging Face, then paste an access token (read) and try again.',
    { timeout: 30_000 },
  );
  await startConversion(page, 'test-user/gated-llama', 'q4f32_1', 'hf_wrong');
  await expect(page.getByTestId('convert-error')).toContainText('test-user/gated-llama refused the access token (HTTP 401)', { timeout: 30_000 });
  await startConversion(page, 'test-user/not-llama', 'q4f32_1');
  await expect(page.getByTestId('convert-error')).toContainText('unknown architecture GPT2LMHeadModel; only LlamaForCausalLM is supported', {
    timeout: 30_000,
  });
  await startConversion(page, 'test-user/no-weights', 'q4f32_1');
  await expect(page.getByTestId('convert-error')).toHaveText('test-user/no-weights has no *.safetensors weights.', { timeout: 30_000 });
  await startConversion(page, 'test-user/no-such-repo', 'q4f32_1');
  await expect(page.getByTestId('convert-error')).toHaveText(`Hugging Face has no model repository test-user/no-such-repo (HTTP 404 from ${hub.url}).`, {
    timeout: 30_000,
  });
  const left = await page.evaluate(async () => {
    const { pendingConversions } = await import(/* @vite-ignore */ '/src/storage/hfConvert.ts' as string);
    const { allModels } = await import(/* @vite-ignore */ '/src/storage/db.ts' as string);
    return { pending: (await pendingConversions()).length, models: (await allModels()).length };
  });
  expect(left).toEqual({ pending: 0, models: 0 });
  // The token is in memory only: nothing of it reaches storage or the address.
  expect(page.url()).not.toContain('hf_wrong');
});
