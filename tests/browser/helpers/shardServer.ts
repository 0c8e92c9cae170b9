/**
 * A small HTTP file server for storage tests, on 127.0.0.1 with a random port: CORS, Range
 * requests, a request log, and faults on demand (drop the connection mid-file, answer an HTTP
 * status, serve corrupted bytes, go slowly, ignore Range).
 *
 * It also does what real hosts do (the fetch layer's tests, fetch-hosts.spec.ts):
 * - `spaFallback`: answer every unknown path with an index page and status 200, as Vite, GitHub
 *   Pages, Netlify and other single-page-app hosts do;
 * - 'close-delimited': a body with neither Content-Length nor chunked encoding, ended by closing
 *   the connection (early, when asked: the client cannot tell);
 * - 'gzip': Content-Encoding gzip, Content-Length counting the compressed bytes;
 * - 'drop': Content-Length larger than the body the connection carries;
 * - `redirectTo`: every file request answered 302 to the same path on another server (another
 *   origin), as the hub's resolve URLs redirect to its CDN.
 */

import type { Page } from '@playwright/test';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export type Fault =
  /** Send this many bytes of the body, then destroy the socket. */
  | { kind: 'drop'; afterBytes: number }
  /** Answer with this status and no file. */
  | { kind: 'status'; status: number }
  /** Serve the file with one byte flipped (same length). */
  | { kind: 'corrupt' }
  /** Answer 200 with the whole file even when a Range was asked for. */
  | { kind: 'ignore-range' }
  /** No Content-Length, no chunked encoding: the body ends when the connection closes, here after `afterBytes` (default: all). */
  | { kind: 'close-delimited'; afterBytes?: number }
  /**
   * Gzip-encoded (Content-Length: the compressed size, Range ignored). `afterBytes`: close the
   * connection after that many compressed bytes; `closeDelimited`: send no Content-Length.
   */
  | { kind: 'gzip'; afterBytes?: number; closeDelimited?: boolean };

export interface ShardServerOptions {
  /** Serve this page (200, text/html) for every path that is not a file, like a single-page-app host. */
  spaFallback?: string;
  /** Content-Type of the fallback page (default text/html; some hosts send text/plain or none). */
  spaContentType?: string | null;
}

/** An index page as Vite and static SPA hosts serve it. */
export const INDEX_HTML =
  '<!doctype html>\n<html lang="en">\n  <head><meta charset="UTF-8" /><title>Reasoning Lab</title></head>\n  <body><div id="app"></div></body>\n</html>\n';

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | null;
  status: number;
  /** Body bytes actually written. */
  bytesSent: number;
}

export interface ShardServer {
  /** Base URL, ending in '/'. */
  url: string;
  /** Every request, in arrival order. */
  log: LoggedRequest[];
  /** Files served, by path (no leading slash). */
  files: Map<string, Uint8Array>;
  /** Apply `fault` to the next `times` GET requests of `path` (default once). */
  fault(path: string, fault: Fault, times?: number): void;
  /** Throttle every body to about this many bytes per second (null: full speed). */
  setRate(bytesPerSecond: number | null): void;
  clearFaults(): void;
  /** Answer every GET/HEAD of a file with a 302 to `base` + the same path (null: serve again). */
  redirectTo(base: string | null): void;
  /** GET requests of a path (HEAD and OPTIONS excluded). */
  gets(path: string): LoggedRequest[];
  close(): Promise<void>;
}

export async function startShardServer(files: Record<string, Uint8Array> | Map<string, Uint8Array>, options: ShardServerOptions = {}): Promise<ShardServer> {
  const fileMap = files instanceof Map ? files : new Map(Object.entries(files));
  let redirectBase: string | null = null;
  const faults = new Map<string, { fault: Fault; times: number }[]>();
  const log: LoggedRequest[] = [];
  let rate: number | null = null;
  const sockets = new Set<import('node:net').Socket>();

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Range');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, Accept-Ranges');
    res.setHeader('Cache-Control', 'no-store');
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/^\/+/, '');
    const entry: LoggedRequest = { method: req.method ?? 'GET', path, range: req.headers.range ?? null, status: 0, bytesSent: 0 };
    log.push(entry);
    if (req.method === 'OPTIONS') {
      entry.status = 204;
      res.writeHead(204, { 'Access-Control-Allow-Methods': 'GET, HEAD' }).end();
      return;
    }
    if (redirectBase !== null) {
      entry.status = 302;
      res.writeHead(302, { Location: new URL(path, redirectBase).href, 'Content-Type': 'text/plain' }).end('Found');
      return;
    }
    const data = fileMap.get(path);
    let fault: Fault | undefined;
    const queue = faults.get(path);
    if (queue?.length && req.method === 'GET') {
      fault = queue[0].fault;
      if (--queue[0].times <= 0) queue.shift();
    }
    if (fault?.kind === 'status') {
      entry.status = fault.status;
      res.writeHead(fault.status, { 'Content-Type': 'text/plain' }).end(`fault ${fault.status}`);
      return;
    }
    if (!data && options.spaFallback !== undefined) {
      entry.status = 200;
      const page = Buffer.from(options.spaFallback);
      const type = options.spaContentType === undefined ? 'text/html; charset=utf-8' : options.spaContentType;
      res.writeHead(200, { ...(type !== null ? { 'Content-Type': type } : {}), 'Content-Length': String(page.length) });
      if (req.method === 'HEAD') return void res.end();
      entry.bytesSent = page.length;
      res.end(page);
      return;
    }
    if (!data) {
      entry.status = 404;
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    let body = data;
    if (fault?.kind === 'corrupt') {
      body = data.slice();
      body[body.length >> 1] ^= 0xff;
    }
    if (fault?.kind === 'close-delimited' || (fault?.kind === 'gzip' && fault.closeDelimited)) {
      // Written on the socket itself: Node's response would add chunked encoding.
      const payload = fault.kind === 'gzip' ? gzipSync(body) : body;
      const n = Math.min(fault.afterBytes ?? payload.length, payload.length);
      const head =
        'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\nCache-Control: no-store\r\n' +
        'Access-Control-Allow-Origin: *\r\n' +
        (fault.kind === 'gzip' ? 'Content-Encoding: gzip\r\n' : '') +
        '\r\n';
      entry.status = 200;
      entry.bytesSent = req.method === 'HEAD' ? 0 : n;
      const sock = res.socket!;
      sock.write(head);
      if (req.method !== 'HEAD') sock.write(payload.subarray(0, n));
      sock.end();
      return;
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let dropAt = fault?.kind === 'drop' ? fault.afterBytes : Infinity;
    if (fault?.kind === 'gzip') {
      body = gzipSync(body);
      entry.status = 200;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Encoding': 'gzip', 'Content-Length': String(body.length) });
      dropAt = fault.afterBytes ?? Infinity;
    } else if (m && fault?.kind !== 'ignore-range') {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
      if (start >= body.length) {
        entry.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      entry.status = 206;
      res.writeHead(206, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(end - start + 1),
        'Content-Range': `bytes ${start}-${end}/${body.length}`,
        'Accept-Ranges': 'bytes',
      });
      body = body.subarray(start, end + 1);
    } else {
      entry.status = 200;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length), 'Accept-Ranges': 'bytes' });
    }
    if (req.method === 'HEAD') return void res.end();
    const piece = 16 * 1024;
    let at = 0;
    while (at < body.length) {
      if (res.destroyed) return;
      const n = Math.min(piece, body.length - at, dropAt - at);
      if (n <= 0) {
        // Make sure the bytes so far leave this socket and have time to be read, then cut the connection.
        // (How many reach the page before the cut is still the network's business on a loaded machine,
        // so tests assert what was committed, not an exact count.)
        await new Promise((r) => (res.socket ? res.socket.write('', () => r(null)) : r(null)));
        await new Promise((r) => setTimeout(r, 300));
        res.socket?.destroy();
        return;
      }
      const ok = res.write(body.subarray(at, at + n));
      at += n;
      entry.bytesSent = at;
      if (!ok) await new Promise((r) => res.once('drain', r));
      if (rate !== null) await new Promise((r) => setTimeout(r, (n / rate!) * 1000));
    }
    res.end();
  };

  const server: Server = createServer((req, res) => {
    handler(req, res).catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    files: fileMap,
    fault(path, fault, times = 1) {
      const q = faults.get(path) ?? [];
      q.push({ fault, times });
      faults.set(path, q);
    },
    setRate(bps) {
      rate = bps;
    },
    clearFaults() {
      faults.clear();
    },
    redirectTo(base) {
      redirectBase = base;
    },
    gets(path) {
      return log.filter((e) => e.path === path && e.method === 'GET');
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

export interface TestModel {
  id: string;
  /** Every file served, by path. */
  files: Map<string, Uint8Array>;
  /** sha256 hex of every file. */
  sha256: Map<string, string>;
  shardPaths: string[];
  /** A manifest listing every file with size and sha256 (baseUrl filled in by `manifestFor`). */
  manifest(baseUrl: string, opts?: { hashes?: boolean; sizes?: boolean; derive?: boolean }): Record<string, unknown>;
}

/**
 * A generated model directory: random shards (sizes deliberately not multiples of the chunk
 * size), a tensor-cache.json listing them, and an mlc-chat-config.json.
 */
export async function makeTestModel(id: string, shardSizes: number[]): Promise<TestModel> {
  const { createHash, randomBytes } = await import('node:crypto');
  const files = new Map<string, Uint8Array>();
  const shardPaths = shardSizes.map((_, i) => `params_shard_${i}.bin`);
  shardSizes.forEach((n, i) => files.set(shardPaths[i], new Uint8Array(randomBytes(n))));
  const cache = {
    metadata: { ParamSize: shardSizes.length, ParamBytes: shardSizes.reduce((a, b) => a + b, 0) },
    records: shardPaths.map((p, i) => ({
      dataPath: p,
      format: 'raw-shard',
      nbytes: shardSizes[i],
      records: [{ name: `w${i}`, shape: [shardSizes[i]], dtype: 'uint8', format: 'raw', nbytes: shardSizes[i], byteOffset: 0 }],
      md5sum: createHash('md5').update(files.get(p)!).digest('hex'),
    })),
  };
  files.set('tensor-cache.json', new TextEncoder().encode(JSON.stringify(cache)));
  files.set('mlc-chat-config.json', new TextEncoder().encode(JSON.stringify({ model_type: 'llama', quantization: 'q4f32_1' })));
  const sha256 = new Map([...files].map(([p, b]) => [p, createHash('sha256').update(b).digest('hex')]));
  return {
    id,
    files,
    sha256,
    shardPaths,
    manifest(baseUrl, opts = {}) {
      const { hashes = true, sizes = true, derive = false } = opts;
      const entry = (p: string) => ({
        path: p,
        size: sizes ? files.get(p)!.length : null,
        ...(hashes ? { sha256: sha256.get(p) } : {}),
      });
      return {
        schema: 1,
        id,
        name: `Test model ${id}`,
        kind: 'base',
        baseUrl,
        quantization: 'q4f32_1',
        fingerprint: sha256.get('tensor-cache.json'),
        ...(derive ? { shardIndex: ['tensor-cache.json'] } : {}),
        files: derive ? [entry('mlc-chat-config.json')] : [...files.keys()].map(entry),
      };
    },
  };
}

// ---- In-page helpers: the storage module runs in the page, loaded through Vite. ----

type StorageModule = typeof import('../../../src/storage/index.ts');
type Win = Window & { S: StorageModule; events: import('../../../src/storage/index.ts').StorageEvent[]; pending?: Promise<unknown> };

export interface PageDownloadOptions {
  chunkSize?: number;
  concurrency?: number;
  retries?: number;
  retryDelayMs?: number;
  /** Free room the quota check sees (bytes), instead of navigator.storage.estimate(). */
  fakeRoom?: number;
}

export type Outcome = { ok: true } | { ok: false; name: string; message: string };

/** Open the app and load src/storage into `window.S`; events are collected in `window.events`. */
export async function openStorage(page: Page): Promise<void> {
  await page.goto('/');
  await page.evaluate(async () => {
    const url = '/src/storage/index.ts';
    const w = window as unknown as Win;
    w.S = (await import(/* @vite-ignore */ url)) as StorageModule;
    w.events = [];
    w.S.subscribe((e) => w.events.push(e));
  });
}

/** Start a download in the page; `wait: false` returns at once (see `settle`). */
export async function download(page: Page, manifest: unknown, opts: PageDownloadOptions = {}, wait = true): Promise<Outcome> {
  return page.evaluate(
    async ({ manifest, opts, wait }) => {
      const w = window as unknown as Win;
      const m = w.S.parseManifest(manifest, 'test manifest');
      const { fakeRoom, ...rest } = opts;
      const p = w.S.downloadModel(m, {
        retryDelayMs: 10,
        ...rest,
        ...(fakeRoom !== undefined ? { estimate: async () => ({ quota: fakeRoom, usage: 0 }) } : {}),
      }).then(
        () => ({ ok: true as const }),
        (e: Error) => ({ ok: false as const, name: e.name, message: e.message }),
      );
      w.pending = p;
      return wait ? p : { ok: true as const };
    },
    { manifest, opts, wait },
  );
}

/** The outcome of a download started with `wait: false`. */
export async function settle(page: Page): Promise<Outcome> {
  return page.evaluate(() => (window as unknown as Win).pending as Promise<Outcome>);
}

/** sha256 (WebCrypto) and length of each stored file, read back through idbModelSource. */
export async function storedDigests(page: Page, id: string, paths: string[]): Promise<Record<string, string>> {
  return page.evaluate(
    async ({ id, paths }) => {
      const w = window as unknown as Win;
      const src = w.S.idbModelSource(id);
      const out: Record<string, string> = {};
      for (const p of paths) {
        try {
          const buf = await src.readShard(p);
          const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
          out[p] = [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
        } catch (e) {
          out[p] = `${(e as Error).name}: ${(e as Error).message}`;
        }
      }
      return out;
    },
    { id, paths },
  );
}

/** The model's status as the models panel would see it. */
export async function modelStatus(page: Page, manifest: unknown) {
  return page.evaluate(async (manifest) => {
    const w = window as unknown as Win;
    const s = await w.S.getModelStatus(w.S.parseManifest(manifest, 'test manifest'));
    return { state: s.state, bytesStored: s.bytesStored, bytesTotal: s.bytesTotal, files: s.files, lastError: s.lastError };
  }, manifest);
}

/**
 * Consistency of what is stored: every file record's bytesStored equals the bytes of its chunks,
 * and a record marked complete has the sha256 of its bytes. Returns the problems found.
 */
export async function storeProblems(page: Page, id: string): Promise<string[]> {
  return page.evaluate(async (id) => {
    const problems: string[] = [];
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open('reasoning-lab-models');
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const all = await new Promise<{ keys: IDBValidKey[]; values: unknown[] }>((res, rej) => {
      const tx = db.transaction('files', 'readonly');
      const s = tx.objectStore('files');
      const k = s.getAllKeys();
      const v = s.getAll();
      tx.oncomplete = () => res({ keys: k.result, values: v.result });
      tx.onerror = () => rej(tx.error);
    });
    db.close();
    const chunkBytes = new Map<string, ArrayBuffer[]>();
    const records: { path: string; status: string; bytesStored: number; chunkCount: number; sha256?: string }[] = [];
    all.keys.forEach((k, i) => {
      const key = k as unknown[];
      if (key[1] !== id) return;
      if (key[0] === 'chunk') {
        const list = chunkBytes.get(key[2] as string) ?? [];
        list[key[3] as number] = all.values[i] as ArrayBuffer;
        chunkBytes.set(key[2] as string, list);
      } else if (key[0] === 'file') records.push(all.values[i] as (typeof records)[number]);
    });
    for (const r of records) {
      const chunks = chunkBytes.get(r.path) ?? [];
      const n = chunks.reduce((s, c) => s + (c ? c.byteLength : 0), 0);
      if (chunks.length !== r.chunkCount || n !== r.bytesStored)
        problems.push(`${r.path}: record says ${r.bytesStored} bytes in ${r.chunkCount} chunks, store has ${n} in ${chunks.length}`);
      if (r.status === 'complete') {
        const all = new Uint8Array(n);
        let at = 0;
        for (const c of chunks) {
          all.set(new Uint8Array(c), at);
          at += c.byteLength;
        }
        const d = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
        const hex = [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
        if (hex !== r.sha256) problems.push(`${r.path}: recorded complete but its bytes do not match its sha256`);
      }
    }
    for (const p of chunkBytes.keys()) if (!records.some((r) => r.path === p)) problems.push(`${p}: chunks without a record`);
    return problems;
  }, id);
}
