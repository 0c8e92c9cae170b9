/**
 * Dropout masks from a counter-based hash instead of a random-number stream: entry i of the mask of
 * (micro-batch key, stream) is kept when dropoutHash(key, stream, i) >= dropoutThreshold(p), and a
 * kept value is scaled by 1/(1-p) (torch.nn.Dropout in training mode). Stateless, so
 * - the TypeScript reference (referenceTraining.ts masks) and the WGSL kernel (kernels/dropout.wgsl)
 *   draw bit-identical masks, which lets the GPU trainer be checked against the reference;
 * - the training pass's gradient checkpointing recomputes a layer's forward with the same masks
 *   without storing them, and the backward regenerates them for the input's gradient;
 * - a resumed run needs no RNG state for dropout: (seed, step, micro-batch) gives the key.
 *
 * The mixing function is Chris Wellons' "lowbias32" (hash-prospector: x ^= x >> 16;
 * x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16), a bijection on u32 with low bias.
 * Per (key, stream) it derives k, then hashes i as lowbias32(lowbias32(i ^ k) + k): the second,
 * additive round keeps two streams' masks from being XOR-shifted copies of each other.
 * dropout.wgsl writes the same lines with u32 arithmetic (which wraps as Math.imul and >>> 0 do).
 */
import { ADAPTER_MODULES, type AdapterModule } from '../formats/adapterFormat.ts';

/** Wellons' lowbias32 on a u32. */
export function lowbias32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The per-(key, stream) constant of dropoutHash (the kernel computes it once per thread). */
export function dropoutStreamConstant(key: number, stream: number): number {
  return lowbias32((key >>> 0) ^ lowbias32((stream + 0x9e3779b9) >>> 0));
}

/** The u32 hash of mask entry i of (key, stream). */
export function dropoutHash(key: number, stream: number, i: number): number {
  const k = dropoutStreamConstant(key, stream);
  return lowbias32((lowbias32((i >>> 0) ^ k) + k) >>> 0);
}

/** Entries whose hash is below this are dropped: round(p·2³²), so the drop rate is p to within 2⁻³². */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout probability ${p} must be in [0, 1)`);
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** The scale of a kept entry, as the f32 both the reference mask and the kernel use. */
export function dropoutScale(p: number): number {
  return Math.fround(1 / (1 - p));
}

/**
 * The hash stream of one layer's module's dropout: its own mask, as each PEFT / LLM-Adapters layer
 * has its own nn.Dropout. layer · 8 + the module's index in ADAPTER_MODULES (7 modules < 8).
 */
export function dropoutStream(layer: number, module: AdapterModule): number {
  const i = ADAPTER_MODULES.indexOf(module);
  if (i < 0) throw new Error(`no dropout stream for module ${module}`);
  return layer * 8 + i;
}

/** The mask of n entries of (key, stream): 0 or dropoutScale(p), row-major as the activations. */
export function dropoutMask(n: number, p: number, key: number, stream: number): Float32Array {
  const threshold = dropoutThreshold(p);
  const keep = dropoutScale(p);
  const k = dropoutStreamConstant(key, stream);
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) m[i] = lowbias32((lowbias32(i ^ k) + k) >>> 0) >= threshold ? keep : 0;
  return m;
}
