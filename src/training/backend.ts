/**
 * The seam between a training run (CLI, app worker) and what computes the steps. A run talks only
 * to a TrainerBackend: take one optimizer step, read the state to checkpoint or export, ask for the
 * peak GPU memory. The first backend is the plain-TypeScript reference trainer (referenceTrainer.ts,
 * CPU, f64); the WebGPU trainer implements the same interface and plugs in beside it.
 *
 * Contract every backend keeps: a step whose loss or updated weights are not finite leaves the
 * state exactly as it was before the step (the last good state) and throws NonFiniteLossError, so
 * a run can stop there and keep what it has.
 */
import type { StepReport } from './referenceTrainer.ts';
import { createTrainerState, trainStep, type ReferenceModel } from './referenceTrainer.ts';
import { adapterTensorList, type TrainerState, type TrainingHyper } from './checkpoint.ts';
import { microBatchIndices } from './batching.ts';
import type { TokenizedExample } from './data.ts';
import type { AdapterSpec } from './init.ts';

export interface TrainerStepResult extends StepReport {
  /** tokens of the step's examples (padding not counted) */
  tokens: number;
}

export interface TrainerBackend {
  /** what computes the steps, as the user is told (e.g. "reference (CPU, f64)") */
  readonly label: string;
  /** the current state: after the last step that succeeded */
  readonly state: TrainerState;
  step(): Promise<TrainerStepResult>;
  /** the most GPU memory the run has held, in bytes (0 for a CPU backend) */
  peakGpuBytes(): number;
  dispose(): void;
}

export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
  constructor(
    readonly step: number,
    readonly loss: number,
    readonly what: 'loss' | 'weights',
  ) {
    super(
      what === 'loss'
        ? `the loss of optimizer step ${step} is ${loss}: training stopped; the last good state (after ${step} steps) is kept`
        : `optimizer step ${step} (loss ${loss}) made adapter weights non-finite (learning rate too high?): training stopped; the last good state (after ${step} steps) is kept`,
    );
  }
}

/** A training loop's running totals, which the CLI logs and the Train view checkpoints. */
export interface TrainingTally {
  tokens: number;
  seconds: number;
  losses: number[];
  lrs: number[];
}

/**
 * One optimizer step of a training loop, timed and added to the tally. A non-finite loss or
 * weights (NonFiniteLossError) ends the loop: it comes back as { stopped: message }, the backend's
 * state still the last good one; any other error is thrown.
 */
export async function tallyStep(backend: TrainerBackend, tally: TrainingTally): Promise<{ result: TrainerStepResult } | { stopped: string }> {
  const t0 = performance.now();
  try {
    const result = await backend.step();
    tally.tokens += result.tokens;
    tally.losses.push(result.loss);
    tally.lrs.push(result.lr);
    return { result };
  } catch (e) {
    if (!(e instanceof NonFiniteLossError)) throw e;
    return { stopped: e.message };
  } finally {
    tally.seconds += (performance.now() - t0) / 1000;
  }
}

export const REFERENCE_BACKEND_LABEL = 'reference (CPU, f64)';

/** Tokens the examples of optimizer step `step` hold (what tokens/s counts). */
export function stepTokens(data: TokenizedExample[], state: TrainerState, permCache?: Map<number, Uint32Array>): number {
  const h = state.hyper;
  const order = { numExamples: data.length, microBatch: h.microBatch, gradAccum: h.gradAccum, shuffle: h.shuffle, seed: h.seed };
  let n = 0;
  for (let m = 0; m < h.gradAccum; m++) for (const i of microBatchIndices(state.step, m, order, permCache)) n += data[i].inputIds.length;
  return n;
}

function snapshot(s: TrainerState) {
  return {
    step: s.step,
    tensors: adapterTensorList(s.adapter).map((t) => {
      const o = s.optim.get(t.name)!;
      return { data: t.data.slice(), m: o.m.slice(), v: o.v.slice(), step: o.step };
    }),
  };
}

function restore(s: TrainerState, snap: ReturnType<typeof snapshot>) {
  s.step = snap.step;
  adapterTensorList(s.adapter).forEach((t, i) => {
    const o = s.optim.get(t.name)!;
    t.data.set(snap.tensors[i].data);
    o.m.set(snap.tensors[i].m);
    o.v.set(snap.tensors[i].v);
    o.step = snap.tensors[i].step;
  });
}

/** The reference trainer (referenceTrainer.ts's trainStep) behind the backend interface. */
export class ReferenceTrainerBackend implements TrainerBackend {
  readonly label = REFERENCE_BACKEND_LABEL;
  private readonly permCache = new Map<number, Uint32Array>();

  constructor(
    private readonly model: ReferenceModel,
    private readonly data: TokenizedExample[],
    readonly state: TrainerState,
  ) {
    if (data.length === 0) throw new Error('no training examples');
  }

  static fresh(model: ReferenceModel, data: TokenizedExample[], spec: AdapterSpec, hyper: TrainingHyper): ReferenceTrainerBackend {
    return new ReferenceTrainerBackend(model, data, createTrainerState(model.config, spec, hyper));
  }

  async step(): Promise<TrainerStepResult> {
    const tokens = stepTokens(this.data, this.state, this.permCache);
    const before = snapshot(this.state);
    const r = trainStep(this.model, this.data, this.state);
    if (!Number.isFinite(r.loss)) {
      restore(this.state, before);
      throw new NonFiniteLossError(r.step, r.loss, 'loss');
    }
    if (adapterTensorList(this.state.adapter).some((t) => !t.data.every(Number.isFinite))) {
      restore(this.state, before);
      throw new NonFiniteLossError(r.step, r.loss, 'weights');
    }
    return { ...r, tokens };
  }

  peakGpuBytes(): number {
    return 0;
  }

  dispose(): void {}
}
