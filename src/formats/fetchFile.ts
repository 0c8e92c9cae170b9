/**
 * The one fetch layer: every file the app reads over HTTP (model files, manifests, the catalog,
 * datasets, adapters) is classified here as found, missing or broken, the same way on every host.
 *
 * Hosts disagree on what "missing" looks like, and a reader that only checks `response.ok` gets
 * it wrong on most of them:
 * - a plain 404 or 410;
 * - a 200 carrying the site's index.html: Vite dev and preview, GitHub Pages, Netlify and most
 *   single-page-app hosts answer every unknown path so. Nothing we fetch is HTML, so an HTML
 *   answer (by Content-Type, or a body that starts like a page) is a missing file;
 * and what "broken" looks like:
 * - a body shorter than its Content-Length (the connection dropped), or than the size the caller
 *   knows (a manifest's size): a close-delimited body cut short looks complete to fetch();
 * - a JSON file that does not parse (a small file with no known size, served without
 *   Content-Length or gzip-encoded, cut short: only parsing can tell).
 * Content-Length counts the encoded bytes: for a gzip-encoded body it is no bound on what fetch()
 * yields, so it is ignored then. Redirects (the hub's resolve URLs answer 302 to a CDN on another
 * origin) are followed by fetch() itself.
 *
 * Shared by the browser and Node (no DOM, no UI): storage, the engine's HTTP source, the catalog,
 * datasets and the service worker's caching rule all use it.
 */

/** A file the host does not have (404/410, or its index page instead of the file). */
export class FileNotFoundError extends Error {
  override name = 'FileNotFoundError';
  constructor(
    readonly file: string,
    readonly url: string,
    /** 'status': HTTP 404/410; 'html': a web page (the host's index page) came instead of the file. */
    readonly reason: 'status' | 'html',
    readonly status: number,
  ) {
    super(
      reason === 'html'
        ? `${file} was not found at ${url}: the server answered with a web page (HTML) instead of the file, as single-page-app hosts do for a missing file.`
        : `${file} was not found at ${url} (HTTP ${status}).`,
    );
  }
}

/** A file that arrived incomplete or unreadable (cut short, or JSON that does not parse). Nothing of it is kept. */
export class BrokenFileError extends Error {
  override name = 'BrokenFileError';
  constructor(
    readonly file: string,
    readonly url: string,
    readonly detail: string,
  ) {
    super(`${file} from ${url} arrived broken (${detail}); nothing of it was kept. Try again.`);
  }
}

/** The host could not be reached at all (offline, DNS, refused connection, CORS). */
export class HostUnreachableError extends Error {
  override name = 'HostUnreachableError';
  constructor(
    readonly file: string,
    readonly url: string,
    /** True when the browser says it has no network (navigator.onLine false). */
    readonly offline: boolean,
    options?: { cause?: unknown },
  ) {
    const host = hostOf(url);
    super(
      offline
        ? `Could not reach ${host} to fetch ${file}: you appear to be offline. Connect to the internet, then try again.`
        : `Could not reach ${host} to fetch ${file} (${causeText(options?.cause)}). Check the connection or the address, then try again.`,
      options,
    );
  }
}

/** The host answered with an HTTP error other than 404/410 (401, 403, 429, 5xx …). */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly file: string,
    readonly url: string,
    readonly status: number,
  ) {
    super(`${file} could not be fetched from ${url} (HTTP ${status}).`);
  }
}

/** The host name of a URL, for messages ("huggingface.co"); the URL itself when it does not parse. */
export function hostOf(url: string): string {
  try {
    return new URL(url, globalThis.location?.href).host || url;
  } catch {
    return url;
  }
}

function causeText(cause: unknown): string {
  return cause instanceof Error ? cause.message : cause === undefined ? 'no answer' : String(cause);
}

/** True when the browser (or Node) reports no network at all. */
export function appearsOffline(): boolean {
  return typeof navigator !== 'undefined' && navigator.onLine === false;
}

/** A Content-Type that is a web page. */
export function isHtmlContentType(contentType: string | null): boolean {
  return contentType !== null && /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(contentType);
}

const HTML_START = /^(\ufeff)?\s*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>]|!--)/i;

/** True when bytes begin like an HTML document (`<!doctype html`, `<html`, …), whitespace and a BOM allowed. */
export function looksLikeHtml(firstBytes: Uint8Array): boolean {
  return HTML_START.test(new TextDecoder().decode(firstBytes.subarray(0, 64)));
}

/**
 * The body length a response promises after decoding: Content-Length when the body is surely not
 * content-encoded, else null (unknown). For gzip or br, Content-Length counts the compressed
 * bytes. A cross-origin (CORS) response hides Content-Encoding from the page while showing
 * Content-Length, so there the encoding cannot be ruled out and the length is unknown too.
 */
export function decodedLength(res: Response): number | null {
  if (res.type === 'cors' || res.type === 'opaque') return null;
  const enc = res.headers.get('Content-Encoding');
  if (enc !== null && enc.trim().toLowerCase() !== 'identity') return null;
  const v = res.headers.get('Content-Length');
  if (v === null || v.trim() === '') return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/**
 * Whether the body's end is announced (Content-Length, visible even cross-origin): the browser or
 * Node then fails the read of a body cut short, so a body that ends without an error is whole.
 * A close-delimited body (no Content-Length) cut short ends like a whole one.
 */
export function isLengthDelimited(res: Response): boolean {
  return res.headers.get('Content-Length') !== null;
}

export type Classified =
  | {
      kind: 'found';
      response: Response;
      /** The body, with the bytes read for the HTML check put back in front. */
      body: ReadableStream<Uint8Array>;
      /** Decoded bytes the body should hold (Content-Length of a body surely not encoded), or null. */
      length: number | null;
      /** The body's end is announced: ending without a read error, it is whole (isLengthDelimited). */
      delimited: boolean;
    }
  | { kind: 'missing'; reason: 'status' | 'html'; status: number }
  | { kind: 'error'; status: number };

/** How many leading bytes the HTML check looks at (a page's first tag is well within). */
const SNIFF_BYTES = 64;

/**
 * Classify a response to a request for a file that is never HTML (JSON, text data, binary).
 * 'found' hands back the body to read; 'missing' and 'error' have cancelled it.
 */
export async function classifyResponse(res: Response): Promise<Classified> {
  if (res.status === 404 || res.status === 410) {
    await res.body?.cancel().catch(() => {});
    return { kind: 'missing', reason: 'status', status: res.status };
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    return { kind: 'error', status: res.status };
  }
  if (isHtmlContentType(res.headers.get('Content-Type'))) {
    await res.body?.cancel().catch(() => {});
    return { kind: 'missing', reason: 'html', status: res.status };
  }
  const length = decodedLength(res);
  const delimited = isLengthDelimited(res);
  if (!res.body) return { kind: 'found', response: res, body: new Blob([]).stream() as ReadableStream<Uint8Array>, length, delimited };
  // Some hosts send their index page as text/plain or with no type: look at the first bytes too.
  const reader = res.body.getReader();
  const head: Uint8Array[] = [];
  let headLen = 0;
  let done = false;
  // A read that fails this early (the connection dropped) reaches the consumer as the body's error.
  let failed: { error: unknown } | undefined;
  while (headLen < SNIFF_BYTES) {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await reader.read();
    } catch (error) {
      failed = { error };
      break;
    }
    if (r.done) {
      done = true;
      break;
    }
    head.push(r.value);
    headLen += r.value.length;
  }
  const first = concat(head, headLen);
  if (looksLikeHtml(first)) {
    await reader.cancel().catch(() => {});
    return { kind: 'missing', reason: 'html', status: res.status };
  }
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (first.length > 0) controller.enqueue(first);
        if (failed) controller.error(failed.error);
        else if (done) controller.close();
      },
      async pull(controller) {
        // Read errors (a dropped connection) reach the consumer as they are.
        const r = await reader.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return { kind: 'found', response: res, body, length, delimited };
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface FetchFileOptions {
  /** The file's name in messages (default: the URL's last path segment). */
  file?: string;
  signal?: AbortSignal;
  /** Request options beside the signal (cache mode, headers). */
  init?: RequestInit;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch;
}

function fileName(url: string, file: string | undefined): string {
  if (file) return file;
  try {
    return decodeURIComponent(new URL(url, globalThis.location?.href).pathname.split('/').pop() || url);
  } catch {
    return url;
  }
}

/**
 * Fetch and classify. Missing and HTTP errors are returned (the caller decides whether a missing
 * file is an error); an unreachable host throws HostUnreachableError (the abort reason when aborted).
 */
export async function openFile(url: string, opts: FetchFileOptions = {}): Promise<Classified> {
  const doFetch = opts.fetch ?? globalThis.fetch;
  let res: Response;
  try {
    res = await doFetch(url, { ...opts.init, signal: opts.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new HostUnreachableError(fileName(url, opts.file), url, appearsOffline(), { cause: e });
  }
  return classifyResponse(res);
}

export interface ReadWholeOptions extends FetchFileOptions {
  /** The size the caller knows (a manifest's): a body of another length is broken. */
  expectedSize?: number | null;
  /** The most bytes the caller accepts (a dataset's cap): a larger body is refused mid-stream, never read whole. */
  maxBytes?: number;
}

/** A file larger than its caller accepts: `declared` is its Content-Length when that gave it away, else null (it streamed past the cap). */
export class FileTooLargeError extends Error {
  override name = 'FileTooLargeError';
  constructor(
    readonly file: string,
    readonly url: string,
    readonly maxBytes: number,
    readonly declared: number | null,
  ) {
    super(`${file} from ${url} is larger than the ${maxBytes} bytes accepted; nothing of it was kept.`);
  }
}

/**
 * A whole file's bytes, or null when the host does not have it.
 * @throws BrokenFileError (cut short, or not the expected size), HostUnreachableError, HttpStatusError
 */
export async function fetchFileBytes(url: string, opts: ReadWholeOptions = {}): Promise<Uint8Array | null> {
  const got = await readWhole(url, opts);
  return got instanceof FileNotFoundError ? null : got;
}

/** A whole file's bytes. @throws FileNotFoundError when the host does not have it, else as fetchFileBytes */
export async function requireFileBytes(url: string, opts: ReadWholeOptions = {}): Promise<Uint8Array> {
  const got = await readWhole(url, opts);
  if (got instanceof FileNotFoundError) throw got;
  return got;
}

/** A whole text file (UTF-8). @throws FileNotFoundError when the host does not have it, else as fetchFileBytes */
export async function requireFileText(url: string, opts: ReadWholeOptions = {}): Promise<string> {
  return new TextDecoder().decode(await requireFileBytes(url, opts));
}

/** A whole JSON file, parsed. @throws FileNotFoundError when the host does not have it, else as fetchFileJson */
export async function requireFileJson(url: string, opts: ReadWholeOptions = {}): Promise<unknown> {
  return parseJsonFile(await requireFileText(url, opts), fileName(url, opts.file), url);
}

async function readWhole(url: string, opts: ReadWholeOptions): Promise<Uint8Array | FileNotFoundError> {
  const file = fileName(url, opts.file);
  const c = await openFile(url, opts);
  if (c.kind === 'missing') return new FileNotFoundError(file, url, c.reason, c.status);
  if (c.kind === 'error') throw new HttpStatusError(file, url, c.status);
  const cap = opts.maxBytes;
  if (cap !== undefined && c.length !== null && c.length > cap) {
    void c.body.cancel().catch(() => {});
    throw new FileTooLargeError(file, url, cap, c.length);
  }
  const reader = c.body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await reader.read();
    } catch (e) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const of = c.length ?? opts.expectedSize;
      throw new BrokenFileError(file, url, `the connection closed after ${n}${of != null ? ` of ${of}` : ''} bytes: ${causeText(e)}`);
    }
    if (r.done) break;
    parts.push(r.value);
    n += r.value.length;
    if (cap !== undefined && n > cap) {
      void reader.cancel().catch(() => {});
      throw new FileTooLargeError(file, url, cap, null);
    }
  }
  if (c.length !== null && n < c.length) throw new BrokenFileError(file, url, `${n} of the ${c.length} bytes its Content-Length announced`);
  const want = opts.expectedSize;
  if (want != null && n !== want) throw new BrokenFileError(file, url, `${n} bytes where ${want} were expected`);
  return concat(parts, n);
}

/** A whole text file (UTF-8), or null when the host does not have it. @throws as fetchFileBytes */
export async function fetchFileText(url: string, opts: ReadWholeOptions = {}): Promise<string | null> {
  const bytes = await fetchFileBytes(url, opts);
  return bytes === null ? null : new TextDecoder().decode(bytes);
}

/**
 * A whole JSON file, parsed, or null when the host does not have it. JSON that does not parse is
 * broken (a cut-short body is the usual cause).
 * @throws BrokenFileError, HostUnreachableError, HttpStatusError
 */
export async function fetchFileJson(url: string, opts: ReadWholeOptions = {}): Promise<unknown | null> {
  const text = await fetchFileText(url, opts);
  if (text === null) return null;
  return parseJsonFile(text, fileName(url, opts.file), url);
}

/** Parse a fetched JSON file's text. @throws BrokenFileError naming the file */
export function parseJsonFile(text: string, file: string, url: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BrokenFileError(file, url, `not valid JSON: ${(e as Error).message}`);
  }
}
