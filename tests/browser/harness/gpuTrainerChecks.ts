/**
 * The WebGPU trainer (src/training/gpuTrainer.ts) on a tiny model in the page, against the f64
 * reference: whole-model adapter gradients (referenceTraining.ts trainingLossAndGrads, itself
 * checked against finite differences in tests/unit/training-reference.test.ts), optimizer steps
 * (referenceTrainer.ts trainStep through ReferenceTrainerBackend), and a checkpoint / reload.
 * Errors are max |got − want| / max |want| per tensor (kernelChecks.ts relErr).
 */
import { createGpuContext, type GpuContext } from '../../../src/engine/gpu.ts';
import { httpModelSource, loadModelManifest } from '../../../src/formats/modelFiles.ts';
import { Rng } from '../../../src/formats/random.ts';
import type { AdapterModule } from '../../../src/formats/adapterFormat.ts';
import { trainingForward, trainingLossAndGrads, type TrainableAdapter } from '../../../src/engine/referenceTraining.ts';
import { loadTrainingBase, type LoadedTrainingBase } from '../../../src/training/referenceModel.ts';
import { createTrainerState, defaultHyper, dropoutMasks } from '../../../src/training/referenceTrainer.ts';
import { specFromRecipe, type TrainingMethod } from '../../../src/training/recipes.ts';
import { adapterTensorList, parseTrainerState, serializeTrainerState, type TrainerState } from '../../../src/training/checkpoint.ts';
import { microBatchIndices, padBatch } from '../../../src/training/batching.ts';
import { ReferenceTrainerBackend } from '../../../src/training/backend.ts';
import { GpuTrainerBackend, GPU_BACKEND_LABEL, checkTrainingFits } from '../../../src/training/gpuTrainer.ts';
import { deleteRun, getRun, getRunText, saveRun, saveRunText } from '../../../src/training/checkpointStore.ts';
import type { TokenizedExample } from '../../../src/training/data.ts';
import { relErr } from './kernelChecks.ts';

let ctx: Promise<GpuContext> | null = null;
const bases = new Map<string, Promise<LoadedTrainingBase>>();
const gpuCtx = () => (ctx ??= createGpuContext());
const baseFor = (url: string) => {
  let b = bases.get(url);
  if (!b) bases.set(url, (b = loadTrainingBase(httpModelSource(url))));
  return b;
};

/** Every module for LoRA and parallel (series: its three), so every site of the pass is covered. */
const ALL: Record<TrainingMethod, AdapterModule[]> = {
  lora: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  series: ['gate_proj', 'up_proj', 'down_proj'],
  parallel: ['q_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};

/** Seeded examples of different lengths (right padding inside a micro-batch), some prompt tokens masked. */
function examples(n: number, seed: number, vocab: number): TokenizedExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 3 + ((i * 3) % 5);
    const inputIds = Array.from({ length: len }, (_, t) => (t === 0 ? 1 : 3 + rng.int(vocab - 3)));
    const labels = inputIds.map((id, t) => (t < 2 && i % 2 === 0 ? -100 : id));
    return { inputIds, labels };
  });
}

/** A trainer state with every adapter tensor random (B and up too: zeros would hide A's and down's gradients). */
function randomState(
  base: LoadedTrainingBase,
  method: TrainingMethod,
  o: { microBatch: number; gradAccum: number; steps: number; lr: number; warmup?: number },
): TrainerState {
  const spec = specFromRecipe(method, { dropout: 0, targets: ALL[method], ...(method === 'lora' ? { r: 4, alpha: 8 } : { bottleneck: 6 }) });
  const hyper = defaultHyper({
    microBatch: o.microBatch,
    gradAccum: o.gradAccum,
    totalSteps: o.steps,
    warmupSteps: o.warmup ?? 1,
    lr: o.lr,
    seed: 7,
    weightDecay: 0.01,
  });
  const state = createTrainerState(base.config, spec, hyper);
  const rng = new Rng(99);
  for (const t of adapterTensorList(state.adapter)) t.data.set(rng.normalArray(t.data.length, 0.2));
  return state;
}

const clone = (s: TrainerState) => parseTrainerState(serializeTrainerState(s));

/**
 * The adapter at θ + eps·d in f64 (f32 tensors would round the perturbation), d given per tensor in
 * adapterTensorList's order (layer, module as stored, then A/B or down/up).
 */
function perturbed(a: TrainableAdapter, eps: number, dirs: Float32Array[]): TrainableAdapter {
  let k = 0;
  const move = (t: Float32Array | Float64Array) => Float64Array.from(t, (x, i) => x + eps * dirs[k][i]);
  const layers = a.layers.map((L) =>
    Object.fromEntries(
      Object.entries(L).map(([m, t]) => {
        if ('a' in t) {
          const A = move(t.a);
          k++;
          const B = move(t.b);
          k++;
          return [m, { a: A, b: B }];
        }
        const down = move(t.down);
        k++;
        const up = move(t.up);
        k++;
        return [m, { ...t, down, up }];
      }),
    ),
  );
  return { ...a, layers } as TrainableAdapter;
}

/**
 * The reference's gradient of optimizer step 0 of `state` (micro-batch 2 × accumulation 2, shuffled):
 * the mean of its micro-batches' gradients by tensor name, and the mean loss; with `withDropout`,
 * under the reference trainer's own hashed masks.
 */
function referenceStepGradients(base: Awaited<ReturnType<typeof baseFor>>, state: TrainerState, data: TokenizedExample[], withDropout: boolean) {
  const tensors = adapterTensorList(state.adapter);
  const want = new Map(tensors.map((t) => [t.name, new Float64Array(t.data.length)]));
  const order = { numExamples: data.length, microBatch: 2, gradAccum: 2, shuffle: true, seed: state.hyper.seed };
  let loss = 0;
  for (let micro = 0; micro < 2; micro++) {
    const batch = padBatch(microBatchIndices(0, micro, order).map((i) => data[i]));
    const tokens = batch.inputIds.length * batch.inputIds[0].length;
    const masks = withDropout ? dropoutMasks(base.config, state, micro, tokens) : undefined;
    const r = trainingLossAndGrads(base.config, base.weights, state.adapter as TrainableAdapter, batch, { dropoutMasks: masks });
    loss += r.loss / 2;
    for (const t of tensors) {
      const g = (r.grads[t.layer][t.module] as Record<string, Float64Array>)[
        t.role === 'lora_A' ? 'a' : t.role === 'lora_B' ? 'b' : t.role === 'adapter_down' ? 'down' : 'up'
      ];
      const a = want.get(t.name)!;
      for (let i = 0; i < a.length; i++) a[i] += g[i] / 2;
    }
  }
  return { want, loss };
}

/** One optimizer step's accumulated gradient on the GPU against the reference's mean of micro-batch gradients. */
export async function gradientsVsReference(url: string, method: TrainingMethod) {
  const base = await baseFor(url);
  const info = await loadModelManifest(httpModelSource(url));
  const data = examples(5, 3, base.config.vocabSize);
  const state = randomState(base, method, { microBatch: 2, gradAccum: 2, steps: 2, lr: 0 });
  const tensors = adapterTensorList(state.adapter);
  const order = { numExamples: data.length, microBatch: 2, gradAccum: 2, shuffle: true, seed: state.hyper.seed };
  const { want, loss: wantLoss } = referenceStepGradients(base, state, data, false);
  const gpu = await GpuTrainerBackend.create(await gpuCtx(), httpModelSource(url), info, data, clone(state));
  try {
    const r = await gpu.step();
    const got = await gpu.lastGradients();
    const errors: Record<string, number> = {};
    let maxErr = 0;
    for (const t of tensors) {
      const e = relErr(got.get(t.name)!, want.get(t.name)!);
      errors[t.name] = e;
      maxErr = Math.max(maxErr, e);
    }
    const allNonZero = [...want.values()].every((a) => a.some((x) => x !== 0));
    // Finite differences of the reference forward along one random direction d over every tensor:
    // (L(θ + εd) − L(θ − εd)) / 2ε against the GPU's ⟨g, d⟩ (f64 forward; ε = 1e-5 keeps the ε² truncation far below the tolerance).
    const rng = new Rng(5);
    const dirs = tensors.map((t) => rng.normalArray(t.data.length));
    const stepLoss = (eps: number) => {
      const moved = perturbed(state.adapter as TrainableAdapter, eps, dirs);
      let l = 0;
      for (let micro = 0; micro < 2; micro++) {
        const batch = padBatch(microBatchIndices(0, micro, order).map((i) => data[i]));
        l += trainingForward(base.config, base.weights, moved, batch).loss / 2;
      }
      return l;
    };
    const eps = 1e-5;
    const fd = (stepLoss(eps) - stepLoss(-eps)) / (2 * eps);
    let dot = 0;
    tensors.forEach((t, k) => got.get(t.name)!.forEach((g, i) => (dot += g * dirs[k][i])));
    const fdErr = Math.abs(fd - dot) / Math.abs(fd);
    let refDot = 0;
    tensors.forEach((t, k) => want.get(t.name)!.forEach((g, i) => (refDot += g * dirs[k][i])));
    const refFdErr = Math.abs(fd - refDot) / Math.abs(fd);
    return {
      fdErr,
      refFdErr,
      lossErr: Math.abs(r.loss - wantLoss) / Math.abs(wantLoss),
      maxErr,
      errors,
      tensors: tensors.length,
      allNonZero,
      peakGpuBytes: gpu.peakGpuBytes(),
    };
  } finally {
    gpu.dispose();
  }
}

/** `steps` optimizer steps on the GPU and in the reference from one state: losses and weights. */
export async function stepsVsReference(url: string, method: TrainingMethod, steps: number) {
  const base = await baseFor(url);
  const info = await loadModelManifest(httpModelSource(url));
  const data = examples(6, 5, base.config.vocabSize);
  const state = randomState(base, method, { microBatch: 2, gradAccum: 2, steps, lr: 1e-2 });
  const ref = new ReferenceTrainerBackend(base, data, clone(state));
  const gpu = await GpuTrainerBackend.create(await gpuCtx(), httpModelSource(url), info, data, clone(state));
  try {
    let lossErr = 0;
    for (let s = 0; s < steps; s++) {
      const a = await ref.step();
      const b = await gpu.step();
      lossErr = Math.max(lossErr, Math.abs(a.loss - b.loss) / Math.abs(a.loss));
    }
    const want = adapterTensorList(ref.state.adapter);
    const got = adapterTensorList(gpu.state.adapter);
    const start = adapterTensorList(state.adapter);
    let weightErr = 0;
    let moved = 0;
    want.forEach((t, i) => {
      // relative to the change the steps made, so a GPU that did nothing cannot pass
      const dw = t.data.map((x, j) => x - start[i].data[j]);
      const dg = got[i].data.map((x, j) => x - start[i].data[j]);
      weightErr = Math.max(weightErr, relErr(dg, dw));
      moved = Math.max(moved, Math.max(...dw.map(Math.abs)));
    });
    return { lossErr, weightErr, moved, step: gpu.state.step };
  } finally {
    gpu.dispose();
  }
}

/**
 * n steps straight on, and n steps, a checkpoint in the app's IndexedDB store (checkpointStore.ts
 * saveRun, the run's data beside it as JSONL), then what a reload does: the record and the data read
 * back and a NEW GPU backend made from them, n more. Warmup `warmup` steps (randomState's micro-batch
 * 2 × accumulation 2); the losses, lrs and serialised states (adapter tensors, AdamW moments and
 * steps) of both, and whether weights and moments agree bit for bit.
 */
export async function resumeEqualsStraight(url: string, method: TrainingMethod, n: number, warmup = 1) {
  const base = await baseFor(url);
  const info = await loadModelManifest(httpModelSource(url));
  const data = examples(6, 11, base.config.vocabSize);
  const state = randomState(base, method, { microBatch: 2, gradAccum: 2, steps: 2 * n, lr: 1e-2, warmup });
  const g = await gpuCtx();
  // The recipe's LoRA dropout: its masks are hashed from (seed, step, micro), so they too must continue across the reload.
  state.spec = { ...state.spec, dropout: 0.05 };
  // `snapshotAt`: also the state after that many steps, as a checkpoint written then would hold it.
  // The straight run's first n steps are the interrupted run's, so one run of 2n steps gives both
  // (n + n costs 3n GPU steps, not 4n).
  const run = async (s: TrainerState, d: TokenizedExample[], n: number, snapshotAt = -1) => {
    const b = await GpuTrainerBackend.create(g, httpModelSource(url), info, d, s);
    const losses: number[] = [];
    const lrs: number[] = [];
    let snapshot = '';
    try {
      for (let i = 0; i < n; i++) {
        const r = await b.step();
        losses.push(r.loss);
        lrs.push(r.lr);
        if (i + 1 === snapshotAt) snapshot = serializeTrainerState(b.state);
      }
      return { state: serializeTrainerState(b.state), losses, lrs, snapshot };
    } finally {
      b.dispose();
    }
  };
  const straight = await run(clone(state), data, 2 * n, n);
  const first = { state: straight.snapshot, losses: straight.losses.slice(0, n), lrs: straight.lrs.slice(0, n) };
  const id = `gpu-trainer-resume-${method}-${n}-${Date.now()}`;
  const h = state.hyper;
  await saveRun({
    id,
    name: id,
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    base: { id: url, name: url, location: { kind: 'http', baseUrl: url }, config: base.config },
    method: state.spec.kind,
    spec: state.spec,
    hyper: h,
    epochs: null,
    cutoffLen: 256,
    checkpointEvery: n,
    data: { name: 'resume.jsonl', examples: data.length, truncated: 0, unlabelled: 0 },
    status: 'paused',
    message: null,
    backend: GPU_BACKEND_LABEL,
    losses: first.losses,
    lrs: first.lrs,
    tokens: 0,
    seconds: 0,
    state: first.state,
  });
  await saveRunText(id, data.map((e) => JSON.stringify({ input_ids: e.inputIds, labels: e.labels })).join('\n'));
  try {
    const rec = await getRun(id);
    const text = await getRunText(id);
    if (!rec?.state || text === undefined) throw new Error('the checkpoint was not stored');
    const stored = text.split('\n').map((l) => {
      const o = JSON.parse(l) as { input_ids: number[]; labels: number[] };
      return { inputIds: o.input_ids, labels: o.labels };
    });
    const second = await run(parseTrainerState(rec.state), stored, n);
    const a = parseTrainerState(straight.state);
    const b = parseTrainerState(second.state);
    const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
    const same = (x: Float32Array, y: Float32Array) => x.length === y.length && bits(x).every((v, i) => v === bits(y)[i]);
    const ta = adapterTensorList(a.adapter);
    const tb = adapterTensorList(b.adapter);
    const weightsEqual = ta.length === tb.length && ta.every((t, i) => t.name === tb[i].name && same(t.data, tb[i].data));
    const momentsEqual = ta.every((t) => {
      const oa = a.optim.get(t.name)!;
      const ob = b.optim.get(t.name);
      return !!ob && oa.step === ob.step && same(oa.m, ob.m) && same(oa.v, ob.v);
    });
    const moved = Math.max(...ta.map((t, i) => relErr(t.data, adapterTensorList(state.adapter)[i].data)));
    return {
      equal: straight.state === second.state,
      weightsEqual,
      momentsEqual,
      moved,
      step: b.step,
      optimSteps: b.optim.get(ta[0].name)!.step,
      straight: straight.losses,
      resumed: [...first.losses, ...second.losses],
      straightLrs: straight.lrs,
      resumedLrs: [...first.lrs, ...second.lrs],
    };
  } finally {
    await deleteRun(id);
  }
}

/** The memory check's message for a micro-batch over the device's largest buffer (nothing allocated). */
export async function tooLargeMessage(url: string, B: number, T: number): Promise<string> {
  const info = await loadModelManifest(httpModelSource(url));
  const limits = (await gpuCtx()).device.limits;
  try {
    checkTrainingFits(limits, info.config, B, T);
    return 'fits';
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Dropout p on the GPU against the reference backward with the reference trainer's own masks
 * (referenceTrainer.ts dropoutMasks: engine/dropout.ts's hash of (seed, step, micro), layer and
 * module): one step's accumulated gradients. Also returns how far the no-dropout gradients are
 * from the dropout ones, so a GPU that ignored dropout cannot pass.
 */
export async function dropoutGradientsVsReference(url: string, method: TrainingMethod, p: number) {
  const base = await baseFor(url);
  const info = await loadModelManifest(httpModelSource(url));
  const data = examples(5, 3, base.config.vocabSize);
  const state = randomState(base, method, { microBatch: 2, gradAccum: 2, steps: 2, lr: 0 });
  state.spec = { ...state.spec, dropout: p };
  const tensors = adapterTensorList(state.adapter);
  const referenceGrads = (withDropout: boolean) => referenceStepGradients(base, state, data, withDropout);
  const dropped = referenceGrads(true);
  const plain = referenceGrads(false);
  const gpu = await GpuTrainerBackend.create(await gpuCtx(), httpModelSource(url), info, data, clone(state));
  try {
    const r = await gpu.step();
    const got = await gpu.lastGradients();
    const errors: Record<string, number> = {};
    let maxErr = 0;
    let minDropoutEffect = Infinity; // per tensor: how far the no-dropout gradient is from the dropout one
    let gpuVsPlain = Infinity;
    for (const t of tensors) {
      const want = dropped.want.get(t.name)!;
      const e = relErr(got.get(t.name)!, want);
      errors[t.name] = e;
      maxErr = Math.max(maxErr, e);
      minDropoutEffect = Math.min(minDropoutEffect, relErr(plain.want.get(t.name)!, want));
      gpuVsPlain = Math.min(gpuVsPlain, relErr(got.get(t.name)!, plain.want.get(t.name)!));
    }
    return {
      maxErr,
      errors,
      lossErr: Math.abs(r.loss - dropped.loss) / Math.abs(dropped.loss),
      minDropoutEffect,
      gpuVsPlain,
      allNonZero: [...dropped.want.values()].every((a) => a.some((x) => x !== 0)),
    };
  } finally {
    gpu.dispose();
  }
}

/**
 * The reference unit test's fixed pattern (tests/unit/training-loop.test.ts) on the GPU: BOS, then
 * the cycle 3 4 5 6 3 … from one of 4 offsets, 8 examples of `len` tokens, labels = inputs, a fresh
 * PEFT-initialised adapter (B or up zero), micro-batch 2 × accumulation 2, shuffled, warmup 3 then
 * the linear decay. The losses of `steps` optimizer steps.
 */
export async function learnsPattern(url: string, method: TrainingMethod, steps: number, lr: number, len: number) {
  const info = await loadModelManifest(httpModelSource(url));
  const pattern = (offset: number): TokenizedExample => {
    const ids = [1, ...Array.from({ length: len - 1 }, (_, i) => 3 + ((i + offset) % 4))];
    return { inputIds: ids, labels: ids.slice() };
  };
  const data = Array.from({ length: 8 }, (_, i) => pattern(i % 4));
  const spec = specFromRecipe(method, { dropout: 0, targets: ALL[method], ...(method === 'lora' ? { r: 4, alpha: 8 } : { bottleneck: 8 }) });
  const state = createTrainerState(
    info.config,
    spec,
    defaultHyper({ microBatch: 2, gradAccum: 2, lr, warmupSteps: 3, totalSteps: steps, shuffle: true, seed: 3 }),
  );
  const gpu = await GpuTrainerBackend.create(await gpuCtx(), httpModelSource(url), info, data, state);
  try {
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) losses.push((await gpu.step()).loss);
    return { losses, examples: data.length, stepsPerEpoch: data.length / (2 * 2) };
  } finally {
    gpu.dispose();
  }
}
