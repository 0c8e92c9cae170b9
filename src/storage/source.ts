/** Reading a stored model back: the engine's ModelSource over IndexedDB, one shard at a time. */

import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { TENSOR_CACHE_FILES } from '../formats/baseModelFiles.ts';
import { getChunks, getFile, type StoredFile } from './db.ts';
import { IntegrityError, NotStoredError } from './errors.ts';
import { createSha256 } from '../formats/hashes.ts';

export interface IdbModelSource extends ModelSource {
  /**
   * The chunks of one stored file, in order, one IndexedDB read at a time (each chunk a fresh
   * Uint8Array of at most the chunk size): upload to the GPU chunk by chunk to keep even one
   * whole shard out of JS memory.
   */
  readChunks(path: string): AsyncGenerator<Uint8Array, void, undefined>;
  /** Size of a stored file, or null when it is not completely stored. */
  fileSize(path: string): Promise<number | null>;
}

export interface IdbModelSourceOptions {
  /** Re-hash each file as it is read and throw IntegrityError on a mismatch. Default false (files were verified when stored). */
  verify?: boolean;
}

/**
 * A ModelSource reading a downloaded model from IndexedDB. `readJson('tensor-cache.json')` also
 * finds a model stored under the older name `ndarray-cache.json` (and the other way round).
 * `readShard` assembles one shard from its chunks; nothing else of the model is held in memory.
 * @throws NotStoredError from readShard when the file is not completely stored
 */
export function idbModelSource(modelId: string, options: IdbModelSourceOptions = {}): IdbModelSource {
  const complete = async (path: string): Promise<StoredFile | undefined> => {
    const f = await getFile(modelId, path);
    return f?.status === 'complete' ? f : undefined;
  };
  const resolve = async (path: string): Promise<StoredFile | undefined> => {
    const f = await complete(path);
    if (f || !(TENSOR_CACHE_FILES as readonly string[]).includes(path)) return f;
    for (const alt of TENSOR_CACHE_FILES) {
      if (alt === path) continue;
      const g = await complete(alt);
      if (g) return g;
    }
    return undefined;
  };

  async function* chunksOf(f: StoredFile): AsyncGenerator<Uint8Array, void, undefined> {
    const h = options.verify ? await createSha256() : undefined;
    for (let i = 0; i < f.chunkCount; i++) {
      const [c] = await getChunks(modelId, f.path, i, 1);
      if (!c) throw new IntegrityError(f.path, 'size mismatch', String(f.bytesStored), `chunk ${i} missing`);
      const bytes = new Uint8Array(c);
      h?.update(bytes);
      yield bytes;
    }
    if (h) {
      const got = h.digest('hex');
      const want = f.expectedSha256 ?? f.sha256;
      if (got !== want) throw new IntegrityError(f.path, 'sha256 mismatch', want, got);
    }
  }

  async function readWhole(path: string): Promise<ArrayBuffer> {
    const f = await resolve(path);
    if (!f) throw new NotStoredError(modelId, path);
    const out = new Uint8Array(f.bytesStored);
    let at = 0;
    for await (const c of chunksOf(f)) {
      if (at + c.length > out.length) throw new IntegrityError(path, 'size mismatch', String(f.bytesStored), 'more');
      out.set(c, at);
      at += c.length;
    }
    if (at !== out.length) throw new IntegrityError(path, 'size mismatch', String(f.bytesStored), String(at));
    return out.buffer;
  }

  return {
    async readJson(path: string): Promise<unknown | null> {
      const f = await resolve(path);
      if (!f) return null;
      return JSON.parse(new TextDecoder().decode(await readWhole(f.path)));
    },
    readShard: readWhole,
    async *readChunks(path: string) {
      const f = await resolve(path);
      if (!f) throw new NotStoredError(modelId, path);
      yield* chunksOf(f);
    },
    async fileSize(path: string) {
      return (await resolve(path))?.bytesStored ?? null;
    },
  };
}
