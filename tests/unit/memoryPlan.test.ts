import { describe, it, expect } from 'vitest';
import { planMemory, formatBinaryBytes, batchForLimits } from '../../src/engine/memoryPlan.ts';
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
