/**
 * Upload a model's tensors to GPU buffers, one shard at a time: a 3.6 GB model never sits whole
 * in JS memory. Matrices keep their stored bytes (int4 words, f16 pairs, f32); norms become f32.
 */
import type { ModelSource, TensorCache, TensorRecord } from '../formats/tensorCacheTypes.ts';
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, layerLinearNames, layerNormNames } from '../formats/llamaConfig.ts';
import { bf16ArrayToF32, f16ArrayToF32 } from '../formats/f16.ts';
import { q4PackedCols, q4ScaleCols } from '../formats/quant.ts';
import { checkBufferLimits, createBufferChecked } from './gpu.ts';
import { ModelFormatError } from './errors.ts';
import type { WeightFormat } from './kernels.ts';

/** A matrix [rows, cols] on the GPU in its stored format (q4: data = q_weight, scale = q_scale). */
export interface GpuMatrix {
  name: string;
  format: WeightFormat;
  rows: number;
  cols: number;
  data: GPUBuffer;
  scale?: GPUBuffer;
}

export interface LoadProgress {
  phase: 'weights';
  /** Shards uploaded so far (1 after the first): reported when a shard is done, so never above shardCount. */
  shard: number;
  shardCount: number;
  bytesLoaded: number;
  bytesTotal: number;
}

export interface UploadedTensors {
  /** Raw uploaded buffers by record name, with the record that described them. */
  buffers: Map<string, { record: TensorRecord; buffer: GPUBuffer; uploadedDtype: 'float32' | 'float16' | 'uint32' }>;
  bytes: number;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The bytes to upload for one record. uint32 and float16 stay as stored. float32 honours MLC's
 * "f32-to-bf16" record format (bytes are bf16) exactly as WebLLM's loader does; bfloat16 records
 * become f32 since WGSL has no bf16.
 */
function recordUpload(record: TensorRecord, shard: ArrayBuffer, forceF32: boolean): { bytes: Uint8Array; dtype: 'float32' | 'float16' | 'uint32' } {
  const n = elementCount(record.shape);
  if (record.byteOffset + record.nbytes > shard.byteLength) {
    throw new ModelFormatError(
      `Tensor ${record.name} lies outside its shard (offset ${record.byteOffset} + ${record.nbytes} bytes > ${shard.byteLength}); the shard is truncated.`,
    );
  }
  // A view on the shard, not a copy: writeBuffer reads it directly, so loading holds one shard.
  const raw = new Uint8Array(shard, record.byteOffset, record.nbytes);
  // Conversions need aligned 16-bit views: copy just the (small) tensors that are converted.
  const halves = () => new Uint16Array(new Uint8Array(raw).buffer, 0, n);
  switch (record.dtype) {
    case 'uint32':
      return { bytes: raw, dtype: 'uint32' };
    case 'float16':
      return forceF32 ? { bytes: new Uint8Array(f16ArrayToF32(halves()).buffer), dtype: 'float32' } : { bytes: raw, dtype: 'float16' };
    case 'bfloat16':
      return { bytes: new Uint8Array(bf16ArrayToF32(halves()).buffer), dtype: 'float32' };
    case 'float32':
      if (record.format === 'f32-to-bf16' && record.nbytes === n * 2) {
        return { bytes: new Uint8Array(bf16ArrayToF32(halves()).buffer), dtype: 'float32' };
      }
      return { bytes: raw, dtype: 'float32' };
    default:
      throw new ModelFormatError(`Tensor ${record.name} has unsupported dtype ${String(record.dtype)}.`);
  }
}

/** Bytes recordUpload gives a record on the GPU (f16 norms and bf16 become f32), known before its shard is read. */
function uploadBytes(record: TensorRecord): number {
  const keepsBytes = record.dtype === 'uint32' || (record.dtype === 'float16' && !wantsF32(record.name));
  return keepsBytes ? record.nbytes : elementCount(record.shape) * 4;
}

/** Norm weights are tiny and read by f32 kernels; everything else keeps its stored dtype. */
function wantsF32(name: string): boolean {
  return name.endsWith('norm.weight');
}

export async function uploadTensors(
  device: GPUDevice,
  source: ModelSource,
  cache: TensorCache,
  onProgress?: (p: LoadProgress) => void,
): Promise<UploadedTensors> {
  const buffers: UploadedTensors['buffers'] = new Map();
  const bytesTotal = cache.records.reduce((a, s) => a + s.nbytes, 0);
  let bytesLoaded = 0;
  let bytes = 0;
  // A tensor the device cannot hold fails the load now, not after gigabytes of shards were read.
  for (const shard of cache.records) for (const r of shard.records) checkBufferLimits(device.limits, `The weight tensor ${r.name}`, uploadBytes(r), STORAGE);
  try {
    for (let i = 0; i < cache.records.length; i++) {
      const shard = cache.records[i];
      let data: ArrayBuffer | null = await source.readShard(shard.dataPath);
      if (data.byteLength < shard.nbytes) {
        throw new ModelFormatError(`${shard.dataPath} is truncated: ${data.byteLength} bytes, expected ${shard.nbytes}.`);
      }
      for (const record of shard.records) {
        const up = recordUpload(record, data!, wantsF32(record.name));
        const buffer = await createBufferChecked(device, record.name, up.bytes.byteLength, STORAGE);
        // writeBuffer needs a multiple of 4 bytes; odd f16 counts are padded with a zero half.
        const padded =
          up.bytes.byteLength % 4 === 0
            ? up.bytes
            : (() => {
                const p = new Uint8Array(Math.ceil(up.bytes.byteLength / 4) * 4);
                p.set(up.bytes);
                return p;
              })();
        device.queue.writeBuffer(buffer, 0, padded as Uint8Array<ArrayBuffer>);
        buffers.set(record.name, { record, buffer, uploadedDtype: up.dtype });
        bytes += buffer.size;
      }
      data = null; // writeBuffer has taken its copy: let the shard go before reading the next
      bytesLoaded += shard.nbytes;
      onProgress?.({ phase: 'weights', shard: i + 1, shardCount: cache.records.length, bytesLoaded, bytesTotal });
      // Let the queue drain so staging copies of finished shards can be released.
      await device.queue.onSubmittedWorkDone();
    }
  } catch (e) {
    for (const { buffer } of buffers.values()) buffer.destroy();
    throw e;
  }
  return { buffers, bytes };
}

/** One decoder layer's weights, in the order the forward pass reads them. */
export interface LayerWeights {
  inputNorm: GPUBuffer; // [dim]
  qkv: GpuMatrix; // [(H + 2 KV) hd, dim]
  o: GpuMatrix; // [dim, H hd]
  postNorm: GPUBuffer; // [dim]
  gateUp: GpuMatrix; // [2 ffn, dim]
  down: GpuMatrix; // [dim, ffn]
}

export interface ModelWeights {
  embed: GpuMatrix; // [vocab, dim]
  layers: LayerWeights[]; // [layers]
  finalNorm: GPUBuffer; // [dim]
  lmHead: GpuMatrix; // [vocab, dim]: the embedding itself when tied
}

/** Every weight the forward pass reads, looked up once with its shape checked against the config. */
export function takeModelWeights(t: UploadedTensors, c: LlamaConfig): ModelWeights {
  const { hiddenSize: dim, numHeads: H, numKvHeads: KV, headDim: hd, intermediateSize: ffn } = c;
  const embed = takeMatrix(t, EMBED_NAME, c.vocabSize, dim);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const linear = layerLinearNames(l);
    const norms = layerNormNames(l);
    layers.push({
      inputNorm: takeVector(t, norms.input, dim),
      qkv: takeMatrix(t, linear.qkv, (H + 2 * KV) * hd, dim),
      o: takeMatrix(t, linear.o, dim, H * hd),
      postNorm: takeVector(t, norms.postAttention, dim),
      gateUp: takeMatrix(t, linear.gateUp, 2 * ffn, dim),
      down: takeMatrix(t, linear.down, dim, ffn),
    });
  }
  const lmHead = c.tieWordEmbeddings ? embed : takeMatrix(t, LM_HEAD_NAME, c.vocabSize, dim);
  return { embed, layers, finalNorm: takeVector(t, FINAL_NORM_NAME, dim), lmHead };
}

/** Look up a linear layer (or the embedding) by its MLC base name, checking its shape. */
export function takeMatrix(t: UploadedTensors, base: string, rows: number, cols: number): GpuMatrix {
  const q = t.buffers.get(`${base}.q_weight`);
  if (q) {
    const s = t.buffers.get(`${base}.q_scale`);
    if (!s) throw new ModelFormatError(`Tensor ${base}.q_scale is missing (its q_weight is present).`);
    // MLC pads the last group of a width that is not a multiple of 32: [rows, 4·ceil(cols/32)] words.
    expectShape(q.record, [rows, q4PackedCols(cols)]);
    expectShape(s.record, [rows, q4ScaleCols(cols)]);
    return { name: base, format: s.uploadedDtype === 'float16' ? 'q4f16' : 'q4f32', rows, cols, data: q.buffer, scale: s.buffer };
  }
  const w = t.buffers.get(`${base}.weight`);
  if (!w) throw new ModelFormatError(`Tensor ${base}.weight (or ${base}.q_weight) is missing from the model.`);
  expectShape(w.record, [rows, cols]);
  return { name: base, format: w.uploadedDtype === 'float16' ? 'f16' : 'f32', rows, cols, data: w.buffer };
}

export function takeVector(t: UploadedTensors, name: string, length: number): GPUBuffer {
  const v = t.buffers.get(name);
  if (!v) throw new ModelFormatError(`Tensor ${name} is missing from the model.`);
  expectShape(v.record, [length]);
  return v.buffer;
}

function expectShape(record: TensorRecord, shape: number[]) {
  if (record.shape.length !== shape.length || record.shape.some((d, i) => d !== shape[i])) {
    throw new ModelFormatError(`Tensor ${record.name} has shape [${record.shape}] but the model config implies [${shape}].`);
  }
}
