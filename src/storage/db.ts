/**
 * The IndexedDB layout, in an idb-keyval store of our own ("reasoning-lab-models" / "files").
 *
 * Keys are arrays so one model's entries form a key range:
 *   ['model', id]                    StoredModel   (manifest and resolved file list)
 *   ['file', id, path]               StoredFile    (progress, hash state, verified sha256)
 *   ['chunk', id, path, index]       ArrayBuffer   (chunkSize bytes; the last one may be shorter)
 *   ['manifest', id]                 ModelManifest (manifests imported by the user)
 * A chunk and its file record are always written in one transaction, so the record never claims
 * bytes that are not stored, whatever interrupts the download (reload, quota, crash).
 */

import { createStore, get, getMany, setMany, type UseStore, promisifyRequest } from 'idb-keyval';
import type { ManifestFile, ModelManifest } from '../formats/manifest.ts';
import type { HashState } from '../formats/hashes.ts';
import type { ErrorInfo } from './errors.ts';

export const DB_NAME = 'reasoning-lab-models';
export const STORE_NAME = 'files';

let store: UseStore | undefined;
/** The store, created on first use (so importing this module in Node does nothing). */
export function modelStore(): UseStore {
  store ??= createStore(DB_NAME, STORE_NAME);
  return store;
}

export interface StoredModel {
  id: string;
  manifest: ModelManifest;
  /** Every file of the model, the tensor cache's shards included, in download order. */
  files: ManifestFile[];
  /** Which tensor-cache name the server had (when the manifest names candidates). */
  tensorCachePath?: string;
  createdAt: number;
  updatedAt: number;
  /** Set once every file is complete and verified. */
  completedAt?: number;
  /** The last download error, cleared when a download succeeds. */
  lastError?: ErrorInfo;
}

export interface StoredFile {
  modelId: string;
  path: string;
  status: 'partial' | 'complete';
  /** Bytes stored: a multiple of chunkSize while partial. */
  bytesStored: number;
  chunkSize: number;
  chunkCount: number;
  /**
   * SHA-256 state after `bytesStored` bytes (partial files only), to resume hashing. Records of
   * earlier builds hold another shape; download.ts starts such a file over.
   */
  hashState?: HashState;
  /** The running MD5 when the manifest gives the file's md5 (MLC's md5sum), saved like hashState. */
  md5State?: HashState;
  /** The sha256 the bytes must have: from the manifest, or pinned at first download. */
  expectedSha256?: string;
  /** Complete files: the verified sha256 of the stored bytes. */
  sha256?: string;
  /** True when sha256 came from the first download rather than from the manifest. */
  pinned?: boolean;
  /** The last attempt or a verification found the bytes corrupt (they were discarded). */
  corrupt?: boolean;
  updatedAt: number;
}

export const modelKey = (id: string): IDBValidKey => ['model', id];
export const fileKey = (id: string, path: string): IDBValidKey => ['file', id, path];
export const chunkKey = (id: string, path: string, i: number): IDBValidKey => ['chunk', id, path, i];
export const manifestKey = (id: string): IDBValidKey => ['manifest', id];

/** The key range of every entry whose key starts with `prefix`. */
export function prefixRange(prefix: IDBValidKey[]): IDBKeyRange {
  // Arrays sort after every number, date and string, so [...prefix, []] bounds all [...prefix, x].
  return IDBKeyRange.bound(prefix, [...prefix, []]);
}

export async function getModel(id: string): Promise<StoredModel | undefined> {
  return get<StoredModel>(modelKey(id), modelStore());
}

export async function getFile(id: string, path: string): Promise<StoredFile | undefined> {
  return get<StoredFile>(fileKey(id, path), modelStore());
}

export async function getFiles(id: string): Promise<StoredFile[]> {
  return modelStore()('readonly', (s) => promisifyRequest(s.getAll(prefixRange(['file', id])) as IDBRequest<StoredFile[]>));
}

export async function allModels(): Promise<StoredModel[]> {
  return modelStore()('readonly', (s) => promisifyRequest(s.getAll(prefixRange(['model'])) as IDBRequest<StoredModel[]>));
}

export async function allSavedManifests(): Promise<ModelManifest[]> {
  return modelStore()('readonly', (s) => promisifyRequest(s.getAll(prefixRange(['manifest'])) as IDBRequest<ModelManifest[]>));
}

export async function putEntries(entries: [IDBValidKey, unknown][]): Promise<void> {
  return setMany(entries, modelStore());
}

export async function getChunks(id: string, path: string, from: number, count: number): Promise<(ArrayBuffer | undefined)[]> {
  const keys: IDBValidKey[] = [];
  for (let i = from; i < from + count; i++) keys.push(chunkKey(id, path, i));
  return getMany<ArrayBuffer>(keys, modelStore());
}

/** Delete one file's chunks and write its new record (or delete it) in one transaction. */
export async function resetFile(id: string, path: string, record: StoredFile | undefined): Promise<void> {
  await modelStore()('readwrite', (s) => {
    s.delete(prefixRange(['chunk', id, path]));
    if (record) s.put(record, fileKey(id, path));
    else s.delete(fileKey(id, path));
    return promisifyRequest(s.transaction);
  });
}

/** Delete everything stored for a model (its saved manifest stays unless `withManifest`). */
export async function deleteModelEntries(id: string, withManifest = false): Promise<void> {
  await modelStore()('readwrite', (s) => {
    s.delete(prefixRange(['chunk', id]));
    s.delete(prefixRange(['file', id]));
    s.delete(modelKey(id));
    if (withManifest) s.delete(manifestKey(id));
    return promisifyRequest(s.transaction);
  });
}
