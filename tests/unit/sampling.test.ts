import { describe, it, expect } from 'vitest';
import { Sampler, argmax } from '../../src/engine/sampling.ts';

const logits = new Float32Array([1.0, 3.0, 2.5, -1.0, 3.0]);

describe('sampling', () => {
  it('greedy picks the first index of the maximum (the reference pass does the same)', () => {
    expect(argmax(logits)).toBe(1);
    expect(new Sampler().next(logits)).toBe(1);
    expect(new Sampler({ temperature: 0 }).next(logits)).toBe(1);
  });

  it('a seed reproduces the same draws; another seed gives others', () => {
    const draw = (seed: number) => {
      const s = new Sampler({ temperature: 1, seed });
      return Array.from({ length: 40 }, () => s.next(logits));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('draws follow softmax(logits / T)', () => {
    const T = 0.7;
    const s = new Sampler({ temperature: T, seed: 3 });
    const n = 20000;
    const counts = new Array(logits.length).fill(0);
    for (let i = 0; i < n; i++) counts[s.next(logits)]++;
    const e = Array.from(logits, (l) => Math.exp(l / T));
    const z = e.reduce((a, b) => a + b, 0);
    e.forEach((v, i) => {
      const p = v / z;
      // 5 standard errors: fails only if the sampler is wrong.
      expect(Math.abs(counts[i] / n - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n) + 1e-9);
    });
  });

  it('top-p keeps the smallest set of tokens reaching p', () => {
    // softmax at T=1: p(1) = p(4) ≈ 0.35, p(2) ≈ 0.21, the rest small. top_p 0.6 keeps tokens 1 and 4 only.
    const s = new Sampler({ temperature: 1, topP: 0.6, seed: 1 });
    const seen = new Set(Array.from({ length: 500 }, () => s.next(logits)));
    expect([...seen].sort()).toEqual([1, 4]);
    const tiny = new Sampler({ temperature: 1, topP: 0.01, seed: 1 });
    expect(new Set(Array.from({ length: 50 }, () => tiny.next(logits)))).toEqual(new Set([1]));
  });
});
