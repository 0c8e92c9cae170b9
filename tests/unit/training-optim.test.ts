/**
 * AdamW, the warmup schedule and the initialisation against values derived by hand from the
 * upstream formulas (written out independently below, not through the code under test).
 */
import { describe, expect, it } from 'vitest';
import { TRAINER_ADAMW_DEFAULTS, adamwInitState, adamwStep } from '../../src/training/adamw.ts';
import { linearWarmupFactor, linearWarmupLr, trainerTotalSteps } from '../../src/training/schedule.ts';
import { initAdapter, kaimingUniformA5, validateAdapterSpec } from '../../src/training/init.ts';
import { Rng } from '../../src/formats/random.ts';
import { tinyConfig } from './trainingFixtures.ts';

describe('AdamW (torch.optim.AdamW)', () => {
  it('two steps by hand: p=1, g=0.5, lr=0.1, wd=0.01', () => {
    // step 1: p = 1·(1 − 0.1·0.01) = 0.999; m = 0.1·0.5 = 0.05; v = 0.001·0.25 = 0.00025;
    //   m̂ = 0.05/0.1 = 0.5; √v̂ = √(0.00025/0.001) = 0.5; p = 0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899000002
    // step 2: p = 0.899000002·0.999 = 0.898101002; m = 0.095; v = 0.00049975; bc1 = 0.19, bc2 = 0.001999;
    //   m̂ = 0.5, √v̂ = 0.5; p = 0.898101002 − 0.099999998 = 0.798101004
    const p = new Float32Array([1]);
    const s = adamwInitState(1);
    const h = { ...TRAINER_ADAMW_DEFAULTS, lr: 0.1, weightDecay: 0.01 };
    adamwStep(p, new Float32Array([0.5]), s, h);
    expect(s.step).toBe(1);
    expect(p[0]).toBeCloseTo(0.899000002, 6);
    expect(s.m[0]).toBeCloseTo(0.05, 7);
    expect(s.v[0]).toBeCloseTo(0.00025, 9);
    adamwStep(p, new Float32Array([0.5]), s, h);
    expect(s.step).toBe(2);
    expect(p[0]).toBeCloseTo(0.798101004, 6);
    expect(s.m[0]).toBeCloseTo(0.095, 7);
    expect(s.v[0]).toBeCloseTo(0.00049975, 9);
  });

  it('three steps on a vector vs the formulas in f64 (weight decay applied to the pre-update p)', () => {
    const rng = new Rng(3);
    const n = 64;
    const p0 = rng.normalArray(n, 1);
    const grads = [rng.normalArray(n, 1), rng.normalArray(n, 0.01), rng.normalArray(n, 3)];
    const hyper = { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };
    const p = Float32Array.from(p0);
    const s = adamwInitState(n);
    // independent f64 transcription of torch's documented algorithm
    const q = Array.from(p0);
    const m = new Array(n).fill(0);
    const v = new Array(n).fill(0);
    for (let t = 1; t <= 3; t++) {
      adamwStep(p, grads[t - 1], s, hyper);
      for (let i = 0; i < n; i++) {
        const g = grads[t - 1][i];
        q[i] -= hyper.lr * hyper.weightDecay * q[i];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        const mh = m[i] / (1 - 0.9 ** t);
        const vh = v[i] / (1 - 0.999 ** t);
        q[i] -= (hyper.lr * mh) / (Math.sqrt(vh) + 1e-8);
      }
      for (let i = 0; i < n; i++) {
        expect(Math.abs(p[i] - q[i])).toBeLessThan(1e-6 * Math.abs(q[i]) + 1e-9);
        expect(Math.abs(s.m[i] - m[i])).toBeLessThan(1e-6 * Math.abs(m[i]) + 1e-12);
        expect(Math.abs(s.v[i] - v[i])).toBeLessThan(1e-6 * Math.abs(v[i]) + 1e-15);
      }
    }
  });

  it('the first step moves every entry by about lr (m̂/√v̂ = sign g), eps keeps g=0 still', () => {
    const p = new Float32Array([0, 0, 0]);
    adamwStep(p, new Float32Array([2, -1e-3, 0]), adamwInitState(3), { ...TRAINER_ADAMW_DEFAULTS, lr: 0.01 });
    expect(p[0]).toBeCloseTo(-0.01, 8);
    expect(p[1]).toBeCloseTo(0.01, 6);
    expect(p[2]).toBe(0);
  });

  it('refuses mismatched lengths', () => {
    expect(() => adamwStep(new Float32Array(2), new Float32Array(3), adamwInitState(2), { ...TRAINER_ADAMW_DEFAULTS, lr: 1 })).toThrow(/grad 3/);
  });
});

describe('get_linear_schedule_with_warmup', () => {
  it('warmup from 0, then linear decay to 0 at S (W = 100, S = 250)', () => {
    expect(linearWarmupFactor(0, 100, 250)).toBe(0);
    expect(linearWarmupFactor(1, 100, 250)).toBe(0.01);
    expect(linearWarmupFactor(50, 100, 250)).toBe(0.5);
    expect(linearWarmupFactor(99, 100, 250)).toBe(0.99);
    expect(linearWarmupFactor(100, 100, 250)).toBe(1);
    expect(linearWarmupFactor(175, 100, 250)).toBe(0.5);
    expect(linearWarmupFactor(250, 100, 250)).toBe(0);
    expect(linearWarmupFactor(300, 100, 250)).toBe(0);
    expect(linearWarmupLr(10, 3e-4, 100, 250)).toBeCloseTo(3e-5, 15);
  });
  it('edge cases: no warmup, warmup longer than training', () => {
    expect(linearWarmupFactor(0, 0, 10)).toBe(1);
    expect(linearWarmupFactor(5, 0, 10)).toBe(0.5);
    // S ≤ W: max(1, S − W) = 1 once s ≥ W
    expect(linearWarmupFactor(50, 100, 60)).toBe(0.5);
    expect(linearWarmupFactor(100, 100, 60)).toBe(0);
    expect(() => linearWarmupFactor(-1, 1, 2)).toThrow(/non-negative/);
  });
  it("the Trainer's step count (3260 examples as in math_data.json, micro batch 4, batch 16, 3 epochs)", () => {
    // ceil(3260/4) = 815 micro-batches; 815 // 4 = 203 updates per epoch; 3 epochs = 609
    expect(trainerTotalSteps(3260, 4, 4, 3)).toBe(609);
    expect(trainerTotalSteps(3, 4, 8, 1)).toBe(1);
  });
});

describe('initialisation (PEFT / LLM-Adapters)', () => {
  it('kaiming_uniform(a=√5) stays within ±1/√fan_in and fills it uniformly', () => {
    const w = kaimingUniformA5(100, 64, new Rng(1));
    const bound = 1 / 8;
    let sq = 0;
    for (const x of w) {
      expect(Math.abs(x)).toBeLessThanOrEqual(bound);
      sq += x * x;
    }
    // Uniform(−b, b) has variance b²/3
    expect(sq / w.length).toBeGreaterThan((0.95 * (bound * bound)) / 3);
    expect(sq / w.length).toBeLessThan((1.05 * (bound * bound)) / 3);
  });
  const c = tinyConfig();
  it('LoRA: A kaiming, B zero, scaling alpha/r, shapes [r, in] / [out, r]', () => {
    const a = initAdapter(c, { kind: 'lora', r: 4, alpha: 16, targets: ['q_proj', 'down_proj'], dropout: 0.05 }, new Rng(2));
    if (a.kind !== 'lora') throw new Error('kind');
    expect(a.scaling).toBe(4);
    const q = a.layers[1].q_proj!;
    expect(q.a.length).toBe(4 * 16);
    expect(q.b.length).toBe(16 * 4);
    expect(q.b.every((x) => x === 0)).toBe(true);
    expect(a.layers[0].down_proj!.a.every((x) => Math.abs(x) <= 1 / Math.sqrt(24))).toBe(true);
    expect(a.layers[0].down_proj!.a.some((x) => x !== 0)).toBe(true);
  });
  it('bottleneck "bert" (LLM-Adapters default): both ~N(0, 0.02); "mam_adapter": down kaiming, up zero', () => {
    const bert = initAdapter(c, { kind: 'parallel', bottleneckSize: 8, nonLinearity: 'tanh', targets: ['up_proj'], dropout: 0, scaling: 1 }, new Rng(3));
    if (bert.kind === 'lora') throw new Error('kind');
    const m = bert.layers[0].up_proj!;
    expect(m.down.length).toBe(8 * 16);
    expect(m.up.length).toBe(24 * 8);
    const std = Math.sqrt(Array.from(m.up).reduce((s, x) => s + x * x, 0) / m.up.length);
    expect(std).toBeGreaterThan(0.016);
    expect(std).toBeLessThan(0.024);
    const mam = initAdapter(
      c,
      { kind: 'series', bottleneckSize: 8, nonLinearity: 'tanh', targets: ['down_proj'], dropout: 0, scaling: 1, initWeights: 'mam_adapter' },
      new Rng(3),
    );
    if (mam.kind === 'lora') throw new Error('kind');
    const d = mam.layers[1].down_proj!;
    expect(d.down.length).toBe(8 * 16); // output_adapter: d_in = the linear's out (16)
    expect(d.up.every((x) => x === 0)).toBe(true);
    expect(d.down.every((x) => Math.abs(x) <= 0.25)).toBe(true);
  });
  it('bad specs are refused by name', () => {
    expect(() => validateAdapterSpec({ kind: 'series', bottleneckSize: 8, nonLinearity: 'tanh', targets: ['q_proj'], dropout: 0, scaling: 1 })).toThrow(
      /not q_proj/,
    );
    expect(() => validateAdapterSpec({ kind: 'lora', r: 0, alpha: 1, targets: ['q_proj'], dropout: 0 })).toThrow(/r 0/);
    expect(() => validateAdapterSpec({ kind: 'lora', r: 2, alpha: 1, targets: [], dropout: 0 })).toThrow(/at least one/);
    expect(() => validateAdapterSpec({ kind: 'lora', r: 2, alpha: 1, targets: ['q_proj'], dropout: 1 })).toThrow(/dropout/);
  });
});
