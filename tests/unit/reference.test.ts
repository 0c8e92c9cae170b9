import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tinyConfig } from './trainingFixtures.ts';
import { roundToF16 } from '../../src/formats/f16.ts';
import type { ModelSource } from '../../src/formats/tensorCacheTypes.ts';
import type { LlamaConfig } from '../../src/formats/llamaConfig.ts';
import {
  ReferenceLlama,
  activate,
  loadReferenceLlama,
  applyRope,
  dequantizeQ4,
  erf,
  referenceWeightsFromRecords,
  rmsNorm,
  ropeInvFreq,
  softmax,
  type AdapterActivation,
  type AdapterModule,
  type ReferenceAdapter,
} from '../../src/engine/reference.ts';

// ---- fixtures -------------------------------------------------------------------------------

function rng(seed: number): () => number {
  // mulberry32, uniform in [-1, 1)
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

function randArray(n: number, r: () => number, scale = 0.5): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * scale;
  return a;
}

function randomWeights(c: LlamaConfig, seed = 1): Map<string, Float32Array> {
  const r = rng(seed);
  const w = new Map<string, Float32Array>();
  const { hiddenSize: d, intermediateSize: f, numHeads: H, numKvHeads: KV, headDim: hd, vocabSize: V } = c;
  w.set('model.embed_tokens.weight', randArray(V * d, r, 1));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    w.set(`${p}.self_attn.qkv_proj.weight`, randArray((H + 2 * KV) * hd * d, r));
    w.set(`${p}.self_attn.o_proj.weight`, randArray(d * H * hd, r));
    w.set(`${p}.mlp.gate_up_proj.weight`, randArray(2 * f * d, r));
    w.set(`${p}.mlp.down_proj.weight`, randArray(d * f, r));
    w.set(
      `${p}.input_layernorm.weight`,
      randArray(d, r).map((x) => 1 + x * 0.5),
    );
    w.set(
      `${p}.post_attention_layernorm.weight`,
      randArray(d, r).map((x) => 1 + x * 0.5),
    );
  }
  w.set(
    'model.norm.weight',
    randArray(d, r).map((x) => 1 + x * 0.5),
  );
  if (!c.tieWordEmbeddings) w.set('lm_head.weight', randArray(V * d, r));
  return w;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// Naive dense helpers for the hand computations below (f64 throughout).
const mv = (w: ArrayLike<number>, rowStart: number, rows: number, cols: number, x: ArrayLike<number>) =>
  Array.from({ length: rows }, (_, r) => {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[(rowStart + r) * cols + c] * x[c];
    return s;
  });
const norm = (x: number[], w: ArrayLike<number>, eps: number) => {
  const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * w[i]);
};
const add = (a: number[], b: number[]) => a.map((v, i) => v + b[i]);

/**
 * The logits of ONE token at position 0 of a one-layer model, computed naively: at position 0
 * attention returns v (softmax over a single score), RoPE is the identity. `hooks` lets each test
 * insert its adapter maths by hand.
 */
function naiveFirstToken(
  c: LlamaConfig,
  w: Map<string, Float32Array>,
  token: number,
  hooks: Partial<Record<AdapterModule, (x: number[]) => { input?: number[]; delta?: number[]; post?: (y: number[]) => number[] }>> = {},
): number[] {
  const { hiddenSize: d, intermediateSize: f, numHeads: H, numKvHeads: KV, headDim: hd } = c;
  const g = (n: string) => w.get(n)!;
  const lin = (name: string, mod: AdapterModule, rowStart: number, rows: number, cols: number, x: number[]) => {
    const h = hooks[mod]?.(x) ?? {};
    let y = mv(g(name), rowStart, rows, cols, h.input ?? x);
    if (h.delta) y = add(y, h.delta);
    if (h.post) y = h.post(y);
    return y;
  };
  let x = Array.from(g('model.embed_tokens.weight').slice(token * d, (token + 1) * d));
  const p = 'model.layers.0';
  const xb = norm(x, g(`${p}.input_layernorm.weight`), c.rmsNormEps);
  lin(`${p}.self_attn.qkv_proj.weight`, 'q_proj', 0, H * hd, d, xb); // q does not matter at position 0
  lin(`${p}.self_attn.qkv_proj.weight`, 'k_proj', H * hd, KV * hd, d, xb);
  const v = lin(`${p}.self_attn.qkv_proj.weight`, 'v_proj', (H + KV) * hd, KV * hd, d, xb);
  const att: number[] = [];
  for (let h = 0; h < H; h++) att.push(...v.slice(Math.floor(h / (H / KV)) * hd, (Math.floor(h / (H / KV)) + 1) * hd));
  x = add(x, lin(`${p}.self_attn.o_proj.weight`, 'o_proj', 0, d, H * hd, att));
  const xb2 = norm(x, g(`${p}.post_attention_layernorm.weight`), c.rmsNormEps);
  const gate = lin(`${p}.mlp.gate_up_proj.weight`, 'gate_proj', 0, f, d, xb2);
  const up = lin(`${p}.mlp.gate_up_proj.weight`, 'up_proj', f, f, d, xb2);
  const hid = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
  x = add(x, lin(`${p}.mlp.down_proj.weight`, 'down_proj', 0, d, f, hid));
  const xf = norm(x, g('model.norm.weight'), c.rmsNormEps);
  return mv(g('lm_head.weight'), 0, c.vocabSize, d, xf);
}

// ---- pieces ---------------------------------------------------------------------------------

describe('reference pieces', () => {
  it('RMSNorm matches a hand computation', () => {
    const out = rmsNorm(new Float32Array([3, 4]), new Float32Array([1, 2]), 0);
    // mean(x²) = 12.5, rms = 3.5355…
    expect(out[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
    expect(out[1]).toBeCloseTo((4 / Math.sqrt(12.5)) * 2, 6);
  });

  it('softmax sums to one and keeps order; large inputs do not overflow', () => {
    const x = new Float64Array([1, 2, 3, 1000]);
    softmax(x);
    expect(x[3]).toBeCloseTo(1, 12);
    const y = new Float64Array([0, Math.log(3)]);
    softmax(y);
    expect(y[0]).toBeCloseTo(0.25, 12);
    expect(y[1]).toBeCloseTo(0.75, 12);
  });

  it('RoPE is the identity at position 0 and rotates pairs (i, i + hd/2) after', () => {
    const inv = ropeInvFreq(4, 10000);
    expect(inv[0]).toBe(1);
    expect(inv[1]).toBeCloseTo(0.01, 9);
    const v = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]); // two heads of 4
    const at0 = v.slice();
    applyRope(at0, 2, 4, 0, inv);
    expect(Array.from(at0)).toEqual(Array.from(v));
    const at1 = v.slice();
    applyRope(at1, 2, 4, 1, inv);
    // pair (0, 2) of head 0 rotated by angle 1: (1, 3) -> (cos1 - 3 sin1, 3 cos1 + sin1)
    expect(at1[0]).toBeCloseTo(Math.cos(1) - 3 * Math.sin(1), 5);
    expect(at1[2]).toBeCloseTo(3 * Math.cos(1) + Math.sin(1), 5);
    // pair (1, 3) rotated by angle 0.01
    expect(at1[1]).toBeCloseTo(2 * Math.cos(0.01) - 4 * Math.sin(0.01), 5);
    expect(at1[3]).toBeCloseTo(4 * Math.cos(0.01) + 2 * Math.sin(0.01), 5);
    // second head uses the same angles
    expect(at1[4]).toBeCloseTo(5 * Math.cos(1) - 7 * Math.sin(1), 5);
  });

  it('erf and the activations match known values (gelu is the exact erf form)', () => {
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 14);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 14);
    expect(erf(3.9)).toBeCloseTo(0.9999999652077514, 14);
    expect(erf(4.5)).toBeCloseTo(0.9999999998033839, 14);
    expect(activate('gelu', 1)).toBeCloseTo(0.8413447460685429, 12); // torch.nn.functional.gelu(1.)
    expect(activate('gelu', -3)).toBeCloseTo(-0.00404969409489031, 12);
    expect(activate('silu', 2)).toBeCloseTo(2 / (1 + Math.exp(-2)), 14);
    expect(activate('relu', -1)).toBe(0);
    expect(activate('tanh', 0.3)).toBeCloseTo(Math.tanh(0.3), 14);
  });

  it('dequantizes int4 (group 32, 8 per u32, nibble j in bits 4j..4j+3, w = (q − 7)·scale)', () => {
    // one row of 64 columns: q = c % 16, scales 0.5 and 2 for the two groups
    const q = Array.from({ length: 64 }, (_, c) => c % 16);
    const words = new Uint32Array(8);
    for (let c = 0; c < 64; c++) words[c >> 3] |= q[c] << (4 * (c & 7));
    const w = dequantizeQ4(words, new Float32Array([0.5, 2]), 1, 64);
    expect(w[0]).toBe(-3.5); // (0 − 7)·0.5
    expect(w[9]).toBe(1); // (9 − 7)·0.5
    expect(w[15]).toBe(4); // (15 − 7)·0.5
    expect(w[32]).toBe(-14); // (0 − 7)·2
    expect(w[39]).toBe(0);
    expect(w[63]).toBe(16);
  });

  it('referenceWeightsFromRecords turns q_weight/q_scale pairs into dense weights', () => {
    const words = new Uint32Array([0x76543210, 0xfedcba98, 0x77777777, 0x77777777]); // [1, 32/8]
    const recs = new Map<string, Float32Array | Uint32Array>([
      ['model.layers.0.mlp.down_proj.q_weight', words],
      ['model.layers.0.mlp.down_proj.q_scale', new Float32Array([1])],
      ['model.norm.weight', new Float32Array([1, 2])],
    ]);
    const dense = referenceWeightsFromRecords(recs, { 'model.layers.0.mlp.down_proj.q_weight': [1, 4] }, 'q4f32_1');
    const w = dense.get('model.layers.0.mlp.down_proj.weight')!;
    expect(Array.from(w.slice(0, 16))).toEqual(Array.from({ length: 16 }, (_, i) => i - 7));
    expect(Array.from(w.slice(16))).toEqual(new Array(16).fill(0));
    expect(dense.has('model.layers.0.mlp.down_proj.q_scale')).toBe(false);
    expect(dense.get('model.norm.weight')).toBe(recs.get('model.norm.weight'));
  });
});

// ---- whole model ----------------------------------------------------------------------------

describe('ReferenceLlama', () => {
  it('one layer, first token: matches the naive computation (attention on one token returns v)', () => {
    const c = tinyConfig({ numLayers: 1 });
    const w = randomWeights(c, 3);
    const m = new ReferenceLlama(c, w);
    const logits = m.forward([5]);
    expect(maxAbsDiff(logits, naiveFirstToken(c, w, 5))).toBeLessThan(1e-5);
    expect(m.position).toBe(1);
  });

  it("kvCache 'f16': the cache holds keys and values rounded to f16 (at position 0 attention returns v rounded)", () => {
    const c = tinyConfig({ numLayers: 1 });
    const w = randomWeights(c, 3);
    const want = naiveFirstToken(c, w, 5, { v_proj: () => ({ post: (y) => y.map((x) => roundToF16(Math.fround(x))) }) });
    const logits = new ReferenceLlama(c, w, undefined, { kvCache: 'f16' }).forward([5]);
    expect(maxAbsDiff(logits, want)).toBeLessThan(1e-5);
    // The rounding is visible: the f32 cache's logits are further from it than the tolerance.
    expect(maxAbsDiff(new ReferenceLlama(c, w).forward([5]), want)).toBeGreaterThan(1e-4);
  });

  it('forwardAll equals token-by-token forward, and prefill-then-decode equals both', () => {
    const c = tinyConfig();
    const w = randomWeights(c, 4);
    const tokens = [1, 7, 3, 19, 3, 38, 0];
    const all = new ReferenceLlama(c, w).forwardAll(tokens);
    const one = new ReferenceLlama(c, w);
    tokens.forEach((t, i) => expect(Array.from(one.forward([t]))).toEqual(Array.from(all[i])));
    const pd = new ReferenceLlama(c, w);
    expect(Array.from(pd.forward(tokens.slice(0, 4)))).toEqual(Array.from(all[3]));
    expect(Array.from(pd.forward(tokens.slice(4)))).toEqual(Array.from(all[6]));
    expect(pd.position).toBe(7);
    pd.reset();
    expect(pd.position).toBe(0);
    expect(Array.from(pd.forward([1]))).toEqual(Array.from(all[0]));
  });

  it('grouped-query attention with one kv head equals multi-head attention with the kv head copied', () => {
    const gqa = tinyConfig({ numKvHeads: 1 });
    const w = randomWeights(gqa, 5);
    const mha = tinyConfig({ numKvHeads: 4 });
    const wm = new Map(w);
    const { hiddenSize: d, numHeads: H, headDim: hd } = gqa;
    for (let l = 0; l < gqa.numLayers; l++) {
      const name = `model.layers.${l}.self_attn.qkv_proj.weight`;
      const src = w.get(name)!; // [(H + 2)·hd, d]
      const q = src.slice(0, H * hd * d);
      const k = src.slice(H * hd * d, (H + 1) * hd * d);
      const v = src.slice((H + 1) * hd * d);
      const out = new Float32Array(3 * H * hd * d);
      out.set(q, 0);
      for (let h = 0; h < H; h++) out.set(k, (H + h) * hd * d);
      for (let h = 0; h < H; h++) out.set(v, (2 * H + h) * hd * d);
      wm.set(name, out);
    }
    const tokens = [3, 9, 27, 1, 30];
    const a = new ReferenceLlama(gqa, w).forwardAll(tokens);
    const b = new ReferenceLlama(mha, wm).forwardAll(tokens);
    for (let i = 0; i < tokens.length; i++) expect(maxAbsDiff(a[i], b[i])).toBeLessThan(1e-5);
  });

  it('tied embeddings use the embedding matrix as the LM head', () => {
    const tied = tinyConfig({ tieWordEmbeddings: true });
    const w = randomWeights(tied, 6);
    expect(w.has('lm_head.weight')).toBe(false);
    const untied = new Map(w);
    untied.set('lm_head.weight', w.get('model.embed_tokens.weight')!);
    const a = new ReferenceLlama(tied, w).forward([4, 5, 6]);
    const b = new ReferenceLlama(tinyConfig(), untied).forward([4, 5, 6]);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(() => new ReferenceLlama(tinyConfig(), w).forward([1])).toThrow(/missing weight lm_head.weight/);
  });

  it('greedyGenerate returns only new ids, stops after (and includes) an EOS id', () => {
    const c = tinyConfig();
    const w = randomWeights(c, 7);
    const m = new ReferenceLlama(c, w);
    const free = m.greedyGenerate([1, 5, 9], 12, []);
    expect(free).toHaveLength(12);
    // the same by hand
    const h = new ReferenceLlama(c, w);
    let logits = h.forward([1, 5, 9]);
    for (const id of free) {
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      expect(id).toBe(best);
      logits = h.forward([id]);
    }
    const eos = free[4];
    const stopped = m.greedyGenerate([1, 5, 9], 12, [eos]);
    expect(stopped).toEqual(free.slice(0, free.indexOf(eos) + 1));
    expect(m.greedyGenerate([1], 0)).toEqual([]);
  });

  it('refuses to run past the context window', () => {
    const c = tinyConfig({ contextWindowSize: 3 });
    const m = new ReferenceLlama(c, randomWeights(c));
    m.forward([1, 2, 3]);
    expect(() => m.forward([4])).toThrow(/context window/);
  });

  it('q4 weights: the model on dequantized records equals the model on the dense weights', () => {
    const c = tinyConfig({ hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKvHeads: 2, headDim: 8 });
    const r = rng(11);
    // quantize a random dense model by hand, then dequantize it back: the reference must see
    // exactly (q − 7)·scale
    const dense = randomWeights(c, 12);
    const recs = new Map<string, Float32Array | Uint32Array>();
    const shapes: Record<string, number[]> = {};
    const expected = new Map<string, Float32Array>();
    for (const [name, wt] of dense) {
      if (!/(proj|embed_tokens|lm_head)\.weight$/.test(name)) {
        recs.set(name, wt);
        expected.set(name, wt);
        continue;
      }
      const inDim = name.includes('down_proj') ? c.intermediateSize : c.hiddenSize; // o_proj: H·hd = hiddenSize here
      const out = wt.length / inDim;
      const words = new Uint32Array((out * inDim) / 8);
      const scales = new Float32Array((out * inDim) / 32);
      const deq = new Float32Array(out * inDim);
      for (let i = 0; i < out * inDim; i++) {
        const q = Math.floor((r() + 1) * 8) & 15;
        words[i >> 3] |= q << (4 * (i & 7));
      }
      for (let g = 0; g < scales.length; g++) scales[g] = Math.fround(0.01 + (r() + 1) * 0.05);
      for (let i = 0; i < out * inDim; i++) deq[i] = (((words[i >> 3] >>> (4 * (i & 7))) & 15) - 7) * scales[Math.floor(i / 32)];
      const base = name.slice(0, -'.weight'.length);
      recs.set(`${base}.q_weight`, words);
      recs.set(`${base}.q_scale`, scales);
      shapes[`${base}.q_weight`] = [out, inDim / 8];
      expected.set(name, deq);
    }
    const fromRecords = new ReferenceLlama(c, referenceWeightsFromRecords(recs, shapes, 'q4f32_1'));
    const direct = new ReferenceLlama(c, expected);
    expect(Array.from(fromRecords.forward([3, 4, 5]))).toEqual(Array.from(direct.forward([3, 4, 5])));
  });
});

// ---- adapters -------------------------------------------------------------------------------

const ALL: AdapterModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function dims(c: LlamaConfig, m: AdapterModule): { inDim: number; outDim: number } {
  const d = c.hiddenSize;
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj':
      return { inDim: d, outDim: qd };
    case 'k_proj':
    case 'v_proj':
      return { inDim: d, outDim: kvd };
    case 'o_proj':
      return { inDim: qd, outDim: d };
    case 'gate_proj':
    case 'up_proj':
      return { inDim: d, outDim: c.intermediateSize };
    case 'down_proj':
      return { inDim: c.intermediateSize, outDim: d };
  }
}

function loraAdapter(c: LlamaConfig, targets: AdapterModule[], r: number, scaling: number, seed: number, zeroB = false): ReferenceAdapter {
  const g = rng(seed);
  return {
    kind: 'lora',
    r,
    scaling,
    layers: Array.from({ length: c.numLayers }, () =>
      Object.fromEntries(
        targets.map((m) => {
          const { inDim, outDim } = dims(c, m);
          return [m, { a: randArray(r * inDim, g), b: zeroB ? new Float32Array(outDim * r) : randArray(outDim * r, g) }];
        }),
      ),
    ),
  };
}

function bottleneckAdapter(
  c: LlamaConfig,
  kind: 'series' | 'parallel',
  targets: AdapterModule[],
  b: number,
  activation: AdapterActivation,
  seed: number,
  zeroUp = false,
): ReferenceAdapter {
  const g = rng(seed);
  return {
    kind,
    bottleneckSize: b,
    activation,
    layers: Array.from({ length: c.numLayers }, () =>
      Object.fromEntries(
        targets.map((m) => {
          const { inDim, outDim } = dims(c, m);
          const [dIn, dOut] = kind === 'parallel' ? [inDim, outDim] : m === 'down_proj' ? [outDim, outDim] : [inDim, inDim];
          return [m, { down: randArray(b * dIn, g), up: zeroUp ? new Float32Array(dOut * b) : randArray(dOut * b, g), scaling: 0.5 + g() * 0.25 }];
        }),
      ),
    ),
  };
}

describe('ReferenceLlama with adapters', () => {
  const c1 = tinyConfig({ numLayers: 1 });
  const w1 = randomWeights(c1, 21);

  it('LoRA on every module equals the naive W x + scaling·B(A x), one layer', () => {
    const ad = loraAdapter(c1, ALL, 3, 2.5, 22);
    const layer = ad.layers[0] as Record<AdapterModule, { a: Float32Array; b: Float32Array }>;
    const hooks = Object.fromEntries(
      ALL.map((m) => [
        m,
        (x: number[]) => {
          const { outDim } = dims(c1, m);
          const ax = mv(layer[m].a, 0, 3, x.length, x);
          return { delta: mv(layer[m].b, 0, outDim, 3, ax).map((v) => v * 2.5) };
        },
      ]),
    );
    const got = new ReferenceLlama(c1, w1, ad).forward([7]);
    expect(maxAbsDiff(got, naiveFirstToken(c1, w1, 7, hooks))).toBeLessThan(1e-4);
  });

  it('LoRA equals the base model with the update merged into W (several layers and positions)', () => {
    const c = tinyConfig();
    const w = randomWeights(c, 23);
    const ad = loraAdapter(c, ['q_proj', 'v_proj', 'k_proj', 'up_proj', 'down_proj'], 2, 0.75, 24);
    const merged = new Map(w);
    const rowStart: Record<AdapterModule, number> = {
      q_proj: 0,
      k_proj: c.numHeads * c.headDim,
      v_proj: (c.numHeads + c.numKvHeads) * c.headDim,
      o_proj: 0,
      gate_proj: 0,
      up_proj: c.intermediateSize,
      down_proj: 0,
    };
    const fused: Record<AdapterModule, string> = {
      q_proj: 'self_attn.qkv_proj',
      k_proj: 'self_attn.qkv_proj',
      v_proj: 'self_attn.qkv_proj',
      o_proj: 'self_attn.o_proj',
      gate_proj: 'mlp.gate_up_proj',
      up_proj: 'mlp.gate_up_proj',
      down_proj: 'mlp.down_proj',
    };
    for (let l = 0; l < c.numLayers; l++) {
      for (const [m, mod] of Object.entries(ad.layers[l]) as [AdapterModule, { a: Float32Array; b: Float32Array }][]) {
        const name = `model.layers.${l}.${fused[m]}.weight`;
        const wt = merged.get(name)!.slice();
        const { inDim, outDim } = dims(c, m);
        for (let o = 0; o < outDim; o++)
          for (let i = 0; i < inDim; i++) {
            let s = 0;
            for (let k = 0; k < 2; k++) s += mod.b[o * 2 + k] * mod.a[k * inDim + i];
            wt[(rowStart[m] + o) * inDim + i] += 0.75 * s;
          }
        merged.set(name, wt);
      }
    }
    const tokens = [1, 2, 3, 4, 5, 6];
    const a = new ReferenceLlama(c, w, ad).forwardAll(tokens);
    const b = new ReferenceLlama(c, merged).forwardAll(tokens);
    for (let i = 0; i < tokens.length; i++) expect(maxAbsDiff(a[i], b[i])).toBeLessThan(1e-4);
  });

  for (const act of ['tanh', 'relu', 'silu', 'gelu'] as AdapterActivation[]) {
    it(`parallel bottleneck (${act}) on every module equals the naive W x + s·up(act(down x))`, () => {
      const ad = bottleneckAdapter(c1, 'parallel', ALL, 5, act, 25);
      const layer = ad.layers[0] as Record<AdapterModule, { down: Float32Array; up: Float32Array; scaling: number }>;
      const hooks = Object.fromEntries(
        ALL.map((m) => [
          m,
          (x: number[]) => {
            const { outDim } = dims(c1, m);
            const h = mv(layer[m].down, 0, 5, x.length, x).map((v) => activate(act, v));
            return { delta: mv(layer[m].up, 0, outDim, 5, h).map((v) => v * layer[m].scaling) };
          },
        ]),
      );
      const got = new ReferenceLlama(c1, w1, ad).forward([9]);
      expect(maxAbsDiff(got, naiveFirstToken(c1, w1, 9, hooks))).toBeLessThan(1e-4);
    });
  }

  it('series bottleneck: on gate/up it rewrites each input separately, on down_proj it acts on the output', () => {
    const targets: AdapterModule[] = ['gate_proj', 'up_proj', 'down_proj'];
    const ad = bottleneckAdapter(c1, 'series', targets, 4, 'tanh', 26);
    const layer = ad.layers[0] as Record<AdapterModule, { down: Float32Array; up: Float32Array; scaling: number }>;
    const bn = (m: AdapterModule, z: number[]) =>
      mv(layer[m].up, 0, z.length, 4, mv(layer[m].down, 0, 4, z.length, z).map(Math.tanh)).map((v) => v * layer[m].scaling);
    const hooks = {
      gate_proj: (x: number[]) => ({ input: add(x, bn('gate_proj', x)) }),
      up_proj: (x: number[]) => ({ input: add(x, bn('up_proj', x)) }),
      down_proj: () => ({ post: (y: number[]) => add(y, bn('down_proj', y)) }),
    };
    const got = new ReferenceLlama(c1, w1, ad).forward([11]);
    const want = naiveFirstToken(c1, w1, 11, hooks);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);
    // and it is not the same as applying one shared input to the fused gate_up layer
    expect(maxAbsDiff(got, naiveFirstToken(c1, w1, 11))).toBeGreaterThan(1e-3);
  });

  it('series adapters on attention modules are refused (LLM-Adapters has no Llama mapping for them)', () => {
    const ad = bottleneckAdapter(c1, 'series', ['q_proj'], 2, 'tanh', 27);
    expect(() => new ReferenceLlama(c1, w1, ad).forward([1])).toThrow(/series adapters only apply/);
  });

  it('zero adapters (B = 0 / up = 0) give exactly the base logits; non-zero ones change them', () => {
    const c = tinyConfig();
    const w = randomWeights(c, 28);
    const tokens = [3, 1, 4, 1, 5];
    const base = new ReferenceLlama(c, w).forwardAll(tokens);
    const zeros: ReferenceAdapter[] = [
      loraAdapter(c, ALL, 2, 2, 29, true),
      bottleneckAdapter(c, 'series', ['gate_proj', 'up_proj', 'down_proj'], 3, 'tanh', 30, true),
      bottleneckAdapter(c, 'parallel', ALL, 3, 'gelu', 31, true),
    ];
    for (const ad of zeros) {
      const got = new ReferenceLlama(c, w, ad).forwardAll(tokens);
      got.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(base[i])));
    }
    const nonZero: ReferenceAdapter[] = [
      loraAdapter(c, ['q_proj', 'v_proj'], 2, 2, 32),
      bottleneckAdapter(c, 'series', ['gate_proj', 'up_proj'], 3, 'tanh', 33),
      bottleneckAdapter(c, 'parallel', ['up_proj', 'down_proj'], 3, 'tanh', 34),
    ];
    for (const ad of nonZero) {
      const got = new ReferenceLlama(c, w, ad).forwardAll(tokens);
      expect(maxAbsDiff(got[4], base[4])).toBeGreaterThan(1e-3);
    }
  });
});

// ---- the generated tiny model (npm run make-tiny-model), when present -------------------------

const TINY = 'models/tiny';
const dirSource = (dir: string): ModelSource => ({
  async readJson(path) {
    const p = join(dir, path);
    return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null;
  },
  async readShard(path) {
    const b = readFileSync(join(dir, path));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  },
});

describe.skipIf(!existsSync(join(TINY, 'q0f32', 'tensor-cache.json')))('reference on the tiny model', () => {
  it('loads every mode; f16 and q4 modes stay close to q0f32', async () => {
    const prompt = [1, 450, 4996, 17354, 1701, 29916];
    const logits: Record<string, Float32Array> = {};
    for (const mode of ['q0f32', 'q0f16', 'q4f32_1', 'q4f16_1']) {
      const m = await loadReferenceLlama(dirSource(join(TINY, mode)));
      logits[mode] = m.forward(prompt);
      expect(logits[mode].length).toBe(32000);
      expect(logits[mode].every(Number.isFinite)).toBe(true);
    }
    const rel = (a: Float32Array, b: Float32Array) => {
      let num = 0;
      let den = 0;
      for (let i = 0; i < a.length; i++) {
        num = Math.max(num, Math.abs(a[i] - b[i]));
        den = Math.max(den, Math.abs(b[i]));
      }
      return num / den;
    };
    // measured: q0f16 0.001, q4f16_1 vs q4f32_1 0.065, q4f32_1 vs q0f32 0.28
    expect(rel(logits.q0f16, logits.q0f32)).toBeLessThan(1e-2); // f16 weights vs f32 weights
    // 4-bit quantization error (and, between the two q4 modes, codes that round differently
    // against an f16 scale): loose, this only catches a wrong unpacking, which gives garbage
    expect(rel(logits.q4f16_1, logits.q4f32_1)).toBeLessThan(0.25);
    expect(rel(logits.q4f32_1, logits.q0f32)).toBeLessThan(0.5);
  }, 60_000);
});
