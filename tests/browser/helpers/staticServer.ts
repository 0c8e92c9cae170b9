/**
 * A static file server for a built site, on 127.0.0.1 with a random port: folders mounted under
 * URL prefixes (the build at '/', ../shared/data at '/data/'), GET and HEAD, a request log, and
 * a stalled mode (requests accepted, never answered).
 * No caching headers beyond `no-cache`, like a plain static host. `spaFallback` names a mount
 * whose index.html answers every path under it that is not a file (200, text/html), as
 * single-page-app hosts (GitHub Pages with a 404 page copy, Netlify rewrites, Vite) do.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
};

export interface StaticServer {
  /** Origin plus '/'. */
  url: string;
  /** Paths requested, in order. */
  log: string[];
  /** Accept requests but never answer them (a network that hangs), or answer again. */
  stall(on: boolean): void;
  /** Stop listening and drop open connections: the network is gone. */
  close(): Promise<void>;
}

/** @param mounts URL prefix ('/' or '/data/') to folder; the longest matching prefix wins. */
export async function startStaticServer(mounts: Record<string, string>, options: { spaFallback?: string } = {}): Promise<StaticServer> {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const log: string[] = [];
  const sockets = new Set<Socket>();
  let stalled = false;
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    log.push(path);
    if (stalled) return;
    const prefix = prefixes.find((p) => path.startsWith(p));
    if (!prefix || (req.method !== 'GET' && req.method !== 'HEAD')) return void res.writeHead(prefix ? 405 : 404).end();
    const root = normalize(mounts[prefix]);
    let file = normalize(join(root, path.slice(prefix.length)));
    if (file !== root && !file.startsWith(root + sep)) return void res.writeHead(403).end();
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if ((!existsSync(file) || !statSync(file).isFile()) && options.spaFallback !== undefined && path.startsWith(options.spaFallback))
      file = join(normalize(mounts[options.spaFallback]), 'index.html');
    if (!existsSync(file) || !statSync(file).isFile()) return void res.writeHead(404).end();
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': String(statSync(file).size),
      'Cache-Control': 'no-cache',
    });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    stall: (on) => {
      stalled = on;
    },
    close: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}
