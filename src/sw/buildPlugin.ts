/**
 * Vite plugin: build src/sw/serviceWorker.ts into sw.js beside index.html (production builds
 * only), with the list of files to precache and a version written in from the build's own output.
 * sw.js is a classic script (one IIFE), which every browser with service workers runs.
 */
import { build, type Plugin } from 'vite';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface ServiceWorkerPluginOptions {
  /** The models folder the build ships as models/: its index.json and manifests are cached at install. */
  modelsDir: string;
}

const ENTRY = resolve(import.meta.dirname, 'serviceWorker.ts');
const SW_SOURCES = [ENTRY, resolve(import.meta.dirname, 'routes.ts'), resolve(import.meta.dirname, '../formats/fetchFile.ts')];
export const SW_FILE = 'sw.js';

export function serviceWorkerPlugin(options: ServiceWorkerPluginOptions): Plugin {
  return {
    name: 'reasoning-lab-service-worker',
    apply: 'build',
    // After Vite's HTML plugin has put index.html in the bundle.
    enforce: 'post',
    async generateBundle(_output, bundle) {
      // Everything this build writes (index.html, chunks, the engine worker chunk, CSS), never source maps.
      const files = Object.keys(bundle)
        .filter((f) => !f.endsWith('.map') && f !== SW_FILE)
        .sort();
      if (!files.includes('index.html')) throw new Error('service worker: the build has no index.html to precache');
      const hash = createHash('sha256');
      for (const f of files) {
        const item = bundle[f];
        hash.update(f).update(item.type === 'chunk' ? item.code : item.source);
      }
      const manifests = existsSync(options.modelsDir)
        ? readdirSync(options.modelsDir)
            .filter((f) => f.endsWith('.json'))
            .sort()
            .map((f) => `models/${f}`)
        : [];
      hash.update(manifests.join('\n'));
      // A change to the service worker itself is a new version too.
      for (const f of SW_SOURCES) hash.update(readFileSync(f));
      const out = await build({
        configFile: false,
        logLevel: 'warn',
        publicDir: false,
        define: {
          __RL_PRECACHE__: JSON.stringify(files),
          __RL_PRECACHE_OPTIONAL__: JSON.stringify(manifests),
          __RL_VERSION__: JSON.stringify(hash.digest('hex').slice(0, 16)),
        },
        build: {
          write: false,
          emptyOutDir: false,
          target: 'es2022',
          minify: true,
          lib: { entry: ENTRY, formats: ['iife'], name: 'reasoningLabServiceWorker', fileName: () => SW_FILE },
        },
      });
      const results = Array.isArray(out) ? out : [out];
      const chunk = results.flatMap((r) => ('output' in r ? r.output : [])).find((o) => o.type === 'chunk');
      if (!chunk || chunk.type !== 'chunk') throw new Error('service worker build produced no chunk');
      this.emitFile({ type: 'asset', fileName: SW_FILE, source: chunk.code });
    },
  };
}
