import { describe, it, expect } from 'vitest';
import { adamwStepScalars, shiftedTargets, trainingRowInfo } from '../../src/engine/trainingKernels.ts';
import { causalLmLoss } from '../../src/engine/referenceTraining.ts';

describe('shiftedTargets: the per-row targets of the cross-entropy kernel', () => {
  it('row b·T + t targets labels[b][t + 1], the same positions and count causalLmLoss trains on', () => {
    const labels = [
      [5, 1, -100, 3],
      [-100, -100, 2, 0],
    ];
    const { targets, count } = shiftedTargets(labels, 6);
    expect(Array.from(targets)).toEqual([1, -100, 3, -100, -100, 2, 0, -100]);
    // causalLmLoss's per-row losses are non-zero exactly where a target is (random logits).
    const logits = Float64Array.from({ length: 8 * 6 }, (_, i) => Math.sin(i * 1.7));
    const ref = causalLmLoss(logits, labels, 6, false);
    expect(count).toBe(ref.numTokens);
    expect(Array.from(ref.rowLoss, (l) => l !== 0)).toEqual(Array.from(targets, (t) => t !== -100));
  });

  it('refuses labels outside the vocabulary, ragged rows and a batch with nothing to learn, naming the position', () => {
    expect(() => shiftedTargets([[0, 6]], 6)).toThrow(/label 6 at sequence 0, position 1 is outside the vocabulary of 6/);
    expect(() => shiftedTargets([[0, -1]], 6)).toThrow(/label -1 at sequence 0, position 1/);
    expect(() => shiftedTargets([[0, 1.5]], 6)).toThrow(/label 1.5/);
    expect(() => shiftedTargets([[0, 1], [2]], 6)).toThrow(/labels of sequence 1 have 1 entries, expected 2/);
    // The first label of a sequence is never a target: only -100 after the shift.
    expect(() => shiftedTargets([[3, -100, -100]], 6)).toThrow(/no labelled target token/);
  });
});

describe('trainingRowInfo and adamwStepScalars', () => {
  it('rows of a right-padded micro-batch sit at positions 0..T-1 of their sequence', () => {
    expect(Array.from(trainingRowInfo(2, 3))).toEqual([0, 0, 0, 1, 0, 2, 0, 0, 0, 1, 0, 2]);
  });

  it('refuses a step before the first and a size the kernel cannot index', () => {
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    expect(() => adamwStepScalars(h, 0, 10)).toThrow(/AdamW step 0 must be a whole number from 1/);
    expect(() => adamwStepScalars(h, 1, 2 ** 32)).toThrow(/not a valid element count/);
    expect(new Uint32Array(adamwStepScalars(h, 3, 77), 0, 1)[0]).toBe(77);
  });
});
