/**
 * Our adapter format: `adapter.json` (this manifest) + `adapter_shard_N.bin`, bound to one converted
 * base model by its fingerprint (modelFiles.ts `baseFingerprint`); what the engine loads. Also the
 * vocabulary every adapter file shares: the Llama modules an adapter attaches to, the activations,
 * the tensor roles. PEFT checkpoints come in through peftAdapter.ts and adapterConversion.ts.
 */

import { f16ArrayToF32 } from './f16.ts';
import { sha256Hex } from './hashes.ts';
import { isJsonObject as isObj, parseJsonObject, type JsonObject as Obj } from './jsonObject.ts';
import type { LlamaConfig } from './llamaConfig.ts';
import { parseMlcChatConfig } from './mlcChatConfig.ts';
import { baseFingerprint } from './modelFiles.ts';
import { plainFileNameProblem } from './shardPath.ts';

// ---------------------------------------------------------------------------------------------
// Names

/** The Llama linear modules an adapter may target (Hugging Face names), in canonical order. */
export type AdapterModule = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';
export const ADAPTER_MODULES: readonly AdapterModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
/** Bottleneck modules LLM-Adapters can put a series adapter on for Llama. */
export const SERIES_MODULES: readonly AdapterModule[] = ['gate_proj', 'up_proj', 'down_proj'];

export type AdapterActivation = 'tanh' | 'relu' | 'silu' | 'gelu';
export const ADAPTER_ACTIVATIONS: readonly AdapterActivation[] = ['tanh', 'relu', 'silu', 'gelu'];
export type AdapterKind = 'lora' | 'series' | 'parallel';
export type AdapterRole = 'lora_A' | 'lora_B' | 'adapter_down' | 'adapter_up' | 'adapter_scaling';

export const ADAPTER_FORMAT = 'reasoning-lab-adapter';
export const ADAPTER_FORMAT_VERSION = 1;
export const ADAPTER_MANIFEST_FILE = 'adapter.json';
export const DEFAULT_ADAPTER_SHARD_BYTES = 32 * 1024 * 1024;

/** Anything wrong with an adapter: the message names the field, key or shape and what to do. */
export class AdapterError extends Error {
  override name = 'AdapterError';
}

/** An adapter file's JSON (object, text or bytes) as an object. @throws AdapterError naming `source` */
export function parseAdapterJson(input: unknown, source: string): Obj {
  return parseJsonObject(input, {
    notJson: (detail) => new AdapterError(`${source} is not valid JSON: ${detail}`),
    notObject: () => new AdapterError(`${source} must be a JSON object`),
  });
}

/** `parent` of a module in Hugging Face's LlamaDecoderLayer. */
export function moduleParent(m: AdapterModule): 'self_attn' | 'mlp' {
  return m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn';
}

/** [in, out] features of a module's nn.Linear in a Llama of this shape. */
export function moduleFeatures(
  c: Pick<LlamaConfig, 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim'>,
  m: AdapterModule,
): [number, number] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj':
      return [c.hiddenSize, q];
    case 'k_proj':
    case 'v_proj':
      return [c.hiddenSize, kv];
    case 'o_proj':
      return [q, c.hiddenSize];
    case 'gate_proj':
    case 'up_proj':
      return [c.hiddenSize, c.intermediateSize];
    case 'down_proj':
      return [c.intermediateSize, c.hiddenSize];
  }
}

/** Our record name for one adapter tensor: `layers.N.<module>.<role>`. */
export function adapterTensorName(layer: number, module: AdapterModule, role: Exclude<AdapterRole, 'adapter_scaling'>): string {
  return `layers.${layer}.${module}.${role}`;
}

// ---------------------------------------------------------------------------------------------
// adapter.json

export interface AdapterTensorRecord {
  name: string; // layers.N.<module>.<lora_A|lora_B|adapter_down|adapter_up>
  shape: number[];
  dtype: 'float32' | 'float16';
  byteOffset: number;
  nbytes: number;
}

export interface AdapterShard {
  dataPath: string; // adapter_shard_N.bin
  nbytes: number;
  sha256: string;
  records: AdapterTensorRecord[];
}

export interface AdapterBaseInfo {
  fingerprint: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * adapter.json. Every layer carries every module of `targets` (a PEFT adapter that skipped a layer
 * gets zero lora_B / adapter_up there, which leaves that layer's output unchanged), so the engine
 * can treat layers uniformly. Tensor shapes: lora_A [r, in], lora_B [out, r]; adapter_down
 * [b, d_in], adapter_up [d_out, b] with d_in/d_out the linear's in/out for parallel, both the
 * linear's in for series on gate/up and both its out for series on down_proj.
 */
export interface AdapterManifest {
  format: typeof ADAPTER_FORMAT;
  version: typeof ADAPTER_FORMAT_VERSION;
  kind: AdapterKind;
  name: string;
  base: AdapterBaseInfo;
  targets: AdapterModule[];
  /** LoRA: y = W x + scaling · B (A x) */
  lora?: { r: number; alpha: number; rslora: boolean; scaling: number };
  /** Bottleneck: act and s; `scales[layer][i]` is s for targets[i] (the float, or the learned value) */
  bottleneck?: { bottleneckSize: number; nonLinearity: AdapterActivation; scaling: number | 'learned'; scales: number[][] };
  /** Where it came from: the original adapter_config.json, verbatim. */
  source: { peftType: 'LORA' | 'BOTTLENECK'; baseModelNameOrPath: string | null; config: Obj };
  shards: AdapterShard[];
}

/** The base model facts adapter.json records: its fingerprint and the shapes the adapter fits. */
export function baseInfoFrom(c: LlamaConfig, fingerprint: string): AdapterBaseInfo {
  return {
    fingerprint,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
  };
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Parses and structurally checks adapter.json (object, text or bytes). */
export function parseAdapterManifest(input: unknown, source = ADAPTER_MANIFEST_FILE): AdapterManifest {
  const m = parseAdapterJson(input, source);
  const bad = (why: string): never => {
    throw new AdapterError(`${source}: ${why}`);
  };
  if (m.format !== ADAPTER_FORMAT)
    bad(
      `format must be "${ADAPTER_FORMAT}", got ${JSON.stringify(m.format)} (is this a converted adapter? convert PEFT adapters with npm run convert-adapter)`,
    );
  if (m.version !== ADAPTER_FORMAT_VERSION) bad(`version ${JSON.stringify(m.version)} is not supported (this app reads version ${ADAPTER_FORMAT_VERSION})`);
  if (m.kind !== 'lora' && m.kind !== 'series' && m.kind !== 'parallel') bad(`kind must be lora, series or parallel, got ${JSON.stringify(m.kind)}`);
  if (typeof m.name !== 'string') bad('name must be a string');
  const b = m.base;
  if (!isObj(b) || typeof b.fingerprint !== 'string') bad('base.fingerprint is missing');
  for (const k of ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim']) {
    if (!Number.isInteger((b as Obj)[k])) bad(`base.${k} must be an integer`);
  }
  if (!Array.isArray(m.targets) || m.targets.length === 0 || !m.targets.every((t) => ADAPTER_MODULES.includes(t as AdapterModule))) {
    bad(`targets must list modules among ${ADAPTER_MODULES.join(', ')}`);
  }
  if (m.kind === 'lora') {
    const l = m.lora;
    if (!isObj(l) || !Number.isInteger(l.r) || typeof l.scaling !== 'number') bad('lora.r and lora.scaling are required for kind lora');
  } else {
    const bn = m.bottleneck;
    if (!isObj(bn) || !Number.isInteger(bn.bottleneckSize) || !ADAPTER_ACTIVATIONS.includes(bn.nonLinearity as AdapterActivation)) {
      bad('bottleneck.bottleneckSize and bottleneck.nonLinearity are required for series and parallel adapters');
    }
    const sc = (bn as Obj).scales;
    if (!Array.isArray(sc) || sc.length !== (b as Obj).numLayers || !sc.every((r) => Array.isArray(r) && r.length === (m.targets as unknown[]).length)) {
      bad('bottleneck.scales must hold one scale per layer and target');
    }
  }
  if (!Array.isArray(m.shards) || m.shards.length === 0) bad('shards must be a non-empty list');
  for (const s of m.shards as unknown[]) {
    if (!isObj(s) || typeof s.dataPath !== 'string' || !Number.isInteger(s.nbytes) || !Array.isArray(s.records))
      bad('every shard needs dataPath, nbytes and records');
    const sh = s as Obj;
    if (plainFileNameProblem(sh.dataPath) !== null || (sh.dataPath as string).includes('/'))
      bad(`shard dataPath ${JSON.stringify(sh.dataPath)} must be a plain file name`);
    for (const r of sh.records as unknown[]) {
      if (!isObj(r) || typeof r.name !== 'string' || !Array.isArray(r.shape) || (r.dtype !== 'float32' && r.dtype !== 'float16'))
        bad('every record needs name, shape and dtype float32 or float16');
      const rec = r as unknown as AdapterTensorRecord;
      const n = rec.shape.reduce((a, x) => a * x, 1) * (rec.dtype === 'float16' ? 2 : 4);
      if (rec.nbytes !== n || !Number.isInteger(rec.byteOffset) || rec.byteOffset + rec.nbytes > (sh.nbytes as number)) {
        bad(`record ${rec.name}: byteOffset/nbytes do not fit its shape and shard`);
      }
    }
  }
  return m as unknown as AdapterManifest;
}

/**
 * Refuses an adapter made for another base: compares the recorded fingerprint and shape with the
 * base's mlc-chat-config.json and tensor-cache.json. @throws AdapterError naming the difference
 */
export async function checkAdapterAgainstBase(manifest: AdapterManifest, baseChatConfig: unknown, baseTensorCache: unknown): Promise<void> {
  const c = parseMlcChatConfig(baseChatConfig).config;
  const diffs: string[] = [];
  const want = manifest.base;
  const pairs: [string, number, number][] = [
    ['hidden size', want.hiddenSize, c.hiddenSize],
    ['intermediate size', want.intermediateSize, c.intermediateSize],
    ['layer count', want.numLayers, c.numLayers],
    ['attention heads', want.numHeads, c.numHeads],
    ['kv heads', want.numKvHeads, c.numKvHeads],
    ['head dim', want.headDim, c.headDim],
  ];
  for (const [what, a, b] of pairs) if (a !== b) diffs.push(`${what} ${a} (adapter) vs ${b} (base)`);
  if (diffs.length) {
    throw new AdapterError(`this adapter was made for a different base model: ${diffs.join(', ')}`);
  }
  const fp = await baseFingerprint(baseChatConfig, baseTensorCache);
  if (fp !== want.fingerprint) {
    throw new AdapterError(
      `this adapter was made for a different base model: its base fingerprint is ${want.fingerprint.slice(0, 16)}…, ` +
        `the loaded base's is ${fp.slice(0, 16)}… (same shape, different weights or quantization); convert the adapter against this base with npm run convert-adapter`,
    );
  }
}

/**
 * Decodes every record of the adapter's shards to f32, by record name. Checks each shard's length
 * and (unless verify is false) its sha256.
 */
export async function readAdapterTensors(
  manifest: AdapterManifest,
  shards: Map<string, Uint8Array | ArrayBuffer>,
  opts: { verify?: boolean } = {},
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const s of manifest.shards) {
    const raw = shards.get(s.dataPath);
    if (!raw) throw new AdapterError(`adapter shard ${s.dataPath} is missing`);
    const bytes = raw instanceof Uint8Array ? raw : new Uint8Array(raw);
    if (bytes.length !== s.nbytes)
      throw new AdapterError(`adapter shard ${s.dataPath} has ${bytes.length} bytes, ${ADAPTER_MANIFEST_FILE} says ${s.nbytes} (truncated?)`);
    if (opts.verify !== false && (await sha256Hex(bytes)) !== s.sha256) {
      throw new AdapterError(`adapter shard ${s.dataPath} is corrupt: its sha256 does not match ${ADAPTER_MANIFEST_FILE}`);
    }
    for (const r of s.records) {
      // An aligned copy with its own buffer (Node Buffers share a pooled ArrayBuffer; .slice there is a view).
      const slice = new Uint8Array(bytes.subarray(r.byteOffset, r.byteOffset + r.nbytes));
      out.set(r.name, r.dtype === 'float16' ? f16ArrayToF32(new Uint16Array(slice.buffer)) : new Float32Array(slice.buffer));
    }
  }
  return out;
}
