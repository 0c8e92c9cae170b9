import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { CONNECT_HOSTS, contentSecurityPolicy, securityHeaders, withPolicyMeta } from '../../src/securityHeaders.ts';
import { DATASETS } from '../../src/reasoning/datasets.ts';

/** The CSP: index.html carries the built site's policy, and connect-src admits every host the code fetches from. */

const ROOT = resolve(import.meta.dirname, '../..');

/** Whether a CSP host source ("https://*.hf.co", "https://huggingface.co") matches a URL (scheme, host, any port). */
function hostSourceMatches(source: string, url: string): boolean {
  const u = new URL(url);
  const m = /^(https?):\/\/(\*\.)?([^/:]+)/.exec(source)!;
  if (u.protocol !== `${m[1]}:`) return false;
  return m[2] ? u.hostname.endsWith(`.${m[3]}`) : u.hostname === m[3];
}

describe('the Content-Security-Policy', () => {
  it("index.html's <meta> is the built site's policy, and the dev server writes its own there", () => {
    const html = readFileSync(resolve(ROOT, 'index.html'), 'utf8');
    const meta = /<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"\s*\/>/.exec(html);
    expect(meta?.[1]).toBe(contentSecurityPolicy({ dev: false, header: false }));
    expect(withPolicyMeta(html, true)).toContain(contentSecurityPolicy({ dev: true, header: false }));
    expect(() => withPolicyMeta('<html></html>', true)).toThrow(/no <meta http-equiv="Content-Security-Policy"/);
  });

  it('is strict: no unsafe-eval or inline script, no plugins, loopback only in development, frame-ancestors only as a header', () => {
    const site = contentSecurityPolicy({ dev: false, header: false });
    expect(site).toMatch(/(^|; )script-src 'self' 'wasm-unsafe-eval'(;|$)/);
    expect(site).not.toMatch(/'unsafe-eval'|script-src[^;]*'unsafe-inline'/);
    expect(site).toContain("object-src 'none'");
    expect(site).not.toMatch(/localhost|127\.0\.0\.1|ws:/);
    expect(site).not.toContain('frame-ancestors');
    expect(contentSecurityPolicy({ dev: true, header: false })).toContain('http://127.0.0.1:*');
    expect(securityHeaders(false)).toEqual({
      'Content-Security-Policy': contentSecurityPolicy({ dev: false, header: true }),
      'Referrer-Policy': 'strict-origin-when-cross-origin',
      'X-Content-Type-Options': 'nosniff',
    });
    expect(securityHeaders(false)['Content-Security-Policy']).toContain("frame-ancestors 'none'");
  });

  it('connect-src admits every host the code fetches from: datasets, catalog manifests, WebLLM (library and weights), and the hub CDN', async () => {
    const urls: string[] = Object.values(DATASETS).map((d) => d.publicUrl);
    for (const f of readdirSync(resolve(ROOT, 'models')).filter((f) => f.endsWith('.json'))) {
      const m = JSON.parse(readFileSync(resolve(ROOT, 'models', f), 'utf8')) as { baseUrl?: string };
      if (m.baseUrl && /^https?:/.test(m.baseUrl)) urls.push(m.baseUrl);
    }
    const { prebuiltAppConfig } = await import('@mlc-ai/web-llm');
    for (const r of prebuiltAppConfig.model_list.filter((r) => /Llama-2-7b/.test(r.model_id))) urls.push(r.model, r.model_lib);
    // Where the hub's resolve/main redirects large files (LFS and Xet storage).
    urls.push('https://cdn-lfs.huggingface.co/x', 'https://cdn-lfs-us-1.huggingface.co/x', 'https://cas-bridge.xethub.hf.co/x');
    expect(urls.length).toBeGreaterThan(10);
    for (const url of urls)
      expect(
        CONNECT_HOSTS.some((s) => hostSourceMatches(s, url)),
        url,
      ).toBe(true);
    expect(hostSourceMatches('https://*.hf.co', 'https://attacker.example/x')).toBe(false);
  });
});

describe("WebLLM's model library", () => {
  it('comes from the moving main branch of binary-mlc-llm-libs with no hash (so the app asks first): update WEBLLM_UNPINNED if the package pins it', async () => {
    const { prebuiltAppConfig } = await import('@mlc-ai/web-llm');
    const { WEBLLM_APP_MODELS, WEBLLM_LIBRARY_SOURCE, WEBLLM_UNPINNED, webllmAppConfig } = await import('../../src/engine/webllm.ts');
    const records = webllmAppConfig({ prebuiltAppConfig }).model_list.filter((r) => WEBLLM_APP_MODELS.includes(r.model_id));
    expect(records.map((r) => r.model_id).sort()).toEqual([...WEBLLM_APP_MODELS].sort());
    for (const r of records) {
      expect(r.model_lib.startsWith(WEBLLM_LIBRARY_SOURCE), r.model_lib).toBe(true);
      expect((r as { integrity?: unknown }).integrity, r.model_id).toBeUndefined();
    }
    expect(WEBLLM_LIBRARY_SOURCE).toContain('/binary-mlc-llm-libs/main/');
    expect(WEBLLM_UNPINNED).toContain(WEBLLM_LIBRARY_SOURCE);
  });
});
