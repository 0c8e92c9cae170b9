/**
 * The Llama forward pass on WebGPU. `forward` reads top to bottom like llama2.c's run.c:
 * embed, then per layer attention and SwiGLU feed-forward with residuals, then the final norm and
 * the LM head. Rows of a call are new tokens at positions startPos.. (prefill: many; decode: one).
 */
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import { EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, layerLinearNames, layerNormNames } from '../formats/llamaConfig.ts';
import type { ModelSource, TensorCache } from '../formats/tensorCacheTypes.ts';
import type { GpuContext } from './gpu.ts';
import { createBufferChecked, explainGpuFailure } from './gpu.ts';
import { EngineError, GPUOutOfMemoryError } from './errors.ts';
import { PipelineCache, bindGroup, type Dispatch, type KvFormat, type KernelVariant } from './kernels.ts';
import { createGpuAdapter, adapterZWidth, type AdapterSite, type GpuAdapter } from './adapters.ts';
import type { AdapterManifest } from '../formats/adapterFormat.ts';
import { takeMatrix, takeVector, uploadTensors, type GpuMatrix, type LoadProgress, type UploadedTensors } from './weights.ts';
import { activationSizes, batchForBudget, kvLayerBytes, DEFAULT_PREFILL_CHUNK, GREEDY_PIPELINE_DEPTH, type MemoryPlan } from './memoryPlan.ts';

/** Rows one call's activation buffers hold: a prefill chunk, or one token of each batched sequence. */
export function maxRowsPerCall(prefillChunk: number, maxBatch: number): number {
  return Math.max(prefillChunk, maxBatch);
}

/** The largest batch 'auto' tries (evaluation prompts are short; 32 sequences keep a GPU busy). */
export const AUTO_BATCH_LIMIT = 32;

/** Context allocated when the caller does not ask for one: the paper's prompts + 256 new tokens fit easily. */
export const DEFAULT_CONTEXT = 2048;

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const PARAMS_BYTES = 16;

interface LayerWeights {
  inputNorm: GPUBuffer; // [dim]
  qkv: GpuMatrix; // [(H + 2 KV) hd, dim]
  o: GpuMatrix; // [dim, H hd]
  postNorm: GPUBuffer; // [dim]
  gateUp: GpuMatrix; // [2 ffn, dim]
  down: GpuMatrix; // [dim, ffn]
}

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
  onProgress?: (p: LoadProgress) => void;
}

export class LlamaModel {
  /** Tokens already in each slot's KV cache; the next call for that slot starts there. */
  readonly positions: number[];
  readonly memory: MemoryPlan;

  private readonly device: GPUDevice;
  private readonly pipes: PipelineCache;
  /** Body dispatch lists: the base (key null) and one per resident adapter. */
  private readonly bodies = new Map<string | null, Dispatch[]>();
  private readonly dispatchesHead: Dispatch[] = [];
  /** Greedy decoding: each logits row's argmax written into tokens (the next step's input). */
  private dispatchArgmax!: Dispatch;
  private readonly ownBuffers: GPUBuffer[] = [];
  private readonly layers: LayerWeights[] = [];
  private readonly adapters = new Map<string, GpuAdapter>();
  private activeAdapter: string | null = null;
  private scratch: { zWidth: number; z: GPUBuffer; xSplit: GPUBuffer; tmp: GPUBuffer } | null = null;
  private embed!: GpuMatrix;
  private kvCaches: { k: GPUBuffer; v: GPUBuffer }[] = [];
  private kvFormat: KvFormat = 'f32';

  private constructor(
    readonly gpu: GpuContext,
    readonly config: LlamaConfig,
    readonly mode: QuantMode,
    readonly contextLength: number,
    readonly prefillChunk: number,
    readonly maxBatch: number,
    private readonly kernelChoice: { q4MatVec: boolean; tiled: boolean },
    private readonly tensors: UploadedTensors,
    private readonly buf: Record<'params' | 'paramsHead' | 'tokens' | 'rowInfo' | 'x' | 'xn' | 'qkv' | 'attn' | 'gateUp' | 'ffn' | 'scores' | 'logits' | 'cosSin' | 'staging', GPUBuffer>,
    /** decodeGreedy's readback ring: one buffer per step in flight, a u32 id per sequence. */
    private readonly idStaging: GPUBuffer[],
    kvBytes: number,
    activationBytes: number,
  ) {
    this.device = gpu.device;
    this.pipes = new PipelineCache(gpu.device);
    this.positions = new Array<number>(maxBatch).fill(0);
    this.memory = { weights: tensors.bytes, kvCache: kvBytes, activations: activationBytes, total: tensors.bytes + kvBytes + activationBytes };
  }

  static async load(gpu: GpuContext, source: ModelSource, config: LlamaConfig, mode: QuantMode, cache: TensorCache, opts: ModelLoadOptions = {}): Promise<LlamaModel> {
    const device = gpu.device;
    // The KV cache and score rows are sized for the context we allocate, not the model's maximum
    // (some checkpoints declare 128k positions): default to at most DEFAULT_CONTEXT tokens.
    const ctx = Math.min(opts.contextLength ?? DEFAULT_CONTEXT, config.contextWindowSize);
    const prefillChunk = Math.min(opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK, ctx);
    const c = config;
    if (c.headDim % 2 !== 0) throw new EngineError(`head_dim ${c.headDim} must be even for rotary embeddings.`);
    if (c.numHeads % c.numKvHeads !== 0) throw new EngineError(`num_attention_heads ${c.numHeads} is not a multiple of num_key_value_heads ${c.numKvHeads}.`);

    const tensors = await uploadTensors(device, source, cache, opts.onProgress);
    // GPUs get the workgroup kernels; a CPU-emulated adapter, whose barriers are slow, the per-row ones.
    const pick = (o: string | undefined, gpuName: string) => o === gpuName || ((o ?? 'auto') === 'auto' && !gpu.isSoftware);
    const kernelChoice = { q4MatVec: pick(opts.q4Decode, 'workgroup'), tiled: pick(opts.prefillMatmul, 'tiled') };
    try {
      return await LlamaModel.allocateFitting(gpu, c, mode, ctx, prefillChunk, opts.maxBatch ?? 1, opts.memoryBudget, kernelChoice, tensors);
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
    gpu: GpuContext,
    c: LlamaConfig,
    mode: QuantMode,
    ctx: number,
    prefillChunk: number,
    batch: number | 'auto',
    memoryBudget: number | undefined,
    kernelChoice: LlamaModel['kernelChoice'],
    tensors: UploadedTensors,
  ): Promise<LlamaModel> {
    const auto = batch === 'auto';
    let maxBatch = auto ? batchForBudget(c, mode, ctx, prefillChunk, memoryBudget ?? Infinity, AUTO_BATCH_LIMIT) : Math.max(1, Math.floor(batch));
    for (; ; maxBatch = Math.floor(maxBatch / 2)) {
      try {
        return await LlamaModel.allocate(gpu, c, mode, ctx, prefillChunk, maxBatch, kernelChoice, tensors);
      } catch (e) {
        if (!(e instanceof GPUOutOfMemoryError) || !auto || maxBatch <= 1) throw e;
      }
    }
  }

  /**
   * The same weights and resident adapters with another context length or batch (an evaluation
   * wants many short sequences, the playground one long one). Frees this model's activations and
   * KV caches first, so the two shapes never need memory at once; this object must not be used
   * afterwards. If the new shape does not fit, the old one is made again and returned with the error.
   */
  async reshape(opts: { contextLength: number; maxBatch: number | 'auto'; memoryBudget?: number }): Promise<{ model: LlamaModel; error: unknown }> {
    const ctx = Math.max(1, Math.min(Math.floor(opts.contextLength), this.config.contextWindowSize));
    const again = (c: number, b: number | 'auto', budget?: number) =>
      LlamaModel.allocateFitting(this.gpu, this.config, this.mode, c, Math.min(this.prefillChunk, c), b, budget, this.kernelChoice, this.tensors);
    this.releaseActivations();
    let next: LlamaModel;
    let error: unknown = null;
    try {
      next = await again(ctx, opts.maxBatch, opts.memoryBudget);
    } catch (e) {
      error = e;
      // Throws when even the old shape no longer fits: then nothing of this model is usable.
      next = await again(this.contextLength, this.maxBatch);
    }
    await next.adoptAdapters(this);
    return { model: next, error };
  }

  /** Take over another shape's resident adapters (their weights stay where they are). */
  private async adoptAdapters(from: LlamaModel) {
    const all = [...from.adapters.values()];
    // Scratch once, for the widest (ensureScratch rebuilds resident bodies whenever it grows).
    if (all.length > 0) await this.ensureScratch(Math.max(...all.map(adapterZWidth)));
    for (const a of all) {
      this.adapters.set(a.name, a);
      this.bodies.set(a.name, this.buildBody(a));
    }
    this.activeAdapter = from.activeAdapter;
  }

  /** Free the activations, KV caches and adapter scratch (not the weights, not adapters' weights). */
  private releaseActivations() {
    if (this.scratch) for (const b of [this.scratch.z, this.scratch.xSplit, this.scratch.tmp]) b.destroy();
    this.scratch = null;
    for (const b of this.ownBuffers) b.destroy();
    this.ownBuffers.length = 0;
  }

  /** Activations, KV caches and dispatch lists for a batch size; on failure frees what it made. */
  private static async allocate(gpu: GpuContext, c: LlamaConfig, mode: QuantMode, ctx: number, prefillChunk: number, maxBatch: number, kernelChoice: LlamaModel['kernelChoice'], tensors: UploadedTensors): Promise<LlamaModel> {
    const device = gpu.device;
    // Activation buffers hold the rows of one call: a prefill chunk or one token per sequence.
    const chunk = maxRowsPerCall(prefillChunk, maxBatch);
    const own: GPUBuffer[] = [];
    try {
      const a = activationSizes(c, ctx, chunk);
      const mk = async (what: string, size: number, usage = STORAGE) => {
        // A buffer a shader binds whole must fit the binding limit, not just the allocation limit.
        if (usage & GPUBufferUsage.STORAGE && size > device.limits.maxStorageBufferBindingSize) throw new GPUOutOfMemoryError(`${what} (over the device's binding limit)`, size);
        const b = await createBufferChecked(device, what, size, usage);
        own.push(b);
        return b;
      };
      const buf = {
        params: await mk('params', PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        paramsHead: await mk('paramsHead', PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        tokens: await mk('tokens', chunk * 4),
        rowInfo: await mk('rowInfo', chunk * 8),
        x: await mk('x', a.x),
        xn: await mk('xn', a.xn),
        qkv: await mk('qkv', a.qkv),
        attn: await mk('attn', a.attn),
        gateUp: await mk('gateUp', a.gateUp),
        ffn: await mk('ffn', a.ffn),
        scores: await mk('scores', a.scores),
        logits: await mk('logits', a.logits),
        cosSin: await mk('cosSin', a.cosSin),
        staging: await mk('staging', a.logits, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST),
      };
      const idStaging: GPUBuffer[] = [];
      for (let i = 0; i < GREEDY_PIPELINE_DEPTH; i++) idStaging.push(await mk(`greedy ids staging ${i}`, maxBatch * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST));
      device.queue.writeBuffer(buf.cosSin, 0, ropeTable(ctx, c.headDim, c.ropeTheta));
      const kvFormat: KvFormat = mode === 'q4f16_1' || mode === 'q0f16' ? 'f16' : 'f32';
      const kvCaches: { k: GPUBuffer; v: GPUBuffer }[] = [];
      for (let l = 0; l < c.numLayers; l++) {
        const bytes = maxBatch * kvLayerBytes(c, mode, ctx);
        kvCaches.push({ k: await mk(`kCache.${l}`, bytes), v: await mk(`vCache.${l}`, bytes) });
      }
      const activationBytes = [...Object.values(buf), ...idStaging].reduce((s, b) => s + b.size, 0);
      const kvBytes = kvCaches.reduce((s, kv) => s + kv.k.size + kv.v.size, 0);
      const model = new LlamaModel(gpu, c, mode, ctx, prefillChunk, maxBatch, kernelChoice, tensors, buf, idStaging, kvBytes, activationBytes);
      model.ownBuffers.push(...own);
      model.record(kvCaches, kvFormat);
      return model;
    } catch (e) {
      for (const b of own) b.destroy();
      throw e;
    }
  }

  /** Resolve every weight once and build the base dispatch list and the head. */
  private record(kvCaches: { k: GPUBuffer; v: GPUBuffer }[], kv: KvFormat) {
    const c = this.config;
    const d = c.hiddenSize;
    const H = c.numHeads;
    const KV = c.numKvHeads;
    const hd = c.headDim;
    const t = this.tensors;
    this.kvFormat = kv;
    this.kvCaches = kvCaches;
    this.embed = takeMatrix(t, EMBED_NAME, c.vocabSize, d);
    for (let l = 0; l < c.numLayers; l++) {
      const names = layerLinearNames(l);
      const norms = layerNormNames(l);
      this.layers.push({
        inputNorm: takeVector(t, norms.input, d),
        qkv: takeMatrix(t, names.qkv, (H + 2 * KV) * hd, d),
        o: takeMatrix(t, names.o, d, H * hd),
        postNorm: takeVector(t, norms.postAttention, d),
        gateUp: takeMatrix(t, names.gateUp, 2 * c.intermediateSize, d),
        down: takeMatrix(t, names.down, d, c.intermediateSize),
      });
    }
    this.bodies.set(null, this.buildBody(null));
    // Head: xn = rmsnorm(x); logits = W_head xn for the rows whose logits are wanted
    const head = c.tieWordEmbeddings ? this.embed : takeMatrix(t, LM_HEAD_NAME, c.vocabSize, d);
    this.rmsnorm(this.dispatchesHead, this.buf.x, this.buf.xn, takeVector(t, FINAL_NORM_NAME, d), 'final norm');
    this.matmul(this.dispatchesHead, head, this.buf.xn, this.buf.logits, { accumulate: false, params: this.buf.paramsHead });
    // Greedy: tokens[t] = argmax of logits row t (the head's rows, so the head's params).
    const argmax = this.pipes.get('argmax', {}, { VOCAB: c.vocabSize });
    this.dispatchArgmax = { label: 'argmax', pipeline: argmax, bindGroups: [bindGroup(this.device, argmax, 0, [this.buf.paramsHead, this.buf.logits, this.buf.tokens], 'argmax')], workgroups: (rows) => [rows, 1, 1] };
  }

  /**
   * y (+)= W x, in whichever kernel suits the weights and the row count. With `adapter` (an 'add'
   * site whose z = act(D x) the adapter's down-projection has just written), the same dispatch
   * adds scale[seg] U z to every output (adapterAdd.wgsl): no separate up-projection pass.
   */
  private matmul(list: Dispatch[], w: GpuMatrix, x: GPUBuffer, y: GPUBuffer, o: { accumulate: boolean; params?: GPUBuffer; act?: number; splitRow?: number; adapter?: AdapterSite }) {
    const constants: Record<string, number> = { IN: w.cols, OUT: w.rows, ACCUMULATE: o.accumulate ? 1 : 0, ACT: o.act ?? 0 };
    if (o.splitRow !== undefined) constants.SPLIT_ROW = o.splitRow;
    const ad = o.adapter;
    if (ad) {
      if (ad.mode !== 'add' || ad.n !== w.rows) throw new EngineError(`An adapter in mode ${ad.mode} with ${ad.n} rows cannot be fused into ${w.name}.`);
      Object.assign(constants, { R: ad.r, SEG1: ad.seg1, SEG2: ad.seg2, Z_STRIDE: ad.segments * ad.r });
    }
    const variant = (v: KernelVariant): KernelVariant => (ad ? { ...v, adapterAdd: true } : v);
    const groups = (pipeline: GPUComputePipeline) => [
      bindGroup(this.device, pipeline, 0, [o.params ?? this.buf.params, x, y], w.name),
      bindGroup(this.device, pipeline, 1, [w.data, w.scale], `${w.name} weights`),
      ...(ad ? [bindGroup(this.device, pipeline, 2, [this.scratch!.z, ad.up, ad.scales], `${w.name} adapter`)] : []),
    ];
    const pipeline = this.pipes.get('matmul', variant({ weight: w.format }), constants);
    let general: Dispatch = { label: `matmul ${w.name}`, pipeline, bindGroups: groups(pipeline), workgroups: (rows) => [Math.ceil(w.rows / 64), Math.ceil(rows / 8), 1] };
    // Many rows (prefill) on a GPU: the tiled kernel, from 9 rows up. (Split inputs keep the general one.)
    if (this.kernelChoice.tiled && o.splitRow === undefined) {
      const { SPLIT_ROW: _s, ...tiledConstants } = constants;
      const tiled = this.pipes.get('matmulTiled', variant({ weight: w.format }), tiledConstants);
      const t: Dispatch = { label: `tiled matmul ${w.name}`, pipeline: tiled, bindGroups: groups(tiled), workgroups: (rows) => [Math.ceil(w.rows / 64), Math.ceil(rows / 64), 1] };
      general = { ...general, maxRows: 8, alt: t };
    }
    if ((w.format !== 'q4f16' && w.format !== 'q4f32') || !this.kernelChoice.q4MatVec) {
      list.push(general);
      return;
    }
    // q4 decode (up to 8 rows: one token, or a small batch): the wide-load matrix-vector kernel.
    const { ACT: _act, ...q4Constants } = constants;
    const mv = this.pipes.get('q4MatVec', variant({ weight: w.format, subgroups: this.gpu.hasSubgroups }), q4Constants);
    const x65535 = Math.min(w.rows, 65535);
    list.push({
      label: `q4 matvec ${w.name}`,
      pipeline: mv,
      bindGroups: groups(mv),
      workgroups: () => [x65535, Math.ceil(w.rows / x65535), 1],
      maxRows: 8,
      alt: general.alt ?? general,
    });
  }

  private rmsnorm(list: Dispatch[], x: GPUBuffer, y: GPUBuffer, weight: GPUBuffer, label: string) {
    const pipeline = this.pipes.get('rmsnorm', {}, { DIM: this.config.hiddenSize, EPS: this.config.rmsNormEps });
    list.push({ label, pipeline, bindGroups: [bindGroup(this.device, pipeline, 0, [this.buf.params, x, y, weight], label)], workgroups: (rows) => [rows, 1, 1] });
  }

  private simple(list: Dispatch[], label: string, kernel: Parameters<PipelineCache['get']>[0], variant: KernelVariant, constants: Record<string, number>, buffers: (GPUBuffer | undefined)[], workgroups: Dispatch['workgroups']) {
    const pipeline = this.pipes.get(kernel, variant, constants);
    list.push({ label, pipeline, bindGroups: [bindGroup(this.device, pipeline, 0, [this.buf.params, ...buffers], label)], workgroups });
  }

  /** An adapter site's down-projection: z = act(D x), every segment at once. */
  private adapterDown(list: Dispatch[], a: GpuAdapter, site: AdapterSite, x: GPUBuffer, label: string) {
    const w: GpuMatrix = { name: label, format: 'f32', rows: site.segments * site.r, cols: site.inDim, data: site.down };
    this.matmul(list, w, x, this.scratch!.z, { accumulate: false, act: a.act });
  }

  /**
   * A series site's up-projection (see adapterUp.wgsl): onto its input (gate/up) or the linear's
   * output (down). 'add' sites have none: matmul() fuses their up-projection into the base matmul.
   */
  private adapterUp(list: Dispatch[], site: AdapterSite, y: GPUBuffer, res: GPUBuffer, label: string) {
    if (site.mode === 'add') throw new EngineError(`${label}: 'add' adapters are fused into their base matmul.`);
    const split = site.mode === 'seriesInput';
    const constants = {
      N: site.n,
      R: site.r,
      SEG1: site.seg1,
      SEG2: site.seg2,
      Z_STRIDE: site.segments * site.r,
      OUT_W: this.config.hiddenSize,
      SEG_W: this.config.hiddenSize,
      SPLIT_OUT: split ? 1 : 0,
    };
    const pipeline = this.pipes.get('adapterUp', {}, constants);
    list.push({
      label,
      pipeline,
      bindGroups: [
        bindGroup(this.device, pipeline, 0, [this.buf.params, this.scratch!.z, y, res, site.scales], label),
        bindGroup(this.device, pipeline, 1, [site.up], `${label} weights`),
      ],
      workgroups: (rows) => [Math.ceil(site.n / 64), rows, 1],
    });
  }

  /** The dispatches of one forward call's body (embedding and every layer), with an adapter or none. */
  private buildBody(adapter: GpuAdapter | null): Dispatch[] {
    const c = this.config;
    const d = c.hiddenSize;
    const H = c.numHeads;
    const KV = c.numKvHeads;
    const hd = c.headDim;
    const ffn = c.intermediateSize;
    const ctx = this.contextLength;
    const kv = this.kvFormat;
    const b = this.buf;
    const ceil = (n: number, m: number) => Math.ceil(n / m);
    const list: Dispatch[] = [];

    // Embedding: x[t] = E[token[t]]  (x: [rows, dim])
    {
      const pipeline = this.pipes.get('embedding', { weight: this.embed.format }, { IN: d });
      const chunkW = this.embed.format.startsWith('q4') ? 8 : 4;
      list.push({
        label: 'embedding',
        pipeline,
        bindGroups: [bindGroup(this.device, pipeline, 0, [b.params, b.tokens, b.x], 'embedding'), bindGroup(this.device, pipeline, 1, [this.embed.data, this.embed.scale], 'embedding weights')],
        workgroups: (rows) => [ceil(ceil(d, chunkW), 64), rows, 1],
      });
    }

    for (let l = 0; l < c.numLayers; l++) {
      const w = this.layers[l];
      const { k: kCache, v: vCache } = this.kvCaches[l];
      const heads = { HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV };
      const sites = adapter?.layers[l] ?? {};

      // Attention block: xn = rmsnorm(x); qkv = W_qkv xn (+ adapter); q = rope(q) and cache
      // rope(k), v (one kernel); attn = softmax(q k^T / sqrt(hd)) v; x += W_o attn (+ adapter)
      // ('add' adapters: z = act(D x) first, then the base matmul adds scale U z as it writes y)
      this.rmsnorm(list, b.x, b.xn, w.inputNorm, `layer ${l} input norm`);
      if (sites.qkv) this.adapterDown(list, adapter!, sites.qkv, b.xn, `layer ${l} adapter qkv down`);
      this.matmul(list, w.qkv, b.xn, b.qkv, { accumulate: false, adapter: sites.qkv });
      // One thread per q pair, one per adjacent k/v pair: (H + KV) * hd/2 threads per row.
      this.simple(list, `layer ${l} rope + kv write`, 'ropeKvWrite', { kv }, { ...heads, CTX: ctx }, [b.qkv, b.cosSin, b.rowInfo, kCache, vCache], (rows) => [ceil((H + KV) * (hd / 2), 64), rows, 1]);
      this.simple(list, `layer ${l} scores`, 'attnScores', { kv }, { ...heads, CTX: ctx }, [b.qkv, b.scores, kCache, undefined, b.rowInfo], (rows, kvLen) => [ceil(kvLen, 64), rows * H, 1]);
      this.simple(list, `layer ${l} softmax`, 'attnSoftmax', {}, { N_HEADS: H, CTX: ctx }, [b.scores, b.rowInfo], (rows) => [rows * H, 1, 1]);
      this.simple(list, `layer ${l} attn out`, 'attnOutput', { kv }, { ...heads, CTX: ctx }, [b.scores, b.attn, undefined, vCache, b.rowInfo], (rows) => [ceil(H * hd, 64), rows, 1]);
      if (sites.o) this.adapterDown(list, adapter!, sites.o, b.attn, `layer ${l} adapter o down`);
      this.matmul(list, w.o, b.attn, b.x, { accumulate: true, adapter: sites.o });

      // Feed-forward block: xn = rmsnorm(x); h = silu(W_gate xn) * (W_up xn); x += W_down h
      // (series adapters change gate/up's inputs and down's output; parallel and LoRA add to outputs)
      this.rmsnorm(list, b.x, b.xn, w.postNorm, `layer ${l} post-attention norm`);
      const gu = sites.gateUp;
      if (gu) this.adapterDown(list, adapter!, gu, b.xn, `layer ${l} adapter gate/up down`);
      if (gu?.mode === 'seriesInput') {
        this.adapterUp(list, gu, this.scratch!.xSplit, b.xn, `layer ${l} adapter gate/up inputs`);
        this.matmul(list, w.gateUp, this.scratch!.xSplit, b.gateUp, { accumulate: false, splitRow: ffn });
      } else {
        this.matmul(list, w.gateUp, b.xn, b.gateUp, { accumulate: false, adapter: gu });
      }
      this.simple(list, `layer ${l} swiglu`, 'swiglu', {}, { FFN: ffn }, [b.gateUp, b.ffn], (rows) => [ceil(ffn, 64), rows, 1]);
      const dn = sites.down;
      if (dn?.mode === 'seriesOutput') {
        this.matmul(list, w.down, b.ffn, this.scratch!.tmp, { accumulate: false });
        this.adapterDown(list, adapter!, dn, this.scratch!.tmp, `layer ${l} adapter down down`);
        this.adapterUp(list, dn, b.x, this.scratch!.tmp, `layer ${l} adapter down up`);
      } else {
        if (dn) this.adapterDown(list, adapter!, dn, b.ffn, `layer ${l} adapter down down`);
        this.matmul(list, w.down, b.ffn, b.x, { accumulate: true, adapter: dn });
      }
    }
    return list;
  }

  /** Make an adapter resident (the base stays as it is); switch to it with useAdapter. */
  async addAdapter(manifest: AdapterManifest, tensors: Map<string, Float32Array>): Promise<GpuAdapter> {
    if (this.adapters.has(manifest.name)) this.removeAdapter(manifest.name);
    const a = await createGpuAdapter(this.device, this.config, manifest, tensors);
    try {
      await this.ensureScratch(adapterZWidth(a));
    } catch (e) {
      for (const b of a.buffers) b.destroy();
      throw e;
    }
    this.adapters.set(a.name, a);
    this.bodies.set(a.name, this.buildBody(a));
    return a;
  }

  removeAdapter(name: string) {
    const a = this.adapters.get(name);
    if (!a) return;
    if (this.activeAdapter === name) this.activeAdapter = null;
    this.adapters.delete(name);
    this.bodies.delete(name);
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
    return (this.bodies.get(name) ?? []).map((d) => (d.alt ? `${d.label} | over ${d.maxRows} rows: ${d.alt.label}` : d.label));
  }

  get adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /** Scratch buffers adapters share: z (bottleneck activations), split gate/up inputs, down's output. */
  private async ensureScratch(zWidth: number) {
    const c = this.config;
    const chunk = maxRowsPerCall(this.prefillChunk, this.maxBatch);
    if (this.scratch && this.scratch.zWidth >= zWidth) return;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const next = {
      zWidth,
      z: await createBufferChecked(this.device, 'adapter z', chunk * zWidth * 4, usage),
      xSplit: await createBufferChecked(this.device, 'adapter split inputs', 2 * chunk * c.hiddenSize * 4, usage),
      tmp: await createBufferChecked(this.device, 'adapter down output', chunk * c.hiddenSize * 4, usage),
    };
    const old = this.scratch;
    this.scratch = next;
    // Bind groups of resident adapters point at the old scratch: rebuild them.
    for (const [name, a] of this.adapters) this.bodies.set(name, this.buildBody(a));
    if (old) for (const b of [old.z, old.xSplit, old.tmp]) b.destroy();
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
    const V = this.config.vocabSize;
    const out = new Float32Array(opts.allLogits ? tokens.length * V : V);
    for (let start = 0; start < tokens.length; start += this.prefillChunk) {
      const chunk = tokens.slice(start, start + this.prefillChunk);
      const last = start + chunk.length === tokens.length;
      const rows = chunk.map((token, i) => ({ slot: 0, token, pos: this.positions[0] + i }));
      const logits = await this.runRows(rows, opts.allLogits ? 0 : last ? rows.length - 1 : -1);
      this.positions[0] += chunk.length;
      if (logits) out.set(logits, opts.allLogits ? start * V : 0);
    }
    return out;
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
    let logits: Float32Array | null = null;
    for (let start = 0; start < tokens.length; start += this.prefillChunk) {
      const chunk = tokens.slice(start, start + this.prefillChunk);
      const last = start + chunk.length === tokens.length;
      const rows = chunk.map((token, i) => ({ slot, token, pos: this.positions[slot] + i }));
      logits = await this.runRows(rows, last ? rows.length - 1 : -1);
      this.positions[slot] += chunk.length;
    }
    if (!logits) throw new EngineError('prefillSlot() needs at least one token.');
    return logits;
  }

  /** A decode step's entries: at most one batch, each slot once. */
  private checkBatch(entries: { slot: number }[], what: string) {
    if (entries.length > this.maxBatch) throw new EngineError(`${entries.length} sequences exceed the batch of ${this.maxBatch}.`);
    if (new Set(entries.map((e) => e.slot)).size !== entries.length) throw new EngineError(`${what} needs distinct slots.`);
  }

  private checkSlot(slot: number) {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.maxBatch) throw new EngineError(`Slot ${slot} is outside the batch of ${this.maxBatch}.`);
  }

  /** Encode and run one call: rows of (slot, token, position); LM head for rows headRow0.. (none if -1). */
  private async runRows(rows: { slot: number; token: number; pos: number }[], headRow0: number): Promise<Float32Array | null> {
    const kvLen = this.writeRows(rows, headRow0);
    this.device.queue.writeBuffer(this.buf.tokens, 0, new Uint32Array(rows.map((r) => r.token)));
    const n = rows.length;
    const headRows = headRow0 >= 0 ? n - headRow0 : 0;
    const enc = this.device.createCommandEncoder();
    this.encodeRows(enc, n, kvLen, headRow0, false);
    const bytes = headRows * this.config.vocabSize * 4;
    if (bytes > 0) enc.copyBufferToBuffer(this.buf.logits, 0, this.buf.staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    if (bytes === 0) return null;
    return new Float32Array(await this.readBack(this.buf.staging, this.buf.staging.mapAsync(GPUMapMode.READ, 0, bytes), bytes));
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

  private contextFull(): EngineError {
    return new EngineError(`The context window is full (${this.contextLength} tokens). Start a new conversation or shorten the prompt.`);
  }

  /** One compute pass: the body over n rows, then (headRow0 >= 0) the final norm, the LM head of rows headRow0.., and optionally their argmax into tokens. */
  private encodeRows(enc: GPUCommandEncoder, n: number, kvLen: number, headRow0: number, argmax: boolean) {
    const pass = enc.beginComputePass();
    const run = (list: Dispatch[], r: number) => {
      for (const d of list) {
        const dsp = d.alt && r > d.maxRows! ? d.alt : d;
        pass.setPipeline(dsp.pipeline);
        dsp.bindGroups.forEach((g, i) => pass.setBindGroup(i, g));
        const [x, y, z] = dsp.workgroups(r, kvLen);
        pass.dispatchWorkgroups(x, y, z);
      }
    };
    run(this.bodies.get(this.activeAdapter)!, n);
    const headRows = headRow0 >= 0 ? n - headRow0 : 0;
    if (headRows > 0) {
      // The final norm runs over all rows; the LM head matmul reads rows headRow0.. only.
      run(this.dispatchesHead.slice(0, 1), n);
      run(this.dispatchesHead.slice(1), headRows);
      if (argmax) run([this.dispatchArgmax], headRows);
    }
    pass.end();
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
    if (this.gpu.lost) throw this.gpu.lost;
    if (!Number.isInteger(steps) || steps < 0) throw new EngineError(`decodeGreedy needs a whole number of steps, not ${steps}.`);
    this.checkBatch(entries, 'decodeGreedy');
    for (const e of entries) {
      this.checkSlot(e.slot);
      if (this.positions[e.slot] + steps > this.contextLength) throw this.contextFull();
    }
    if (entries.length === 0 || steps === 0) return 0;
    const n = entries.length;
    const bytes = n * 4;
    const start = entries.map((e) => this.positions[e.slot]);
    const q = this.device.queue;
    // Step 0's input; every later step's is written by the previous step's argmax.
    q.writeBuffer(this.buf.tokens, 0, new Uint32Array(entries.map((e) => e.token)));
    const inFlight: { step: number; buffer: GPUBuffer; mapped: Promise<void> }[] = [];
    let submitted = 0;
    let delivered = 0;
    let stop = false;
    const submit = (step: number) => {
      // Queue writes are ordered with submits: this step's params land after the previous step ran.
      const kvLen = this.writeRows(entries.map((e, i) => ({ slot: e.slot, pos: start[i] + step })), 0);
      const enc = this.device.createCommandEncoder();
      this.encodeRows(enc, n, kvLen, 0, true);
      const buffer = this.idStaging[step % GREEDY_PIPELINE_DEPTH];
      enc.copyBufferToBuffer(this.buf.tokens, 0, buffer, 0, bytes);
      q.submit([enc.finish()]);
      const mapped = buffer.mapAsync(GPUMapMode.READ, 0, bytes);
      mapped.catch(() => {}); // awaited below (or drained); never an unhandled rejection
      inFlight.push({ step, buffer, mapped });
    };
    try {
      while (inFlight.length > 0 || (!stop && submitted < steps)) {
        while (!stop && submitted < steps && inFlight.length < GREEDY_PIPELINE_DEPTH) submit(submitted++);
        const f = inFlight.shift()!;
        const ids = new Uint32Array(await this.readBack(f.buffer, f.mapped, bytes));
        delivered++;
        if (onStep(ids, f.step) === false) stop = true;
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
      for (const e of entries) this.positions[e.slot] += delivered;
    }
    return delivered;
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
    if (!Number.isInteger(length) || length < 0 || length > this.positions[from]) throw new EngineError(`Cannot copy ${length} tokens of slot ${from}, which holds ${this.positions[from]}.`);
    if (this.gpu.lost) throw this.gpu.lost;
    const rowBytes = kvLayerBytes(this.config, this.mode, 1);
    const bytes = length * rowBytes;
    if (bytes > 0) {
      const tmp = this.device.createBuffer({ label: 'copySlot rows', size: bytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      const enc = this.device.createCommandEncoder();
      const src = from * this.contextLength * rowBytes;
      const dst = to * this.contextLength * rowBytes;
      for (const { k, v } of this.kvCaches) {
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
    for (const { buffer } of this.tensors.buffers.values()) buffer.destroy();
  }
}

/**
 * cos/sin of the rotary angle for every position and pair. [ctx, hd/2, 2]
 * Hugging Face's LlamaRotaryEmbedding computes inv_freq = 1 / theta^(2i/hd) and the angle
 * pos * inv_freq in float32; we round the same way (so greedy ids match HF's), then take cos/sin
 * in double precision, which is closer than the GPU's f32 cos on large angles.
 */
function ropeTable(ctx: number, headDim: number, theta: number): Float32Array<ArrayBuffer> {
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
  const out = new Float32Array(ctx * half * 2);
  for (let pos = 0; pos < ctx; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(pos * invFreq[i]);
      out[(pos * half + i) * 2] = Math.cos(angle);
      out[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return out;
}
