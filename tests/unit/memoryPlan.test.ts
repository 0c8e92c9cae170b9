import { describe, it, expect } from 'vitest';
import { planMemory, formatBinaryBytes } from '../../src/engine/memoryPlan.ts';
import type { LlamaConfig } from '../../src/formats/llamaConfig.ts';
import { llama2_7bShape } from '../../src/formats/syntheticModel.ts';

// Llama-2-7B as MLC publishes it (mlc-chat-config.json model_config of Llama-2-7b-chat-hf-q4f16_1-MLC).
const LLAMA2_7B: LlamaConfig = llama2_7bShape(32);

describe('GPU memory plan (the same sizes the engine allocates; tests/browser/engine.spec.ts checks they agree)', () => {
  it('fits Llama-2-7B q4f16_1 with a 2048-token context in 5 GiB', () => {
    const p = planMemory(LLAMA2_7B, 'q4f16_1', 2048);
    console.log(
      `Llama-2-7B q4f16_1, 2048 context: weights ${formatBinaryBytes(p.weights)}, KV cache ${formatBinaryBytes(p.kvCache)}, ` +
        `activations ${formatBinaryBytes(p.activations)}, total ${formatBinaryBytes(p.total)}`,
    );
    expect(p.weights).toBeGreaterThan(3.4 * 2 ** 30); // 6.74e9 params at 4.5 bits, plus f32 norms
    expect(p.kvCache).toBe(2 * 32 * 2048 * 4096 * 2); // f16 K and V per layer
    expect(p.total).toBeLessThan(5 * 2 ** 30);
  });

  it('counts f32 KV caches for the f32 modes', () => {
    const p = planMemory(LLAMA2_7B, 'q4f32_1', 2048);
    expect(p.kvCache).toBe(2 * 32 * 2048 * 4096 * 4);
  });
});
