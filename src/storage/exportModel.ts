/**
 * "Export as MLC folder": a stored model as a zip of its folder (mlc-chat-config.json,
 * tensor-cache.json, params_shard_*.bin, tokenizer files), the layout WebLLM and our engine read
 * over HTTP, so a site operator can host it once (see the README's "Getting the models").
 *
 * Built with fflate's streaming Zip, stored (shards are 4-bit data: deflate gains little and
 * costs much). Output is gathered into Blobs a few MiB at a time, and a shard is read chunk by
 * chunk, so the JS heap holds one chunk, not the model. fflate writes no zip64: the archive must
 * stay under 4 GiB (Llama-2-7B q4f16_1 is about 3.6 GB).
 */
import { Zip, ZipPassThrough } from 'fflate';
import { getFiles, getModel } from './db.ts';
import { idbModelSource } from './source.ts';

const ZIP32_LIMIT = 2 ** 32 - 1;

/** The stored files of a complete model as `<folder>/<path>` entries in a zip Blob. */
export async function exportModelZip(modelId: string, folder: string = modelId): Promise<Blob> {
  const model = await getModel(modelId);
  if (!model?.completedAt) throw new Error(`${modelId} is not completely stored in this browser: finish its download or conversion first.`);
  const stored = new Map((await getFiles(modelId)).map((f) => [f.path, f]));
  const paths = model.files.map((f) => f.path).filter((p) => stored.get(p)?.status === 'complete');
  const total = paths.reduce((a, p) => a + stored.get(p)!.bytesStored, 0);
  if (total >= ZIP32_LIMIT) throw new Error(`${model.manifest.name} holds ${total} bytes, more than a zip without zip64 can (4 GiB).`);
  const source = idbModelSource(modelId);
  const parts: Blob[] = [];
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let failure: Error | null = null;
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes > 16 * 2 ** 20) {
      parts.push(new Blob(pending as BlobPart[]));
      pending = [];
      pendingBytes = 0;
    }
  });
  for (const path of paths) {
    const entry = new ZipPassThrough(`${folder}/${path}`);
    zip.add(entry);
    for await (const c of source.readChunks(path)) entry.push(c);
    entry.push(new Uint8Array(0), true);
    if (failure) throw failure;
  }
  zip.end();
  if (failure) throw failure;
  parts.push(new Blob(pending as BlobPart[]));
  return new Blob(parts, { type: 'application/zip' });
}
