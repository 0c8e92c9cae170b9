/**
 * The download manager: fetch a model's files into IndexedDB, chunk by chunk, hashing as bytes
 * arrive, resuming where a previous attempt (or tab) stopped.
 *
 * One model is downloaded by one tab at a time (a Web Lock); a second tab calling downloadModel
 * waits for the lock, relays the first tab's progress to its listeners, and then finds the files
 * complete (or carries on from where the first tab stopped, if it failed).
 */

import { fileUrl, parseManifestJson, parseShardIndex, withIndexedShards, type ManifestFile, type ModelManifest } from '../formats/manifest.ts';
import { activeDownloads, lockName } from './active.ts';
import { chunkKey, fileKey, getChunks, getFile, getFiles, getModel, modelKey, putEntries, resetFile, type StoredFile, type StoredModel } from './db.ts';
import { CancelledError, errorInfo, HttpError, IntegrityError, isQuotaExceeded, NetworkError, QuotaError } from './errors.ts';
import {
  appearsOffline,
  BrokenFileError,
  classifyResponse,
  FileNotFoundError,
  fetchFileBytes,
  hostOf,
  HostUnreachableError,
  HttpStatusError,
  parseJsonFile,
} from '../formats/fetchFile.ts';
import { emit, onCancelRequest } from './events.ts';
import { computeState } from './models.ts';
import { createMd5, createSha256, restoreHashState } from '../formats/hashes.ts';

export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

export interface DownloadOptions {
  /** Abort to cancel (same as cancelDownload(id)). What was downloaded is kept. */
  signal?: AbortSignal;
  /** Files in flight at once. Default 3. */
  concurrency?: number;
  /** Bytes per IndexedDB chunk for new files. Default 8 MiB. */
  chunkSize?: number;
  /** Automatic resumes of one file after a lost connection or an HTTP 5xx/429. Default 2. */
  retries?: number;
  /** Delay before the first automatic resume, doubled each time. Default 1000 ms. */
  retryDelayMs?: number;
  /**
   * Where the free-room figure comes from. Default navigator.storage.estimate(). Tests pass a
   * small quota here: only the room computation uses it, the check itself is the real one.
   */
  estimate?: () => Promise<StorageEstimate>;
  /**
   * Local files to store instead of fetching (e.g. a model folder the user picked), by path.
   * Files not found here are fetched.
   */
  localFiles?: Map<string, Blob>;
  /** Minimum milliseconds between progress events of one file. Default 100. */
  progressIntervalMs?: number;
}

/**
 * An opened body: `length` is the decoded bytes it should hold from `start` (null: unknown, e.g. a
 * gzip-encoded or close-delimited body), or the file is missing (`missing` says how).
 */
type Opened = { body: ReadableStream<Uint8Array>; start: number; length: number | null; delimited: boolean } | { missing: FileNotFoundError };
type BodyOpener = (offset: number, signal: AbortSignal) => Promise<Opened>;

/**
 * Download (or resume) a model into IndexedDB. Resolves when every file is stored and verified.
 * Progress and state changes go to `subscribe` listeners (every tab).
 * @throws QuotaError (before any byte is written, or when a write hits the quota), NetworkError,
 *   HttpError, IntegrityError (the corrupt file was discarded), CancelledError, ManifestError
 */
export function downloadModel(manifest: ModelManifest, opts: DownloadOptions = {}): Promise<void> {
  const existing = activeDownloads.get(manifest.id);
  if (existing) return existing.promise;
  const controller = new AbortController();
  const cancel = () => controller.abort(new CancelledError(manifest.name));
  if (opts.signal?.aborted) cancel();
  opts.signal?.addEventListener('abort', cancel, { once: true });
  const unregister = onCancelRequest(manifest.id, cancel);
  const run = () => runDownload(manifest, opts, controller.signal);

  const promise = (async () => {
    try {
      if (typeof navigator === 'undefined' || !navigator.locks) return await run();
      const done = await navigator.locks.request(lockName(manifest.id), { ifAvailable: true }, async (lock) => {
        if (!lock) return false;
        await run();
        return true;
      });
      if (done) return;
      emit({ type: 'state', modelId: manifest.id, state: 'waiting' });
      try {
        await navigator.locks.request(lockName(manifest.id), { signal: controller.signal }, run);
      } catch (e) {
        if (controller.signal.aborted) throw new CancelledError(manifest.name);
        throw e;
      }
    } finally {
      opts.signal?.removeEventListener('abort', cancel);
      unregister();
      activeDownloads.delete(manifest.id);
    }
  })();
  activeDownloads.set(manifest.id, { controller, promise });
  return promise;
}

/** Progress bookkeeping of one download run. */
class Progress {
  readonly done = new Map<string, number>();
  readonly size = new Map<string, number | null>();
  readonly index = new Map<string, number>();
  readonly complete = new Set<string>();
  private readonly lastEmit = new Map<string, number>();
  private sessionBytes = 0;
  private readonly samples: [number, number][] = [];

  constructor(
    readonly modelId: string,
    files: ManifestFile[],
    private readonly intervalMs: number,
  ) {
    files.forEach((f, i) => {
      this.size.set(f.path, f.size);
      this.index.set(f.path, i + 1);
      this.done.set(f.path, 0);
    });
  }

  set(path: string, bytes: number, force = false): void {
    const prev = this.done.get(path) ?? 0;
    if (bytes > prev) this.sessionBytes += bytes - prev;
    this.done.set(path, bytes);
    const now = performance.now();
    if (!force && now - (this.lastEmit.get(path) ?? -Infinity) < this.intervalMs) return;
    this.lastEmit.set(path, now);
    this.emit(path, now);
  }

  markComplete(path: string, bytes: number): void {
    this.complete.add(path);
    if (this.size.get(path) == null) this.size.set(path, bytes);
    this.set(path, bytes, true);
  }

  private emit(path: string, now: number): void {
    this.samples.push([now, this.sessionBytes]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const rate = now - t0 > 200 ? ((this.sessionBytes - b0) * 1000) / (now - t0) : 0;
    let bytesTotal = 0;
    let bytesDone = 0;
    for (const [p, s] of this.size) {
      const d = this.done.get(p) ?? 0;
      bytesTotal += s ?? d;
      bytesDone += d;
    }
    emit({
      type: 'progress',
      modelId: this.modelId,
      file: path,
      fileIndex: this.index.get(path) ?? 0,
      fileCount: this.size.size,
      fileBytesDone: this.done.get(path) ?? 0,
      fileBytesTotal: this.size.get(path) ?? null,
      filesDone: this.complete.size,
      bytesDone,
      bytesTotal,
      bytesPerSecond: rate,
      etaSeconds: rate > 0 ? Math.max(0, bytesTotal - bytesDone) / rate : null,
    });
  }
}

interface RunCtx {
  manifest: ModelManifest;
  opts: DownloadOptions;
  signal: AbortSignal;
  chunkSize: number;
  progress: Progress;
  estimate: () => Promise<StorageEstimate>;
  remainingBytes: () => number;
}

async function runDownload(manifest: ModelManifest, opts: DownloadOptions, userSignal: AbortSignal): Promise<void> {
  const id = manifest.id;
  emit({ type: 'state', modelId: id, state: 'downloading' });
  const estimate = opts.estimate ?? (() => navigator.storage.estimate());
  try {
    userSignal.throwIfAborted();
    // 1. The file list (the shard index, when named, is read first: it lists the shards).
    let files = manifest.files.map((f) => ({ ...f }));
    let tensorCachePath: string | undefined;
    let tensorCacheBytes: Uint8Array | undefined;
    if (manifest.shardIndex) {
      for (const cand of manifest.shardIndex) {
        const rec = await getFile(id, cand);
        if (rec?.status === 'complete') {
          tensorCachePath = cand;
          tensorCacheBytes = await readWhole(id, rec);
          break;
        }
      }
      if (!tensorCachePath) {
        for (const cand of manifest.shardIndex) {
          const local = opts.localFiles?.get(cand);
          const bytes = local ? new Uint8Array(await local.arrayBuffer()) : await fetchSmall(manifest, cand, userSignal);
          if (bytes) {
            tensorCachePath = cand;
            tensorCacheBytes = bytes;
            break;
          }
        }
      }
      if (!tensorCachePath || !tensorCacheBytes)
        throw new HttpError(manifest.shardIndex.join(' or '), 404, fileUrl(manifest, { path: manifest.shardIndex[0] }));
      const json = parseManifestJson(tensorCacheBytes, tensorCachePath);
      files = withIndexedShards({ ...manifest, files }, parseShardIndex(json, tensorCachePath));
      const tcPath = tensorCachePath;
      const tcIndex = files.findIndex((f) => f.path === tcPath);
      if (tcIndex < 0) files.unshift({ path: tcPath, size: tensorCacheBytes.length });
      else if (files[tcIndex].size === null) files[tcIndex] = { ...files[tcIndex], size: tensorCacheBytes.length };
    }

    // 2. What is stored already; drop records that no longer match the manifest.
    const recs = new Map((await getFiles(id)).map((r) => [r.path, r]));
    for (const f of files) {
      const r = recs.get(f.path);
      if (!r) continue;
      const shaChanged = f.sha256 !== undefined && r.expectedSha256 !== undefined && r.expectedSha256 !== f.sha256;
      const sizeChanged = f.size !== null && r.status === 'complete' && r.bytesStored !== f.size;
      if (shaChanged || sizeChanged) {
        await resetFile(id, f.path, undefined);
        recs.delete(f.path);
      }
    }
    const remaining = new Map<string, number>();
    for (const f of files) {
      const r = recs.get(f.path);
      if (r?.status === 'complete') continue;
      remaining.set(f.path, Math.max(0, (f.size ?? 0) - (r?.bytesStored ?? 0)));
    }
    const sumRemaining = () => [...remaining.values()].reduce((a, b) => a + b, 0);

    // 3. Room, before any byte is written.
    const need = sumRemaining();
    const est = await estimate();
    const available = (est.quota ?? Infinity) - (est.usage ?? 0);
    if (need > available) throw new QuotaError(need, available, manifest.name);
    void navigator.storage?.persist?.().catch(() => false);

    // 4. The model record.
    const prev = await getModel(id);
    const now = Date.now();
    const model: StoredModel = {
      id,
      manifest,
      files,
      tensorCachePath,
      createdAt: prev?.createdAt ?? now,
      updatedAt: now,
      lastError: prev?.lastError,
    };
    await guardQuota(() => putEntries([[modelKey(id), model]]), manifest, sumRemaining, estimate);

    // 5. Files, a few at a time.
    const progress = new Progress(id, files, opts.progressIntervalMs ?? 100);
    for (const f of files) {
      const r = recs.get(f.path);
      if (r?.status === 'complete') progress.markComplete(f.path, r.bytesStored);
      else if (r) progress.set(f.path, r.bytesStored, true);
    }
    const inner = new AbortController();
    const onAbort = () => inner.abort(userSignal.reason);
    userSignal.addEventListener('abort', onAbort, { once: true });
    const ctx: RunCtx = {
      manifest,
      opts,
      signal: inner.signal,
      chunkSize: opts.chunkSize ?? DEFAULT_CHUNK_SIZE,
      progress,
      estimate,
      remainingBytes: sumRemaining,
    };
    const queue = files.filter((f) => recs.get(f.path)?.status !== 'complete');
    let firstError: unknown;
    const worker = async () => {
      while (queue.length > 0 && !inner.signal.aborted) {
        const f = queue.shift()!;
        const opener =
          f.path === tensorCachePath && tensorCacheBytes
            ? blobOpener(new Blob([tensorCacheBytes as BlobPart]))
            : opts.localFiles?.has(f.path)
              ? blobOpener(opts.localFiles.get(f.path)!)
              : httpOpener(fileUrl(manifest, f), f.path);
        try {
          await withRetries(ctx, () => storeFile(ctx, f, opener, (left) => remaining.set(f.path, left)));
          remaining.set(f.path, 0);
        } catch (e) {
          if (firstError === undefined) firstError = e;
          inner.abort(e);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 3) }, worker));
    } finally {
      userSignal.removeEventListener('abort', onAbort);
    }
    if (userSignal.aborted) throw new CancelledError(manifest.name);
    if (firstError !== undefined) throw firstError;

    await putEntries([[modelKey(id), { ...model, updatedAt: Date.now(), completedAt: Date.now(), lastError: undefined }]]);
    emit({ type: 'state', modelId: id, state: 'stored' });
  } catch (e) {
    const err = userSignal.aborted ? new CancelledError(manifest.name) : e;
    const info = errorInfo(err);
    const m = await getModel(id).catch(() => undefined);
    if (m) await putEntries([[modelKey(id), { ...m, updatedAt: Date.now(), lastError: info }]]).catch(() => {});
    emit({ type: 'state', modelId: id, state: await computeState(id, true).catch(() => 'partial' as const), error: info });
    throw err;
  }
}

/**
 * Fetch a small file whole (the tensor cache), through the fetch layer: null when the host does not
 * have it (a 404, or its index page), so the next candidate name is tried; a cut-short or
 * unparseable answer is an error, never a candidate.
 */
async function fetchSmall(manifest: ModelManifest, path: string, signal: AbortSignal): Promise<Uint8Array | null> {
  const url = fileUrl(manifest, { path });
  try {
    const bytes = await fetchFileBytes(url, { file: path, signal, init: { cache: 'no-store' } });
    if (bytes !== null) parseJsonFile(new TextDecoder().decode(bytes), path, url);
    return bytes;
  } catch (e) {
    throw storageError(e, path, url);
  }
}

/** The fetch layer's errors in the download manager's terms (NetworkError and HttpError are what Resume and the retries know). */
function storageError(e: unknown, path: string, url: string): unknown {
  if (e instanceof HostUnreachableError) return new NetworkError(path, { cause: e, host: hostOf(url), offline: e.offline });
  if (e instanceof HttpStatusError) return new HttpError(path, e.status, url);
  return e;
}

async function readWhole(id: string, rec: StoredFile): Promise<Uint8Array> {
  const out = new Uint8Array(rec.bytesStored);
  let at = 0;
  for (let i = 0; i < rec.chunkCount; i++) {
    const [c] = await getChunks(id, rec.path, i, 1);
    if (!c) throw new Error(`chunk ${i} of ${rec.path} is missing`);
    out.set(new Uint8Array(c), at);
    at += c.byteLength;
  }
  return out;
}

function httpOpener(url: string, path: string): BodyOpener {
  const go = async (from: number, signal: AbortSignal): Promise<Response> => {
    try {
      return await fetch(url, { signal, cache: 'no-store', headers: from > 0 ? { Range: `bytes=${from}-` } : {} });
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      throw new NetworkError(path, { cause: e, host: hostOf(url), offline: appearsOffline() });
    }
  };
  return async (offset, signal) => {
    let resp = await go(offset, signal);
    let start = 0;
    if (offset > 0 && resp.status === 206) {
      const m = /^bytes (\d+)-/.exec(resp.headers.get('Content-Range') ?? '');
      if (!m || Number(m[1]) === offset) start = offset;
    }
    if (offset > 0 && start === 0 && (resp.status === 206 || resp.status === 416)) {
      // The server resumed from elsewhere, or refused the range: start over.
      await resp.body?.cancel().catch(() => {});
      resp = await go(0, signal);
    }
    // Found, missing (404/410, or an index page in its place) or an HTTP error: the fetch layer decides.
    const c = await classifyResponse(resp);
    if (c.kind === 'missing') return { missing: new FileNotFoundError(path, url, c.reason, c.status) };
    if (c.kind === 'error') throw new HttpError(path, c.status, url);
    return { body: c.body, start, length: c.length, delimited: c.delimited };
  };
}

function blobOpener(blob: Blob): BodyOpener {
  return async (offset) => ({ body: blob.slice(offset).stream() as ReadableStream<Uint8Array>, start: offset, length: blob.size - offset, delimited: true });
}

async function withRetries(ctx: RunCtx, attempt: () => Promise<void>): Promise<void> {
  const retries = ctx.opts.retries ?? 2;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      // A body cut short (BrokenFileError: JSON that did not parse) is worth another try too.
      const retriable = e instanceof NetworkError || e instanceof BrokenFileError || (e instanceof HttpError && (e.status >= 500 || e.status === 429));
      if (!retriable || n >= retries || ctx.signal.aborted) throw e;
      await sleep((ctx.opts.retryDelayMs ?? 1000) * 2 ** n, ctx.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Writes that hit the quota become QuotaError; the transaction wrote nothing. */
async function guardQuota<T>(
  write: () => Promise<T>,
  manifest: ModelManifest,
  remaining: () => number,
  estimate: () => Promise<StorageEstimate>,
  writeBytes = 0,
): Promise<T> {
  try {
    return await write();
  } catch (e) {
    if (!isQuotaExceeded(e)) throw e;
    const est = await estimate().catch(() => ({}) as StorageEstimate);
    throw new QuotaError(Math.max(remaining(), writeBytes), (est.quota ?? 0) - (est.usage ?? 0), manifest.name, true);
  }
}

function freshRecord(modelId: string, path: string, chunkSize: number, expectedSha256: string | undefined, corrupt?: boolean): StoredFile {
  return { modelId, path, status: 'partial', bytesStored: 0, chunkSize, chunkCount: 0, expectedSha256, corrupt, updatedAt: Date.now() };
}

/**
 * Store one file: resume after the committed chunks, hash every byte, commit chunk + record
 * together, and record the file complete only when the whole-file sha256 matches.
 */
async function storeFile(ctx: RunCtx, entry: ManifestFile, open: BodyOpener, setRemaining: (bytes: number) => void): Promise<void> {
  const { manifest, signal, progress } = ctx;
  const id = manifest.id;
  const path = entry.path;
  let rec = await getFile(id, path);
  if (rec?.status === 'complete') return;
  const expectedSha = entry.sha256 ?? rec?.expectedSha256;
  rec ??= freshRecord(id, path, ctx.chunkSize, expectedSha);
  const hasher = await createSha256();
  // MLC's tensor caches publish each shard's md5sum: checked too, streamed beside the sha256.
  const md5 = entry.md5 !== undefined ? await createMd5() : null;
  if (rec.bytesStored > 0 && (!restoreHashState(hasher, rec.hashState) || (md5 !== null && !restoreHashState(md5, rec.md5State)))) {
    // Stored by a build whose hash state this one cannot continue: the bytes are fine, but they
    // would have to be read back to be hashed; fetching the file again is simpler.
    rec = freshRecord(id, path, rec.chunkSize, expectedSha, rec.corrupt);
    await resetFile(id, path, rec);
    progress.set(path, 0, true);
  }

  const opened = await open(rec.bytesStored, signal);
  if ('missing' in opened) {
    // Nothing is stored for a missing file: an optional one is skipped, never kept as the index page.
    if (entry.optional) {
      progress.markComplete(path, 0);
      return;
    }
    // A plain 404 keeps its HttpError; an index page in the file's place says so.
    throw opened.missing.reason === 'status' ? new HttpError(path, opened.missing.status, fileUrl(manifest, entry)) : opened.missing;
  }
  if (opened.start === 0 && rec.bytesStored > 0) {
    // The server did not resume: drop what we had.
    rec = freshRecord(id, path, rec.chunkSize, expectedSha, rec.corrupt);
    await resetFile(id, path, rec);
    progress.set(path, 0, true);
    hasher.init();
    md5?.init();
  }
  const chunkSize = rec.chunkSize;
  const resumedAt = rec.bytesStored;
  // The file's full size: the manifest's, else what this response promises (null: a gzip-encoded or close-delimited body).
  const expectedSize = entry.size ?? (opened.length !== null ? resumedAt + opened.length : null);
  let buf = new Uint8Array(chunkSize);
  let bufLen = 0;
  let current: StoredFile = rec;

  const commit = async (data: ArrayBuffer | null, finalFields?: Partial<StoredFile>) => {
    const next: StoredFile = {
      ...current,
      bytesStored: current.bytesStored + (data?.byteLength ?? 0),
      chunkCount: current.chunkCount + (data ? 1 : 0),
      hashState: finalFields ? undefined : hasher.save(),
      md5State: finalFields || !md5 ? undefined : md5.save(),
      updatedAt: Date.now(),
      ...finalFields,
    };
    const entries: [IDBValidKey, unknown][] = [[fileKey(id, path), next]];
    if (data) entries.unshift([chunkKey(id, path, current.chunkCount), data]);
    await guardQuota(() => putEntries(entries), manifest, ctx.remainingBytes, ctx.estimate, data?.byteLength ?? 0);
    current = next;
    if (entry.size !== null) setRemaining(Math.max(0, entry.size - next.bytesStored));
  };

  const discardCorrupt = async (detail: 'sha256 mismatch' | 'size mismatch', got?: string) => {
    await reader.cancel().catch(() => {});
    await resetFile(id, path, freshRecord(id, path, ctx.chunkSize, expectedSha, true));
    progress.set(path, 0, true);
    return new IntegrityError(path, detail, detail === 'sha256 mismatch' ? expectedSha : String(expectedSize), got);
  };

  const reader = opened.body.getReader();
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        signal.throwIfAborted();
        r = await reader.read();
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        throw new NetworkError(path, { cause: e });
      }
      if (r.done) break;
      let v = r.value;
      if (expectedSize !== null && current.bytesStored + bufLen + v.length > expectedSize)
        throw await discardCorrupt('size mismatch', `more than ${expectedSize} bytes`);
      while (v.length > 0) {
        const take = Math.min(chunkSize - bufLen, v.length);
        const part = v.subarray(0, take);
        buf.set(part, bufLen);
        hasher.update(part);
        md5?.update(part);
        bufLen += take;
        v = v.subarray(take);
        if (bufLen === chunkSize) {
          await commit(buf.buffer as ArrayBuffer);
          buf = new Uint8Array(chunkSize);
          bufLen = 0;
        }
      }
      progress.set(path, current.bytesStored + bufLen);
    }
  } finally {
    reader.releaseLock();
  }

  const total = current.bytesStored + bufLen;
  if (expectedSize !== null && total < expectedSize) {
    // The response was whole by its own Content-Length (a body cut short of it fails the read),
    // yet shorter than the manifest says: the host's file is another file, and resuming would never finish it.
    if (opened.delimited) throw await discardCorrupt('size mismatch', String(total));
    throw new NetworkError(path); // body ended early: resumable
  }
  if (expectedSize === null && path.endsWith('.json')) {
    // No size to check against (none in the manifest, none the response could promise): a small
    // JSON file cut short by a dropped connection looks complete. Parsing is the one check left.
    const bytes = new Uint8Array(total);
    if (current.bytesStored > 0) bytes.set(await readWhole(id, current));
    bytes.set(buf.subarray(0, bufLen), current.bytesStored);
    try {
      parseJsonFile(new TextDecoder().decode(bytes), path, fileUrl(manifest, entry));
    } catch (e) {
      await resetFile(id, path, freshRecord(id, path, ctx.chunkSize, expectedSha));
      progress.set(path, 0, true);
      throw e;
    }
  }
  const digest = hasher.digest('hex');
  if (expectedSha !== undefined && digest !== expectedSha) {
    await resetFile(id, path, freshRecord(id, path, ctx.chunkSize, expectedSha, true));
    progress.set(path, 0, true);
    throw new IntegrityError(path, 'sha256 mismatch', expectedSha, digest);
  }
  const md5Digest = md5?.digest('hex');
  if (md5Digest !== undefined && md5Digest !== entry.md5) {
    await resetFile(id, path, freshRecord(id, path, ctx.chunkSize, expectedSha, true));
    progress.set(path, 0, true);
    throw new IntegrityError(path, 'md5 mismatch', entry.md5, md5Digest);
  }
  await commit(bufLen > 0 ? buf.slice(0, bufLen).buffer : null, {
    status: 'complete',
    sha256: digest,
    expectedSha256: expectedSha ?? digest,
    pinned: entry.sha256 === undefined,
    corrupt: undefined,
  });
  progress.markComplete(path, total);
}
