import { describe, it, expect } from 'vitest';
import { planMemory, formatBinaryBytes, batchForLimits, batchForBudget } from '../../src/engine/memoryPlan.ts';
import { defaultKvFormat, resolveKvFormat } from '../../src/engine/kvCache.ts';
import { EngineError } from '../../src/engine/errors.ts';
import type { LlamaConfig } from '../../src/formats/llamaConfig.ts';
import { llama2_7bShape } from '../../src/formats/syntheticModel.ts';

// Llama-2-7B as MLC publishes it (mlc-chat-config.json model_config of Llama-2-7b-chat-hf-q4f16_1-MLC).
const LLAMA2_7B: LlamaConfig = llama2_7bShape(32);

describe('GPU memory plan (the same sizes the engine allocates; tests/browser/engine.spec.ts checks they agree)', () => {
  it('fits Llama-2-7B q4f16_1 with a 2048-token context in 5 GiB', () => {
    const p = planMemory(LLAMA2_7B, 'q4f16_1', 'f16', 2048);
    console.log(
      `Llama-2-7B q4f16_1, 2048 context: weights ${formatBinaryBytes(p.weights)}, KV cache ${formatBinaryBytes(p.kvCache)}, ` +
        `activations ${formatBinaryBytes(p.activations)}, total ${formatBinaryBytes(p.total)}`,
    );
    expect(p.weights).toBeGreaterThan(3.4 * 2 ** 30); // 6.74e9 params at 4.5 bits, plus f32 norms
    expect(p.kvCache).toBe(2 * 32 * 2048 * 4096 * 2); // f16 K and V per layer
    expect(p.total).toBeLessThan(5 * 2 ** 30);
  });

  it('counts f32 KV caches for the f32 modes', () => {
    const p = planMemory(LLAMA2_7B, 'q4f32_1', 'f32', 2048);
    expect(p.kvCache).toBe(2 * 32 * 2048 * 4096 * 4);
  });
});

describe('the batch the device can bind (batchForLimits)', () => {
  const MiB128 = 128 * 2 ** 20;
  // Each layer's K (and V) cache is one buffer of slots × ctx × kvHeads × headDim values.
  const kvPerSlot = (ctx: number, bytes: number) => ctx * LLAMA2_7B.numKvHeads * LLAMA2_7B.headDim * bytes;

  it("7B at 1300 tokens on WebGPU's default 128 MiB binding: the KV cache decides (f32 in q4f32_1, f16 in q4f16_1)", () => {
    const limits = { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: MiB128 };
    expect(batchForLimits(LLAMA2_7B, 'f32', 1300, 256, limits, 32)).toBe(Math.floor(MiB128 / kvPerSlot(1300, 4)));
    expect(batchForLimits(LLAMA2_7B, 'f16', 1300, 256, limits, 32)).toBe(Math.floor(MiB128 / kvPerSlot(1300, 2)));
    // maxBufferSize binds too, whichever is smaller
    const swapped = { maxBufferSize: MiB128, maxStorageBufferBindingSize: 2 ** 31 };
    expect(batchForLimits(LLAMA2_7B, 'f16', 1300, 256, swapped, 32)).toBe(Math.floor(MiB128 / kvPerSlot(1300, 2)));
  });

  it('large limits leave the cap; the logits rows (max(chunk, batch) × vocab × 4) decide when the context is short', () => {
    expect(batchForLimits(LLAMA2_7B, 'f16', 1300, 256, { maxBufferSize: 2 ** 40, maxStorageBufferBindingSize: 2 ** 40 }, 32)).toBe(32);
    const logitsRow = LLAMA2_7B.vocabSize * 4;
    const cap = 10 * logitsRow;
    expect(batchForLimits(LLAMA2_7B, 'f16', 1, 1, { maxBufferSize: cap, maxStorageBufferBindingSize: cap }, 32)).toBe(10);
  });

  it('at least 1: a single sequence that does not fit is left to the allocation, which names the limit', () => {
    expect(batchForLimits(LLAMA2_7B, 'f32', 4096, 256, { maxBufferSize: 2 ** 20, maxStorageBufferBindingSize: 2 ** 20 }, 32)).toBe(1);
  });
});

describe('the KV cache format (kvCache.ts) and the batch it lets a budget hold', () => {
  it("'auto' keeps each mode's own cache: f32 for q4f32_1 and q0f32, f16 for q4f16_1 and q0f16", () => {
    expect(['q4f32_1', 'q0f32', 'q4f16_1', 'q0f16'].map((m) => resolveKvFormat(m as 'q4f32_1'))).toEqual(['f32', 'f32', 'f16', 'f16']);
    expect(resolveKvFormat('q4f32_1', 'auto')).toBe(defaultKvFormat('q4f32_1'));
    expect(resolveKvFormat('q4f32_1', 'f16')).toBe('f16');
    expect(resolveKvFormat('q4f16_1', 'f32')).toBe('f32');
  });

  it('anything else is refused by name', () => {
    expect(() => resolveKvFormat('q4f32_1', 'fp16')).toThrow(EngineError);
    expect(() => resolveKvFormat('q4f32_1', 'fp16')).toThrow('kvCache must be one of auto, f16, f32, not "fp16".');
  });

  it('q4f32_1 7B with an f16 cache fits about twice the batch in the same budget (512-token sequences, 8 GiB)', () => {
    const ctx = 512;
    const budget = 8 * 2 ** 30;
    // K and V of every layer for one sequence, by hand: 2 × 32 layers × ctx × 32 kv heads × 128 × bytes.
    const slot = (bytes: number) => 2 * 32 * ctx * 4096 * bytes;
    const f32 = batchForBudget(LLAMA2_7B, 'q4f32_1', 'f32', ctx, 128, budget, 1024);
    const f16 = batchForBudget(LLAMA2_7B, 'q4f32_1', 'f16', ctx, 128, budget, 1024);
    expect(f32).toBe(15);
    expect(f16).toBeGreaterThanOrEqual(2 * f32);
    expect(f16).toBeLessThanOrEqual(2 * f32 + 1);
    // Each is the largest batch whose KV cache and activations fit.
    for (const [kv, b, bytes] of [
      ['f32', f32, 4],
      ['f16', f16, 2],
    ] as const) {
      const fits = planMemory(LLAMA2_7B, 'q4f32_1', kv, ctx, 128, b);
      const over = planMemory(LLAMA2_7B, 'q4f32_1', kv, ctx, 128, b + 1);
      expect(fits.kvCache).toBe(b * slot(bytes));
      expect(fits.kvCache + fits.activations).toBeLessThanOrEqual(budget);
      expect(over.kvCache + over.activations).toBeGreaterThan(budget);
    }
    // The weights stay q4f32_1's whatever the cache.
    expect(planMemory(LLAMA2_7B, 'q4f32_1', 'f16', ctx).weights).toBe(planMemory(LLAMA2_7B, 'q4f32_1', 'f32', ctx).weights);
  });
});
