/**
 * "Add from Hugging Face": convert a Llama checkpoint (the hub by repo id, or picked files) into
 * our MLC shards in IndexedDB, tensor by tensor, resumable after a reload, a closed tab or a
 * dropped network. The conversion is src/formats/hfConversion.ts, the one `npm run convert`
 * runs, so the stored shards are byte for byte the CLI's. Runs in a worker (convertWorker.ts).
 *
 * IndexedDB, beside the download manager's entries (db.ts):
 *   ['convert', id]                ConversionState: the job, the next parameter, the writer's state
 *   ['convert-pending', id, off]   ArrayBuffer: bytes [off, …) of the shard still being filled
 *   ['file', id, path] / ['chunk', id, path, i]: each finished shard, as a download stores it
 * After each parameter, its pending bytes and the new state go in one transaction: a resume
 * rebuilds the writer from them and carries on with the next parameter, never one already done.
 * Finished, the model gets its tensor-cache.json, mlc-chat-config.json, tokenizer and a model
 * record whose manifest pins every file's sha256, like any downloaded model.
 */
import { promisifyRequest } from 'idb-keyval';
import { MLC_CHAT_CONFIG_FILE, TENSOR_CACHE_FILE, TOKENIZER_FILE } from '../formats/baseModelFiles.ts';
import { createSha256 } from '../formats/hashes.ts';
import {
  cacheMetadata,
  CheckpointError,
  LLAMA2_VOCAB_SIZE,
  paramName,
  planParams,
  TOKENIZER_FILES,
  validateSources,
  writeParams,
} from '../formats/hfConversion.ts';
import { floatDtype, type QuantMode } from '../formats/llamaConfig.ts';
import { parseManifest, type ManifestFile, type ModelManifest } from '../formats/manifest.ts';
import { writeMlcChatConfig } from '../formats/mlcChatConfig.ts';
import { RangeCheckpoint, type CheckpointFiles } from '../formats/rangeCheckpoint.ts';
import { DTYPE_BYTES, TensorCacheWriter, type ShardSink, type TensorCacheWriterState } from '../formats/tensorCache.ts';
import { chunkKey, deleteModelEntries, fileKey, modelKey, modelStore, prefixRange, putEntries, resetFile, type StoredFile, type StoredModel } from './db.ts';
import { DEFAULT_CHUNK_SIZE } from './download.ts';
import { emit } from './events.ts';
import { QuotaError } from './errors.ts';

export const CONVERT_QUANTS = ['q4f16_1', 'q4f32_1'] as const satisfies readonly QuantMode[];
export type ConvertQuant = (typeof CONVERT_QUANTS)[number];

/** What is converted, and into which stored model. Plain data: it is saved (never with a token). */
export interface ConvertJob {
  /** Storage id of the converted model. */
  id: string;
  name: string;
  quant: ConvertQuant;
  source: { kind: 'hub'; repo: string; hubUrl: string; revision?: string } | { kind: 'local'; folder: string };
}

/** A conversion in progress, as saved after each parameter. */
export interface ConversionState {
  job: ConvertJob;
  /** Identifies the checkpoint (its files and sizes): a resume refuses a different one. */
  sourceKey: string;
  /** The next parameter to convert, of `paramCount`. */
  next: number;
  paramCount: number;
  writer: TensorCacheWriterState;
  /** Shard number of the pending bytes saved, and how many are saved. */
  pendingShard: number;
  pendingSaved: number;
  /** Source bytes converted, of `bytesTotal`. */
  bytesDone: number;
  bytesTotal: number;
  startedAt: number;
  updatedAt: number;
}

export interface ConvertProgress {
  modelId: string;
  tensorsDone: number;
  tensorCount: number;
  /** The parameter being converted (MLC name). */
  tensor: string;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
  /** The parameter this run started at (> 0: resumed). */
  resumedAt: number;
}

export interface ConvertOptions {
  signal?: AbortSignal;
  onProgress?: (p: ConvertProgress) => void;
  /** Shard cap (default MLC's 32 MiB; tests use small shards). */
  shardBytes?: number;
  /** Bytes of float32 per row block read (default 8 MiB). */
  blockBytes?: number;
  /** Bytes per IndexedDB chunk (default 8 MiB, the download manager's). */
  chunkSize?: number;
}

export const convertKey = (id: string): IDBValidKey => ['convert', id];
const pendingKey = (id: string, offset: number): IDBValidKey => ['convert-pending', id, offset];

/** A storage id for a converted model: "hf-<repo or folder>-<quant>" in the manifest id alphabet. */
export function convertedModelId(sourceName: string, quant: ConvertQuant): string {
  const slug = sourceName
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+|-+$/g, '')
    .slice(0, 100);
  return `hf-${slug || 'model'}-${quant.replace('_', '-')}`;
}

/** Every conversion that stopped before it finished (to offer Resume). */
export async function pendingConversions(): Promise<ConversionState[]> {
  return modelStore()('readonly', (s) => promisifyRequest(s.getAll(prefixRange(['convert'])) as IDBRequest<ConversionState[]>));
}

/** Forget a stopped conversion and what it stored. */
export async function discardConversion(id: string): Promise<void> {
  await modelStore()('readwrite', (s) => {
    s.delete(convertKey(id));
    s.delete(prefixRange(['convert-pending', id]));
    return promisifyRequest(s.transaction);
  });
  await deleteModelEntries(id);
}

/** A ShardSink writing finished shards into IndexedDB as the download manager stores files (chunked, sha256 pinned). */
function idbShardSink(id: string, chunkSize: number): ShardSink {
  return {
    async open(path: string) {
      await resetFile(id, path, undefined); // what an interrupted attempt left of this shard
      const sha = await createSha256();
      let buf = new Uint8Array(chunkSize);
      let fill = 0;
      let stored = 0;
      let chunks = 0;
      const record = (status: StoredFile['status'], sha256?: string): StoredFile => ({
        modelId: id,
        path,
        status,
        bytesStored: stored,
        chunkSize,
        chunkCount: chunks,
        sha256,
        expectedSha256: sha256,
        pinned: sha256 ? true : undefined,
        updatedAt: Date.now(),
      });
      const flush = async (status: StoredFile['status']) => {
        const entries: [IDBValidKey, unknown][] = [];
        if (fill > 0) {
          entries.push([chunkKey(id, path, chunks), buf.slice(0, fill).buffer]);
          sha.update(buf.subarray(0, fill));
          stored += fill;
          chunks++;
          fill = 0;
        }
        entries.push([fileKey(id, path), record(status, status === 'complete' ? sha.digest('hex') : undefined)]);
        await putEntries(entries);
      };
      return {
        async write(chunk: Uint8Array) {
          let o = 0;
          while (o < chunk.length) {
            const n = Math.min(chunk.length - o, chunkSize - fill);
            buf.set(chunk.subarray(o, o + n), fill);
            fill += n;
            o += n;
            if (fill === chunkSize) await flush('partial');
          }
        },
        async close() {
          await flush('complete');
          buf = new Uint8Array(0);
        },
      };
    },
  };
}

/** Store one small file whole (tensor-cache.json, configs, tokenizer), its sha256 pinned. */
async function storeSmallFile(id: string, path: string, bytes: Uint8Array, chunkSize: number): Promise<ManifestFile> {
  const sink = idbShardSink(id, chunkSize);
  const f = await sink.open(path, bytes.length);
  await f.write(bytes);
  await f.close();
  const h = await createSha256();
  h.update(bytes);
  return { path, size: bytes.length, sha256: h.digest('hex') };
}

/** Rate and ETA over the last few seconds of this run. */
class Rate {
  private samples: [number, number][] = [];
  sample(bytes: number): number {
    const now = performance.now();
    this.samples.push([now, bytes]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    const [t0, b0] = this.samples[0];
    return now - t0 > 200 ? ((bytes - b0) * 1000) / (now - t0) : 0;
  }
}

/**
 * Convert (or resume converting) a checkpoint into the stored model `job.id`.
 * @param tokenizer files to use when the checkpoint has no tokenizer.json (the bundled Llama-2 one)
 * @returns the stored model's manifest
 * @throws CheckpointError (not a Llama, missing tensors, unreadable files, the hub's refusals);
 *   what was converted so far stays saved for a resume, unless the checkpoint itself is unusable
 */
export async function convertCheckpointToStore(
  job: ConvertJob,
  files: CheckpointFiles,
  fallbackTokenizer: () => Promise<Record<string, object>>,
  opts: ConvertOptions = {},
): Promise<ModelManifest> {
  const id = job.id;
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const ckpt = await RangeCheckpoint.open(files);
  const config = ckpt.llamaConfig();
  const params = planParams(config);
  const { totalParams, sourceBytes } = validateSources(ckpt, params);
  const bytesTotal = sourceBytes.reduce((a, b) => a + b, 0);
  if (!files.paths.includes(TOKENIZER_FILE) && config.vocabSize !== LLAMA2_VOCAB_SIZE) {
    throw new CheckpointError(
      `${files.where} has no ${TOKENIZER_FILE}, and its vocabulary (${config.vocabSize} ids) is not Llama-2's (${LLAMA2_VOCAB_SIZE}), so the bundled Llama-2 tokenizer does not fit it.`,
    );
  }
  const sourceKey = JSON.stringify([...ckpt.tensors.entries()].map(([n, t]) => [n, t.dtype, t.shape, files.size(t.file) ?? null]).sort());

  // Resume from the saved state when it is this very conversion; else start clean.
  const saved = await modelStore()('readonly', (s) => promisifyRequest(s.get(convertKey(id)) as IDBRequest<ConversionState | undefined>));
  const sink = idbShardSink(id, chunkSize);
  const shardOpts = { shardBytes: opts.shardBytes };
  let state: ConversionState;
  let writer: TensorCacheWriter;
  const same = saved && saved.sourceKey === sourceKey && saved.job.quant === job.quant && saved.paramCount === params.length;
  if (same) {
    const pieces = await modelStore()('readonly', (s) => promisifyRequest(s.getAll(prefixRange(['convert-pending', id])) as IDBRequest<ArrayBuffer[]>));
    const pending = new Uint8Array(saved.pendingSaved);
    let at = 0;
    for (const p of pieces) {
      pending.set(new Uint8Array(p), at); // keys sort by offset, so pieces come in order
      at += p.byteLength;
    }
    if (at !== saved.pendingSaved)
      throw new CheckpointError(`the saved conversion of ${job.name} is damaged (${at} of ${saved.pendingSaved} pending bytes): discard it and start again`);
    state = { ...saved, job };
    writer = TensorCacheWriter.resume(sink, shardOpts, saved.writer, pending);
  } else {
    // Room for what will be stored (4-bit weights plus one scale per 32), before anything is written.
    const need = Math.ceil(totalParams * (0.5 + DTYPE_BYTES[floatDtype(job.quant)] / 32));
    const est = (await navigator.storage?.estimate?.()) ?? {};
    const available = (est.quota ?? Infinity) - (est.usage ?? 0);
    if (need > available) throw new QuotaError(need, available, job.name);
    void navigator.storage?.persist?.().catch(() => false);
    await discardConversion(id);
    writer = new TensorCacheWriter(sink, shardOpts);
    state = {
      job,
      sourceKey,
      next: 0,
      paramCount: params.length,
      writer: writer.state(),
      pendingShard: 0,
      pendingSaved: 0,
      bytesDone: 0,
      bytesTotal,
      startedAt: Date.now(),
      updatedAt: Date.now(),
    };
    await putEntries([[convertKey(id), state]]);
  }

  const resumedAt = state.next;
  const rate = new Rate();
  let lastEmit = 0;
  const progress = (tensor: string, bytesDone: number, force = false) => {
    const now = performance.now();
    if (!force && now - lastEmit < 100) return;
    lastEmit = now;
    const bytesPerSecond = rate.sample(bytesDone);
    opts.onProgress?.({
      modelId: id,
      tensorsDone: state.next,
      tensorCount: params.length,
      tensor,
      bytesDone,
      bytesTotal,
      bytesPerSecond,
      etaSeconds: bytesPerSecond > 0 ? (bytesTotal - bytesDone) / bytesPerSecond : null,
      resumedAt,
    });
  };
  progress(params[state.next] ? paramName(params[state.next]) : '', state.bytesDone, true);

  await writeParams(ckpt, params, job.quant, writer, {
    from: state.next,
    blockBytes: opts.blockBytes,
    signal: opts.signal,
    onBytes: (b) => progress(paramName(params[state.next]), state.bytesDone + b),
    onParamDone: async (index) => {
      const w = writer.state();
      const data = writer.pendingData();
      const newShard = w.counter !== state.pendingShard;
      const from = newShard ? 0 : state.pendingSaved;
      const delta = data.slice(from);
      state = {
        ...state,
        next: index + 1,
        writer: w,
        pendingShard: w.counter,
        pendingSaved: data.length,
        bytesDone: state.bytesDone + sourceBytes[index],
        updatedAt: Date.now(),
      };
      const st = state;
      await modelStore()('readwrite', (s) => {
        if (newShard) s.delete(prefixRange(['convert-pending', id]));
        if (delta.length > 0) s.put(delta.buffer, pendingKey(id, from));
        s.put(st, convertKey(id));
        return promisifyRequest(s.transaction);
      });
      progress(params[index + 1] ? paramName(params[index + 1]) : '', state.bytesDone, true);
    },
  });

  // Every parameter is in: the last shard, the index, the configs, the tokenizer.
  const cache = await writer.finish(cacheMetadata(writer, totalParams));
  const tokenizer = new Map<string, Uint8Array>();
  for (const f of TOKENIZER_FILES) {
    if (files.paths.includes(f)) tokenizer.set(f, await files.read(f, 0, files.size(f) ?? 0));
  }
  if (!tokenizer.has(TOKENIZER_FILE)) {
    tokenizer.clear();
    for (const [f, json] of Object.entries(await fallbackTokenizer())) tokenizer.set(f, new TextEncoder().encode(JSON.stringify(json)));
  }
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o, null, 2));
  const small: [string, Uint8Array][] = [
    [TENSOR_CACHE_FILE, enc(cache)],
    [MLC_CHAT_CONFIG_FILE, enc(writeMlcChatConfig(config, job.quant, [...tokenizer.keys()]))],
    ...tokenizer,
  ];
  const manifestFiles: ManifestFile[] = [];
  for (const [path, bytes] of small) manifestFiles.push(await storeSmallFile(id, path, bytes, chunkSize));
  for (const s of cache.records) manifestFiles.push({ path: s.dataPath, size: s.nbytes, sha256: s.sha256, md5: s.md5sum });
  const from = job.source.kind === 'hub' ? `${job.source.repo} on Hugging Face` : `the folder ${job.source.folder}`;
  const manifest = parseManifest(
    {
      schema: 1,
      id,
      name: job.name,
      kind: 'base',
      description: `Converted in this browser from ${from} to ${job.quant}.`,
      baseUrl: 'local:/',
      quantization: job.quant,
      files: manifestFiles,
    },
    `${id} (converted model)`,
  );
  const now = Date.now();
  const model: StoredModel = {
    id,
    manifest,
    files: manifestFiles,
    tensorCachePath: TENSOR_CACHE_FILE,
    createdAt: state.startedAt,
    updatedAt: now,
    completedAt: now,
  };
  await modelStore()('readwrite', (s) => {
    s.put(model, modelKey(id));
    s.delete(convertKey(id));
    s.delete(prefixRange(['convert-pending', id]));
    return promisifyRequest(s.transaction);
  });
  emit({ type: 'state', modelId: id, state: 'stored' });
  return manifest;
}
