import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ADAPTER_MODULES,
  AdapterError,
  checkAdapterAgainstBase,
  moduleFeatures,
  moduleParent,
  parseAdapterManifest,
  readAdapterTensors,
  type AdapterModule,
} from '../../src/formats/adapterFormat.ts';
import { convertPeftAdapter, type ConvertAdapterInput } from '../../src/formats/adapterConversion.ts';
import { baseFingerprint } from '../../src/formats/modelFiles.ts';
import { parsePeftAdapterConfig, parsePeftTensorKey, resolveTargets } from '../../src/formats/peftAdapter.ts';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/formats/f16.ts';
import type { LlamaConfig } from '../../src/formats/llamaConfig.ts';
import { writeMlcChatConfig } from '../../src/formats/mlcChatConfig.ts';
import { writeSafetensors, type SafetensorsInput } from '../../src/formats/safetensors.ts';
import { convertAdapterDir } from '../../src/cli/convertAdapter.ts';
import { tinyConfig } from './trainingFixtures.ts';
import { zipSync } from 'fflate';
import { ReferenceLlama, referenceAdapterFromManifest, type ReferenceAdapter } from '../../src/engine/reference.ts';

// ---- fixtures -------------------------------------------------------------------------------

/** The unit tests' tiny Llama (trainingFixtures.ts). */
const CONFIG: LlamaConfig = tinyConfig();

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}
const randArray = (n: number, r: () => number, s = 0.5) => Float32Array.from({ length: n }, () => r() * s);

/** A q0f32 base: chat config + tensor cache (records only; the adapter never reads base bytes). */
function baseFiles(c: LlamaConfig = CONFIG, extra = '') {
  const chat = writeMlcChatConfig(c, 'q0f32', []);
  const names: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]]];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    names.push(
      [`${p}.self_attn.qkv_proj.weight`, [(c.numHeads + 2 * c.numKvHeads) * c.headDim, c.hiddenSize]],
      [`${p}.self_attn.o_proj.weight`, [c.hiddenSize, c.numHeads * c.headDim]],
      [`${p}.mlp.gate_up_proj.weight`, [2 * c.intermediateSize, c.hiddenSize]],
      [`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]],
      [`${p}.input_layernorm.weight`, [c.hiddenSize]],
      [`${p}.post_attention_layernorm.weight`, [c.hiddenSize]],
    );
  }
  names.push(['model.norm.weight', [c.hiddenSize]], [`lm_head.weight${extra}`, [c.vocabSize, c.hiddenSize]]);
  let off = 0;
  const records = names.map(([name, shape]) => {
    const nbytes = shape.reduce((a, b) => a * b, 1) * 4;
    const r = { name, shape, dtype: 'float32', format: 'raw', nbytes, byteOffset: off };
    off += nbytes;
    return r;
  });
  const cache = { metadata: { ParamSize: records.length }, records: [{ dataPath: 'params_shard_0.bin', format: 'raw-shard', nbytes: off, records }] };
  return { chat, cache };
}

type Dt = 'F32' | 'F16' | 'BF16';
const key = (l: number, m: AdapterModule, role: string) =>
  `base_model.model.model.layers.${l}.${moduleParent(m)}.${m}.${role}${role === 'adapter_scaling' ? '' : '.weight'}`;

function loraPeft(opts: { targets?: AdapterModule[]; r?: number; dtype?: Dt; seed?: number; config?: object; transpose?: boolean; c?: LlamaConfig } = {}) {
  const c = opts.c ?? CONFIG;
  const targets = opts.targets ?? ['q_proj', 'k_proj', 'v_proj', 'up_proj', 'down_proj'];
  const r = opts.r ?? 4;
  const g = rng(opts.seed ?? 1);
  const tensors: SafetensorsInput[] = [];
  for (let l = 0; l < c.numLayers; l++)
    for (const m of targets) {
      const [inF, outF] = moduleFeatures(c, m);
      const a = randArray(r * inF, g);
      const b = randArray(outF * r, g);
      tensors.push({
        name: key(l, m, 'lora_A'),
        dtype: opts.dtype ?? 'F32',
        shape: opts.transpose ? [inF, r] : [r, inF],
        data: opts.transpose ? transpose(a, r, inF) : a,
      });
      tensors.push({
        name: key(l, m, 'lora_B'),
        dtype: opts.dtype ?? 'F32',
        shape: opts.transpose ? [r, outF] : [outF, r],
        data: opts.transpose ? transpose(b, outF, r) : b,
      });
    }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r,
    lora_alpha: 8,
    lora_dropout: 0.05,
    bias: 'none',
    target_modules: targets,
    fan_in_fan_out: false,
    ...opts.config,
  };
  return { config, tensors };
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

function bottleneckPeft(opts: { parallel?: boolean; targets?: AdapterModule[]; b?: number; scaling?: number | 'learned'; act?: string; seed?: number } = {}) {
  const parallel = opts.parallel ?? false;
  const targets = opts.targets ?? (parallel ? ['up_proj', 'down_proj'] : ['gate_proj', 'up_proj']);
  const b = opts.b ?? 3;
  const g = rng(opts.seed ?? 2);
  const tensors: SafetensorsInput[] = [];
  for (let l = 0; l < CONFIG.numLayers; l++)
    for (const m of targets) {
      const [inF, outF] = moduleFeatures(CONFIG, m);
      const [dIn, dOut] = parallel ? [inF, outF] : m === 'down_proj' ? [outF, outF] : [inF, inF];
      tensors.push({ name: key(l, m, 'adapter_down'), dtype: 'F32', shape: [b, dIn], data: randArray(b * dIn, g) });
      tensors.push({ name: key(l, m, 'adapter_up'), dtype: 'F32', shape: [dOut, b], data: randArray(dOut * b, g) });
      if (opts.scaling === 'learned')
        tensors.push({ name: key(l, m, 'adapter_scaling'), dtype: 'F32', shape: [1], data: new Float32Array([1 + l * 0.25 + targets.indexOf(m) * 0.125]) });
    }
  const config = {
    peft_type: 'BOTTLENECK',
    task_type: 'CAUSAL_LM',
    bottleneck_size: b,
    non_linearity: opts.act ?? 'tanh',
    adapter_dropout: 0.0,
    use_parallel_adapter: parallel,
    use_adapterp: false,
    target_modules: targets,
    scaling: opts.scaling ?? 1.0,
    bias: 'none',
    init_weights: 'bert',
  };
  return { config, tensors };
}

function input(peft: { config: object; tensors: SafetensorsInput[] }, over: Partial<ConvertAdapterInput> = {}): ConvertAdapterInput {
  const { chat, cache } = baseFiles();
  return { adapterConfig: peft.config, adapterWeights: writeSafetensors(peft.tensors), baseChatConfig: chat, baseTensorCache: cache, ...over };
}

async function expectAdapterError(p: Promise<unknown>, re: RegExp) {
  await expect(p).rejects.toThrow(AdapterError);
  await expect(p).rejects.toThrow(re);
}

// ---- adapter_config.json ---------------------------------------------------------------------

describe('parsePeftAdapterConfig', () => {
  it('LoRA: r, lora_alpha, scaling alpha/r, rslora alpha/sqrt(r), fan_in_fan_out, dropout ignored', () => {
    const c = parsePeftAdapterConfig({ peft_type: 'LORA', r: 32, lora_alpha: 64, lora_dropout: 0.05, bias: 'none', target_modules: ['q_proj', 'v_proj'] });
    expect(c).toMatchObject({
      kind: 'lora',
      r: 32,
      loraAlpha: 64,
      scaling: 2,
      useRslora: false,
      fanInFanOut: false,
      targetModules: ['q_proj', 'v_proj'],
      layersToTransform: null,
    });
    const rs = parsePeftAdapterConfig(JSON.stringify({ peft_type: 'LORA', r: 16, lora_alpha: 8, use_rslora: true, target_modules: 'q_proj' }));
    expect(rs).toMatchObject({ useRslora: true, scaling: 2, targetModules: 'q_proj' });
    expect(parsePeftAdapterConfig({ peft_type: 'LORA', r: 4, lora_alpha: 4, fan_in_fan_out: true, target_modules: ['q_proj'] })).toMatchObject({
      fanInFanOut: true,
    });
    // PEFT defaults: r 8, alpha 8, llama targets q_proj + v_proj
    expect(parsePeftAdapterConfig(new TextEncoder().encode('{"peft_type":"LORA"}'))).toMatchObject({
      r: 8,
      loraAlpha: 8,
      scaling: 1,
      targetModules: ['q_proj', 'v_proj'],
    });
    expect(parsePeftAdapterConfig({ peft_type: 'LORA', layers_to_transform: 1 })).toMatchObject({ layersToTransform: [1] });
    expect(parsePeftAdapterConfig({ peft_type: 'lora' })).toMatchObject({ peftType: 'LORA' });
    expect(parsePeftAdapterConfig({ peft_type: 'LORA', base_model_name_or_path: 'meta-llama/Llama-2-7b-hf' })).toMatchObject({
      baseModelNameOrPath: 'meta-llama/Llama-2-7b-hf',
    });
  });

  it('LoRA: a complete adapter_config.json as recent PEFT writes it parses', () => {
    const full = {
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: 'meta-llama/Llama-2-7b-hf',
      bias: 'none',
      corda_config: null,
      eva_config: null,
      exclude_modules: null,
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 64,
      lora_bias: false,
      lora_dropout: 0.05,
      megatron_config: null,
      megatron_core: 'megatron.core',
      modules_to_save: null,
      peft_type: 'LORA',
      peft_version: '0.15.2',
      qalora_group_size: 16,
      r: 32,
      rank_pattern: {},
      revision: null,
      target_modules: ['down_proj', 'k_proj', 'q_proj', 'up_proj', 'v_proj'],
      target_parameters: null,
      task_type: 'CAUSAL_LM',
      trainable_token_indices: null,
      use_dora: false,
      use_qalora: false,
      use_rslora: false,
    };
    expect(parsePeftAdapterConfig(full)).toMatchObject({ r: 32, loraAlpha: 64, scaling: 2, targetModules: full.target_modules });
  });

  it('LoRA: refuses what cannot be run: biases, modules_to_save, DoRA, per-module ranks, bad r', () => {
    const bad: [object, RegExp][] = [
      [{ bias: 'all' }, /bias = "all" is not supported/],
      [{ bias: 'lora_only' }, /bias/],
      [{ modules_to_save: ['lm_head'] }, /modules_to_save/],
      [{ use_dora: true }, /use_dora/],
      [{ rank_pattern: { q_proj: 4 } }, /rank_pattern/],
      [{ alpha_pattern: { q_proj: 4 } }, /alpha_pattern/],
      [{ r: 0 }, /r must be a positive integer/],
      [{ r: 2.5 }, /r must be a positive integer/],
      [{ lora_alpha: 'x' }, /lora_alpha must be a number/],
      [{ use_rslora: 'yes' }, /use_rslora must be true or false/],
      [{ target_modules: [] }, /target_modules/],
      [{ target_modules: 3 }, /target_modules/],
      [{ layers_to_transform: ['a'] }, /layers_to_transform/],
      [{ layer_replication: [[0, 1]] }, /layer_replication/],
    ];
    for (const [over, re] of bad) expect(() => parsePeftAdapterConfig({ peft_type: 'LORA', target_modules: ['q_proj'], ...over })).toThrow(re);
    // empty ones are fine
    expect(() => parsePeftAdapterConfig({ peft_type: 'LORA', modules_to_save: null, rank_pattern: {}, use_dora: false })).not.toThrow();
  });

  it('BOTTLENECK: defaults, series vs parallel, learned scaling, activations, use_adapterp', () => {
    const d = parsePeftAdapterConfig({ peft_type: 'BOTTLENECK', target_modules: ['gate_proj', 'up_proj'] });
    expect(d).toMatchObject({ kind: 'series', bottleneckSize: 256, nonLinearity: 'tanh', scaling: 1, useParallelAdapter: false, useAdapterp: false });
    const p = parsePeftAdapterConfig({
      peft_type: 'BOTTLENECK',
      bottleneck_size: 64,
      use_parallel_adapter: true,
      scaling: 'learned',
      non_linearity: 'gelu',
      target_modules: 'up_proj',
    });
    expect(p).toMatchObject({ kind: 'parallel', bottleneckSize: 64, scaling: 'learned', nonLinearity: 'gelu', targetModules: 'up_proj' });
    expect(parsePeftAdapterConfig({ peft_type: 'BOTTLENECK', scaling: 0.5, non_linearity: 'swish', target_modules: ['up_proj'] })).toMatchObject({
      scaling: 0.5,
      nonLinearity: 'silu',
    });
    expect(parsePeftAdapterConfig({ peft_type: 'BOTTLENECK', non_linearity: 'relu', use_adapterp: true, target_modules: ['up_proj'] })).toMatchObject({
      nonLinearity: 'relu',
      useAdapterp: true,
    });
  });

  it('BOTTLENECK: refuses unknown activations, bad scaling, biases, missing targets', () => {
    const bad: [object, RegExp][] = [
      [{ non_linearity: 'gelu_new' }, /non_linearity "gelu_new" is not supported/],
      [{ scaling: 'auto' }, /scaling must be a number or "learned"/],
      [{ bias: 'adapter_only' }, /bias/],
      [{ target_modules: null }, /target_modules is missing/],
      [{ bottleneck_size: -1 }, /bottleneck_size/],
      [{ modules_to_save: ['lm_head'] }, /modules_to_save/],
    ];
    for (const [over, re] of bad) expect(() => parsePeftAdapterConfig({ peft_type: 'BOTTLENECK', target_modules: ['up_proj'], ...over })).toThrow(re);
  });

  it('refuses unknown peft types and malformed JSON with a clear error', () => {
    expect(() => parsePeftAdapterConfig({ peft_type: 'PREFIX_TUNING' })).toThrow(/peft_type "PREFIX_TUNING" is not supported; supported: "LORA"/);
    expect(() => parsePeftAdapterConfig({})).toThrow(/peft_type undefined is not supported/);
    expect(() => parsePeftAdapterConfig('{"peft_type": ')).toThrow(/not valid JSON/);
    expect(() => parsePeftAdapterConfig('[1]')).toThrow(/must be a JSON object/);
  });
});

describe('target modules and checkpoint keys', () => {
  const lora = (t: string[] | string, extra = {}) => parsePeftAdapterConfig({ peft_type: 'LORA', target_modules: t, ...extra });
  const bn = (t: string[] | string, extra = {}) => parsePeftAdapterConfig({ peft_type: 'BOTTLENECK', target_modules: t, ...extra });
  const sets = (s: Set<AdapterModule>[]) => s.map((x) => [...x].sort());

  it('lists, regexes and all-linear select like PEFT / LLM-Adapters', () => {
    expect(sets(resolveTargets(lora(['q_proj', 'v_proj']), 2))).toEqual([
      ['q_proj', 'v_proj'],
      ['q_proj', 'v_proj'],
    ]);
    expect(sets(resolveTargets(lora('.*layers\\.1\\.self_attn\\.(q|k)_proj'), 2))).toEqual([[], ['k_proj', 'q_proj']]);
    expect(sets(resolveTargets(lora('all-linear'), 1))).toEqual([[...ADAPTER_MODULES].sort()]);
    expect(sets(resolveTargets(lora(['down_proj'], { layers_to_transform: [1] }), 2))).toEqual([[], ['down_proj']]);
    // LLM-Adapters matches with key.endswith(target): "proj" takes every projection
    // ...while a string is a regex that must match the whole key
    expect(() => resolveTargets(bn('proj', { use_parallel_adapter: true }), 1)).toThrow(/selects no module/);
    expect(sets(resolveTargets(bn('.*_proj', { use_parallel_adapter: true }), 1))).toEqual([[...ADAPTER_MODULES].sort()]);
    expect(sets(resolveTargets(bn(['proj'], { use_parallel_adapter: true }), 1))).toEqual([[...ADAPTER_MODULES].sort()]);
  });

  it('refuses unknown or unsupported targets by name', () => {
    expect(() => resolveTargets(lora(['q_proj', 'wq']), 2)).toThrow(/unknown target module "wq"/);
    expect(() => resolveTargets(lora(['lm_head']), 2)).toThrow(/selects lm_head, which is not supported/);
    expect(() => resolveTargets(lora(['embed_tokens']), 2)).toThrow(/model.embed_tokens/);
    expect(() => resolveTargets(lora('(('), 2)).toThrow(/regex/);
    expect(() => resolveTargets(lora('nothing'), 2)).toThrow(/selects no module/);
    expect(() => resolveTargets(bn(['q_proj']), 2)).toThrow(/series bottleneck adapter on q_proj is not supported/);
    expect(() => resolveTargets(lora(['proj']), 2)).toThrow(/unknown target module "proj"/); // PEFT needs a whole name part
  });

  it('maps PEFT keys to (layer, module, role)', () => {
    expect(parsePeftTensorKey('base_model.model.model.layers.12.self_attn.q_proj.lora_A.weight')).toEqual({ layer: 12, module: 'q_proj', role: 'lora_A' });
    expect(parsePeftTensorKey('base_model.model.model.layers.0.mlp.down_proj.lora_B.default.weight')).toEqual({
      layer: 0,
      module: 'down_proj',
      role: 'lora_B',
    });
    expect(parsePeftTensorKey('base_model.model.model.layers.3.mlp.up_proj.adapter_down.weight')).toEqual({
      layer: 3,
      module: 'up_proj',
      role: 'adapter_down',
    });
    expect(parsePeftTensorKey('base_model.model.model.layers.3.mlp.up_proj.adapter_up.weight')).toEqual({ layer: 3, module: 'up_proj', role: 'adapter_up' });
    expect(parsePeftTensorKey('base_model.model.model.layers.3.mlp.gate_proj.adapter_scaling')).toEqual({
      layer: 3,
      module: 'gate_proj',
      role: 'adapter_scaling',
    });
    expect(parsePeftTensorKey('model.layers.1.self_attn.v_proj.lora_B.weight')).toEqual({ layer: 1, module: 'v_proj', role: 'lora_B' });
    expect(parsePeftTensorKey('base_model.model.model.layers.0.mlp.q_proj.lora_A.weight')).toBeNull(); // wrong parent
    expect(parsePeftTensorKey('base_model.model.lm_head.weight')).toBeNull();
    expect(parsePeftTensorKey('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector')).toBeNull();
  });
});

// ---- conversion -------------------------------------------------------------------------------

describe('convertPeftAdapter', () => {
  it('LoRA: writes our records with the PEFT values, hyper-parameters and base shape', async () => {
    const peft = loraPeft();
    const { manifest, shards } = await convertPeftAdapter(input(peft, { name: 'test lora' }));
    expect(manifest).toMatchObject({
      format: 'reasoning-lab-adapter',
      version: 1,
      kind: 'lora',
      name: 'test lora',
      targets: ['q_proj', 'k_proj', 'v_proj', 'up_proj', 'down_proj'],
      lora: { r: 4, alpha: 8, rslora: false, scaling: 2 },
      base: { hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 4 },
    });
    expect(manifest.base.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.source.config).toEqual(peft.config);
    const tensors = await readAdapterTensors(manifest, shards);
    expect(tensors.size).toBe(peft.tensors.length);
    const a = tensors.get('layers.1.v_proj.lora_A')!;
    expect(Array.from(a)).toEqual(Array.from(peft.tensors.find((t) => t.name === key(1, 'v_proj', 'lora_A'))!.data));
    const rec = manifest.shards[0].records.find((r) => r.name === 'layers.0.down_proj.lora_B')!;
    expect(rec).toMatchObject({ shape: [16, 4], dtype: 'float32', nbytes: 256 });
    expect(rec.byteOffset % 16).toBe(0);
    // and the manifest reads back
    expect(parseAdapterManifest(JSON.stringify(manifest))).toEqual(manifest);
    await checkAdapterAgainstBase(manifest, baseFiles().chat, baseFiles().cache);
  });

  it('F16 stays float16 by default; BF16 becomes exact float32; --dtype overrides; shards split', async () => {
    const f16 = await convertPeftAdapter(input(loraPeft({ dtype: 'F16' })));
    expect(f16.manifest.shards[0].records[0].dtype).toBe('float16');
    const bf = await convertPeftAdapter(input(loraPeft({ dtype: 'BF16' })));
    expect(bf.manifest.shards[0].records[0].dtype).toBe('float32');
    const bfT = await readAdapterTensors(bf.manifest, bf.shards);
    for (const t of loraPeft({ dtype: 'BF16' }).tensors) {
      const p = parsePeftTensorKey(t.name)!;
      const want = bf16ArrayToF32(f32ArrayToBf16(t.data as Float32Array)); // what the file holds, exactly
      expect(Array.from(bfT.get(`layers.${p.layer}.${p.module}.${p.role}`)!)).toEqual(Array.from(want));
    }
    const forced = await convertPeftAdapter(input(loraPeft(), { dtype: 'float16', maxShardBytes: 200 }));
    expect(forced.manifest.shards.length).toBeGreaterThan(1);
    expect(forced.manifest.shards.every((s) => s.records.every((r) => r.dtype === 'float16'))).toBe(true);
    const t16 = await readAdapterTensors(forced.manifest, forced.shards);
    const f32 = await convertPeftAdapter(input(loraPeft()));
    const t32 = await readAdapterTensors(f32.manifest, f32.shards);
    for (const [name, v] of t32) for (let i = 0; i < v.length; i++) expect(Math.abs(t16.get(name)![i] - v[i])).toBeLessThan(1e-3);
  });

  it('fan_in_fan_out: transposed LoRA weights are transposed back at conversion', async () => {
    const plain = await convertPeftAdapter(input(loraPeft({ seed: 9 })));
    const tr = loraPeft({ seed: 9, transpose: true, config: { fan_in_fan_out: true } });
    const conv = await convertPeftAdapter(input(tr));
    const a = await readAdapterTensors(plain.manifest, plain.shards);
    const b = await readAdapterTensors(conv.manifest, conv.shards);
    for (const [name, v] of a) expect(Array.from(b.get(name)!)).toEqual(Array.from(v));
    // without the flag the transposed layout is a shape error
    await expectAdapterError(
      convertPeftAdapter(input(loraPeft({ seed: 9, transpose: true }))),
      /module shape mismatch: .*lora_A.weight has shape \[16, 4\] but the base model needs \[4, 16\]/,
    );
  });

  it('LoRA on some layers only: the others get zeros', async () => {
    const peft = loraPeft({ targets: ['q_proj'] });
    peft.tensors = peft.tensors.filter((t) => t.name.includes('layers.1.'));
    peft.config = { ...peft.config, layers_to_transform: [1] } as typeof peft.config;
    const { manifest, shards } = await convertPeftAdapter(input(peft));
    const t = await readAdapterTensors(manifest, shards);
    expect(t.get('layers.0.q_proj.lora_B')!.every((x) => x === 0)).toBe(true);
    expect(t.get('layers.1.q_proj.lora_B')!.some((x) => x !== 0)).toBe(true);
  });

  it('series and parallel bottlenecks: shapes, activation, float and learned scaling', async () => {
    const series = await convertPeftAdapter(input(bottleneckPeft({ act: 'silu', scaling: 0.5 })));
    expect(series.manifest).toMatchObject({
      kind: 'series',
      targets: ['gate_proj', 'up_proj'],
      bottleneck: {
        bottleneckSize: 3,
        nonLinearity: 'silu',
        scaling: 0.5,
        scales: [
          [0.5, 0.5],
          [0.5, 0.5],
        ],
      },
    });
    expect(series.manifest.shards[0].records.find((r) => r.name === 'layers.0.up_proj.adapter_up')!.shape).toEqual([16, 3]);
    const withDown = await convertPeftAdapter(input(bottleneckPeft({ targets: ['up_proj', 'down_proj'] })));
    expect(withDown.manifest.shards[0].records.find((r) => r.name === 'layers.0.down_proj.adapter_down')!.shape).toEqual([3, 16]);
    const parallel = await convertPeftAdapter(input(bottleneckPeft({ parallel: true, scaling: 'learned' })));
    expect(parallel.manifest).toMatchObject({
      kind: 'parallel',
      targets: ['up_proj', 'down_proj'],
      bottleneck: {
        scaling: 'learned',
        scales: [
          [1, 1.125],
          [1.25, 1.375],
        ],
      },
    });
    const recs = parallel.manifest.shards[0].records;
    expect(recs.find((r) => r.name === 'layers.1.down_proj.adapter_down')!.shape).toEqual([3, 24]);
    expect(recs.find((r) => r.name === 'layers.1.down_proj.adapter_up')!.shape).toEqual([16, 3]);
    expect(recs.some((r) => r.name.includes('scaling'))).toBe(false);
  });

  it('refuses mismatched or malformed adapters, naming the problem', async () => {
    // missing key
    const missing = loraPeft();
    missing.tensors = missing.tensors.filter((t) => t.name !== key(1, 'k_proj', 'lora_B'));
    await expectAdapterError(convertPeftAdapter(input(missing)), /missing key base_model\.model\.model\.layers\.1\.self_attn\.k_proj\.lora_B\.weight/);
    // fewer layers than the base
    const shallow = loraPeft({ c: { ...CONFIG, numLayers: 1 } });
    await expectAdapterError(convertPeftAdapter(input(shallow)), /missing key .*layers\.1\..*layer count mismatch/);
    // more layers than the base
    const deep = loraPeft({ c: { ...CONFIG, numLayers: 3 } });
    await expectAdapterError(convertPeftAdapter(input(deep)), /layer count mismatch: .*layer 2.*base model has 2 layers/);
    // hidden size
    const wide = loraPeft({ c: { ...CONFIG, hiddenSize: 32 } });
    await expectAdapterError(convertPeftAdapter(input(wide)), /hidden size mismatch: the adapter has 32 where the base's hidden size is 16/);
    // wrong rank
    await expectAdapterError(
      convertPeftAdapter(input(loraPeft({ config: { r: 8 } }))),
      /module shape mismatch: .*q_proj\.lora_A\.weight has shape \[4, 16\] but the base model needs \[8, 16\]/,
    );
    // wrong bottleneck size
    await expectAdapterError(
      convertPeftAdapter(input({ ...bottleneckPeft(), config: { ...bottleneckPeft().config, bottleneck_size: 5 } })),
      /module shape mismatch: .*adapter_down/,
    );
    // a key the config does not select
    const extra = loraPeft({ targets: ['q_proj'] });
    extra.tensors.push(...loraPeft({ targets: ['o_proj'] }).tensors);
    await expectAdapterError(convertPeftAdapter(input(extra)), /o_proj\.lora_A\.weight is not selected by target_modules/);
    // something that is not an adapter weight (modules_to_save left in the file, a bias)
    const head = loraPeft();
    head.tensors.push({ name: 'base_model.model.lm_head.weight', dtype: 'F32', shape: [2], data: new Float32Array(2) });
    await expectAdapterError(convertPeftAdapter(input(head)), /unexpected tensor base_model\.model\.lm_head\.weight/);
    // LoRA keys in a bottleneck config
    await expectAdapterError(
      convertPeftAdapter(input({ config: bottleneckPeft().config, tensors: loraPeft({ targets: ['gate_proj', 'up_proj'] }).tensors })),
      /does not belong to a BOTTLENECK adapter/,
    );
    // learned scaling without the scalars
    const noScale = bottleneckPeft();
    await expectAdapterError(
      convertPeftAdapter(input({ ...noScale, config: { ...noScale.config, scaling: 'learned' } })),
      /missing key .*gate_proj\.adapter_scaling/,
    );
    // scalars without learned scaling
    const scaled = bottleneckPeft({ scaling: 'learned' });
    await expectAdapterError(
      convertPeftAdapter(input({ ...scaled, config: { ...scaled.config, scaling: 1.0 } })),
      /adapter_scaling is only used with scaling "learned"/,
    );
    // unknown peft type / target
    await expectAdapterError(convertPeftAdapter(input({ ...loraPeft(), config: { peft_type: 'IA3' } })), /peft_type "IA3" is not supported/);
    await expectAdapterError(convertPeftAdapter(input(loraPeft({ config: { target_modules: ['q_proj', 'query'] } }))), /unknown target module "query"/);
    // a truncated safetensors file
    const bytes = writeSafetensors(loraPeft().tensors);
    await expectAdapterError(convertPeftAdapter(input(loraPeft(), { adapterWeights: bytes.subarray(0, bytes.length - 10) })), /truncated/);
  });
});

describe('base fingerprint and loading checks', () => {
  it('is stable, and changes with the records, the shard hashes or the architecture', async () => {
    const { chat, cache } = baseFiles();
    const fp = await baseFingerprint(chat, cache);
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(await baseFingerprint(JSON.stringify(chat), JSON.stringify(cache))).toBe(fp);
    // context window is a run-time choice, not part of the weights
    expect(await baseFingerprint({ ...chat, context_window_size: 99 }, cache)).toBe(fp);
    const renamed = baseFiles(CONFIG, '_x');
    expect(await baseFingerprint(renamed.chat, renamed.cache)).not.toBe(fp);
    const hashed = structuredClone(cache) as { records: { md5sum?: string }[] };
    hashed.records[0].md5sum = '0123456789abcdef0123456789abcdef';
    expect(await baseFingerprint(chat, hashed)).not.toBe(fp);
    const q = { ...chat, quantization: 'q0f16' };
    expect(await baseFingerprint(q, cache)).not.toBe(fp);
  });

  it('refuses an adapter on a different base: shape first, then fingerprint', async () => {
    const { manifest } = await convertPeftAdapter(input(loraPeft()));
    const other = baseFiles({ ...CONFIG, numLayers: 3, hiddenSize: 32, headDim: 8 });
    await expect(checkAdapterAgainstBase(manifest, other.chat, other.cache)).rejects.toThrow(
      /this adapter was made for a different base model: hidden size 16 \(adapter\) vs 32 \(base\), layer count 2 \(adapter\) vs 3 \(base\)/,
    );
    const renamed = baseFiles(CONFIG, '_x');
    await expect(checkAdapterAgainstBase(manifest, renamed.chat, renamed.cache)).rejects.toThrow(
      /this adapter was made for a different base model: its base fingerprint is/,
    );
  });

  it('readAdapterTensors detects missing, truncated and corrupt shards; parseAdapterManifest rejects junk', async () => {
    const { manifest, shards } = await convertPeftAdapter(input(loraPeft()));
    const path = manifest.shards[0].dataPath;
    await expect(readAdapterTensors(manifest, new Map())).rejects.toThrow(/adapter shard adapter_shard_0.bin is missing/);
    await expect(readAdapterTensors(manifest, new Map([[path, shards.get(path)!.subarray(1)]]))).rejects.toThrow(/truncated/);
    const corrupt = shards.get(path)!.slice();
    corrupt[5] ^= 1;
    await expect(readAdapterTensors(manifest, new Map([[path, corrupt]]))).rejects.toThrow(/corrupt/);
    expect(() => parseAdapterManifest({ ...manifest, format: 'x' })).toThrow(/format must be "reasoning-lab-adapter"/);
    expect(() => parseAdapterManifest({ ...manifest, version: 9 })).toThrow(/version 9 is not supported/);
    expect(() => parseAdapterManifest({ ...manifest, targets: ['wq'] })).toThrow(/targets/);
    expect(() => parseAdapterManifest({ ...manifest, shards: [{ ...manifest.shards[0], dataPath: '../x' }] })).toThrow(/plain file name/);
    expect(() => parseAdapterManifest({ ...manifest, lora: undefined })).toThrow(/lora.r/);
  });
});

describe('converted adapters in the reference model', () => {
  it('a converted LoRA / series / parallel adapter runs the same maths as the PEFT tensors directly', async () => {
    const g = rng(77);
    const w = new Map<string, Float32Array>();
    const c = CONFIG;
    w.set('model.embed_tokens.weight', randArray(c.vocabSize * c.hiddenSize, g, 1));
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      w.set(`${p}.self_attn.qkv_proj.weight`, randArray((c.numHeads + 2 * c.numKvHeads) * c.headDim * c.hiddenSize, g));
      w.set(`${p}.self_attn.o_proj.weight`, randArray(c.hiddenSize * c.numHeads * c.headDim, g));
      w.set(`${p}.mlp.gate_up_proj.weight`, randArray(2 * c.intermediateSize * c.hiddenSize, g));
      w.set(`${p}.mlp.down_proj.weight`, randArray(c.hiddenSize * c.intermediateSize, g));
      w.set(`${p}.input_layernorm.weight`, new Float32Array(c.hiddenSize).fill(1));
      w.set(`${p}.post_attention_layernorm.weight`, new Float32Array(c.hiddenSize).fill(1));
    }
    w.set('model.norm.weight', new Float32Array(c.hiddenSize).fill(1));
    w.set('lm_head.weight', randArray(c.vocabSize * c.hiddenSize, g));
    const base = new ReferenceLlama(c, w).forward([1, 2, 3]);

    const lora = loraPeft({ targets: ['q_proj', 'up_proj'] });
    const bnS = bottleneckPeft({ scaling: 'learned' });
    const bnP = bottleneckPeft({ parallel: true, act: 'gelu', scaling: 2 });
    const byName = (p: { tensors: SafetensorsInput[] }) => new Map(p.tensors.map((t) => [t.name, t.data as Float32Array]));
    const direct: ReferenceAdapter[] = [
      {
        kind: 'lora',
        r: 4,
        scaling: 2,
        layers: [0, 1].map((l) => ({
          q_proj: { a: byName(lora).get(key(l, 'q_proj', 'lora_A'))!, b: byName(lora).get(key(l, 'q_proj', 'lora_B'))! },
          up_proj: { a: byName(lora).get(key(l, 'up_proj', 'lora_A'))!, b: byName(lora).get(key(l, 'up_proj', 'lora_B'))! },
        })),
      },
      {
        kind: 'series',
        bottleneckSize: 3,
        activation: 'tanh',
        layers: [0, 1].map((l) =>
          Object.fromEntries(
            (['gate_proj', 'up_proj'] as AdapterModule[]).map((m) => [
              m,
              {
                down: byName(bnS).get(key(l, m, 'adapter_down'))!,
                up: byName(bnS).get(key(l, m, 'adapter_up'))!,
                scaling: byName(bnS).get(key(l, m, 'adapter_scaling'))![0],
              },
            ]),
          ),
        ),
      },
      {
        kind: 'parallel',
        bottleneckSize: 3,
        activation: 'gelu',
        layers: [0, 1].map((l) =>
          Object.fromEntries(
            (['up_proj', 'down_proj'] as AdapterModule[]).map((m) => [
              m,
              { down: byName(bnP).get(key(l, m, 'adapter_down'))!, up: byName(bnP).get(key(l, m, 'adapter_up'))!, scaling: 2 },
            ]),
          ),
        ),
      },
    ];
    const pefts = [lora, bnS, bnP];
    for (let i = 0; i < 3; i++) {
      const { manifest, shards } = await convertPeftAdapter(input(pefts[i]));
      const converted = referenceAdapterFromManifest(manifest, await readAdapterTensors(manifest, shards));
      const a = new ReferenceLlama(c, w, converted).forward([1, 2, 3]);
      const b = new ReferenceLlama(c, w, direct[i]).forward([1, 2, 3]);
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(Array.from(a)).not.toEqual(Array.from(base));
    }
  });
});

// ---- CLI --------------------------------------------------------------------------------------

describe('npm run convert-adapter', () => {
  const root = mkdtempSync(join(tmpdir(), 'convert-adapter-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function writePeftDir(dir: string, peft: { config: object; tensors: SafetensorsInput[] }) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(peft.config));
    writeFileSync(join(dir, 'adapter_model.safetensors'), writeSafetensors(peft.tensors));
  }
  function writeBaseDir(dir: string) {
    const { chat, cache } = baseFiles();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'mlc-chat-config.json'), JSON.stringify(chat));
    writeFileSync(join(dir, 'tensor-cache.json'), JSON.stringify(cache));
  }

  it('converts a PEFT directory end to end (the real CLI), and the output loads and checks', async () => {
    const peftDir = join(root, 'peft-lora');
    const baseDir = join(root, 'base');
    const outDir = join(root, 'out', 'lora');
    writePeftDir(peftDir, loraPeft({ dtype: 'BF16' }));
    writeBaseDir(baseDir);
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/convertAdapter.ts', '--in', peftDir, '--base', baseDir, '--out', outDir], {
      encoding: 'utf8',
    });
    expect(stdout).toMatch(/wrote .*lora: lora adapter "peft-lora" on q_proj, k_proj, v_proj, up_proj, down_proj \(r=4 alpha=8 scaling=2\)/);
    expect(readdirSync(outDir).sort()).toEqual(['adapter.json', 'adapter_shard_0.bin']);
    const manifest = parseAdapterManifest(readFileSync(join(outDir, 'adapter.json'), 'utf8'));
    await checkAdapterAgainstBase(
      manifest,
      JSON.parse(readFileSync(join(baseDir, 'mlc-chat-config.json'), 'utf8')),
      JSON.parse(readFileSync(join(baseDir, 'tensor-cache.json'), 'utf8')),
    );
    const tensors = await readAdapterTensors(manifest, new Map([['adapter_shard_0.bin', readFileSync(join(outDir, 'adapter_shard_0.bin'))]]));
    expect(tensors.size).toBe(20);
  }, 30_000);

  /**
   * torch.save's zip layout for float32 tensors, written opcode by opcode as torch 1.13 pickles a
   * state dict (OrderedDict of _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())).
   * The reader itself is checked against files real torch.save wrote (formats-torchPickle.test.ts);
   * this one only carries a known adapter through the .bin path of the converter.
   */
  function torchSaveZip(tensors: SafetensorsInput[]): Uint8Array {
    const b: number[] = [0x80, 0x02];
    const str = (x: string) => {
      const u = new TextEncoder().encode(x);
      b.push(0x58, u.length & 255, (u.length >> 8) & 255, 0, 0, ...u);
    };
    const int = (n: number) => b.push(0x4a, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255);
    const glob = (m: string, n: string) => b.push(0x63, ...new TextEncoder().encode(`${m}\n${n}\n`));
    const tuple = (xs: number[]) => (b.push(0x28), xs.forEach(int), b.push(0x74));
    const files: Record<string, Uint8Array> = {};
    glob('collections', 'OrderedDict');
    b.push(0x29, 0x52, 0x28); // OrderedDict(), MARK
    tensors.forEach((t, i) => {
      const data = t.data as Float32Array;
      files[`archive/data/${i}`] = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      str(t.name);
      glob('torch._utils', '_rebuild_tensor_v2');
      b.push(0x28, 0x28); // MARK (args), MARK (persistent id)
      str('storage');
      glob('torch', 'FloatStorage');
      str(String(i));
      str('cpu');
      int(data.length);
      b.push(0x74, 0x51); // TUPLE, BINPERSID
      int(0);
      tuple(t.shape);
      tuple(t.shape.map((_, d) => t.shape.slice(d + 1).reduce((x, y) => x * y, 1)));
      b.push(0x89); // False
      glob('collections', 'OrderedDict');
      b.push(0x29, 0x52, 0x74, 0x52); // OrderedDict(), TUPLE (args), REDUCE
    });
    b.push(0x75, 0x2e); // SETITEMS, STOP
    files['archive/data.pkl'] = new Uint8Array(b);
    files['archive/version'] = new TextEncoder().encode('3\n');
    return zipSync(files, { level: 0 });
  }

  it('adapter_model.bin (torch.save zip) converts to exactly what adapter_model.safetensors does', async () => {
    const baseDir = join(root, 'base-bin');
    writeBaseDir(baseDir);
    const peft = loraPeft({ seed: 7 });
    const stDir = join(root, 'peft-st');
    writePeftDir(stDir, peft);
    const binDir = join(root, 'peft-pt');
    mkdirSync(binDir);
    writeFileSync(join(binDir, 'adapter_config.json'), JSON.stringify(peft.config));
    writeFileSync(join(binDir, 'adapter_model.bin'), torchSaveZip(peft.tensors));
    const fromSt = await convertAdapterDir({ inDir: stDir, baseDir, outDir: join(root, 'out-st'), name: 'same' });
    const fromBin = await convertAdapterDir({ inDir: binDir, baseDir, outDir: join(root, 'out-pt'), name: 'same' });
    expect(fromBin).toEqual(fromSt);
    expect(readFileSync(join(root, 'out-pt', 'adapter_shard_0.bin')).equals(readFileSync(join(root, 'out-st', 'adapter_shard_0.bin')))).toBe(true);
  });

  it('writes nothing on error, and refuses to overwrite without --force', async () => {
    const baseDir = join(root, 'base2');
    writeBaseDir(baseDir);
    const bad = loraPeft();
    bad.tensors.pop();
    const badDir = join(root, 'peft-bad');
    writePeftDir(badDir, bad);
    const outDir = join(root, 'out2', 'bad');
    await expect(convertAdapterDir({ inDir: badDir, baseDir, outDir })).rejects.toThrow(/missing key/);
    expect(existsSync(outDir)).toBe(false);
    expect(existsSync(join(root, 'out2')) ? readdirSync(join(root, 'out2')) : []).toEqual([]);

    const goodDir = join(root, 'peft-series');
    writePeftDir(goodDir, bottleneckPeft({ scaling: 'learned' }));
    const out = join(root, 'out2', 'series');
    const m = await convertAdapterDir({ inDir: goodDir, baseDir, outDir: out, name: 'Series' });
    expect(m).toMatchObject({ kind: 'series', name: 'Series' });
    await expect(convertAdapterDir({ inDir: goodDir, baseDir, outDir: out })).rejects.toThrow(/already exists.*--force/);
    await convertAdapterDir({ inDir: goodDir, baseDir, outDir: out, force: true, name: 'Series 2' });
    expect(JSON.parse(readFileSync(join(out, 'adapter.json'), 'utf8')).name).toBe('Series 2');
    expect(readdirSync(join(root, 'out2')).sort()).toEqual(['series']);
    // a base directory that is not one
    await expect(convertAdapterDir({ inDir: goodDir, baseDir: root, outDir: join(root, 'x') })).rejects.toThrow(/mlc-chat-config.json/);
    // a .bin-only PEFT directory whose .bin is not a torch.save file
    const binDir = join(root, 'peft-bin');
    mkdirSync(binDir);
    writeFileSync(join(binDir, 'adapter_config.json'), JSON.stringify(bad.config));
    writeFileSync(join(binDir, 'adapter_model.bin'), 'x');
    await expect(convertAdapterDir({ inDir: binDir, baseDir, outDir: join(root, 'y') })).rejects.toThrow(
      /adapter_model\.bin is neither a zip nor a legacy torch\.save file/,
    );
    expect(existsSync(join(root, 'y'))).toBe(false);
  });
});
