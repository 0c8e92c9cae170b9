/// <reference lib="webworker" />
/**
 * The service worker that lets the built app start with the network off (registered by
 * register.ts in production builds only; built into sw.js by buildPlugin.ts).
 *
 * - install: the whole app shell (index.html, every JS/CSS chunk, the engine worker chunk) is put
 *   in a cache named after this build; the model catalog and manifests too, where reachable.
 * - activate: the caches of earlier builds at this scope are deleted; open pages are claimed.
 *   No skipWaiting: a new build takes over once every tab of the old one is closed, so an open
 *   page never loses the chunks it may still load lazily.
 * - fetch: see routes.ts. The shell cache-first, page loads network-first with the cached
 *   index.html as fallback, the catalog/manifests and data/ datasets network-first with the cached
 *   copy as fallback (also when the network has not answered in 4 s). Model files are never
 *   cached here: they live in IndexedDB (src/storage).
 */
import { cacheName, cachePrefix, mayCache, strategyFor, type Strategy } from './routes.ts';

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
            if (mayCache(info(r), 'network-first')) await cache.put(new URL(p, scope).href, r);
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
  // Keeps the worker alive while a network answer that lost the race to the cache is stored.
  const keep = (p: Promise<unknown>) => event.waitUntil(p.catch(() => undefined));
  event.respondWith(strategy === 'cache-first' ? cacheFirst(req) : strategy === 'navigate' ? navigate(req, keep) : networkFirst(req, req.url, keep, strategy));
});

/** What mayCache looks at. */
function info(res: Response) {
  return { status: res.status, type: res.type, redirected: res.redirected, contentType: res.headers.get('Content-Type') };
}

/** How long a page load or a JSON file waits for a slow network before the cached copy is used (flaky classroom Wi-Fi). */
const NETWORK_TIMEOUT_MS = 4000;

async function cacheFirst(req: Request): Promise<Response> {
  // Any cache of this origin: a new build's worker, installed and waiting, already holds the chunks
  // a freshly fetched index.html refers to.
  const hit = await caches.match(req, { ignoreSearch: true });
  if (hit) return hit;
  const res = await fetch(req);
  // index.html is the one precached file that is a page; anything else served as HTML is a host's index page in a missing chunk's place.
  const url = new URL(req.url);
  if (mayCache(info(res), url.origin + url.pathname === INDEX ? 'navigate' : 'cache-first')) await (await caches.open(CACHE)).put(req, res.clone());
  return res;
}

/** Page loads: index.html from the network (a new deploy shows at once), the cached one offline. */
function navigate(req: Request, keep: (p: Promise<unknown>) => void): Promise<Response> {
  const url = new URL(req.url);
  const isIndex = url.origin + url.pathname === scope || url.origin + url.pathname === INDEX;
  return networkFirst(req, isIndex ? INDEX : null, keep, 'navigate');
}

/**
 * The network's answer, kept under `key`; the cached copy when the network fails, or when it has
 * not answered in NETWORK_TIMEOUT_MS (the network's answer still refreshes the cache then).
 * `key` null: nothing is stored (a page other than index.html), the cached index.html is the fallback.
 */
async function networkFirst(
  req: Request,
  key: string | null,
  keep: (p: Promise<unknown>) => void,
  strategy: Strategy & ('navigate' | 'network-first'),
): Promise<Response> {
  const fallbackKey = key ?? INDEX;
  const fromNetwork = fetch(req).then(async (res) => {
    if (key && mayCache(info(res), strategy)) await (await caches.open(CACHE)).put(key, res.clone());
    return res;
  });
  keep(fromNetwork);
  const cached = () => caches.match(fallbackKey, { ignoreSearch: key === req.url });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const slow = new Promise<Response | undefined>((done) => {
    timer = setTimeout(() => void cached().then(done), NETWORK_TIMEOUT_MS);
  });
  try {
    // A slow network with nothing cached: keep waiting for it.
    return await Promise.race([fromNetwork, slow.then((hit) => hit ?? fromNetwork)]);
  } catch (e) {
    const hit = await cached();
    if (hit) return hit;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
