/**
 * MLC tensor-cache (tensor-cache.json / ndarray-cache.json + params_shard_N.bin): parse, validate,
 * decode records, and write shards.
 *
 * Verified against apache/tvm python/tvm/contrib/tvmjs.py (`dump_tensor_cache`,
 * `TensorCacheShardingManager`, `load_tensor_cache`) and mlc-ai/mlc-llm
 * python/mlc_llm/interface/convert_weight.py:
 *  - file: `{ "metadata": {ParamSize, ParamBytes, BitsPerParam}, "records": [shard...] }`;
 *    shard: `{ dataPath: "params_shard_N.bin", format: "raw-shard", nbytes, records, md5sum }`;
 *    record: `{ name, shape, dtype, format, nbytes, byteOffset }`.
 *  - MLC dumps with encode_format "f32-to-bf16": only records whose dtype is float32 are then stored
 *    as bfloat16 (2 bytes per element, nbytes = numel·2); every other dtype is raw bytes even though
 *    its format string also says "f32-to-bf16". Loaders (tvmjs, WebLLM) apply the same rule.
 *  - sharding: default cap 32 MiB; a record that would push the pending shard to >= cap is written
 *    to its own ("out of band") shard when nbytes·2 >= cap, else the pending shard is committed first.
 * We write float32 records as format "raw" (full precision) and other dtypes with "f32-to-bf16" as MLC
 * does. Each shard also gets "sha256" (ours; hex, same value as WebCrypto's SHA-256 digest) next to MLC's "md5sum".
 */
import { createMd5, createSha256 } from './hashes.ts';
import { parseJsonObject } from './jsonObject.ts';
import { TENSOR_CACHE_FILE } from './baseModelFiles.ts';
import { plainFileNameProblem, quoteName } from './shardPath.ts';
import { bf16ArrayToF32, f16ArrayToF32 } from './f16.ts';
import type { ShardEntry, TensorCache, TensorDtype, TensorRecord } from './tensorCacheTypes.ts';

export const TENSOR_DTYPES: readonly TensorDtype[] = ['float32', 'float16', 'bfloat16', 'uint32'];
export const DTYPE_BYTES: Record<TensorDtype, number> = { float32: 4, float16: 2, bfloat16: 2, uint32: 4 };
export const DEFAULT_SHARD_BYTES = 32 * 1024 * 1024;

export class TensorCacheError extends Error {
  override name = 'TensorCacheError';
}

function numel(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** True when the record's float32 values are stored as bfloat16 (WebLLM's rule). */
export function isStoredAsBf16(record: Pick<TensorRecord, 'dtype' | 'format'>): boolean {
  return record.dtype === 'float32' && record.format === 'f32-to-bf16';
}

/** Bytes per stored element of a record. */
export function storedElementBytes(record: Pick<TensorRecord, 'dtype' | 'format'>): number {
  return isStoredAsBf16(record) ? 2 : DTYPE_BYTES[record.dtype];
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Parse and validate tensor-cache.json (an object, its text or bytes). `source` names the file in errors. */
export function parseTensorCache(input: unknown, source: string = TENSOR_CACHE_FILE): TensorCache {
  const obj = parseJsonObject(input, {
    notJson: (detail) => new TensorCacheError(`${source}: not JSON: ${detail}`),
    notObject: () => new TensorCacheError(`${source}: expected a JSON object with "records"`),
  });
  if (!Array.isArray(obj.records)) throw new TensorCacheError(`${source}: missing "records" array`);
  const seen = new Set<string>();
  const shards: ShardEntry[] = obj.records.map((s: unknown, si: number) => {
    const shard = s as Partial<ShardEntry> | null;
    const where = `${source}: shard ${si}`;
    if (!shard || typeof shard !== 'object') throw new TensorCacheError(`${where}: not an object`);
    if (typeof shard.dataPath !== 'string' || shard.dataPath === '') throw new TensorCacheError(`${where}: missing dataPath`);
    // The engine reads shards over HTTP by this name: a URL or ../ here would choose the origin (shardPath.ts).
    const pathProblem = plainFileNameProblem(shard.dataPath);
    if (pathProblem) throw new TensorCacheError(`${where}: dataPath ${quoteName(shard.dataPath)} must be a file name under the model folder (${pathProblem})`);
    const sw = `${source}: shard ${shard.dataPath}`;
    if (!isInt(shard.nbytes)) throw new TensorCacheError(`${sw}: missing or invalid nbytes`);
    if (shard.format !== undefined && shard.format !== 'raw-shard') {
      throw new TensorCacheError(`${sw}: unsupported shard format ${String(shard.format)}`);
    }
    if (!Array.isArray(shard.records)) throw new TensorCacheError(`${sw}: missing records`);
    const records: TensorRecord[] = shard.records.map((r: unknown, ri: number) => {
      const rec = r as Partial<TensorRecord> | null;
      if (!rec || typeof rec !== 'object') throw new TensorCacheError(`${sw}: record ${ri} is not an object`);
      if (typeof rec.name !== 'string' || rec.name === '') throw new TensorCacheError(`${sw}: record ${ri} has no name`);
      const rw = `${source}: record ${rec.name}`;
      if (!Array.isArray(rec.shape) || !rec.shape.every(isInt)) throw new TensorCacheError(`${rw}: missing or invalid shape`);
      if (rec.dtype === undefined) throw new TensorCacheError(`${rw}: missing dtype`);
      if (!TENSOR_DTYPES.includes(rec.dtype)) throw new TensorCacheError(`${rw}: unknown dtype ${String(rec.dtype)}`);
      if (!isInt(rec.nbytes)) throw new TensorCacheError(`${rw}: missing or invalid nbytes`);
      if (!isInt(rec.byteOffset)) throw new TensorCacheError(`${rw}: missing or invalid byteOffset`);
      const format = typeof rec.format === 'string' ? rec.format : 'raw';
      const expected = numel(rec.shape) * storedElementBytes({ dtype: rec.dtype, format });
      if (rec.nbytes !== expected) {
        throw new TensorCacheError(
          `${rw}: nbytes ${rec.nbytes} does not match shape [${rec.shape.join(', ')}] ${rec.dtype}` +
            `${isStoredAsBf16({ dtype: rec.dtype, format }) ? ' (stored as bf16)' : ''} = ${expected} bytes`,
        );
      }
      if (rec.byteOffset + rec.nbytes > shard.nbytes!) {
        throw new TensorCacheError(`${rw}: byteOffset ${rec.byteOffset} + nbytes ${rec.nbytes} is beyond the end of ${shard.dataPath} (${shard.nbytes} bytes)`);
      }
      if (seen.has(rec.name)) throw new TensorCacheError(`${rw}: duplicate record name`);
      seen.add(rec.name);
      return { name: rec.name, shape: rec.shape, dtype: rec.dtype, format, nbytes: rec.nbytes, byteOffset: rec.byteOffset };
    });
    const entry: ShardEntry = { dataPath: shard.dataPath, format: 'raw-shard', nbytes: shard.nbytes, records };
    if (typeof shard.md5sum === 'string') entry.md5sum = shard.md5sum;
    if (typeof shard.sha256 === 'string') entry.sha256 = shard.sha256;
    return entry;
  });
  const metadata = obj.metadata && typeof obj.metadata === 'object' ? (obj.metadata as Record<string, unknown>) : {};
  return { metadata, records: shards };
}

/** All records of a cache by name, with their shard index. */
export function indexRecords(cache: TensorCache): Map<string, { shardIndex: number; record: TensorRecord }> {
  const m = new Map<string, { shardIndex: number; record: TensorRecord }>();
  cache.records.forEach((s, shardIndex) => s.records.forEach((record) => m.set(record.name, { shardIndex, record })));
  return m;
}

/** Check a fetched shard against its entry (length; truncation is the common failure). */
export function checkShardBuffer(shard: ShardEntry, buffer: ArrayBuffer | Uint8Array): void {
  if (buffer.byteLength !== shard.nbytes) {
    throw new TensorCacheError(
      `shard ${shard.dataPath} has ${buffer.byteLength} bytes but ${TENSOR_CACHE_FILE} says ${shard.nbytes}` +
        (buffer.byteLength < shard.nbytes ? ' (truncated download?)' : ''),
    );
  }
}

/** The stored bytes of a record inside its shard (a view, no copy). */
export function recordBytes(record: TensorRecord, shard: ArrayBuffer | Uint8Array): Uint8Array {
  const u8 = shard instanceof Uint8Array ? shard : new Uint8Array(shard);
  if (record.byteOffset + record.nbytes > u8.length) {
    throw new TensorCacheError(
      `record ${record.name}: bytes [${record.byteOffset}, ${record.byteOffset + record.nbytes}) are beyond the shard's ${u8.length} bytes (truncated shard?)`,
    );
  }
  return u8.subarray(record.byteOffset, record.byteOffset + record.nbytes);
}

function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** Decode a record: uint32 -> Uint32Array; float32/float16/bfloat16 (and f32-to-bf16) -> Float32Array. */
export function decodeRecord(record: TensorRecord, shard: ArrayBuffer | Uint8Array): Float32Array | Uint32Array {
  const bytes = recordBytes(record, shard);
  const buf = alignedCopy(bytes);
  if (record.dtype === 'uint32') return new Uint32Array(buf);
  if (record.dtype === 'float32') return isStoredAsBf16(record) ? bf16ArrayToF32(new Uint16Array(buf)) : new Float32Array(buf);
  if (record.dtype === 'float16') return f16ArrayToF32(new Uint16Array(buf));
  return bf16ArrayToF32(new Uint16Array(buf));
}

// ---------------------------------------------------------------------------------------------
// Writer

/** Encode a tensor's values as a record's stored bytes (float16 via f16.ts, float32 raw). */
export function encodeRecordData(data: Float32Array | Uint32Array, dtype: TensorDtype): Uint8Array {
  if (dtype === 'uint32') {
    if (!(data instanceof Uint32Array)) throw new TensorCacheError('uint32 record needs a Uint32Array');
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (!(data instanceof Float32Array)) throw new TensorCacheError(`${dtype} record needs a Float32Array`);
  if (dtype === 'float32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TensorCacheError(`encodeRecordData: use f32ArrayToF16/f32ArrayToBf16 for ${dtype}`);
}

export interface ShardFile {
  write(chunk: Uint8Array): Promise<void> | void;
  close(): Promise<void> | void;
}

/** Where the writer puts shard files (a directory in Node, memory in tests). */
export interface ShardSink {
  open(dataPath: string, nbytes: number): Promise<ShardFile> | ShardFile;
}

/** Keeps shard files in memory (tests, small models). */
export class MemoryShardSink implements ShardSink {
  readonly files = new Map<string, Uint8Array>();
  open(dataPath: string, nbytes: number): ShardFile {
    const buf = new Uint8Array(nbytes);
    let o = 0;
    return {
      write: (chunk) => {
        buf.set(chunk, o);
        o += chunk.length;
      },
      close: () => {
        this.files.set(dataPath, buf.subarray(0, o));
      },
    };
  }
}

export interface RecordSpec {
  name: string;
  shape: number[];
  dtype: TensorDtype;
  /** default: "raw" for float32 (kept exact), "f32-to-bf16" otherwise (raw bytes, MLC's label) */
  format?: string;
}

/** Produces a record's bytes in order by calling `emit` (lets a big tensor stream through in row blocks). */
export type ChunkProducer = (emit: (chunk: Uint8Array) => Promise<void>) => Promise<void>;

/**
 * Where a writer stands between two records, as plain data (IndexedDB can keep it): the shards
 * written, and the records of the shard still being filled, whose bytes `pendingData()` gives.
 */
export interface TensorCacheWriterState {
  shards: ShardEntry[];
  pending: TensorRecord[];
  pendingBytes: number;
  names: string[];
  counter: number;
  totalBytes: number;
}

/** Accumulates records into shards of about `shardBytes`, with MLC's placement rule. */
export class TensorCacheWriter {
  private readonly cap: number;
  private readonly prefix: string;
  private shards: ShardEntry[] = [];
  private pending: TensorRecord[] = [];
  private pendingBuf: Uint8Array | null = null;
  private pendingBytes = 0;
  private names = new Set<string>();
  private counter = 0;
  /** Sum of stored record bytes. */
  totalBytes = 0;

  constructor(
    private readonly sink: ShardSink,
    opts: { shardBytes?: number; prefix?: string } = {},
  ) {
    this.cap = opts.shardBytes ?? DEFAULT_SHARD_BYTES;
    this.prefix = opts.prefix ?? 'params_shard';
  }

  get recordCount(): number {
    return this.names.size;
  }

  /** The writer's state between records (a copy), to resume later with `TensorCacheWriter.resume`. */
  state(): TensorCacheWriterState {
    const copy = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
    return {
      shards: copy(this.shards),
      pending: copy(this.pending),
      pendingBytes: this.pendingBytes,
      names: [...this.names],
      counter: this.counter,
      totalBytes: this.totalBytes,
    };
  }

  /** The bytes of the shard being filled (a view: copy it before the next add). */
  pendingData(): Uint8Array {
    return this.pendingBuf ? this.pendingBuf.subarray(0, this.pendingBytes) : new Uint8Array(0);
  }

  /**
   * A writer that carries on from `state()`: the next record lands exactly where it would have
   * without the interruption, so the shards come out byte for byte the same.
   * @param pendingData the `pendingBytes` bytes `pendingData()` gave with that state
   */
  static resume(sink: ShardSink, opts: { shardBytes?: number; prefix?: string }, state: TensorCacheWriterState, pendingData: Uint8Array): TensorCacheWriter {
    if (pendingData.length !== state.pendingBytes) {
      throw new TensorCacheError(`cannot resume: ${pendingData.length} bytes of the pending shard saved, ${state.pendingBytes} expected`);
    }
    const w = new TensorCacheWriter(sink, opts);
    w.shards = state.shards;
    w.pending = state.pending;
    w.pendingBytes = state.pendingBytes;
    w.names = new Set(state.names);
    w.counter = state.counter;
    w.totalBytes = state.totalBytes;
    if (state.pendingBytes > 0) {
      w.pendingBuf = new Uint8Array(w.cap);
      w.pendingBuf.set(pendingData);
    }
    return w;
  }

  /** Add a record from its bytes, or from a producer of exactly numel·elemBytes bytes. */
  async add(spec: RecordSpec, data: Uint8Array | ChunkProducer): Promise<void> {
    if (this.names.has(spec.name)) throw new TensorCacheError(`duplicate record ${spec.name}`);
    this.names.add(spec.name);
    const format = spec.format ?? (spec.dtype === 'float32' ? 'raw' : 'f32-to-bf16');
    if (isStoredAsBf16({ dtype: spec.dtype, format })) {
      throw new TensorCacheError(`record ${spec.name}: pass bf16-encoded float32 as dtype bfloat16 or use format "raw"`);
    }
    const nbytes = numel(spec.shape) * DTYPE_BYTES[spec.dtype];
    const produce: ChunkProducer = data instanceof Uint8Array ? async (emit) => emit(data) : data;
    const rec: TensorRecord = { name: spec.name, shape: [...spec.shape], dtype: spec.dtype, format, nbytes, byteOffset: 0 };
    this.totalBytes += nbytes;
    if (this.pendingBytes + nbytes >= this.cap) {
      if (nbytes * 2 >= this.cap) {
        // out of band: a shard of its own, streamed straight to the sink
        await this.writeShard([rec], nbytes, produce);
        return;
      }
      await this.commit();
    }
    if (!this.pendingBuf) this.pendingBuf = new Uint8Array(this.cap);
    rec.byteOffset = this.pendingBytes;
    let written = 0;
    await produce(async (chunk) => {
      if (written + chunk.length > nbytes) throw new TensorCacheError(`record ${spec.name}: more than ${nbytes} bytes produced`);
      this.pendingBuf!.set(chunk, this.pendingBytes + written);
      written += chunk.length;
    });
    if (written !== nbytes) throw new TensorCacheError(`record ${spec.name}: produced ${written} bytes, expected ${nbytes}`);
    this.pendingBytes += nbytes;
    this.pending.push(rec);
  }

  private async commit(): Promise<void> {
    if (this.pendingBytes === 0 && this.pending.length === 0) return;
    const buf = this.pendingBuf!.subarray(0, this.pendingBytes);
    await this.writeShard(this.pending, this.pendingBytes, async (emit) => emit(buf));
    this.pending = [];
    this.pendingBytes = 0;
  }

  private async writeShard(records: TensorRecord[], nbytes: number, produce: ChunkProducer): Promise<void> {
    const dataPath = `${this.prefix}_${this.counter++}.bin`;
    const file = await this.sink.open(dataPath, nbytes);
    const md5 = await createMd5();
    const sha = await createSha256();
    let written = 0;
    await produce(async (chunk) => {
      written += chunk.length;
      if (written > nbytes) throw new TensorCacheError(`${dataPath}: more than ${nbytes} bytes produced`);
      md5.update(chunk);
      sha.update(chunk);
      await file.write(chunk);
    });
    await file.close();
    if (written !== nbytes) throw new TensorCacheError(`${dataPath}: produced ${written} bytes, expected ${nbytes}`);
    this.shards.push({ dataPath, format: 'raw-shard', nbytes, records, md5sum: md5.digest('hex'), sha256: sha.digest('hex') });
  }

  /** Flush the last shard and return the tensor-cache.json object. */
  async finish(metadata: Record<string, unknown> = {}): Promise<TensorCache> {
    await this.commit();
    this.pendingBuf = null;
    return { metadata, records: this.shards };
  }
}
