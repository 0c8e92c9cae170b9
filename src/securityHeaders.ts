/**
 * The site's Content-Security-Policy and the other security headers, in one place: vite.config.ts
 * sends them as headers in dev and preview and writes the policy into index.html's <meta> (a
 * static host may send no headers at all). What each source is for:
 * - script-src 'self' 'wasm-unsafe-eval': our chunks; WebAssembly compiled from fetched bytes
 *   (hash-wasm's SHA-256, WebLLM's model library) needs 'wasm-unsafe-eval', never 'unsafe-eval'.
 * - worker-src 'self' blob:: the engine's module worker and the service worker are our own files.
 * - connect-src: our origin, the Hugging Face hub and its file CDNs (cdn-lfs*.huggingface.co,
 *   *.hf.co, where resolve/main redirects), and raw.githubusercontent.com (the public datasets,
 *   WebLLM's model library). Nothing else can be fetched, whatever a link or a manifest says.
 * - style-src 'unsafe-inline': Vite injects component CSS as <style> in dev and Svelte writes
 *   style attributes; style cannot run code.
 * Development adds the loopback hosts (the tests' local servers, the CLIs' mounts) and Vite's
 * websocket; the built site's policy has none of them.
 */

export const CONNECT_HOSTS = ['https://huggingface.co', 'https://*.huggingface.co', 'https://*.hf.co', 'https://raw.githubusercontent.com'] as const;

const LOOPBACK = ['http://localhost:*', 'http://127.0.0.1:*', 'ws://localhost:*', 'ws://127.0.0.1:*'] as const;

export interface PolicyOptions {
  /** Development (vite dev, the tests, the CLIs): local servers on loopback ports may be reached. */
  dev: boolean;
  /** As a header: frame-ancestors too (a <meta> policy may not carry it; browsers ignore it there with an error). */
  header: boolean;
}

export function contentSecurityPolicy({ dev, header }: PolicyOptions): string {
  const directives: [string, ...string[]][] = [
    ['default-src', "'self'"],
    ['script-src', "'self'", "'wasm-unsafe-eval'"],
    ['worker-src', "'self'", 'blob:'],
    ['connect-src', "'self'", ...CONNECT_HOSTS, ...(dev ? LOOPBACK : [])],
    ['img-src', "'self'", 'data:', 'blob:'],
    ['style-src', "'self'", "'unsafe-inline'"],
    ['font-src', "'self'"],
    ['object-src', "'none'"],
    ['base-uri', "'self'"],
    ['form-action', "'self'"],
    ...(header ? [['frame-ancestors', "'none'"] as [string, string]] : []),
  ];
  return directives.map((d) => d.join(' ')).join('; ');
}

/** Response headers for the dev and preview servers. */
export function securityHeaders(dev: boolean): Record<string, string> {
  return {
    'Content-Security-Policy': contentSecurityPolicy({ dev, header: true }),
    'Referrer-Policy': 'strict-origin-when-cross-origin',
    'X-Content-Type-Options': 'nosniff',
  };
}

const META = /<meta\s+http-equiv="Content-Security-Policy"\s+content="[^"]*"\s*\/>/;

/** index.html with its CSP <meta> set to this mode's policy. @throws when the page has no such meta */
export function withPolicyMeta(html: string, dev: boolean): string {
  if (!META.test(html)) throw new Error('index.html has no <meta http-equiv="Content-Security-Policy" content="…" />');
  return html.replace(META, `<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy({ dev, header: false })}" />`);
}
