/**
 * The reference Llama forward pass: plain TypeScript, no GPU, used only as the test oracle for the
 * WebGPU engine. Written independently of the kernels (its own dequantization, its own RoPE table,
 * its own adapter maths) and meant to read top to bottom like llama2.c's run.c.
 *
 * Numerics: weights are dense f32 (f16 / bf16 records decoded to f32 by the caller, q4 records
 * dequantized here); activations are stored in f32 between steps like the engine's; every dot
 * product, norm and softmax accumulates in f64 (JS numbers). f16 engine paths therefore differ
 * from this oracle by their own rounding and are compared with a 1e-2 relative tolerance; f32
 * paths with 1e-4. With `kvCache: 'f16'` every key (after RoPE) and value is rounded to f16 as it
 * enters the cache, round to nearest even (formats/f16.ts), the rounding the engine's f16 cache
 * gets from pack2x16float on the GPUs we test, so an f32 mode's f16-cache path is held to 1e-4 too.
 *
 * Conventions (Hugging Face LlamaForCausalLM, transformers/models/llama/modeling_llama.py):
 * - RMSNorm: x * w / sqrt(mean(x²) + eps).
 * - RoPE, "rotate half": pairs (i, i + hd/2), inv_freq[i] = theta^(-2i/hd). Like HF, inv_freq and
 *   the angle pos·inv_freq are rounded to f32 (HF computes them in float32), cos/sin then in f64.
 * - Grouped-query attention: query head h reads kv head floor(h / (H / KV)); scale 1/sqrt(hd).
 * - SwiGLU MLP: down(silu(gate x) * up x).
 *
 * Adapter semantics (issue 3), each verified against the code people train with:
 * - LoRA (PEFT src/peft/tuners/lora/layer.py, Linear.forward / update_layer):
 *   y = W x + scaling · B (A x), scaling = lora_alpha / r (use_rslora: lora_alpha / sqrt(r)).
 * - Bottleneck (LLM-Adapters peft/src/peft/tuners/bottleneck.py, Linear.forward):
 *   "mh_adapter" (series on gate_proj / up_proj): y = W (x + s · up(act(down x)));
 *   "output_adapter" (series on down_proj):        y = W x;  y = y + s · up(act(down y));
 *   "parallel_adapter":                             y = W x + s · up(act(down x)).
 *   s is the config's float `scaling`, or the per-module learned scalar `adapter_scaling`.
 * With MLC's fused qkv_proj / gate_up_proj, each module's update lands on its row slice; a series
 * adapter on gate or up changes that half's *input*, so gate and up are computed separately then.
 */

import type { AdapterActivation, AdapterManifest, AdapterModule } from '../formats/adapterFormat.ts';
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import { iterateShardTensors, loadModelManifest } from '../formats/modelFiles.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { roundArrayToF16InPlace } from '../formats/f16.ts';
import type { KvFormat } from './kvCache.ts';
import {
  EMBED_NAME,
  FINAL_NORM_NAME,
  LM_HEAD_NAME,
  Q4_GROUP_SIZE,
  Q4_MAX_INT,
  Q4_PER_U32,
  isQ4,
  layerLinearNames,
  layerNormNames,
} from '../formats/llamaConfig.ts';

// ---------------------------------------------------------------------------------------------
// Weights

/** Dense f32 parameters by MLC name (`...weight`); a Map or a lookup function. */
export type ReferenceWeights = Map<string, Float32Array> | ((name: string) => Float32Array | undefined);

/**
 * Dequantizes int4 group-quantized weights, independently of the engine's WGSL.
 * qWeight [out, 4·ceil(in/32)] u32: element j of a word sits in bits 4j..4j+3 (column 8·word + j),
 * the last group padded when in is not a multiple of 32 (MLC's layout);
 * qScale [out, ceil(in/32)]: one scale per group of 32 columns; w = (q − 7) · scale.
 * Returns [out, in] f32.
 */
export function dequantizeQ4(qWeight: Uint32Array, qScale: Float32Array, out: number, inDim: number): Float32Array {
  const wordsPerRow = Math.ceil(inDim / Q4_GROUP_SIZE) * (Q4_GROUP_SIZE / Q4_PER_U32);
  const groupsPerRow = Math.ceil(inDim / Q4_GROUP_SIZE);
  if (qWeight.length !== out * wordsPerRow) {
    throw new Error(`q_weight has ${qWeight.length} words, expected ${out}×${wordsPerRow}`);
  }
  if (qScale.length !== out * groupsPerRow) {
    throw new Error(`q_scale has ${qScale.length} values, expected ${out}×${groupsPerRow}`);
  }
  const w = new Float32Array(out * inDim); // [out, in]
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inDim; c++) {
      const word = qWeight[r * wordsPerRow + Math.floor(c / Q4_PER_U32)];
      const q = (word >>> (4 * (c % Q4_PER_U32))) & 0xf;
      const scale = qScale[r * groupsPerRow + Math.floor(c / Q4_GROUP_SIZE)];
      w[r * inDim + c] = (q - Q4_MAX_INT) * scale;
    }
  }
  return w;
}

/**
 * Dense reference weights from tensor-cache records (already read from the shards: floats decoded
 * to Float32Array, q_weight as Uint32Array). In q4 modes every `<base>.q_weight` / `<base>.q_scale`
 * pair becomes `<base>.weight` [out, in]. A q_weight's shape does not say `in` when the last group
 * is padded (in not a multiple of 32): with `config`, in is the width the config gives that linear;
 * without, 8 · q_weight columns (right for widths that are multiples of 32). Other records pass through.
 */
export function referenceWeightsFromRecords(
  records: Map<string, Float32Array | Uint32Array>,
  shapes: Map<string, number[]> | Record<string, number[]>,
  mode: QuantMode,
  config?: LlamaConfig,
): Map<string, Float32Array> {
  const shapeOf = (name: string): number[] | undefined => (shapes instanceof Map ? shapes.get(name) : (shapes as Record<string, number[]>)[name]);
  const dense = new Map<string, Float32Array>();
  for (const [name, data] of records) {
    if (isQ4(mode) && name.endsWith('.q_weight')) {
      const base = name.slice(0, -'.q_weight'.length);
      const scale = records.get(`${base}.q_scale`);
      const shape = shapeOf(name);
      if (!(data instanceof Uint32Array)) throw new Error(`${name} must be uint32`);
      if (!(scale instanceof Float32Array)) throw new Error(`${base}.q_scale is missing or not float`);
      if (!shape || shape.length !== 2) throw new Error(`${name} needs a 2-D shape`);
      dense.set(`${base}.weight`, dequantizeQ4(data, scale, shape[0], (config && linearInputWidth(base, config)) ?? shape[1] * Q4_PER_U32));
    } else if (isQ4(mode) && name.endsWith('.q_scale')) {
      continue; // consumed with its q_weight
    } else {
      if (!(data instanceof Float32Array)) throw new Error(`${name}: expected float data, got uint32 in mode ${mode}`);
      dense.set(name, data);
    }
  }
  return dense;
}

/** The input width of a Llama linear layer by its MLC base name (undefined for other names). */
function linearInputWidth(base: string, c: LlamaConfig): number | undefined {
  if (base === EMBED_NAME || base === LM_HEAD_NAME) return c.hiddenSize;
  const m = /^model\.layers\.\d+\.(self_attn\.qkv_proj|self_attn\.o_proj|mlp\.gate_up_proj|mlp\.down_proj)$/.exec(base);
  if (!m) return undefined;
  if (m[1] === 'self_attn.o_proj') return c.numHeads * c.headDim;
  if (m[1] === 'mlp.down_proj') return c.intermediateSize;
  return c.hiddenSize;
}

/**
 * A reference model for a converted model directory (any mode): reads every shard through the
 * shared format readers (record decoding only), then dequantizes here.
 */
export async function loadReferenceLlama(source: ModelSource, adapter?: ReferenceAdapter, options: ReferenceOptions = {}): Promise<ReferenceLlama> {
  const { config, mode, cache } = await loadModelManifest(source);
  const records = new Map<string, Float32Array | Uint32Array>();
  const shapes = new Map<string, number[]>();
  for await (const shard of iterateShardTensors(source, cache)) {
    for (const { record, data } of shard.records) {
      records.set(record.name, data);
      shapes.set(record.name, record.shape);
    }
  }
  return new ReferenceLlama(config, referenceWeightsFromRecords(records, shapes, mode, config), adapter, options);
}

// ---------------------------------------------------------------------------------------------
// Adapters

export type { AdapterActivation, AdapterModule };

export interface ReferenceLoraModule {
  a: Float32Array; // [r, in]
  b: Float32Array; // [out, r]
}
export interface ReferenceBottleneckModule {
  down: Float32Array; // [b, d_in]  (series on down_proj: d_in = the linear's out)
  up: Float32Array; // [d_out, b] (series on gate/up: d_out = the linear's in)
  scaling: number; // the config's float, or this module's learned adapter_scaling
}

export type ReferenceAdapter =
  | {
      kind: 'lora';
      r: number;
      scaling: number; // alpha / r, or alpha / sqrt(r) with rslora
      layers: Array<Partial<Record<AdapterModule, ReferenceLoraModule>>>; // [numLayers]
    }
  | {
      kind: 'series' | 'parallel';
      bottleneckSize: number;
      activation: AdapterActivation;
      layers: Array<Partial<Record<AdapterModule, ReferenceBottleneckModule>>>; // [numLayers]
    };

/**
 * The reference form of a converted adapter (adapter.json + its tensors decoded to f32 by
 * readAdapterTensors in src/formats/adapterFormat.ts).
 */
export function referenceAdapterFromManifest(manifest: AdapterManifest, tensors: Map<string, Float32Array>): ReferenceAdapter {
  const get = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`adapter tensor ${name} is missing`);
    return t;
  };
  const n = manifest.base.numLayers;
  if (manifest.kind === 'lora') {
    const lora = manifest.lora!;
    return {
      kind: 'lora',
      r: lora.r,
      scaling: lora.scaling,
      layers: Array.from({ length: n }, (_, l) =>
        Object.fromEntries(manifest.targets.map((m) => [m, { a: get(`layers.${l}.${m}.lora_A`), b: get(`layers.${l}.${m}.lora_B`) }])),
      ),
    };
  }
  const bn = manifest.bottleneck!;
  return {
    kind: manifest.kind,
    bottleneckSize: bn.bottleneckSize,
    activation: bn.nonLinearity,
    layers: Array.from({ length: n }, (_, l) =>
      Object.fromEntries(
        manifest.targets.map((m, i) => [m, { down: get(`layers.${l}.${m}.adapter_down`), up: get(`layers.${l}.${m}.adapter_up`), scaling: bn.scales[l][i] }]),
      ),
    ),
  };
}

/** erf(x) to ~1e-15: Taylor series for |x| < 2.5, continued fraction for erfc beyond. */
export function erf(x: number): number {
  const z = Math.abs(x);
  let result: number;
  if (z < 2.5) {
    // erf(z) = 2/√π Σ (-1)^n z^(2n+1) / (n! (2n+1))
    let term = z; // z^(2n+1) (-1)^n / n!
    let sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    result = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(z) = exp(-z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + …)))))
    let frac = z;
    for (let k = 200; k >= 1; k--) frac = z + k / 2 / frac;
    result = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / frac;
  }
  return x < 0 ? -result : result;
}

/**
 * Bottleneck activations as transformers' ACT2FN gives them to LLM-Adapters:
 * "gelu" is GELUActivation = torch's exact erf gelu (not the tanh approximation), "silu" x·σ(x).
 */
export function activate(act: AdapterActivation, x: number): number {
  switch (act) {
    case 'tanh':
      return Math.tanh(x);
    case 'relu':
      return x > 0 ? x : 0;
    case 'silu':
      return x / (1 + Math.exp(-x));
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
  }
}

// ---------------------------------------------------------------------------------------------
// Small dense helpers (f64 accumulation, f32 storage)

/** out[r] = Σ_c w[(rowStart + r)·cols + c] · x[c] for r < rows. w [*, cols], x [cols] -> [rows]. */
function matVec(w: Float32Array, rowStart: number, rows: number, cols: number, x: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = (rowStart + r) * cols;
    let acc = 0;
    for (let c = 0; c < cols; c++) acc += w[base + c] * x[c];
    out[r] = acc;
  }
  return out;
}

export function rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * inv * weight[i];
  return out;
}

/** In-place softmax over x[0..n), max-subtracted. */
export function softmax(x: Float64Array | Float32Array, n = x.length): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    x[i] = Math.exp(x[i] - max);
    sum += x[i];
  }
  for (let i = 0; i < n; i++) x[i] /= sum;
}

/** inv_freq[i] = 1 / theta^(2i/hd), rounded to f32 as HF's LlamaRotaryEmbedding computes it. [hd/2] */
export function ropeInvFreq(headDim: number, theta: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
  return inv;
}

/** Rotates each head of vec [nHeads·hd] in place at position pos (rotate-half pairs (i, i + hd/2)). */
export function applyRope(vec: Float32Array, nHeads: number, headDim: number, pos: number, invFreq: Float32Array): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(pos * invFreq[i]);
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    for (let h = 0; h < nHeads; h++) {
      const o = h * headDim;
      const x1 = vec[o + i];
      const x2 = vec[o + i + half];
      vec[o + i] = x1 * cos - x2 * sin;
      vec[o + i + half] = x2 * cos + x1 * sin;
    }
  }
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i; // ties: lowest id wins
  return best;
}

// ---------------------------------------------------------------------------------------------
// The model

export interface ReferenceOptions {
  /** How cached keys and values are stored: 'f32' (the default) as computed, 'f16' rounded to f16. */
  kvCache?: KvFormat;
}

export class ReferenceLlama {
  /** Number of tokens in the KV cache (the position the next token gets). */
  position = 0;

  private readonly get: (name: string) => Float32Array;
  private readonly invFreq: Float32Array; // [hd/2]
  private keyCache: Float32Array[][] = []; // [layer][pos] -> [KV·hd]
  private valueCache: Float32Array[][] = []; // [layer][pos] -> [KV·hd]
  readonly kvCache: KvFormat;

  constructor(
    readonly config: LlamaConfig,
    weights: ReferenceWeights,
    readonly adapter?: ReferenceAdapter,
    options: ReferenceOptions = {},
  ) {
    this.kvCache = options.kvCache ?? 'f32';
    const lookup = weights instanceof Map ? (n: string) => weights.get(n) : weights;
    this.get = (name) => {
      const w = lookup(name);
      if (!w) throw new Error(`reference: missing weight ${name}`);
      return w;
    };
    const { numHeads, numKvHeads, headDim, numLayers } = config;
    if (numHeads % numKvHeads !== 0) throw new Error(`numHeads ${numHeads} not a multiple of numKvHeads ${numKvHeads}`);
    if (headDim % 2 !== 0) throw new Error(`headDim ${headDim} must be even for RoPE`);
    if (adapter && adapter.layers.length !== numLayers) {
      throw new Error(`adapter has ${adapter.layers.length} layers, model has ${numLayers}`);
    }
    this.invFreq = ropeInvFreq(headDim, config.ropeTheta);
    this.reset();
  }

  /** Empties the KV cache. */
  reset(): void {
    this.position = 0;
    this.keyCache = Array.from({ length: this.config.numLayers }, () => []);
    this.valueCache = Array.from({ length: this.config.numLayers }, () => []);
  }

  /** Appends tokens to the cache; returns the logits of the last one. [vocab] */
  forward(tokens: number[]): Float32Array {
    if (tokens.length === 0) throw new Error('forward needs at least one token');
    for (let i = 0; i < tokens.length - 1; i++) this.step(tokens[i], false);
    return this.step(tokens[tokens.length - 1], true)!;
  }

  /** Appends tokens to the cache; returns the logits of every one. [n][vocab] */
  forwardAll(tokens: number[]): Float32Array[] {
    return tokens.map((t) => this.step(t, true)!);
  }

  /**
   * Greedy decoding from a fresh cache: feeds the prompt, then repeatedly the argmax token (ties go
   * to the lowest id). Returns the generated ids only; generation stops after emitting an id in
   * eosIds, and that EOS id IS included as the last element. At most maxNewTokens ids.
   */
  greedyGenerate(promptIds: number[], maxNewTokens: number, eosIds: number[] = this.config.eosTokenIds): number[] {
    this.reset();
    const out: number[] = [];
    if (maxNewTokens <= 0) return out;
    let logits = this.forward(promptIds);
    for (;;) {
      const next = argmax(logits);
      out.push(next);
      if (eosIds.includes(next) || out.length >= maxNewTokens) return out;
      logits = this.forward([next]);
    }
  }

  /** One token through the whole network at this.position. */
  private step(token: number, wantLogits: boolean): Float32Array | undefined {
    const c = this.config;
    const dim = c.hiddenSize;
    const H = c.numHeads;
    const KV = c.numKvHeads;
    const hd = c.headDim;
    const ffn = c.intermediateSize;
    const pos = this.position;
    if (token < 0 || token >= c.vocabSize || !Number.isInteger(token)) throw new Error(`token id ${token} out of range`);
    if (pos >= c.contextWindowSize) throw new Error(`context window of ${c.contextWindowSize} tokens is full`);

    // Embedding lookup. x [dim]
    const embed = this.get(`${EMBED_NAME}.weight`); // [vocab, dim]
    const x = embed.slice(token * dim, (token + 1) * dim);

    for (let l = 0; l < c.numLayers; l++) {
      const lin = layerLinearNames(l);
      const norms = layerNormNames(l);
      const ad = this.adapter?.layers[l];

      // ---- attention block ----
      const xb = rmsNorm(x, this.get(norms.input), c.rmsNormEps); // [dim]
      const wqkv = this.get(`${lin.qkv}.weight`); // [(H + 2·KV)·hd, dim], rows q, k, v
      const q = this.linear(wqkv, 0, H * hd, dim, xb, 'q_proj', ad); // [H·hd]
      const k = this.linear(wqkv, H * hd, KV * hd, dim, xb, 'k_proj', ad); // [KV·hd]
      const v = this.linear(wqkv, (H + KV) * hd, KV * hd, dim, xb, 'v_proj', ad); // [KV·hd]
      applyRope(q, H, hd, pos, this.invFreq);
      applyRope(k, KV, hd, pos, this.invFreq);
      // The cache is what attention reads, this token's own key and value included; q is not cached.
      if (this.kvCache === 'f16') {
        roundArrayToF16InPlace(k);
        roundArrayToF16InPlace(v);
      }
      this.keyCache[l].push(k); // [KV·hd]
      this.valueCache[l].push(v); // [KV·hd]

      const att = new Float32Array(H * hd); // [H·hd]
      const scores = new Float64Array(pos + 1); // [pos + 1]
      const group = H / KV;
      const scale = 1 / Math.sqrt(hd);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        for (let t = 0; t <= pos; t++) {
          const kt = this.keyCache[l][t];
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += q[h * hd + i] * kt[kvh * hd + i];
          scores[t] = dot * scale;
        }
        softmax(scores, pos + 1);
        for (let i = 0; i < hd; i++) {
          let acc = 0;
          for (let t = 0; t <= pos; t++) acc += scores[t] * this.valueCache[l][t][kvh * hd + i];
          att[h * hd + i] = acc;
        }
      }
      const wo = this.get(`${lin.o}.weight`); // [dim, H·hd]
      const attOut = this.linear(wo, 0, dim, H * hd, att, 'o_proj', ad); // [dim]
      for (let i = 0; i < dim; i++) x[i] += attOut[i];

      // ---- MLP block ----
      const xb2 = rmsNorm(x, this.get(norms.postAttention), c.rmsNormEps); // [dim]
      const wgu = this.get(`${lin.gateUp}.weight`); // [2·ffn, dim], rows gate, up
      const gate = this.linear(wgu, 0, ffn, dim, xb2, 'gate_proj', ad); // [ffn]
      const up = this.linear(wgu, ffn, ffn, dim, xb2, 'up_proj', ad); // [ffn]
      const hidden = new Float32Array(ffn); // [ffn]
      for (let i = 0; i < ffn; i++) hidden[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
      const wd = this.get(`${lin.down}.weight`); // [dim, ffn]
      const mlpOut = this.linear(wd, 0, dim, ffn, hidden, 'down_proj', ad); // [dim]
      for (let i = 0; i < dim; i++) x[i] += mlpOut[i];
    }
    this.position++;
    if (!wantLogits) return undefined;

    const xf = rmsNorm(x, this.get(FINAL_NORM_NAME), c.rmsNormEps); // [dim]
    const head = c.tieWordEmbeddings ? embed : this.get(`${LM_HEAD_NAME}.weight`); // [vocab, dim]
    return matVec(head, 0, c.vocabSize, dim, xf); // [vocab]
  }

  /**
   * One module's slice of a (possibly fused) linear layer, with this layer's adapter on that module.
   * w [*, cols]; rows rowStart..rowStart+rows belong to the module; x [cols] -> [rows].
   */
  private linear(
    w: Float32Array,
    rowStart: number,
    rows: number,
    cols: number,
    x: Float32Array,
    module: AdapterModule,
    layerAdapter: Partial<Record<AdapterModule, ReferenceLoraModule | ReferenceBottleneckModule>> | undefined,
  ): Float32Array {
    const adapter = this.adapter;
    const m = layerAdapter?.[module];
    if (!adapter || !m) return matVec(w, rowStart, rows, cols, x);

    if (adapter.kind === 'lora') {
      const { a, b } = m as ReferenceLoraModule;
      const r = adapter.r;
      const y = matVec(w, rowStart, rows, cols, x);
      const ax = matVec(a, 0, r, cols, x); // [r]
      const bax = matVec(b, 0, rows, r, ax); // [rows]
      for (let i = 0; i < rows; i++) y[i] += adapter.scaling * bax[i];
      return y;
    }

    const { down, up, scaling } = m as ReferenceBottleneckModule;
    const bsz = adapter.bottleneckSize;
    // up(act(down z)) · s for z [n]: down [b, n], up [outDim, b] -> [outDim]
    const bottleneck = (z: Float32Array, n: number, outDim: number): Float32Array => {
      const d = matVec(down, 0, bsz, n, z); // [b]
      for (let i = 0; i < bsz; i++) d[i] = activate(adapter.activation, d[i]);
      const u = matVec(up, 0, outDim, bsz, d); // [outDim]
      for (let i = 0; i < outDim; i++) u[i] *= scaling;
      return u;
    };

    if (adapter.kind === 'parallel') {
      const y = matVec(w, rowStart, rows, cols, x);
      const u = bottleneck(x, cols, rows);
      for (let i = 0; i < rows; i++) y[i] += u[i];
      return y;
    }
    // series
    if (module === 'gate_proj' || module === 'up_proj') {
      // mh_adapter: the adapter rewrites the linear's input. x' = x + s·up(act(down x)) [cols]
      const u = bottleneck(x, cols, cols);
      const xs = new Float32Array(cols);
      for (let i = 0; i < cols; i++) xs[i] = x[i] + u[i];
      return matVec(w, rowStart, rows, cols, xs);
    }
    if (module === 'down_proj') {
      // output_adapter: y' = y + s·up(act(down y)) [rows]
      const y = matVec(w, rowStart, rows, cols, x);
      const u = bottleneck(y, rows, rows);
      for (let i = 0; i < rows; i++) y[i] += u[i];
      return y;
    }
    throw new Error(`series adapters only apply to gate_proj, up_proj and down_proj (LLM-Adapters), not ${module}`);
  }
}
