/**
 * The reference *training* pass: the causal-LM loss of a tiny Llama with a frozen base and
 * trainable adapter tensors, and its gradient by hand (reverse mode). Plain TypeScript, no GPU:
 * the oracle the WebGPU training kernels are checked against, itself checked against finite
 * differences (tests/unit/training-reference.test.ts).
 *
 * Numerics: everything in f64 (Float64Array), with no rounding to f32 between steps, so central
 * finite differences of the loss are precise to ~1e-10. Base weights are the dense f32 values of
 * reference.ts (q4 bases dequantized by referenceWeightsFromRecords); the forward is the same maths
 * as ReferenceLlama.step, applied to whole sequences at once (teacher forcing).
 *
 * Conventions, each from the code the paper trained with:
 * - Model: transformers LlamaForCausalLM (models/llama/modeling_llama.py), as reference.ts documents
 *   it (RMSNorm, rotate-half RoPE with f32 inv_freq and angle, GQA, SwiGLU). Attention is causal
 *   over each sequence; sequences are right-padded, so a real token never sees a pad (the pads come
 *   after it) and the pads' own outputs are masked out of the loss by their -100 labels.
 *   Upstream note: LLM-Adapters' finetune.py sets tokenizer.padding_side = "left"; the Trainer passes
 *   no position_ids, so in the transformers of that time a left-padded example's tokens start at
 *   RoPE position = number of pads. We pad right (positions 0.. for every example) on purpose.
 * - Loss: LlamaForCausalLM.forward (huggingface/transformers src/transformers/models/llama/
 *   modeling_llama.py @0022728): shift_logits = logits[..., :-1, :], shift_labels = labels[..., 1:],
 *   CrossEntropyLoss() (ignore_index -100, reduction "mean"): the mean over the batch's non-ignored
 *   target tokens. A batch with none would be 0/0 = NaN in torch; here it is an error.
 * - LM head, embeddings, norms and every base linear are frozen (no gradients); the gradient flows
 *   through them to the adapters, and to the input embeddings (inputEmbeddingGrad, for tests).
 * - LoRA (PEFT src/peft/tuners/lora/layer.py, Linear.forward):
 *   y = W x + scaling · B (A dropout(x)); dropout only on the adapter's input.
 * - Bottleneck (LLM-Adapters peft/src/peft/tuners/bottleneck.py @0059d7c, Linear.forward):
 *   mh_adapter (series gate_proj/up_proj): y = W (x + s · up(act(down(dropout(x)))));
 *   output_adapter (series down_proj):      y0 = W x, y = y0 + s · up(act(down(dropout(y0))));
 *   parallel_adapter:                       y = W x + s · up(act(down(dropout(x)))).
 *   The residual always takes the undropped value.
 * - Dropout (torch.nn.Dropout, training mode): x ⊙ m with m ∈ {0, 1/(1-p)}. The masks are an
 *   explicit argument (one [N·d_in] array per layer and module, N = batch·seqLen tokens, row-major),
 *   so a GPU implementation can be compared with identical masks; makeDropoutMask draws one from
 *   the stateless hash of dropout.ts (the one dropout.wgsl computes).
 */

import type { AdapterActivation, AdapterModule } from '../formats/adapterFormat.ts';
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, layerLinearNames, layerNormNames } from '../formats/llamaConfig.ts';
import { activate, erf, ropeInvFreq, type ReferenceWeights } from './reference.ts';
import { dropoutMask } from './dropout.ts';

/** Label value that takes a position out of the loss (torch CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

export type Tensor = Float32Array | Float64Array;

export interface TrainableLoraModule {
  a: Tensor; // [r, in]
  b: Tensor; // [out, r]
}
export interface TrainableBottleneckModule {
  down: Tensor; // [b, d_in]
  up: Tensor; // [d_out, b]
  scaling: number; // fixed here (the config's float); a learned adapter_scaling is not trained
}

/** The trainable adapter: the same layout as reference.ts's ReferenceAdapter, any float array. */
export type TrainableAdapter =
  | { kind: 'lora'; r: number; scaling: number; layers: Array<Partial<Record<AdapterModule, TrainableLoraModule>>> }
  | {
      kind: 'series' | 'parallel';
      bottleneckSize: number;
      activation: AdapterActivation;
      layers: Array<Partial<Record<AdapterModule, TrainableBottleneckModule>>>;
    };

/** Gradients with the adapter's layout: lora {a, b} or bottleneck {down, up}. */
export type AdapterGradients = Array<Partial<Record<AdapterModule, { a: Float64Array; b: Float64Array } | { down: Float64Array; up: Float64Array }>>>;

/** A micro-batch: B sequences of one length T (right-padded), labels IGNORE_INDEX where not trained. */
export interface TrainingBatch {
  inputIds: number[][]; // [B][T]
  labels: number[][]; // [B][T]
}

/** Dropout masks by dropoutMaskKey(layer, module): [N·d_in], N = B·T, d_in = the adapter's input width. */
export type DropoutMasks = Map<string, Tensor>;

export function dropoutMaskKey(layer: number, module: AdapterModule): string {
  return `${layer}.${module}`;
}

/**
 * A torch-style dropout mask: each entry 0 with probability p, else 1/(1-p) (as f32). Drawn from
 * the counter-based hash of dropout.ts for (key, stream), so the GPU kernel (dropout.wgsl) draws
 * the same mask bit for bit.
 */
export function makeDropoutMask(n: number, p: number, key: number, stream: number): Float32Array {
  return dropoutMask(n, p, key, stream);
}

export interface TrainingOptions {
  dropoutMasks?: DropoutMasks;
  /** Replaces the embedding lookup (for testing dLoss/dInput): [N·dim] */
  inputEmbeddings?: Float64Array;
}

export interface TrainingResult {
  /** mean cross-entropy over the batch's labelled target tokens */
  loss: number;
  /** number of labelled target tokens (after the shift by one) */
  numTokens: number;
  /** [N·vocab], N = B·T, row b·T + t */
  logits: Float64Array;
}

export interface TrainingGradResult extends TrainingResult {
  grads: AdapterGradients;
  /** dLoss/d(input embedding) [N·dim] */
  inputEmbeddingGrad: Float64Array;
}

// ---------------------------------------------------------------------------------------------
// Dense helpers over row-major [N, cols] activations, f64.

/** y[n, r] = Σ_c w[(rowStart + r)·cols + c] · x[n, c]   (x [N, cols] -> y [N, rows]) */
function matmulT(x: Float64Array, n: number, w: Tensor, rowStart: number, rows: number, cols: number): Float64Array {
  const y = new Float64Array(n * rows);
  for (let i = 0; i < n; i++) {
    const xo = i * cols;
    for (let r = 0; r < rows; r++) {
      const wo = (rowStart + r) * cols;
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += w[wo + c] * x[xo + c];
      y[i * rows + r] = acc;
    }
  }
  return y;
}

/** dx[n, c] += Σ_r dy[n, r] · w[(rowStart + r)·cols + c]   (the input gradient of matmulT) */
export function matmulBackInput(dy: Float64Array, n: number, w: Tensor, rowStart: number, rows: number, cols: number, dx: Float64Array): void {
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rows; r++) {
      const g = dy[i * rows + r];
      if (g === 0) continue;
      const wo = (rowStart + r) * cols;
      const xo = i * cols;
      for (let c = 0; c < cols; c++) dx[xo + c] += g * w[wo + c];
    }
  }
}

/** dw[r, c] += scale · Σ_n dy[n, r] · x[n, c]   (the weight gradient of matmulT, w [rows, cols]) */
export function matmulBackWeight(dy: Float64Array, x: Float64Array, n: number, rows: number, cols: number, dw: Float64Array, scale = 1): void {
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rows; r++) {
      const g = dy[i * rows + r] * scale;
      if (g === 0) continue;
      const xo = i * cols;
      const wo = r * cols;
      for (let c = 0; c < cols; c++) dw[wo + c] += g * x[xo + c];
    }
  }
}

function masked(x: Float64Array, mask: Tensor | undefined, what: string): Float64Array {
  if (!mask) return x;
  if (mask.length !== x.length) throw new Error(`dropout mask ${what} has ${mask.length} entries, expected ${x.length}`);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * mask[i];
  return out;
}

/** d act(x) / dx for the bottleneck activations of reference.ts's `activate`. */
export function activationDerivative(act: AdapterActivation, x: number): number {
  switch (act) {
    case 'tanh': {
      const t = Math.tanh(x);
      return 1 - t * t;
    }
    case 'relu':
      return x > 0 ? 1 : 0; // torch's relu backward: 0 at x = 0
    case 'silu': {
      const s = 1 / (1 + Math.exp(-x));
      return s * (1 + x * (1 - s));
    }
    case 'gelu': {
      // d/dx x·Φ(x) = Φ(x) + x·φ(x)
      const phi = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
      return 0.5 * (1 + erf(x / Math.SQRT2)) + x * phi;
    }
  }
}

export function rmsNormRows(x: Float64Array, n: number, dim: number, w: Tensor, eps: number): { y: Float64Array; inv: Float64Array } {
  const y = new Float64Array(n * dim);
  const inv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let c = 0; c < dim; c++) ss += x[i * dim + c] * x[i * dim + c];
    const v = 1 / Math.sqrt(ss / dim + eps);
    inv[i] = v;
    for (let c = 0; c < dim; c++) y[i * dim + c] = x[i * dim + c] * v * w[c];
  }
  return { y, inv };
}

/** dx += d rmsNorm: dx_c = inv·w_c·dy_c − x_c·inv³/dim · Σ_j dy_j·w_j·x_j */
export function rmsNormBack(x: Float64Array, inv: Float64Array, n: number, dim: number, w: Tensor, dy: Float64Array, dx: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    const v = inv[i];
    let dot = 0;
    for (let c = 0; c < dim; c++) dot += dy[o + c] * w[c] * x[o + c];
    const k = (v * v * v * dot) / dim;
    for (let c = 0; c < dim; c++) dx[o + c] += v * w[c] * dy[o + c] - x[o + c] * k;
  }
}

/** RoPE on rows [N, nHeads·hd] in place, row i at position pos(i); inverse (transpose) when `back`. */
export function ropeRows(x: Float64Array, n: number, nHeads: number, hd: number, posOf: (i: number) => number, invFreq: Float32Array, back: boolean): void {
  const half = hd / 2;
  const width = nHeads * hd;
  for (let i = 0; i < n; i++) {
    const pos = posOf(i);
    for (let f = 0; f < half; f++) {
      const angle = Math.fround(pos * invFreq[f]); // f32 angle, as reference.ts / HF
      const cos = Math.cos(angle);
      const sin = back ? -Math.sin(angle) : Math.sin(angle);
      for (let h = 0; h < nHeads; h++) {
        const o = i * width + h * hd;
        const x1 = x[o + f];
        const x2 = x[o + f + half];
        x[o + f] = x1 * cos - x2 * sin;
        x[o + f + half] = x2 * cos + x1 * sin;
      }
    }
  }
}

/** Causal attention over a micro-batch: B right-padded sequences of T tokens, H query heads sharing KV kv heads of width hd. */
export interface AttentionShape {
  B: number;
  T: number;
  H: number;
  KV: number;
  hd: number;
}

/**
 * Causal grouped-query attention per sequence, scale 1/√hd: q [N, H·hd], k and v [N, KV·hd] (q and k
 * after RoPE), N = B·T -> probs [B, H, T, T] (row t, columns ≤ t) and att [N, H·hd].
 */
export function causalAttention(q: Float64Array, k: Float64Array, v: Float64Array, shape: AttentionShape): { probs: Float64Array; att: Float64Array } {
  const { B, T, H, KV, hd } = shape;
  const n = B * T;
  const group = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const probs = new Float64Array(B * H * T * T);
  const att = new Float64Array(n * H * hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const po = ((b * H + h) * T + t) * T;
        const qi = (b * T + t) * H * hd + h * hd;
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          const ki = (b * T + s) * KV * hd + kvh * hd;
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += q[qi + i] * k[ki + i];
          probs[po + s] = dot * scale;
          if (probs[po + s] > max) max = probs[po + s];
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          probs[po + s] = Math.exp(probs[po + s] - max);
          sum += probs[po + s];
        }
        for (let s = 0; s <= t; s++) probs[po + s] /= sum;
        const ao = (b * T + t) * H * hd + h * hd;
        for (let s = 0; s <= t; s++) {
          const p = probs[po + s];
          const vi = (b * T + s) * KV * hd + kvh * hd;
          for (let i = 0; i < hd; i++) att[ao + i] += p * v[vi + i];
        }
      }
    }
  }
  return { probs, att };
}

/**
 * The backward of causalAttention from its probs and dAtt [N, H·hd]: dq [N, H·hd], and dk, dv
 * [N, KV·hd] summed over the query heads that share each kv head.
 */
export function causalAttentionBack(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  probs: Float64Array,
  dAtt: Float64Array,
  shape: AttentionShape,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, H, KV, hd } = shape;
  const n = B * T;
  const group = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const dq = new Float64Array(n * H * hd);
  const dk = new Float64Array(n * KV * hd);
  const dv = new Float64Array(n * KV * hd);
  const dp = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const po = ((b * H + h) * T + t) * T;
        const ao = (b * T + t) * H * hd + h * hd;
        let dot = 0;
        for (let s = 0; s <= t; s++) {
          const vi = (b * T + s) * KV * hd + kvh * hd;
          let acc = 0;
          for (let i = 0; i < hd; i++) {
            acc += dAtt[ao + i] * v[vi + i];
            dv[vi + i] += probs[po + s] * dAtt[ao + i];
          }
          dp[s] = acc;
          dot += probs[po + s] * acc;
        }
        const qi = ao;
        for (let s = 0; s <= t; s++) {
          const ds = probs[po + s] * (dp[s] - dot) * scale; // softmax backward, then the 1/sqrt(hd)
          if (ds === 0) continue;
          const ki = (b * T + s) * KV * hd + kvh * hd;
          for (let i = 0; i < hd; i++) {
            dq[qi + i] += ds * k[ki + i];
            dk[ki + i] += ds * q[qi + i];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

// ---------------------------------------------------------------------------------------------
// Adapter-aware linear layers (forward with a cache, backward that accumulates adapter grads)

interface LinearCache {
  x: Float64Array; // input [N, cols]
  xd?: Float64Array; // dropped adapter input [N, dIn]
  h?: Float64Array; // LoRA: A·xd [N, r]; bottleneck: down·xd before act [N, b]
  a?: Float64Array; // bottleneck: act(h) [N, b]
  y0?: Float64Array; // output_adapter: W x [N, rows]
}

class TrainingModel {
  readonly n: number;
  private readonly get: (name: string) => Float32Array;
  private readonly invFreq: Float32Array;

  constructor(
    readonly config: LlamaConfig,
    weights: ReferenceWeights,
    readonly adapter: TrainableAdapter | undefined,
    readonly batch: TrainingBatch,
    readonly opts: TrainingOptions,
  ) {
    const lookup = weights instanceof Map ? (name: string) => weights.get(name) : weights;
    this.get = (name) => {
      const w = lookup(name);
      if (!w) throw new Error(`referenceTraining: missing weight ${name}`);
      return w;
    };
    const B = batch.inputIds.length;
    if (B === 0) throw new Error('a training batch needs at least one sequence');
    const T = batch.inputIds[0].length;
    if (T === 0) throw new Error('training sequences must not be empty');
    if (batch.labels.length !== B) throw new Error(`batch has ${B} input sequences but ${batch.labels.length} label sequences`);
    for (let b = 0; b < B; b++) {
      if (batch.inputIds[b].length !== T)
        throw new Error(`sequence ${b} has ${batch.inputIds[b].length} tokens, expected ${T} (pad every sequence to one length)`);
      if (batch.labels[b].length !== T) throw new Error(`labels of sequence ${b} have ${batch.labels[b].length} entries, expected ${T}`);
      for (const id of batch.inputIds[b]) {
        if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) throw new Error(`token id ${id} in sequence ${b} is out of range`);
      }
    }
    if (T > config.contextWindowSize) throw new Error(`sequences of ${T} tokens exceed the context window of ${config.contextWindowSize}`);
    if (adapter && adapter.layers.length !== config.numLayers) throw new Error(`adapter has ${adapter.layers.length} layers, model has ${config.numLayers}`);
    this.n = B * T;
    this.invFreq = ropeInvFreq(config.headDim, config.ropeTheta);
  }

  get B(): number {
    return this.batch.inputIds.length;
  }
  get T(): number {
    return this.batch.inputIds[0].length;
  }

  private mask(layer: number, module: AdapterModule): Tensor | undefined {
    return this.opts.dropoutMasks?.get(dropoutMaskKey(layer, module));
  }

  /** One module's slice of a (fused) linear with its adapter: x [N, cols] -> [N, rows]. */
  linear(
    layer: number,
    module: AdapterModule,
    w: Float32Array,
    rowStart: number,
    rows: number,
    cols: number,
    x: Float64Array,
  ): { y: Float64Array; cache: LinearCache } {
    const n = this.n;
    const ad = this.adapter;
    const m = ad?.layers[layer]?.[module];
    const cache: LinearCache = { x };
    if (!ad || !m) return { y: matmulT(x, n, w, rowStart, rows, cols), cache };
    const mask = this.mask(layer, module);
    if (ad.kind === 'lora') {
      const { a, b } = m as TrainableLoraModule;
      const r = ad.r;
      const y = matmulT(x, n, w, rowStart, rows, cols);
      const xd = masked(x, mask, dropoutMaskKey(layer, module));
      const h = matmulT(xd, n, a, 0, r, cols); // [N, r]
      const bh = matmulT(h, n, b, 0, rows, r); // [N, rows]
      for (let i = 0; i < y.length; i++) y[i] += ad.scaling * bh[i];
      Object.assign(cache, { xd, h });
      return { y, cache };
    }
    const { down, up, scaling } = m as TrainableBottleneckModule;
    const bs = ad.bottleneckSize;
    const bottleneck = (z: Float64Array, dIn: number, dOut: number) => {
      const zd = masked(z, mask, dropoutMaskKey(layer, module));
      const h = matmulT(zd, n, down, 0, bs, dIn);
      const a = h.map((v) => activate(ad.activation, v));
      const u = matmulT(a, n, up, 0, dOut, bs);
      for (let i = 0; i < u.length; i++) u[i] *= scaling;
      Object.assign(cache, { xd: zd, h, a });
      return u;
    };
    if (ad.kind === 'parallel') {
      const y = matmulT(x, n, w, rowStart, rows, cols);
      const u = bottleneck(x, cols, rows);
      for (let i = 0; i < y.length; i++) y[i] += u[i];
      return { y, cache };
    }
    if (module === 'gate_proj' || module === 'up_proj') {
      const u = bottleneck(x, cols, cols);
      const xs = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) xs[i] = x[i] + u[i];
      return { y: matmulT(xs, n, w, rowStart, rows, cols), cache };
    }
    if (module === 'down_proj') {
      const y0 = matmulT(x, n, w, rowStart, rows, cols);
      const u = bottleneck(y0, rows, rows);
      const y = new Float64Array(y0.length);
      for (let i = 0; i < y.length; i++) y[i] = y0[i] + u[i];
      cache.y0 = y0;
      return { y, cache };
    }
    throw new Error(`series adapters only apply to gate_proj, up_proj and down_proj (LLM-Adapters), not ${module}`);
  }

  /** Backward of `linear`: accumulates the adapter grads of (layer, module), adds dLoss/dx into dx. */
  linearBack(
    layer: number,
    module: AdapterModule,
    w: Float32Array,
    rowStart: number,
    rows: number,
    cols: number,
    cache: LinearCache,
    dy: Float64Array,
    dx: Float64Array,
    grads: AdapterGradients,
  ): void {
    const n = this.n;
    const ad = this.adapter;
    const m = ad?.layers[layer]?.[module];
    if (!ad || !m) {
      matmulBackInput(dy, n, w, rowStart, rows, cols, dx);
      return;
    }
    const mask = this.mask(layer, module);
    const addMasked = (dzd: Float64Array, into: Float64Array) => {
      for (let i = 0; i < dzd.length; i++) into[i] += mask ? dzd[i] * mask[i] : dzd[i];
    };
    if (ad.kind === 'lora') {
      const { a, b } = m as TrainableLoraModule;
      const g = grads[layer][module] as { a: Float64Array; b: Float64Array };
      const r = ad.r;
      matmulBackInput(dy, n, w, rowStart, rows, cols, dx);
      // y += s · B h: dB += s · dyᵀ h; dh = s · Bᵀ dy
      matmulBackWeight(dy, cache.h!, n, rows, r, g.b, ad.scaling);
      const dh = new Float64Array(n * r);
      matmulBackInput(dy, n, b, 0, rows, r, dh);
      for (let i = 0; i < dh.length; i++) dh[i] *= ad.scaling;
      // h = A xd: dA += dhᵀ xd; dxd = Aᵀ dh
      matmulBackWeight(dh, cache.xd!, n, r, cols, g.a);
      const dxd = new Float64Array(n * cols);
      matmulBackInput(dh, n, a, 0, r, cols, dxd);
      addMasked(dxd, dx);
      return;
    }
    const { down, up, scaling } = m as TrainableBottleneckModule;
    const g = grads[layer][module] as { down: Float64Array; up: Float64Array };
    const bs = ad.bottleneckSize;
    /** Backward of s·up(act(down zd)) given d(out) [N, dOut]; returns d(zd) [N, dIn]. */
    const bottleneckBack = (dOutput: Float64Array, dIn: number, dOut: number): Float64Array => {
      matmulBackWeight(dOutput, cache.a!, n, dOut, bs, g.up, scaling);
      const da = new Float64Array(n * bs);
      matmulBackInput(dOutput, n, up, 0, dOut, bs, da);
      const h = cache.h!;
      for (let i = 0; i < da.length; i++) da[i] *= scaling * activationDerivative(ad.activation, h[i]);
      matmulBackWeight(da, cache.xd!, n, bs, dIn, g.down);
      const dzd = new Float64Array(n * dIn);
      matmulBackInput(da, n, down, 0, bs, dIn, dzd);
      return dzd;
    };
    if (ad.kind === 'parallel') {
      matmulBackInput(dy, n, w, rowStart, rows, cols, dx);
      addMasked(bottleneckBack(dy, cols, rows), dx);
      return;
    }
    if (module === 'gate_proj' || module === 'up_proj') {
      const dxs = new Float64Array(n * cols);
      matmulBackInput(dy, n, w, rowStart, rows, cols, dxs);
      for (let i = 0; i < dxs.length; i++) dx[i] += dxs[i];
      addMasked(bottleneckBack(dxs, cols, cols), dx);
      return;
    }
    // output_adapter: y = y0 + s·up(act(down(y0 ⊙ m)))
    const dy0 = Float64Array.from(dy);
    addMasked(bottleneckBack(dy, rows, rows), dy0);
    matmulBackInput(dy0, n, w, rowStart, rows, cols, dx);
  }

  run(wantGrads: boolean): TrainingResult & { grads?: AdapterGradients; inputEmbeddingGrad?: Float64Array } {
    const c = this.config;
    const { hiddenSize: dim, numHeads: H, numKvHeads: KV, headDim: hd, intermediateSize: ffn, vocabSize: V } = c;
    const { n, B, T } = this;
    const posOf = (i: number) => i % T;

    // ---- embeddings ----
    const embed = this.get(`${EMBED_NAME}.weight`);
    let x: Float64Array;
    if (this.opts.inputEmbeddings) {
      if (this.opts.inputEmbeddings.length !== n * dim) throw new Error(`inputEmbeddings has ${this.opts.inputEmbeddings.length} values, expected ${n * dim}`);
      x = Float64Array.from(this.opts.inputEmbeddings);
    } else {
      x = new Float64Array(n * dim);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const id = this.batch.inputIds[b][t];
          for (let d = 0; d < dim; d++) x[(b * T + t) * dim + d] = embed[id * dim + d];
        }
      }
    }

    type LayerCache = Record<string, unknown> & {
      x: Float64Array;
      xb: Float64Array;
      inv1: Float64Array;
      q: Float64Array;
      k: Float64Array;
      v: Float64Array;
      probs: Float64Array;
      att: Float64Array;
      x2: Float64Array;
      xb2: Float64Array;
      inv2: Float64Array;
      gate: Float64Array;
      up: Float64Array;
      hidden: Float64Array;
      lc: Record<AdapterModule, LinearCache>;
    };
    const caches: LayerCache[] = [];
    const shape: AttentionShape = { B, T, H, KV, hd };

    for (let l = 0; l < c.numLayers; l++) {
      const lin = layerLinearNames(l);
      const norms = layerNormNames(l);
      const lc = {} as Record<AdapterModule, LinearCache>;
      const { y: xb, inv: inv1 } = rmsNormRows(x, n, dim, this.get(norms.input), c.rmsNormEps);
      const wqkv = this.get(`${lin.qkv}.weight`);
      const qo = this.linear(l, 'q_proj', wqkv, 0, H * hd, dim, xb);
      const ko = this.linear(l, 'k_proj', wqkv, H * hd, KV * hd, dim, xb);
      const vo = this.linear(l, 'v_proj', wqkv, (H + KV) * hd, KV * hd, dim, xb);
      lc.q_proj = qo.cache;
      lc.k_proj = ko.cache;
      lc.v_proj = vo.cache;
      const q = qo.y;
      const k = ko.y;
      const v = vo.y;
      ropeRows(q, n, H, hd, posOf, this.invFreq, false);
      ropeRows(k, n, KV, hd, posOf, this.invFreq, false);

      // causal attention per sequence; probs [B, H, T, T] (row t, columns ≤ t)
      const { probs, att } = causalAttention(q, k, v, shape);

      const wo = this.get(`${lin.o}.weight`);
      const oo = this.linear(l, 'o_proj', wo, 0, dim, H * hd, att);
      lc.o_proj = oo.cache;
      const x2 = new Float64Array(n * dim);
      for (let i = 0; i < x2.length; i++) x2[i] = x[i] + oo.y[i];

      const { y: xb2, inv: inv2 } = rmsNormRows(x2, n, dim, this.get(norms.postAttention), c.rmsNormEps);
      const wgu = this.get(`${lin.gateUp}.weight`);
      const go = this.linear(l, 'gate_proj', wgu, 0, ffn, dim, xb2);
      const uo = this.linear(l, 'up_proj', wgu, ffn, ffn, dim, xb2);
      lc.gate_proj = go.cache;
      lc.up_proj = uo.cache;
      const hidden = new Float64Array(n * ffn);
      for (let i = 0; i < hidden.length; i++) hidden[i] = (go.y[i] / (1 + Math.exp(-go.y[i]))) * uo.y[i];
      const wd = this.get(`${lin.down}.weight`);
      const dO = this.linear(l, 'down_proj', wd, 0, dim, ffn, hidden);
      lc.down_proj = dO.cache;
      const x3 = new Float64Array(n * dim);
      for (let i = 0; i < x3.length; i++) x3[i] = x2[i] + dO.y[i];
      caches.push({ x, xb, inv1, q, k, v, probs, att, x2, xb2, inv2, gate: go.y, up: uo.y, hidden, lc });
      x = x3;
    }

    const finalNorm = this.get(FINAL_NORM_NAME);
    const { y: xf, inv: invF } = rmsNormRows(x, n, dim, finalNorm, c.rmsNormEps);
    const head = c.tieWordEmbeddings ? embed : this.get(`${LM_HEAD_NAME}.weight`);
    const logits = matmulT(xf, n, head, 0, V, dim);

    // ---- loss: shift by one, mean over labelled targets ----
    const { loss, numTokens, dLogits } = causalLmLoss(logits, this.batch.labels, V, wantGrads);
    if (!dLogits) return { loss, numTokens, logits };

    // ---- backward ----
    const grads = zeroGradients(this.adapter, c.numLayers);
    const dxf = new Float64Array(n * dim);
    matmulBackInput(dLogits, n, head, 0, V, dim, dxf);
    let dx = new Float64Array(n * dim);
    rmsNormBack(x, invF, n, dim, finalNorm, dxf, dx);

    for (let l = c.numLayers - 1; l >= 0; l--) {
      const lin = layerLinearNames(l);
      const norms = layerNormNames(l);
      const L = caches[l];
      // x3 = x2 + down(hidden)
      const dx2 = Float64Array.from(dx);
      const dHidden = new Float64Array(n * ffn);
      this.linearBack(l, 'down_proj', this.get(`${lin.down}.weight`), 0, dim, ffn, L.lc.down_proj, dx, dHidden, grads);
      const dGate = new Float64Array(n * ffn);
      const dUp = new Float64Array(n * ffn);
      for (let i = 0; i < dHidden.length; i++) {
        const g = L.gate[i];
        const s = 1 / (1 + Math.exp(-g));
        dUp[i] = dHidden[i] * g * s;
        dGate[i] = dHidden[i] * L.up[i] * s * (1 + g * (1 - s));
      }
      const wgu = this.get(`${lin.gateUp}.weight`);
      const dxb2 = new Float64Array(n * dim);
      this.linearBack(l, 'gate_proj', wgu, 0, ffn, dim, L.lc.gate_proj, dGate, dxb2, grads);
      this.linearBack(l, 'up_proj', wgu, ffn, ffn, dim, L.lc.up_proj, dUp, dxb2, grads);
      rmsNormBack(L.x2, L.inv2, n, dim, this.get(norms.postAttention), dxb2, dx2);

      // x2 = x + o(att)
      const dxIn = Float64Array.from(dx2);
      const dAtt = new Float64Array(n * H * hd);
      this.linearBack(l, 'o_proj', this.get(`${lin.o}.weight`), 0, dim, H * hd, L.lc.o_proj, dx2, dAtt, grads);
      const { dq, dk, dv } = causalAttentionBack(L.q, L.k, L.v, L.probs, dAtt, shape);
      ropeRows(dq, n, H, hd, posOf, this.invFreq, true);
      ropeRows(dk, n, KV, hd, posOf, this.invFreq, true);
      const wqkv = this.get(`${lin.qkv}.weight`);
      const dxb = new Float64Array(n * dim);
      this.linearBack(l, 'q_proj', wqkv, 0, H * hd, dim, L.lc.q_proj, dq, dxb, grads);
      this.linearBack(l, 'k_proj', wqkv, H * hd, KV * hd, dim, L.lc.k_proj, dk, dxb, grads);
      this.linearBack(l, 'v_proj', wqkv, (H + KV) * hd, KV * hd, dim, L.lc.v_proj, dv, dxb, grads);
      rmsNormBack(L.x, L.inv1, n, dim, this.get(norms.input), dxb, dxIn);
      dx = dxIn;
    }
    return { loss, numTokens, logits, grads, inputEmbeddingGrad: dx };
  }
}

/**
 * The causal-LM loss of logits [B·T, V] (row b·T + t) against labels [B][T]: row (b, t) predicts
 * labels[b][t + 1] (the shift by one); the mean over the labelled targets. With `wantGrad`, also
 * dLoss/dlogits (0 on rows without a target). rowLoss: each row's −log softmax at its target (0 where none).
 */
export function causalLmLoss(
  logits: Tensor,
  labels: number[][],
  V: number,
  wantGrad: boolean,
): { loss: number; numTokens: number; rowLoss: Float64Array; dLogits?: Float64Array } {
  const B = labels.length;
  const T = B > 0 ? labels[0].length : 0;
  if (logits.length !== B * T * V) throw new Error(`logits have ${logits.length} values, expected ${B}·${T}·${V}`);
  let numTokens = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[b][t + 1];
      if (y === IGNORE_INDEX) continue;
      if (!Number.isInteger(y) || y < 0 || y >= V)
        throw new Error(`label ${y} at sequence ${b}, position ${t + 1} is out of range (use ${IGNORE_INDEX} to ignore)`);
      numTokens++;
    }
  }
  if (numTokens === 0) throw new Error('the batch has no labelled target token (every shifted label is -100): its mean loss is undefined');
  let lossSum = 0;
  const rowLoss = new Float64Array(B * T);
  const dLogits = wantGrad ? new Float64Array(B * T * V) : undefined;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[b][t + 1];
      if (y === IGNORE_INDEX) continue;
      const o = (b * T + t) * V;
      let max = -Infinity;
      for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
      let sum = 0;
      for (let j = 0; j < V; j++) sum += Math.exp(logits[o + j] - max);
      const lse = max + Math.log(sum);
      rowLoss[b * T + t] = lse - logits[o + y];
      lossSum += rowLoss[b * T + t];
      if (dLogits) {
        for (let j = 0; j < V; j++) dLogits[o + j] = Math.exp(logits[o + j] - lse) / numTokens;
        dLogits[o + y] -= 1 / numTokens;
      }
    }
  }
  return { loss: lossSum / numTokens, numTokens, rowLoss, dLogits };
}

/** Zero gradients with the adapter's layout. */
export function zeroGradients(adapter: TrainableAdapter | undefined, numLayers: number): AdapterGradients {
  return Array.from({ length: numLayers }, (_, l) => {
    const out: AdapterGradients[number] = {};
    const layer = adapter?.layers[l] ?? {};
    for (const [m, t] of Object.entries(layer) as Array<[AdapterModule, TrainableLoraModule | TrainableBottleneckModule]>) {
      out[m] =
        'a' in t
          ? { a: new Float64Array(t.a.length), b: new Float64Array(t.b.length) }
          : { down: new Float64Array(t.down.length), up: new Float64Array(t.up.length) };
    }
    return out;
  });
}

/** The causal-LM loss (and logits) of one micro-batch, forward only. */
export function trainingForward(
  config: LlamaConfig,
  weights: ReferenceWeights,
  adapter: TrainableAdapter | undefined,
  batch: TrainingBatch,
  opts: TrainingOptions = {},
): TrainingResult {
  return new TrainingModel(config, weights, adapter, batch, opts).run(false);
}

/** The loss of one micro-batch and its gradient for every adapter tensor and the input embeddings. */
export function trainingLossAndGrads(
  config: LlamaConfig,
  weights: ReferenceWeights,
  adapter: TrainableAdapter | undefined,
  batch: TrainingBatch,
  opts: TrainingOptions = {},
): TrainingGradResult {
  const r = new TrainingModel(config, weights, adapter, batch, opts).run(true);
  return { loss: r.loss, numTokens: r.numTokens, logits: r.logits, grads: r.grads!, inputEmbeddingGrad: r.inputEmbeddingGrad! };
}
