import { describe, expect, it } from 'vitest';
import { cacheName, cachePrefix, mayCache, strategyFor } from '../../src/sw/routes.ts';

/** The service worker's routing rules (src/sw/routes.ts): what it caches, and above all what it never does. */

const SCOPE = 'https://example.org/lab/';
const PRECACHED = new Set([`${SCOPE}index.html`, `${SCOPE}assets/index-abc.js`, `${SCOPE}assets/worker-def.js`]);
const get = (url: string, extra: { mode?: string; hasRange?: boolean; method?: string } = {}) =>
  strategyFor({ url, method: extra.method ?? 'GET', mode: extra.mode ?? 'cors', hasRange: extra.hasRange }, SCOPE, PRECACHED);

describe('service worker routes', () => {
  it('serves the app shell from the cache, and page loads network-first', () => {
    expect(get(`${SCOPE}assets/index-abc.js`)).toBe('cache-first');
    expect(get(`${SCOPE}assets/worker-def.js?x=1`)).toBe('cache-first');
    expect(get(`${SCOPE}assets/later-chunk.js`)).toBe('cache-first');
    expect(get(`${SCOPE}index.html`)).toBe('cache-first');
    expect(get(SCOPE, { mode: 'navigate' })).toBe('navigate');
    expect(get(`${SCOPE}?data=data/#view=lab`, { mode: 'navigate' })).toBe('navigate');
  });

  it('keeps the catalog, manifests and datasets, network-first', () => {
    expect(get(`${SCOPE}models/index.json`)).toBe('network-first');
    expect(get(`${SCOPE}models/tiny-q4f32_1.json`)).toBe('network-first');
    expect(get(`${SCOPE}data/gsm8k/test.jsonl`)).toBe('network-first');
    expect(get('https://example.org/data/llm-adapters/SVAMP/test.json')).toBe('network-first');
  });

  it('never caches model files: shards, tensor caches and tokenizers live in IndexedDB', () => {
    expect(get(`${SCOPE}models/tiny/q4f32_1/params_shard_0.bin`)).toBe('bypass');
    expect(get(`${SCOPE}models/tiny/q4f32_1/tensor-cache.json`)).toBe('bypass');
    expect(get(`${SCOPE}models/tiny/q4f32_1/tokenizer.json`)).toBe('bypass');
    expect(get(`${SCOPE}models/tiny/data/x.json`)).toBe('bypass');
    expect(get('https://huggingface.co/mlc-ai/Llama-2-7b-hf-q4f16_1-MLC/resolve/main/params_shard_0.bin')).toBe('bypass');
    expect(get('https://huggingface.co/x/resolve/main/data/test.json')).toBe('bypass');
  });

  it('leaves alone what is not a plain GET of this app', () => {
    expect(get(`${SCOPE}assets/index-abc.js`, { method: 'POST' })).toBe('bypass');
    expect(get(`${SCOPE}data/gsm8k/test.jsonl`, { hasRange: true })).toBe('bypass');
    expect(get('https://example.org/other/app.js')).toBe('bypass');
    expect(get('https://example.org/other/', { mode: 'navigate' })).toBe('bypass');
    expect(get(`${SCOPE}sw.js`)).toBe('bypass');
  });

  it('names caches by scope and build, so two sub-paths of one origin keep theirs', () => {
    expect(cacheName(SCOPE, 'v1')).toBe('reasoning-lab:/lab/:v1');
    expect(cacheName(SCOPE, 'v1').startsWith(cachePrefix(SCOPE))).toBe(true);
    expect(cacheName('https://example.org/other/', 'v1').startsWith(cachePrefix(SCOPE))).toBe(false);
  });

  it("never caches a host's index page as a manifest, a dataset or an assets/ chunk (SPA fallback: HTML with 200)", () => {
    const html = { status: 200, type: 'basic', redirected: false, contentType: 'text/html; charset=utf-8' };
    expect(get(`${SCOPE}models/index.json`)).toBe('network-first');
    expect(mayCache(html, 'network-first')).toBe(false);
    expect(get(`${SCOPE}data/gsm8k/test.jsonl`)).toBe('network-first');
    expect(get(`${SCOPE}assets/missing-chunk.js`)).toBe('cache-first');
    expect(mayCache(html, 'cache-first')).toBe(false);
    // The page itself is HTML, and is kept.
    expect(mayCache(html, 'navigate')).toBe(true);
    const json = { ...html, contentType: 'application/json' };
    expect(mayCache(json, 'network-first')).toBe(true);
    expect(mayCache({ ...json, contentType: 'text/javascript' }, 'cache-first')).toBe(true);
    expect(mayCache({ ...json, contentType: null }, 'network-first')).toBe(true);
    // Errors, other origins' answers and redirected JSON are not kept either.
    expect(mayCache({ ...json, status: 404 }, 'network-first')).toBe(false);
    expect(mayCache({ ...json, type: 'opaque', status: 0 }, 'cache-first')).toBe(false);
    expect(mayCache({ ...json, redirected: true }, 'network-first')).toBe(false);
  });
});
