import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../../src/cli/convert.ts';
import { dirModelSource, writeHfCheckpoint } from '../../src/cli/hfCheckpoint.ts';
import { tinyHfConfig, tinyHfTensors, type TinyShape } from '../../src/cli/makeTinyModel.ts';
import { roundArrayToF16InPlace } from '../../src/formats/f16.ts';
import type { QuantMode } from '../../src/formats/llamaConfig.ts';
import { iterateShardTensors, loadModelManifest } from '../../src/formats/modelFiles.ts';
import { quantizeQ4 } from '../../src/formats/quant.ts';
import type { SafetensorsInput } from '../../src/formats/safetensors.ts';

const root = await mkdtemp(join(tmpdir(), 'convert-test-'));
afterAll(() => rm(root, { recursive: true, force: true }));
let counter = 0;

interface Ckpt {
  dir: string;
  tensors: Map<string, SafetensorsInput>;
}

async function makeCkpt(
  shape: TinyShape,
  opts: {
    dtype?: 'F32' | 'F16' | 'BF16';
    shards?: number;
    config?: Record<string, unknown>;
    tokenizer?: boolean;
    generationConfig?: Record<string, unknown>;
    edit?: (t: SafetensorsInput[]) => SafetensorsInput[];
  } = {},
): Promise<Ckpt> {
  const dir = join(root, `hf${counter++}`);
  let tensors = tinyHfTensors(shape, 42, opts.dtype ?? 'F32');
  if (opts.edit) tensors = opts.edit(tensors);
  const copyFiles: string[] = [];
  if (opts.tokenizer) {
    await writeFile(join(root, 'tokenizer.json'), '{"model":{"type":"BPE"}}');
    copyFiles.push(join(root, 'tokenizer.json'));
  }
  await writeHfCheckpoint(dir, {
    config: { ...tinyHfConfig(shape), ...opts.config },
    tensors,
    shards: opts.shards,
    generationConfig: opts.generationConfig,
    copyFiles,
  });
  return { dir, tensors: new Map(tensors.map((t) => [t.name, t])) };
}

/** Input values as the converter sees them (F16/BF16 decoded through a write/read round trip). */
async function inputValues(ck: Ckpt, name: string): Promise<Float32Array> {
  const { HfCheckpoint } = await import('../../src/cli/hfCheckpoint.ts');
  const h = await HfCheckpoint.open(ck.dir);
  const t = h.tensors.get(name)!;
  const v = await h.readRows(name, 0, t.shape.length === 1 ? 1 : t.shape[0]);
  await h.close();
  return v;
}

async function convertAndLoad(ck: Ckpt, quant: QuantMode) {
  const out = join(root, `out${counter++}`);
  await convertCheckpoint({ inDir: ck.dir, outDir: out, quant, shardBytes: 64 * 1024 });
  const source = dirModelSource(out);
  const manifest = await loadModelManifest(source);
  const tensors = new Map<string, { shape: number[]; dtype: string; data: Float32Array | Uint32Array }>();
  for await (const shard of iterateShardTensors(source, manifest.cache)) {
    for (const { record, data } of shard.records) tensors.set(record.name, { shape: record.shape, dtype: record.dtype, data });
  }
  return { out, manifest, tensors };
}

const concat = (...parts: Float32Array[]) => {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

const SMALL: TinyShape = { vocab: 100, hidden: 64, heads: 4, kvHeads: 2, ffn: 37, layers: 2 };

describe('convert: q0f32', () => {
  it('copies every tensor exactly, fuses q|k|v and gate|up in MLC order, writes config', async () => {
    const ck = await makeCkpt(SMALL, { generationConfig: { bos_token_id: 1, eos_token_id: [2, 7] } });
    const { manifest, tensors, out } = await convertAndLoad(ck, 'q0f32');
    expect(manifest.mode).toBe('q0f32');
    expect(manifest.config).toMatchObject({
      hiddenSize: 64,
      intermediateSize: 37,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      numLayers: 2,
      vocabSize: 100,
      ropeTheta: 10000,
      rmsNormEps: 1e-5,
      contextWindowSize: 512,
      tieWordEmbeddings: false,
      bosTokenId: 1,
      eosTokenIds: [2, 7],
    });
    const raw = (n: string) => ck.tensors.get(n)!.data as Float32Array;
    expect(tensors.get('model.embed_tokens.weight')!.data).toEqual(raw('model.embed_tokens.weight'));
    expect(tensors.get('lm_head.weight')!.data).toEqual(raw('lm_head.weight'));
    expect(tensors.get('model.norm.weight')!.data).toEqual(raw('model.norm.weight'));
    for (let i = 0; i < 2; i++) {
      const p = `model.layers.${i}`;
      const qkv = tensors.get(`${p}.self_attn.qkv_proj.weight`)!;
      expect(qkv.shape).toEqual([(4 + 2 + 2) * 16, 64]);
      expect(qkv.data).toEqual(concat(raw(`${p}.self_attn.q_proj.weight`), raw(`${p}.self_attn.k_proj.weight`), raw(`${p}.self_attn.v_proj.weight`)));
      const gu = tensors.get(`${p}.mlp.gate_up_proj.weight`)!;
      expect(gu.shape).toEqual([74, 64]);
      expect(gu.data).toEqual(concat(raw(`${p}.mlp.gate_proj.weight`), raw(`${p}.mlp.up_proj.weight`)));
      expect(tensors.get(`${p}.mlp.down_proj.weight`)!.shape).toEqual([64, 37]);
      expect(tensors.get(`${p}.mlp.down_proj.weight`)!.data).toEqual(raw(`${p}.mlp.down_proj.weight`));
      expect(tensors.get(`${p}.self_attn.o_proj.weight`)!.data).toEqual(raw(`${p}.self_attn.o_proj.weight`));
      expect(tensors.get(`${p}.input_layernorm.weight`)!.data).toEqual(raw(`${p}.input_layernorm.weight`));
      expect(tensors.get(`${p}.post_attention_layernorm.weight`)!.dtype).toBe('float32');
    }
    expect(tensors.size).toBe(1 + 2 * 6 + 2);
    // small shard cap -> several shards, all with checksums
    expect(manifest.cache.records.length).toBeGreaterThan(1);
    expect(manifest.cache.records.every((s) => /^[0-9a-f]{32}$/.test(s.md5sum!) && /^[0-9a-f]{64}$/.test(s.sha256!))).toBe(true);
    expect(manifest.cache.metadata.ParamSize).toBe(15);
    expect(manifest.tokenizerFiles).toEqual([]); // no tokenizer in the checkpoint: still converts
    expect(manifest.tokenizerJson).toBeNull();
    expect((await readdir(out)).sort()).toEqual(['mlc-chat-config.json', 'tensor-cache.json', ...manifest.cache.records.map((s) => s.dataPath)].sort());
  });

  it('reads sharded F16 and BF16 checkpoints (index.json) and copies the tokenizer', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const ck = await makeCkpt(SMALL, { dtype, shards: 3, tokenizer: true });
      expect(existsSync(join(ck.dir, 'model.safetensors.index.json'))).toBe(true);
      const { tensors, manifest, out } = await convertAndLoad(ck, 'q0f32');
      expect(tensors.get('model.layers.1.mlp.down_proj.weight')!.data).toEqual(await inputValues(ck, 'model.layers.1.mlp.down_proj.weight'));
      expect(tensors.get('model.layers.0.self_attn.qkv_proj.weight')!.data).toEqual(
        concat(
          await inputValues(ck, 'model.layers.0.self_attn.q_proj.weight'),
          await inputValues(ck, 'model.layers.0.self_attn.k_proj.weight'),
          await inputValues(ck, 'model.layers.0.self_attn.v_proj.weight'),
        ),
      );
      expect(manifest.tokenizerFiles).toEqual(['tokenizer.json']);
      expect(manifest.tokenizerJson).toEqual({ model: { type: 'BPE' } });
      expect(await readFile(join(out, 'tokenizer.json'), 'utf8')).toBe('{"model":{"type":"BPE"}}');
    }
  });
});

describe('convert: q0f16 / q4', () => {
  it('q0f16 stores float16 everywhere (any widths)', async () => {
    const ck = await makeCkpt(SMALL);
    const { tensors } = await convertAndLoad(ck, 'q0f16');
    const d = tensors.get('model.layers.0.mlp.down_proj.weight')!;
    expect(d.dtype).toBe('float16');
    expect(d.data).toEqual(roundArrayToF16InPlace(Float32Array.from(ck.tensors.get('model.layers.0.mlp.down_proj.weight')!.data)));
    expect(tensors.get('model.norm.weight')!.dtype).toBe('float16');
  });

  for (const mode of ['q4f16_1', 'q4f32_1'] as const) {
    it(`${mode}: quantizes every linear, the embedding and lm_head; norms in the mode's float`, async () => {
      const shape = { ...SMALL, ffn: 64 };
      const ck = await makeCkpt(shape);
      const { tensors } = await convertAndLoad(ck, mode);
      const fdt = mode === 'q4f16_1' ? 'float16' : 'float32';
      const raw = (n: string) => ck.tensors.get(n)!.data as Float32Array;
      const check = (base: string, w: Float32Array, rows: number, cols: number) => {
        const q = quantizeQ4(w, rows, cols, fdt);
        const qw = tensors.get(`${base}.q_weight`)!;
        const qs = tensors.get(`${base}.q_scale`)!;
        expect(qw.dtype).toBe('uint32');
        expect(qw.shape).toEqual([rows, cols / 8]);
        expect(qs.shape).toEqual([rows, cols / 32]);
        expect(qs.dtype).toBe(fdt);
        expect(qw.data).toEqual(q.qWeight);
        expect(qs.data).toEqual(q.qScale);
        expect(tensors.has(`${base}.weight`)).toBe(false);
      };
      check('model.embed_tokens', raw('model.embed_tokens.weight'), 100, 64);
      check('lm_head', raw('lm_head.weight'), 100, 64);
      const p = 'model.layers.1';
      check(
        `${p}.self_attn.qkv_proj`,
        concat(raw(`${p}.self_attn.q_proj.weight`), raw(`${p}.self_attn.k_proj.weight`), raw(`${p}.self_attn.v_proj.weight`)),
        128,
        64,
      );
      check(`${p}.mlp.gate_up_proj`, concat(raw(`${p}.mlp.gate_proj.weight`), raw(`${p}.mlp.up_proj.weight`)), 128, 64);
      check(`${p}.mlp.down_proj`, raw(`${p}.mlp.down_proj.weight`), 64, 64);
      check(`${p}.self_attn.o_proj`, raw(`${p}.self_attn.o_proj.weight`), 64, 64);
      expect(tensors.get(`${p}.input_layernorm.weight`)!.dtype).toBe(fdt);
    });
  }

  it('q4 with an input width not divisible by 32 pads the last group as MLC does: [rows, 4·ceil(in/32)] words, ceil(in/32) scales', async () => {
    const ck = await makeCkpt(SMALL); // ffn 37: down_proj's input width
    const { tensors } = await convertAndLoad(ck, 'q4f16_1');
    const qw = tensors.get('model.layers.0.mlp.down_proj.q_weight')!;
    const qs = tensors.get('model.layers.0.mlp.down_proj.q_scale')!;
    expect(qw.shape).toEqual([64, 8]);
    expect(qs.shape).toEqual([64, 2]);
    const q = quantizeQ4(ck.tensors.get('model.layers.0.mlp.down_proj.weight')!.data as Float32Array, 64, 37, 'float16');
    expect(qw.data).toEqual(q.qWeight);
    expect(qs.data).toEqual(q.qScale);
    // The padding (columns 37..63 of each row) is packed as 0, as MLC's pack_weight leaves it.
    for (let r = 0; r < 64; r++) {
      expect(qw.data[r * 8 + 4] >>> 20).toBe(0); // word 4 holds columns 32..39: 37..39 are padding
      for (let w = 5; w < 8; w++) expect(qw.data[r * 8 + w]).toBe(0);
    }
  });

  it('tied embeddings: no lm_head written, flag kept', async () => {
    const ck = await makeCkpt({ ...SMALL, ffn: 64, tie: true });
    const { tensors, manifest } = await convertAndLoad(ck, 'q4f16_1');
    expect(manifest.config.tieWordEmbeddings).toBe(true);
    expect([...tensors.keys()].some((n) => n.startsWith('lm_head'))).toBe(false);
    expect(tensors.has('model.embed_tokens.q_weight')).toBe(true);
  });
});

describe('convert: errors leave nothing behind', () => {
  async function expectFailure(ck: Ckpt, quant: QuantMode, msg: RegExp) {
    const out = join(root, `fail${counter++}`);
    await expect(convertCheckpoint({ inDir: ck.dir, outDir: out, quant })).rejects.toThrow(msg);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(root)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }

  it('missing tensor', async () => {
    const ck = await makeCkpt(SMALL, { edit: (t) => t.filter((x) => x.name !== 'model.layers.1.self_attn.k_proj.weight') });
    await expectFailure(ck, 'q0f32', /missing tensor model\.layers\.1\.self_attn\.k_proj\.weight/);
  });
  it('bad shape', async () => {
    const ck = await makeCkpt(SMALL, {
      edit: (t) => t.map((x) => (x.name === 'model.norm.weight' ? { ...x, shape: [32], data: x.data.subarray(0, 32) } : x)),
    });
    await expectFailure(ck, 'q0f32', /tensor model\.norm\.weight has shape \[32\], expected \[64\]/);
  });
  it('missing lm_head when embeddings are not tied', async () => {
    const ck = await makeCkpt(SMALL, { edit: (t) => t.filter((x) => x.name !== 'lm_head.weight') });
    await expectFailure(ck, 'q0f16', /missing tensor lm_head\.weight/);
  });
  it.each([
    [{ architectures: ['MistralForCausalLM'], model_type: 'mistral' }, /unknown architecture MistralForCausalLM/],
    [{ rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling \{"type":"linear","factor":2\} is not supported/],
    [{ attention_bias: true }, /attention_bias = true is not supported/],
    [{ mlp_bias: true }, /mlp_bias = true is not supported/],
    [{ hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
  ])('config %j', async (config, msg) => {
    await expectFailure(await makeCkpt(SMALL, { config }), 'q0f32', msg);
  });
  it('unknown quantization', async () => {
    await expectFailure(await makeCkpt(SMALL), 'q3f16_1' as QuantMode, /unknown quantization "q3f16_1"/);
  });
  it('truncated safetensors file', async () => {
    const ck = await makeCkpt(SMALL);
    const p = join(ck.dir, 'model.safetensors');
    const b = await readFile(p);
    await writeFile(p, b.subarray(0, b.length - 100));
    await expectFailure(ck, 'q0f32', /model\.safetensors: truncated: tensor lm_head\.weight ends at data byte/);
  });
  it('no weights at all', async () => {
    const ck = await makeCkpt(SMALL);
    await unlink(join(ck.dir, 'model.safetensors'));
    await expectFailure(ck, 'q0f32', /no \*\.safetensors weights found/);
  });
  it('replaces an existing output directory only on success', async () => {
    const ck = await makeCkpt(SMALL);
    const out = join(root, `replace${counter++}`);
    await convertCheckpoint({ inDir: ck.dir, outDir: out, quant: 'q0f32' });
    const broken = await makeCkpt(SMALL, { edit: (t) => t.filter((x) => x.name !== 'model.norm.weight') });
    await expect(convertCheckpoint({ inDir: broken.dir, outDir: out, quant: 'q4f16_1' })).rejects.toThrow(/missing tensor model\.norm\.weight/);
    expect(JSON.parse(await readFile(join(out, 'mlc-chat-config.json'), 'utf8')).quantization).toBe('q0f32');
    await convertCheckpoint({ inDir: ck.dir, outDir: out, quant: 'q0f16' });
    expect(JSON.parse(await readFile(join(out, 'mlc-chat-config.json'), 'utf8')).quantization).toBe('q0f16');
    expect((await readdir(root)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
