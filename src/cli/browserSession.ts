/**
 * Run the app's own browser code from Node: start Vite on a free localhost port (WebGPU needs a
 * secure context, and localhost is one), mount extra directories (a model, an adapter, data), and
 * drive Debian's Chromium through Playwright. The CLIs reuse the engine unchanged this way.
 */
import { createServer, type ViteDevServer } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';
import { existsSync, statSync, createReadStream } from 'node:fs';
import { resolve, join, normalize, extname } from 'node:path';
import { chromiumLaunchOptions } from './chromium.ts';

const ROOT = resolve(import.meta.dirname, '../..');

export interface BrowserSession {
  page: Page;
  url: string;
  close(): Promise<void>;
}

/** True when this machine has a GPU Chromium can use through Vulkan (else software WebGPU). */
export function detectGpu(): boolean {
  if (process.env.REASONING_LAB_GPU === '1') return true;
  if (process.env.REASONING_LAB_GPU === '0') return false;
  return existsSync('/dev/nvidia0') || existsSync('/dev/dri/renderD128');
}

export async function openBrowserSession(opts: { mounts?: Record<string, string>; gpu?: boolean; quiet?: boolean } = {}): Promise<BrowserSession> {
  const mounts = Object.entries(opts.mounts ?? {}).map(([prefix, dir]) => [prefix, resolve(dir)] as const);
  const server: ViteDevServer = await createServer({
    root: ROOT,
    configFile: resolve(ROOT, 'vite.config.ts'),
    logLevel: opts.quiet === false ? 'info' : 'error',
    server: { port: 0, host: '127.0.0.1', strictPort: false, hmr: false },
    plugins: [
      {
        name: 'cli-mounts',
        configureServer(s) {
          for (const [prefix, dir] of mounts) {
            s.middlewares.use(prefix, (req, res, next) => {
              const rel = decodeURIComponent((req.url ?? '/').split('?')[0]);
              const file = normalize(join(dir, rel));
              if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) return next();
              res.setHeader('Content-Type', extname(file) === '.json' ? 'application/json' : 'application/octet-stream');
              res.setHeader('Content-Length', String(statSync(file).size));
              createReadStream(file).pipe(res);
            });
          }
        },
      },
    ],
  });
  await server.listen();
  const address = server.httpServer?.address();
  if (!address || typeof address === 'string') throw new Error('Vite did not report a port');
  // Loopback origins are secure contexts, which WebGPU requires.
  const url = `http://127.0.0.1:${address.port}`;
  let browser: Browser;
  try {
    browser = await chromium.launch({ ...chromiumLaunchOptions({ gpu: opts.gpu ?? detectGpu() }), headless: true });
  } catch (e) {
    await server.close();
    throw new Error(`Could not start Chromium (${(e as Error).message.split('\n')[0]}). Install Debian's chromium or set CHROMIUM_PATH.`, { cause: e });
  }
  const page = await browser.newPage();
  if (!opts.quiet) page.on('console', (m) => process.stderr.write(`[browser] ${m.text()}\n`));
  // tsx compiles our page.evaluate callbacks with esbuild's keepNames, which calls a __name helper.
  await page.addInitScript({ content: 'globalThis.__name = (f) => f;' });
  await page.goto(`${url}/harness.html`);
  return {
    page,
    url,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
