/** Where manifests come from: the built-in ones (models/*.json), a URL, or files the user picks. */

import { parseManifest, type ManifestFile, type ModelManifest } from '../formats/manifest.ts';
import { allSavedManifests, manifestKey, putEntries } from './db.ts';
import { BrokenFileError, requireFileJson, requireFileText } from '../formats/fetchFile.ts';

/**
 * Fields a shipped catalog manifest may carry beside the schema (parseManifest keeps them; only
 * the app reads them):
 * - `servedWithApp`: the files are served with the app itself (the tiny demo models under
 *   models/tiny/), so the engine reads them straight from `baseUrl` without a download first;
 * - `note`: a short caveat shown beside the name ("random weights");
 * - `convertFrom`: a base model nobody publishes in our format: `{ repo, downloadBytes, storedBytes }`
 *   names the Hugging Face checkpoint `npm run convert` makes it from and the sizes involved;
 * - `hostedAt`: for such a model, where a site operator put the converted folder (a URL, absolute or
 *   relative to the manifest; null or absent: not hosted). Only then can it be downloaded: the
 *   catalog sets `baseUrl` from it, so hosting is configuration, not code;
 * - `weightsPublished: false`: an adapter whose weights are published nowhere (the paper's): it is
 *   listed, never offered as a download; train it instead;
 * - `hubRepo`: a PEFT adapter published on the Hugging Face hub, imported (converted in the page)
 *   by its repo id rather than downloaded; `reported`: `{ gsm8k, trainedOn }` as its authors report.
 * - `approxBytes`: about how many bytes the model stores, for a manifest whose sizes come from its
 *   tensor cache at download time: the size shown before anything is downloaded.
 */
export interface CatalogExtras {
  servedWithApp: boolean;
  note: string | undefined;
  convertFrom: { repo: string; downloadBytes: number; storedBytes: number } | undefined;
  hostedAt: string | undefined;
  weightsPublished: boolean;
  hubRepo: string | undefined;
  reported: { gsm8k: number; trainedOn: string } | undefined;
  approxBytes: number | undefined;
}

/** How a catalog entry is obtained: a plain download, or what to do instead. */
export type Obtain = 'download' | 'convert' | 'train' | 'import';

const str = (x: unknown): string | undefined => (typeof x === 'string' && x !== '' ? x : undefined);
const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

/** The catalog-only fields of a manifest (absent or malformed ones read as not set). */
export function catalogExtras(m: ModelManifest): CatalogExtras {
  const raw = m as ModelManifest & Record<string, unknown>;
  const cf = raw.convertFrom as Record<string, unknown> | undefined;
  const rep = raw.reported as Record<string, unknown> | undefined;
  const convertFrom =
    cf && str(cf.repo) && num(cf.downloadBytes) !== undefined && num(cf.storedBytes) !== undefined
      ? { repo: cf.repo as string, downloadBytes: cf.downloadBytes as number, storedBytes: cf.storedBytes as number }
      : undefined;
  return {
    servedWithApp: raw.servedWithApp === true,
    note: str(raw.note),
    convertFrom,
    hostedAt: str(raw.hostedAt),
    weightsPublished: raw.weightsPublished !== false,
    hubRepo: str(raw.hubRepo),
    reported: rep && num(rep.gsm8k) !== undefined && str(rep.trainedOn) ? { gsm8k: rep.gsm8k as number, trainedOn: rep.trainedOn as string } : undefined,
    approxBytes: typeof raw.approxBytes === 'number' && Number.isSafeInteger(raw.approxBytes) && raw.approxBytes > 0 ? raw.approxBytes : undefined,
  };
}

/** Whether an entry downloads as it is, or must be converted (not hosted), trained (not published) or imported from the hub. */
export function obtainBy(m: ModelManifest): Obtain {
  const x = catalogExtras(m);
  if (!x.weightsPublished) return 'train';
  if (x.hubRepo) return 'import';
  if (x.convertFrom && !x.hostedAt) return 'convert';
  return 'download';
}

/**
 * The manifests shipped with the app: models/index.json lists the models/*.json files (a unit
 * test keeps it in step with the folder). Relative URLs resolve against each manifest's own URL.
 * A broken manifest is reported on the console and skipped, so one bad file never hides the others.
 * @param catalogUrl where models/index.json is (default: beside the document, honouring <base>;
 *   in a worker, beside the worker's script)
 */
export async function builtinManifests(catalogUrl?: string): Promise<ModelManifest[]> {
  const url = new URL(catalogUrl ?? 'models/index.json', globalThis.document?.baseURI ?? globalThis.location?.href).href;
  // Through the fetch layer: a host without the catalog (a 404, or its index page) is "not found",
  // never a network error; a cut-short or unparseable catalog is broken.
  const index = (await requireFileJson(url, { file: 'models/index.json', init: { cache: 'no-cache' } })) as { manifests?: unknown } | null;
  if (index === null || typeof index !== 'object') throw new BrokenFileError('models/index.json', url, 'not a JSON object');
  const names = Array.isArray(index.manifests) ? index.manifests.filter((n): n is string => typeof n === 'string') : [];
  const loaded = await Promise.all(
    names.map(async (name) => {
      const at = new URL(name, url).href;
      try {
        const m = parseManifest(await requireFileText(at, { file: name, init: { cache: 'no-cache' } }), name, at);
        // A converted model a site operator hosts: its files are where `hostedAt` says.
        const hostedAt = catalogExtras(m).hostedAt;
        return hostedAt ? { ...m, baseUrl: new URL(hostedAt.endsWith('/') ? hostedAt : `${hostedAt}/`, at).href } : m;
      } catch (e) {
        console.error(e);
        return null;
      }
    }),
  );
  return loaded.filter((m): m is ModelManifest => m !== null).sort((a, b) => a.name.localeCompare(b.name));
}

/** Manifests the user imported earlier (kept in IndexedDB). */
export function savedManifests(): Promise<ModelManifest[]> {
  return allSavedManifests();
}

/** The built-in catalog as last read in this page, by catalog URL. */
const lastCatalog = new Map<string, ModelManifest[]>();

/**
 * Built-in and imported manifests together (an imported one wins on the same id). Offline, when
 * the catalog cannot be fetched, the catalog this page read last is used (none on a cold start:
 * then only imported ones are returned); listModels adds every stored model from its own saved
 * manifest, so stored models stay usable.
 */
export async function allManifests(catalogUrl?: string): Promise<ModelManifest[]> {
  const key = catalogUrl ?? '';
  const builtin = await builtinManifests(catalogUrl).then(
    (list) => (lastCatalog.set(key, list), list),
    (e: unknown) => {
      // Offline after the page had the catalog (a failed download refreshes the list): keep showing
      // it, so the entry that just failed stays on screen with its error and Retry.
      console.warn('Built-in model catalog unavailable:', e);
      return lastCatalog.get(key) ?? [];
    },
  );
  const byId = new Map(builtin.map((m) => [m.id, m]));
  for (const m of await savedManifests()) byId.set(m.id, m);
  return [...byId.values()];
}

async function save(m: ModelManifest): Promise<ModelManifest> {
  await putEntries([[manifestKey(m.id), m]]);
  return m;
}

/**
 * Fetch a manifest from a URL, validate it and remember it. Relative file URLs resolve against
 * the manifest's own URL.
 * @throws ManifestError (with every problem listed), FileNotFoundError, BrokenFileError, HostUnreachableError, HttpStatusError
 */
export async function importManifestFromUrl(url: string): Promise<ModelManifest> {
  const abs = new URL(url, globalThis.location?.href).href;
  return save(parseManifest(await requireFileText(abs, { file: abs, init: { cache: 'no-store' } }), abs, abs));
}

/** Validate a manifest file the user picked and remember it. @throws ManifestError */
export async function importManifestFromFile(file: Blob & { name?: string }): Promise<ModelManifest> {
  return save(parseManifest(await file.text(), file.name ?? 'manifest'));
}

/**
 * A manifest for a model folder the user picked (an MLC model directory: mlc-chat-config.json,
 * tensor-cache.json or ndarray-cache.json, params_shard_*.bin, tokenizer files). Pass the same
 * files to downloadModel as `localFiles` to store them without any network.
 * @param files the picked files; their `webkitRelativePath` or `name` gives the path
 */
export function manifestForLocalFolder(
  id: string,
  name: string,
  files: (Blob & { name: string; webkitRelativePath?: string })[],
): {
  manifest: ModelManifest;
  localFiles: Map<string, Blob>;
} {
  const localFiles = new Map<string, Blob>();
  const list: ManifestFile[] = [];
  for (const f of files) {
    const rel = f.webkitRelativePath ? f.webkitRelativePath.split('/').slice(1).join('/') : f.name;
    localFiles.set(rel, f);
    list.push({ path: rel, size: f.size });
  }
  const manifest = parseManifest({ schema: 1, id, name, kind: 'base', baseUrl: 'local:/', files: list }, name);
  return { manifest, localFiles };
}

/**
 * What to do instead of downloading an entry that is not a plain download (null for one that is):
 * shown beside it in the Models view, and as the error when a download is asked for anyway.
 */
export function obtainAdvice(m: ModelManifest): string | null {
  const x = catalogExtras(m);
  const gb = (b: number) => `${(b / 1e9).toFixed(1)} GB`;
  switch (obtainBy(m)) {
    case 'train':
      return `Not published: the weights of ${m.name.replace(/: not published$/, '')} exist nowhere to download. Train them, then convert them with npm run convert-adapter or drop the PEFT folder under Bring your own adapter.`;
    case 'import':
      return `Published on Hugging Face as ${x.hubRepo}: import it from there (converted in this page against the base you choose).`;
    case 'convert':
      return (
        `Not hosted here: convert it from ${x.convertFrom!.repo} (about ${gb(x.convertFrom!.downloadBytes)} to download, about ` +
        `${gb(x.convertFrom!.storedBytes)} stored): press "Convert in this browser" (or use npm run convert), or ask the site's operator to host the converted folder ("hostedAt").`
      );
    default:
      return null;
  }
}
