/**
 * Choosing the next token from logits: greedy (temperature 0: the first index of the maximum, the
 * same rule as the reference) or temperature + top-p (nucleus) sampling from a seeded generator,
 * so a seed reproduces a generation exactly.
 */
import { seededRng } from '../formats/random.ts';

export interface SamplingOptions {
  temperature?: number; // 0 or absent: greedy
  topP?: number; // 1 or absent: no nucleus cut
  seed?: number;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestV) {
      bestV = logits[i];
      best = i;
    }
  }
  return best;
}

export class Sampler {
  private readonly uniform: () => number;
  constructor(private readonly opts: SamplingOptions = {}) {
    const rng = seededRng(opts.seed ?? 0);
    this.uniform = () => rng.next();
  }

  get greedy(): boolean {
    return !this.opts.temperature || this.opts.temperature <= 0;
  }

  next(logits: Float32Array): number {
    if (this.greedy) return argmax(logits);
    const temperature = this.opts.temperature!;
    const topP = Math.min(Math.max(this.opts.topP ?? 1, 0), 1);
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
    const probs = new Float64Array(logits.length);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) {
      const p = Math.exp((logits[i] - max) / temperature);
      probs[i] = p;
      sum += p;
    }
    // Candidates by descending probability (ties by index so the order is deterministic).
    const order = Array.from(probs.keys()).filter((i) => probs[i] > 0);
    order.sort((a, b) => probs[b] - probs[a] || a - b);
    let kept = order.length;
    if (topP < 1) {
      let cum = 0;
      for (let k = 0; k < order.length; k++) {
        cum += probs[order[k]] / sum;
        if (cum >= topP) {
          kept = k + 1;
          break;
        }
      }
    }
    let keptSum = 0;
    for (let k = 0; k < kept; k++) keptSum += probs[order[k]];
    let r = this.uniform() * keptSum;
    for (let k = 0; k < kept; k++) {
      r -= probs[order[k]];
      if (r <= 0) return order[k];
    }
    return order[kept - 1];
  }
}
