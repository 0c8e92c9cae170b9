/**
 * MLC tensor-cache layout (tensor-cache.json, older name ndarray-cache.json), as written by
 * MLC-LLM / TVM's `tvmjs.dump_tensor_cache` and read by WebLLM's loader.
 */

export type TensorDtype = 'float32' | 'float16' | 'bfloat16' | 'uint32';

export interface TensorRecord {
  name: string;
  shape: number[];
  dtype: TensorDtype;
  /** "f32-to-bf16": stored as bf16 only when dtype is float32 (WebLLM's rule); otherwise raw bytes. */
  format: string;
  nbytes: number;
  byteOffset: number;
}

export interface ShardEntry {
  dataPath: string; // e.g. params_shard_0.bin
  format: string; // "raw-shard"
  nbytes: number;
  records: TensorRecord[];
  md5sum?: string;
  /** SHA-256 of the shard file, hex (our addition; WebCrypto can check it, MLC's md5sum cannot be). */
  sha256?: string;
}

export interface TensorCache {
  metadata: Record<string, unknown>;
  records: ShardEntry[];
}

/**
 * Where a model's files come from: HTTP (tests, CLI, first download) or IndexedDB (offline).
 * The engine only ever asks for one whole shard at a time, so a 3.6 GB model never sits whole in memory.
 */
export interface ModelSource {
  /** A JSON file of the model directory (mlc-chat-config.json, tensor-cache.json, tokenizer.json). Null when absent. */
  readJson(path: string): Promise<unknown | null>;
  /** The bytes of one shard file. */
  readShard(path: string): Promise<ArrayBuffer>;
}
