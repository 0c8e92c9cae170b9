/**
 * Fetch dataset files and cache their raw text in IndexedDB, so a dataset downloads once and the
 * lab works offline afterwards. Parsing lives in datasets.ts (Node-testable); this module is the
 * browser part.
 */
import { createStore, get, setMany, del, delMany, type UseStore } from 'idb-keyval';
import { DATASETS, DatasetParseError, describeSkipped, parseDataset, type DatasetName, type ParsedDataset } from './datasets.ts';
import { sha256OfText } from './runRecord.ts';
import { BrokenFileError, FileNotFoundError, FileTooLargeError, hostOf, HostUnreachableError, HttpStatusError, requireFileText } from '../formats/fetchFile.ts';

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
  // Through the fetch layer: a host's index page in the file's place is "not found" and is never
  // cached as the dataset; a body cut short of its Content-Length is broken and not cached either.
  const label = DATASETS[name].label;
  const maxBytes = options.maxBytes ?? DATASET_MAX_BYTES;
  let text: string;
  try {
    text = await requireFileText(url, { file: DATASETS[name].path, signal: options.signal, fetch: options.fetch, maxBytes });
  } catch (e) {
    if (options.signal?.aborted) throw e;
    if (e instanceof FileNotFoundError)
      throw new DatasetDownloadError(
        `Could not download ${label}: it was not found at ${url}${e.reason === 'html' ? ' (the server answered with a web page instead)' : ` (HTTP ${e.status})`}. Check the data URL.`,
      );
    if (e instanceof HostUnreachableError)
      throw new DatasetDownloadError(
        `Could not download ${label} from ${url}: ${e.offline ? 'you appear to be offline' : `${hostOf(url)} could not be reached`}. Check the connection or the data URL.`,
      );
    if (e instanceof HttpStatusError) throw new DatasetDownloadError(`Could not download ${label} from ${url}: HTTP ${e.status}.`);
    if (e instanceof FileTooLargeError)
      throw new DatasetDownloadError(
        `Refused ${label} from ${url}: it is ${e.declared !== null ? mib(e.declared) : `more than ${mib(maxBytes)}`}, over the ${mib(maxBytes)} a dataset file may have. Nothing was stored.`,
      );
    if (e instanceof BrokenFileError) throw new DatasetDownloadError(`Could not download ${label} from ${url}: ${e.detail}. Try again.`);
    throw e;
  }
  const sha256 = await sha256OfText(text);
  await refuseIfPinnedDiffers(url, sha256, label);
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
  const parsed = parseDataset(text, name);
  if (parsed.problems.length === 0) {
    // A file with no usable problem is no dataset: say so (not "no problem 0 of N"), and keep nothing of it.
    await delMany([url, pinKey(url)], datasetFiles());
    throw new DatasetParseError(noValidProblems(DATASETS[name].label, url, parsed));
  }
  // For run records: the file's text as UTF-8 (the bytes served, for a file without a BOM).
  return { ...parsed, url, cached, sha256: await sha256OfText(text) };
}

/** The words for a file in which no line is a valid problem (the first few reasons why). */
export function noValidProblems(label: string, url: string, parsed: ParsedDataset): string {
  const why = describeSkipped(parsed.skipped.slice(0, 3)).join('; ');
  const lines = parsed.total === 1 ? '1 item' : `${parsed.total} items`;
  return parsed.total === 0
    ? `No valid problems at ${url}: the file is empty. Check the data URL.`
    : `No valid problems at ${url}: none of its ${lines} is a ${label} problem (${why}${parsed.skipped.length > 3 ? '; …' : ''}). Check the data URL.`;
}

/** Forget a cached file (its pinned hash stays: a new download must match it). */
export async function forgetDataset(name: DatasetName, baseUrl?: string): Promise<void> {
  await del(datasetUrl(name, baseUrl), datasetFiles());
}
