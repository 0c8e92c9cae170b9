/**
 * Model storage: download once into IndexedDB (verified, resumable, one tab at a time), list,
 * delete, and read back shard by shard.
 *
 * Typical UI use (Svelte 5):
 * ```ts
 * const manifests = await allManifests();
 * let models = $state(await listModels(manifests));
 * $effect(() => subscribe(async (e) => {
 *   if (e.type === 'progress') progressById[e.modelId] = e;      // bars, rate, ETA
 *   else models = await listModels(manifests);                   // state changed
 * }));
 * try { await downloadModel(m); } catch (e) { message = (e as Error).message; }  // readable as is
 * ```
 * The engine reads a stored model with `idbModelSource(id)` (a ModelSource).
 */

export { downloadModel, DEFAULT_CHUNK_SIZE, type DownloadOptions } from './download.ts';
export { cancelDownload, lockName } from './active.ts';
export { deleteModel, getModelStatus, listModels, storageInfo, verifyModel, type FileStatus, type ModelStatus, type StorageInfo } from './models.ts';
export { convertedAdapterId, storeConvertedAdapter } from './adapters.ts';
export { idbModelSource, type IdbModelSource, type IdbModelSourceOptions } from './source.ts';
export { subscribe, type ModelState, type ProgressEvent, type StateEvent, type StorageEvent, type StorageListener } from './events.ts';
export { allManifests, builtinManifests, importManifestFromFile, importManifestFromUrl, manifestForLocalFolder, savedManifests } from './catalog.ts';
export {
  BrokenFileError,
  BusyError,
  CancelledError,
  FileNotFoundError,
  formatBytes,
  HostUnreachableError,
  HttpError,
  IntegrityError,
  NetworkError,
  NotStoredError,
  QuotaError,
  type ErrorInfo,
} from './errors.ts';
export { createSha256, sha256Hex, type HashState } from '../formats/hashes.ts';
export { DB_NAME } from './db.ts';
export { ManifestError, AdapterMismatchError, checkAdapterManifestBase, parseManifest, type ModelManifest, type ManifestFile } from '../formats/manifest.ts';
