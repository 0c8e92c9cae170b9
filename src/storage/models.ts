/** What is stored: model states and sizes, storage room, delete, verify. */

import type { ModelManifest } from '../formats/manifest.ts';
import { activeDownloads, heldModelLocks, lockName } from './active.ts';
import { allModels, deleteModelEntries, getChunks, getFiles, getModel, resetFile, type StoredFile, type StoredModel } from './db.ts';
import { BusyError, IntegrityError, type ErrorInfo } from './errors.ts';
import { emit, type ModelState } from './events.ts';
import { createSha256 } from '../formats/hashes.ts';

export interface FileStatus {
  path: string;
  /** Expected size; null while unknown. */
  size: number | null;
  bytesStored: number;
  state: 'missing' | 'partial' | 'complete' | 'corrupt';
  /** Verified (complete) or expected sha256. */
  sha256?: string;
  /** The sha256 was pinned at first download (the manifest had none). */
  pinned?: boolean;
}

export interface ModelStatus {
  id: string;
  name: string;
  kind: 'base' | 'adapter';
  state: ModelState;
  /** Bytes stored for this model (complete files and committed parts of partial ones). */
  bytesStored: number;
  /** Bytes the whole model takes; null until the file list is known (first download). */
  bytesTotal: number | null;
  files: FileStatus[];
  /** The last download error, if the last download failed. */
  lastError?: ErrorInfo;
  manifest: ModelManifest;
}

/** @internal State from stored records. `held`: lock names held now (downloading). */
export function stateOf(model: StoredModel | undefined, files: StoredFile[], held: Set<string>, id: string): ModelState {
  if (held.has(lockName(id)) || activeDownloads.has(id)) return 'downloading';
  if (!model) return 'not-stored';
  if (files.some((f) => f.corrupt)) return 'corrupt';
  const byPath = new Map(files.map((f) => [f.path, f]));
  const allDone = model.files.every((f) => byPath.get(f.path)?.status === 'complete' || f.optional);
  if (model.completedAt !== undefined && allDone) return 'stored';
  return 'partial';
}

/** @internal */
export async function computeState(id: string, ignoreLock = false): Promise<ModelState> {
  const [model, files, held] = await Promise.all([getModel(id), getFiles(id), ignoreLock ? new Set<string>() : heldModelLocks()]);
  if (ignoreLock) return stateOf(model, files, held, '\u0000');
  return stateOf(model, files, held, id);
}

function statusOf(manifest: ModelManifest, model: StoredModel | undefined, files: StoredFile[], held: Set<string>): ModelStatus {
  const byPath = new Map(files.map((f) => [f.path, f]));
  const list = model?.files ?? manifest.files;
  const fileStatus: FileStatus[] = list.map((f) => {
    const r = byPath.get(f.path);
    return {
      path: f.path,
      size: f.size ?? (r?.status === 'complete' ? r.bytesStored : null),
      bytesStored: r?.bytesStored ?? 0,
      state: !r ? 'missing' : r.corrupt ? 'corrupt' : r.status,
      sha256: r?.sha256 ?? r?.expectedSha256 ?? f.sha256,
      pinned: r?.pinned,
    };
  });
  const sizes = fileStatus.map((f) => f.size);
  return {
    id: manifest.id,
    name: manifest.name,
    kind: manifest.kind,
    state: stateOf(model, files, held, manifest.id),
    bytesStored: files.reduce((s, f) => s + f.bytesStored, 0),
    bytesTotal: model && sizes.every((s) => s !== null) ? (sizes as number[]).reduce((a, b) => a + b, 0) : null,
    files: fileStatus,
    lastError: model?.lastError,
    manifest: model?.manifest ?? manifest,
  };
}

/** Status of one model (state, sizes, per-file detail). */
export async function getModelStatus(manifest: ModelManifest): Promise<ModelStatus> {
  const [model, files, held] = await Promise.all([getModel(manifest.id), getFiles(manifest.id), heldModelLocks()]);
  return statusOf(manifest, model, files, held);
}

/**
 * Every model known: the given manifests (e.g. the built-in catalog) plus every model stored in
 * this browser, with its state and sizes.
 */
export async function listModels(manifests: ModelManifest[] = []): Promise<ModelStatus[]> {
  const [stored, held] = await Promise.all([allModels(), heldModelLocks()]);
  const byId = new Map<string, ModelManifest>(manifests.map((m) => [m.id, m]));
  for (const s of stored) if (!byId.has(s.id)) byId.set(s.id, s.manifest);
  const out: ModelStatus[] = [];
  for (const m of byId.values()) {
    const model = stored.find((s) => s.id === m.id);
    out.push(statusOf(m, model, model ? await getFiles(m.id) : [], held));
  }
  return out;
}

export interface StorageInfo {
  /** Bytes this site uses (all storage, not only models). */
  usage: number;
  /** Bytes this site may use. */
  quota: number;
  /** quota − usage. */
  available: number;
  /** Whether the browser promised not to evict this site's storage. */
  persisted: boolean;
}

/** How much room there is (navigator.storage.estimate) and whether storage is persistent. */
export async function storageInfo(): Promise<StorageInfo> {
  const est = (await navigator.storage?.estimate?.()) ?? {};
  const persisted = (await navigator.storage?.persisted?.()) ?? false;
  const usage = est.usage ?? 0;
  const quota = est.quota ?? 0;
  return { usage, quota, available: Math.max(0, quota - usage), persisted };
}

/**
 * Delete everything stored for a model. A download of it in this tab is cancelled first; one in
 * another tab makes this throw BusyError (cancel it there, or call cancelDownload first).
 * @param forgetManifest also forget a manifest the user imported
 */
export async function deleteModel(modelId: string, forgetManifest = false): Promise<void> {
  const a = activeDownloads.get(modelId);
  if (a) {
    a.controller.abort();
    await a.promise.catch(() => {});
  }
  const run = async () => {
    await deleteModelEntries(modelId, forgetManifest);
    emit({ type: 'state', modelId, state: 'not-stored' });
  };
  if (!navigator.locks) return run();
  const ok = await navigator.locks.request(lockName(modelId), { ifAvailable: true }, async (lock) => {
    if (!lock) return false;
    await run();
    return true;
  });
  if (!ok) throw new BusyError(modelId, 'cancel the download there first, then delete.');
}

/**
 * Re-hash every stored file of a model against its sha256 (manifest or pinned). A file that
 * does not match is discarded and marked corrupt (the model's state becomes 'corrupt'; the
 * next download fetches it again).
 * @returns the IntegrityErrors found (empty when every byte checks out)
 */
export async function verifyModel(modelId: string): Promise<IntegrityError[]> {
  const files = await getFiles(modelId);
  const bad: IntegrityError[] = [];
  for (const f of files) {
    if (f.status !== 'complete') continue;
    const h = await createSha256();
    let bytesHashed = 0;
    for (let i = 0; i < f.chunkCount; i++) {
      const [c] = await getChunks(modelId, f.path, i, 1);
      if (c) h.update(new Uint8Array(c));
      bytesHashed += c?.byteLength ?? 0;
    }
    const got = h.digest('hex');
    const want = f.expectedSha256 ?? f.sha256;
    if (bytesHashed !== f.bytesStored || got !== want) {
      bad.push(new IntegrityError(f.path, 'sha256 mismatch', want, got));
      await resetFile(modelId, f.path, {
        ...f,
        status: 'partial',
        bytesStored: 0,
        chunkCount: 0,
        hashState: undefined,
        sha256: undefined,
        expectedSha256: want,
        corrupt: true,
        updatedAt: Date.now(),
      });
    }
  }
  if (bad.length) emit({ type: 'state', modelId, state: 'corrupt', error: { name: 'IntegrityError', message: bad[0].message } });
  return bad;
}
