import { defineConfig, type Plugin, type Connect } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { createReadStream, existsSync, statSync, cpSync, mkdirSync } from 'node:fs';
import { resolve, join, normalize, extname } from 'node:path';
import { serviceWorkerPlugin } from './src/sw/buildPlugin.ts';
import { securityHeaders, withPolicyMeta } from './src/securityHeaders.ts';

/** Where datasets are read from during development and tests: ../shared/data beside the project, never copied in. */
const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(import.meta.dirname, '../shared/data'));
const MODELS_DIR = resolve(import.meta.dirname, 'models');

const TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.bin': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

/** Serve a directory under a URL prefix (files only, no listing, no path escapes). */
function serveDir(prefix: string, dir: string): (server: { middlewares: Connect.Server }) => void {
  return (server) => {
    server.middlewares.use(prefix, (req, res, next) => {
      const rel = decodeURIComponent((req.url ?? '/').split('?')[0]);
      const file = normalize(join(dir, rel));
      if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) return next();
      res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
      res.setHeader('Content-Length', String(statSync(file).size));
      res.setHeader('Cache-Control', 'no-store');
      createReadStream(file).pipe(res);
    });
  };
}

function localFiles(): Plugin {
  let outDir = resolve(import.meta.dirname, 'dist');
  return {
    name: 'reasoning-lab-local-files',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    configureServer(server) {
      serveDir('/models', MODELS_DIR)(server);
      serveDir('/data', DATA_DIR)(server);
    },
    configurePreviewServer(server) {
      serveDir('/models', MODELS_DIR)(server);
      serveDir('/data', DATA_DIR)(server);
    },
    closeBundle() {
      // The static site ships the manifests and, when generated, the tiny offline demo model.
      const out = join(outDir, 'models');
      mkdirSync(out, { recursive: true });
      if (existsSync(MODELS_DIR)) cpSync(MODELS_DIR, out, { recursive: true, filter: (p) => !p.includes('/gen') });
    },
  };
}

/** index.html's CSP <meta> set to the mode's policy: the dev one (loopback servers allowed) while serving, the site's when built. */
function policyMeta(): Plugin {
  let dev = false;
  return {
    name: 'reasoning-lab-csp-meta',
    configResolved(config) {
      dev = config.command === 'serve' && !config.isProduction;
    },
    // Only the app's own page carries the policy meta; test harness pages (tests/browser/pages) get the dev header.
    transformIndexHtml: (html, ctx) => (ctx.filename === resolve(import.meta.dirname, 'index.html') ? withPolicyMeta(html, dev) : html),
  };
}

export default defineConfig({
  // Relative base: the built site works from any sub-path of a static host.
  base: './',
  // The dep cache lives in the checkout, not in node_modules: worktrees that share one node_modules must not share it.
  cacheDir: resolve(import.meta.dirname, '.cache/vite'),
  plugins: [svelte(), localFiles(), policyMeta(), serviceWorkerPlugin({ modelsDir: MODELS_DIR })],
  worker: { format: 'es' },
  // Tests and CLIs run with RL_NO_HMR=1: a file saved mid-run must not reload the page under test.
  server: { port: 5173, fs: { allow: [import.meta.dirname] }, hmr: process.env.RL_NO_HMR ? false : undefined, headers: securityHeaders(true) },
  // Preview serves the built site: the site's own policy (no loopback hosts).
  preview: { headers: securityHeaders(false) },
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
});
