/**
 * WGSL kernel assembly and pipeline cache. Each kernel lives in its own file under kernels/;
 * shared snippets (the Params struct, weight and KV-cache access, a fused adapter's term) are pulled
 * in by `#include`.
 * Shapes are pipeline-overridable constants, so one compiled pipeline serves a whole model.
 */
import paramsWgsl from './kernels/params.wgsl?raw';
import weightF32Wgsl from './kernels/weightF32.wgsl?raw';
import weightF16Wgsl from './kernels/weightF16.wgsl?raw';
import weightQ4Wgsl from './kernels/weightQ4.wgsl?raw';
import q4ValuesWgsl from './kernels/q4Values.wgsl?raw';
import kvF32Wgsl from './kernels/kvF32.wgsl?raw';
import kvF16Wgsl from './kernels/kvF16.wgsl?raw';
import embeddingWgsl from './kernels/embedding.wgsl?raw';
import matmulWgsl from './kernels/matmul.wgsl?raw';
import rmsnormWgsl from './kernels/rmsnorm.wgsl?raw';
import argmaxWgsl from './kernels/argmax.wgsl?raw';
import ropeKvWriteWgsl from './kernels/ropeKvWrite.wgsl?raw';
import attnScoresWgsl from './kernels/attnScores.wgsl?raw';
import attnSoftmaxWgsl from './kernels/attnSoftmax.wgsl?raw';
import attnOutputWgsl from './kernels/attnOutput.wgsl?raw';
import swigluWgsl from './kernels/swiglu.wgsl?raw';
import adapterUpWgsl from './kernels/adapterUp.wgsl?raw';
import adapterAddWgsl from './kernels/adapterAdd.wgsl?raw';
import activationWgsl from './kernels/activation.wgsl?raw';
import bandwidthCopyWgsl from './kernels/bandwidthCopy.wgsl?raw';
import q4MatVecWgsl from './kernels/q4MatVec.wgsl?raw';
import matmulTiledWgsl from './kernels/matmulTiled.wgsl?raw';
import crossEntropyWgsl from './kernels/crossEntropy.wgsl?raw';
import rmsnormBackWgsl from './kernels/rmsnormBack.wgsl?raw';
import swigluBackWgsl from './kernels/swigluBack.wgsl?raw';
import ropeBackWgsl from './kernels/ropeBack.wgsl?raw';
import activationBackWgsl from './kernels/activationBack.wgsl?raw';
import adamwWgsl from './kernels/adamw.wgsl?raw';
import matmulBackInputWgsl from './kernels/matmulBackInput.wgsl?raw';
import matmulBackWeightWgsl from './kernels/matmulBackWeight.wgsl?raw';
import attnBackQueryWgsl from './kernels/attnBackQuery.wgsl?raw';
import attnBackKeyValueWgsl from './kernels/attnBackKeyValue.wgsl?raw';
import addColumnsWgsl from './kernels/addColumns.wgsl?raw';
import dropoutWgsl from './kernels/dropout.wgsl?raw';
import attentionWgsl from './kernels/attention.wgsl?raw';
import normMatmulWgsl from './kernels/normMatmul.wgsl?raw';
import normQ4MatVecWgsl from './kernels/normQ4MatVec.wgsl?raw';
import qkvEpilogueWgsl from './kernels/qkvEpilogue.wgsl?raw';
import reduceRowsSharedWgsl from './kernels/reduceRowsShared.wgsl?raw';
import reduceRowsSubgroupWgsl from './kernels/reduceRowsSubgroup.wgsl?raw';
import type { KvFormat } from './kvCache.ts';

export type { KvFormat };

/** How a weight matrix is stored on the GPU (follows the record dtypes, not the mode name). */
export type WeightFormat = 'f32' | 'f16' | 'q4f16' | 'q4f32';

export const KERNELS = {
  embedding: embeddingWgsl,
  matmul: matmulWgsl,
  rmsnorm: rmsnormWgsl,
  argmax: argmaxWgsl,
  ropeKvWrite: ropeKvWriteWgsl,
  attnScores: attnScoresWgsl,
  attnSoftmax: attnSoftmaxWgsl,
  attnOutput: attnOutputWgsl,
  swiglu: swigluWgsl,
  adapterUp: adapterUpWgsl,
  bandwidthCopy: bandwidthCopyWgsl,
  q4MatVec: q4MatVecWgsl,
  matmulTiled: matmulTiledWgsl,
  // Fused decode kernels (forward.ts): RMSNorm folded into the next matmul (SwiGLU in gate/up's
  // epilogue; with a KV format, RoPE and the KV write in qkv's: qkvEpilogue.wgsl), attention's
  // three passes in one.
  normMatmul: normMatmulWgsl,
  normQ4MatVec: normQ4MatVecWgsl,
  attention: attentionWgsl,
  // Training: backward kernels and the optimizer (trainingKernels.ts records them).
  crossEntropy: crossEntropyWgsl,
  rmsnormBack: rmsnormBackWgsl,
  swigluBack: swigluBackWgsl,
  ropeBack: ropeBackWgsl,
  activationBack: activationBackWgsl,
  adamw: adamwWgsl,
  // Training backward (trainingMatmul.ts, trainingAttention.ts)
  matmulBackInput: matmulBackInputWgsl,
  matmulBackWeight: matmulBackWeightWgsl,
  attnBackQuery: attnBackQueryWgsl,
  attnBackKeyValue: attnBackKeyValueWgsl,
  // The whole-model training pass (trainingPass.ts): strided column adds between the kernels above.
  addColumns: addColumnsWgsl,
  // LoRA / adapter dropout of an adapter's input and of its gradient (mask from engine/dropout.ts's hash).
  dropout: dropoutWgsl,
} as const;
export type KernelName = keyof typeof KERNELS;

export interface KernelVariant {
  weight?: WeightFormat;
  /** The KV cache's format; on normMatmul / normQ4MatVec it selects the qkv epilogue (RoPE + KV write). */
  kv?: KvFormat;
  /** Use subgroup operations for reductions (only when the device has the 'subgroups' feature). */
  subgroups?: boolean;
  /**
   * Matmul kernels: fuse a LoRA / parallel adapter's up-projection (adapterAdd.wgsl, bind group 2).
   * A source variant rather than only an override: bindings a shader names are in its 'auto' layout
   * whatever an override says, so a pipeline without the adapter must not name them at all.
   */
  adapterAdd?: boolean;
}

/** What `#include qkvEpilogue` becomes in a norm-matmul without it (no KV variant): no bindings, plain stores. */
const QKV_EPILOGUE_OFF = `const QKV_ROPE: bool = false;
fn weightRows(o: u32, nOut: u32) -> vec4<u32> { return vec4<u32>(o, o + nOut, o, o); }
fn qkvStore(o: u32, row: u32, t: u32, v: vec4<f32>) {}`;

/** What `#include adapterAdd` becomes in a matmul without an adapter: no bindings, no term. */
const ADAPTER_ADD_OFF = `const ADAPTER_ADD: bool = false;
fn adapterTerm(t: u32, o: u32, j0: u32, dj: u32) -> f32 { return 0.0; }`;

function weightSnippet(format: WeightFormat): string {
  switch (format) {
    case 'f32':
      return weightF32Wgsl;
    case 'f16':
      return weightF16Wgsl;
    case 'q4f16':
      return weightQ4Wgsl.replace('SCALE_STORAGE', 'u32').replace('SCALE_READ', 'return unpack2x16float(wScale[i >> 1u])[i & 1u];');
    case 'q4f32':
      return weightQ4Wgsl.replace('SCALE_STORAGE', 'f32').replace('SCALE_READ', 'return wScale[i];');
  }
}

/**
 * Where each kernel's `#include kv` declares its K and V cache, and whether it writes them. A
 * kernel reading only one of them still declares both (the other stays out of its 'auto' layout).
 */
const KV_BINDINGS: Partial<Record<KernelName, { group: number; k: number; v: number; access: 'read' | 'read_write' }>> = {
  ropeKvWrite: { group: 0, k: 4, v: 5, access: 'read_write' },
  attnScores: { group: 0, k: 3, v: 4, access: 'read' },
  attnOutput: { group: 0, k: 3, v: 4, access: 'read' },
  attention: { group: 0, k: 3, v: 4, access: 'read' },
  normMatmul: { group: 2, k: 2, v: 3, access: 'read_write' },
  normQ4MatVec: { group: 2, k: 2, v: 3, access: 'read_write' },
};

/**
 * The writers' kPut / vPut: store the adjacent pair (vec2<f32>) at cache element dst (even), one
 * packed word in f16, so no two threads share a word.
 */
const KV_PUT: Record<KvFormat, string> = {
  f32: `fn kPut(dst: u32, k: vec2<f32>) { kCache[dst] = k.x; kCache[dst + 1u] = k.y; }
fn vPut(dst: u32, v: vec2<f32>) { vCache[dst] = v.x; vCache[dst + 1u] = v.y; }`,
  f16: `fn kPut(dst: u32, k: vec2<f32>) { kCache[dst >> 1u] = pack2x16float(k); }
fn vPut(dst: u32, v: vec2<f32>) { vCache[dst >> 1u] = pack2x16float(v); }`,
};

/** The full WGSL source of one kernel variant. */
export function kernelSource(name: KernelName, variant: KernelVariant = {}): string {
  let src = KERNELS[name];
  src = src.replace('#include params', paramsWgsl).replace('#include activation', activationWgsl);
  if (src.includes('#include qkvEpilogue')) src = src.replace('#include qkvEpilogue', variant.kv ? qkvEpilogueWgsl : QKV_EPILOGUE_OFF);
  if (src.includes('#include adapterAdd')) {
    src = src.replace('#include adapterAdd', variant.adapterAdd ? adapterAddWgsl : ADAPTER_ADD_OFF);
  } else if (variant.adapterAdd) {
    throw new Error(`kernel ${name} cannot fuse an adapter`);
  }
  if (src.includes('#include weight')) {
    if (!variant.weight) throw new Error(`kernel ${name} needs a weight format`);
    src = src.replace('#include weight', weightSnippet(variant.weight));
  }
  if (src.includes('ROWS_REDUCE')) {
    // The q4 matvecs' reduction of NV values (live ones only), over subgroups or shared memory.
    src = src
      .replace('REDUCE_ENABLE', variant.subgroups ? 'enable subgroups;' : '')
      .replace('REDUCE_PARAMS', variant.subgroups ? ', @builtin(subgroup_invocation_id) sgLane: u32' : '')
      .replace('REDUCE_DECL', variant.subgroups ? 'var<workgroup> leads: array<atomic<u32>, WG / 32u>;' : '')
      .replace('ROWS_REDUCE', variant.subgroups ? reduceRowsSubgroupWgsl : reduceRowsSharedWgsl);
  }
  if (src.includes('SCALE_READ')) {
    // A q4 kernel with its own wide weight reads (normQ4MatVec): the scale's storage and read.
    if (variant.weight !== 'q4f16' && variant.weight !== 'q4f32') throw new Error(`kernel ${name} needs a q4 weight format`);
    const f16 = variant.weight === 'q4f16';
    src = src
      .replace('SCALE_STORAGE', f16 ? 'u32' : 'f32')
      .replace('SCALE_READ', f16 ? 'return unpack2x16float(wScale[i >> 1u])[i & 1u];' : 'return wScale[i];');
  }
  // After the weight snippet, which may pull it in too (weightQ4.wgsl).
  src = src.replace('#include q4Values', q4ValuesWgsl);
  if (src.includes('#include kv')) {
    const b = KV_BINDINGS[name];
    if (!b || !variant.kv) throw new Error(`kernel ${name} needs a KV cache format`);
    const kv = (variant.kv === 'f16' ? kvF16Wgsl : kvF32Wgsl)
      .replaceAll('KV_GROUP', String(b.group))
      .replace('KV_BINDING_K', String(b.k))
      .replace('KV_BINDING_V', String(b.v))
      .replaceAll('KV_ACCESS', b.access);
    src = src.replace('#include kv', b.access === 'read_write' ? `${kv}\n${KV_PUT[variant.kv]}` : kv);
  }
  return src;
}

/** Compiles each (kernel, variant, constants) once per device. */
export class PipelineCache {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  constructor(private readonly device: GPUDevice) {}

  get(name: KernelName, variant: KernelVariant, constants: Record<string, number>): GPUComputePipeline {
    const key = `${name}|${variant.weight ?? ''}|${variant.kv ?? ''}|${variant.subgroups ? 'sg' : ''}|${variant.adapterAdd ? 'adapter' : ''}|${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: kernelSource(name, variant), label: name });
      p = this.device.createComputePipeline({ layout: 'auto', label: key, compute: { module, entryPoint: 'main', constants } });
      this.pipelines.set(key, p);
    }
    return p;
  }
}

/** One recorded dispatch: pipeline, bind groups, and a workgroup count computed per call. */
export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroups: GPUBindGroup[];
  workgroups: (rows: number, kvLen: number) => [number, number, number];
  /** Used instead when a call has more than `maxRows` rows (a decode kernel's prefill twin). */
  maxRows?: number;
  alt?: Dispatch;
  /**
   * Used instead when a call has more than `maxRows` rows, for a fused decode dispatch whose
   * prefill form is several (its unfused steps, each picked by the same rule).
   */
  prefill?: Dispatch[];
}

/** The dispatch a call over `rows` rows runs: `d`, or its twin past `d.maxRows`. */
export function pickDispatch(d: Dispatch, rows: number): Dispatch {
  return d.alt && rows > d.maxRows! ? d.alt : d;
}

/** The dispatches a call over `rows` rows runs for `d`: its prefill steps past `d.maxRows`, else pickDispatch. */
export function pickDispatches(d: Dispatch, rows: number): Dispatch[] {
  if (d.prefill && rows > d.maxRows!) return d.prefill.flatMap((p) => pickDispatches(p, rows));
  return [pickDispatch(d, rows)];
}

/** Group 1 of the kernels that read a weight matrix (weight*.wgsl); wScale: q4 formats only. */
const WEIGHT_SLOTS = { wData: 0, wScale: 1 } as const;
/** Group 2 of the matmul kernels' adapterAdd variant (adapterAdd.wgsl). */
const ADAPTER_ADD_SLOTS = { adapterZ: 0, adapterU: 1, adapterScales: 2 } as const;
/** Group 2 of the norm-matmuls' qkv epilogue variant (qkvEpilogue.wgsl). */
const QKV_EPILOGUE_SLOTS = { cosSin: 0, rowInfo: 1, kCache: 2, vCache: 3 } as const;
const MATMUL_SLOTS = { 0: { p: 0, x: 1, y: 2 }, 1: WEIGHT_SLOTS, 2: ADAPTER_ADD_SLOTS } as const;

/**
 * Every kernel's bindings, the one place binding indices are written down outside the WGSL:
 * bind group -> the WGSL variable's name -> its @binding. Only bindings the shader uses are listed
 * ('auto' layouts leave out a declared but unused one, such as attnScores' vCache).
 * tests/unit/kernelBindings.test.ts checks this table against the WGSL sources.
 */
export const BINDINGS = {
  embedding: { 0: { p: 0, tokens: 1, x: 2 }, 1: WEIGHT_SLOTS },
  matmul: MATMUL_SLOTS,
  matmulTiled: MATMUL_SLOTS,
  q4MatVec: MATMUL_SLOTS,
  rmsnorm: { 0: { p: 0, x: 1, y: 2, w: 3 } },
  argmax: { 0: { p: 0, logits: 1, tokens: 2 } },
  ropeKvWrite: { 0: { p: 0, qkv: 1, cosSin: 2, rowInfo: 3, kCache: 4, vCache: 5 } },
  attnScores: { 0: { p: 0, qkv: 1, scores: 2, kCache: 3, rowInfo: 5 } },
  attnSoftmax: { 0: { p: 0, scores: 1, rowInfo: 2 } },
  attnOutput: { 0: { p: 0, scores: 1, o: 2, vCache: 4, rowInfo: 5 } },
  swiglu: { 0: { p: 0, gu: 1, h: 2 } },
  normMatmul: { 0: { p: 0, x: 1, y: 2, g: 3 }, 1: WEIGHT_SLOTS, 2: QKV_EPILOGUE_SLOTS },
  normQ4MatVec: { 0: { p: 0, x: 1, y: 2, g: 3 }, 1: WEIGHT_SLOTS, 2: QKV_EPILOGUE_SLOTS },
  attention: { 0: { p: 0, qkv: 1, scores: 2, kCache: 3, vCache: 4, rowInfo: 5, o: 6 } },
  adapterUp: { 0: { p: 0, z: 1, y: 2, res: 3, scales: 4 }, 1: { U: 0 } },
  bandwidthCopy: { 0: { src: 0, dst: 1 } },
  crossEntropy: { 0: { p: 0, logits: 1, targets: 2, loss: 3 } },
  rmsnormBack: { 0: { p: 0, x: 1, w: 2, dy: 3, dx: 4 } },
  swigluBack: { 0: { p: 0, gu: 1, dh: 2, dgu: 3 } },
  ropeBack: { 0: { p: 0, grad: 1, cosSin: 2, rowInfo: 3 } },
  activationBack: { 0: { p: 0, h: 1, g: 2 } },
  adamw: { 0: { hyper: 0, param: 1, grad: 2, m: 3, v: 4 } },
  matmulBackInput: { 0: { p: 0, dy: 1, dx: 2 }, 1: WEIGHT_SLOTS },
  matmulBackWeight: { 0: { p: 0, dy: 1, x: 2, dw: 3 } },
  attnBackQuery: { 0: { p: 0, qkv: 1, dOut: 2, dqkv: 3, stats: 4 } },
  attnBackKeyValue: { 0: { p: 0, qkv: 1, dOut: 2, dqkv: 3, stats: 4 } },
  addColumns: { 0: { p: 0, src: 1, dst: 2 } },
  dropout: { 0: { p: 0, drop: 1, s: 2, src: 3, dst: 4 } },
} as const satisfies Record<KernelName, Partial<Record<0 | 1 | 2, Readonly<Record<string, number>>>>>;

type Groups<K extends KernelName> = (typeof BINDINGS)[K];
type SlotName<K extends KernelName, G extends 0 | 1 | 2> = G extends keyof Groups<K> ? keyof Groups<K>[G] & string : never;

/**
 * One dispatch's buffers by binding name. Group 0 (the call's activations) is always whole; the
 * names of groups 1 and 2 exist only in some variants (wScale with q4 weights, group 2 with a
 * fused adapter), so they are given exactly when the pipeline's variant declares them.
 */
export type KernelBuffers<K extends KernelName> = { [N in SlotName<K, 0>]: GPUBuffer } & { [N in SlotName<K, 1> | SlotName<K, 2>]?: GPUBuffer };

/** The bind groups of one dispatch of `kernel`, from its buffers by name (groups 0.., none skipped). */
export function bindKernel<K extends KernelName>(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  kernel: K,
  buffers: KernelBuffers<K>,
  label: string,
): GPUBindGroup[] {
  const named = buffers as Record<string, GPUBuffer | undefined>;
  const tables = BINDINGS[kernel] as Record<string, Record<string, number>>;
  const unknown = Object.keys(named).filter((n) => !Object.values(tables).some((slots) => n in slots));
  if (unknown.length > 0) throw new Error(`${label}: ${kernel} has no binding named ${unknown.join(', ')}`);
  const groups: GPUBindGroup[] = [];
  for (const [group, slots] of Object.entries(tables)) {
    const entries: GPUBindGroupEntry[] = [];
    for (const [name, binding] of Object.entries(slots)) {
      const buffer = named[name];
      if (buffer) entries.push({ binding, resource: { buffer } });
    }
    if (entries.length === 0) continue;
    if (Number(group) !== groups.length) throw new Error(`${label}: bind group ${group} of ${kernel} without group ${groups.length}`);
    groups.push(
      device.createBindGroup({ layout: pipeline.getBindGroupLayout(Number(group)), entries, label: Number(group) === 0 ? label : `${label} group ${group}` }),
    );
  }
  return groups;
}
