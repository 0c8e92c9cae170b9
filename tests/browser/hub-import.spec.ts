import { test, expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseMlcChatConfig } from '../../src/formats/mlcChatConfig.ts';
import { randomPeftAdapter } from '../../src/formats/randomAdapter.ts';
import { parseSafetensorsHeader, readSafetensorsTensor } from '../../src/formats/safetensors.ts';
import { startFakeHub, type FakeHub } from './helpers/fakeHub.ts';
import { torchSaveLegacy, torchSaveZip } from './helpers/torchSave.ts';

/**
 * "Import adapter from Hugging Face" in the Models view (AdapterDrop → stores/adapterImport →
 * storage/hubAdapter, through @huggingface/hub) against a local server that behaves like the hub:
 * its tree API, resolve URLs answering 302 to a CDN on another port that serves the bytes with
 * Range and ETag. One seeded PEFT LoRA for the tiny model is published three ways (safetensors,
 * adapter_model.bin in torch.save's zip format, and in its legacy format); each import must store
 * exactly the shards `npm run convert-adapter` makes of the same adapter and generate the same ids.
 */

test.describe.configure({ timeout: 300_000 });

const ROOT = resolve(import.meta.dirname, '../..');
const TINY = join(ROOT, 'models/tiny/q4f32_1');
const config = parseMlcChatConfig(JSON.parse(readFileSync(join(TINY, 'mlc-chat-config.json'), 'utf8'))).config;
const peft = randomPeftAdapter(config, 'lora', { seed: 4242 });
const configBytes = new TextEncoder().encode(JSON.stringify(peft.adapterConfig, null, 2));
const header = parseSafetensorsHeader(peft.adapterWeights);
const tensors = [...header.tensors.entries()].map(([name, info]) => ({
  name,
  shape: info.shape,
  data: readSafetensorsTensor(peft.adapterWeights, name, header),
}));

const REPOS = new Map<string, Map<string, Uint8Array>>([
  [
    'test-user/tiny-lora-safetensors',
    new Map([
      ['README.md', new TextEncoder().encode('# a LoRA\n')],
      ['adapter_config.json', configBytes],
      ['adapter_model.safetensors', peft.adapterWeights],
    ]),
  ],
  [
    'test-user/tiny-lora-zip',
    new Map([
      ['adapter_config.json', configBytes],
      ['adapter_model.bin', torchSaveZip(tensors)],
    ]),
  ],
  [
    'test-user/tiny-lora-legacy',
    new Map([
      ['adapter_config.json', configBytes],
      ['adapter_model.bin', torchSaveLegacy(tensors)],
    ]),
  ],
  ['test-user/not-an-adapter', new Map([['config.json', new TextEncoder().encode('{}')]])],
]);

/** The same adapter converted by the CLI, from its safetensors: shard name → bytes. */
let cliShards: Record<string, number[]>;
let hub: FakeHub;

test.beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rl-hub-import-'));
  try {
    mkdirSync(join(dir, 'peft'));
    writeFileSync(join(dir, 'peft', 'adapter_config.json'), configBytes);
    writeFileSync(join(dir, 'peft', 'adapter_model.safetensors'), peft.adapterWeights);
    execFileSync('npx', ['tsx', 'src/cli/convertAdapter.ts', '--in', join(dir, 'peft'), '--base', TINY, '--out', join(dir, 'cli')], {
      cwd: ROOT,
      stdio: 'pipe',
    });
    cliShards = {};
    for (const f of readdirSync(join(dir, 'cli')).filter((f) => f.endsWith('.bin'))) cliShards[f] = [...readFileSync(join(dir, 'cli', f))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  expect(Object.keys(cliShards).length).toBeGreaterThan(0);
  hub = await startFakeHub(REPOS);
});
test.afterAll(async () => {
  await hub?.close();
});

async function openPanel(page: Page) {
  await page.goto(`/tests/browser/pages/models.html?hub=${encodeURIComponent(hub.url)}`);
  await expect(page.getByTestId('model-tiny-q4f32_1')).toBeVisible();
  await page.getByTestId('adapter-base').selectOption('tiny-q4f32_1');
  // A hub set by the link (anyone can write one) is named before Import is pressed.
  await expect(page.getByTestId('hub-origin')).toContainText(hub.url.replace(/\/+$/, ''));
}

async function importRepo(page: Page, repo: string) {
  await page.getByTestId('hub-repo').fill(repo);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
}

for (const [repo, weights] of [
  ['test-user/tiny-lora-safetensors', 'adapter_model.safetensors'],
  ['test-user/tiny-lora-zip', 'adapter_model.bin'],
  ['test-user/tiny-lora-legacy', 'adapter_model.bin'],
] as const) {
  test(`${repo} (${weights}): imported by repo id, stored as the CLI converts it, and generates what the CLI's conversion generates`, async ({ page }) => {
    await openPanel(page);
    const before = hub.log.length;
    await importRepo(page, repo);
    const name = repo.split('/')[1];
    await expect(page.getByTestId('adapter-status')).toContainText(`Stored ${name} (lora, yours): lora on q_proj, k_proj, v_proj, up_proj, down_proj`, {
      timeout: 60_000,
    });
    await expect(page.getByTestId('your-adapters')).toContainText(`${name} (lora, yours)`);
    // Read the way the hub is read: the tree API, then each file's resolve URL redirected to the CDN (with ranges).
    const seen = hub.log.slice(before);
    expect(seen).toContain(`hub GET /api/models/${repo}/tree/main`);
    expect(seen).toContain(`hub GET /${repo}/resolve/main/adapter_config.json`);
    expect(seen).toContain(`hub GET /${repo}/resolve/main/${weights}`);
    expect(seen.some((l) => l.startsWith(`cdn GET /${repo}/${weights}`))).toBe(true);
    expect(seen.filter((l) => l.includes('README.md'))).toEqual([]);

    const r = await page.evaluate(
      async ({ name, cliShards }) => {
        const { Engine } = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
        const { httpModelSource } = await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string);
        const S = await import(/* @vite-ignore */ '/src/storage/index.ts' as string);
        // Named after the repository, bound to the chosen base (as a dropped folder is named after the folder).
        const storedId = S.convertedAdapterId(`${name}-tiny-q4f32_1`);
        const src = S.idbModelSource(storedId);
        const manifest = (await src.readJson('adapter.json')) as { shards: { dataPath: string }[] };
        const shards: Record<string, number[]> = {};
        for (const s of manifest.shards) shards[s.dataPath] = [...new Uint8Array(await src.readShard(s.dataPath))];
        // The CLI's conversion, served from memory through the same ModelSource interface.
        const cliSource = {
          readJson: async (p: string) => (p === 'adapter.json' ? manifest : null),
          readShard: async (p: string) => new Uint8Array(cliShards[p]).buffer,
        };
        const e = new Engine();
        await e.load(httpModelSource('/models/tiny/q4f32_1/'), { contextLength: 64 });
        const prompt = [1, 450, 4996, 17354, 1701];
        const base = (await e.generate(prompt, { maxNewTokens: 8 })).ids;
        const imported = (await e.loadAdapter(src, 'imported')).id;
        const cli = (await e.loadAdapter(cliSource, 'cli')).id;
        await e.useAdapter(imported);
        const fromImport = (await e.generate(prompt, { maxNewTokens: 8 })).ids;
        await e.useAdapter(cli);
        const fromCli = (await e.generate(prompt, { maxNewTokens: 8 })).ids;
        await e.unload();
        await S.deleteModel(storedId, true);
        return { shards, base, fromImport, fromCli };
      },
      { name, cliShards },
    );
    expect(Object.keys(r.shards).sort()).toEqual(Object.keys(cliShards).sort());
    for (const [p, bytes] of Object.entries(cliShards)) expect(r.shards[p], p).toEqual(bytes);
    expect(r.fromImport).toEqual(r.fromCli);
    expect(r.fromImport).not.toEqual(r.base); // the adapter changes the output: the comparison can fail
  });
}

test('a repository the hub does not have, a malformed id and a repository without PEFT files are refused by name, and nothing is stored', async ({ page }) => {
  await openPanel(page);
  await importRepo(page, 'test-user/no-such-repo');
  await expect(page.getByTestId('adapter-status')).toHaveText(`Hugging Face has no model repository test-user/no-such-repo (HTTP 404 from ${hub.url}).`, {
    timeout: 30_000,
  });
  await importRepo(page, 'not a repo id');
  await expect(page.getByTestId('adapter-status')).toHaveText(
    '"not a repo id" is not a Hugging Face repo id: write it as owner/name, e.g. shuyuej/metamath_lora_llama2_7b_3_epoch.',
  );
  await importRepo(page, 'test-user/not-an-adapter');
  await expect(page.getByTestId('adapter-status')).toHaveText(
    'test-user/not-an-adapter is not a PEFT adapter repository: it lacks adapter_config.json and adapter_model.safetensors or adapter_model.bin (it has config.json).',
    { timeout: 30_000 },
  );
  await expect(page.getByTestId('your-adapters').locator('li')).toHaveCount(0);
});

test('the catalog lists the published MetaMath LoRAs as imports from the hub and the paper adapters as not published, with no Download button', async ({
  page,
}) => {
  await openPanel(page);
  const lora3 = page.getByTestId('model-metamath-lora-llama2-7b-3-epoch');
  await expect(lora3.getByTestId('reported')).toHaveText('Reported by its authors: 64.1% on GSM8K; trained on MetaMathQA.');
  await expect(lora3.getByRole('button', { name: 'Import from Hugging Face' })).toBeVisible();
  await expect(lora3.getByRole('button', { name: 'Download' })).toHaveCount(0);
  const paper = page.getByTestId('model-llama-2-7b-lora-math10k-q4f16_1');
  await expect(paper.getByTestId('advice')).toContainText('Not published');
  await expect(paper.getByRole('button', { name: 'Download' })).toHaveCount(0);
  const base = page.getByTestId('model-llama-2-7b-q4f16_1');
  await expect(base.getByTestId('advice')).toContainText('convert it from NousResearch/Llama-2-7b-hf (about 13.5 GB to download, about 3.6 GB stored)');
  await expect(base.getByRole('button', { name: 'Download' })).toHaveCount(0);
  await expect(page.getByTestId('model-llama-2-7b-chat-q4f16_1').getByRole('button', { name: 'Download' })).toBeVisible();
});
