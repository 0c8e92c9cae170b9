/**
 * The KV cache's number format, resolved in one place from the mode and the caller's choice.
 * f16 modes keep their cache in f16 (packed pairs); f32 modes in f32 by default, because their
 * greedy ids are checked against independent f32 implementations, and in f16 when asked (halves
 * the cache, so about twice the batch fits for evaluation). The kernels read and write either
 * format in every mode (kvF16.wgsl packs with pack2x16float, core WGSL, no shader-f16), so an f32
 * cache in an f16 mode works too. Pure: the memory planner, the engine and the CLIs share it.
 */
import type { QuantMode } from '../formats/llamaConfig.ts';
import { EngineError } from './errors.ts';

/** How the KV cache stores each value. */
export type KvFormat = 'f32' | 'f16';
/** What a caller may ask for: 'auto' is the mode's own format (defaultKvFormat). */
export type KvCacheOption = 'auto' | KvFormat;
export const KV_CACHE_OPTIONS: readonly KvCacheOption[] = ['auto', 'f16', 'f32'];

/** The cache each mode has always had: f16 with f16 weights, f32 with f32 weights. */
export function defaultKvFormat(mode: QuantMode): KvFormat {
  return mode === 'q4f16_1' || mode === 'q0f16' ? 'f16' : 'f32';
}

export function isKvCacheOption(v: unknown): v is KvCacheOption {
  return typeof v === 'string' && (KV_CACHE_OPTIONS as readonly string[]).includes(v);
}

/**
 * The format a model loaded in `mode` with `option` uses (absent: 'auto'). Anything else (a
 * message from an old page, a typo in a caller) is refused by name rather than read as 'auto'.
 */
export function resolveKvFormat(mode: QuantMode, option: unknown = 'auto'): KvFormat {
  if (!isKvCacheOption(option)) throw new EngineError(`kvCache must be one of ${KV_CACHE_OPTIONS.join(', ')}, not ${JSON.stringify(option)}.`);
  return option === 'auto' ? defaultKvFormat(mode) : option;
}
