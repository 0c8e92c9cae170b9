/**
 * Micro-batches: which examples go into micro-batch m of optimizer step s, and how they are padded.
 *
 * Order. Example slot k = (s·G + m)·B + j (j < B; G micro-batches per optimizer step, B examples
 * each) is position k mod N of epoch floor(k / N) of an N-example file. Without shuffle that
 * position is the example itself (so micro-batch m of step s holds examples (s·G+m)·B … +B−1,
 * modulo N); with shuffle it goes through that epoch's seeded permutation (Fisher–Yates over an Rng
 * seeded from (seed, epoch)), so the whole order state is {seed}: a checkpoint that records the
 * seed and the step resumes exactly. (The Trainer reshuffles per epoch with torch's RandomSampler;
 * our draws differ, the scheme is the same.)
 *
 * Padding: right, to the longest sequence of the micro-batch (optionally up to a multiple, like
 * DataCollatorForSeq2Seq's pad_to_multiple_of=8 in finetune.py): input pad id 0 (finetune.py's
 * pad_token_id = 0, unk), labels −100 (the collator's label_pad_token_id). finetune.py pads left;
 * see referenceTraining.ts's header for why we pad right.
 */
import { Rng } from '../formats/random.ts';
import { IGNORE_INDEX, type TrainingBatch } from '../engine/referenceTraining.ts';
import type { TokenizedExample } from './data.ts';

/** A 32-bit mix of integers (murmur3's finaliser over a running hash), for derived seeds. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * The dropout hash key (engine/dropout.ts) of micro-batch `micro` of optimizer step `step`: the
 * reference and the GPU trainer both use it, and it is all a resumed run needs to redraw the masks.
 */
export function dropoutKey(seed: number, step: number, micro: number): number {
  return mixSeed(seed, step, micro, 0xd0);
}

/** The seeded permutation of epoch `epoch` of n examples. */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rng = new Rng(mixSeed(seed, epoch, 0x5eed));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

export interface OrderOptions {
  numExamples: number;
  microBatch: number;
  gradAccum: number;
  shuffle: boolean;
  seed: number;
}

/** Example indices of micro-batch `micro` (< gradAccum) of optimizer step `step` (from 0). */
export function microBatchIndices(step: number, micro: number, o: OrderOptions, permCache?: Map<number, Uint32Array>): number[] {
  const { numExamples: n, microBatch: B, gradAccum: G } = o;
  if (n < 1) throw new Error('no training examples');
  if (!Number.isInteger(B) || B < 1 || !Number.isInteger(G) || G < 1)
    throw new Error(`micro batch ${B} and gradient accumulation ${G} must be positive integers`);
  if (micro < 0 || micro >= G) throw new Error(`micro-batch ${micro} out of range (gradient accumulation ${G})`);
  const out: number[] = [];
  for (let j = 0; j < B; j++) {
    const k = (step * G + micro) * B + j;
    const pos = k % n;
    if (!o.shuffle) {
      out.push(pos);
      continue;
    }
    const epoch = Math.floor(k / n);
    let perm = permCache?.get(epoch);
    if (!perm) {
      perm = epochPermutation(n, o.seed, epoch);
      permCache?.set(epoch, perm);
    }
    out.push(perm[pos]);
  }
  return out;
}

/** Right-pads examples into one batch: ids with padId, labels with −100. */
export function padBatch(examples: TokenizedExample[], padId = 0, padToMultipleOf = 1): TrainingBatch {
  if (examples.length === 0) throw new Error('a batch needs at least one example');
  let T = Math.max(...examples.map((e) => e.inputIds.length));
  if (padToMultipleOf > 1) T = Math.ceil(T / padToMultipleOf) * padToMultipleOf;
  return {
    inputIds: examples.map((e) => [...e.inputIds, ...new Array<number>(T - e.inputIds.length).fill(padId)]),
    labels: examples.map((e) => [...e.labels, ...new Array<number>(T - e.labels.length).fill(IGNORE_INDEX)]),
  };
}
