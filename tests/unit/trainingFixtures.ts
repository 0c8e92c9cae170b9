/**
 * The unit tests' tiny Llama config, and tiny seeded models and trainable adapters for the training
 * tests (not a test file itself).
 * Weights come from a seed (random.ts / syntheticModel.ts); nothing here is an expected value.
 */
import type { LlamaConfig, QuantMode } from '../../src/formats/llamaConfig.ts';
import { moduleFeatures, type AdapterActivation, type AdapterModule } from '../../src/formats/adapterFormat.ts';
import { Rng } from '../../src/formats/random.ts';
import { syntheticModelSource } from '../../src/formats/syntheticModel.ts';
import { iterateShardTensors, loadModelManifest } from '../../src/formats/modelFiles.ts';
import { referenceWeightsFromRecords, type ReferenceAdapter } from '../../src/engine/reference.ts';
import type { TrainableAdapter } from '../../src/engine/referenceTraining.ts';

export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    vocabSize: 40,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    contextWindowSize: 64,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
    ...over,
  };
}

/** Dense random weights with O(1) activations (so every gradient is well away from zero). */
export function randomWeights(c: LlamaConfig, seed = 1): Map<string, Float32Array> {
  const r = new Rng(seed);
  const u = (n: number, s: number) => r.uniformArray(n, -s, s);
  const ones = (n: number) => r.uniformArray(n, 0.75, 1.25);
  const w = new Map<string, Float32Array>();
  const { hiddenSize: d, intermediateSize: f, numHeads: H, numKvHeads: KV, headDim: hd, vocabSize: V } = c;
  w.set('model.embed_tokens.weight', u(V * d, 1));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    w.set(`${p}.self_attn.qkv_proj.weight`, u((H + 2 * KV) * hd * d, 0.5));
    w.set(`${p}.self_attn.o_proj.weight`, u(d * H * hd, 0.5));
    w.set(`${p}.mlp.gate_up_proj.weight`, u(2 * f * d, 0.5));
    w.set(`${p}.mlp.down_proj.weight`, u(d * f, 0.5));
    w.set(`${p}.input_layernorm.weight`, ones(d));
    w.set(`${p}.post_attention_layernorm.weight`, ones(d));
  }
  w.set('model.norm.weight', ones(d));
  if (!c.tieWordEmbeddings) w.set('lm_head.weight', u(V * d, 0.5));
  return w;
}

/** A synthetic converted model (syntheticModel.ts) in any mode, as dense reference weights (q4 dequantized). */
export async function syntheticWeights(c: LlamaConfig, mode: QuantMode, seed = 3): Promise<Map<string, Float32Array>> {
  const source = syntheticModelSource(c, mode, seed);
  const { cache, mode: m } = await loadModelManifest(source);
  const records = new Map<string, Float32Array | Uint32Array>();
  const shapes = new Map<string, number[]>();
  for await (const shard of iterateShardTensors(source, cache)) {
    for (const { record, data } of shard.records) {
      records.set(record.name, data);
      shapes.set(record.name, record.shape);
    }
  }
  return referenceWeightsFromRecords(records, shapes, m);
}

/** [d_in, d_out] of a bottleneck adapter on a module (LLM-Adapters: series gate/up in->in, down out->out). */
export function bottleneckDims(c: LlamaConfig, kind: 'series' | 'parallel', m: AdapterModule): [number, number] {
  const [inF, outF] = moduleFeatures(c, m);
  if (kind === 'parallel') return [inF, outF];
  return m === 'down_proj' ? [outF, outF] : [inF, inF];
}

/** A random, non-zero trainable adapter (f32 values, so reference.ts can run the same adapter). */
export function randomTrainableAdapter(
  c: LlamaConfig,
  kind: 'lora' | 'series' | 'parallel',
  targets: AdapterModule[],
  seed = 7,
  o: { r?: number; std?: number; activation?: AdapterActivation; scaling?: number } = {},
): TrainableAdapter {
  const rng = new Rng(seed);
  const r = o.r ?? 3;
  const std = o.std ?? 0.3;
  if (kind === 'lora') {
    return {
      kind,
      r,
      scaling: o.scaling ?? 2,
      layers: Array.from({ length: c.numLayers }, () =>
        Object.fromEntries(
          targets.map((m) => {
            const [inF, outF] = moduleFeatures(c, m);
            return [m, { a: rng.normalArray(r * inF, std), b: rng.normalArray(outF * r, std) }];
          }),
        ),
      ),
    };
  }
  return {
    kind,
    bottleneckSize: r,
    activation: o.activation ?? 'tanh',
    layers: Array.from({ length: c.numLayers }, () =>
      Object.fromEntries(
        targets.map((m) => {
          const [dIn, dOut] = bottleneckDims(c, kind, m);
          return [m, { down: rng.normalArray(r * dIn, std), up: rng.normalArray(dOut * r, std), scaling: o.scaling ?? 0.8 }];
        }),
      ),
    ),
  };
}

/** The same adapter in reference.ts's form (f32). */
export function toReferenceAdapter(a: TrainableAdapter): ReferenceAdapter {
  const f32 = (t: Float32Array | Float64Array) => Float32Array.from(t);
  if (a.kind === 'lora') {
    return {
      kind: 'lora',
      r: a.r,
      scaling: a.scaling,
      layers: a.layers.map((L) => Object.fromEntries(Object.entries(L).map(([m, t]) => [m, { a: f32(t.a), b: f32(t.b) }]))),
    };
  }
  return {
    kind: a.kind,
    bottleneckSize: a.bottleneckSize,
    activation: a.activation,
    layers: a.layers.map((L) => Object.fromEntries(Object.entries(L).map(([m, t]) => [m, { down: f32(t.down), up: f32(t.up), scaling: t.scaling }]))),
  };
}

/** The adapter with every tensor copied to f64 (so finite differences can nudge them). */
export function toF64(a: TrainableAdapter): TrainableAdapter {
  const f64 = (t: Float32Array | Float64Array) => Float64Array.from(t);
  if (a.kind === 'lora') return { ...a, layers: a.layers.map((L) => Object.fromEntries(Object.entries(L).map(([m, t]) => [m, { a: f64(t.a), b: f64(t.b) }]))) };
  return {
    ...a,
    layers: a.layers.map((L) => Object.fromEntries(Object.entries(L).map(([m, t]) => [m, { down: f64(t.down), up: f64(t.up), scaling: t.scaling }]))),
  };
}
