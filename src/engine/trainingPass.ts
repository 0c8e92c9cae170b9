/**
 * One micro-batch of adapter training on WebGPU: the forward of the frozen base with its trainable
 * adapter, the causal-LM loss, and the backward down to every adapter tensor's gradient, recorded
 * once as lists of GPU operations (dispatches and buffer copies) and replayed for each micro-batch.
 * The oracle is referenceTraining.ts trainingLossAndGrads (same conventions, f64).
 *
 * Gradient checkpointing at layer boundaries: the forward keeps only each layer's input x_l
 * [rows, dim] (and the last layer's output); the backward of layer l first recomputes layer l's
 * internals from x_l into one set of per-layer scratch buffers, then runs its backward. Activations
 * therefore cost (layers + 1)·rows·dim plus one layer's internals, not layers × internals.
 *
 * The forward reuses the engine's kernels unchanged (embedding, rmsnorm, matmul over any weight
 * format, ropeKvWrite + attnScores + attnSoftmax + attnOutput over a KV cache whose slot b holds
 * sequence b, swiglu); adapters are computed per module with the same matmul kernel over their f32
 * matrices and landed on their columns of the fused output by addColumns.wgsl:
 *   LoRA:      y[:, m] += s · B (A x)
 *   parallel:  y[:, m] += s · up(act(down x))
 *   series:    gate/up input x_m = x + s · up(act(down x)) (the fused gate|up matmul reads two inputs);
 *              down: y = y0 + s · up(act(down y0)), y0 = W_down h.
 * The backward chains crossEntropy, the transposed matmuls (any base format; q4 needs widths that
 * are multiples of 32), rmsnormBack, swigluBack, attention backward (softmax recomputed), ropeBack
 * and, for each adapter matrix, matmulBackWeight (its gradient, accumulated over micro-batches) and
 * matmulBackInput (the gradient flowing on to its input).
 *
 * Dropout (p > 0, PEFT lora_dropout / LLM-Adapters adapter_dropout) sits on each adapter's input,
 * as in referenceTraining.ts: dropout.wgsl writes x ⊙ m into a scratch buffer that the adapter's
 * first matrix reads (the base linear and a series residual keep x); the backward rewrites the same
 * x ⊙ m for dA and lands the input's gradient through the same mask (dx += m ⊙ dh A). The mask
 * m comes from engine/dropout.ts's hash of (the micro-batch's key, layer·8 + module, entry), so the
 * recomputed forward and the backward regenerate it exactly; no mask is stored.
 *
 * Rows: a micro-batch of B right-padded sequences of T tokens is rows N = B·T, row b·T + t at
 * position t; every buffer is sized for N ≤ maxSeqs·maxLen, pipelines for the context maxLen.
 */
import type { AdapterActivation, AdapterModule } from '../formats/adapterFormat.ts';
import { moduleFeatures } from '../formats/adapterFormat.ts';
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { ACT_CODE } from './adapters.ts';
import { ropeTable } from './buffers.ts';
import { dropoutStream, dropoutThreshold } from './dropout.ts';
import { EngineError, GPUOutOfMemoryError } from './errors.ts';
import { bindKernel, type Dispatch, type KernelBuffers, type KernelName, type KernelVariant, type PipelineCache } from './kernels.ts';
import { attentionStatsBytes, recordAttentionBackward } from './trainingAttention.ts';
import {
  activationBackDispatch,
  crossEntropyDispatch,
  dropoutDispatch,
  dropoutStepUniform,
  dropoutStreamUniform,
  ropeBackDispatch,
  rmsnormBackDispatch,
  swigluBackDispatch,
} from './trainingKernels.ts';
import { recordMatmulBackInput, recordMatmulBackWeight } from './trainingMatmul.ts';
import type { GpuMatrix, ModelWeights } from './weights.ts';

/** The trainable adapter as the pass sees it: per layer, per targeted module, two f32 matrices. */
export interface PassAdapter {
  kind: 'lora' | 'series' | 'parallel';
  /** LoRA r or the bottleneck size */
  r: number;
  activation: AdapterActivation | 'none';
  /** dropout probability on each adapter's input (0 or absent: none) */
  dropout?: number;
  layers: Array<Partial<Record<AdapterModule, PassModule>>>;
}

export interface PassModule {
  /** LoRA A [r, in] or adapter_down [r, in]: its values and its gradient (accumulated) */
  down: GPUBuffer;
  downGrad: GPUBuffer;
  /** LoRA B [out, r] or adapter_up [out, r] */
  up: GPUBuffer;
  upGrad: GPUBuffer;
  scaling: number;
}

/** One GPU operation of a recorded pass. Copies take their byte counts from the call's (rows, seqLen). */
export type PassOp =
  | { kind: 'dispatch'; d: Dispatch }
  | { kind: 'copy'; label: string; copies: (rows: number, seqLen: number) => Array<[GPUBuffer, number, GPUBuffer, number, number]> };

/** Buffer sizes of a pass, by name, in bytes: what trainingPassPlan checks against the device. */
export interface TrainingPassPlan {
  buffers: Array<{ what: string; bytes: number }>;
  total: number;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const UNIFORM = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
const SITE_OF: Record<AdapterModule, 'qkv' | 'o' | 'gateUp' | 'down'> = {
  q_proj: 'qkv',
  k_proj: 'qkv',
  v_proj: 'qkv',
  o_proj: 'o',
  gate_proj: 'gateUp',
  up_proj: 'gateUp',
  down_proj: 'down',
};

/** First output row of a module inside its fused weight (q | k | v, gate | up). */
function rowStartOf(c: LlamaConfig, m: AdapterModule): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return { q_proj: 0, k_proj: q, v_proj: q + kv, o_proj: 0, gate_proj: 0, up_proj: c.intermediateSize, down_proj: 0 }[m];
}

/** [in, out] of a module's adapter matrices (bottleneck: LLM-Adapters' mh/output/parallel widths). */
export function passModuleFeatures(c: LlamaConfig, kind: PassAdapter['kind'], m: AdapterModule): [number, number] {
  const [inF, outF] = moduleFeatures(c, m);
  if (kind !== 'series') return [inF, outF];
  if (m === 'down_proj') return [outF, outF];
  if (m === 'gate_proj' || m === 'up_proj') return [inF, inF];
  throw new EngineError(`Series adapters apply to gate_proj, up_proj and down_proj only (LLM-Adapters), not ${m}.`);
}

/** Widths of the per-layer buffers; the adapter's own buffers are the caller's. */
function shapes(c: LlamaConfig, maxSeqs: number, maxLen: number, r: number, dropoutWidth = 0) {
  const { hiddenSize: dim, numHeads: H, numKvHeads: KV, headDim: hd, intermediateSize: ffn, vocabSize: V, numLayers: L } = c;
  const qkvW = (H + 2 * KV) * hd;
  const rows = maxSeqs * maxLen;
  const f = 4;
  const widest = Math.max(qkvW, 2 * ffn, dim);
  const list: Array<[string, number]> = [
    ['layer inputs (checkpoints)', (L + 1) * rows * dim * f],
    ['logits', rows * V * f],
    ['attention scores', rows * H * maxLen * f],
    ['kv cache (one layer)', 2 * maxSeqs * maxLen * KV * hd * f],
    ['qkv, dqkv', 2 * rows * qkvW * f],
    ['gate|up, dgate|up', 2 * rows * 2 * ffn * f],
    ['ffn hidden, its gradient', 2 * rows * ffn * f],
    ['norms, residuals, gradients (dim wide)', 10 * rows * dim * f],
    ['attention output, its gradient', 2 * rows * H * hd * f],
    ['series inputs', 2 * rows * dim * f],
    ['adapter scratch', rows * widest * f + 15 * rows * r * f],
    ...(dropoutWidth > 0 ? [['dropped adapter input', rows * dropoutWidth * f] as [string, number]] : []),
    ['attention stats', attentionStatsBytes(rows, H)],
    ['token rows', rows * 16 + maxLen * (hd / 2) * 2 * f],
  ];
  return { list, qkvW, rows, widest };
}

/** Every buffer the pass allocates (adapter tensors and the optimizer's state not included). */
export function trainingPassPlan(c: LlamaConfig, maxSeqs: number, maxLen: number, r: number, dropoutWidth = 0): TrainingPassPlan {
  const buffers = shapes(c, maxSeqs, maxLen, r, dropoutWidth).list.map(([what, bytes]) => ({ what, bytes }));
  return { buffers, total: buffers.reduce((s, b) => s + b.bytes, 0) };
}

/** The largest single buffers of the pass, which device limits bound (maxStorageBufferBindingSize). */
export function trainingPassLargestBuffers(c: LlamaConfig, maxSeqs: number, maxLen: number): Array<{ what: string; bytes: number }> {
  const { hiddenSize: dim, numHeads: H, numKvHeads: KV, headDim: hd, intermediateSize: ffn, vocabSize: V } = c;
  const rows = maxSeqs * maxLen;
  return [
    { what: 'the logits', bytes: rows * V * 4 },
    { what: 'the attention scores', bytes: rows * H * maxLen * 4 },
    { what: 'one layer input', bytes: rows * dim * 4 },
    { what: 'the qkv rows', bytes: rows * (H + 2 * KV) * hd * 4 },
    { what: 'the gate|up rows', bytes: rows * 2 * ffn * 4 },
  ];
}

interface Buf {
  buf: GPUBuffer;
  width: number;
}

/**
 * The recorded pass over fixed buffers. run(): encode one micro-batch (rows N = B·T) after its
 * inputs were written with writeBatch; gradients accumulate into the adapter's grad buffers.
 */
export class TrainingPass {
  readonly bytes: number;
  readonly maxRows: number;
  private readonly own: GPUBuffer[] = [];
  private readonly params: GPUBuffer;
  private readonly tokens: GPUBuffer;
  private readonly targets: GPUBuffer;
  private readonly rowInfo: GPUBuffer;
  /** the micro-batch's dropout key, threshold and scale (dropout.wgsl's DropoutStep); null when p = 0 */
  private readonly dropStep: GPUBuffer | null;
  private readonly dropout: number;
  readonly loss: GPUBuffer;
  private readonly ops: PassOp[] = [];

  private constructor(
    private readonly device: GPUDevice,
    private readonly pipes: PipelineCache,
    private readonly c: LlamaConfig,
    private readonly w: ModelWeights,
    private readonly adapter: PassAdapter,
    readonly maxSeqs: number,
    readonly maxLen: number,
    gradScale: number,
    tiled: boolean,
  ) {
    const c_ = c;
    const { hiddenSize: dim, numHeads: H, numKvHeads: KV, headDim: hd, intermediateSize: ffn, vocabSize: V, numLayers: L } = c_;
    const modules: AdapterModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    const used = modules.filter((m) => adapter.layers.some((lay) => lay[m]));
    this.dropout = adapter.dropout ?? 0;
    dropoutThreshold(this.dropout); // refuses p outside [0, 1)
    const dropWidth = this.dropout > 0 ? Math.max(...used.map((m) => passModuleFeatures(c_, adapter.kind, m)[0])) : 0;
    const { qkvW, rows, widest } = shapes(c_, maxSeqs, maxLen, adapter.r, dropWidth);
    this.maxRows = rows;
    const mk = (what: string, bytes: number, usage = STORAGE) => {
      const b = device.createBuffer({ label: what, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
      this.own.push(b);
      return b;
    };
    const f = 4;
    this.params = mk('training params', 16, UNIFORM);
    this.tokens = mk('training tokens', rows * 4);
    this.targets = mk('training targets', rows * 4);
    this.rowInfo = mk('training rowInfo', rows * 8);
    this.loss = mk('training row losses', rows * f);
    const cosSin = mk('training rope table', maxLen * (hd / 2) * 2 * f);
    device.queue.writeBuffer(cosSin, 0, ropeTable(maxLen, hd, c_.ropeTheta));
    const xs = Array.from({ length: L + 1 }, (_, l) => mk(`layer ${l} input`, rows * dim * f));
    const d = (what: string, width: number): Buf => ({ buf: mk(what, rows * width * f), width });
    const xn1 = d('xn1', dim);
    const xn2 = d('xn2', dim);
    const qkv = d('qkv', qkvW);
    const kCache = mk('k cache', maxSeqs * maxLen * KV * hd * f);
    const vCache = mk('v cache', maxSeqs * maxLen * KV * hd * f);
    const kPacked = d('rotated keys', KV * hd);
    const scores = mk('scores', rows * H * maxLen * f);
    const attn = d('attn', H * hd);
    const x2 = d('x2', dim);
    const gu = d('gate|up', 2 * ffn);
    const hid = d('ffn hidden', ffn);
    const xOut = d('recomputed layer output', dim);
    const xf = d('final norm', dim);
    const logits = d('logits', V);
    const gA = d('grad a', dim);
    const gB = d('grad b', dim);
    const dxn = d('d normed', dim);
    const dqkv = d('dqkv', qkvW);
    const dAttn = d('d attn', H * hd);
    const dgu = d('d gate|up', 2 * ffn);
    const dHid = d('d ffn hidden', ffn);
    const stats = mk('attention stats', attentionStatsBytes(rows, H));
    const xinGate = d('series gate input', dim);
    const xinUp = d('series up input', dim);
    const xSplit = mk('series split inputs', 2 * rows * dim * f);
    const y0 = d('series down y0', dim);
    const dy0 = d('series down dy0', dim);
    const dxin = d('series d input', dim);
    const u = d('adapter up output', widest);
    const dz = d('adapter d bottleneck', adapter.r);
    // Dropout: x ⊙ m of the module at hand (forward), then its dA input and its dh A (backward).
    const xDrop = dropWidth > 0 ? mk('dropped adapter input', rows * dropWidth * f) : null;
    this.dropStep = dropWidth > 0 ? mk('dropout step', 16, UNIFORM) : null;
    // Each (layer, module)'s hash stream, written once: the kernel's DropoutStream uniform.
    const streamBufs = new Map<number, GPUBuffer>();
    if (dropWidth > 0)
      adapter.layers.forEach((lay, l) => {
        for (const m of Object.keys(lay) as AdapterModule[]) {
          const stream = dropoutStream(l, m);
          const b = mk(`dropout stream ${stream}`, 16, UNIFORM);
          device.queue.writeBuffer(b, 0, dropoutStreamUniform(stream));
          streamBufs.set(stream, b);
        }
      });
    const streamBuf = (stream: number) => streamBufs.get(stream)!;
    // Per module of the current layer: pre-activation h and activation z (LoRA: z = h).
    const hOf = new Map<AdapterModule, Buf>();
    const zOf = new Map<AdapterModule, Buf>();
    for (const m of used) {
      hOf.set(m, d(`adapter ${m} h`, adapter.r));
      zOf.set(m, adapter.kind === 'lora' ? hOf.get(m)! : d(`adapter ${m} z`, adapter.r));
    }
    this.bytes = this.own.reduce((s, b) => s + b.size, 0);

    // ---- recording helpers ----
    const P = this.params;
    const push = (dd: Dispatch) => this.ops.push({ kind: 'dispatch', d: dd });
    const copy = (label: string, copies: (rows: number, T: number) => Array<[GPUBuffer, number, GPUBuffer, number, number]>) =>
      this.ops.push({ kind: 'copy', label, copies });
    const copyRows = (label: string, src: GPUBuffer, dst: GPUBuffer, width: number) => copy(label, (n) => [[src, 0, dst, 0, n * width * f]]);
    const kernel = <K extends KernelName>(
      label: string,
      k: K,
      variant: KernelVariant,
      constants: Record<string, number>,
      buffers: Omit<KernelBuffers<K>, 'p'>,
      wg: Dispatch['workgroups'],
    ): Dispatch => {
      const pipeline = pipes.get(k, variant, constants);
      return { label, pipeline, bindGroups: bindKernel(device, pipeline, k, { p: P, ...buffers } as KernelBuffers<K>, label), workgroups: wg };
    };
    /** y (+)= act(W x): the engine's matmul kernel (tiled on a GPU; split inputs keep the general one). */
    const matmul = (wm: GpuMatrix, x: GPUBuffer, y: GPUBuffer, o: { accumulate?: boolean; act?: number; splitRow?: number } = {}): Dispatch => {
      const constants: Record<string, number> = { IN: wm.cols, OUT: wm.rows, ACCUMULATE: o.accumulate ? 1 : 0, ACT: o.act ?? 0 };
      const buffers = { p: P, x, y, wData: wm.data, wScale: wm.scale };
      if (tiled && o.splitRow === undefined) {
        const pipeline = pipes.get('matmulTiled', { weight: wm.format }, constants);
        return {
          label: `train tiled matmul ${wm.name}`,
          pipeline,
          bindGroups: bindKernel(device, pipeline, 'matmulTiled', buffers, wm.name),
          workgroups: (n) => [Math.ceil(wm.rows / 64), Math.ceil(n / 64), 1],
        };
      }
      if (o.splitRow !== undefined) constants.SPLIT_ROW = o.splitRow;
      const pipeline = pipes.get('matmul', { weight: wm.format }, constants);
      return {
        label: `train matmul ${wm.name}`,
        pipeline,
        bindGroups: bindKernel(device, pipeline, 'matmul', buffers, wm.name),
        workgroups: (n) => [Math.ceil(wm.rows / 64), Math.ceil(n / 8), 1],
      };
    };
    const addCols = (label: string, src: Buf, srcCol: number, dst: Buf, dstCol: number, cols: number, scale = 1, accumulate = true) =>
      kernel(
        label,
        'addColumns',
        {},
        { COLS: cols, SRC_W: src.width, SRC_COL: srcCol, DST_W: dst.width, DST_COL: dstCol, SCALE: scale, ACCUMULATE: accumulate ? 1 : 0 },
        { src: src.buf, dst: dst.buf },
        (n) => [Math.ceil(cols / 64), n, 1],
      );
    const rmsnorm = (label: string, x: GPUBuffer, y: GPUBuffer, wv: GPUBuffer) =>
      kernel(label, 'rmsnorm', {}, { DIM: dim, EPS: c_.rmsNormEps }, { x, y, w: wv }, (n) => [n, 1, 1]);
    const f32m = (name: string, data: GPUBuffer, r: number, cols: number): GpuMatrix => ({ name, format: 'f32', rows: r, cols, data });
    const parts = { device, pipes, params: P };
    const act = ACT_CODE[adapter.activation];
    /** dst (+)= src ⊙ m over [rows, width], m the mask of (layer l, module m) for this micro-batch. */
    const dropoutOp = (label: string, l: number, m: AdapterModule, width: number, src: GPUBuffer, dst: GPUBuffer, accumulate: boolean) =>
      dropoutDispatch(parts, { label, width, accumulate, step: this.dropStep!, stream: streamBuf(dropoutStream(l, m)), src, dst });

    /** Forward of module m's adapter from input x, landing s·up(...) on columns col.. of out. */
    const adapterForward = (l: number, m: AdapterModule, x: Buf, out: Buf, col: number) => {
      const mod = adapter.layers[l][m]!;
      const [inF, outF] = passModuleFeatures(c_, adapter.kind, m);
      const A = f32m(`layer ${l} ${m} down`, mod.down, adapter.r, inF);
      const Bm = f32m(`layer ${l} ${m} up`, mod.up, outF, adapter.r);
      let xa = x.buf; // the adapter's input: x, or x ⊙ m under dropout
      if (xDrop) {
        push(dropoutOp(`layer ${l} ${m} dropout`, l, m, inF, x.buf, xDrop, false));
        xa = xDrop;
      }
      push(matmul(A, xa, hOf.get(m)!.buf)); // h [N, r] = A x
      if (adapter.kind !== 'lora') push(matmul(A, xa, zOf.get(m)!.buf, { act })); // z = act(h)
      push(matmul(Bm, zOf.get(m)!.buf, u.buf)); // u [N, out] = B z
      push(addCols(`layer ${l} ${m} adapter add`, { buf: u.buf, width: outF }, 0, out, col, outF, mod.scaling)); // out[:, col..] += s u
    };
    /** Backward of module m's adapter given dOut (columns col.. of dy); grads accumulate; dx += the input's gradient. */
    const adapterBack = (l: number, m: AdapterModule, dy: Buf, col: number, x: Buf, dx: GPUBuffer) => {
      const mod = adapter.layers[l][m]!;
      const [inF, outF] = passModuleFeatures(c_, adapter.kind, m);
      const r = adapter.r;
      const A = f32m(`layer ${l} ${m} down`, mod.down, r, inF);
      const Bm = f32m(`layer ${l} ${m} up`, mod.up, outF, r);
      const z = zOf.get(m)!;
      const lab = `layer ${l} ${m}`;
      // out = s · B z: dB += s · dyᵀ z; dz = s · dy B
      push(
        recordMatmulBackWeight(device, pipes, {
          dw: mod.upGrad,
          rows: outF,
          cols: r,
          dy: dy.buf,
          dyStride: dy.width,
          dyCol: col,
          x: z.buf,
          params: P,
          scale: mod.scaling,
          accumulate: true,
          label: `${lab} d up`,
        }),
      );
      push(
        recordMatmulBackInput(device, pipes, {
          w: Bm,
          dy: dy.buf,
          dyStride: dy.width,
          dyCol: col,
          dx: dz.buf,
          params: P,
          scale: mod.scaling,
          label: `${lab} dz`,
        }),
      );
      if (adapter.kind !== 'lora')
        push(
          activationBackDispatch(parts, {
            label: `${lab} act back`,
            activation: adapter.activation as AdapterActivation,
            width: r,
            h: hOf.get(m)!.buf,
            g: dz.buf,
          }),
        );
      // h = A xa (xa = x, or x ⊙ m rewritten from the hash): dA += dhᵀ xa; dx += dh A (⊙ m)
      if (xDrop) push(dropoutOp(`${lab} dropout again`, l, m, inF, x.buf, xDrop, false));
      push(
        recordMatmulBackWeight(device, pipes, {
          dw: mod.downGrad,
          rows: r,
          cols: inF,
          dy: dz.buf,
          x: xDrop ?? x.buf,
          params: P,
          accumulate: true,
          label: `${lab} d down`,
        }),
      );
      if (xDrop) {
        // xDrop is free once dA has read it: it takes dh A, which lands on dx through the mask.
        push(recordMatmulBackInput(device, pipes, { w: A, dy: dz.buf, dx: xDrop, params: P, label: `${lab} d dropped input` }));
        push(dropoutOp(`${lab} dropout back`, l, m, inF, xDrop, dx, true));
      } else {
        push(recordMatmulBackInput(device, pipes, { w: A, dy: dz.buf, dx, params: P, accumulate: true, label: `${lab} dx` }));
      }
    };

    const heads = { HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV, CTX: maxLen };
    const seriesGU = (l: number) => adapter.kind === 'series' && !!(adapter.layers[l].gate_proj || adapter.layers[l].up_proj);
    const seriesDown = (l: number) => adapter.kind === 'series' && !!adapter.layers[l].down_proj;
    const addTargets = (l: number, site: string) =>
      adapter.kind === 'series' ? [] : (Object.keys(adapter.layers[l]) as AdapterModule[]).filter((m) => SITE_OF[m] === site);

    /** Layer l's forward from x_l into xOutBuf, leaving its internals in the scratch buffers. */
    const layerForward = (l: number, xIn: GPUBuffer, xOutBuf: GPUBuffer) => {
      const lw = w.layers[l];
      const at = `train layer ${l}`;
      push(rmsnorm(`${at} input norm`, xIn, xn1.buf, lw.inputNorm)); // xn1 [N, dim]
      push(matmul(lw.qkv, xn1.buf, qkv.buf)); // qkv [N, (H + 2KV) hd]
      for (const m of addTargets(l, 'qkv')) adapterForward(l, m, xn1, qkv, rowStartOf(c_, m));
      push(
        kernel(`${at} rope + kv write`, 'ropeKvWrite', { kv: 'f32' }, heads, { qkv: qkv.buf, cosSin, rowInfo: this.rowInfo, kCache, vCache }, (n) => [
          Math.ceil(((H + KV) * hd) / 2 / 64),
          n,
          1,
        ]),
      ); // q rotated in qkv; cache[b, t] = rope(k), v
      push(
        kernel(`${at} scores`, 'attnScores', { kv: 'f32' }, heads, { qkv: qkv.buf, scores, kCache, rowInfo: this.rowInfo }, (n, T) => [
          Math.ceil(T / 64),
          n * H,
          1,
        ]),
      );
      push(kernel(`${at} softmax`, 'attnSoftmax', {}, { N_HEADS: H, CTX: maxLen }, { scores, rowInfo: this.rowInfo }, (n) => [n * H, 1, 1]));
      push(
        kernel(`${at} attn out`, 'attnOutput', { kv: 'f32' }, heads, { scores, o: attn.buf, vCache, rowInfo: this.rowInfo }, (n) => [
          Math.ceil((H * hd) / 64),
          n,
          1,
        ]),
      );
      // The attention backward reads rotated keys beside q: sequence b's keys sit at cache rows b·maxLen.., packed to rows b·T..
      const kvW = KV * hd * f;
      copy(`${at} pack rotated keys`, (n, T) => Array.from({ length: n / T }, (_, b) => [kCache, b * maxLen * kvW, kPacked.buf, b * T * kvW, T * kvW]));
      push(addCols(`${at} rotated keys into qkv`, kPacked, 0, qkv, H * hd, KV * hd, 1, false));
      copyRows(`${at} residual`, xIn, x2.buf, dim);
      push(matmul(lw.o, attn.buf, x2.buf, { accumulate: true })); // x2 = x + W_o attn
      for (const m of addTargets(l, 'o')) adapterForward(l, m, attn, x2, 0);
      push(rmsnorm(`${at} post-attention norm`, x2.buf, xn2.buf, lw.postNorm)); // xn2
      if (seriesGU(l)) {
        for (const [m, xin] of [
          ['gate_proj', xinGate],
          ['up_proj', xinUp],
        ] as const) {
          copyRows(`${at} ${m} series input`, xn2.buf, xin.buf, dim);
          if (adapter.layers[l][m]) adapterForward(l, m, xn2, xin, 0); // x_m = xn2 + s up(act(down xn2))
        }
        copy(`${at} split inputs`, (n) => [
          [xinGate.buf, 0, xSplit, 0, n * dim * f],
          [xinUp.buf, 0, xSplit, n * dim * f, n * dim * f],
        ]);
        push(matmul(lw.gateUp, xSplit, gu.buf, { splitRow: ffn })); // gate rows read x_gate, up rows x_up
      } else {
        push(matmul(lw.gateUp, xn2.buf, gu.buf)); // gu [N, 2 ffn]
        for (const m of addTargets(l, 'gateUp')) adapterForward(l, m, xn2, gu, rowStartOf(c_, m));
      }
      push(kernel(`${at} swiglu`, 'swiglu', {}, { FFN: ffn }, { gu: gu.buf, h: hid.buf }, (n) => [Math.ceil(ffn / 64), n, 1])); // hid
      copyRows(`${at} residual 2`, x2.buf, xOutBuf, dim);
      const out: Buf = { buf: xOutBuf, width: dim };
      if (seriesDown(l)) {
        push(matmul(lw.down, hid.buf, y0.buf)); // y0 = W_down hid
        push(addCols(`${at} down output`, y0, 0, out, 0, dim)); // x3 = x2 + y0
        adapterForward(l, 'down_proj', y0, out, 0); // x3 += s up(act(down y0))
      } else {
        push(matmul(lw.down, hid.buf, xOutBuf, { accumulate: true })); // x3 = x2 + W_down hid
        for (const m of addTargets(l, 'down')) adapterForward(l, m, hid, out, 0);
      }
    };

    /** Layer l's backward: gA holds dLoss/dx_{l+1}; leaves dLoss/dx_l in gB. */
    const layerBackward = (l: number) => {
      const lw = w.layers[l];
      const at = `train layer ${l} back`;
      // ---- feed-forward ----
      if (seriesDown(l)) {
        copyRows(`${at} dy0`, gA.buf, dy0.buf, dim);
        adapterBack(l, 'down_proj', gA, 0, y0, dy0.buf); // dy0 = dx3 + adapter's input gradient
        push(recordMatmulBackInput(device, pipes, { w: lw.down, dy: dy0.buf, dx: dHid.buf, params: P, label: `${at} down dX` }));
      } else {
        push(recordMatmulBackInput(device, pipes, { w: lw.down, dy: gA.buf, dx: dHid.buf, params: P, label: `${at} down dX` }));
        for (const m of addTargets(l, 'down')) adapterBack(l, m, gA, 0, hid, dHid.buf);
      }
      push(swigluBackDispatch(parts, { label: `${at} swiglu`, ffn, gu: gu.buf, dh: dHid.buf, dgu: dgu.buf }));
      if (seriesGU(l)) {
        let first = true;
        for (const [m, seg] of [
          ['gate_proj', 0],
          ['up_proj', ffn],
        ] as const) {
          const slice = { w: lw.gateUp, rowStart: seg, rows: ffn, dy: dgu.buf, dyStride: 2 * ffn, dyCol: seg, params: P };
          if (adapter.layers[l][m]) {
            push(recordMatmulBackInput(device, pipes, { ...slice, dx: dxin.buf, label: `${at} ${m} dX` })); // d x_m
            push(addCols(`${at} ${m} input residual`, dxin, 0, dxn, 0, dim, 1, !first));
            adapterBack(l, m, dxin, 0, xn2, dxn.buf);
          } else {
            push(recordMatmulBackInput(device, pipes, { ...slice, dx: dxn.buf, accumulate: !first, label: `${at} ${m} dX` }));
          }
          first = false;
        }
      } else {
        push(recordMatmulBackInput(device, pipes, { w: lw.gateUp, dy: dgu.buf, dx: dxn.buf, params: P, label: `${at} gate|up dX` }));
        for (const m of addTargets(l, 'gateUp')) adapterBack(l, m, dgu, rowStartOf(c_, m), xn2, dxn.buf);
      }
      copyRows(`${at} residual`, gA.buf, gB.buf, dim);
      push(
        rmsnormBackDispatch(parts, { label: `${at} post norm`, dim, eps: c_.rmsNormEps, x: x2.buf, w: lw.postNorm, dy: dxn.buf, dx: gB.buf, accumulate: true }),
      );
      // ---- attention ----
      push(recordMatmulBackInput(device, pipes, { w: lw.o, dy: gB.buf, dx: dAttn.buf, params: P, label: `${at} o dX` }));
      for (const m of addTargets(l, 'o')) adapterBack(l, m, gB, 0, attn, dAttn.buf);
      for (const dd of recordAttentionBackward(device, pipes, {
        heads: { numHeads: H, numKvHeads: KV, headDim: hd },
        qkv: qkv.buf,
        dOut: dAttn.buf,
        dqkv: dqkv.buf,
        stats,
        params: P,
        label: `${at} attention`,
      }))
        push(dd);
      push(ropeBackDispatch(parts, { label: `${at} rope`, headDim: hd, heads: H + KV, rowWidth: qkvW, grad: dqkv.buf, cosSin, rowInfo: this.rowInfo }));
      push(recordMatmulBackInput(device, pipes, { w: lw.qkv, dy: dqkv.buf, dx: dxn.buf, params: P, label: `${at} qkv dX` }));
      for (const m of addTargets(l, 'qkv')) adapterBack(l, m, dqkv, rowStartOf(c_, m), xn1, dxn.buf);
      // gB = dx2 (already there) + d input norm: dLoss/dx_l
      push(
        rmsnormBackDispatch(parts, {
          label: `${at} input norm`,
          dim,
          eps: c_.rmsNormEps,
          x: xs[l],
          w: lw.inputNorm,
          dy: dxn.buf,
          dx: gB.buf,
          accumulate: true,
        }),
      );
      copyRows(`${at} swap`, gB.buf, gA.buf, dim);
    };

    // ---- the whole micro-batch ----
    const e = w.embed;
    const chunk = e.format.startsWith('q4') ? 8 : 4;
    push(
      kernel('train embedding', 'embedding', { weight: e.format }, { IN: e.cols }, { tokens: this.tokens, x: xs[0], wData: e.data, wScale: e.scale }, (n) => [
        Math.ceil(Math.ceil(e.cols / chunk) / 64),
        n,
        1,
      ]),
    );
    for (let l = 0; l < L; l++) layerForward(l, xs[l], xs[l + 1]);
    push(rmsnorm('train final norm', xs[L], xf.buf, w.finalNorm));
    push(matmul(w.lmHead, xf.buf, logits.buf)); // logits [N, V]
    push(crossEntropyDispatch(parts, { vocab: V, logits: logits.buf, targets: this.targets, loss: this.loss, gradScale })); // logits <- dLoss/dlogits / G
    push(recordMatmulBackInput(device, pipes, { w: w.lmHead, dy: logits.buf, dx: dxn.buf, params: P, label: 'train lm head dX' }));
    push(rmsnormBackDispatch(parts, { label: 'train final norm back', dim, eps: c_.rmsNormEps, x: xs[L], w: w.finalNorm, dy: dxn.buf, dx: gA.buf }));
    for (let l = L - 1; l >= 0; l--) {
      layerForward(l, xs[l], xOut.buf); // recompute (gradient checkpointing)
      layerBackward(l);
    }
  }

  /**
   * Record the pass. Refuses up front what the kernels cannot do (q4 widths not a multiple of 32,
   * a head dimension over 256) with the engine's own messages, and frees what it made on failure.
   */
  static async create(
    device: GPUDevice,
    pipes: PipelineCache,
    c: LlamaConfig,
    w: ModelWeights,
    adapter: PassAdapter,
    o: { maxSeqs: number; maxLen: number; gradScale: number; tiled: boolean },
  ): Promise<TrainingPass> {
    if (o.maxLen > c.contextWindowSize) throw new EngineError(`Training sequences of ${o.maxLen} tokens exceed the context window of ${c.contextWindowSize}.`);
    device.pushErrorScope('out-of-memory');
    let pass: TrainingPass | null = null;
    let error: unknown = null;
    try {
      pass = new TrainingPass(device, pipes, c, w, adapter, o.maxSeqs, o.maxLen, o.gradScale, o.tiled);
    } catch (e) {
      error = e;
    }
    const oom = await device.popErrorScope();
    if (error || oom) {
      pass?.destroy();
      if (error) throw error;
      throw new GPUOutOfMemoryError('the training pass buffers', pass?.bytes ?? 0, oom!.message);
    }
    return pass!;
  }

  /**
   * Writes one micro-batch's inputs: token ids, shifted targets, row positions, the Params uniform,
   * and under dropout the micro-batch's hash key (referenceTrainer.ts dropoutKey(seed, step, micro)).
   */
  writeBatch(inputIds: number[][], targets: Int32Array, dropoutKey = 0): { rows: number; seqLen: number } {
    const B = inputIds.length;
    const T = inputIds[0].length;
    const n = B * T;
    if (B > this.maxSeqs || T > this.maxLen)
      throw new EngineError(`A micro-batch of ${B} × ${T} tokens is larger than the ${this.maxSeqs} × ${this.maxLen} the pass was made for.`);
    const ids = new Uint32Array(n);
    const info = new Uint32Array(n * 2);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        ids[b * T + t] = inputIds[b][t];
        info[(b * T + t) * 2] = b;
        info[(b * T + t) * 2 + 1] = t;
      }
    }
    const q = this.device.queue;
    q.writeBuffer(this.tokens, 0, ids);
    q.writeBuffer(this.targets, 0, targets as Int32Array<ArrayBuffer>);
    q.writeBuffer(this.rowInfo, 0, info);
    q.writeBuffer(this.params, 0, new Uint32Array([n, 0, 0, T]));
    if (this.dropStep) q.writeBuffer(this.dropStep, 0, dropoutStepUniform(this.dropout, dropoutKey));
    return { rows: n, seqLen: T };
  }

  /** Encodes the whole micro-batch (consecutive dispatches share a compute pass; copies sit between). */
  encode(enc: GPUCommandEncoder, rows: number, seqLen: number): void {
    let pass: GPUComputePassEncoder | null = null;
    for (const op of this.ops) {
      if (op.kind === 'dispatch') {
        pass ??= enc.beginComputePass({ label: 'training pass' });
        const d = op.d;
        pass.setPipeline(d.pipeline);
        d.bindGroups.forEach((g, i) => pass!.setBindGroup(i, g));
        pass.dispatchWorkgroups(...d.workgroups(rows, seqLen));
      } else {
        pass?.end();
        pass = null;
        for (const [src, so, dst, doff, size] of op.copies(rows, seqLen)) if (size > 0) enc.copyBufferToBuffer(src, so, dst, doff, size);
      }
    }
    pass?.end();
  }

  destroy(): void {
    for (const b of this.own.splice(0)) b.destroy();
  }
}
