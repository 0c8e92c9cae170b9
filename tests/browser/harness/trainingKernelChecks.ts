/**
 * The training kernels that are not matmuls (src/engine/trainingKernels.ts), each recorded by its
 * host wrapper and run on real WebGPU, against an oracle that is never the kernel: the reference
 * training pass's own pieces (src/engine/referenceTraining.ts causalLmLoss, rmsNormRows +
 * rmsNormBack, ropeRows(back), activationDerivative), central finite differences of reference.ts's
 * forward (SwiGLU), and src/training/adamw.ts adamwStep (AdamW). Inputs are random, sizes odd.
 * Imported by tests/browser/training-kernels.spec.ts through Vite.
 *
 * Each check returns the worst tolerance ratio over its outputs (see tolRatio): below 1 passes.
 */
import { paramsFor, runDispatches, upload, validated, write } from './dispatchHarness.ts';
import { activate, ropeInvFreq } from '../../../src/engine/reference.ts';
import { activationDerivative, causalLmLoss, IGNORE_INDEX, rmsNormBack, rmsNormRows, ropeRows } from '../../../src/engine/referenceTraining.ts';
import { ropeTable } from '../../../src/engine/buffers.ts';
import {
  activationBackDispatch,
  adamwDispatch,
  adamwStepScalars,
  crossEntropyDispatch,
  dropoutDispatch,
  dropoutStepUniform,
  dropoutStreamUniform,
  rmsnormBackDispatch,
  ropeBackDispatch,
  shiftedTargets,
  swigluBackDispatch,
  trainingRowInfo,
} from '../../../src/engine/trainingKernels.ts';
import { adamwInitState, adamwStep, type AdamWHyper } from '../../../src/training/adamw.ts';
import type { AdapterActivation } from '../../../src/formats/adapterFormat.ts';
import { seededRng } from '../../../src/formats/random.ts';
import { dropoutMask } from '../../../src/engine/dropout.ts';

/**
 * A tolerance: |got − want| ≤ atol·scale + rtol·|want| for every entry, where scale is the largest
 * |want| of the output unless a check names a larger one (the size of the terms a result is the
 * difference of, where cancellation leaves only absolute accuracy to ask for).
 */
export interface Tol {
  rtol: number;
  atol: number;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max_i |got_i − want_i| / (atol·scale + rtol·|want_i|); NaN or a missing entry is Infinity. */
export function tolRatio(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol, scale?: number): number {
  if (got.length < want.length) return Infinity;
  const floor = Math.max(tol.atol * (scale ?? maxAbs(want)), 1e-38);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= Infinity)) return Infinity; // NaN
    worst = Math.max(worst, d / (floor + tol.rtol * Math.abs(want[i])));
  }
  return worst;
}

function randn(n: number, seed: number, std = 1, mean = 0): Float32Array {
  return seededRng(seed).normalArray(n, std, mean);
}

/**
 * Cross-entropy of B sequences of T rows over `vocab` logits (random, std `spread`, plus `offset`:
 * a large offset overflows exp without the max subtraction), labels with about a quarter -100.
 * Checks each row's loss and the in-place dlogits (times gradScale) against causalLmLoss.
 */
export async function checkCrossEntropy(vocab: number, B: number, T: number, o: { spread: number; offset: number; gradScale: number; seed: number }, tol: Tol) {
  const rng = seededRng(o.seed);
  const logits = randn(B * T * vocab, o.seed + 1, o.spread, o.offset);
  const labels = Array.from({ length: B }, () => Array.from({ length: T }, () => (rng.next() < 0.25 ? IGNORE_INDEX : rng.int(vocab))));
  labels[0][1] = vocab - 1; // at least one target, and the last vocabulary entry
  const want = causalLmLoss(logits, labels, vocab, true);
  const wantGrad = want.dLogits!.map((g) => g * o.gradScale);
  const { targets } = shiftedTargets(labels, vocab);
  const [gotGrad, gotLoss] = await validated(async ({ device, pipes }) => {
    const parts = { device, pipes, params: paramsFor(device, B * T) };
    const bufs = { logits: upload(device, logits), targets: upload(device, targets), loss: upload(device, new Float32Array(B * T).fill(NaN)) };
    const d = crossEntropyDispatch(parts, { vocab, ...bufs, gradScale: o.gradScale });
    return runDispatches(device, [d], B * T, [bufs.logits, bufs.loss]);
  });
  let sum = 0;
  for (let i = 0; i < B * T; i++) sum += gotLoss[i];
  return {
    // Scales: a loss is in nats, asked for to atol nats at least (vocab 1's losses are all 0 and log(1)
    // may be off by a few ulps of 1); a gradient entry's own scale is the target's gradScale/count.
    ratio: Math.max(
      tolRatio(gotLoss, want.rowLoss, tol, Math.max(1, maxAbs(want.rowLoss))),
      tolRatio(gotGrad, wantGrad, tol, Math.abs(o.gradScale) / want.numTokens), // |softmax − onehot| ≤ 1
    ),
    meanLoss: sum / want.numTokens,
    wantLoss: want.loss,
  };
}

/** RMSNorm backward (frozen weight) on rows of `dim`, overwriting dx or adding onto it. */
export async function checkRmsnormBack(dim: number, rows: number, accumulate: boolean, tol: Tol) {
  const eps = 1e-5;
  const x = randn(rows * dim, 1, 3);
  const w = randn(dim, 2);
  const dy = randn(rows * dim, 3);
  const dx0 = randn(rows * dim, 4);
  const x64 = Float64Array.from(x);
  const { inv } = rmsNormRows(x64, rows, dim, w, eps);
  const want = accumulate ? Float64Array.from(dx0) : new Float64Array(rows * dim);
  rmsNormBack(x64, inv, rows, dim, w, Float64Array.from(dy), want);
  // dx is the difference of inv·w·dy and x·k (k = inv³/dim · Σ dy w x), which cancel where the row
  // is short (at dim 1 they cancel to eps/(x² + eps)): f32 can be asked for accuracy at their size.
  let terms = 0;
  for (let t = 0; t < rows; t++) {
    let dot = 0;
    for (let c = 0; c < dim; c++) dot += dy[t * dim + c] * w[c] * x[t * dim + c];
    const k = (inv[t] ** 3 * dot) / dim;
    for (let c = 0; c < dim; c++) terms = Math.max(terms, Math.abs(inv[t] * w[c] * dy[t * dim + c]) + Math.abs(x[t * dim + c] * k));
  }
  const [got] = await validated(async ({ device, pipes }) => {
    const parts = { device, pipes, params: paramsFor(device, rows) };
    const dx = upload(device, accumulate ? dx0 : new Float32Array(rows * dim).fill(NaN));
    const d = rmsnormBackDispatch(parts, {
      label: 'rmsnorm back',
      dim,
      eps,
      x: upload(device, x),
      w: upload(device, w),
      dy: upload(device, dy),
      dx,
      accumulate,
    });
    return runDispatches(device, [d], rows, [dx]);
  });
  return tolRatio(got, want, tol, Math.max(terms, maxAbs(want)));
}

/**
 * SwiGLU backward against central differences (f64, step 1e-4) of reference.ts's silu times up,
 * with some gate values where exp(−g) overflows f32 (g = −100) or is tiny (g = 100).
 */
export async function checkSwigluBack(ffn: number, rows: number, tol: Tol) {
  const gu = randn(rows * 2 * ffn, 5, 3);
  [-100, 100, 0, -20].forEach((g, k) => {
    if (k < ffn) gu[k] = g;
  });
  const dh = randn(rows * ffn, 6);
  const h = (g: number, u: number) => activate('silu', g) * u;
  const e = 1e-4;
  const want = new Float64Array(rows * 2 * ffn);
  for (let t = 0; t < rows; t++)
    for (let i = 0; i < ffn; i++) {
      const g = gu[t * 2 * ffn + i];
      const u = gu[t * 2 * ffn + ffn + i];
      const d = dh[t * ffn + i];
      want[t * 2 * ffn + i] = (d * (h(g + e, u) - h(g - e, u))) / (2 * e);
      want[t * 2 * ffn + ffn + i] = (d * (h(g, u + e) - h(g, u - e))) / (2 * e);
    }
  const [got] = await validated(async ({ device, pipes }) => {
    const parts = { device, pipes, params: paramsFor(device, rows) };
    const dgu = upload(device, new Float32Array(rows * 2 * ffn).fill(NaN));
    const d = swigluBackDispatch(parts, { label: 'swiglu back', ffn, gu: upload(device, gu), dh: upload(device, dh), dgu });
    return runDispatches(device, [d], rows, [dgu]);
  });
  return tolRatio(got, want, tol);
}

/**
 * RoPE backward on fused dqkv rows of B sequences of T tokens (row b·T + t at position t): the
 * H q heads and KV k heads inversely rotated in place, the KV v heads untouched.
 */
export async function checkRopeBack(H: number, KV: number, hd: number, B: number, T: number, theta: number, tol: Tol) {
  const width = (H + 2 * KV) * hd;
  const rows = B * T;
  const grad = randn(rows * width, 7);
  const inv = ropeInvFreq(hd, theta);
  const rotatedWidth = (H + KV) * hd;
  const qk = new Float64Array(rows * rotatedWidth);
  for (let i = 0; i < rows; i++) qk.set(grad.subarray(i * width, i * width + rotatedWidth), i * rotatedWidth);
  ropeRows(qk, rows, H + KV, hd, (i) => i % T, inv, true);
  const want = Float64Array.from(grad);
  for (let i = 0; i < rows; i++) want.set(qk.subarray(i * rotatedWidth, (i + 1) * rotatedWidth), i * width);
  const [got] = await validated(async ({ device, pipes }) => {
    const parts = { device, pipes, params: paramsFor(device, rows) };
    const g = upload(device, grad);
    const d = ropeBackDispatch(parts, {
      label: 'rope back',
      headDim: hd,
      heads: H + KV,
      rowWidth: width,
      grad: g,
      cosSin: upload(device, ropeTable(T, hd, theta)),
      rowInfo: upload(device, trainingRowInfo(B, T)),
    });
    return runDispatches(device, [d], rows, [g]);
  });
  return tolRatio(got, want, tol);
}

/**
 * A bottleneck activation's backward, g ← scale · g · act'(h), over random pre-activations and
 * planted ones: exactly 0 (relu's kink: 0, as torch), tiny, and large of both signs.
 */
export async function checkActivationBack(activation: AdapterActivation, width: number, rows: number, scale: number, tol: Tol) {
  const h = randn(rows * width, 8, 3);
  [0, -0, 1e-3, -1e-3, 20, -20, 100, -100].forEach((v, k) => {
    if (k < h.length) h[k] = v;
  });
  const g0 = randn(rows * width, 9);
  const want = Float64Array.from(g0, (g, i) => scale * g * activationDerivative(activation, h[i]));
  const [got] = await validated(async ({ device, pipes }) => {
    const parts = { device, pipes, params: paramsFor(device, rows) };
    const g = upload(device, g0);
    const d = activationBackDispatch(parts, { label: `${activation} back`, activation, width, scale, h: upload(device, h), g });
    return runDispatches(device, [d], rows, [g]);
  });
  return tolRatio(got, want, tol);
}

/**
 * `steps` AdamW updates of one tensor of n elements on the GPU (state kept in GPU buffers between
 * steps, the scalars rewritten each step as a trainer would) against adamwStep on the CPU, with a
 * new gradient and learning rate every step (a warmup ramp). Gradients include exact zeros (an
 * element whose v stays 0: the update is 0, eps keeps it finite), some as small as eps, and a few large ones. Compares
 * param, exp_avg and exp_avg_sq after every step.
 */
export async function checkAdamW(n: number, steps: number, h: Omit<AdamWHyper, 'lr'> & { lr: number }, tol: Tol) {
  const param0 = randn(n, 10, 0.02);
  const grads = Array.from({ length: steps }, (_, s) => {
    const g = randn(n, 20 + s, 1e-3);
    for (let i = s; i < n; i += 97) g[i] = 0;
    for (let i = 5; i < n; i += 1009) g[i] *= 1e4;
    for (let i = 3; i < n; i += 101) g[i] *= 1e-5; // |g| ~ eps: where eps's place (outside the root) shows
    return g;
  });
  const lrAt = (s: number) => (h.lr * (s + 1)) / steps;
  return validated(async ({ device, pipes }) => {
    const param = upload(device, param0);
    const m = upload(device, n * 4);
    const v = upload(device, n * 4);
    const grad = upload(device, n * 4);
    const hyper = upload(device, 32, true);
    const d = adamwDispatch({ device, pipes }, { label: 'adamw', n, hyper, param, grad, m, v });
    const want = Float32Array.from(param0);
    const state = adamwInitState(n);
    let worst = 0;
    for (let s = 0; s < steps; s++) {
      const hs = { ...h, lr: lrAt(s) };
      adamwStep(want, grads[s], state, hs);
      write(device, grad, grads[s]);
      write(device, hyper, adamwStepScalars(hs, s + 1, n));
      const [gp, gm, gv] = await runDispatches(device, [d], 0, [param, m, v]);
      worst = Math.max(worst, tolRatio(gp, want, tol), tolRatio(gm, state.m, tol), tolRatio(gv, state.v, tol));
    }
    return worst;
  });
}

/**
 * dropout.wgsl against engine/dropout.ts's mask for (p, key, stream) over [rows, width]: with an
 * all-ones input the kernel's output must be the TypeScript mask bit for bit (0 or f32 1/(1-p));
 * with a random input added onto a random dst (the backward's accumulate) it must be
 * fround(dst + fround(src · mask)), which WGSL's correctly rounded f32 × and + give exactly.
 * Returns the count of entries that differ in each case.
 */
export async function checkDropout(width: number, rows: number, p: number, key: number, stream: number) {
  const n = rows * width;
  const mask = dropoutMask(n, p, key, stream);
  const src = randn(n, 21);
  const dst0 = randn(n, 22);
  const want = Float32Array.from(dst0, (d, i) => Math.fround(d + Math.fround(src[i] * mask[i])));
  const [gotMask, gotAcc] = await validated(async ({ device, pipes }) => {
    const parts = { device, pipes, params: paramsFor(device, rows) };
    const step = upload(device, dropoutStepUniform(p, key), true);
    const s = upload(device, dropoutStreamUniform(stream), true);
    const ones = upload(device, new Float32Array(n).fill(1));
    const out = upload(device, new Float32Array(n).fill(NaN));
    const acc = upload(device, dst0);
    const d1 = dropoutDispatch(parts, { label: 'dropout mask', width, accumulate: false, step, stream: s, src: ones, dst: out });
    const d2 = dropoutDispatch(parts, { label: 'dropout accumulate', width, accumulate: true, step, stream: s, src: upload(device, src), dst: acc });
    return runDispatches(device, [d1, d2], rows, [out, acc]);
  });
  let maskDiff = 0;
  let accDiff = 0;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    if (!Object.is(gotMask[i], mask[i])) maskDiff++;
    if (!Object.is(gotAcc[i], want[i])) accDiff++;
    if (mask[i] !== 0) kept++;
  }
  return { maskDiff, accDiff, keptFraction: kept / n, n };
}
