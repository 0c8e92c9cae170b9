/**
 * The Llama forward pass on WebGPU, recorded as dispatch lists (LlamaModel runs them). `recordForward`
 * reads top to bottom like llama2.c's run.c `forward()` and our oracle's `step()` (reference.ts):
 * embed, then per layer attention and a SwiGLU feed-forward with residuals, then the final norm,
 * the LM head and the greedy argmax. One recorded pass serves every call: a call's rows are new
 * tokens, each at its own (slot, position) (prefill: many of one sequence; batched decode: one of
 * each), so shapes below say `rows`; the kernels read how many from the Params uniform.
 *
 * Conventions are the oracle's (Hugging Face LlamaForCausalLM, transformers/models/llama/
 * modeling_llama.py): RMSNorm x * w / sqrt(mean(x²) + eps); rotate-half RoPE with an f32 angle
 * table (buffers.ts ropeTable); grouped-query attention, head h reading kv head h / (H / KV),
 * scale 1/sqrt(hd); MLP down(silu(gate x) * up x). MLC fuses q|k|v and gate|up into one matrix
 * each. Adapters (adapters.ts): 'add' sites (LoRA, parallel) run z = act(D x) first and the base
 * matmul adds scale U z as it writes; series sites rewrite gate/up's inputs or down's output.
 */
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { EngineError } from './errors.ts';
import { bindKernel, type Dispatch, type KernelBuffers, type KernelName, type KernelVariant, type PipelineCache } from './kernels.ts';
import type { AdapterSite, GpuAdapter } from './adapters.ts';
import type { AdapterScratch, ModelBuffers } from './buffers.ts';
import type { GpuMatrix, ModelWeights } from './weights.ts';

/** Which kernel variants suit the device (chosen once at load: see LlamaModel.load). */
export interface KernelChoice {
  q4MatVec: boolean; // q4 decode: the wide-load workgroup kernel instead of the general matmul
  tiled: boolean; // prefill: the workgroup-memory tiled matmul
  subgroups: boolean; // reductions with subgroup operations
}

/** One forward call's dispatches, in order. */
export interface RecordedForward {
  body: Dispatch[]; // embedding and every layer, over all rows of the call
  lmHead: Dispatch; // the final norm and the LM head over the rows whose logits are wanted: headRow0.. (paramsHead)
  argmax: Dispatch; // greedy only: the LM head rows' argmax into tokens, the next step's input
}

/** What recording needs: the device's pipelines and the model's weights and buffers. */
export interface ForwardParts {
  device: GPUDevice;
  pipes: PipelineCache;
  config: LlamaConfig;
  contextLength: number;
  kernels: KernelChoice;
  weights: ModelWeights;
  buffers: ModelBuffers;
  /** Adapter scratch, required with an adapter. */
  scratch: AdapterScratch | null;
}

/** The forward pass with an adapter or none (null): every dispatch it runs, top to bottom. */
export function recordForward(parts: ForwardParts, adapter: GpuAdapter | null): RecordedForward {
  const { numHeads: H, numKvHeads: KV, headDim: hd, intermediateSize: ffn, vocabSize } = parts.config;
  const rec = new DispatchRecorder(parts, adapter);
  const w = parts.weights;
  const b = parts.buffers;
  const s = adapter ? rec.scratch() : null;
  const kv = { kv: b.kvFormat };
  const heads = { HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV, CTX: parts.contextLength };
  const ceil = (n: number, m: number) => Math.ceil(n / m);
  const body: Dispatch[] = [];

  // Embedding: x[t] = E[tokens[t]]
  body.push(rec.embedding(w.embed, b.tokens, b.x)); // x [rows, dim]

  for (let l = 0; l < w.layers.length; l++) {
    const lw = w.layers[l];
    const { k: kCache, v: vCache } = b.kv[l]; // [slots, ctx, KV hd] each
    const site = adapter?.layers[l] ?? {};
    const at = `layer ${l}`;

    // ---- attention block: x += W_o attention(rope(W_qkv rmsnorm(x))) ----
    // RoPE and the KV write as a pass of its own: one thread per q pair, one per adjacent k/v pair,
    // (H + KV) hd/2 threads per row.
    const ropeKvWrite = () =>
      rec.kernel(`${at} rope + kv write`, 'ropeKvWrite', kv, heads, { qkv: b.qkv, cosSin: b.cosSin, rowInfo: b.rowInfo, kCache, vCache }, (rows) => [
        ceil((H + KV) * (hd / 2), 64),
        rows,
        1,
      ]);
    if (site.qkv) {
      // An adapter's down-projection reads the normed x, so here the norm runs on its own.
      body.push(rec.rmsnorm(`${at} input norm`, b.x, b.xn, lw.inputNorm)); // xn [rows, dim]
      body.push(rec.adapterDown(`${at} adapter qkv down`, site.qkv, b.xn)); // z [rows, 3 r] = act(D xn)
      body.push(rec.matmul(lw.qkv, b.xn, b.qkv, { adapter: site.qkv })); // qkv [rows, (H + 2 KV) hd] (+ scale U z)
    } else if (hd % 4 === 0) {
      // RoPE and the KV write folded into the qkv matmul's epilogue (qkvEpilogue.wgsl), which
      // needs quads of a head (hd % 4 == 0). Prefill past its decode kernel's rows runs
      // ropeKvWrite after the matmul instead (normMatmul's prefill steps).
      body.push(rec.normMatmul(`${at} input norm`, lw.qkv, lw.inputNorm, b.x, b.qkv, { qkv: { kCache, vCache, ropeKvWrite: ropeKvWrite() } })); // q = rope(q) in qkv; cache[slot, pos] = rope(k), v
    } else {
      body.push(rec.normMatmul(`${at} input norm`, lw.qkv, lw.inputNorm, b.x, b.qkv)); // qkv [rows, (H + 2 KV) hd] = W_qkv rmsnorm(x)
    }
    if (site.qkv || hd % 4 !== 0) body.push(ropeKvWrite()); // q = rope(q) in qkv; cache[slot, pos] = rope(k), v
    body.push(
      rec.kernel(`${at} attention`, 'attention', kv, heads, { qkv: b.qkv, scores: b.scores, kCache, vCache, rowInfo: b.rowInfo, o: b.attn }, (rows) => [
        rows * H,
        1,
        1,
      ]),
    ); // attn [rows, H hd] = softmax(q k^T / sqrt(hd), pos <= row's) v, one workgroup per (row, head)
    if (site.o) body.push(rec.adapterDown(`${at} adapter o down`, site.o, b.attn)); // z [rows, r] = act(D attn)
    body.push(rec.matmul(lw.o, b.attn, b.x, { accumulate: true, adapter: site.o })); // x [rows, dim] += W_o attn (+ scale U z)

    // ---- feed-forward block: x += W_down (silu(W_gate xn) * W_up xn), xn = rmsnorm(x) ----
    const gu = site.gateUp;
    if (gu) {
      // As above: the adapter reads xn, and its gate/up (+ scale U z) is summed before the SwiGLU.
      body.push(rec.rmsnorm(`${at} post-attention norm`, b.x, b.xn, lw.postNorm)); // xn [rows, dim]
      body.push(rec.adapterDown(`${at} adapter gate/up down`, gu, b.xn)); // z [rows, 2 r] = act(D xn)
      if (gu.mode === 'seriesInput') {
        body.push(rec.adapterUp(`${at} adapter gate/up inputs`, gu, s!.xSplit, b.xn)); // xSplit [2, rows, dim] = xn + scale U z, per half
        body.push(rec.matmul(lw.gateUp, s!.xSplit, b.gateUp, { splitRow: ffn })); // gateUp [rows, 2 ffn]: gate rows read half 0, up rows half 1
      } else {
        body.push(rec.matmul(lw.gateUp, b.xn, b.gateUp, { adapter: gu })); // gateUp [rows, 2 ffn] = [W_gate xn | W_up xn] + scale U z
      }
      body.push(rec.swiglu(`${at} swiglu`)); // ffn [rows, ffn] = silu(gate) * up
    } else {
      body.push(rec.normMatmul(`${at} post-attention norm`, lw.gateUp, lw.postNorm, b.x, b.ffn, { swiglu: true })); // ffn [rows, ffn] = silu(W_gate xn) * W_up xn
    }
    const dn = site.down;
    if (dn?.mode === 'seriesOutput') {
      body.push(rec.matmul(lw.down, b.ffn, s!.tmp)); // tmp [rows, dim] = W_down ffn
      body.push(rec.adapterDown(`${at} adapter down down`, dn, s!.tmp)); // z [rows, r] = act(D tmp)
      body.push(rec.adapterUp(`${at} adapter down up`, dn, b.x, s!.tmp)); // x [rows, dim] += tmp + scale U z
    } else {
      if (dn) body.push(rec.adapterDown(`${at} adapter down down`, dn, b.ffn)); // z [rows, r] = act(D ffn)
      body.push(rec.matmul(lw.down, b.ffn, b.x, { accumulate: true, adapter: dn })); // x [rows, dim] += W_down ffn (+ scale U z)
    }
  }

  // Final norm and LM head of rows headRow0.. only (paramsHead), then their argmax.
  const lmHead = rec.normMatmul('final norm', w.lmHead, w.finalNorm, b.x, b.logits, { params: b.paramsHead }); // logits [rows - headRow0, vocab] = W_head rmsnorm(x)
  const argmax = rec.kernel('argmax', 'argmax', {}, { VOCAB: vocabSize }, { logits: b.logits, tokens: b.tokens }, (rows) => [rows, 1, 1], b.paramsHead); // tokens [rows - headRow0] = argmax logits
  return { body, lmHead, argmax };
}

/** A kernel's buffers less its Params uniform `p`, which the recorder binds. */
type CallBuffers<K extends KernelName> = Omit<KernelBuffers<K>, 'p'>;

/**
 * Turns one step of the forward pass into a Dispatch: the pipeline for the kernel and variant,
 * bind groups from named buffers (kernels.ts BINDINGS), and the workgroup count per call.
 */
class DispatchRecorder {
  private readonly device: GPUDevice;

  constructor(
    private readonly parts: ForwardParts,
    private readonly adapter: GpuAdapter | null,
  ) {
    this.device = parts.device;
  }

  scratch(): AdapterScratch {
    if (!this.parts.scratch) throw new EngineError(`Adapter ${this.adapter?.name} needs its scratch buffers allocated first.`);
    return this.parts.scratch;
  }

  /** A kernel over the call's rows with its Params uniform `p` bound to `params`. */
  kernel<K extends KernelName>(
    label: string,
    kernel: K,
    variant: KernelVariant,
    constants: Record<string, number>,
    buffers: CallBuffers<K>,
    workgroups: Dispatch['workgroups'],
    params = this.parts.buffers.params,
  ): Dispatch {
    const pipeline = this.parts.pipes.get(kernel, variant, constants);
    return { label, pipeline, bindGroups: bindKernel(this.device, pipeline, kernel, { p: params, ...buffers } as KernelBuffers<K>, label), workgroups };
  }

  /** x[t] = E[tokens[t]]: one thread per (row, chunk of 4 values; 8 for q4). */
  embedding(e: GpuMatrix, tokens: GPUBuffer, x: GPUBuffer): Dispatch {
    const pipeline = this.parts.pipes.get('embedding', { weight: e.format }, { IN: e.cols });
    const chunk = e.format.startsWith('q4') ? 8 : 4;
    const buffers = { p: this.parts.buffers.params, tokens, x, wData: e.data, wScale: e.scale };
    return {
      label: 'embedding',
      pipeline,
      bindGroups: bindKernel(this.device, pipeline, 'embedding', buffers, 'embedding'),
      workgroups: (rows) => [Math.ceil(Math.ceil(e.cols / chunk) / 64), rows, 1],
    };
  }

  rmsnorm(label: string, x: GPUBuffer, y: GPUBuffer, w: GPUBuffer): Dispatch {
    const c = this.parts.config;
    return this.kernel(label, 'rmsnorm', {}, { DIM: c.hiddenSize, EPS: c.rmsNormEps }, { x, y, w }, (rows) => [rows, 1, 1]);
  }

  /** h = silu(gate) * up over the fused gate/up rows. */
  swiglu(label: string): Dispatch {
    const b = this.parts.buffers;
    const ffn = this.parts.config.intermediateSize;
    return this.kernel(label, 'swiglu', {}, { FFN: ffn }, { gu: b.gateUp, h: b.ffn }, (rows) => [Math.ceil(ffn / 64), rows, 1]);
  }

  /**
   * y = W rmsnorm(x) in one dispatch (normMatmul.wgsl; normQ4MatVec.wgsl for q4 decode where the
   * wide kernels are chosen), the norm weight `g`; with `swiglu` W is the fused [gate | up] and y
   * = silu(gate) * up; with `qkv` W is the fused [q | k | v] and the epilogue applies RoPE to q in
   * y and writes rope(k) and v into the layer's caches (qkvEpilogue.wgsl; its prefill steps end
   * with the ropeKvWrite pass given). `params` other than the body's (the LM head's) read rows from its
   * xRowOffset. Where prefill takes the tiled kernels (GPUs), calls over more than 8 rows run the
   * unfused steps instead: rmsnorm into xn, the matmul, then swiglu.
   */
  normMatmul(
    label: string,
    w: GpuMatrix,
    g: GPUBuffer,
    x: GPUBuffer,
    y: GPUBuffer,
    o: { swiglu?: boolean; params?: GPUBuffer; qkv?: { kCache: GPUBuffer; vCache: GPUBuffer; ropeKvWrite: Dispatch } } = {},
  ): Dispatch {
    const c = this.parts.config;
    const b = this.parts.buffers;
    const choice = this.parts.kernels;
    // With qkv, each thread (workgroup) computes a RoPE quad: four rows (qkvEpilogue.wgsl).
    const nOut = o.swiglu ? w.rows / 2 : o.qkv ? w.rows / 4 : w.rows;
    const constants: Record<string, number> = { IN: w.cols, OUT: w.rows, EPS: c.rmsNormEps, SWIGLU: o.swiglu ? 1 : 0 };
    if (o.qkv) Object.assign(constants, { HEAD_DIM: c.headDim, N_HEADS: c.numHeads, N_KV_HEADS: c.numKvHeads, CTX: this.parts.contextLength });
    const buffers = {
      p: o.params ?? b.params,
      x,
      y,
      g,
      wData: w.data,
      wScale: w.scale,
      ...(o.qkv ? { cosSin: b.cosSin, rowInfo: b.rowInfo, kCache: o.qkv.kCache, vCache: o.qkv.vCache } : {}),
    };
    const fused = (kernel: 'normMatmul' | 'normQ4MatVec', workgroups: Dispatch['workgroups']): Dispatch => {
      const variant = { weight: w.format, subgroups: kernel === 'normQ4MatVec' && choice.subgroups, ...(o.qkv ? { kv: b.kvFormat } : {}) };
      const pipeline = this.parts.pipes.get(kernel, variant, constants);
      return {
        label: `${label} + ${o.swiglu ? 'swiglu ' : ''}matmul ${w.name}${o.qkv ? ' + rope + kv write' : ''}`,
        pipeline,
        bindGroups: bindKernel(this.device, pipeline, kernel, buffers, label),
        workgroups,
      };
    };
    const q4 = (w.format === 'q4f16' || w.format === 'q4f32') && choice.q4MatVec && w.cols % 4 === 0;
    const x65535 = Math.min(nOut, 65535);
    const d = q4
      ? fused('normQ4MatVec', () => [x65535, Math.ceil(nOut / x65535), 1])
      : fused('normMatmul', (rows) => [Math.ceil(nOut / 64), Math.ceil(rows / 8), 1]);
    if (!q4 && !choice.tiled) return d; // the per-row kernels (CPU-emulated adapters): fused at every row count
    // The unfused steps for prefill. The norm covers every row the buffers hold (its workgroups
    // past the call's rows return at once): the LM head's rows start at its xRowOffset.
    const capacity = b.x.size / (4 * c.hiddenSize);
    const norm = { ...this.rmsnorm(`${label} (prefill)`, x, b.xn, g), workgroups: (): [number, number, number] => [capacity, 1, 1] };
    const mm = this.matmul(w, b.xn, o.swiglu ? b.gateUp : y, { params: o.params });
    const after = o.swiglu ? [this.swiglu(`${label} swiglu (prefill)`)] : o.qkv ? [o.qkv.ropeKvWrite] : [];
    return { ...d, maxRows: 8, prefill: [norm, mm, ...after] };
  }

  /**
   * y (+)= W x, in whichever kernel suits the weights and the row count. With `adapter` (an 'add'
   * site whose z = act(D x) the adapter's down-projection has just written), the same dispatch
   * adds scale[seg] U z to every output (adapterAdd.wgsl): no separate up-projection pass.
   */
  matmul(
    w: GpuMatrix,
    x: GPUBuffer,
    y: GPUBuffer,
    o: { accumulate?: boolean; params?: GPUBuffer; act?: number; splitRow?: number; adapter?: AdapterSite } = {},
  ): Dispatch {
    const constants: Record<string, number> = { IN: w.cols, OUT: w.rows, ACCUMULATE: o.accumulate ? 1 : 0, ACT: o.act ?? 0 };
    if (o.splitRow !== undefined) constants.SPLIT_ROW = o.splitRow;
    const ad = o.adapter;
    if (ad) {
      if (ad.mode !== 'add' || ad.n !== w.rows) throw new EngineError(`An adapter in mode ${ad.mode} with ${ad.n} rows cannot be fused into ${w.name}.`);
      Object.assign(constants, { R: ad.r, SEG1: ad.seg1, SEG2: ad.seg2, Z_STRIDE: ad.segments * ad.r });
    }
    const variant = (v: KernelVariant): KernelVariant => (ad ? { ...v, adapterAdd: true } : v);
    const buffers = {
      p: o.params ?? this.parts.buffers.params,
      x,
      y,
      wData: w.data,
      wScale: w.scale,
      ...(ad ? { adapterZ: this.scratch().z, adapterU: ad.up, adapterScales: ad.scales } : {}),
    };
    const dispatch = (
      label: string,
      kernel: 'matmul' | 'matmulTiled' | 'q4MatVec',
      pipeline: GPUComputePipeline,
      workgroups: Dispatch['workgroups'],
    ): Dispatch => ({
      label,
      pipeline,
      bindGroups: bindKernel(this.device, pipeline, kernel, buffers, w.name),
      workgroups,
    });
    const pipes = this.parts.pipes;
    const choice = this.parts.kernels;
    let general = dispatch(`matmul ${w.name}`, 'matmul', pipes.get('matmul', variant({ weight: w.format }), constants), (rows) => [
      Math.ceil(w.rows / 64),
      Math.ceil(rows / 8),
      1,
    ]);
    // Many rows (prefill) on a GPU: the tiled kernel, from 9 rows up. (Split inputs keep the general one.)
    if (choice.tiled && o.splitRow === undefined) {
      const { SPLIT_ROW: _s, ...tiledConstants } = constants;
      const tiled = dispatch(`tiled matmul ${w.name}`, 'matmulTiled', pipes.get('matmulTiled', variant({ weight: w.format }), tiledConstants), (rows) => [
        Math.ceil(w.rows / 64),
        Math.ceil(rows / 64),
        1,
      ]);
      general = { ...general, maxRows: 8, alt: tiled };
    }
    // The wide-load kernel reads x as vec4: widths that are not a multiple of 4 keep the general one.
    if ((w.format !== 'q4f16' && w.format !== 'q4f32') || !choice.q4MatVec || w.cols % 4 !== 0) return general;
    // q4 decode (up to 8 rows: one token, or a small batch): the wide-load matrix-vector kernel.
    const { ACT: _act, ...q4Constants } = constants;
    const x65535 = Math.min(w.rows, 65535);
    const mv = dispatch(
      `q4 matvec ${w.name}`,
      'q4MatVec',
      pipes.get('q4MatVec', variant({ weight: w.format, subgroups: choice.subgroups }), q4Constants),
      () => [x65535, Math.ceil(w.rows / x65535), 1],
    );
    return { ...mv, maxRows: 8, alt: general.alt ?? general };
  }

  /** An adapter site's down-projection: z = act(D x), every segment at once. */
  adapterDown(label: string, site: AdapterSite, x: GPUBuffer): Dispatch {
    const d: GpuMatrix = { name: label, format: 'f32', rows: site.segments * site.r, cols: site.inDim, data: site.down };
    return this.matmul(d, x, this.scratch().z, { act: this.adapter!.act });
  }

  /**
   * A series site's up-projection (see adapterUp.wgsl): onto its input (gate/up) or the linear's
   * output (down). 'add' sites have none: matmul() fuses their up-projection into the base matmul.
   */
  adapterUp(label: string, site: AdapterSite, y: GPUBuffer, res: GPUBuffer): Dispatch {
    if (site.mode === 'add') throw new EngineError(`${label}: 'add' adapters are fused into their base matmul.`);
    const dim = this.parts.config.hiddenSize;
    const constants = {
      N: site.n,
      R: site.r,
      SEG1: site.seg1,
      SEG2: site.seg2,
      Z_STRIDE: site.segments * site.r,
      OUT_W: dim,
      SEG_W: dim,
      SPLIT_OUT: site.mode === 'seriesInput' ? 1 : 0,
    };
    const buffers = { z: this.scratch().z, y, res, scales: site.scales, U: site.up };
    return this.kernel(label, 'adapterUp', {}, constants, buffers, (rows) => [Math.ceil(site.n / 64), rows, 1]);
  }
}
