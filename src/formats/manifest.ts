/**
 * Model manifests (models/*.json): which files make up a base model or an adapter, where to fetch
 * them, their sizes and hashes. Shared by the browser (download manager) and Node (CLI, tests).
 *
 * A manifest may list every file, or name the model's shard index (`shardIndex`) and let the
 * shard list be derived from it at download time: MLC's published repositories are described that
 * way, since their shard count and sizes live in `tensor-cache.json` (older: `ndarray-cache.json`);
 * so are our converted adapters (`adapter.json`, whose `shards` carry sizes and sha256).
 * A file's `sha256` may be absent: it is then computed on first download and pinned in storage, and
 * every later check compares against the pinned value.
 */

import { isJsonObject as isObject, parseJsonObject } from './jsonObject.ts';
import { TENSOR_CACHE_FILE, TENSOR_CACHE_FILES } from './baseModelFiles.ts';
import { fileUrlProblem, plainFileNameProblem } from './shardPath.ts';
import { QUANT_MODES, type QuantMode } from './llamaConfig.ts';

export const MANIFEST_SCHEMA_VERSION = 1;

export interface ManifestFile {
  /** Name inside the model directory, and the name the engine asks for (ModelSource.readJson/readShard). */
  path: string;
  /** Absolute URL, or relative to the manifest's `baseUrl`. Defaults to `path`. */
  url?: string;
  /** Size in bytes; null when not known in advance (measured on first download). */
  size: number | null;
  /** 64 lowercase hex digits; absent: computed on first download and pinned. */
  sha256?: string;
  /** MD5 as published in MLC tensor caches (`md5sum`): checked on download beside the sha256. */
  md5?: string;
  /** A missing optional file (HTTP 404) is skipped instead of failing the download. */
  optional?: boolean;
}

export type AdapterMethod = 'lora' | 'series' | 'parallel';

export interface ModelManifest {
  schema: typeof MANIFEST_SCHEMA_VERSION;
  /** Stable id, the storage key: lowercase letters, digits, '.', '_' and '-'. */
  id: string;
  /** Human name for the models panel. */
  name: string;
  kind: 'base' | 'adapter';
  description?: string;
  license?: string;
  /** Where relative file URLs resolve. Itself resolved against the manifest's own URL when imported from one. */
  baseUrl?: string;
  /** Quantization of a base model. */
  quantization?: QuantMode;
  /**
   * Base models: the fingerprint adapters are bound to, as src/formats/modelFiles.ts `baseFingerprint`
   * computes it (sha256 hex over mlc-chat-config.json's architecture and the tensor cache), when known.
   */
  fingerprint?: string;
  /**
   * Adapters: the method, the base manifest id to load it on, and the base fingerprint (64 hex
   * digits), or null when only adapter.json records it (then it is checked when the adapter loads).
   */
  adapter?: { method: AdapterMethod; baseModel: string; baseFingerprint: string | null };
  /**
   * Candidate names of the shard index (the first one the server has wins): an MLC tensor cache
   * (`records`: dataPath, nbytes, md5sum) or an adapter.json (`shards`: dataPath, nbytes, sha256).
   * Every shard it lists joins the download with its size and hash.
   */
  shardIndex?: string[];
  files: ManifestFile[];
}

/** A manifest that does not parse or does not follow the schema; `problems` lists every issue found. */
export class ManifestError extends Error {
  override name = 'ManifestError';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(
      problems.length === 1
        ? `The model manifest ${source} is not valid: ${problems[0]}`
        : `The model manifest ${source} is not valid:\n- ${problems.join('\n- ')}`,
    );
  }
}

/** An adapter whose recorded base does not match the loaded base model. */
export class AdapterMismatchError extends Error {
  override name = 'AdapterMismatchError';
  constructor(
    readonly adapterName: string,
    readonly expectedBase: string,
    readonly actualBase: string | undefined,
  ) {
    super(
      `The adapter "${adapterName}" was trained on ${expectedBase}, but the loaded base model is ` +
        `${actualBase ?? 'of unknown origin'}. Load ${expectedBase} first, or pick an adapter made for this base.`,
    );
  }
}

const ID_RE = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const MD5_RE = /^[0-9a-f]{32}$/;
const METHODS: readonly AdapterMethod[] = ['lora', 'series', 'parallel'];

/** A manifest's (or shard index's) JSON as an object. @throws ManifestError */
export function parseManifestJson(input: unknown, source: string): Record<string, unknown> {
  return parseJsonObject(input, {
    notJson: (detail) => new ManifestError(source, [`it is not JSON (${detail})`]),
    notObject: () => new ManifestError(source, ['it must be a JSON object']),
  });
}

/** A value as it appears in an error: JSON, long strings cut to 40 characters. */
function describe(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? x.slice(0, 37) + '...' : x);
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 40 ? s.slice(0, 37) + '...' : s;
}

/**
 * Parse and validate a manifest from JSON text or an already-parsed value.
 * @param source how to name it in errors (file name or URL)
 * @param manifestUrl when the manifest came from a URL: its `baseUrl` (or, when absent, the
 *   manifest's own directory) is resolved against it, so the result has an absolute `baseUrl`.
 * @throws ManifestError listing every problem found
 */
export function parseManifest(input: string | unknown, source = 'manifest', manifestUrl?: string): ModelManifest {
  const raw = parseManifestJson(input, source);
  const p: string[] = [];

  if (raw.schema !== MANIFEST_SCHEMA_VERSION) p.push(`"schema" must be ${MANIFEST_SCHEMA_VERSION} (got ${describe(raw.schema)})`);
  if (typeof raw.id !== 'string' || !ID_RE.test(raw.id)) p.push(`"id" must be lowercase letters, digits, '.', '_' or '-' (got ${describe(raw.id)})`);
  if (typeof raw.name !== 'string' || raw.name.trim() === '') p.push('"name" is missing');
  if (raw.kind !== 'base' && raw.kind !== 'adapter') p.push(`"kind" must be "base" or "adapter" (got ${describe(raw.kind)})`);
  for (const k of ['description', 'license', 'baseUrl', 'fingerprint'] as const) {
    if (raw[k] !== undefined && typeof raw[k] !== 'string') p.push(`"${k}" must be a string`);
  }
  if (raw.baseUrl !== undefined && typeof raw.baseUrl === 'string') {
    try {
      new URL(raw.baseUrl, manifestUrl ?? 'http://relative.invalid/');
    } catch {
      p.push(`"baseUrl" is not a URL (got ${describe(raw.baseUrl)})`);
    }
  }
  if (raw.quantization !== undefined && !QUANT_MODES.includes(raw.quantization as QuantMode))
    p.push(`"quantization" must be one of ${QUANT_MODES.join(', ')} (got ${describe(raw.quantization)})`);
  if (raw.kind === 'adapter') {
    const a = raw.adapter;
    if (!isObject(a)) p.push('an adapter needs "adapter": { "method", "baseFingerprint" }');
    else {
      if (!METHODS.includes(a.method as AdapterMethod)) p.push(`"adapter.method" must be one of ${METHODS.join(', ')} (got ${describe(a.method)})`);
      if (typeof a.baseModel !== 'string' || !ID_RE.test(a.baseModel))
        p.push(`"adapter.baseModel" must be the id of the base model's manifest (got ${describe(a.baseModel)})`);
      if (!('baseFingerprint' in a)) p.push('"adapter.baseFingerprint" is missing (64 hex digits, or null when adapter.json records it)');
      else if (a.baseFingerprint !== null && (typeof a.baseFingerprint !== 'string' || !SHA256_RE.test(a.baseFingerprint)))
        p.push(`"adapter.baseFingerprint" must be 64 lowercase hex digits or null (got ${describe(a.baseFingerprint)})`);
    }
  } else if (raw.kind === 'base' && raw.adapter !== undefined) {
    p.push('"adapter" is only allowed when "kind" is "adapter"');
  }
  if (raw.fingerprint !== undefined && typeof raw.fingerprint === 'string' && !SHA256_RE.test(raw.fingerprint))
    p.push(`"fingerprint" must be 64 lowercase hex digits (got ${describe(raw.fingerprint)})`);
  if (raw.shardIndex !== undefined) {
    if (!Array.isArray(raw.shardIndex) || raw.shardIndex.length === 0 || raw.shardIndex.some((x) => typeof x !== 'string' || x === ''))
      p.push(`"shardIndex" must be a non-empty list of file names, e.g. [${TENSOR_CACHE_FILES.map((f) => `"${f}"`).join(', ')}]`);
  }

  const files: ManifestFile[] = [];
  if (!Array.isArray(raw.files)) p.push('"files" must be a list');
  else {
    const seen = new Set<string>();
    raw.files.forEach((f: unknown, i: number) => {
      const at = `files[${i}]`;
      if (!isObject(f)) return void p.push(`${at} must be an object`);
      const name = typeof f.path === 'string' ? `${at} (${f.path})` : at;
      const pathProblem = plainFileNameProblem(f.path);
      if (pathProblem || typeof f.path !== 'string') p.push(`${at}: "path" must be a relative file name (got ${describe(f.path)}: ${pathProblem})`);
      else if (seen.has(f.path)) p.push(`${name}: listed twice`);
      else seen.add(f.path);
      if (f.url !== undefined && (typeof f.url !== 'string' || f.url === '')) p.push(`${name}: "url" must be a non-empty string`);
      if (f.url === undefined && raw.baseUrl === undefined && manifestUrl === undefined)
        p.push(`${name}: missing "url" (and the manifest has no "baseUrl" to resolve "path" against)`);
      if (!('size' in f)) p.push(`${name}: missing "size" (bytes; write null when unknown)`);
      else if (f.size !== null && (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0))
        p.push(`${name}: "size" must be a whole number of bytes or null (got ${describe(f.size)})`);
      if (f.sha256 !== undefined && (typeof f.sha256 !== 'string' || !SHA256_RE.test(f.sha256)))
        p.push(`${name}: "sha256" must be 64 lowercase hex digits (got ${describe(f.sha256)})`);
      if (f.md5 !== undefined && (typeof f.md5 !== 'string' || !MD5_RE.test(f.md5)))
        p.push(`${name}: "md5" must be 32 lowercase hex digits (got ${describe(f.md5)})`);
      if (f.optional !== undefined && typeof f.optional !== 'boolean') p.push(`${name}: "optional" must be true or false`);
      files.push(f as unknown as ManifestFile);
    });
    // Catalog entries that are listed but never downloaded (src/storage/catalog.ts: weights published
    // nowhere, or a PEFT adapter imported from the hub by repo id) have no files of their own.
    const notADownload = raw.weightsPublished === false || typeof raw.hubRepo === 'string';
    if (raw.files.length === 0 && raw.shardIndex === undefined && !notADownload) p.push('"files" is empty and there is no "shardIndex" to derive shards from');
  }
  if (p.length > 0) throw new ManifestError(source, p);

  const m = raw as unknown as ModelManifest;
  const out: ModelManifest = { ...m, files: files.map((f) => ({ ...f })) };
  if (manifestUrl !== undefined) out.baseUrl = new URL(m.baseUrl ?? './', manifestUrl).href;
  // Explicit file URLs stay on the manifest's own origin (see shardPath.ts), checked before any fetch.
  const urlProblems = out.files.flatMap((f) => {
    const why = f.url === undefined ? null : fileUrlProblem(f.url, out.baseUrl);
    return why ? [`files (${f.path}): "url" ${describe(f.url)} is refused: ${why}`] : [];
  });
  if (urlProblems.length > 0) throw new ManifestError(source, urlProblems);
  return out;
}

/** The absolute (or page-relative, when the manifest has a relative baseUrl) URL of one file. */
export function fileUrl(manifest: ModelManifest, file: Pick<ManifestFile, 'path' | 'url'>): string {
  const rel = file.url ?? file.path;
  if (/^[a-z][a-z0-9+.-]*:/i.test(rel)) return rel;
  if (manifest.baseUrl === undefined) return rel;
  const base = manifest.baseUrl.endsWith('/') ? manifest.baseUrl : manifest.baseUrl + '/';
  if (/^[a-z][a-z0-9+.-]*:/i.test(base)) return new URL(rel, base).href;
  return base + rel;
}

/** One shard as a shard index lists it. */
export interface IndexedShard {
  dataPath: string;
  nbytes: number;
  md5sum?: string;
  sha256?: string;
}

/**
 * The shards a shard index lists: an MLC tensor cache (`records`) or an adapter.json (`shards`).
 * Only what the download needs is checked (relative dataPath, byte count, hash formats).
 * @throws ManifestError
 */
export function parseShardIndex(input: unknown, source: string = TENSOR_CACHE_FILE): IndexedShard[] {
  const p: string[] = [];
  const list = isObject(input) ? (Array.isArray(input.records) ? input.records : Array.isArray(input.shards) ? input.shards : null) : null;
  if (!list) throw new ManifestError(source, ['it has no "records" (tensor cache) or "shards" (adapter.json) list']);
  list.forEach((r: unknown, i: number) => {
    if (!isObject(r)) return void p.push(`shard ${i} must be an object`);
    const pathProblem = plainFileNameProblem(r.dataPath);
    if (pathProblem) p.push(`shard ${i}: dataPath ${describe(r.dataPath)} must be a file name under the model folder (${pathProblem})`);
    if (typeof r.nbytes !== 'number' || !Number.isSafeInteger(r.nbytes) || r.nbytes < 0) p.push(`shard ${i}: nbytes must be a byte count`);
    if (r.md5sum !== undefined && typeof r.md5sum !== 'string') p.push(`shard ${i}: md5sum must be a string`);
    if (r.sha256 !== undefined && (typeof r.sha256 !== 'string' || !SHA256_RE.test(r.sha256))) p.push(`shard ${i}: sha256 must be 64 lowercase hex digits`);
  });
  if (p.length > 0) throw new ManifestError(source, p);
  return list as IndexedShard[];
}

/** The shard files an index lists, as manifest files (size from nbytes; sha256, md5 when given). */
export function shardFilesFromIndex(shards: IndexedShard[]): ManifestFile[] {
  return shards.map((r) => {
    const f: ManifestFile = { path: r.dataPath, size: r.nbytes };
    if (typeof r.sha256 === 'string') f.sha256 = r.sha256;
    if (typeof r.md5sum === 'string' && MD5_RE.test(r.md5sum)) f.md5 = r.md5sum;
    return f;
  });
}

/**
 * The manifest's files plus those an index lists, manifest entries winning when a path appears
 * in both (a manifest may pin a shard's sha256).
 */
export function withIndexedShards(manifest: ModelManifest, shards: IndexedShard[]): ManifestFile[] {
  const listed = new Set(manifest.files.map((f) => f.path));
  return [...manifest.files, ...shardFilesFromIndex(shards).filter((s) => !listed.has(s.path))];
}

/**
 * Refuse an adapter manifest meant for another base model (by manifest id, and by fingerprint
 * when both are known). The adapter.json's own fingerprint is checked again at load time.
 * @throws AdapterMismatchError
 */
export function checkAdapterManifestBase(adapter: ModelManifest, base: ModelManifest): void {
  if (adapter.kind !== 'adapter' || !adapter.adapter) throw new Error(`${adapter.name} is not an adapter`);
  const a = adapter.adapter;
  const fpMismatch = a.baseFingerprint !== null && base.fingerprint !== undefined && a.baseFingerprint !== base.fingerprint;
  if (a.baseModel !== base.id || fpMismatch) throw new AdapterMismatchError(adapter.name, a.baseModel, base.id);
}
