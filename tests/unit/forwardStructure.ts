/**
 * The forward pass's structure as forward.ts's recordForward lays it out, written down here on its
 * own so tests can derive how many dispatches a decode step must encode from a model's layer count
 * and compare that with what the engine counted as it encoded (LlamaModel.encodeStats).
 * These are the fused decode dispatches, which the per-row kernels (the software adapter's choice)
 * run at any row count; where the GPU kernels are chosen, a call over more than 8 rows runs the
 * norm, the tiled matmul and SwiGLU (or RoPE + KV write after qkv) as separate dispatches instead
 * (forward.ts normMatmul). RoPE and the KV write are in the qkv matmul's epilogue when the head
 * dimension is a multiple of 4 (every model tests use, and Llama's 64/128); otherwise, or with an
 * adapter on qkv, they are a dispatch of their own after it.
 */

/** One layer of the base model (no adapter), in order. */
export const LAYER_DISPATCHES = [
  'input norm + qkv matmul + rope + kv write',
  'attention (scores, softmax, output)',
  'o matmul (+ residual)',
  'post-attention norm + gate/up matmul + swiglu',
  'down matmul (+ residual)',
] as const;

/** Before the layers: the embedding. After them: the final norm with the LM head, then greedy's argmax. */
export const BEFORE_LAYERS = ['embedding'] as const;
export const AFTER_LAYERS = ['final norm + lm head'] as const;

/** Dispatches of one decode step of a base model with `layers` layers; greedy adds the argmax. */
export function decodeStepDispatches(layers: number, greedy: boolean): number {
  return BEFORE_LAYERS.length + layers * LAYER_DISPATCHES.length + AFTER_LAYERS.length + (greedy ? 1 : 0);
}
