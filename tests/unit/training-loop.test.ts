/**
 * Batching order, padding, gradient accumulation and the reference training loop: the loss falls on
 * a repeated pattern, and a run resumed from serialised state is bit-identical to an unbroken one.
 */
import { describe, expect, it } from 'vitest';
import { epochPermutation, microBatchIndices, padBatch } from '../../src/training/batching.ts';
import { createTrainerState, defaultHyper, trainStep, type ReferenceModel } from '../../src/training/referenceTrainer.ts';
import { adapterTensorList, base64ToBytes, bytesToBase64, parseTrainerState, serializeTrainerState } from '../../src/training/checkpoint.ts';
import type { AdapterSpec } from '../../src/training/init.ts';
import type { TokenizedExample } from '../../src/training/data.ts';
import { IGNORE_INDEX } from '../../src/engine/referenceTraining.ts';
import { Rng } from '../../src/formats/random.ts';
import { randomWeights, tinyConfig } from './trainingFixtures.ts';

describe('micro-batch order', () => {
  const o = { numExamples: 10, microBatch: 3, gradAccum: 2, shuffle: false, seed: 1 };
  it('--no-shuffle: micro-batch m of step s holds examples (s·G+m)·B … +B−1 modulo N', () => {
    expect(microBatchIndices(0, 0, o)).toEqual([0, 1, 2]);
    expect(microBatchIndices(0, 1, o)).toEqual([3, 4, 5]);
    expect(microBatchIndices(1, 0, o)).toEqual([6, 7, 8]);
    expect(microBatchIndices(1, 1, o)).toEqual([9, 0, 1]);
    expect(microBatchIndices(7, 1, o)).toEqual([5, 6, 7]); // k = 45..47
  });
  it('shuffle: each epoch is a permutation of the file, epochs differ, the seed decides', () => {
    const s = { numExamples: 10, microBatch: 5, gradAccum: 1, shuffle: true, seed: 9 };
    const epoch = (e: number) => [...microBatchIndices(2 * e, 0, s), ...microBatchIndices(2 * e + 1, 0, s)];
    const e0 = epoch(0);
    const e1 = epoch(1);
    expect([...e0].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...e1].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(e0).not.toEqual(e1);
    expect(e0).toEqual(Array.from(epochPermutation(10, 9, 0)));
    expect(epoch(0)).toEqual(e0);
    expect(Array.from(epochPermutation(10, 10, 0))).not.toEqual(e0);
    // a micro-batch that straddles two epochs takes the tail of one and the head of the next
    const t = { numExamples: 4, microBatch: 3, gradAccum: 1, shuffle: true, seed: 2 };
    const p0 = epochPermutation(4, 2, 0);
    const p1 = epochPermutation(4, 2, 1);
    expect(microBatchIndices(1, 0, t)).toEqual([p0[3], p1[0], p1[1]]);
  });
  it('right padding: ids 0, labels −100, optional multiple', () => {
    const b = padBatch(
      [
        { inputIds: [1, 5, 6], labels: [1, 5, 6] },
        { inputIds: [1, 7], labels: [-100, 7] },
      ],
      0,
      4,
    );
    expect(b.inputIds).toEqual([
      [1, 5, 6, 0],
      [1, 7, 0, 0],
    ]);
    expect(b.labels).toEqual([
      [1, 5, 6, -100],
      [-100, 7, -100, -100],
    ]);
  });
});

const c = tinyConfig({ vocabSize: 24 });
const model: ReferenceModel = { config: c, weights: randomWeights(c, 5) };
const pattern = (len: number, offset = 0): TokenizedExample => {
  const ids = [1, ...Array.from({ length: len - 1 }, (_, i) => 3 + ((i + offset) % 4))];
  return { inputIds: ids, labels: ids.slice() };
};
const lora: AdapterSpec = {
  kind: 'lora',
  r: 4,
  alpha: 8,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  dropout: 0.1,
};

describe('reference training loop', () => {
  it('the loss falls on a repeated pattern (LoRA, 40 steps: final < 0.3 × first)', () => {
    const data = Array.from({ length: 8 }, (_, i) => pattern(12, i % 4));
    const state = createTrainerState(c, lora, defaultHyper({ microBatch: 2, gradAccum: 2, lr: 2e-2, warmupSteps: 3, totalSteps: 40, shuffle: true, seed: 3 }));
    const losses = Array.from({ length: 40 }, () => trainStep(model, data, state).loss);
    expect(losses[0]).toBeGreaterThan(1);
    expect(losses[39]).toBeLessThan(0.3 * losses[0]);
    expect(state.step).toBe(40);
  });

  it('series adapter trains too (mam_adapter init, 40 steps: final < 0.5 × first)', () => {
    const data = Array.from({ length: 8 }, (_, i) => pattern(10, i % 4));
    const spec: AdapterSpec = {
      kind: 'series',
      bottleneckSize: 8,
      nonLinearity: 'tanh',
      targets: ['gate_proj', 'up_proj', 'down_proj'],
      dropout: 0,
      scaling: 1,
      initWeights: 'mam_adapter',
    };
    const state = createTrainerState(c, spec, defaultHyper({ microBatch: 4, gradAccum: 1, lr: 2e-2, warmupSteps: 2, totalSteps: 40, shuffle: false }));
    const losses = Array.from({ length: 40 }, () => trainStep(model, data, state).loss);
    expect(losses[39]).toBeLessThan(0.5 * losses[0]);
  });

  it('gradient accumulation: the mean of micro-batch mean-token gradients', () => {
    // equal token counts: G=2 × B=1 equals G=1 × B=2 (mean of means = mean over all tokens)
    const same = [pattern(8, 0), pattern(8, 1)];
    const run = (data: TokenizedExample[], microBatch: number, gradAccum: number) => {
      const s = createTrainerState(
        c,
        { ...lora, dropout: 0 },
        defaultHyper({ microBatch, gradAccum, lr: 1e-2, warmupSteps: 0, totalSteps: 10, shuffle: false, seed: 1 }),
      );
      trainStep(model, data, s);
      trainStep(model, data, s);
      return adapterTensorList(s.adapter).flatMap((t) => Array.from(t.data));
    };
    const a = run(same, 1, 2);
    const b = run(same, 2, 1);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-6);
    // unequal counts: the per-micro-batch mean weights the short example's tokens more
    const uneven = [pattern(4, 0), { inputIds: pattern(12, 2).inputIds, labels: pattern(12, 2).labels.map((y, i) => (i < 2 ? IGNORE_INDEX : y)) }];
    const u1 = run(uneven, 1, 2);
    const u2 = run(uneven, 2, 1);
    expect(Math.max(...u1.map((x, i) => Math.abs(x - u2[i])))).toBeGreaterThan(1e-4);
  });

  it('20 steps in a row = 10 steps, serialise, restore, 10 steps (bit-identical; shuffle and dropout on)', () => {
    const data = Array.from({ length: 7 }, (_, i) => pattern(6 + (i % 5), i));
    const hyper = defaultHyper({ microBatch: 2, gradAccum: 2, lr: 1e-2, warmupSteps: 4, totalSteps: 20, shuffle: true, seed: 77, weightDecay: 0.01 });
    for (const spec of [
      lora,
      { kind: 'parallel', bottleneckSize: 4, nonLinearity: 'gelu', targets: ['up_proj', 'down_proj'], dropout: 0.2, scaling: 1 } as AdapterSpec,
    ]) {
      const whole = createTrainerState(c, spec, hyper);
      const wholeLosses = Array.from({ length: 20 }, () => trainStep(model, data, whole).loss);
      const first = createTrainerState(c, spec, hyper);
      const firstLosses = Array.from({ length: 10 }, () => trainStep(model, data, first).loss);
      const text = serializeTrainerState(first);
      const resumed = parseTrainerState(text);
      expect(resumed.step).toBe(10);
      const restLosses = Array.from({ length: 10 }, () => trainStep(model, data, resumed).loss);
      expect([...firstLosses, ...restLosses]).toEqual(wholeLosses);
      const A = adapterTensorList(whole.adapter);
      const B = adapterTensorList(resumed.adapter);
      expect(B.map((t) => t.name)).toEqual(A.map((t) => t.name));
      A.forEach((t, i) => {
        expect(new Uint32Array(B[i].data.buffer)).toEqual(new Uint32Array(t.data.buffer));
        const oa = whole.optim.get(t.name)!;
        const ob = resumed.optim.get(t.name)!;
        expect(ob.step).toBe(20);
        expect(new Uint32Array(ob.m.buffer)).toEqual(new Uint32Array(oa.m.buffer));
        expect(new Uint32Array(ob.v.buffer)).toEqual(new Uint32Array(oa.v.buffer));
      });
      // the state actually changed the tensors
      expect(A.some((t) => t.data.some((x) => x !== 0))).toBe(true);
    }
  });

  it('base64 round trip and checkpoint errors', () => {
    const rng = new Rng(4);
    for (const n of [0, 1, 2, 3, 4, 5, 100]) {
      const b = new Uint8Array(Array.from({ length: n }, () => rng.int(256)));
      expect(base64ToBytes(bytesToBase64(b))).toEqual(b);
    }
    expect(bytesToBase64(new TextEncoder().encode('Man'))).toBe('TWFu');
    expect(bytesToBase64(new TextEncoder().encode('Ma'))).toBe('TWE=');
    expect(() => parseTrainerState('{"format":"x"}')).toThrow(/not a training state/);
    expect(() => parseTrainerState('nope')).toThrow(/not valid JSON/);
  });
});
