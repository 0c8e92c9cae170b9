/**
 * The training bench's projection of a measured run (synthetic:2, 7B shapes) to Llama-2-7B's 32
 * layers: the arithmetic, on a made-up measured breakdown, against the trainer's buffer shapes.
 */
import { describe, it, expect } from 'vitest';
import { projectTrainerMemory, stepMacsPerToken } from '../../src/training/trainBenchReport.ts';
import { llama2_7bShape } from '../../src/formats/syntheticModel.ts';

describe('training bench projection to 32 layers', () => {
  const measured = { weights: 1.0e9, pass: 0.9e9, adapterOptimizer: 57e6, lossStaging: 64, readbackStaging: 42e6, peak: 0 };
  measured.peak = measured.weights + measured.pass + measured.adapterOptimizer + measured.lossStaging + measured.readbackStaging;
  const c2 = llama2_7bShape(2);
  const c32 = llama2_7bShape(32);

  it('adds 30 layers of weights, one 4 x 256 x 4096 f32 checkpoint a layer, and 16x the adapter with its AdamW state', () => {
    const p = projectTrainerMemory(
      measured,
      { config: c2, weightCacheBytes: 0.99e9, microBatch: 4, seqLen: 256 },
      { config: c32, weightCacheBytes: 3.8e9 },
      64 * 2 ** 20,
    );
    expect(p.weights).toBe(1.0e9 + (3.8e9 - 0.99e9));
    expect(p.pass).toBe(0.9e9 + 30 * 4 * 256 * 4096 * 4);
    expect(p.adapterOptimizer).toBeCloseTo(57e6 * 16, 0);
    expect(p.lossStaging).toBe(64);
    // Parameters and both moments (3/4 of adapter + AdamW) are read back in chunks of at most 64 MiB.
    expect(p.readbackStaging).toBe(64 * 2 ** 20);
    expect(p.total).toBeCloseTo(p.weights + p.pass + p.adapterOptimizer + p.lossStaging + p.readbackStaging, 0);
  });

  it('counts the multiply-adds of a step per token: 3 passes through every layer linear, 2 through the LM head', () => {
    // Llama-2-7B: 6.74e9 parameters, of which two 32000 x 4096 tables (embedding, LM head) and ~0.27e6 norm weights.
    const layerLinears = 6.738415616e9 - 2 * 32000 * 4096 - (2 * 32 + 1) * 4096;
    expect(stepMacsPerToken(c32)).toBe(3 * layerLinears + 2 * 32000 * 4096);
    expect(stepMacsPerToken(c32) / stepMacsPerToken(c2)).toBeCloseTo(13.34, 2);
  });
});
