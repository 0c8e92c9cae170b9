/**
 * A model directory as the engine sees it: mlc-chat-config.json, tensor-cache.json (older name
 * ndarray-cache.json), params_shard_N.bin, tokenizer.json — read through a ModelSource, one shard
 * at a time; the one reader of config + tensor cache (file names: baseModelFiles.ts).
 */
import type { LlamaConfig, QuantMode } from './llamaConfig.ts';
import { parseMlcChatConfig } from './mlcChatConfig.ts';
import { bf16ArrayToF32 } from './f16.ts';
import { sha256Hex } from './hashes.ts';
import { checkShardBuffer, decodeRecord, isStoredAsBf16, parseTensorCache, recordBytes } from './tensorCache.ts';
import type { ModelSource, TensorCache, TensorRecord } from './tensorCacheTypes.ts';
import { fetchFileBytes, fetchFileJson } from './fetchFile.ts';
import { MLC_CHAT_CONFIG_FILE, TENSOR_CACHE_FILES, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, type TensorCacheFile } from './baseModelFiles.ts';

export class ModelFilesError extends Error {
  override name = 'ModelFilesError';
}

/** A base model's two JSON files as read (not yet validated), and the name the tensor cache had. */
export interface BaseModelJson {
  chatConfig: unknown;
  tensorCache: unknown;
  tensorCacheFile: TensorCacheFile;
}

/**
 * Read mlc-chat-config.json and the tensor cache (tensor-cache.json, else ndarray-cache.json).
 * @param where names the directory in errors
 * @throws ModelFilesError naming the file that is missing
 */
export async function readBaseModelJson(source: Pick<ModelSource, 'readJson'>, where = 'the model directory'): Promise<BaseModelJson> {
  const chatConfig = await source.readJson(MLC_CHAT_CONFIG_FILE);
  if (chatConfig === null) throw new ModelFilesError(`${MLC_CHAT_CONFIG_FILE} not found in ${where}`);
  for (const tensorCacheFile of TENSOR_CACHE_FILES) {
    const tensorCache = await source.readJson(tensorCacheFile);
    if (tensorCache !== null) return { chatConfig, tensorCache, tensorCacheFile };
  }
  throw new ModelFilesError(`neither ${TENSOR_CACHE_FILES.join(' nor ')} found in ${where}`);
}

export interface ModelManifestInfo {
  config: LlamaConfig;
  mode: QuantMode;
  cache: TensorCache;
  tokenizerJson: object | null;
  /** tokenizer_config.json, when the model has one (it may say how to add BOS/EOS). */
  tokenizerConfig: object | null;
  tokenizerFiles: string[];
  /** mlc-chat-config.json and the tensor cache as read (an adapter's base check compares against them). */
  chatConfigJson: unknown;
  tensorCacheJson: unknown;
}

/** Read and validate the JSON files of a model directory. */
export async function loadModelManifest(source: ModelSource): Promise<ModelManifestInfo> {
  const base = await readBaseModelJson(source);
  const { config, quantization, tokenizerFiles } = parseMlcChatConfig(base.chatConfig);
  const cache = parseTensorCache(base.tensorCache, base.tensorCacheFile);
  const tok = await source.readJson(TOKENIZER_FILE);
  const tokenizerJson = tok !== null && typeof tok === 'object' ? (tok as object) : null;
  // Optional: a missing or unreadable tokenizer_config.json leaves the tokenizer's defaults.
  const tokConfig = tokenizerJson ? await source.readJson(TOKENIZER_CONFIG_FILE).catch(() => null) : null;
  const tokenizerConfig = tokConfig !== null && typeof tokConfig === 'object' ? (tokConfig as object) : null;
  return {
    config,
    mode: quantization,
    cache,
    tokenizerJson,
    tokenizerConfig,
    tokenizerFiles,
    chatConfigJson: base.chatConfig,
    tensorCacheJson: base.tensorCache,
  };
}

/**
 * The identity of a converted base model, which adapters are bound to: SHA-256 over a canonical
 * JSON of the architecture (from mlc-chat-config.json: model_type, quantization, hidden/intermediate
 * sizes, layers, heads, kv heads, head dim, vocab, eps, rope theta, tied embeddings) and of the
 * tensor cache (every shard's dataPath and md5sum / sha256 when present, every record's name, shape
 * and dtype). Context window, tokenizer and conversation settings are left out: they do not change
 * weights. Note: it names one conversion; the same weights in another quantization mode are another base.
 */
export async function baseFingerprint(chatConfigJson: unknown, tensorCacheJson: unknown): Promise<string> {
  const info = parseMlcChatConfig(chatConfigJson);
  const cache = parseTensorCache(tensorCacheJson);
  const c = info.config;
  const canonical = {
    fingerprint: 1,
    model_type: 'llama',
    quantization: info.quantization,
    arch: [c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize, c.rmsNormEps, c.ropeTheta, c.tieWordEmbeddings],
    shards: cache.records.map((s) => ({
      path: s.dataPath,
      md5: s.md5sum ?? null,
      sha256: s.sha256 ?? null,
      records: s.records.map((r) => [r.name, r.shape, r.dtype]),
    })),
  };
  return sha256Hex(JSON.stringify(canonical));
}

/** The fingerprint of the base model a source holds (what adapters and run records bind to). */
export async function baseFingerprintOf(source: Pick<ModelSource, 'readJson'>, where?: string): Promise<string> {
  const { chatConfig, tensorCache } = await readBaseModelJson(source, where);
  return baseFingerprint(chatConfig, tensorCache);
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

/**
 * A ModelSource over HTTP(S): `baseUrl` is the model directory (with or without trailing slash).
 * Read through the fetch layer, so a missing file is null on every host (a 404, or the index page
 * a single-page-app host serves instead): the tensor-cache.json → ndarray-cache.json fall back,
 * a model without tokenizer.json and a folder without adapter.json all read as "not found".
 * @throws ModelFilesError for a missing shard, BrokenFileError (cut short, JSON that does not parse),
 *   HostUnreachableError, HttpStatusError
 */
export function httpModelSource(baseUrl: string, fetchImpl: typeof fetch = fetch): ModelSource {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const url = (path: string) => new URL(path, new URL(base, globalThis.location?.href ?? 'http://localhost/')).href;
  return {
    readJson(path: string): Promise<unknown | null> {
      return fetchFileJson(url(path), { file: path, fetch: fetchImpl });
    },
    async readShard(path: string): Promise<ArrayBuffer> {
      const u = url(path);
      const bytes = await fetchFileBytes(u, { file: path, fetch: fetchImpl });
      if (bytes === null) throw new ModelFilesError(`${path} not found at ${u}`);
      return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.slice().buffer as ArrayBuffer);
    },
  };
}
