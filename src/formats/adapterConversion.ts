/**
 * PEFT / LLM-Adapters checkpoint -> our adapter format, checked against the converted base it is
 * bound to (by fingerprint): every error names the key, field or shape at fault. Pure functions
 * (bytes in, bytes out) so the CLI and the browser (dropped files) share them. What the checkpoint
 * means is verified in peftAdapter.ts's header.
 */

import { f32ArrayToF16 } from './f16.ts';
import { sha256Hex } from './hashes.ts';
import {
  ADAPTER_FORMAT,
  ADAPTER_FORMAT_VERSION,
  ADAPTER_MODULES,
  AdapterError,
  adapterTensorName,
  baseInfoFrom,
  DEFAULT_ADAPTER_SHARD_BYTES,
  moduleFeatures,
  moduleParent,
  parseAdapterJson,
  type AdapterManifest,
  type AdapterModule,
  type AdapterRole,
  type AdapterShard,
  type AdapterTensorRecord,
} from './adapterFormat.ts';
import { parseMlcChatConfig } from './mlcChatConfig.ts';
import { baseFingerprint } from './modelFiles.ts';
import {
  parsePeftAdapterConfig,
  parsePeftTensorKey,
  PEFT_CONFIG_FILE,
  PEFT_PICKLED_WEIGHTS_FILE,
  PEFT_WEIGHTS_FILE,
  resolveTargets,
  type PeftAdapterConfig,
} from './peftAdapter.ts';
import { parseSafetensorsHeader, readSafetensorsTensor } from './safetensors.ts';
import { readTorchStateDict, torchTensorToF32, TorchPickleError } from './torchPickle.ts';
import { parseTensorCache } from './tensorCache.ts';

export interface ConvertAdapterInput {
  /** adapter_config.json: object, text or bytes */
  adapterConfig: unknown;
  /** adapter_model.safetensors bytes, or adapter_model.bin (torch.save, read without running pickled code) */
  adapterWeights: Uint8Array | ArrayBuffer;
  /** which file adapterWeights is (default: told from its first bytes) */
  adapterWeightsFile?: typeof PEFT_WEIGHTS_FILE | typeof PEFT_PICKLED_WEIGHTS_FILE;
  /** the converted base's mlc-chat-config.json and tensor-cache.json (objects or text) */
  baseChatConfig: unknown;
  baseTensorCache: unknown;
  /** shown in the app; default: the config's base_model_name_or_path-free "adapter" */
  name?: string;
  /** stored dtype: "auto" keeps F16 as float16 and turns F32 / BF16 into float32 (exact) */
  dtype?: 'auto' | 'float32' | 'float16';
  maxShardBytes?: number;
}

export interface ConvertedAdapter {
  manifest: AdapterManifest;
  /** shard files by dataPath */
  shards: Map<string, Uint8Array>;
}

function shapeStr(s: number[]): string {
  return `[${s.join(', ')}]`;
}

/** Transposes a row-major [rows, cols] matrix. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

/** The checkpoint's tensors, whichever file PEFT wrote: names, safetensors-style dtypes, shapes, values. */
interface CheckpointTensors {
  file: string;
  keys: string[];
  dtype(key: string): string;
  shape(key: string): number[];
  read(key: string): Float32Array;
}

const TORCH_TO_SAFETENSORS_DTYPE: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64' };

/**
 * adapter_model.safetensors or adapter_model.bin, told apart by their first bytes: a torch.save file
 * starts with a zip header ("PK") or, in the legacy format, with a protocol-2 pickle (0x80 0x02);
 * a safetensors file with its little-endian header length.
 */
function checkpointTensors(file: Uint8Array, name?: string): CheckpointTensors {
  const torch = name
    ? name === PEFT_PICKLED_WEIGHTS_FILE
    : file.length >= 2 && ((file[0] === 0x50 && file[1] === 0x4b) || (file[0] === 0x80 && file[1] === 0x02));
  if (torch) {
    let tensors;
    try {
      tensors = readTorchStateDict(file, PEFT_PICKLED_WEIGHTS_FILE);
    } catch (e) {
      throw new AdapterError(e instanceof TorchPickleError ? e.message : `${PEFT_PICKLED_WEIGHTS_FILE}: ${(e as Error).message}`);
    }
    return {
      file: PEFT_PICKLED_WEIGHTS_FILE,
      keys: [...tensors.keys()],
      dtype: (k) => TORCH_TO_SAFETENSORS_DTYPE[tensors.get(k)!.dtype] ?? tensors.get(k)!.dtype,
      shape: (k) => tensors.get(k)!.shape,
      read: (k) => torchTensorToF32(k, tensors.get(k)!),
    };
  }
  let header;
  try {
    header = parseSafetensorsHeader(file, { source: PEFT_WEIGHTS_FILE });
  } catch (e) {
    throw new AdapterError((e as Error).message);
  }
  return {
    file: PEFT_WEIGHTS_FILE,
    keys: [...header.tensors.keys()],
    dtype: (k) => header.tensors.get(k)!.dtype,
    shape: (k) => header.tensors.get(k)!.shape,
    read: (k) => readSafetensorsTensor(file, k, header),
  };
}

/**
 * PEFT adapter -> our adapter, checked against the base: every error names the key, field or
 * shape at fault. Throws AdapterError; returns the manifest and shard bytes (nothing is written).
 */
export async function convertPeftAdapter(input: ConvertAdapterInput): Promise<ConvertedAdapter> {
  const cfgObj = parseAdapterJson(input.adapterConfig, PEFT_CONFIG_FILE);
  const cfg = parsePeftAdapterConfig(cfgObj);
  let baseInfo;
  try {
    baseInfo = parseMlcChatConfig(input.baseChatConfig);
    parseTensorCache(input.baseTensorCache);
  } catch (e) {
    throw new AdapterError(`the base model is not usable: ${(e as Error).message}`);
  }
  const base = baseInfo.config;
  const fingerprint = await baseFingerprint(input.baseChatConfig, input.baseTensorCache);

  const ckpt = checkpointTensors(
    input.adapterWeights instanceof Uint8Array ? input.adapterWeights : new Uint8Array(input.adapterWeights),
    input.adapterWeightsFile,
  );
  const WEIGHTS = ckpt.file;

  // Index the checkpoint's tensors by (layer, module, role); refuse anything else.
  const found = new Map<string, string>(); // "layer.module.role" -> key
  let maxLayer = -1;
  for (const key of ckpt.keys) {
    const p = parsePeftTensorKey(key);
    if (!p) {
      throw new AdapterError(
        `${WEIGHTS}: unexpected tensor ${key}; only LoRA (lora_A/lora_B) and bottleneck (adapter_down/adapter_up/adapter_scaling) weights of a Llama's q/k/v/o/gate/up/down projections are supported`,
      );
    }
    const loraRole = p.role === 'lora_A' || p.role === 'lora_B';
    if (loraRole !== (cfg.kind === 'lora')) {
      throw new AdapterError(`${WEIGHTS}: tensor ${key} does not belong to a ${cfg.peftType} adapter (peft_type in ${PEFT_CONFIG_FILE})`);
    }
    if (p.layer >= base.numLayers) {
      throw new AdapterError(`layer count mismatch: ${WEIGHTS} has ${key} (layer ${p.layer}) but the base model has ${base.numLayers} layers`);
    }
    maxLayer = Math.max(maxLayer, p.layer);
    found.set(`${p.layer}.${p.module}.${p.role}`, key);
  }

  const perLayer = resolveTargets(cfg, base.numLayers);
  const targets = ADAPTER_MODULES.filter((m) => perLayer.some((s) => s.has(m)));
  const roles: AdapterRole[] = cfg.kind === 'lora' ? ['lora_A', 'lora_B'] : ['adapter_down', 'adapter_up'];
  if (cfg.kind !== 'lora' && cfg.scaling === 'learned') roles.push('adapter_scaling');

  // Every key the config implies must be there, and nothing else.
  const expectedKeys = new Set<string>();
  for (let l = 0; l < base.numLayers; l++) {
    for (const m of perLayer[l]) {
      for (const role of roles) {
        const id = `${l}.${m}.${role}`;
        expectedKeys.add(id);
        if (!found.has(id)) {
          const key = `base_model.model.model.layers.${l}.${moduleParent(m)}.${m}.${role}${role === 'adapter_scaling' ? '' : '.weight'}`;
          const hint =
            maxLayer >= 0 && l > maxLayer
              ? ` (the adapter has weights up to layer ${maxLayer}, the base model has ${base.numLayers} layers: layer count mismatch?)`
              : '';
          throw new AdapterError(`${WEIGHTS}: missing key ${key}${hint}`);
        }
      }
    }
  }
  for (const [id, key] of found) {
    if (!expectedKeys.has(id)) {
      throw new AdapterError(
        `${WEIGHTS}: tensor ${key} is not selected by target_modules ${JSON.stringify(cfg.targetModules)} in ${PEFT_CONFIG_FILE}` +
          (id.endsWith('adapter_scaling') ? ' (adapter_scaling is only used with scaling "learned")' : ''),
      );
    }
  }

  const sourceDtypes = new Set([...found.values()].map((k) => ckpt.dtype(k)));
  const outDtype: 'float32' | 'float16' =
    input.dtype === 'float16' || input.dtype === 'float32' ? input.dtype : sourceDtypes.size === 1 && sourceDtypes.has('F16') ? 'float16' : 'float32';

  const read = (layer: number, m: AdapterModule, role: AdapterRole): { data: Float32Array; shape: number[]; key: string } => {
    const key = found.get(`${layer}.${m}.${role}`)!;
    try {
      return { data: ckpt.read(key), shape: ckpt.shape(key), key };
    } catch (e) {
      throw new AdapterError(`${WEIGHTS}: ${(e as Error).message}`);
    }
  };
  const shapeError = (key: string, got: number[], want: number[], why: string) => {
    const i = want.findIndex((w, j) => w === base.hiddenSize && got.length === want.length && got[j] !== w);
    const hidden = i >= 0 ? `hidden size mismatch: the adapter has ${got[i]} where the base's hidden size is ${base.hiddenSize}; ` : '';
    return new AdapterError(
      `module shape mismatch: ${hidden}${key} has shape ${shapeStr(got)} but the base model needs ${shapeStr(want)} (${why}; ` +
        `base: hidden size ${base.hiddenSize}, intermediate size ${base.intermediateSize}, ${base.numHeads} heads, ${base.numKvHeads} kv heads, head dim ${base.headDim})`,
    );
  };

  // Collect our tensors in canonical order: layer, module, role.
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  const scales: number[][] = [];
  for (let l = 0; l < base.numLayers; l++) {
    const layerScales: number[] = [];
    for (const m of targets) {
      const [inF, outF] = moduleFeatures(base, m);
      const present = perLayer[l].has(m);
      if (cfg.kind === 'lora') {
        const r = cfg.r;
        const shapes: Record<'lora_A' | 'lora_B', [number, number]> = { lora_A: [r, inF], lora_B: [outF, r] };
        for (const role of ['lora_A', 'lora_B'] as const) {
          const want = shapes[role];
          let data: Float32Array;
          if (!present) {
            data = new Float32Array(want[0] * want[1]); // zero: this layer is not adapted
          } else {
            const t = read(l, m, role);
            if (t.shape.length === 2 && t.shape[0] === want[0] && t.shape[1] === want[1]) {
              data = t.data;
            } else if (cfg.fanInFanOut && t.shape.length === 2 && t.shape[0] === want[1] && t.shape[1] === want[0]) {
              data = transpose(t.data, want[1], want[0]); // fan_in_fan_out layout [in, r] / [r, out]
            } else {
              throw shapeError(
                t.key,
                t.shape,
                want,
                role === 'lora_A' ? `lora_A is [r = ${r}, in features of ${m}]` : `lora_B is [out features of ${m}, r = ${r}]`,
              );
            }
          }
          tensors.push({ name: adapterTensorName(l, m, role), shape: want, data });
        }
      } else {
        const b = cfg.bottleneckSize;
        const [dIn, dOut] = cfg.kind === 'parallel' ? [inF, outF] : m === 'down_proj' ? [outF, outF] : [inF, inF];
        const shapes: Record<'adapter_down' | 'adapter_up', [number, number]> = { adapter_down: [b, dIn], adapter_up: [dOut, b] };
        for (const role of ['adapter_down', 'adapter_up'] as const) {
          const want = shapes[role];
          let data: Float32Array;
          if (!present) {
            data = new Float32Array(want[0] * want[1]);
          } else {
            const t = read(l, m, role);
            if (!(t.shape.length === 2 && t.shape[0] === want[0] && t.shape[1] === want[1])) {
              const kindWhy =
                cfg.kind === 'parallel'
                  ? `parallel adapter: ${role} maps ${role === 'adapter_down' ? `the linear's in features to bottleneck_size ${b}` : `bottleneck_size ${b} to the linear's out features`}`
                  : `series adapter on ${m}: ${role} works on the linear's ${m === 'down_proj' ? 'output' : 'input'} with bottleneck_size ${b}`;
              throw shapeError(t.key, t.shape, want, kindWhy);
            }
            data = t.data;
          }
          tensors.push({ name: adapterTensorName(l, m, role), shape: want, data });
        }
        if (cfg.scaling === 'learned') {
          if (present) {
            const t = read(l, m, 'adapter_scaling');
            if (t.data.length !== 1) throw shapeError(t.key, t.shape, [1], 'adapter_scaling is one learned scalar');
            layerScales.push(t.data[0]);
          } else layerScales.push(1);
        } else layerScales.push(cfg.scaling);
      }
    }
    scales.push(layerScales);
  }

  // Lay the tensors out in shards, 16-byte aligned, splitting at maxShardBytes.
  const maxShard = input.maxShardBytes ?? DEFAULT_ADAPTER_SHARD_BYTES;
  const elemBytes = outDtype === 'float16' ? 2 : 4;
  const groups: { name: string; shape: number[]; data: Float32Array; offset: number }[][] = [[]];
  let offset = 0;
  for (const t of tensors) {
    const nbytes = t.data.length * elemBytes;
    if (offset > 0 && offset + nbytes > maxShard) {
      groups.push([]);
      offset = 0;
    }
    groups[groups.length - 1].push({ ...t, offset });
    offset = Math.ceil((offset + nbytes) / 16) * 16;
  }
  const shards = new Map<string, Uint8Array>();
  const shardEntries: AdapterShard[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    const last = g[g.length - 1];
    const size = last ? last.offset + last.data.length * elemBytes : 0;
    const bytes = new Uint8Array(size);
    const records: AdapterTensorRecord[] = g.map((t) => {
      const raw = outDtype === 'float16' ? f32ArrayToF16(t.data) : t.data;
      const src = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
      bytes.set(src, t.offset);
      return { name: t.name, shape: t.shape, dtype: outDtype, byteOffset: t.offset, nbytes: src.length };
    });
    const dataPath = `adapter_shard_${i}.bin`;
    shards.set(dataPath, bytes);
    shardEntries.push({ dataPath, nbytes: size, sha256: await sha256Hex(bytes), records });
  }

  const manifest: AdapterManifest = {
    format: ADAPTER_FORMAT,
    version: ADAPTER_FORMAT_VERSION,
    kind: cfg.kind,
    name: input.name ?? defaultAdapterName(cfg),
    base: baseInfoFrom(base, fingerprint),
    targets,
    source: { peftType: cfg.peftType, baseModelNameOrPath: cfg.baseModelNameOrPath, config: cfgObj },
    shards: shardEntries,
  };
  if (cfg.kind === 'lora') {
    manifest.lora = { r: cfg.r, alpha: cfg.loraAlpha, rslora: cfg.useRslora, scaling: cfg.scaling };
  } else {
    manifest.bottleneck = { bottleneckSize: cfg.bottleneckSize, nonLinearity: cfg.nonLinearity, scaling: cfg.scaling, scales };
  }
  return { manifest, shards };
}

function defaultAdapterName(cfg: PeftAdapterConfig): string {
  const t = Array.isArray(cfg.targetModules) ? cfg.targetModules.join(',') : cfg.targetModules;
  return cfg.kind === 'lora' ? `LoRA r=${cfg.r} (${t})` : `${cfg.kind === 'series' ? 'Series' : 'Parallel'} adapter b=${cfg.bottleneckSize} (${t})`;
}
