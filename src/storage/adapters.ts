/**
 * Adapters converted in the browser (a PEFT folder the user dropped, through convertPeftAdapter):
 * stored like any downloaded model, so `idbModelSource(id)` serves adapter.json and its shards to
 * Engine.loadAdapter, and listModels lists it beside the published adapters.
 */

import { ADAPTER_MANIFEST_FILE, type AdapterManifest } from '../formats/adapterFormat.ts';
import { parseManifest, type ModelManifest } from '../formats/manifest.ts';
import { downloadModel } from './download.ts';
import { sha256Hex } from '../formats/hashes.ts';

/** A storage id for a converted adapter: "user-adapter-<name>" in the manifest id alphabet. */
export function convertedAdapterId(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+|-+$/g, '')
    .slice(0, 96);
  return `user-adapter-${slug || 'unnamed'}`;
}

/**
 * Store a converted adapter (adapter.json + its shards) in IndexedDB under `id`, verified like a
 * download (every shard against the sha256 adapter.json records). Replaces what was stored under
 * that id. Resolves to the manifest it is listed under.
 * @param baseModel id of the base model's manifest it was converted against
 * @throws QuotaError when there is no room, IntegrityError when a shard does not match adapter.json
 */
export async function storeConvertedAdapter(
  id: string,
  manifestJson: AdapterManifest,
  shards: Map<string, Uint8Array>,
  opts: { baseModel: string; name?: string; description?: string },
): Promise<ModelManifest> {
  const json = new TextEncoder().encode(JSON.stringify(manifestJson, null, 2));
  const localFiles = new Map<string, Blob>([[ADAPTER_MANIFEST_FILE, new Blob([json])]]);
  const files = [{ path: ADAPTER_MANIFEST_FILE, size: json.byteLength, sha256: await sha256Hex(json) }];
  for (const s of manifestJson.shards) {
    const bytes = shards.get(s.dataPath);
    if (!bytes) throw new Error(`${s.dataPath} is listed in ${ADAPTER_MANIFEST_FILE} but was not given.`);
    localFiles.set(s.dataPath, new Blob([bytes as BlobPart]));
    files.push({ path: s.dataPath, size: s.nbytes, sha256: s.sha256 });
  }
  const manifest = parseManifest(
    {
      schema: 1,
      id,
      name: opts.name ?? manifestJson.name,
      kind: 'adapter',
      description: opts.description ?? `Converted in this browser from a PEFT ${manifestJson.source.peftType} adapter.`,
      baseUrl: 'local:/',
      adapter: { method: manifestJson.kind, baseModel: opts.baseModel, baseFingerprint: manifestJson.base.fingerprint },
      files,
    },
    `${id} (converted adapter)`,
  );
  const { deleteModel } = await import('./models.ts');
  await deleteModel(id);
  await downloadModel(manifest, { localFiles, retries: 0 });
  return manifest;
}
