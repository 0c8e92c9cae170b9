/// <reference lib="webworker" />
/**
 * The service worker that lets the built app start with the network off (registered by
 * register.ts in production builds only; built into sw.js by buildPlugin.ts).
 *
 * - install: the whole app shell (index.html, every JS/CSS chunk, the engine worker chunk) is put
 *   in a cache named after this build; the model catalog and manifests too, where reachable.
 * - activate: the caches of earlier builds at this scope are deleted; open pages are claimed.
 * - fetch: see routes.ts. The shell cache-first, page loads network-first with the cached
 *   index.html as fallback, the catalog/manifests and data/ datasets network-first with the cached
 *   copy as fallback. Model files are never cached here: they live in IndexedDB (src/storage).
 */
import { cacheName, cachePrefix, strategyFor } from './routes.ts';

/** Paths relative to the scope, written in by buildPlugin.ts from the build's output. */
declare const __RL_PRECACHE__: string[];
/** Paths relative to the scope cached at install when reachable (the catalog and manifests). */
declare const __RL_PRECACHE_OPTIONAL__: string[];
/** A hash of the build's output: a new build, a new cache. */
declare const __RL_VERSION__: string;

const sw = self as unknown as ServiceWorkerGlobalScope;
const scope = sw.registration.scope;
const CACHE = cacheName(scope, __RL_VERSION__);
const INDEX = new URL('index.html', scope).href;
const shell = __RL_PRECACHE__.map((p) => new URL(p, scope).href);
const PRECACHED = new Set(shell);

sw.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // All or nothing: a shell with a missing chunk would start and then fail offline.
      await cache.addAll(shell.map((url) => new Request(url, { cache: 'reload' })));
      await Promise.all(
        __RL_PRECACHE_OPTIONAL__.map(async (p) => {
          try {
            const r = await fetch(new Request(new URL(p, scope).href, { cache: 'reload' }));
            if (r.ok) await cache.put(new URL(p, scope).href, r);
          } catch {
            // Fetched (and cached) when the app asks for it.
          }
        }),
      );
    })(),
  );
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const prefix = cachePrefix(scope);
      for (const name of await caches.keys()) if (name.startsWith(prefix) && name !== CACHE) await caches.delete(name);
      // The page that registered us is served by us from now on (its lazily loaded chunks included).
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener('fetch', (event) => {
  const req = event.request;
  const strategy = strategyFor({ url: req.url, method: req.method, mode: req.mode, hasRange: req.headers.has('range') }, scope, PRECACHED);
  if (strategy === 'bypass') return;
  event.respondWith(strategy === 'cache-first' ? cacheFirst(req) : strategy === 'navigate' ? navigate(req) : networkFirst(req));
});

async function cacheFirst(req: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(req, { ignoreSearch: true });
  if (hit) return hit;
  const res = await fetch(req);
  if (res.ok && res.type === 'basic') await cache.put(req, res.clone());
  return res;
}

/** index.html from the network (a new deploy shows at once), the cached one when offline. */
async function navigate(req: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  const url = new URL(req.url);
  const isIndex = url.href.split(/[?#]/)[0] === scope || url.origin + url.pathname === INDEX;
  try {
    const res = await fetch(req);
    if (isIndex && res.ok && res.type === 'basic' && !res.redirected) await cache.put(INDEX, res.clone());
    return res;
  } catch (e) {
    const hit = await cache.match(INDEX);
    if (hit) return hit;
    throw e;
  }
}

async function networkFirst(req: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  try {
    const res = await fetch(req);
    if (res.ok && res.type === 'basic') await cache.put(req, res.clone());
    return res;
  } catch (e) {
    const hit = await cache.match(req, { ignoreSearch: true });
    if (hit) return hit;
    throw e;
  }
}
