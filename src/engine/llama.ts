/**
 * A loaded Llama model on WebGPU: runs the dispatch lists forward.ts records (prefill in chunks,
 * batched decode, greedy decoding with the argmax on the GPU), keeps adapters resident and
 * switches between them, and tracks how many tokens each KV-cache slot holds. Buffers come from
 * buffers.ts, weights from weights.ts.
 */
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import type { ModelSource, TensorCache } from '../formats/tensorCacheTypes.ts';
import type { GpuContext } from './gpu.ts';
import { explainGpuFailure } from './gpu.ts';
import { EngineError, GPUOutOfMemoryError } from './errors.ts';
import { PipelineCache, pickDispatches, type Dispatch } from './kernels.ts';
import { createGpuAdapter, adapterZWidth, type GpuAdapter } from './adapters.ts';
import type { AdapterManifest } from '../formats/adapterFormat.ts';
import { takeModelWeights, uploadTensors, type LoadProgress, type ModelWeights, type UploadedTensors } from './weights.ts';
import { batchForBudget, batchForLimits, kvLayerBytes, DEFAULT_PREFILL_CHUNK, GREEDY_PIPELINE_DEPTH, type MemoryPlan } from './memoryPlan.ts';
import {
  allocateAdapterScratch,
  allocateModelBuffers,
  destroyAdapterScratch,
  destroyModelBuffers,
  maxRowsPerCall,
  type AdapterScratch,
  type ModelBuffers,
} from './buffers.ts';
import { recordForward, type ForwardParts, type KernelChoice, type RecordedForward } from './forward.ts';
import { resolveKvFormat, type KvCacheOption, type KvFormat } from './kvCache.ts';

export { maxRowsPerCall };

/** The largest batch 'auto' tries (evaluation prompts are short; 32 sequences keep a GPU busy). */
export const AUTO_BATCH_LIMIT = 32;

/** Context allocated when the caller does not ask for one: the paper's prompts + 256 new tokens fit easily. */
export const DEFAULT_CONTEXT = 2048;

export interface ModelLoadOptions {
  contextLength?: number;
  prefillChunk?: number;
  /**
   * Sequences that can be decoded together (each gets its own KV-cache slot of contextLength).
   * 'auto': as many as GPU memory allows, up to AUTO_BATCH_LIMIT (halved until the buffers fit).
   */
  maxBatch?: number | 'auto';
  /**
   * Decode matrix-vector kernel over q4 weights: 'workgroup' (wide loads, workgroup/subgroup
   * reduction: for GPUs), 'row' (one thread per output row: for CPU-emulated adapters), or 'auto'.
   */
  q4Decode?: 'auto' | 'workgroup' | 'row';
  /** Prefill matmul: 'tiled' (workgroup-memory tiles: for GPUs), 'row' (per-thread rows: for CPU-emulated adapters), or 'auto'. */
  prefillMatmul?: 'auto' | 'tiled' | 'row';
  /** With maxBatch 'auto': bytes the KV caches and activations may take (caps the batch tried first). */
  memoryBudget?: number;
  /**
   * The KV cache's format: 'auto' (the default) keeps the mode's own (f16 in f16 modes, f32 in
   * f32 modes); 'f16' halves an f32 mode's cache (about twice the batch in the same memory, at
   * f16's rounding of every cached key and value); 'f32' gives an f16 mode a full-precision cache.
   */
  kvCache?: KvCacheOption;
  onProgress?: (p: LoadProgress) => void;
}

/** A sequence decodeGreedyStream starts with: its slot holds its tokens so far but `token`, its last id. */
export interface GreedyLane {
  slot: number;
  token: number;
  /** Decode steps it may take at most. */
  steps: number;
}

/** A prompt joining a greedy stream: prefilled into `slot` from the slot's current position on. */
export interface GreedyJoin {
  slot: number;
  tokens: number[];
  /** Decode steps after its first id, at most. */
  steps: number;
}

export interface GreedyStreamCallbacks {
  /** Ids delivered for running lanes (see decodeGreedyStream); returns the lanes whose sequence ended. */
  ids: (pairs: { lane: number; id: number }[]) => number[];
  /** The prompt for a lane that is free, or null when none is waiting. */
  refill?: (lane: number) => GreedyJoin | null;
  /** True: submit nothing more (what is in flight is still delivered). */
  stop?: () => boolean;
}

/** The shape a model's buffers are allocated for. */
interface ModelShape {
  contextLength: number; // tokens per slot
  prefillChunk: number; // rows of one prefill call
  maxBatch: number; // KV-cache slots
}

/** What a model is made of: the same weights serve every shape (see reshape). */
interface ModelParts {
  gpu: GpuContext;
  config: LlamaConfig;
  mode: QuantMode;
  /** Resolved once at load (resolveKvFormat): every shape this model is given keeps it. */
  kvFormat: KvFormat;
  kernels: KernelChoice;
  tensors: UploadedTensors;
  weights: ModelWeights;
}

/**
 * What the engine encoded since the last reset (LlamaModel.encodeStats): forward calls, the
 * dispatches their passes received, counted at each dispatchWorkgroups as it is encoded (not
 * derived from the recorded lists), and the JS time spent preparing and encoding them (row params
 * queued, the pass encoded, the command buffer finished; not the submit, not the GPU's time).
 */
export interface EncodeStats {
  calls: number;
  dispatches: number;
  /** Dispatches of the last call alone. */
  lastCallDispatches: number;
  encodeMs: number;
}

export class LlamaModel {
  /** Tokens already in each slot's KV cache; the next call for that slot starts there. */
  readonly positions: number[];
  readonly memory: MemoryPlan;
  readonly gpu: GpuContext;
  readonly config: LlamaConfig;
  readonly mode: QuantMode;
  readonly kvFormat: KvFormat;
  readonly contextLength: number;
  readonly prefillChunk: number;
  readonly maxBatch: number;

  private readonly device: GPUDevice;
  private readonly pipes: PipelineCache;
  /** Recorded forward passes: the base (key null) and one per resident adapter. */
  private readonly forwards = new Map<string | null, RecordedForward>();
  private readonly adapters = new Map<string, GpuAdapter>();
  private activeAdapter: string | null = null;
  private scratch: AdapterScratch | null = null;
  private stats: EncodeStats = { calls: 0, dispatches: 0, lastCallDispatches: 0, encodeMs: 0 };

  private constructor(
    private readonly parts: ModelParts,
    shape: ModelShape,
    private readonly buf: ModelBuffers,
  ) {
    ({ gpu: this.gpu, config: this.config, mode: this.mode, kvFormat: this.kvFormat } = parts);
    ({ contextLength: this.contextLength, prefillChunk: this.prefillChunk, maxBatch: this.maxBatch } = shape);
    this.device = parts.gpu.device;
    this.pipes = new PipelineCache(this.device);
    this.positions = new Array<number>(shape.maxBatch).fill(0);
    const weights = parts.tensors.bytes;
    this.memory = { weights, kvCache: buf.kvBytes, activations: buf.activationBytes, total: weights + buf.kvBytes + buf.activationBytes };
    this.forwards.set(null, recordForward(this.forwardParts(), null));
  }

  static async load(
    gpu: GpuContext,
    source: ModelSource,
    config: LlamaConfig,
    mode: QuantMode,
    cache: TensorCache,
    opts: ModelLoadOptions = {},
  ): Promise<LlamaModel> {
    // The KV cache and score rows are sized for the context we allocate, not the model's maximum
    // (some checkpoints declare 128k positions): default to at most DEFAULT_CONTEXT tokens.
    const ctx = Math.min(opts.contextLength ?? DEFAULT_CONTEXT, config.contextWindowSize);
    const prefillChunk = Math.min(opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK, ctx);
    if (config.headDim % 2 !== 0) throw new EngineError(`head_dim ${config.headDim} must be even for rotary embeddings.`);
    if (config.numHeads % config.numKvHeads !== 0)
      throw new EngineError(`num_attention_heads ${config.numHeads} is not a multiple of num_key_value_heads ${config.numKvHeads}.`);
    // Before any upload: a bad option costs nothing.
    const kvFormat = resolveKvFormat(mode, opts.kvCache);

    const tensors = await uploadTensors(gpu.device, source, cache, opts.onProgress);
    // GPUs get the workgroup kernels; a CPU-emulated adapter, whose barriers are slow, the per-row ones.
    const pick = (o: string | undefined, gpuName: string) => o === gpuName || ((o ?? 'auto') === 'auto' && !gpu.isSoftware);
    const kernels: KernelChoice = { q4MatVec: pick(opts.q4Decode, 'workgroup'), tiled: pick(opts.prefillMatmul, 'tiled'), subgroups: gpu.hasSubgroups };
    try {
      const parts: ModelParts = { gpu, config, mode, kvFormat, kernels, tensors, weights: takeModelWeights(tensors, config) };
      return await LlamaModel.allocateFitting(parts, { contextLength: ctx, prefillChunk }, opts.maxBatch ?? 1, opts.memoryBudget);
    } catch (e) {
      for (const { buffer } of tensors.buffers.values()) buffer.destroy();
      throw e;
    }
  }

  /**
   * Allocate for a batch; 'auto' starts at the largest batch the memory budget allows (or
   * AUTO_BATCH_LIMIT) and halves while allocation fails, since WebGPU does not say what is free.
   */
  private static async allocateFitting(
    parts: ModelParts,
    shape: Omit<ModelShape, 'maxBatch'>,
    batch: number | 'auto',
    memoryBudget?: number,
  ): Promise<LlamaModel> {
    const { contextLength: ctx, prefillChunk } = shape;
    const auto = batch === 'auto';
    // 'auto' starts at the largest batch both the budget and the device's per-buffer limits allow.
    let maxBatch = auto
      ? Math.min(
          batchForBudget(parts.config, parts.mode, parts.kvFormat, ctx, prefillChunk, memoryBudget ?? Infinity, AUTO_BATCH_LIMIT),
          batchForLimits(parts.config, parts.kvFormat, ctx, prefillChunk, parts.gpu.device.limits, AUTO_BATCH_LIMIT),
        )
      : Math.max(1, Math.floor(batch));
    for (; ; maxBatch = Math.floor(maxBatch / 2)) {
      try {
        const rows = maxRowsPerCall(prefillChunk, maxBatch);
        const buffers = await allocateModelBuffers(parts.gpu.device, parts.config, parts.kvFormat, { contextLength: ctx, rows, slots: maxBatch });
        try {
          return new LlamaModel(parts, { ...shape, maxBatch }, buffers);
        } catch (e) {
          destroyModelBuffers(buffers);
          throw e;
        }
      } catch (e) {
        if (!(e instanceof GPUOutOfMemoryError) || !auto || maxBatch <= 1) throw e;
      }
    }
  }

  /**
   * The same weights and resident adapters with another context length or batch (an evaluation
   * wants many short sequences, the playground one long one), or another KV cache format (only the
   * cache is made again: for the 7B that is a reallocation, not a 3.8 GB read of the weights).
   * Frees this model's activations and KV caches first, so the two shapes never need memory at
   * once; this object must not be used afterwards. If the new shape does not fit, the old one
   * (format included) is made again and returned with the error.
   */
  async reshape(opts: {
    contextLength: number;
    maxBatch: number | 'auto';
    memoryBudget?: number;
    kvFormat?: KvFormat;
  }): Promise<{ model: LlamaModel; error: unknown }> {
    const ctx = Math.max(1, Math.min(Math.floor(opts.contextLength), this.config.contextWindowSize));
    const parts = opts.kvFormat === undefined || opts.kvFormat === this.kvFormat ? this.parts : { ...this.parts, kvFormat: opts.kvFormat };
    const again = (p: ModelParts, c: number, b: number | 'auto', budget?: number) =>
      LlamaModel.allocateFitting(p, { contextLength: c, prefillChunk: Math.min(this.prefillChunk, c) }, b, budget);
    this.releaseActivations();
    let next: LlamaModel;
    let error: unknown = null;
    try {
      next = await again(parts, ctx, opts.maxBatch, opts.memoryBudget);
    } catch (e) {
      error = e;
      // Throws when even the old shape no longer fits: then nothing of this model is usable.
      next = await again(this.parts, this.contextLength, this.maxBatch);
    }
    await next.adoptAdapters(this);
    return { model: next, error };
  }

  /** Take over another shape's resident adapters (their weights stay where they are). */
  private async adoptAdapters(from: LlamaModel) {
    const all = [...from.adapters.values()];
    // Scratch once, for the widest (ensureScratch records resident adapters again whenever it grows).
    if (all.length > 0) await this.ensureScratch(Math.max(...all.map(adapterZWidth)));
    for (const a of all) this.makeResident(a);
    this.activeAdapter = from.activeAdapter;
  }

  /** Free the activations, KV caches and adapter scratch (not the weights, not adapters' weights). */
  private releaseActivations() {
    if (this.scratch) destroyAdapterScratch(this.scratch);
    this.scratch = null;
    destroyModelBuffers(this.buf);
  }

  /** What forward.ts records from: this shape's buffers and the current adapter scratch. */
  private forwardParts(): ForwardParts {
    const { config, kernels, weights } = this.parts;
    return { device: this.device, pipes: this.pipes, config, contextLength: this.contextLength, kernels, weights, buffers: this.buf, scratch: this.scratch };
  }

  /** Record an adapter's forward pass and keep it (recorded first: a failure leaves nothing behind). */
  private makeResident(a: GpuAdapter) {
    this.forwards.set(a.name, recordForward(this.forwardParts(), a));
    this.adapters.set(a.name, a);
  }

  /** Make an adapter resident (the base stays as it is); switch to it with useAdapter. */
  async addAdapter(manifest: AdapterManifest, tensors: Map<string, Float32Array>): Promise<GpuAdapter> {
    if (this.adapters.has(manifest.name)) this.removeAdapter(manifest.name);
    const a = await createGpuAdapter(this.device, this.config, manifest, tensors);
    try {
      await this.ensureScratch(adapterZWidth(a));
      this.makeResident(a);
    } catch (e) {
      for (const b of a.buffers) b.destroy();
      throw e;
    }
    return a;
  }

  removeAdapter(name: string) {
    const a = this.adapters.get(name);
    if (!a) return;
    if (this.activeAdapter === name) this.activeAdapter = null;
    this.adapters.delete(name);
    this.forwards.delete(name);
    for (const b of a.buffers) b.destroy();
  }

  /** The adapter the next forward call uses (null: the base model alone). */
  useAdapter(name: string | null) {
    if (name !== null && !this.adapters.has(name)) throw new EngineError(`No adapter named "${name}" is loaded.`);
    this.activeAdapter = name;
  }

  /** lora, series or parallel, for a resident adapter. */
  adapterKind(name: string): string | null {
    return this.adapters.get(name)?.kind ?? null;
  }

  /** GPU bytes of a resident adapter's weights (what a decode step reads for it). */
  adapterBytes(name: string): number {
    return this.adapters.get(name)?.bytes ?? 0;
  }

  /**
   * Labels of the body's dispatches (embedding and every layer) with a resident adapter or none
   * (null), one per dispatch a call runs; a dispatch with a prefill twin names both.
   */
  bodyDispatchLabels(name: string | null): string[] {
    return (this.forwards.get(name)?.body ?? []).map((d) =>
      d.prefill
        ? `${d.label} | over ${d.maxRows} rows: ${d.prefill.map((p) => pickDispatches(p, d.maxRows! + 1)[0].label).join(', ')}`
        : d.alt
          ? `${d.label} | over ${d.maxRows} rows: ${d.alt.label}`
          : d.label,
    );
  }

  get adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /** Scratch buffers adapters share: z (bottleneck activations), split gate/up inputs, down's output. */
  private async ensureScratch(zWidth: number) {
    if (this.scratch && this.scratch.zWidth >= zWidth) return;
    const next = await allocateAdapterScratch(this.device, this.config, maxRowsPerCall(this.prefillChunk, this.maxBatch), zWidth);
    const old = this.scratch;
    this.scratch = next;
    // Bind groups of resident adapters point at the old scratch: record them again.
    for (const a of this.adapters.values()) this.makeResident(a);
    if (old) destroyAdapterScratch(old);
  }

  /** Tokens in slot 0's cache (the single-sequence API). */
  get position(): number {
    return this.positions[0];
  }

  /**
   * Run `tokens` (appended at slot 0's position) through the model. Returns the logits of the last
   * token ([vocab]), or of every token ([tokens.length * vocab]) with allLogits.
   */
  async forward(tokens: number[], opts: { allLogits?: boolean } = {}): Promise<Float32Array> {
    if (tokens.length === 0) throw new EngineError('forward() needs at least one token.');
    return this.prefillRows(0, tokens, !!opts.allLogits);
  }

  /**
   * One decode step for several sequences at once: each entry appends one token to its slot.
   * The weights are read once for all of them. Returns each entry's logits, in order.
   */
  async decodeBatch(entries: { slot: number; token: number }[]): Promise<Float32Array[]> {
    if (entries.length === 0) return [];
    this.checkBatch(entries, 'decodeBatch');
    const rows = entries.map((e) => ({ slot: e.slot, token: e.token, pos: this.positions[e.slot] }));
    const logits = (await this.runRows(rows, 0))!;
    for (const e of entries) this.positions[e.slot] += 1;
    const V = this.config.vocabSize;
    return entries.map((_, i) => logits.subarray(i * V, (i + 1) * V));
  }

  /** Prefill a prompt into one slot (in chunks); returns the last token's logits. */
  async prefillSlot(slot: number, tokens: number[]): Promise<Float32Array> {
    this.checkSlot(slot);
    if (tokens.length === 0) throw new EngineError('prefillSlot() needs at least one token.');
    return this.prefillRows(slot, tokens, false);
  }

  /** Run a prompt's calls (prefillCalls) into `slot`: the last token's logits, or every token's with allLogits. */
  private async prefillRows(slot: number, tokens: number[], allLogits: boolean): Promise<Float32Array> {
    const V = this.config.vocabSize;
    const out = new Float32Array(allLogits ? tokens.length * V : V);
    const calls = this.prefillCalls(slot, tokens);
    let done = 0;
    for (const [i, rows] of calls.entries()) {
      const logits = await this.runRows(rows, allLogits ? 0 : i === calls.length - 1 ? rows.length - 1 : -1);
      this.positions[slot] += rows.length;
      if (logits) out.set(logits, allLogits ? done * V : 0);
      done += rows.length;
    }
    return out;
  }

  /** A prompt's rows for `slot` from its current position on, in calls of at most prefillChunk rows. */
  private prefillCalls(slot: number, tokens: number[]): { slot: number; token: number; pos: number }[][] {
    const from = this.positions[slot];
    const calls: { slot: number; token: number; pos: number }[][] = [];
    for (let start = 0; start < tokens.length; start += this.prefillChunk) {
      calls.push(tokens.slice(start, start + this.prefillChunk).map((token, i) => ({ slot, token, pos: from + start + i })));
    }
    return calls;
  }

  /** A decode step's entries: at most one batch, each slot once. */
  private checkBatch(entries: { slot: number }[], what: string) {
    if (entries.length > this.maxBatch) throw new EngineError(`${entries.length} sequences exceed the batch of ${this.maxBatch}.`);
    if (new Set(entries.map((e) => e.slot)).size !== entries.length) throw new EngineError(`${what} needs distinct slots.`);
  }

  private checkSlot(slot: number) {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.maxBatch) throw new EngineError(`Slot ${slot} is outside the batch of ${this.maxBatch}.`);
  }

  /** What was encoded since the last resetEncodeStats (bench: dispatches and JS encode time per step). */
  get encodeStats(): Readonly<EncodeStats> {
    return { ...this.stats };
  }

  resetEncodeStats() {
    this.stats = { calls: 0, dispatches: 0, lastCallDispatches: 0, encodeMs: 0 };
  }

  /** Encode and run one call: rows of (slot, token, position); LM head for rows headRow0.. (none if -1). */
  private async runRows(rows: { slot: number; token: number; pos: number }[], headRow0: number): Promise<Float32Array | null> {
    const headRows = headRow0 >= 0 ? rows.length - headRow0 : 0;
    const bytes = headRows * this.config.vocabSize * 4;
    this.submitRows(rows, headRow0, false, (enc) => {
      if (bytes > 0) enc.copyBufferToBuffer(this.buf.logits, 0, this.buf.staging, 0, bytes);
    });
    if (bytes === 0) return null;
    return new Float32Array(await this.readBack(this.buf.staging, this.buf.staging.mapAsync(GPUMapMode.READ, 0, bytes), bytes));
  }

  /** Submit one call (encodeCall). */
  private submitRows(rows: { slot: number; token: number; pos: number }[], headRow0: number, argmax: boolean, after?: (enc: GPUCommandEncoder) => void) {
    this.device.queue.submit([this.encodeCall(rows, headRow0, argmax, after)]);
  }

  /**
   * Queue a call's params and input ids and encode it (encodeRows), then `after`'s commands. The
   * queue orders writes with submits: they land after every call submitted before.
   */
  private encodeCall(
    rows: { slot: number; token: number; pos: number }[],
    headRow0: number,
    argmax: boolean,
    after?: (enc: GPUCommandEncoder) => void,
  ): GPUCommandBuffer {
    const t0 = performance.now();
    const kvLen = this.writeRows(rows, headRow0);
    this.device.queue.writeBuffer(this.buf.tokens, 0, new Uint32Array(rows.map((r) => r.token)));
    const enc = this.device.createCommandEncoder();
    this.encodeRows(enc, rows.length, kvLen, headRow0, argmax);
    after?.(enc);
    const commands = enc.finish();
    this.stats.encodeMs += performance.now() - t0;
    return commands;
  }

  /**
   * The first `bytes` of a readback buffer once its map (`mapped`) resolves, unmapped again. A
   * failed map or a device lost meanwhile comes back as the engine's error, in words.
   */
  private async readBack(buffer: GPUBuffer, mapped: Promise<void>, bytes: number): Promise<ArrayBuffer> {
    try {
      await mapped;
    } catch (e) {
      throw await explainGpuFailure(this.gpu, e);
    }
    const data = buffer.getMappedRange(0, bytes).slice(0);
    buffer.unmap();
    if (this.gpu.lost) throw this.gpu.lost;
    return data;
  }

  /**
   * Check a call's rows and queue their params, head params (if headRow0 >= 0) and row info
   * (not the tokens: greedy steps take theirs from the previous step's argmax). Returns kvLen.
   */
  private writeRows(rows: { slot: number; pos: number }[], headRow0: number): number {
    if (this.gpu.lost) throw this.gpu.lost;
    for (const r of rows) {
      this.checkSlot(r.slot);
      if (r.pos >= this.contextLength) throw this.contextFull();
    }
    const n = rows.length;
    const kvLen = Math.max(...rows.map((r) => r.pos)) + 1;
    const q = this.device.queue;
    q.writeBuffer(this.buf.params, 0, new Uint32Array([n, 0, 0, kvLen]));
    q.writeBuffer(this.buf.rowInfo, 0, new Uint32Array(rows.flatMap((r) => [r.slot, r.pos])));
    if (headRow0 >= 0) q.writeBuffer(this.buf.paramsHead, 0, new Uint32Array([n, 0, headRow0, kvLen]));
    return kvLen;
  }

  /**
   * What a greedy decode step dispatches, in order (encodeRows with the argmax): the body, the
   * LM head (the final norm folded in) and the argmax of the adapter in use. For the device kit's per-kernel
   * profile, which replays them one pass each (WebGPU times passes, not dispatches); with
   * prepareRows, which queues a step's row params as every call does first.
   */
  decodeStepDispatches(): Dispatch[] {
    const f = this.forwards.get(this.activeAdapter)!;
    return [...f.body, f.lmHead, f.argmax];
  }

  /** Queue the params of a call over `rows` (writeRows; headRow0 0: every row's logits). Returns kvLen. */
  prepareRows(rows: { slot: number; pos: number }[], headRow0 = 0): number {
    return this.writeRows(rows, headRow0);
  }

  /** A slot takes `tokens` more rows and then `steps` decode steps: a whole number, within the context. */
  private checkRoom(slot: number, tokens: number, steps: number, what: string) {
    if (!Number.isInteger(steps) || steps < 0) throw new EngineError(`${what} needs a whole number of steps, not ${steps}.`);
    if (this.positions[slot] + tokens + steps > this.contextLength) throw this.contextFull();
  }

  private contextFull(): EngineError {
    return new EngineError(`The context window is full (${this.contextLength} tokens). Start a new conversation or shorten the prompt.`);
  }

  /** One compute pass: the body over n rows, then (headRow0 >= 0) the normed LM head of rows headRow0.., and optionally their argmax into tokens. */
  private encodeRows(enc: GPUCommandEncoder, n: number, kvLen: number, headRow0: number, argmax: boolean) {
    const pass = enc.beginComputePass();
    let dispatches = 0;
    const run = (list: Dispatch[], r: number) => {
      for (const d of list) {
        for (const dsp of pickDispatches(d, r)) {
          pass.setPipeline(dsp.pipeline);
          dsp.bindGroups.forEach((g, i) => pass.setBindGroup(i, g));
          const [x, y, z] = dsp.workgroups(r, kvLen);
          pass.dispatchWorkgroups(x, y, z);
          dispatches++;
        }
      }
    };
    const f = this.forwards.get(this.activeAdapter)!;
    run(f.body, n);
    const headRows = headRow0 >= 0 ? n - headRow0 : 0;
    if (headRows > 0) {
      // The LM head (the final norm folded in) reads rows headRow0.. only.
      run([f.lmHead], headRows);
      if (argmax) run([f.argmax], headRows);
    }
    pass.end();
    this.stats.calls++;
    this.stats.dispatches += dispatches;
    this.stats.lastCallDispatches = dispatches;
  }

  /**
   * Greedy decoding without a CPU round trip per token: each step appends one token to every
   * entry's slot, and the GPU takes the argmax of each row's logits and writes it as the next
   * step's input; only the ids (4 bytes a sequence) are read back, while later steps already run.
   * Up to GREEDY_PIPELINE_DEPTH steps are in flight. onStep(ids, step) gets every step's ids (ids[i]:
   * entry i's next token) in order; returning false submits no more steps, but those already in
   * flight still run and are delivered (their ids are valid continuations). Returns the number of
   * steps delivered; each entry's position advances by that much (the last ids are not in the cache).
   */
  async decodeGreedy(entries: { slot: number; token: number }[], steps: number, onStep: (ids: Uint32Array, step: number) => boolean | void): Promise<number> {
    if (!Number.isInteger(steps) || steps < 0) throw new EngineError(`decodeGreedy needs a whole number of steps, not ${steps}.`);
    let delivered = 0;
    let stop = false;
    const ids = (pairs: { lane: number; id: number }[]) => {
      const out = new Uint32Array(entries.length);
      for (const p of pairs) out[p.lane] = p.id;
      if (onStep(out, delivered++) === false) stop = true;
      return [];
    };
    await this.decodeGreedyStream(
      entries.map((e) => ({ ...e, steps })),
      { ids, stop: () => stop },
      'decodeGreedy',
    );
    return delivered;
  }

  /**
   * Continuous greedy decoding, continuous batching that never drains for a newcomer: `lanes`
   * decode as in decodeGreedy, each for at most its own `steps`. When `ids` says a lane's
   * sequence has ended, `refill` may give the lane a new prompt (GreedyJoin): its rows are
   * prefilled behind the steps already in flight, the argmax of its last row is taken on the GPU
   * into the lane's place among the next step's inputs, and the lane decodes on from there. At the
   * start, `refill` is also asked for lanes past the given ones, while the batch has room.
   *
   * `ids(pairs)` gets each step's ids (and each newcomer's first id) in submission order, for the
   * lanes whose sequence is still running, and returns the lanes whose sequence has now ended. A
   * slot's position advances with each of its steps delivered, as in decodeGreedy. When `refill`
   * returns null (or `stop` says so), no more steps are submitted: what is in flight is delivered
   * and the call returns, so the caller can go on with the running lanes in a smaller batch.
   *
   * Until a lane's end is read back, the steps behind it run it on (rows keep their places: each
   * row's input is the previous step's output at that place); a lane out of steps repeats its last
   * position in its own slot. Both outputs are dropped.
   */
  async decodeGreedyStream(lanes: GreedyLane[], on: GreedyStreamCallbacks, what = 'decodeGreedyStream'): Promise<void> {
    if (this.gpu.lost) throw this.gpu.lost;
    this.checkBatch(lanes, what);
    for (const l of lanes) {
      this.checkSlot(l.slot);
      this.checkRoom(l.slot, 0, l.steps, what);
    }
    const q = this.device.queue;
    // What the submissions know of each lane. `gen` counts the lane's sequences, so that ids of
    // steps submitted for an earlier one are told apart when they arrive.
    const state = lanes.map((l) => ({ slot: l.slot, pos: this.positions[l.slot], left: l.steps, gen: 0, running: true }));
    // Whose steps a slot's position counts: a slot freed by one lane may be prefilled for another
    // while the first lane's last steps are still in flight.
    const owner = new Map(state.map((s, lane) => [s.slot, `${lane}:0`]));
    if (state.length > 0) q.writeBuffer(this.buf.tokens, 0, new Uint32Array(lanes.map((l) => l.token)));
    type Row = { lane: number; gen: number; slot: number; real: boolean };
    const inFlight: { rows: Row[]; join: boolean; buffer: GPUBuffer; mapped: Promise<void> }[] = [];
    let submitted = 0;
    let draining = !!on.stop?.();
    // Lanes waiting for their next prompt: at the start, every empty lane the batch has.
    const refills: number[] = on.refill ? Array.from({ length: this.maxBatch - state.length }, (_, i) => state.length + i) : [];
    /** Submit a step's or join's commands, whose last copies the ids it read into the staging buffer. */
    const track = (rows: Row[], join: boolean, buffer: GPUBuffer, commands: GPUCommandBuffer) => {
      q.submit([commands]);
      const mapped = buffer.mapAsync(GPUMapMode.READ, 0, rows.length * 4);
      mapped.catch(() => {}); // awaited below (or in the finally); never an unhandled rejection
      inFlight.push({ rows, join, buffer, mapped });
    };
    const nextStaging = () => this.buf.idStaging[submitted++ % GREEDY_PIPELINE_DEPTH];
    const submitStep = () => {
      const t0 = performance.now();
      const rows: Row[] = state.map((s, lane) => ({ lane, gen: s.gen, slot: s.slot, real: s.running && s.left > 0 }));
      // Queue writes are ordered with submits: this step's params land after the previous step ran.
      const kvLen = this.writeRows(
        state.map((s, i) => ({ slot: s.slot, pos: rows[i].real ? s.pos : s.pos - 1 })),
        0,
      );
      for (const [i, s] of state.entries()) {
        if (!rows[i].real) continue;
        s.pos++;
        s.left--;
      }
      const enc = this.device.createCommandEncoder();
      this.encodeRows(enc, rows.length, kvLen, 0, true);
      const buffer = nextStaging();
      enc.copyBufferToBuffer(this.buf.tokens, 0, buffer, 0, rows.length * 4);
      const commands = enc.finish();
      this.stats.encodeMs += performance.now() - t0;
      track(rows, false, buffer, commands);
    };
    /** Prefill the next prompt into `lane`, or (none) stop submitting steps. */
    const submitJoin = (lane: number) => {
      const j = draining ? null : on.refill!(lane);
      if (!j) {
        if (lane < state.length) draining = true;
        refills.length = 0; // no prompt is waiting: the empty lanes stay empty
        return;
      }
      this.checkSlot(j.slot);
      if (state.some((s, i) => i !== lane && s.running && s.slot === j.slot)) throw new EngineError(`${what} needs distinct slots.`);
      if (j.tokens.length === 0) throw new EngineError(`${what}: a prompt joining the batch needs at least one token.`);
      this.checkRoom(j.slot, j.tokens.length, j.steps, what);
      const n = Math.max(state.length, lane + 1);
      // The prompt's rows go through `tokens`, which holds the running lanes' next inputs: those
      // wait in laneTokens and come back with the newcomer's first id in its place.
      const save = this.device.createCommandEncoder();
      save.copyBufferToBuffer(this.buf.tokens, 0, this.buf.laneTokens, 0, n * 4);
      q.submit([save.finish()]);
      const calls = this.prefillCalls(j.slot, j.tokens);
      const last = calls.pop()!;
      for (const rows of calls) {
        this.submitRows(rows, -1, false);
        this.positions[j.slot] += rows.length;
      }
      const gen = (state[lane]?.gen ?? -1) + 1;
      const buffer = nextStaging();
      const commands = this.encodeCall(last, last.length - 1, true, (enc) => {
        enc.copyBufferToBuffer(this.buf.tokens, 0, this.buf.laneTokens, lane * 4, 4);
        enc.copyBufferToBuffer(this.buf.laneTokens, 0, this.buf.tokens, 0, n * 4);
        enc.copyBufferToBuffer(this.buf.laneTokens, lane * 4, buffer, 0, 4);
      });
      track([{ lane, gen, slot: j.slot, real: false }], true, buffer, commands);
      this.positions[j.slot] += last.length;
      state[lane] = { slot: j.slot, pos: this.positions[j.slot], left: j.steps, gen, running: true };
      owner.set(j.slot, `${lane}:${gen}`);
    };
    const deliver = (rows: Row[], join: boolean, ids: Uint32Array) => {
      const pairs: { lane: number; id: number }[] = [];
      rows.forEach((r, i) => {
        if (r.real && owner.get(r.slot) === `${r.lane}:${r.gen}`) this.positions[r.slot]++;
        const s = state[r.lane];
        if (s.gen === r.gen && s.running && (r.real || join)) pairs.push({ lane: r.lane, id: ids[i] });
      });
      if (pairs.length === 0) return;
      for (const lane of on.ids(pairs)) {
        state[lane].running = false;
        if (on.refill) refills.push(lane);
        else draining = true;
      }
    };
    try {
      for (;;) {
        if (on.stop?.()) draining = true;
        // Newcomers first: until a lane has its next prompt, steps would only run it idle.
        while (inFlight.length < GREEDY_PIPELINE_DEPTH && refills.length > 0) submitJoin(refills.shift()!);
        if (refills.length === 0) {
          while (!draining && inFlight.length < GREEDY_PIPELINE_DEPTH && state.some((s) => s.running && s.left > 0)) submitStep();
        }
        const f = inFlight.shift();
        if (!f) break;
        deliver(f.rows, f.join, new Uint32Array(await this.readBack(f.buffer, f.mapped, f.rows.length * 4)));
      }
    } finally {
      // On an error, steps may still be in flight: a buffer with a pending map cannot be mapped
      // again, so wait for each and unmap it before the error goes up.
      for (const f of inFlight) {
        try {
          await f.mapped;
          f.buffer.unmap();
        } catch {
          // the error that brought us here is the one to report
        }
      }
    }
  }

  /** Forget a sequence: the slot's next call starts at position 0. */
  reset(slot = 0) {
    this.checkSlot(slot);
    this.positions[slot] = 0;
  }

  /** Drop cached tokens after `position` in a slot (keeps a shared prompt prefix). */
  rewind(position: number, slot = 0) {
    if (position < 0 || position > this.positions[slot]) throw new EngineError(`Cannot rewind to ${position} from ${this.positions[slot]}.`);
    this.positions[slot] = position;
  }

  /**
   * Make slot `to` hold the first `length` tokens of slot `from` (beam search forks a beam). Every
   * layer's K and V rows are laid out [slot, contextLength, kvHeads·headDim]; WebGPU copies between
   * two ranges of one buffer only through another buffer, so the rows go through a temporary one.
   * Offsets stay 4-byte aligned: headDim is even, so a row of f16 values is whole u32 words.
   */
  copySlot(from: number, to: number, length: number) {
    this.checkSlot(from);
    this.checkSlot(to);
    if (from === to) throw new EngineError(`copySlot needs two different slots, not ${from} twice.`);
    if (!Number.isInteger(length) || length < 0 || length > this.positions[from])
      throw new EngineError(`Cannot copy ${length} tokens of slot ${from}, which holds ${this.positions[from]}.`);
    if (this.gpu.lost) throw this.gpu.lost;
    const rowBytes = kvLayerBytes(this.config, this.kvFormat, 1);
    const bytes = length * rowBytes;
    if (bytes > 0) {
      const tmp = this.device.createBuffer({ label: 'copySlot rows', size: bytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      const enc = this.device.createCommandEncoder();
      const src = from * this.contextLength * rowBytes;
      const dst = to * this.contextLength * rowBytes;
      for (const { k, v } of this.buf.kv) {
        for (const cache of [k, v]) {
          enc.copyBufferToBuffer(cache, src, tmp, 0, bytes);
          enc.copyBufferToBuffer(tmp, 0, cache, dst, bytes);
        }
      }
      this.device.queue.submit([enc.finish()]);
      // Freed once the submitted copies have run.
      tmp.destroy();
    }
    this.positions[to] = length;
  }

  destroy() {
    for (const name of this.adapterNames) this.removeAdapter(name);
    this.releaseActivations();
    for (const { buffer } of this.parts.tensors.buffers.values()) buffer.destroy();
  }
}
