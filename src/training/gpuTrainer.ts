/**
 * The WebGPU trainer behind the TrainerBackend seam: the frozen base in its own mode on the GPU
 * (q0f32, q0f16, q4f32_1, q4f16_1, exactly the weights the engine runs), one micro-batch at a time
 * through engine/trainingPass.ts (forward, loss, backward with gradient checkpointing at layer
 * boundaries), gradients accumulated on the GPU over the step's micro-batches, then AdamW as a
 * kernel (adamw.wgsl, torch.optim.AdamW). The step's maths is referenceTrainer.ts trainStep's:
 * the same micro-batch order (batching.ts), right padding, transformers' shifted mean-token loss,
 * gradient = mean of the micro-batches' gradients, lr from linearWarmupLr.
 *
 * The host keeps the TrainerState in sync after every step (adapter tensors and AdamW moments
 * read back), so checkpoints, export and a resume work as with the reference backend.
 *
 * Dropout (p > 0) is applied on the GPU (dropout.wgsl) with the masks the reference trainer draws:
 * both hash (dropoutKey(seed, step, micro), layer·8 + module, entry) (engine/dropout.ts).
 */
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import type { ModelManifestInfo } from '../formats/modelFiles.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { PipelineCache } from '../engine/kernels.ts';
import { uploadTensors, takeModelWeights, type UploadedTensors } from '../engine/weights.ts';
import { TrainingPass, passModuleFeatures, trainingPassLargestBuffers, type PassAdapter, type PassModule } from '../engine/trainingPass.ts';
import { adamwDispatch, adamwStepScalars, ADAMW_STEP_BYTES, shiftedTargets } from '../engine/trainingKernels.ts';
import type { Dispatch } from '../engine/kernels.ts';
import { formatBinaryBytes } from '../engine/memoryPlan.ts';
import { linearWarmupLr } from './schedule.ts';
import { dropoutKey, microBatchIndices, padBatch } from './batching.ts';
import { adapterTensorList, type NamedTensor, type TrainerState } from './checkpoint.ts';
import type { TokenizedExample } from './data.ts';
import { NonFiniteLossError, stepTokens, type TrainerBackend, type TrainerStepResult } from './backend.ts';
import type { AdapterModule } from '../formats/adapterFormat.ts';

export const GPU_BACKEND_LABEL = 'WebGPU (f32 compute, frozen base in its mode)';

/** A micro-batch whose buffers the device cannot hold, with what would fit. */
export class TrainingMemoryError extends Error {
  override name = 'TrainingMemoryError';
}

/** Sequence length the pass is made for: the longest example, rounded up as padBatch rounds. */
export function trainingMaxLen(data: TokenizedExample[], padToMultipleOf: number): number {
  let T = Math.max(...data.map((e) => e.inputIds.length));
  if (padToMultipleOf > 1) T = Math.ceil(T / padToMultipleOf) * padToMultipleOf;
  return T;
}

/**
 * Refuses a micro-batch of B sequences of T tokens whose largest buffers exceed the device's
 * per-buffer limits (a storage buffer is bound whole), saying how many sequences of T tokens, or how
 * long sequences of B, would fit. Checked before anything is allocated.
 */
export function checkTrainingFits(
  limits: Pick<GPUSupportedLimits, 'maxStorageBufferBindingSize' | 'maxBufferSize'>,
  c: LlamaConfig,
  B: number,
  T: number,
): void {
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const over = trainingPassLargestBuffers(c, B, T).find((b) => b.bytes > limit);
  if (!over) return;
  const fits = (b: number, t: number) => trainingPassLargestBuffers(c, b, t).every((x) => x.bytes <= limit);
  let bFit = B;
  while (bFit > 0 && !fits(bFit, T)) bFit--;
  let tFit = T;
  while (tFit > 1 && !fits(B, tFit)) tFit--;
  const options = [
    bFit > 0 ? `a micro-batch of at most ${bFit} sequence${bFit === 1 ? '' : 's'} of ${T} tokens` : null,
    fits(B, tFit) ? `${B} sequences of at most ${tFit} tokens (--max-len)` : null,
  ].filter(Boolean);
  throw new TrainingMemoryError(
    `a micro-batch of ${B} × ${T} tokens does not fit this GPU: ${over.what} would take ${formatBinaryBytes(over.bytes)}, over the device's ` +
      `largest buffer of ${formatBinaryBytes(limit)}; ${options.length ? `what fits: ${options.join(', or ')}` : 'no micro-batch of these sequences fits'} ` +
      `(use --grad-accum for the same effective batch)`,
  );
}

interface TensorOnGpu {
  t: NamedTensor;
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  hyper: GPUBuffer;
  adamw: Dispatch;
}

/** The most staging the trainer's read-back of adapter tensors and AdamW moments maps at once (larger single tensors go alone). */
export const READBACK_CHUNK_BYTES = 64 * 2 ** 20;

/** What peakGpuBytes is made of, by what holds it (the bench projects each part to more layers). */
export interface TrainerGpuMemory {
  /** the frozen base as uploaded */
  weights: number;
  /** the training pass's buffers (layer-boundary checkpoints, activations, logits, scratch) */
  pass: number;
  /** adapter tensors, their gradients, AdamW's two moments and each tensor's step uniform */
  adapterOptimizer: number;
  /** the per-micro-batch loss staging buffers */
  lossStaging: number;
  /** the largest read-back staging buffer held beside everything else (0 before the first step) */
  readbackStaging: number;
  peak: number;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;

/** One pipeline cache per device: a resumed or restarted run on the same device compiles nothing again. */
const PIPELINES = new WeakMap<GPUDevice, PipelineCache>();
function pipelinesFor(device: GPUDevice): PipelineCache {
  let p = PIPELINES.get(device);
  if (!p) PIPELINES.set(device, (p = new PipelineCache(device)));
  return p;
}

export class GpuTrainerBackend implements TrainerBackend {
  readonly label = GPU_BACKEND_LABEL;
  private readonly permCache = new Map<number, Uint32Array>();
  private readonly lossStaging: GPUBuffer[] = [];
  private peak: number;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly config: LlamaConfig,
    private readonly tensors: UploadedTensors,
    private readonly pass: TrainingPass,
    private readonly onGpu: TensorOnGpu[],
    private readonly own: GPUBuffer[],
    private readonly data: TokenizedExample[],
    readonly state: TrainerState,
  ) {
    this.peak = tensors.bytes + pass.bytes + own.reduce((s, b) => s + b.size, 0);
  }

  /**
   * Uploads the base (its stored format), the adapter and AdamW state from `state`, and records the
   * pass. Refuses a micro-batch over the device's limits before allocating anything.
   */
  static async create(
    gpu: GpuContext,
    source: ModelSource,
    info: ModelManifestInfo,
    data: TokenizedExample[],
    state: TrainerState,
  ): Promise<GpuTrainerBackend> {
    if (data.length === 0) throw new Error('no training examples');
    const spec = state.spec;
    const c = info.config;
    const h = state.hyper;
    const maxLen = trainingMaxLen(data, h.padToMultipleOf);
    checkTrainingFits(gpu.device.limits, c, h.microBatch, maxLen);
    const device = gpu.device;
    const tensors = await uploadTensors(device, source, info.cache);
    const own: GPUBuffer[] = [];
    let pass: TrainingPass | null = null;
    try {
      const weights = takeModelWeights(tensors, c);
      const mk = (label: string, bytes: number, usage = STORAGE) => {
        const b = device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
        own.push(b);
        return b;
      };
      const pipes = pipelinesFor(device);
      const ad = state.adapter;
      const passAdapter: PassAdapter = {
        kind: ad.kind,
        r: ad.kind === 'lora' ? ad.r : ad.bottleneckSize,
        activation: ad.kind === 'lora' ? 'none' : ad.activation,
        dropout: spec.dropout,
        layers: ad.layers.map(() => ({})),
      };
      const onGpu: TensorOnGpu[] = [];
      for (const t of adapterTensorList(ad)) {
        const o = state.optim.get(t.name);
        if (!o) throw new Error(`trainer state has no AdamW state for ${t.name}`);
        const param = mk(`${t.name}`, t.data.byteLength);
        const grad = mk(`${t.name} grad`, t.data.byteLength);
        const m = mk(`${t.name} exp_avg`, t.data.byteLength);
        const v = mk(`${t.name} exp_avg_sq`, t.data.byteLength);
        const hyper = mk(`${t.name} adamw step`, ADAMW_STEP_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
        device.queue.writeBuffer(param, 0, t.data as Float32Array<ArrayBuffer>);
        device.queue.writeBuffer(m, 0, o.m as Float32Array<ArrayBuffer>);
        device.queue.writeBuffer(v, 0, o.v as Float32Array<ArrayBuffer>);
        const adamw = adamwDispatch({ device, pipes }, { label: `adamw ${t.name}`, n: t.data.length, hyper, param, grad, m, v });
        onGpu.push({ t, param, grad, m, v, hyper, adamw });
        const mod = (passAdapter.layers[t.layer][t.module] ??= { scaling: moduleScaling(state, t.layer, t.module) } as PassModule);
        const [inF, outF] = passModuleFeatures(c, ad.kind, t.module);
        const r = passAdapter.r;
        const expect = t.role === 'lora_A' || t.role === 'adapter_down' ? r * inF : outF * r;
        if (t.data.length !== expect) throw new Error(`${t.name} has ${t.data.length} values, expected ${expect} for this model`);
        if (t.role === 'lora_A' || t.role === 'adapter_down') Object.assign(mod, { down: param, downGrad: grad });
        else Object.assign(mod, { up: param, upGrad: grad });
      }
      pass = await TrainingPass.create(device, pipes, c, weights, passAdapter, {
        maxSeqs: h.microBatch,
        maxLen,
        gradScale: 1 / h.gradAccum,
        tiled: !gpu.isSoftware,
      });
      return new GpuTrainerBackend(gpu, c, tensors, pass, onGpu, own, data, state);
    } catch (e) {
      pass?.destroy();
      for (const b of own) b.destroy();
      for (const { buffer } of tensors.buffers.values()) buffer.destroy();
      throw e;
    }
  }

  async step(): Promise<TrainerStepResult> {
    const device = this.gpu.device;
    const s = this.state;
    const h = s.hyper;
    const tokens = stepTokens(this.data, s, this.permCache);
    const lr = linearWarmupLr(s.step, h.lr, h.warmupSteps, h.totalSteps);
    const order = { numExamples: this.data.length, microBatch: h.microBatch, gradAccum: h.gradAccum, shuffle: h.shuffle, seed: h.seed };
    device.pushErrorScope('validation');
    const clear = device.createCommandEncoder({ label: 'zero gradients' });
    for (const g of this.onGpu) clear.clearBuffer(g.grad);
    device.queue.submit([clear.finish()]);
    const counts: Array<{ count: number; rows: number }> = [];
    for (let micro = 0; micro < h.gradAccum; micro++) {
      const batch = padBatch(
        microBatchIndices(s.step, micro, order, this.permCache).map((i) => this.data[i]),
        0,
        h.padToMultipleOf,
      );
      const { targets, count } = shiftedTargets(batch.labels, this.config.vocabSize);
      const { rows, seqLen } = this.pass.writeBatch(batch.inputIds, targets, dropoutKey(h.seed, s.step, micro));
      const enc = device.createCommandEncoder({ label: `micro-batch ${micro}` });
      this.pass.encode(enc, rows, seqLen);
      const staging = (this.lossStaging[micro] ??= this.track(
        device.createBuffer({ label: `loss staging ${micro}`, size: this.pass.maxRows * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      ));
      enc.copyBufferToBuffer(this.pass.loss, 0, staging, 0, rows * 4);
      device.queue.submit([enc.finish()]);
      counts.push({ count, rows });
    }
    const err = await device.popErrorScope();
    if (err) throw new Error(`WebGPU validation error in the training pass: ${err.message}`);
    const microLosses: number[] = [];
    for (let micro = 0; micro < h.gradAccum; micro++) {
      const st = this.lossStaging[micro];
      await st.mapAsync(GPUMapMode.READ, 0, counts[micro].rows * 4);
      const rowLoss = new Float32Array(st.getMappedRange(0, counts[micro].rows * 4));
      let sum = 0;
      for (const x of rowLoss) sum += x;
      st.unmap();
      microLosses.push(sum / counts[micro].count);
    }
    const loss = microLosses.reduce((a, x) => a + x, 0) / microLosses.length;
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(s.step, loss, 'loss'); // AdamW not run: the state is untouched

    const hyper = { lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay };
    const enc = device.createCommandEncoder({ label: 'adamw' });
    const pass = enc.beginComputePass({ label: 'adamw' });
    for (const g of this.onGpu) {
      const o = s.optim.get(g.t.name)!;
      device.queue.writeBuffer(g.hyper, 0, adamwStepScalars(hyper, o.step + 1, g.t.data.length));
      pass.setPipeline(g.adamw.pipeline);
      g.adamw.bindGroups.forEach((b, i) => pass.setBindGroup(i, b));
      pass.dispatchWorkgroups(...g.adamw.workgroups(0, 0));
    }
    pass.end();
    device.queue.submit([enc.finish()]);
    const read = await this.readBack(this.onGpu.flatMap((g) => [g.param, g.m, g.v].map((buf) => ({ buf, n: g.t.data.length }))));
    const finite = read.every((a) => a.every(Number.isFinite));
    if (!finite) {
      // Put the last good state back on the GPU, as the contract asks.
      for (const g of this.onGpu) {
        const o = s.optim.get(g.t.name)!;
        device.queue.writeBuffer(g.param, 0, g.t.data as Float32Array<ArrayBuffer>);
        device.queue.writeBuffer(g.m, 0, o.m as Float32Array<ArrayBuffer>);
        device.queue.writeBuffer(g.v, 0, o.v as Float32Array<ArrayBuffer>);
      }
      throw new NonFiniteLossError(s.step, loss, 'weights');
    }
    this.onGpu.forEach((g, i) => {
      const o = s.optim.get(g.t.name)!;
      g.t.data.set(read[3 * i]);
      o.m.set(read[3 * i + 1]);
      o.v.set(read[3 * i + 2]);
      o.step += 1;
    });
    const report = { step: s.step, lr, loss, microLosses, tokens };
    s.step++;
    return report;
  }

  /** The gradients the last step accumulated (before AdamW used them), by tensor name: for tests. */
  async lastGradients(): Promise<Map<string, Float32Array>> {
    const read = await this.readBack(this.onGpu.map((g) => ({ buf: g.grad, n: g.t.data.length })));
    return new Map(this.onGpu.map((g, i) => [g.t.name, read[i]]));
  }

  /** Copies buffers back in chunks of at most 64 MiB of staging. */
  private async readBack(items: Array<{ buf: GPUBuffer; n: number }>): Promise<Float32Array[]> {
    const bufs = items.map((x) => x.buf);
    const device = this.gpu.device;
    const out: Float32Array[] = [];
    const CHUNK = READBACK_CHUNK_BYTES;
    for (let i = 0; i < bufs.length;) {
      let size = 0;
      const group: GPUBuffer[] = [];
      while (i < bufs.length && (group.length === 0 || size + bufs[i].size <= CHUNK)) {
        group.push(bufs[i]);
        size += bufs[i].size;
        i++;
      }
      const staging = device.createBuffer({ label: 'trainer readback', size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      this.peak = Math.max(this.peak, this.residentBytes() + size);
      const enc = device.createCommandEncoder();
      let off = 0;
      for (const b of group) {
        enc.copyBufferToBuffer(b, 0, staging, off, b.size);
        off += b.size;
      }
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const all = staging.getMappedRange();
      off = 0;
      for (const b of group) {
        out.push(new Float32Array(all.slice(off, off + items[out.length].n * 4)));
        off += b.size;
      }
      staging.unmap();
      staging.destroy();
    }
    return out;
  }

  private residentBytes(): number {
    return this.tensors.bytes + this.pass.bytes + this.own.reduce((s, b) => s + b.size, 0);
  }

  private track(b: GPUBuffer): GPUBuffer {
    this.own.push(b);
    this.peak = Math.max(this.peak, this.residentBytes());
    return b;
  }

  /** The most GPU memory held at once: every buffer this backend allocated (weights, pass, adapter, optimizer, staging). */
  peakGpuBytes(): number {
    return this.peak;
  }

  /** peakGpuBytes by part, from the same allocations it counts. */
  gpuMemory(): TrainerGpuMemory {
    const adapterOptimizer = this.onGpu.reduce((s, g) => s + g.param.size + g.grad.size + g.m.size + g.v.size + g.hyper.size, 0);
    const ownBytes = this.own.reduce((s, b) => s + b.size, 0);
    return {
      weights: this.tensors.bytes,
      pass: this.pass.bytes,
      adapterOptimizer,
      lossStaging: ownBytes - adapterOptimizer,
      readbackStaging: this.peak - this.residentBytes(),
      peak: this.peak,
    };
  }

  dispose(): void {
    this.pass.destroy();
    for (const b of this.own.splice(0)) b.destroy();
    for (const { buffer } of this.tensors.buffers.values()) buffer.destroy();
  }
}

function moduleScaling(state: TrainerState, layer: number, module: AdapterModule): number {
  const ad = state.adapter;
  if (ad.kind === 'lora') return ad.scaling;
  return ad.layers[layer][module]!.scaling;
}
