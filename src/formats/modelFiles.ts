/**
 * A model directory as the engine sees it: mlc-chat-config.json, tensor-cache.json (older name
 * ndarray-cache.json), params_shard_N.bin, tokenizer.json — read through a ModelSource, one shard
 * at a time.
 */
import type { LlamaConfig, QuantMode } from './llamaConfig.ts';
import { parseMlcChatConfig } from './mlcChatConfig.ts';
import { bf16ArrayToF32 } from './f16.ts';
import { checkShardBuffer, decodeRecord, isStoredAsBf16, parseTensorCache, recordBytes } from './tensorCache.ts';
import type { ModelSource, TensorCache, TensorRecord } from './tensorCacheTypes.ts';

export class ModelFilesError extends Error {
  override name = 'ModelFilesError';
}

export interface ModelManifestInfo {
  config: LlamaConfig;
  mode: QuantMode;
  cache: TensorCache;
  tokenizerJson: object | null;
  tokenizerFiles: string[];
}

/** Read and validate the JSON files of a model directory. */
export async function loadModelManifest(source: ModelSource): Promise<ModelManifestInfo> {
  const chat = await source.readJson('mlc-chat-config.json');
  if (chat === null) throw new ModelFilesError('mlc-chat-config.json not found in the model directory');
  const { config, quantization, tokenizerFiles } = parseMlcChatConfig(chat);
  let cacheJson = await source.readJson('tensor-cache.json');
  let cacheName = 'tensor-cache.json';
  if (cacheJson === null) {
    cacheJson = await source.readJson('ndarray-cache.json');
    cacheName = 'ndarray-cache.json';
  }
  if (cacheJson === null) throw new ModelFilesError('neither tensor-cache.json nor ndarray-cache.json found in the model directory');
  const cache = parseTensorCache(cacheJson, cacheName);
  const tok = await source.readJson('tokenizer.json');
  const tokenizerJson = tok !== null && typeof tok === 'object' ? (tok as object) : null;
  return { config, mode: quantization, cache, tokenizerJson, tokenizerFiles };
}

export interface ShardTensors {
  shardIndex: number;
  shardCount: number;
  records: { record: TensorRecord; data: Float32Array | Uint32Array }[];
}

/**
 * Every record, decoded (uint32 -> Uint32Array, float16/bfloat16/f32-to-bf16 -> Float32Array),
 * shard by shard; only one shard's bytes are held at a time.
 */
export async function* iterateShardTensors(source: ModelSource, cache: TensorCache): AsyncGenerator<ShardTensors> {
  const shardCount = cache.records.length;
  for (let shardIndex = 0; shardIndex < shardCount; shardIndex++) {
    const shard = cache.records[shardIndex];
    const buf = await source.readShard(shard.dataPath);
    checkShardBuffer(shard, buf);
    yield { shardIndex, shardCount, records: shard.records.map((record) => ({ record, data: decodeRecord(record, buf) })) };
  }
}

/**
 * A record's bytes for a GPU upload, in the record's dtype: float16 stays float16, uint32 stays
 * uint32. The one case that is re-encoded: a float32 record stored as bf16 ("f32-to-bf16", MLC's
 * default for float32) is expanded to float32 bytes, so the buffer always matches `record.dtype`.
 * Returns a view into the shard when no conversion is needed.
 */
export function rawRecordBytes(record: TensorRecord, shardBuffer: ArrayBuffer | Uint8Array): Uint8Array {
  const bytes = recordBytes(record, shardBuffer);
  if (!isStoredAsBf16(record)) return bytes;
  const halves = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return new Uint8Array(bf16ArrayToF32(halves).buffer);
}

/** A ModelSource over HTTP(S): `baseUrl` is the model directory (with or without trailing slash). */
export function httpModelSource(baseUrl: string, fetchImpl: typeof fetch = fetch): ModelSource {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const url = (path: string) => new URL(path, new URL(base, globalThis.location?.href ?? 'http://localhost/')).href;
  return {
    async readJson(path: string): Promise<unknown | null> {
      const u = url(path);
      const res = await fetchImpl(u);
      if (res.status === 404) return null;
      if (!res.ok) throw new ModelFilesError(`GET ${u} failed: HTTP ${res.status} ${res.statusText}`);
      const text = await res.text();
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new ModelFilesError(`${u} is not valid JSON: ${(e as Error).message}`);
      }
    },
    async readShard(path: string): Promise<ArrayBuffer> {
      const u = url(path);
      const res = await fetchImpl(u);
      if (!res.ok) throw new ModelFilesError(`GET ${u} failed: HTTP ${res.status} ${res.statusText}`);
      return res.arrayBuffer();
    },
  };
}
