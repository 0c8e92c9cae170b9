import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  AdapterMismatchError,
  checkAdapterManifestBase,
  fileUrl,
  ManifestError,
  parseManifest,
  parseShardIndex,
  withIndexedShards,
  type ModelManifest,
} from '../../src/formats/manifest.ts';
import { catalogExtras, obtainBy } from '../../src/storage/catalog.ts';

const MODELS = resolve(import.meta.dirname, '../../models');
const HEX = 'ab'.repeat(32);

function base(extra: Record<string, unknown> = {}) {
  return { schema: 1, id: 'm', name: 'M', kind: 'base', baseUrl: 'https://example.org/m/', files: [{ path: 'a.bin', size: 3, sha256: HEX }], ...extra };
}

function problems(input: unknown): string[] {
  try {
    parseManifest(input, 'x.json');
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestError);
    return (e as ManifestError).problems;
  }
  throw new Error('expected a ManifestError');
}

describe('the shipped manifests (models/*.json)', () => {
  const files = readdirSync(MODELS).filter((f) => f.endsWith('.json') && f !== 'index.json');
  it('models/index.json lists exactly these files (the app reads the catalog from it)', () => {
    const index = JSON.parse(readFileSync(join(MODELS, 'index.json'), 'utf8')) as { manifests: string[] };
    expect([...index.manifests].sort()).toEqual([...files].sort());
  });
  it('are there: base models in both 4-bit modes, the three adapters, the tiny models', () => {
    const ids = files.map((f) => f.replace(/\.json$/, ''));
    for (const id of [
      'llama-2-7b-q4f16_1',
      'llama-2-7b-q4f32_1',
      'llama-2-7b-lora-math10k-q4f32_1',
      'llama-2-7b-series-math10k-q4f32_1',
      'llama-2-7b-parallel-math10k-q4f32_1',
      'tiny-q4f32_1',
    ])
      expect(ids).toContain(id);
  });
  for (const f of files) {
    it(`${f} is valid, and its id is its file name`, () => {
      const m = parseManifest(readFileSync(join(MODELS, f), 'utf8'), f, `http://localhost:5199/models/${f}`);
      expect(m.id).toBe(f.replace(/\.json$/, ''));
      if (m.kind === 'adapter') {
        expect(existsSync(join(MODELS, `${m.adapter!.baseModel}.json`))).toBe(true);
      }
    });
  }
  const shipped = files.map((f) => parseManifest(readFileSync(join(MODELS, f), 'utf8'), f, `http://localhost:5199/models/${f}`));
  it('no entry is a download that cannot succeed: hub URLs are repositories WebLLM publishes, local folders exist', () => {
    // WebLLM's own prebuilt model list (its bundled code, not ours) names the MLC repositories that exist.
    const webllm = readFileSync(resolve(import.meta.dirname, '../../node_modules/@mlc-ai/web-llm/lib/index.js'), 'utf8');
    const published = new Set([...webllm.matchAll(/https:\/\/huggingface\.co\/mlc-ai\/[\w.-]+/g)].map((x) => x[0]));
    expect(published.has('https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC')).toBe(true);
    for (const m of shipped.filter((x) => obtainBy(x) === 'download')) {
      const url = m.baseUrl!;
      if (url.startsWith('https://huggingface.co/')) expect(published, `${m.id}: ${url}`).toContain(url.replace(/\/resolve\/main\/$/, ''));
      else {
        expect(url.startsWith('http://localhost:5199/models/'), `${m.id}: ${url}`).toBe(true);
        const dir = join(MODELS, url.slice('http://localhost:5199/models/'.length));
        // Tiny models are generated (npm run make-tiny-model); their folder must be there once it ran.
        if (existsSync(join(MODELS, 'tiny', 'q4f32_1'))) expect(existsSync(dir), `${m.id}: ${dir}`).toBe(true);
      }
    }
  });
  it("the paper's base is converted from NousResearch/Llama-2-7b-hf unless a site hosts it; its adapters are not published; the chat model downloads from MLC", () => {
    for (const q of ['q4f16_1', 'q4f32_1']) {
      const base = shipped.find((m) => m.id === `llama-2-7b-${q}`)!;
      expect(obtainBy(base)).toBe('convert');
      expect(catalogExtras(base).convertFrom).toMatchObject({ repo: 'NousResearch/Llama-2-7b-hf' });
      // Hosting is configuration: the same entry with "hostedAt" downloads from there.
      const hosted = { ...base, hostedAt: 'https://school.example/llama-2-7b/' } as ModelManifest;
      expect(obtainBy(hosted)).toBe('download');
      for (const kind of ['lora', 'series', 'parallel']) {
        const a = shipped.find((m) => m.id === `llama-2-7b-${kind}-math10k-${q}`)!;
        expect(obtainBy(a), a.id).toBe('train');
        expect(a.name).toMatch(/not published/);
        expect(a.files).toEqual([]);
      }
      expect(obtainBy(shipped.find((m) => m.id === `llama-2-7b-chat-${q}`)!)).toBe('download');
    }
  });
  it('the published MetaMath LoRAs are imported by repo id, with their reported GSM8K and training data', () => {
    const hub = shipped.filter((m) => obtainBy(m) === 'import').map((m) => ({ repo: catalogExtras(m).hubRepo, ...catalogExtras(m).reported }));
    expect(hub.sort((a, b) => a.repo!.localeCompare(b.repo!))).toEqual([
      { repo: 'shuyuej/metamath_lora_llama2_7b_2_epoch', gsm8k: 63.5, trainedOn: 'MetaMathQA' },
      { repo: 'shuyuej/metamath_lora_llama2_7b_3_epoch', gsm8k: 64.1, trainedOn: 'MetaMathQA' },
      { repo: 'shuyuej/metamath_lora_qkv_llama2_7b', gsm8k: 58.0, trainedOn: 'MetaMathQA' },
    ]);
  });
  it('tiny manifests resolve to the generated files under /models/tiny/<mode>/', () => {
    const m = parseManifest(readFileSync(join(MODELS, 'tiny-q4f32_1.json'), 'utf8'), 'tiny', 'http://localhost:5199/models/tiny-q4f32_1.json');
    expect(fileUrl(m, { path: 'tensor-cache.json' })).toBe('http://localhost:5199/models/tiny/q4f32_1/tensor-cache.json');
    const dir = join(MODELS, 'tiny', 'q4f32_1');
    if (!existsSync(join(dir, 'tensor-cache.json'))) return; // generated by `npm run make-tiny-model`
    for (const f of m.files) if (!f.optional) expect(existsSync(join(dir, f.path)), f.path).toBe(true);
    const shards = parseShardIndex(JSON.parse(readFileSync(join(dir, 'tensor-cache.json'), 'utf8')));
    for (const s of withIndexedShards(m, shards).slice(m.files.length)) {
      expect(readFileSync(join(dir, s.path)).length).toBe(s.size);
    }
  });
});

describe('parseManifest', () => {
  it('accepts a valid manifest and resolves a relative baseUrl against the manifest URL', () => {
    const m = parseManifest(JSON.stringify(base({ baseUrl: 'files/' })), 'x.json', 'https://h.org/models/x.json');
    expect(m.baseUrl).toBe('https://h.org/models/files/');
    expect(fileUrl(m, m.files[0])).toBe('https://h.org/models/files/a.bin');
    expect(fileUrl(m, { path: 'b', url: 'https://cdn.org/b' })).toBe('https://cdn.org/b');
  });
  it('without a manifest URL, uses baseUrl as given (page-relative)', () => {
    const m = parseManifest(base({ baseUrl: 'models/tiny/q4f32_1' }));
    expect(fileUrl(m, { path: 'tensor-cache.json' })).toBe('models/tiny/q4f32_1/tensor-cache.json');
  });
  it('malformed JSON', () => {
    expect(() => parseManifest('{"schema": 1,', 'broken.json')).toThrow(/^The model manifest broken\.json is not valid: it is not JSON \(/);
  });
  it('not an object', () => {
    expect(problems([])).toEqual(['it must be a JSON object']);
  });
  it('missing url (no baseUrl) and missing size, by file name', () => {
    const p = problems({ ...base(), baseUrl: undefined, files: [{ path: 'params_shard_3.bin' }] });
    expect(p).toEqual([
      'files[0] (params_shard_3.bin): missing "url" (and the manifest has no "baseUrl" to resolve "path" against)',
      'files[0] (params_shard_3.bin): missing "size" (bytes; write null when unknown)',
    ]);
  });
  it('bad sha256 and size formats', () => {
    const p = problems(
      base({
        files: [
          { path: 'a', size: -1, sha256: 'ABC' },
          { path: 'b', size: 1.5, sha256: HEX.toUpperCase() },
        ],
      }),
    );
    expect(p).toEqual([
      'files[0] (a): "size" must be a whole number of bytes or null (got -1)',
      'files[0] (a): "sha256" must be 64 lowercase hex digits (got "ABC")',
      'files[1] (b): "size" must be a whole number of bytes or null (got 1.5)',
      `files[1] (b): "sha256" must be 64 lowercase hex digits (got "${HEX.toUpperCase().slice(0, 37)}...")`,
    ]);
  });
  it('lists every problem at once in the message', () => {
    try {
      parseManifest({ schema: 2, id: 'Bad Id', kind: 'model', files: 'x' }, 'y.json');
      throw new Error('no error');
    } catch (e) {
      const err = e as ManifestError;
      expect(err.message.split('\n')[0]).toBe('The model manifest y.json is not valid:');
      expect(err.problems).toEqual([
        '"schema" must be 1 (got 2)',
        `"id" must be lowercase letters, digits, '.', '_' or '-' (got "Bad Id")`,
        '"name" is missing',
        '"kind" must be "base" or "adapter" (got "model")',
        '"files" must be a list',
      ]);
    }
  });
  it('paths that escape the model directory, and duplicates', () => {
    expect(
      problems(
        base({
          files: [
            { path: '../x', size: 1 },
            { path: '/etc/passwd', size: 1 },
            { path: 'a', size: 1 },
            { path: 'a', size: 1 },
          ],
        }),
      ),
    ).toEqual([
      'files[0]: "path" must be a relative file name (got "../x": it climbs out of the model folder with ../)',
      'files[1]: "path" must be a relative file name (got "/etc/passwd": it is an absolute path; only a file name under the model folder is allowed)',
      'files[3] (a): listed twice',
    ]);
  });
  it('adapters need method, base model and base fingerprint', () => {
    expect(problems({ ...base(), kind: 'adapter' })).toEqual(['an adapter needs "adapter": { "method", "baseFingerprint" }']);
    expect(problems({ ...base(), kind: 'adapter', adapter: { method: 'prefix', baseModel: 'llama', baseFingerprint: 'x' } })).toEqual([
      '"adapter.method" must be one of lora, series, parallel (got "prefix")',
      '"adapter.baseFingerprint" must be 64 lowercase hex digits or null (got "x")',
    ]);
    expect(problems({ ...base(), kind: 'adapter', adapter: { method: 'lora' } })).toEqual([
      `"adapter.baseModel" must be the id of the base model's manifest (got undefined)`,
      '"adapter.baseFingerprint" is missing (64 hex digits, or null when adapter.json records it)',
    ]);
  });
  it('an empty file list needs a shard index', () => {
    expect(problems(base({ files: [] }))).toEqual(['"files" is empty and there is no "shardIndex" to derive shards from']);
    expect(parseManifest(base({ files: [], shardIndex: ['tensor-cache.json'] })).files).toEqual([]);
  });
});

describe('shard indexes', () => {
  it('derive shards from an MLC tensor cache, manifest entries winning', () => {
    const m = parseManifest(base({ files: [{ path: 'params_shard_1.bin', size: 20, sha256: HEX }] }));
    const shards = parseShardIndex({
      metadata: {},
      records: [
        { dataPath: 'params_shard_0.bin', nbytes: 10, md5sum: '0123456789abcdef0123456789abcdef', records: [] },
        { dataPath: 'params_shard_1.bin', nbytes: 20, records: [] },
      ],
    });
    expect(withIndexedShards(m, shards)).toEqual([
      { path: 'params_shard_1.bin', size: 20, sha256: HEX },
      { path: 'params_shard_0.bin', size: 10, md5: '0123456789abcdef0123456789abcdef' },
    ]);
  });
  it('derive shards with sha256 from an adapter.json', () => {
    const shards = parseShardIndex({ shards: [{ dataPath: 'adapter_shard_0.bin', nbytes: 5, sha256: HEX, records: [] }] }, 'adapter.json');
    expect(withIndexedShards(parseManifest(base({ files: [], shardIndex: ['adapter.json'] })), shards)).toEqual([
      { path: 'adapter_shard_0.bin', size: 5, sha256: HEX },
    ]);
  });
  it('reject an index without shards or with bad entries', () => {
    expect(() => parseShardIndex({ foo: 1 }, 'tensor-cache.json')).toThrow(
      'The model manifest tensor-cache.json is not valid: it has no "records" (tensor cache) or "shards" (adapter.json) list',
    );
    expect(() => parseShardIndex({ records: [{ dataPath: '../x', nbytes: -1 }] })).toThrow(
      /dataPath "\.\.\/x" must be a file name under the model folder \(it climbs out of the model folder with \.\.\/\)\n- shard 0: nbytes must be a byte count/,
    );
  });
  it('refuse shards named by URL, by //host/ or by ../ anywhere in the path: whoever edits the index must not choose the origin', () => {
    const refused = ['http://127.0.0.1:9/evil.bin', 'https://attacker.invalid/params_shard_0.bin', '//attacker.invalid/x.bin', 'sub/../../x.bin', 'a\\..\\x'];
    for (const dataPath of refused) {
      expect(() => parseShardIndex({ records: [{ dataPath, nbytes: 1, records: [] }] }), dataPath).toThrow(
        /dataPath .* must be a file name under the model folder/,
      );
    }
    expect(parseShardIndex({ records: [{ dataPath: 'params_shard_0.bin', nbytes: 1, records: [] }] })[0].dataPath).toBe('params_shard_0.bin');
  });
});

describe("explicit file URLs stay on the manifest's own origin", () => {
  it('an absolute url on another origin, or a ../ url, is refused before anything is fetched', () => {
    expect(problems(base({ files: [{ path: 'a.bin', size: 1, url: 'https://attacker.invalid/a.bin' }] }))).toEqual([
      'files (a.bin): "url" "https://attacker.invalid/a.bin" is refused: it is on https://attacker.invalid, not on the manifest\'s own origin (https://example.org): a manifest may not send downloads elsewhere',
    ]);
    expect(problems(base({ files: [{ path: 'a.bin', size: 1, url: '../other/a.bin' }] }))[0]).toContain('it climbs out of the model folder');
    // A page-relative base admits no absolute URL at all: the page's origin is not known here.
    expect(problems(base({ baseUrl: 'models/x/', files: [{ path: 'a.bin', size: 1, url: 'https://example.org/a.bin' }] }))[0]).toContain(
      "not on the manifest's own origin: a manifest may not send downloads elsewhere",
    );
  });
  it('the same origin as the base, or a plain name under it, is accepted', () => {
    const m = parseManifest(
      base({
        files: [
          { path: 'a.bin', size: 1, url: 'https://example.org/elsewhere/a.bin' },
          { path: 'b.bin', size: 1, url: 'b-v2.bin' },
        ],
      }),
    );
    expect(fileUrl(m, m.files[0])).toBe('https://example.org/elsewhere/a.bin');
    expect(fileUrl(m, m.files[1])).toBe('https://example.org/m/b-v2.bin');
  });
});

describe('adapter and base', () => {
  const baseM = parseManifest(base({ id: 'llama-2-7b-q4f32_1', name: 'Llama', fingerprint: HEX })) as ModelManifest;
  const adapter = (baseModel: string, fp: string | null) =>
    parseManifest({ ...base(), id: 'lora', name: 'LoRA', kind: 'adapter', adapter: { method: 'lora', baseModel, baseFingerprint: fp } });
  it('accepts the matching base', () => {
    expect(() => checkAdapterManifestBase(adapter('llama-2-7b-q4f32_1', HEX), baseM)).not.toThrow();
    expect(() => checkAdapterManifestBase(adapter('llama-2-7b-q4f32_1', null), baseM)).not.toThrow();
  });
  it('refuses another base with a message naming both', () => {
    expect(() => checkAdapterManifestBase(adapter('llama-2-7b-q4f16_1', null), baseM)).toThrow(AdapterMismatchError);
    expect(() => checkAdapterManifestBase(adapter('llama-2-7b-q4f32_1', 'cd'.repeat(32)), baseM)).toThrow(
      'The adapter "LoRA" was trained on llama-2-7b-q4f16_1'.replace('q4f16_1', 'q4f32_1'),
    );
  });
});
