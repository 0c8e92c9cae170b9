/**
 * The device kit's entry point: load Dawn's Node bindings and install their WebGPU globals
 * (GPUBufferUsage, GPUMapMode, …) before any engine module is evaluated (some read those globals
 * at load), then run the kit (main.ts, imported only now).
 *   node kit.mjs [--quick] [--out DIR] [--no-bench] [--no-checks] [--no-train | --train] [--bench-layers N] [--bench-prompt P] [--bench-steps S]
 *                [--train-layers N] [--train-steps S] [--checks GROUP_PREFIX]
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Dawn } from './main.ts';

/**
 * $DAWN_NODE, else dawn.node beside the program node runs (the kit's kit.mjs), else node_modules'
 * linux-x64 build (a checkout). Found from process.argv[1], not import.meta.url: the bundle gives
 * every module a made-up import.meta.url, so that the CLI modules it holds never take themselves
 * for the main program.
 */
function loadDawn(): Dawn {
  const main = resolve(process.argv[1] ?? 'kit.mjs');
  const candidates = [process.env.DAWN_NODE, join(dirname(main), 'dawn.node'), resolve('node_modules/webgpu/dist/linux-x64/dawn.node')].filter(
    (p): p is string => !!p,
  );
  const path = candidates.find((p) => existsSync(p));
  if (!path) throw new Error(`dawn.node not found (looked at ${candidates.join(', ')})`);
  return createRequire(main)(path) as Dawn;
}

try {
  const dawn = loadDawn();
  Object.assign(globalThis, dawn.globals);
  const { runKit } = await import('./main.ts');
  await runKit(dawn);
} catch (e) {
  console.error(`device kit: ${(e as Error).stack ?? e}`);
  process.exit(2);
}
