/**
 * Builds device-kit/: everything needed to run the engine's oracle checks and the bench on a bare
 * x86-64 Linux with a Vulkan loader and no Node, no browser and no network (the lent GPU machine):
 *   node(.xz)      this machine's Node binary (xz-compressed unless --no-compress)
 *   dawn.node(.xz) Dawn's Node bindings, linux-x64, from node_modules/webgpu
 *   kit.mjs        tests/devicekit/main.ts with the engine, the reference and the browser tests' checks, bundled
 *   run.sh         unpacks what is compressed (xz, else python3's lzma) and runs kit.mjs
 *   manifest.json  what was built from which commit
 *   npm run device-kit [-- --no-compress] [--out device-kit]
 */
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

export interface DeviceKitOptions {
  outDir: string;
  compress: boolean;
  log?: (m: string) => void;
}

/** `import x from './k.wgsl?raw'` (Vite's raw imports) as the file's text. */
const rawImports: Plugin = {
  name: 'raw',
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, (a) => ({ path: resolve(a.resolveDir, a.path.slice(0, -'?raw'.length)), namespace: 'raw' }));
    b.onLoad({ filter: /.*/, namespace: 'raw' }, async (a) => ({ contents: await readFile(a.path, 'utf8'), loader: 'text' }));
  },
};

/**
 * run.sh: POSIX sh, from any folder. It unpacks into a temporary folder, removed afterwards, never
 * into the kit: the kit must stay small enough to travel (the device tool carries at most 64 MiB).
 */
const RUN_SH = `#!/bin/sh
# Runs the device kit: the engine's kernel and model oracle checks and the bench on this machine's GPU
# and training steps through Dawn (Vulkan). Usage: run.sh [--quick] [--out DIR] [--no-bench] [--no-checks] [--no-train|--train] (see kit.mjs)
# The JSON report goes to DIR, else $OUT, else the current folder; a short table goes to stdout.
set -eu
KIT=$(cd "$(dirname "$0")" && pwd)
BIN=$(mktemp -d "\${TMPDIR:-/tmp}/device-kit.XXXXXX")
trap 'rm -rf "$BIN"' EXIT
unpack() { # $1: file name in the kit; leaves it uncompressed (or linked) in $BIN
  if [ -f "$KIT/$1" ]; then ln -s "$KIT/$1" "$BIN/$1"; return; fi
  if ! [ -f "$KIT/$1.xz" ]; then echo "device kit: $1 is missing" >&2; exit 2; fi
  if command -v xz >/dev/null 2>&1; then xz -dc "$KIT/$1.xz" > "$BIN/$1.part"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$KIT/$1.xz" "$BIN/$1.part"; fi
  mv "$BIN/$1.part" "$BIN/$1"
}
unpack node
unpack dawn.node
chmod +x "$BIN/node" 2>/dev/null || true
cp "$KIT/kit.mjs" "$BIN/kit.mjs"
# NVIDIA's Vulkan driver where the lent machines keep it, unless a driver was named already.
if [ -z "\${VK_ICD_FILENAMES:-}" ] && [ -z "\${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  # (VK_ICD_FILENAMES too: loaders before 1.3.207 know only that name.)
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json VK_ICD_FILENAMES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
has_vulkan() {
  if command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then return 0; fi
  for d in $(echo "\${LD_LIBRARY_PATH:-}" | tr ':' ' ') /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do [ -e "$d/libvulkan.so.1" ] && return 0; done
  return 1
}
if ! has_vulkan; then
  echo "device kit: no libvulkan in ldconfig's cache; Dawn will find no adapter (unpack the Vulkan loader first)" >&2
fi
status=0
"$BIN/node" "$BIN/kit.mjs" "$@" || status=$?
exit $status
`;

async function xz(src: string, dst: string) {
  execFileSync('sh', ['-c', 'xz -6 -T0 -c "$1" > "$2"', 'sh', src, dst], { stdio: ['ignore', 'ignore', 'inherit'] });
}

export async function buildDeviceKit(o: DeviceKitOptions): Promise<Record<string, number>> {
  const log = o.log ?? (() => {});
  const dawnNode = resolve('node_modules/webgpu/dist/linux-x64/dawn.node');
  if (!existsSync(dawnNode)) throw new Error(`${dawnNode} is missing: the webgpu package (Dawn's Node bindings) is not installed`);
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`the kit carries this machine's Node binary, which must be linux-x64 (this is ${process.platform}-${process.arch})`);
  if (o.compress) {
    try {
      execFileSync('xz', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('xz is not installed here: install it, or build with --no-compress');
    }
  }
  await rm(o.outDir, { recursive: true, force: true });
  await mkdir(o.outDir, { recursive: true });

  let t = performance.now();
  await build({
    entryPoints: ['tests/devicekit/entry.ts'],
    outfile: join(o.outDir, 'kit.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    plugins: [rawImports],
    // Reached only through dynamic imports the kit never takes (the app's tokenizer, WebLLM); a call would fail by name.
    external: ['@xenova/transformers', '@mlc-ai/web-llm'],
    // The CLI modules in the bundle (convert, make-tiny-model) run their main block when import.meta.url
    // is the program's: give them all one that never is. (The banner's createRequire keeps the real one.)
    define: { 'import.meta.url': JSON.stringify('file:///device-kit/bundled-module.mjs') },
    // Some dependencies are CommonJS and call require() for Node's modules.
    banner: { js: "import { createRequire as __kitCreateRequire } from 'node:module'; const require = __kitCreateRequire(import.meta.url);" },
    logLevel: 'warning',
    legalComments: 'none',
  });
  log(`kit.mjs bundled in ${(performance.now() - t).toFixed(0)} ms`);

  for (const [src, name] of [
    [process.execPath, 'node'],
    [dawnNode, 'dawn.node'],
  ] as const) {
    t = performance.now();
    if (o.compress) await xz(src, join(o.outDir, `${name}.xz`));
    else await copyFile(src, join(o.outDir, name));
    log(`${name}${o.compress ? '.xz' : ''} in ${(performance.now() - t).toFixed(0)} ms`);
  }
  await writeFile(join(o.outDir, 'run.sh'), RUN_SH);
  await chmod(join(o.outDir, 'run.sh'), 0o755);

  const files: Record<string, number> = {};
  for (const f of ['kit.mjs', 'run.sh', ...(o.compress ? ['node.xz', 'dawn.node.xz'] : ['node', 'dawn.node'])]) files[f] = (await stat(join(o.outDir, f))).size;
  let commit = 'unknown';
  try {
    commit =
      execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim() +
      (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() ? ' (with uncommitted changes)' : '');
  } catch {
    // not a checkout: the manifest says unknown
  }
  const webgpu = JSON.parse(await readFile('node_modules/webgpu/package.json', 'utf8')) as { version: string };
  await writeFile(
    join(o.outDir, 'manifest.json'),
    JSON.stringify({ builtAt: new Date().toISOString(), commit, node: process.version, webgpu: webgpu.version, compressed: o.compress, files }, null, 2),
  );
  return files;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--out');
  const outDir = resolve(i >= 0 ? argv[i + 1] : 'device-kit');
  const t0 = performance.now();
  buildDeviceKit({ outDir, compress: !argv.includes('--no-compress'), log: (m) => console.log(m) })
    .then((files) => {
      const total = Object.values(files).reduce((a, b) => a + b, 0);
      console.log(
        `${outDir}: ${Object.entries(files)
          .map(([f, n]) => `${f} ${(n / 2 ** 20).toFixed(1)} MiB`)
          .join(', ')}; ${(total / 2 ** 20).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    })
    .catch((e: Error) => {
      console.error(`device-kit: ${e.message}`);
      process.exit(1);
    });
}
