/**
 * A local server that answers what @huggingface/hub asks huggingface.co (read from its
 * src/lib/list-files.ts, file-download-info.ts and utils/WebBlob.ts), and a second one on another
 * port as its CDN, since the real hub's resolve URLs redirect to another origin:
 *  - GET /api/models/<owner>/<name>/tree/<rev>?recursive=…: the file list as JSON
 *    ({ type, oid, size, path }), 404 with X-Error-Code RepoNotFound for an unknown repository;
 *  - GET /<owner>/<name>/resolve/<rev>/<path>: 302 to the CDN (X-Linked-Size, X-Linked-Etag), or
 *    404 with X-Error-Code EntryNotFound;
 *  - CDN GET /<owner>/<name>/<path>: the bytes, with ETag and Range (206 + Content-Range).
 * Both send CORS headers (the page is another origin) and answer preflights.
 * Options: `gated` repositories answer their resolve URLs 401 (as the hub does for a gated repo
 * without an accepted license) unless the request carries `Authorization: Bearer <token>`;
 * `delayMs` (settable later) holds each CDN Range answer back, so a test can act mid-transfer.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeHub {
  /** The hub's origin (no trailing slash), for `?hub=`. */
  url: string;
  cdnUrl: string;
  /** Requests seen by either server: "hub GET /api/…" / "cdn GET /…  bytes=0-0". */
  log: string[];
  /** Milliseconds each CDN Range answer waits (0: none); may be changed between tests. */
  delayMs: number;
  close(): Promise<void>;
}

export interface FakeHubOptions {
  /** repo id → the token it accepts */
  gated?: Map<string, string>;
  delayMs?: number;
}

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'Range, Accept, Authorization, Content-Type',
  'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, X-Linked-Size, X-Linked-Etag, X-Error-Code, Link, Accept-Ranges',
};

function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.method === 'OPTIONS') return void res.writeHead(204, CORS).end();
    handler(req, res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

/** @param repos repo id ("owner/name") → its files (path → bytes) */
export async function startFakeHub(repos: Map<string, Map<string, Uint8Array>>, opts: FakeHubOptions = {}): Promise<FakeHub> {
  const log: string[] = [];
  const state = { delayMs: opts.delayMs ?? 0 };
  const etag = (b: Uint8Array) => `"${createHash('sha256').update(b).digest('hex')}"`;
  const lookup = (owner: string, name: string, path: string) => repos.get(`${owner}/${name}`)?.get(path);

  const cdn = await listen((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const range = req.headers.range;
    log.push(`cdn ${req.method} ${path}${range ? `  ${range}` : ''}`);
    const m = /^\/([^/]+)\/([^/]+)\/(.+)$/.exec(path);
    const body = m && lookup(m[1], m[2], m[3]);
    if (!body) return void res.writeHead(404, CORS).end('not found');
    const head = { ...CORS, ETag: etag(body), 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' };
    const r = range && /^bytes=(\d+)-(\d*)$/.exec(range);
    if (r) {
      const start = Number(r[1]);
      const end = r[2] === '' ? body.length - 1 : Math.min(Number(r[2]), body.length - 1);
      if (start >= body.length) return void res.writeHead(416, { ...CORS, 'Content-Range': `bytes */${body.length}` }).end();
      const answer = () => {
        res.writeHead(206, { ...head, 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Length': String(end - start + 1) });
        res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
      };
      if (state.delayMs > 0) return void setTimeout(answer, state.delayMs);
      return answer();
    }
    res.writeHead(200, { ...head, 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });

  const hub = await listen((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    log.push(`hub ${req.method} ${path}`);
    const tree = /^\/api\/models\/([^/]+)\/([^/]+)\/tree\/([^/]+)$/.exec(path);
    if (tree) {
      const files = repos.get(`${tree[1]}/${tree[2]}`);
      if (!files)
        return void res.writeHead(404, { ...CORS, 'Content-Type': 'application/json', 'X-Error-Code': 'RepoNotFound' }).end('{"error":"Repository not found"}');
      const list = [...files].map(([p, b]) => ({ type: 'file', oid: createHash('sha1').update(b).digest('hex'), size: b.length, path: p }));
      return void res.writeHead(200, { ...CORS, 'Content-Type': 'application/json' }).end(JSON.stringify(list));
    }
    const resolve = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (resolve) {
      const body = lookup(resolve[1], resolve[2], resolve[4]);
      const token = opts.gated?.get(`${resolve[1]}/${resolve[2]}`);
      if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
        return void res.writeHead(401, { ...CORS, 'Content-Type': 'application/json', 'X-Error-Code': 'GatedRepo' }).end(
          JSON.stringify({
            error: `Access to model ${resolve[1]}/${resolve[2]} is restricted. You must have access to it and be authenticated to access it.`,
          }),
        );
      }
      if (!body) return void res.writeHead(404, { ...CORS, 'X-Error-Code': 'EntryNotFound' }).end('Entry not found');
      return void res
        .writeHead(302, {
          ...CORS,
          Location: `${cdn.url}/${resolve[1]}/${resolve[2]}/${resolve[4]}`,
          'X-Linked-Size': String(body.length),
          'X-Linked-Etag': etag(body),
        })
        .end();
    }
    res.writeHead(404, CORS).end('not found');
  });

  return {
    url: hub.url,
    cdnUrl: cdn.url,
    log,
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    close: async () => {
      for (const s of [hub.server, cdn.server]) {
        s.closeAllConnections();
        await new Promise((ok) => s.close(ok));
      }
    },
  };
}
