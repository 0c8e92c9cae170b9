/**
 * Which requests the service worker answers, and how. Pure (no service-worker globals) so the
 * rules are unit-tested in Node; `serviceWorker.ts` applies them.
 *
 * The rule that matters most: model files are never put in the Cache API. Shards (and a model's
 * own tensor-cache.json, tokenizer.json …) live in IndexedDB through src/storage; caching them here
 * as well would store the 3.6 GB twice.
 */
import { isHtmlContentType } from '../formats/fetchFile.ts';

export type Strategy =
  /** Answered from the precache (or fetched once and kept): the hashed build output. */
  | 'cache-first'
  /** A page load: the network, else the cached index.html. */
  | 'navigate'
  /** The network, kept in the cache; the cached copy when the network is down. */
  | 'network-first'
  /** Not touched: the browser fetches it as if there were no service worker. */
  | 'bypass';

export interface RouteRequest {
  url: string;
  method: string;
  /** Request.mode ('navigate' for a page load). */
  mode?: string;
  /** A Range request (resumed shard download): never answered from a cache. */
  hasRange?: boolean;
}

/** Dataset files (../shared/data's layout under a data/ folder: gsm8k/*.jsonl, llm-adapters/…/test.json). */
const DATASET_FILE = /\/data\/.+\.(jsonl|json)$/;
/** The catalog and the manifests beside it: models/index.json, models/<id>.json; not models/<dir>/… */
const MODEL_MANIFEST = /^models\/[^/]+\.json$/;

/**
 * @param scope the registration's scope URL, ending in '/' (the folder the app is served from)
 * @param precached absolute URLs put in the cache at install
 */
export function strategyFor(req: RouteRequest, scope: string, precached: ReadonlySet<string>): Strategy {
  if (req.method !== 'GET' || req.hasRange) return 'bypass';
  const url = new URL(req.url);
  const base = new URL(scope);
  if (url.origin !== base.origin) return 'bypass';
  const inScope = url.pathname.startsWith(base.pathname);
  const rel = inScope ? url.pathname.slice(base.pathname.length) : null;
  // Anything of a model but its manifest (shards, tensor-cache.json, tokenizer.json): IndexedDB's job.
  if (rel?.startsWith('models/')) return MODEL_MANIFEST.test(rel) ? 'network-first' : 'bypass';
  // Datasets may come from a data/ folder outside the app's own (`?data=/data/`), still same-origin.
  if (DATASET_FILE.test(url.pathname)) return 'network-first';
  if (rel === null) return 'bypass';
  if (req.mode === 'navigate') return 'navigate';
  if (precached.has(url.origin + url.pathname) || rel.startsWith('assets/')) return 'cache-first';
  return 'bypass';
}

export interface CachedResponseInfo {
  status: number;
  /** Response.type: only 'basic' (same-origin) answers are kept. */
  type: string;
  redirected: boolean;
  contentType: string | null;
}

/**
 * Whether a network answer may be kept in the cache (and so served later as the real thing).
 * A single-page-app host answers a missing manifest, dataset or `assets/` chunk with its index
 * page and status 200: kept, that page would be served as the file from then on, offline too.
 * So only a page load may cache HTML; every other route keeps non-HTML answers only (the fetch
 * layer's rule, src/formats/fetchFile.ts).
 */
export function mayCache(res: CachedResponseInfo, strategy: Exclude<Strategy, 'bypass'>): boolean {
  if (res.status < 200 || res.status > 299 || res.type !== 'basic') return false;
  if (strategy === 'navigate') return !res.redirected;
  if (isHtmlContentType(res.contentType)) return false;
  return strategy === 'cache-first' || !res.redirected;
}

/** The cache name for one build of the app served at one scope (two sub-paths of an origin keep theirs apart). */
export function cacheName(scope: string, version: string): string {
  return `${cachePrefix(scope)}${version}`;
}

/** Every cache of the app at this scope starts with this (old versions are deleted on activate). */
export function cachePrefix(scope: string): string {
  return `reasoning-lab:${new URL(scope).pathname}:`;
}
