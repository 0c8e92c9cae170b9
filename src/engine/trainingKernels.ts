/**
 * Host side of the training kernels that are not matmuls: each function records one Dispatch
 * (kernels.ts) over GPU buffers the trainer owns, the way forward.ts records the forward pass, so
 * a backward pass is a list of these run in order. Shapes below say `rows`: the B·T token rows of
 * one micro-batch (row b·T + t), which the kernels read from the Params uniform `params`
 * (forward.ts's layout: rows first). Every kernel's maths and its oracle:
 *
 * - crossEntropy:   loss and dLoss/dlogits in place     (referenceTraining.ts causalLmLoss)
 * - rmsnormBack:    dx of RMSNorm with a frozen weight   (rmsNormBack)
 * - swigluBack:     [dgate | dup] of silu(gate) · up     (finite differences of the forward)
 * - ropeBack:       the inverse rotation of dq, dk       (ropeRows with back = true)
 * - activationBack: a bottleneck activation's derivative (activationDerivative)
 * - adamw:          one torch.optim.AdamW update         (src/training/adamw.ts adamwStep)
 */
import type { AdapterActivation } from '../formats/adapterFormat.ts';
import type { AdamWHyper } from '../training/adamw.ts';
import { ACT_CODE } from './adapters.ts';
import { dropoutScale, dropoutThreshold } from './dropout.ts';
import { bindKernel, type Dispatch, type KernelBuffers, type KernelName, type PipelineCache } from './kernels.ts';

/** torch CrossEntropyLoss's ignore_index: a label that takes its position out of the loss. */
export const IGNORE_INDEX = -100;

/** What recording needs: the device's pipelines and the Params uniform holding the call's row count. */
export interface TrainingKernelParts {
  device: GPUDevice;
  pipes: PipelineCache;
  /** Params uniform (params.wgsl): rows = B·T. Not read by adamw. */
  params: GPUBuffer;
}

function record<K extends KernelName>(
  parts: TrainingKernelParts,
  label: string,
  kernel: K,
  constants: Record<string, number>,
  buffers: KernelBuffers<K>,
  workgroups: Dispatch['workgroups'],
): Dispatch {
  const pipeline = parts.pipes.get(kernel, {}, constants);
  return { label, pipeline, bindGroups: bindKernel(parts.device, pipeline, kernel, buffers, label), workgroups };
}

/**
 * The per-row targets crossEntropy reads: row b·T + t predicts labels[b][t + 1] (transformers'
 * shift_labels); the last row of each sequence has none (-100). Refuses what torch would refuse
 * (a label outside the vocabulary) and a batch with no target at all (a mean over nothing).
 */
export function shiftedTargets(labels: number[][], vocab: number): { targets: Int32Array; count: number } {
  const T = labels[0]?.length ?? 0;
  const targets = new Int32Array(labels.length * T).fill(IGNORE_INDEX);
  let count = 0;
  labels.forEach((row, b) => {
    if (row.length !== T) throw new Error(`labels of sequence ${b} have ${row.length} entries, expected ${T} (pad every sequence to one length)`);
    for (let t = 0; t + 1 < T; t++) {
      const y = row[t + 1];
      if (y === IGNORE_INDEX) continue;
      if (!Number.isInteger(y) || y < 0 || y >= vocab)
        throw new Error(`label ${y} at sequence ${b}, position ${t + 1} is outside the vocabulary of ${vocab} (use ${IGNORE_INDEX} to ignore a position)`);
      targets[b * T + t] = y;
      count++;
    }
  });
  if (count === 0) throw new Error(`the batch has no labelled target token (every shifted label is ${IGNORE_INDEX}): its mean loss is undefined`);
  return { targets, count };
}

/** The rowInfo (slot, pos) of a micro-batch's rows for ropeBack: row b·T + t is at position t (right padding). */
export function trainingRowInfo(B: number, T: number): Uint32Array {
  const info = new Uint32Array(B * T * 2);
  for (let i = 0; i < B * T; i++) info[i * 2 + 1] = i % T;
  return info;
}

/**
 * Loss and gradient of the micro-batch's logits, in place: logits [rows, vocab] become
 * gradScale · dLoss/dlogits, loss [rows] each row's −log p(target) (0 without one; the mean loss
 * is their sum over shiftedTargets' count). targets [rows] i32 from shiftedTargets.
 * gradScale 1/G makes G accumulated micro-batches' summed gradients their mean.
 */
export function crossEntropyDispatch(
  parts: TrainingKernelParts,
  o: { vocab: number; logits: GPUBuffer; targets: GPUBuffer; loss: GPUBuffer; gradScale?: number },
): Dispatch {
  const buffers = { p: parts.params, logits: o.logits, targets: o.targets, loss: o.loss };
  return record(parts, 'cross-entropy', 'crossEntropy', { VOCAB: o.vocab, SCALE: o.gradScale ?? 1 }, buffers, (rows) => [rows, 1, 1]);
}

/** dx (+)= dLoss/dx of y = RMSNorm(x)·w for x, dy, dx [rows, dim], w [dim]; `accumulate` adds onto dx. */
export function rmsnormBackDispatch(
  parts: TrainingKernelParts,
  o: { label: string; dim: number; eps: number; x: GPUBuffer; w: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer; accumulate?: boolean },
): Dispatch {
  const constants = { DIM: o.dim, EPS: o.eps, ACCUMULATE: o.accumulate ? 1 : 0 };
  return record(parts, o.label, 'rmsnormBack', constants, { p: parts.params, x: o.x, w: o.w, dy: o.dy, dx: o.dx }, (rows) => [rows, 1, 1]);
}

/** dgu [rows, 2·ffn] = [dgate | dup] of h = silu(gate)·up, from the forward's gu [rows, 2·ffn] and dh [rows, ffn]. */
export function swigluBackDispatch(parts: TrainingKernelParts, o: { label: string; ffn: number; gu: GPUBuffer; dh: GPUBuffer; dgu: GPUBuffer }): Dispatch {
  const buffers = { p: parts.params, gu: o.gu, dh: o.dh, dgu: o.dgu };
  return record(parts, o.label, 'swigluBack', { FFN: o.ffn }, buffers, (rows) => [Math.ceil(o.ffn / 64), rows, 1]);
}

/**
 * The inverse rotation, in place, of the first `heads` heads of each row of grad [rows, rowWidth]
 * (fused dqkv rows: H q heads then KV k heads; dv after them stays). cosSin: the forward's table
 * (buffers.ts ropeTable); rowInfo: each row's position (trainingRowInfo).
 */
export function ropeBackDispatch(
  parts: TrainingKernelParts,
  o: { label: string; headDim: number; heads: number; rowWidth: number; grad: GPUBuffer; cosSin: GPUBuffer; rowInfo: GPUBuffer },
): Dispatch {
  if (o.headDim % 2 !== 0 || o.heads * o.headDim > o.rowWidth) throw new Error(`${o.label}: ${o.heads} heads of ${o.headDim} do not fit rows of ${o.rowWidth}`);
  const constants = { HEAD_DIM: o.headDim, N_HEADS: o.heads, ROW_W: o.rowWidth };
  const buffers = { p: parts.params, grad: o.grad, cosSin: o.cosSin, rowInfo: o.rowInfo };
  return record(parts, o.label, 'ropeBack', constants, buffers, (rows) => [Math.ceil((o.heads * o.headDim) / 2 / 64), rows, 1]);
}

/** g [rows, width] ← scale · g · act'(h), in place, h [rows, width] the activation's input. */
export function activationBackDispatch(
  parts: TrainingKernelParts,
  o: { label: string; activation: AdapterActivation; width: number; scale?: number; h: GPUBuffer; g: GPUBuffer },
): Dispatch {
  const constants = { ACT: ACT_CODE[o.activation], WIDTH: o.width, SCALE: o.scale ?? 1 };
  return record(parts, o.label, 'activationBack', constants, { p: parts.params, h: o.h, g: o.g }, (rows) => [Math.ceil(o.width / 64), rows, 1]);
}

/** Bytes of adamw.wgsl's AdamWStep uniform. */
export const ADAMW_STEP_BYTES = 32;

/**
 * adamw.wgsl's AdamWStep for update number `step` (1 for the first, torch's state["step"] after
 * its increment) of a tensor of n elements: the Python-scalar maths of adamwStep in f64, each
 * value then rounded to f32 as torch passes it to an f32 tensor op.
 */
export function adamwStepScalars(h: AdamWHyper, step: number, n: number): ArrayBuffer {
  if (!Number.isInteger(step) || step < 1) throw new Error(`AdamW step ${step} must be a whole number from 1`);
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new Error(`AdamW tensor size ${n} is not a valid element count`);
  const buf = new ArrayBuffer(ADAMW_STEP_BYTES);
  new Uint32Array(buf, 0, 1)[0] = n;
  const bc1 = 1 - Math.pow(h.beta1, step);
  const bc2 = 1 - Math.pow(h.beta2, step);
  // decay, w1, b2, w2, negStepSize, bc2Sqrt, eps (Float32Array rounds each as Math.fround would)
  new Float32Array(buf, 4, 7).set([1 - h.lr * h.weightDecay, 1 - h.beta1, h.beta2, 1 - h.beta2, -(h.lr / bc1), Math.sqrt(bc2), h.eps]);
  return buf;
}

/**
 * One AdamW update of param, m (exp_avg) and v (exp_avg_sq) [n] from grad [n], with the scalars
 * of `hyper` (a uniform of ADAMW_STEP_BYTES holding adamwStepScalars, written before each step).
 * A 2-D grid of 64-thread workgroups, so any n fits the 65535-per-dimension limit.
 */
export function adamwDispatch(
  parts: Omit<TrainingKernelParts, 'params'>,
  o: { label: string; n: number; hyper: GPUBuffer; param: GPUBuffer; grad: GPUBuffer; m: GPUBuffer; v: GPUBuffer },
): Dispatch {
  const groups = Math.ceil(o.n / 64);
  const x = Math.max(1, Math.min(groups, 65535));
  const y = Math.max(1, Math.ceil(groups / x));
  const pipeline = parts.pipes.get('adamw', {}, {});
  const buffers = { hyper: o.hyper, param: o.param, grad: o.grad, m: o.m, v: o.v };
  return { label: o.label, pipeline, bindGroups: bindKernel(parts.device, pipeline, 'adamw', buffers, o.label), workgroups: () => [x, y, 1] };
}

/** dropout.wgsl's DropoutStep uniform (16 bytes) for probability p and a micro-batch's hash key. */
export function dropoutStepUniform(p: number, key: number): ArrayBuffer {
  const buf = new ArrayBuffer(16);
  new Uint32Array(buf, 0, 2).set([key >>> 0, dropoutThreshold(p)]);
  new Float32Array(buf, 8, 1)[0] = dropoutScale(p);
  return buf;
}

/** dropout.wgsl's DropoutStream uniform (16 bytes): the hash stream of one (layer, module). */
export function dropoutStreamUniform(stream: number): Uint32Array<ArrayBuffer> {
  return new Uint32Array([stream >>> 0, 0, 0, 0]);
}

/**
 * dst [rows, width] (+)= src ⊙ m, m the dropout mask of (step's key, stream) from engine/dropout.ts's
 * hash: 0 or 1/(1-p) per entry, entry index row·width + column as the reference's masks.
 */
export function dropoutDispatch(
  parts: TrainingKernelParts,
  o: { label: string; width: number; accumulate: boolean; step: GPUBuffer; stream: GPUBuffer; src: GPUBuffer; dst: GPUBuffer },
): Dispatch {
  const constants = { WIDTH: o.width, ACCUMULATE: o.accumulate ? 1 : 0 };
  const buffers = { p: parts.params, drop: o.step, s: o.stream, src: o.src, dst: o.dst };
  return record(parts, o.label, 'dropout', constants, buffers, (rows) => [Math.ceil(o.width / 64), rows, 1]);
}
