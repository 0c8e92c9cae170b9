/**
 * The counter-based dropout hash (src/engine/dropout.ts), which the reference trainer and the GPU
 * kernel dropout.wgsl share: the keep rate is 1 − p, masks of different (step, micro-batch, layer,
 * module) are independent, and the reference trainer's masks are exactly this hash.
 * Bounds (stated): with n = 65536 entries a rate's standard error is ≤ 0.002; every rate is
 * checked to within 0.01 (5 standard errors).
 */
import { describe, expect, it } from 'vitest';
import { dropoutHash, dropoutMask, dropoutScale, dropoutStream, dropoutThreshold } from '../../src/engine/dropout.ts';
import { dropoutKey } from '../../src/training/batching.ts';
import type { AdapterModule } from '../../src/formats/adapterFormat.ts';

const N = 65536;
const kept = (m: Float32Array) => m.reduce((s, x) => s + (x !== 0 ? 1 : 0), 0) / m.length;

describe('dropout hash', () => {
  it('keeps about 1 − p of the entries, scaled by 1/(1 − p); p = 0 keeps all', () => {
    for (const p of [0.05, 0.3, 0.5, 0.9]) {
      const m = dropoutMask(N, p, dropoutKey(42, 3, 1), dropoutStream(2, 'v_proj'));
      expect(Math.abs(kept(m) - (1 - p))).toBeLessThan(0.01);
      expect(m.every((x) => x === 0 || x === Math.fround(1 / (1 - p)))).toBe(true);
      expect(dropoutScale(p)).toBe(Math.fround(1 / (1 - p)));
    }
    expect(dropoutMask(1000, 0, 7, 0).every((x) => x === 1)).toBe(true);
    expect(dropoutThreshold(0)).toBe(0);
    expect(dropoutThreshold(0.5)).toBe(2 ** 31);
    expect(() => dropoutThreshold(1)).toThrow(/\[0, 1\)/);
  });

  it('the mask is the per-entry hash compared with round(p·2³²)', () => {
    const p = 0.3;
    const key = dropoutKey(1, 2, 3);
    const m = dropoutMask(4096, p, key, 5);
    for (let i = 0; i < m.length; i++) expect(m[i] !== 0).toBe(dropoutHash(key, 5, i) >= dropoutThreshold(p));
  });

  it('masks of different steps, micro-batches, layers and modules are independent (pairwise and with neighbours)', () => {
    const p = 0.3;
    const masks: Float32Array[] = [];
    for (let step = 0; step < 3; step++)
      for (let micro = 0; micro < 2; micro++)
        for (let layer = 0; layer < 2; layer++)
          for (const mod of ['q_proj', 'v_proj', 'down_proj'] as AdapterModule[])
            masks.push(dropoutMask(N, p, dropoutKey(42, step, micro), dropoutStream(layer, mod)));
    const both = (1 - p) ** 2;
    let worst = 0;
    for (let a = 0; a < masks.length; a++) {
      for (let b = a + 1; b < masks.length; b++) {
        const x = masks[a];
        const y = masks[b];
        let k = 0;
        for (let i = 0; i < N; i++) if (x[i] !== 0 && y[i] !== 0) k++;
        worst = Math.max(worst, Math.abs(k / N - both));
      }
      // neighbouring entries of one mask (i, i + 1) and (i, i + width-like strides)
      for (const d of [1, 64, 4096]) {
        const x = masks[a];
        let k = 0;
        for (let i = 0; i + d < N; i++) if (x[i] !== 0 && x[i + d] !== 0) k++;
        worst = Math.max(worst, Math.abs(k / (N - d) - both));
      }
    }
    expect(worst).toBeLessThan(0.01);
    // and no two streams give the same mask
    expect(new Set(masks.map((m) => m.join(''))).size).toBe(masks.length);
  });

  it('streams are distinct per (layer, module)', () => {
    const seen = new Set<number>();
    for (let l = 0; l < 40; l++)
      for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as AdapterModule[]) seen.add(dropoutStream(l, m));
    expect(seen.size).toBe(40 * 7);
  });
});
