/**
 * A small pure-TS training loop over the reference (referenceTraining.ts forward/backward, AdamW,
 * the warmup schedule): the oracle for the GPU trainer's step-by-step numbers, and a demonstration
 * that the pieces train. One call = one optimizer step:
 *
 *   lr = linearWarmupLr(step, lr, W, S)
 *   g  = (1/G) Σ_m ∇ loss_m      (loss_m: micro-batch m's mean-token loss; the mean of the G
 *                                  micro-batches' gradients, as the Trainer of LLM-Adapters' time
 *                                  accumulated loss / gradient_accumulation_steps; transformers
 *                                  ≥ 4.46 instead divides the summed token losses by the step's
 *                                  total token count, which differs when micro-batches hold
 *                                  different numbers of labelled tokens)
 *   AdamW(p, g) for every adapter tensor, then step += 1.
 *
 * Dropout masks (p = the spec's dropout) come from the counter-based hash of engine/dropout.ts,
 * keyed by dropoutKey(seed, step, micro) and the stream of (layer, module): stateless, so a resumed
 * run draws the same masks, and the GPU trainer's kernel draws the same ones bit for bit.
 */
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { Rng } from '../formats/random.ts';
import type { ReferenceWeights } from '../engine/reference.ts';
import { dropoutMaskKey, makeDropoutMask, trainingLossAndGrads, type DropoutMasks, type TrainableAdapter } from '../engine/referenceTraining.ts';
import { adamwInitState, adamwStep, TRAINER_ADAMW_DEFAULTS } from './adamw.ts';
import { linearWarmupLr } from './schedule.ts';
import { adapterInputWidth, initAdapter, type AdapterSpec } from './init.ts';
import { dropoutKey, microBatchIndices, mixSeed, padBatch } from './batching.ts';
import { dropoutStream } from '../engine/dropout.ts';
import { adapterTensorList, type TrainerState, type TrainingHyper } from './checkpoint.ts';
import type { TokenizedExample } from './data.ts';

export interface ReferenceModel {
  config: LlamaConfig;
  weights: ReferenceWeights;
}

export function defaultHyper(over: Partial<TrainingHyper> & Pick<TrainingHyper, 'totalSteps'>): TrainingHyper {
  return { microBatch: 4, gradAccum: 4, lr: 3e-4, warmupSteps: 100, shuffle: true, seed: 42, padToMultipleOf: 1, ...TRAINER_ADAMW_DEFAULTS, ...over };
}

/** A fresh trainer state: adapter initialised as PEFT / LLM-Adapters do (init.ts), zero AdamW state. */
export function createTrainerState(config: LlamaConfig, spec: AdapterSpec, hyper: TrainingHyper): TrainerState {
  const adapter = initAdapter(config, spec, new Rng(mixSeed(hyper.seed, 0x1417)));
  const optim = new Map(adapterTensorList(adapter).map((t) => [t.name, adamwInitState(t.data.length)]));
  return { spec, hyper, step: 0, adapter, optim };
}

/** The reference's dropout masks of one micro-batch of `tokens` rows (none when p = 0). */
export function dropoutMasks(config: LlamaConfig, state: TrainerState, micro: number, tokens: number): DropoutMasks | undefined {
  const p = state.spec.dropout;
  if (p === 0) return undefined;
  const key = dropoutKey(state.hyper.seed, state.step, micro);
  const masks: DropoutMasks = new Map();
  state.adapter.layers.forEach((L, l) => {
    for (const m of Object.keys(L) as Array<keyof typeof L>)
      masks.set(dropoutMaskKey(l, m), makeDropoutMask(tokens * adapterInputWidth(config, state.spec.kind, m), p, key, dropoutStream(l, m)));
  });
  return masks;
}

export interface StepReport {
  step: number; // the optimizer step just taken (from 0)
  lr: number;
  /** mean of the micro-batches' mean-token losses */
  loss: number;
  microLosses: number[];
}

/** One optimizer step (G micro-batches) in place on `state`. */
export function trainStep(model: ReferenceModel, data: TokenizedExample[], state: TrainerState): StepReport {
  const h = state.hyper;
  const lr = linearWarmupLr(state.step, h.lr, h.warmupSteps, h.totalSteps);
  const tensors = adapterTensorList(state.adapter);
  const acc = new Map(tensors.map((t) => [t.name, new Float64Array(t.data.length)]));
  const order = { numExamples: data.length, microBatch: h.microBatch, gradAccum: h.gradAccum, shuffle: h.shuffle, seed: h.seed };
  const microLosses: number[] = [];
  for (let micro = 0; micro < h.gradAccum; micro++) {
    const batch = padBatch(
      microBatchIndices(state.step, micro, order).map((i) => data[i]),
      0,
      h.padToMultipleOf,
    );
    const tokens = batch.inputIds.length * batch.inputIds[0].length;
    const r = trainingLossAndGrads(model.config, model.weights, state.adapter as TrainableAdapter, batch, {
      dropoutMasks: dropoutMasks(model.config, state, micro, tokens),
    });
    microLosses.push(r.loss);
    for (const t of tensors) {
      const g = (r.grads[t.layer][t.module] as Record<string, Float64Array>)[
        t.role === 'lora_A' ? 'a' : t.role === 'lora_B' ? 'b' : t.role === 'adapter_down' ? 'down' : 'up'
      ];
      const a = acc.get(t.name)!;
      for (let i = 0; i < a.length; i++) a[i] += g[i] / h.gradAccum;
    }
  }
  const hyper = { lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay };
  for (const t of tensors) adamwStep(t.data, acc.get(t.name)!, state.optim.get(t.name)!, hyper);
  const report = { step: state.step, lr, loss: microLosses.reduce((s, x) => s + x, 0) / microLosses.length, microLosses };
  state.step++;
  return report;
}
