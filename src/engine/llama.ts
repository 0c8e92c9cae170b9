/**
 * The Llama forward pass on WebGPU. `forward` reads top to bottom like llama2.c's run.c:
 * embed, then per layer attention and SwiGLU feed-forward with residuals, then the final norm and
 * the LM head. Rows of a call are new tokens at positions startPos.. (prefill: many; decode: one).
 */
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import { EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, layerLinearNames, layerNormNames } from '../formats/llamaConfig.ts';
import type { ModelSource, TensorCache } from '../formats/tensorCacheTypes.ts';
import type { GpuContext } from './gpu.ts';
import { createBufferChecked } from './gpu.ts';
import { EngineError } from './errors.ts';
import { PipelineCache, bindGroup, type Dispatch, type KvFormat } from './kernels.ts';
import { takeMatrix, takeVector, uploadTensors, type GpuMatrix, type LoadProgress, type UploadedTensors } from './weights.ts';
import { activationSizes, kvLayerBytes, DEFAULT_PREFILL_CHUNK, type MemoryPlan } from './memoryPlan.ts';

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
  onProgress?: (p: LoadProgress) => void;
}

export class LlamaModel {
  /** Tokens already in the KV cache; the next forward call starts here. */
  position = 0;
  readonly memory: MemoryPlan;

  private readonly device: GPUDevice;
  private readonly dispatchesBody: Dispatch[] = [];
  private readonly dispatchesHead: Dispatch[] = [];
  private readonly ownBuffers: GPUBuffer[] = [];

  private constructor(
    readonly gpu: GpuContext,
    readonly config: LlamaConfig,
    readonly mode: QuantMode,
    readonly contextLength: number,
    readonly prefillChunk: number,
    private readonly tensors: UploadedTensors,
    private readonly buf: Record<'params' | 'paramsHead' | 'tokens' | 'x' | 'xn' | 'qkv' | 'attn' | 'gateUp' | 'ffn' | 'scores' | 'logits' | 'cosSin' | 'staging', GPUBuffer>,
    kvBytes: number,
    activationBytes: number,
  ) {
    this.device = gpu.device;
    this.memory = { weights: tensors.bytes, kvCache: kvBytes, activations: activationBytes, total: tensors.bytes + kvBytes + activationBytes };
  }

  static async load(gpu: GpuContext, source: ModelSource, config: LlamaConfig, mode: QuantMode, cache: TensorCache, opts: ModelLoadOptions = {}): Promise<LlamaModel> {
    const device = gpu.device;
    // The KV cache and score rows are sized for the context we allocate, not the model's maximum
    // (some checkpoints declare 128k positions): default to at most DEFAULT_CONTEXT tokens.
    const ctx = Math.min(opts.contextLength ?? DEFAULT_CONTEXT, config.contextWindowSize);
    const chunk = Math.min(opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK, ctx);
    const c = config;
    if (c.headDim % 2 !== 0) throw new EngineError(`head_dim ${c.headDim} must be even for rotary embeddings.`);
    if (c.numHeads % c.numKvHeads !== 0) throw new EngineError(`num_attention_heads ${c.numHeads} is not a multiple of num_key_value_heads ${c.numKvHeads}.`);

    const tensors = await uploadTensors(device, source, cache, opts.onProgress);
    const own: GPUBuffer[] = [];
    try {
      const a = activationSizes(c, ctx, chunk);
      const mk = async (what: string, size: number, usage = STORAGE) => {
        const b = await createBufferChecked(device, what, size, usage);
        own.push(b);
        return b;
      };
      const buf = {
        params: await mk('params', PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        paramsHead: await mk('paramsHead', PARAMS_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        tokens: await mk('tokens', chunk * 4),
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
      device.queue.writeBuffer(buf.cosSin, 0, ropeTable(ctx, c.headDim, c.ropeTheta));
      const kvFormat: KvFormat = mode === 'q4f16_1' || mode === 'q0f16' ? 'f16' : 'f32';
      const kvCaches: { k: GPUBuffer; v: GPUBuffer }[] = [];
      for (let l = 0; l < c.numLayers; l++) {
        kvCaches.push({ k: await mk(`kCache.${l}`, kvLayerBytes(c, mode, ctx)), v: await mk(`vCache.${l}`, kvLayerBytes(c, mode, ctx)) });
      }
      const activationBytes = Object.values(buf).reduce((s, b) => s + b.size, 0);
      const kvBytes = kvCaches.reduce((s, kv) => s + kv.k.size + kv.v.size, 0);
      const model = new LlamaModel(gpu, c, mode, ctx, chunk, tensors, buf, kvBytes, activationBytes);
      model.ownBuffers.push(...own);
      model.record(kvCaches, kvFormat);
      return model;
    } catch (e) {
      for (const b of own) b.destroy();
      for (const { buffer } of tensors.buffers.values()) buffer.destroy();
      throw e;
    }
  }

  /** Build every dispatch of one forward call once; only workgroup counts change per call. */
  private record(kvCaches: { k: GPUBuffer; v: GPUBuffer }[], kv: KvFormat) {
    const c = this.config;
    const d = c.hiddenSize;
    const H = c.numHeads;
    const KV = c.numKvHeads;
    const hd = c.headDim;
    const qkvWidth = (H + 2 * KV) * hd;
    const ctx = this.contextLength;
    const pipes = new PipelineCache(this.device);
    const b = this.buf;
    const t = this.tensors;
    const device = this.device;
    const ceil = (n: number, m: number) => Math.ceil(n / m);

    const matmul = (list: Dispatch[], w: GpuMatrix, x: GPUBuffer, y: GPUBuffer, accumulate: boolean, params = b.params) => {
      const pipeline = pipes.get('matmul', { weight: w.format }, { IN: w.cols, OUT: w.rows, ACCUMULATE: accumulate ? 1 : 0 });
      list.push({
        label: `matmul ${w.name}`,
        pipeline,
        bindGroups: [bindGroup(device, pipeline, 0, [params, x, y], w.name), bindGroup(device, pipeline, 1, [w.data, w.scale], `${w.name} weights`)],
        workgroups: (rows) => [ceil(w.rows, 64), ceil(rows, 8), 1],
      });
    };
    const rmsnorm = (list: Dispatch[], x: GPUBuffer, y: GPUBuffer, weight: GPUBuffer, label: string) => {
      const pipeline = pipes.get('rmsnorm', {}, { DIM: d, EPS: c.rmsNormEps });
      list.push({ label, pipeline, bindGroups: [bindGroup(device, pipeline, 0, [b.params, x, y, weight], label)], workgroups: (rows) => [rows, 1, 1] });
    };

    // Embedding: x[t] = E[token[t]]  (x: [rows, dim])
    const embed = takeMatrix(t, EMBED_NAME, c.vocabSize, d);
    {
      const pipeline = pipes.get('embedding', { weight: embed.format }, { IN: d });
      const chunkW = embed.format.startsWith('q4') ? 8 : 4;
      this.dispatchesBody.push({
        label: 'embedding',
        pipeline,
        bindGroups: [bindGroup(device, pipeline, 0, [b.params, b.tokens, b.x], 'embedding'), bindGroup(device, pipeline, 1, [embed.data, embed.scale], 'embedding weights')],
        workgroups: (rows) => [ceil(ceil(d, chunkW), 64), rows, 1],
      });
    }

    for (let l = 0; l < c.numLayers; l++) {
      const names = layerLinearNames(l);
      const norms = layerNormNames(l);
      const w: LayerWeights = {
        inputNorm: takeVector(t, norms.input, d),
        qkv: takeMatrix(t, names.qkv, qkvWidth, d),
        o: takeMatrix(t, names.o, d, H * hd),
        postNorm: takeVector(t, norms.postAttention, d),
        gateUp: takeMatrix(t, names.gateUp, 2 * c.intermediateSize, d),
        down: takeMatrix(t, names.down, d, c.intermediateSize),
      };
      const { k: kCache, v: vCache } = kvCaches[l];
      const list = this.dispatchesBody;
      const heads = { HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV };

      // Attention block: xn = rmsnorm(x); qkv = W_qkv xn; rope(q, k); cache k, v; attn = softmax(q k^T / sqrt(hd)) v; x += W_o attn
      rmsnorm(list, b.x, b.xn, w.inputNorm, `layer ${l} input norm`);
      matmul(list, w.qkv, b.xn, b.qkv, false);
      {
        const pipeline = pipes.get('rope', {}, { HEAD_DIM: hd, N_ROT_HEADS: H + KV, QKV_WIDTH: qkvWidth });
        list.push({ label: `layer ${l} rope`, pipeline, bindGroups: [bindGroup(device, pipeline, 0, [b.params, b.qkv, b.cosSin], 'rope')], workgroups: (rows) => [ceil((H + KV) * (hd / 2), 64), rows, 1] });
      }
      {
        const pipeline = pipes.get('kvWrite', { kv }, heads);
        list.push({ label: `layer ${l} kv write`, pipeline, bindGroups: [bindGroup(device, pipeline, 0, [b.params, b.qkv, kCache, vCache], 'kv write')], workgroups: (rows) => [ceil((KV * hd) / 2, 64), rows, 1] });
      }
      {
        const pipeline = pipes.get('attnScores', { kv }, { ...heads, CTX: ctx });
        list.push({ label: `layer ${l} scores`, pipeline, bindGroups: [bindGroup(device, pipeline, 0, [b.params, b.qkv, b.scores, kCache], 'scores')], workgroups: (rows, kvLen) => [ceil(kvLen, 64), rows * H, 1] });
      }
      {
        const pipeline = pipes.get('attnSoftmax', {}, { N_HEADS: H, CTX: ctx });
        list.push({ label: `layer ${l} softmax`, pipeline, bindGroups: [bindGroup(device, pipeline, 0, [b.params, b.scores], 'softmax')], workgroups: (rows) => [rows * H, 1, 1] });
      }
      {
        const pipeline = pipes.get('attnOutput', { kv }, { ...heads, CTX: ctx });
        list.push({ label: `layer ${l} attn out`, pipeline, bindGroups: [bindGroup(device, pipeline, 0, [b.params, b.scores, b.attn, undefined, vCache], 'attn out')], workgroups: (rows) => [ceil(H * hd, 64), rows, 1] });
      }
      matmul(list, w.o, b.attn, b.x, true);

      // Feed-forward block: xn = rmsnorm(x); h = silu(W_gate xn) * (W_up xn); x += W_down h
      rmsnorm(list, b.x, b.xn, w.postNorm, `layer ${l} post-attention norm`);
      matmul(list, w.gateUp, b.xn, b.gateUp, false);
      {
        const pipeline = pipes.get('swiglu', {}, { FFN: c.intermediateSize });
        list.push({ label: `layer ${l} swiglu`, pipeline, bindGroups: [bindGroup(device, pipeline, 0, [b.params, b.gateUp, b.ffn], 'swiglu')], workgroups: (rows) => [ceil(c.intermediateSize, 64), rows, 1] });
      }
      matmul(list, w.down, b.ffn, b.x, true);
    }

    // Head: xn = rmsnorm(x); logits = W_head xn for the rows whose logits are wanted
    rmsnorm(this.dispatchesHead, b.x, b.xn, takeVector(t, FINAL_NORM_NAME, d), 'final norm');
    const head = c.tieWordEmbeddings ? embed : takeMatrix(t, LM_HEAD_NAME, c.vocabSize, d);
    matmul(this.dispatchesHead, head, b.xn, b.logits, false, b.paramsHead);
  }

  /**
   * Run `tokens` (appended at `position`) through the model. Returns the logits of the last token
   * ([vocab]), or of every token ([tokens.length * vocab]) with allLogits.
   */
  async forward(tokens: number[], opts: { allLogits?: boolean } = {}): Promise<Float32Array> {
    if (this.gpu.lost) throw this.gpu.lost;
    if (tokens.length === 0) throw new EngineError('forward() needs at least one token.');
    if (this.position + tokens.length > this.contextLength) {
      throw new EngineError(`The context window is full: ${this.position} + ${tokens.length} tokens > ${this.contextLength}. Start a new conversation or shorten the prompt.`);
    }
    const V = this.config.vocabSize;
    const out = new Float32Array(opts.allLogits ? tokens.length * V : V);
    for (let start = 0; start < tokens.length; start += this.prefillChunk) {
      const rows = Math.min(this.prefillChunk, tokens.length - start);
      const last = start + rows === tokens.length;
      const headRow0 = opts.allLogits ? 0 : rows - 1;
      const wantHead = opts.allLogits || last;
      const logits = await this.runChunk(tokens.slice(start, start + rows), wantHead ? headRow0 : -1);
      if (logits) out.set(logits, opts.allLogits ? start * V : 0);
    }
    return out;
  }

  private async runChunk(tokens: number[], headRow0: number): Promise<Float32Array | null> {
    const rows = tokens.length;
    const startPos = this.position;
    const kvLen = startPos + rows;
    const q = this.device.queue;
    q.writeBuffer(this.buf.params, 0, new Uint32Array([rows, startPos, 0, kvLen]));
    q.writeBuffer(this.buf.tokens, 0, new Uint32Array(tokens));
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const run = (list: Dispatch[], r: number) => {
      for (const dsp of list) {
        pass.setPipeline(dsp.pipeline);
        dsp.bindGroups.forEach((g, i) => pass.setBindGroup(i, g));
        const [x, y, z] = dsp.workgroups(r, kvLen);
        pass.dispatchWorkgroups(x, y, z);
      }
    };
    run(this.dispatchesBody, rows);
    const headRows = headRow0 >= 0 ? rows - headRow0 : 0;
    if (headRows > 0) {
      q.writeBuffer(this.buf.paramsHead, 0, new Uint32Array([rows, startPos, headRow0, kvLen]));
      // The final norm runs over all rows; the LM head matmul reads rows headRow0.. only.
      run(this.dispatchesHead.slice(0, 1), rows);
      run(this.dispatchesHead.slice(1), headRows);
    }
    pass.end();
    const bytes = headRows * this.config.vocabSize * 4;
    if (bytes > 0) enc.copyBufferToBuffer(this.buf.logits, 0, this.buf.staging, 0, bytes);
    q.submit([enc.finish()]);
    this.position += rows;
    if (bytes === 0) return null;
    await this.buf.staging.mapAsync(GPUMapMode.READ, 0, bytes);
    if (this.gpu.lost) throw this.gpu.lost;
    const logits = new Float32Array(this.buf.staging.getMappedRange(0, bytes).slice(0));
    this.buf.staging.unmap();
    return logits;
  }

  /** Forget the sequence: the next forward starts at position 0. */
  reset() {
    this.position = 0;
  }

  /** Drop cached tokens after `position` (keeps a shared prompt prefix). */
  rewind(position: number) {
    if (position < 0 || position > this.position) throw new EngineError(`Cannot rewind to ${position} from ${this.position}.`);
    this.position = position;
  }

  destroy() {
    for (const b of this.ownBuffers) b.destroy();
    for (const { buffer } of this.tensors.buffers.values()) buffer.destroy();
    this.ownBuffers.length = 0;
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
