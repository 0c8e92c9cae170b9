/**
 * The reference training pass (src/engine/referenceTraining.ts) against two oracles:
 * - its logits against reference.ts's forward (the inference oracle) for the same weights;
 * - every adapter gradient against central finite differences of its own f64 loss.
 *
 * Finite differences: the fourth-order central stencil
 *   f'(x) ≈ (f(x−2h) − 8 f(x−h) + 8 f(x+h) − f(x+2h)) / (12 h),  h = 1e-3,
 * truncation error O(h⁴) ≈ 1e-12 and rounding error ≈ 1e-16 · |loss| / h ≈ 1e-12 in f64.
 * Bound (stated): |analytic − fd| ≤ 1e-6 · max(|analytic|, |fd|) + 1e-9 for every checked entry.
 */
import { describe, expect, it } from 'vitest';
import { ReferenceLlama, activate } from '../../src/engine/reference.ts';
import {
  IGNORE_INDEX,
  activationDerivative,
  dropoutMaskKey,
  makeDropoutMask,
  trainingForward,
  trainingLossAndGrads,
  type DropoutMasks,
  type TrainableAdapter,
  type TrainingBatch,
  type TrainingOptions,
} from '../../src/engine/referenceTraining.ts';
import type { LlamaConfig } from '../../src/formats/llamaConfig.ts';
import { ADAPTER_MODULES, type AdapterModule } from '../../src/formats/adapterFormat.ts';
import { Rng } from '../../src/formats/random.ts';
import { dropoutStream } from '../../src/engine/dropout.ts';
import { bottleneckDims, randomTrainableAdapter, randomWeights, syntheticWeights, tinyConfig, toF64, toReferenceAdapter } from './trainingFixtures.ts';

const H = 1e-3;
const REL = 1e-6;
const ABS = 1e-9;

function randomBatch(c: LlamaConfig, B: number, T: number, seed: number): TrainingBatch {
  const rng = new Rng(seed);
  const inputIds = Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(c.vocabSize)));
  return { inputIds, labels: inputIds.map((s) => s.slice()) };
}

/** Tensors of an adapter by name, for iteration. */
function adapterTensors(a: TrainableAdapter): Array<{ name: string; t: Float32Array | Float64Array; layer: number; module: AdapterModule; role: string }> {
  const out: Array<{ name: string; t: Float32Array | Float64Array; layer: number; module: AdapterModule; role: string }> = [];
  a.layers.forEach((L, layer) => {
    for (const [module, m] of Object.entries(L) as Array<[AdapterModule, Record<string, unknown>]>) {
      for (const role of ['a', 'b', 'down', 'up']) {
        if (role in m) out.push({ name: `layers.${layer}.${module}.${role}`, t: m[role] as Float64Array, layer, module, role });
      }
    }
  });
  return out;
}

function sampleIndices(n: number, k: number, rng: Rng): number[] {
  if (n <= k + 10) return Array.from({ length: n }, (_, i) => i);
  const picked = new Set<number>();
  while (picked.size < k) picked.add(rng.int(n));
  return [...picked];
}

function fdDerivative(f: () => number, t: Float64Array, i: number): number {
  const v = t[i];
  const at = (d: number) => {
    t[i] = v + d;
    const y = f();
    t[i] = v;
    return y;
  };
  return (at(-2 * H) - 8 * at(-H) + 8 * at(H) - at(2 * H)) / (12 * H);
}

/** Checks every adapter tensor (all entries, or 50 seeded ones when larger) against finite differences. */
function checkGradients(
  c: LlamaConfig,
  w: Map<string, Float32Array>,
  adapter32: TrainableAdapter,
  batch: TrainingBatch,
  opts: TrainingOptions = {},
  perTensor = 50,
): number {
  const adapter = toF64(adapter32);
  const { grads } = trainingLossAndGrads(c, w, adapter, batch, opts);
  const loss = () => trainingForward(c, w, adapter, batch, opts).loss;
  const rng = new Rng(99);
  let checked = 0;
  let worst = 0;
  for (const { name, t, layer, module, role } of adapterTensors(adapter)) {
    const g = (grads[layer][module] as Record<string, Float64Array>)[role];
    expect(g.length, name).toBe(t.length);
    for (const i of sampleIndices(t.length, perTensor, rng)) {
      const fd = fdDerivative(loss, t as Float64Array, i);
      const err = Math.abs(g[i] - fd);
      const bound = REL * Math.max(Math.abs(g[i]), Math.abs(fd)) + ABS;
      worst = Math.max(worst, err / bound);
      if (err > bound) expect.fail(`${name}[${i}]: analytic ${g[i]} vs finite difference ${fd} (error ${err}, bound ${bound})`);
      checked++;
    }
  }
  expect(worst).toBeLessThanOrEqual(1);
  return checked;
}

/** logits of the training pass vs reference.ts's forwardAll, for every sequence of an unpadded batch */
function checkLogitsAgainstReference(
  c: LlamaConfig,
  w: Map<string, Float32Array>,
  adapter: TrainableAdapter | undefined,
  batch: TrainingBatch,
  lengths?: number[],
): void {
  const res = trainingForward(c, w, adapter, batch);
  const T = batch.inputIds[0].length;
  const V = c.vocabSize;
  const ref = new ReferenceLlama(c, w, adapter ? toReferenceAdapter(adapter) : undefined);
  let lossSum = 0;
  let count = 0;
  batch.inputIds.forEach((seq, b) => {
    const len = lengths?.[b] ?? T;
    ref.reset();
    const logits = ref.forwardAll(seq.slice(0, len));
    for (let t = 0; t < len; t++) {
      let maxAbs = 0;
      for (let j = 0; j < V; j++) maxAbs = Math.max(maxAbs, Math.abs(logits[t][j]));
      for (let j = 0; j < V; j++) {
        const got = res.logits[(b * T + t) * V + j];
        if (Math.abs(got - logits[t][j]) > 1e-4 * (1 + maxAbs)) expect.fail(`seq ${b} pos ${t} logit ${j}: training ${got} vs reference ${logits[t][j]}`);
      }
      // the loss from reference.ts's logits: transformers' shift-by-one mean cross-entropy
      const y = batch.labels[b][t + 1];
      if (t + 1 < T && y !== IGNORE_INDEX) {
        const max = Math.max(...logits[t]);
        const lse = max + Math.log(logits[t].reduce((s, v) => s + Math.exp(v - max), 0));
        lossSum += lse - logits[t][y];
        count++;
      }
    }
  });
  expect(res.numTokens).toBe(count);
  expect(Math.abs(res.loss - lossSum / count)).toBeLessThan(1e-4 * (1 + Math.abs(res.loss)));
}

const c = tinyConfig();
const w = randomWeights(c, 11);
const ALL = [...ADAPTER_MODULES];
const CASES: Array<{ label: string; adapter: TrainableAdapter }> = [
  { label: 'LoRA on q,k,v,o,gate,up,down', adapter: randomTrainableAdapter(c, 'lora', ALL, 5) },
  { label: 'series (tanh) on gate,up,down', adapter: randomTrainableAdapter(c, 'series', ['gate_proj', 'up_proj', 'down_proj'], 6, { activation: 'tanh' }) },
  { label: 'series (silu)', adapter: randomTrainableAdapter(c, 'series', ['gate_proj', 'up_proj', 'down_proj'], 8, { activation: 'silu' }) },
  { label: 'parallel (gelu) on every module', adapter: randomTrainableAdapter(c, 'parallel', ALL, 9, { activation: 'gelu' }) },
  { label: 'parallel (tanh) on up,down', adapter: randomTrainableAdapter(c, 'parallel', ['up_proj', 'down_proj'], 10, { activation: 'tanh' }) },
];

describe('activation derivatives = finite differences of reference.ts activate', () => {
  for (const act of ['tanh', 'relu', 'silu', 'gelu'] as const) {
    it(act, () => {
      for (const x of [-3.1, -1.2, -0.4, 0.3, 0.9, 2.5]) {
        const h = 1e-4;
        const fd = (activate(act, x - 2 * h) - 8 * activate(act, x - h) + 8 * activate(act, x + h) - activate(act, x + 2 * h)) / (12 * h);
        expect(Math.abs(activationDerivative(act, x) - fd)).toBeLessThan(1e-9);
      }
    });
  }
});

describe('reference training forward = reference.ts forward', () => {
  const batch = randomBatch(c, 2, 7, 1);
  it('base model without adapter', () => checkLogitsAgainstReference(c, w, undefined, batch));
  for (const { label, adapter } of CASES) it(label, () => checkLogitsAgainstReference(c, w, adapter, batch));
  it('relu bottleneck', () => checkLogitsAgainstReference(c, w, randomTrainableAdapter(c, 'parallel', ALL, 12, { activation: 'relu' }), batch));
  it('tied embeddings, no GQA', () => {
    const c2 = tinyConfig({ tieWordEmbeddings: true, numKvHeads: 4 });
    checkLogitsAgainstReference(c2, randomWeights(c2, 4), randomTrainableAdapter(c2, 'lora', ALL, 3), randomBatch(c2, 2, 5, 2));
  });
});

describe('reference training gradients = finite differences', () => {
  const batch = randomBatch(c, 2, 6, 2);
  for (const { label, adapter } of CASES) {
    it(label, () => {
      expect(checkGradients(c, w, adapter, batch)).toBeGreaterThan(100);
    });
  }

  it('tied embeddings, one kv head per query head, batch of 3', () => {
    const c2 = tinyConfig({ tieWordEmbeddings: true, numKvHeads: 4, numLayers: 1 });
    expect(checkGradients(c2, randomWeights(c2, 8), randomTrainableAdapter(c2, 'lora', ALL, 13), randomBatch(c2, 3, 4, 9))).toBeGreaterThan(100);
  });

  it('dLoss/dInputEmbedding', () => {
    const adapter = toF64(CASES[0].adapter);
    const N = 2 * 6;
    const emb = new Float64Array(N * c.hiddenSize);
    const E = w.get('model.embed_tokens.weight')!;
    batch.inputIds.flat().forEach((id, i) => emb.set(E.subarray(id * c.hiddenSize, (id + 1) * c.hiddenSize), i * c.hiddenSize));
    const { inputEmbeddingGrad } = trainingLossAndGrads(c, w, adapter, batch, { inputEmbeddings: emb });
    const rng = new Rng(5);
    for (const i of sampleIndices(emb.length, 60, rng)) {
      const fd = fdDerivative(() => trainingForward(c, w, adapter, batch, { inputEmbeddings: emb }).loss, emb, i);
      expect(Math.abs(inputEmbeddingGrad[i] - fd)).toBeLessThanOrEqual(REL * Math.max(Math.abs(fd), Math.abs(inputEmbeddingGrad[i])) + ABS);
    }
    // without the override, the embedding lookup gives the same gradient
    const plain = trainingLossAndGrads(c, w, adapter, batch);
    for (let i = 0; i < emb.length; i++) expect(plain.inputEmbeddingGrad[i]).toBeCloseTo(inputEmbeddingGrad[i], 12);
  });
});

describe('converted bases: q0f32 and q4f32_1 (frozen dequantized q4)', () => {
  // q4 needs widths that are multiples of 32
  const cq = tinyConfig({ hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKvHeads: 2, headDim: 8, vocabSize: 48 });
  for (const mode of ['q0f32', 'q4f32_1'] as const) {
    for (const kind of ['lora', 'series', 'parallel'] as const) {
      it(`${mode} ${kind}`, async () => {
        const wq = await syntheticWeights(cq, mode, 21);
        const targets: AdapterModule[] =
          kind === 'lora' ? ['q_proj', 'v_proj', 'up_proj', 'down_proj'] : kind === 'series' ? ['gate_proj', 'up_proj', 'down_proj'] : ['up_proj', 'down_proj'];
        const adapter = randomTrainableAdapter(cq, kind, targets, 31, { std: 1.0, r: 2 });
        const batch = randomBatch(cq, 2, 5, 3);
        checkLogitsAgainstReference(cq, wq, adapter, batch);
        expect(checkGradients(cq, wq, adapter, batch, {}, 50)).toBeGreaterThan(200);
      });
    }
  }
});

describe('right padding and -100 labels', () => {
  // sequence 0 has 7 real tokens, sequence 1 has 4, then pads (id 0) labelled -100; sequence 0 also
  // has its first three labels masked (a prompt with train_on_inputs=False)
  const lengths = [7, 4];
  const base = randomBatch(c, 2, 7, 4);
  const batch: TrainingBatch = {
    inputIds: base.inputIds.map((s, b) => s.map((id, t) => (t < lengths[b] ? id : 0))),
    labels: base.inputIds.map((s, b) => s.map((id, t) => (t < lengths[b] && !(b === 0 && t < 3) ? id : IGNORE_INDEX))),
  };
  for (const { label, adapter } of CASES.slice(0, 4)) {
    it(`${label}: real tokens' logits equal the unpadded forward; gradients match`, () => {
      checkLogitsAgainstReference(c, w, adapter, batch, lengths);
      expect(checkGradients(c, w, adapter, batch)).toBeGreaterThan(100);
    });
  }
  it('pad token ids do not change the loss or gradients', () => {
    const other: TrainingBatch = { inputIds: batch.inputIds.map((s, b) => s.map((id, t) => (t < lengths[b] ? id : 5))), labels: batch.labels };
    const a = trainingLossAndGrads(c, w, toF64(CASES[0].adapter), batch);
    const b = trainingLossAndGrads(c, w, toF64(CASES[0].adapter), other);
    expect(b.loss).toBe(a.loss);
    expect(b.numTokens).toBe(6 - 2 + 3);
    const ga = a.grads[1].q_proj as { a: Float64Array };
    const gb = b.grads[1].q_proj as { a: Float64Array };
    expect(Array.from(gb.a)).toEqual(Array.from(ga.a));
  });
  it('a batch with no labelled target is refused by name', () => {
    const none: TrainingBatch = { inputIds: batch.inputIds, labels: batch.labels.map((s) => s.map(() => IGNORE_INDEX)) };
    expect(() => trainingForward(c, w, CASES[0].adapter, none)).toThrow(/no labelled target/);
  });
  it('ragged or out-of-range input is refused by name', () => {
    expect(() =>
      trainingForward(c, w, undefined, {
        inputIds: [
          [1, 2, 3],
          [1, 2],
        ],
        labels: [
          [1, 2, 3],
          [1, 2],
        ],
      }),
    ).toThrow(/sequence 1 has 2 tokens, expected 3/);
    expect(() => trainingForward(c, w, undefined, { inputIds: [[1, 99]], labels: [[1, 2]] })).toThrow(/token id 99/);
    expect(() => trainingForward(c, w, undefined, { inputIds: [[1, 2]], labels: [[1, 77]] })).toThrow(/label 77/);
  });
});

describe('dropout through explicit masks', () => {
  const B = 2;
  const T = 6;
  const batch = randomBatch(c, B, T, 6);
  function masksFor(adapter: TrainableAdapter, p: number, seed: number): DropoutMasks {
    const masks: DropoutMasks = new Map();
    adapter.layers.forEach((L, l) => {
      for (const m of Object.keys(L) as AdapterModule[]) {
        const dIn =
          adapter.kind === 'lora'
            ? m === 'o_proj'
              ? c.numHeads * c.headDim
              : m === 'down_proj'
                ? c.intermediateSize
                : c.hiddenSize
            : bottleneckDims(c, adapter.kind, m)[0];
        masks.set(dropoutMaskKey(l, m), makeDropoutMask(B * T * dIn, p, seed, dropoutStream(l, m)));
      }
    });
    return masks;
  }
  for (const { label, adapter } of [CASES[0], CASES[1], CASES[3]]) {
    it(`${label}: gradients match with a p=0.3 mask, and the mask changes them`, () => {
      const masks = masksFor(adapter, 0.3, 17);
      expect(checkGradients(c, w, adapter, batch, { dropoutMasks: masks })).toBeGreaterThan(100);
      const plain = trainingLossAndGrads(c, w, toF64(adapter), batch);
      const dropped = trainingLossAndGrads(c, w, toF64(adapter), batch, { dropoutMasks: masks });
      expect(dropped.loss).not.toBe(plain.loss);
      // an all-keep mask (p = 0) is the identity
      const keep = trainingLossAndGrads(c, w, toF64(adapter), batch, { dropoutMasks: masksFor(adapter, 0, 1) });
      expect(keep.loss).toBe(plain.loss);
    });
  }
  it('the residual of a series adapter takes the undropped input: a zero mask leaves the base model', () => {
    const adapter = CASES[1].adapter;
    const zero: DropoutMasks = new Map([...masksFor(adapter, 0, 1)].map(([k, m]) => [k, new Float32Array(m.length)]));
    const base = trainingForward(c, w, undefined, batch).loss;
    expect(trainingForward(c, w, adapter, batch, { dropoutMasks: zero }).loss).toBeCloseTo(base, 12);
  });
  it('makeDropoutMask: entries 0 or 1/(1-p), about p of them zero', () => {
    const m = makeDropoutMask(10000, 0.25, 1, 0);
    const zeros = m.filter((x) => x === 0).length;
    expect(zeros).toBeGreaterThan(2300);
    expect(zeros).toBeLessThan(2700);
    expect(m.every((x) => x === 0 || x === Math.fround(1 / 0.75))).toBe(true);
    expect(() => makeDropoutMask(3, 1, 1, 0)).toThrow(/\[0, 1\)/);
  });
});
