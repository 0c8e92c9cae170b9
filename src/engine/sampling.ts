/**
 * Choosing the next token from logits: greedy (temperature 0: the first index of the maximum, the
 * same rule as the reference) or temperature + top-p (nucleus) sampling from a seeded generator,
 * so a seed reproduces a generation exactly.
 */

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

/** mulberry32: tiny, fast, and good enough to draw one uniform number per token. */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Sampler {
  private readonly uniform: () => number;
  constructor(private readonly opts: SamplingOptions = {}) {
    this.uniform = seededUniform(opts.seed ?? 0);
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
