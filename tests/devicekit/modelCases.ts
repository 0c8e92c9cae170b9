/**
 * Whole-model checks on the tiny models, made in the kit from their seed (npm run make-tiny-model's
 * generator and converter, into a temporary folder) so no model travels, and run through the
 * browser tests' own check code (tests/browser/harness/modelChecks.ts: the WebGPU engine against the
 * reference forward pass). Those checks read a model by URL with fetch; the kit answers fetches of
 * its own made-up origin from the temporary folder (tokenizers left out: the checks use token ids),
 * every other URL goes to the real fetch.
 */
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { makeTinyModel } from '../../src/cli/makeTinyModel.ts';
import { batchedVsAlone, checkAllLogits, checkPrefillThenDecode, greedyBoth, randomIds } from '../browser/harness/modelChecks.ts';
import type { Check } from './checks.ts';
import { TINY_MODES } from '../browser/harness/tinyModes.ts';

/** The origin under which the kit serves the models it made (".invalid" never resolves: RFC 2606). */
const ORIGIN = 'http://tiny-models.invalid';

/** Make every tiny model under `dir` and answer fetches of ORIGIN/<path> from there. */
export async function serveTinyModels(dir: string): Promise<void> {
  await makeTinyModel(dir);
  const realFetch = globalThis.fetch;
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (url.origin !== ORIGIN) return realFetch(input, init);
    const path = normalize(decodeURIComponent(url.pathname)).replace(/^\/+/, '');
    if (path.startsWith('..')) return new Response('outside the models folder', { status: 403 });
    // The checks compare token ids: the kit serves no tokenizer, so the engine loads none (and the
    // bundle needs no transformers.js).
    if (/(^|\/)tokenizer(_config)?\.json$/.test(path)) return new Response('not found', { status: 404, statusText: 'Not Found' });
    try {
      return new Response(await readFile(join(dir, path)), { status: 200 });
    } catch {
      return new Response('not found', { status: 404, statusText: 'Not Found' });
    }
  }) as typeof fetch;
}

/** quick: shorter greedy runs (SwiftShader on a CI machine); every mode still runs. */
export function modelChecks(opts: { quick: boolean; hasF16: boolean }): Check[] {
  const out: Check[] = [];
  const url = (mode: string) => `${ORIGIN}/${mode}/`;
  // Quick: every mode's logits and a greedy run; the rest (other kernels forced, chunked prefill, batching) in full mode only.
  const greedyTokens = opts.quick ? 8 : 64;
  for (const { mode, tol, vocab } of TINY_MODES) {
    const group = `model ${mode}`;
    const ids = randomIds(24, 7, vocab);
    out.push({ group, name: 'all logits vs reference', run: async () => ({ maxErr: await checkAllLogits(url(mode), ids), tol }) });
    out.push({
      group,
      name: 'all logits, prefill chunks of 5',
      fullOnly: true,
      run: async () => ({ maxErr: await checkAllLogits(url(mode), ids, { prefillChunk: 5 }), tol }),
    });
    for (const prefillMatmul of ['tiled', 'row'] as const)
      out.push({
        group,
        name: `all logits, ${prefillMatmul} prefill matmul`,
        fullOnly: true,
        run: async () => ({ maxErr: await checkAllLogits(url(mode), randomIds(12, 9, vocab), { prefillMatmul, prefillChunk: 10 }), tol }),
      });
    // Greedy ids equal to the reference's in every mode; f16 modes with shader-f16 on where the adapter has it (the engine asks for it).
    const f16 = /f16/.test(mode) ? (opts.hasF16 ? ', shader-f16 on' : ', no shader-f16') : '';
    for (const seed of [1, 2])
      out.push({
        group,
        name: `greedy ${greedyTokens} tokens, seed ${seed}${f16}`,
        fullOnly: seed > 1,
        run: async () => greedyBoth(url(mode), randomIds(9, seed, vocab), greedyTokens),
      });
    if (mode.includes('q4'))
      for (const q4Decode of ['workgroup', 'row'] as const)
        out.push({
          group,
          name: `greedy 8 tokens, ${q4Decode} q4 decode${f16}`,
          fullOnly: true,
          run: async () => greedyBoth(url(mode), randomIds(6, 5, vocab), 8, { q4Decode }),
        });
    if (tol === 1e-4)
      out.push({
        group,
        name: 'prefill 12 then decode = one by one = reference',
        fullOnly: true,
        run: async () => {
          const r = await checkPrefillThenDecode(url(mode), randomIds(20, 3, vocab), 12);
          return { maxErr: Math.max(r.engineVsEngine, r.engineVsReference), tol: 1e-4 };
        },
      });
    if (mode === 'q0f32' || mode === 'q4f32_1' || mode === 'q4f16_1')
      out.push({
        group,
        name: 'batch of 3 for 5 ragged prompts: batched = alone = reference',
        fullOnly: true,
        run: async () => {
          const prompts = [3, 17, 6, 11, 2].map((n, i) => randomIds(n, 40 + i, vocab));
          const r = await batchedVsAlone(url(mode), prompts, 3, 14, [4, 9, 2, 6, 99]);
          return { got: [r.batched, r.alone, r.stopReasons, r.joinOrder], want: [r.want, r.want, ['stop', 'stop', 'stop', 'stop', 'length'], [0, 1, 2, 3, 4]] };
        },
      });
  }
  return out;
}
