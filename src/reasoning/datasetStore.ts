/**
 * Fetch dataset files and cache their raw text in IndexedDB, so a dataset downloads once and the
 * lab works offline afterwards. Parsing lives in datasets.ts (Node-testable); this module is the
 * browser part.
 */
import { createStore, get, setMany, del, type UseStore } from 'idb-keyval';
import { DATASETS, parseDataset, type DatasetName, type ParsedDataset } from './datasets.ts';
import { sha256OfText } from './runRecord.ts';

let store: UseStore | undefined;
const datasetFiles = (): UseStore => (store ??= createStore('reasoning-lab-datasets', 'files'));

/** Base URL the dev server serves ../shared/data under. */
export const DEV_DATA_BASE_URL = '/data/';

/**
 * The most bytes a dataset file may have. The largest file we read (GSM8K's train set) is about
 * 4 MB; a URL from a share link may name anything, so a body over this is refused, not cached.
 */
export const DATASET_MAX_BYTES = 32 * 1024 * 1024;

export interface DatasetSourceOptions {
  /** Base URL in the ../shared/data layout (e.g. "/data/"); omitted: each dataset's public source. */
  baseUrl?: string;
  /** Skip the cache and download again. */
  refresh?: boolean;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Refuse a body larger than this (bytes); default DATASET_MAX_BYTES. */
  maxBytes?: number;
}

export class DatasetDownloadError extends Error {
  override name = 'DatasetDownloadError';
}

/** Where a dataset file is fetched from. */
export function datasetUrl(name: DatasetName, baseUrl?: string): string {
  const info = DATASETS[name];
  if (baseUrl === undefined || baseUrl === '') return info.publicUrl;
  return baseUrl.replace(/\/+$/, '') + '/' + info.path;
}

/** The file's text, from the IndexedDB cache or downloaded (and then cached). */
export async function loadDatasetText(name: DatasetName, options: DatasetSourceOptions = {}): Promise<{ url: string; text: string; cached: boolean }> {
  const url = datasetUrl(name, options.baseUrl);
  if (!options.refresh) {
    const hit = await get<string>(url, datasetFiles());
    if (typeof hit === 'string') return { url, text: hit, cached: true };
  }
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, { signal: options.signal });
  } catch (e) {
    throw new DatasetDownloadError(`Could not download ${DATASETS[name].label} from ${url}: ${(e as Error).message}. Check the connection or the data URL.`);
  }
  if (!response.ok) throw new DatasetDownloadError(`Could not download ${DATASETS[name].label} from ${url}: HTTP ${response.status}.`);
  const text = await readCappedText(response, options.maxBytes ?? DATASET_MAX_BYTES, DATASETS[name].label, url);
  const sha256 = await sha256OfText(text);
  await refuseIfPinnedDiffers(url, sha256, DATASETS[name].label);
  // The text and its pin together, so a file is never cached without the hash later downloads must match.
  await setMany(
    [
      [url, text],
      [pinKey(url), sha256],
    ],
    datasetFiles(),
  );
  return { url, text, cached: false };
}

const MIB = 1024 * 1024;
const mib = (n: number) => (n >= MIB / 10 ? `${Math.round((n / MIB) * 10) / 10} MiB` : `${n} bytes`);

/**
 * The body as text, read as a stream and stopped as soon as it passes `maxBytes` (a declared
 * Content-Length over it is refused before reading).
 */
async function readCappedText(response: Response, maxBytes: number, label: string, url: string): Promise<string> {
  const tooBig = (what: string) =>
    new DatasetDownloadError(`Refused ${label} from ${url}: it is ${what}, over the ${mib(maxBytes)} a dataset file may have. Nothing was stored.`);
  const declared = Number(response.headers.get('Content-Length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    void response.body?.cancel().catch(() => {});
    throw tooBig(`${mib(declared)}`);
  }
  if (!response.body) return response.text();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let received = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.byteLength;
    if (received > maxBytes) {
      void reader.cancel().catch(() => {});
      throw tooBig(`more than ${mib(maxBytes)}`);
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}

/** The IndexedDB key of the sha256 pinned for a dataset URL (beside its cached text). */
const pinKey = (url: string) => `sha256:${url}`;

/**
 * Dataset files are pinned on first download, as shards are: a later download of the same URL
 * with a different body is refused (results would silently mix two different datasets).
 */
async function refuseIfPinnedDiffers(url: string, sha256: string, label: string): Promise<void> {
  const pinned = await get<string>(pinKey(url), datasetFiles());
  if (pinned !== undefined && pinned !== sha256)
    throw new DatasetDownloadError(
      `Refused ${label} from ${url}: the file there has changed since it was first downloaded (sha256 ${pinned.slice(0, 12)}…, now ${sha256.slice(0, 12)}…). ` +
        'Runs on it would not be comparable with earlier ones, so it was not stored.',
    );
}

/** Accept a changed file at a dataset's URL: drop its pinned hash (and its cached text). */
export async function unpinDataset(name: DatasetName, baseUrl?: string): Promise<void> {
  const url = datasetUrl(name, baseUrl);
  await del(url, datasetFiles());
  await del(pinKey(url), datasetFiles());
}

/** Download (or read from cache) and parse a dataset. */
export async function loadDataset(
  name: DatasetName,
  options: DatasetSourceOptions = {},
): Promise<ParsedDataset & { url: string; cached: boolean; sha256: string }> {
  const { url, text, cached } = await loadDatasetText(name, options);
  // For run records: the file's text as UTF-8 (the bytes served, for a file without a BOM).
  return { ...parseDataset(text, name), url, cached, sha256: await sha256OfText(text) };
}

/** Forget a cached file (its pinned hash stays: a new download must match it). */
export async function forgetDataset(name: DatasetName, baseUrl?: string): Promise<void> {
  await del(datasetUrl(name, baseUrl), datasetFiles());
}
