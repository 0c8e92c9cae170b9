/**
 * Peak JS heap while a model of at least 1 GB loads from IndexedDB onto the GPU.
 *
 *   npx tsx src/cli/measureHeap.ts [--layers 20] [--shard-mib 32] [--json]
 *
 * Generates a q0f32 Llama (hidden 1024, ffn 2752, 20 layers, vocab 8192: 1.08 GB of weights in
 * MLC's tensor-cache layout, 32 MiB shards like MLC's) in a temp directory, serves it from a
 * local HTTP server, downloads it with the app's own downloadModel into IndexedDB, then polls the
 * page's heap through the DevTools protocol (Runtime.getHeapUsage: V8 heap plus ArrayBuffer
 * backing stores, every ~20 ms) while Engine.load(idbModelSource(id)) uploads it shard by shard.
 * tests/browser/storage-heap.spec.ts runs the same measurement (RL_HEAVY=1).
 */
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createReadStream, statSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import type { Page } from 'playwright-core';
import { MLC_CHAT_CONFIG_FILE, TENSOR_CACHE_FILE } from '../formats/baseModelFiles.ts';

export interface BigModelShape {
  hidden: number;
  ffn: number;
  heads: number;
  layers: number;
  vocab: number;
}

/** About 1.08 GB in q0f32; every tensor well under SwiftShader's 128 MiB binding limit. */
export const BIG_SHAPE: BigModelShape = { hidden: 1024, ffn: 2752, heads: 16, layers: 20, vocab: 8192 };

export interface GeneratedModel {
  dir: string;
  weightBytes: number;
  shardCount: number;
  largestShard: number;
  largestTensor: number;
}

/**
 * Write an MLC-layout q0f32 model directory: small seeded pseudo-random weights (a 4 MiB block of
 * values in ±0.02, tiled), norms of ones, records packed into shards of at most `shardBytes`.
 */
export async function generateBigModel(dir: string, s: BigModelShape = BIG_SHAPE, shardBytes = 32 * 1024 * 1024): Promise<GeneratedModel> {
  const h = s.hidden;
  const headDim = h / s.heads;
  const tensors: { name: string; shape: number[]; norm?: boolean }[] = [{ name: 'model.embed_tokens.weight', shape: [s.vocab, h] }];
  for (let i = 0; i < s.layers; i++) {
    const p = `model.layers.${i}`;
    tensors.push(
      { name: `${p}.self_attn.qkv_proj.weight`, shape: [3 * h, h] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [h, h] },
      { name: `${p}.mlp.gate_up_proj.weight`, shape: [2 * s.ffn, h] },
      { name: `${p}.mlp.down_proj.weight`, shape: [h, s.ffn] },
      { name: `${p}.input_layernorm.weight`, shape: [h], norm: true },
      { name: `${p}.post_attention_layernorm.weight`, shape: [h], norm: true },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [h], norm: true }, { name: 'lm_head.weight', shape: [s.vocab, h] });

  // A tile of pseudo-random small floats (xorshift), reused for every matrix.
  const tile = new Float32Array(1 << 20);
  let x = 0x9e3779b9;
  for (let i = 0; i < tile.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    tile[i] = ((x >>> 0) / 0xffffffff - 0.5) * 0.04;
  }
  const tileBytes = new Uint8Array(tile.buffer);

  type Rec = { name: string; shape: number[]; dtype: 'float32'; format: 'raw'; nbytes: number; byteOffset: number };
  const shards: { dataPath: string; format: 'raw-shard'; nbytes: number; records: Rec[] }[] = [];
  let current: (typeof shards)[number] | null = null;
  let file: Awaited<ReturnType<typeof open>> | null = null;
  let largestTensor = 0;
  const close = async () => {
    await file?.close();
    file = null;
  };
  for (const t of tensors) {
    const nbytes = t.shape.reduce((a, b) => a * b, 1) * 4;
    largestTensor = Math.max(largestTensor, nbytes);
    if (!current || (current.nbytes > 0 && current.nbytes + nbytes > shardBytes)) {
      await close();
      current = { dataPath: `params_shard_${shards.length}.bin`, format: 'raw-shard', nbytes: 0, records: [] };
      shards.push(current);
      file = await open(join(dir, current.dataPath), 'w');
    }
    current.records.push({ name: t.name, shape: t.shape, dtype: 'float32', format: 'raw', nbytes, byteOffset: current.nbytes });
    if (t.norm) await file!.write(new Uint8Array(new Float32Array(t.shape[0]).fill(1).buffer));
    else for (let at = 0; at < nbytes; at += tileBytes.length) await file!.write(tileBytes.subarray(0, Math.min(tileBytes.length, nbytes - at)));
    current.nbytes += nbytes;
  }
  await close();
  const weightBytes = shards.reduce((a, b) => a + b.nbytes, 0);
  await writeFile(
    join(dir, TENSOR_CACHE_FILE),
    JSON.stringify({ metadata: { ParamSize: tensors.length, ParamBytes: weightBytes, BitsPerParam: 32 }, records: shards }),
  );
  const modelConfig = {
    hidden_size: h,
    intermediate_size: s.ffn,
    num_attention_heads: s.heads,
    num_hidden_layers: s.layers,
    rms_norm_eps: 1e-5,
    vocab_size: s.vocab,
    tie_word_embeddings: false,
    position_embedding_base: 10000,
    rope_scaling: null,
    context_window_size: 512,
    prefill_chunk_size: 64,
    num_key_value_heads: s.heads,
    head_dim: headDim,
    tensor_parallel_shards: 1,
    max_batch_size: 1,
  };
  await writeFile(
    join(dir, MLC_CHAT_CONFIG_FILE),
    JSON.stringify({
      version: '0.1.0',
      model_type: 'llama',
      quantization: 'q0f32',
      model_config: modelConfig,
      vocab_size: s.vocab,
      context_window_size: 512,
      prefill_chunk_size: 64,
      bos_token_id: 1,
      eos_token_id: 2,
      pad_token_id: 0,
      tokenizer_files: [],
    }),
  );
  return { dir, weightBytes, shardCount: shards.length, largestShard: Math.max(...shards.map((s) => s.nbytes)), largestTensor };
}

/** A static file server for one directory on 127.0.0.1 (CORS open: the page is on another port). */
export async function serveDirectory(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Range');
    res.setHeader('Cache-Control', 'no-store');
    const rel = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const file = normalize(join(dir, rel));
    if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Length': String(statSync(file).size), 'Content-Type': 'application/octet-stream' });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface LoadHeap {
  loadSeconds: number;
  samples: number;
  /** JS heap (V8 heap + ArrayBuffer backing stores) after a GC, before Engine.load. */
  baselineBytes: number;
  /** Highest sample while Engine.load ran. */
  peakBytes: number;
  /** peak − baseline: what loading the model cost in JS memory at its worst. */
  peakGrowthBytes: number;
  /** Peaks of the V8 heap alone and of ArrayBuffer backing stores alone, minus their baselines. */
  peakHeapGrowthBytes: number;
  peakBackingGrowthBytes: number;
  /** GPU bytes the engine reports for the loaded model (weights, KV cache, activations). */
  gpuBytes: number;
}

export interface HeapMeasurement {
  weightBytes: number;
  shardCount: number;
  largestShard: number;
  largestTensor: number;
  downloadSeconds: number;
  /** Sampled as the browser runs it: garbage not yet collected counts too. */
  asIs: LoadHeap;
  /** A garbage collection before every sample: what the loader keeps alive (retained) at each point. */
  retained: LoadHeap;
}

type Usage = { usedSize: number; totalSize: number; backingStorageSize?: number };

/** Download the model served at `modelUrl` into IndexedDB with the app's downloadModel. Returns seconds. */
export async function downloadIntoPage(page: Page, modelUrl: string, id: string): Promise<number> {
  const t0 = Date.now();
  await page.evaluate(
    async ({ modelUrl, id, chatConfigFile, tensorCacheFile }) => {
      const S = (await import(/* @vite-ignore */ '/src/storage/index.ts' as string)) as typeof import('../storage/index.ts');
      await S.deleteModel(id, true);
      const manifest = S.parseManifest(
        {
          schema: 1,
          id,
          name: 'Heap test model (1 GB, q0f32)',
          kind: 'base',
          baseUrl: modelUrl,
          quantization: 'q0f32',
          shardIndex: [tensorCacheFile],
          files: [{ path: chatConfigFile, size: null }],
        },
        'heap test manifest',
      );
      await S.downloadModel(manifest, { retryDelayMs: 10 });
      // Imported now so that loading the engine's code is not part of the measurement.
      (window as unknown as { E: unknown }).E = await import(/* @vite-ignore */ '/src/engine/engine.ts' as string);
      (window as unknown as { S: unknown }).S = S;
    },
    { modelUrl, id, chatConfigFile: MLC_CHAT_CONFIG_FILE, tensorCacheFile: TENSOR_CACHE_FILE },
  );
  return (Date.now() - t0) / 1000;
}

/**
 * Poll the page's heap (Runtime.getHeapUsage, every ~20 ms) while Engine.load(idbModelSource(id))
 * runs in the page. With `forceGc` every sample is preceded by a full garbage collection.
 */
export async function measureLoad(page: Page, id: string, forceGc: boolean): Promise<LoadHeap> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  const usage = async () => (await cdp.send('Runtime.getHeapUsage')) as Usage;
  const backing = (u: Usage) => u.backingStorageSize ?? 0;
  const base = await usage();
  const baselineBytes = base.usedSize + backing(base);
  let peak = baselineBytes;
  let peakHeap = base.usedSize;
  let peakBacking = backing(base);
  let samples = 0;
  let done = false;
  const poll = (async () => {
    while (!done) {
      if (forceGc) await cdp.send('HeapProfiler.collectGarbage');
      const u = await usage();
      samples++;
      peak = Math.max(peak, u.usedSize + backing(u));
      peakHeap = Math.max(peakHeap, u.usedSize);
      peakBacking = Math.max(peakBacking, backing(u));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const t1 = Date.now();
  let gpuBytes: number;
  try {
    gpuBytes = await page.evaluate(async (id) => {
      const w = window as unknown as { E: typeof import('../engine/engine.ts'); S: typeof import('../storage/index.ts') };
      const engine = new w.E.Engine();
      const info = await engine.load(w.S.idbModelSource(id), { contextLength: 64 });
      engine.unload();
      return info.memory.total;
    }, id);
  } finally {
    done = true;
    await poll;
  }
  const loadSeconds = (Date.now() - t1) / 1000;
  await cdp.detach();
  return {
    loadSeconds,
    samples,
    baselineBytes,
    peakBytes: peak,
    peakGrowthBytes: peak - baselineBytes,
    peakHeapGrowthBytes: peakHeap - base.usedSize,
    peakBackingGrowthBytes: peakBacking - backing(base),
    gpuBytes,
  };
}

/** In an open page of the app (harness.html): download into IndexedDB, then load it twice (as is, and with a GC before every sample). */
export async function measureHeapWhileLoading(page: Page, modelUrl: string, gen: GeneratedModel, id = 'heap-test-q0f32'): Promise<HeapMeasurement> {
  const downloadSeconds = await downloadIntoPage(page, modelUrl, id);
  const asIs = await measureLoad(page, id, false);
  const retained = await measureLoad(page, id, true);
  return {
    weightBytes: gen.weightBytes,
    shardCount: gen.shardCount,
    largestShard: gen.largestShard,
    largestTensor: gen.largestTensor,
    downloadSeconds,
    asIs,
    retained,
  };
}

const MiB = 1024 * 1024;
export function describeMeasurement(m: HeapMeasurement): string {
  const f = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  const line = (what: string, l: LoadHeap) =>
    `${what}: peak growth ${f(l.peakGrowthBytes)} = ${(l.peakGrowthBytes / m.largestShard).toFixed(2)} shards, ${((100 * l.peakGrowthBytes) / m.weightBytes).toFixed(1)}% of the model ` +
    `(V8 heap ${f(l.peakHeapGrowthBytes)}, ArrayBuffers ${f(l.peakBackingGrowthBytes)}; baseline ${f(l.baselineBytes)}, ${l.samples} samples, load ${l.loadSeconds.toFixed(1)} s)`;
  return [
    `model: ${(m.weightBytes / 1e9).toFixed(2)} GB of weights (${f(m.weightBytes)}) in ${m.shardCount} shards (largest ${f(m.largestShard)}, largest tensor ${f(m.largestTensor)}); download into IndexedDB ${m.downloadSeconds.toFixed(1)} s`,
    line('JS heap while Engine.load reads it from IndexedDB, as the browser runs it', m.asIs),
    line('retained (a GC before every sample)', m.retained),
    `GPU memory the engine reports: ${f(m.asIs.gpuBytes)}`,
  ].join('\n');
}

async function main() {
  const { parseArgs } = await import('./args.ts');
  const { values, flags } = parseArgs(process.argv.slice(2), { strings: ['layers', 'shard-mib'], flags: ['json'] });
  const shape = { ...BIG_SHAPE, layers: values.layers ? Number(values.layers) : BIG_SHAPE.layers };
  const shardBytes = (values['shard-mib'] ? Number(values['shard-mib']) : 32) * MiB;
  const dir = await mkdtemp(join(tmpdir(), 'rl-heap-'));
  const { openBrowserSession } = await import('./browserSession.ts');
  try {
    process.stderr.write(`generating the model in ${dir} …\n`);
    const gen = await generateBigModel(dir, shape, shardBytes);
    const files = await serveDirectory(dir);
    const session = await openBrowserSession({ quiet: true });
    try {
      process.stderr.write('downloading into IndexedDB, then loading onto the GPU …\n');
      const m = await measureHeapWhileLoading(session.page as unknown as Page, files.url, gen);
      process.stdout.write(flags.has('json') ? `${JSON.stringify(m)}\n` : `${describeMeasurement(m)}\n`);
    } finally {
      await session.close();
      await files.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { runMain } = await import('./args.ts');
  runMain(main, 'usage: npx tsx src/cli/measureHeap.ts [--layers N] [--shard-mib N] [--json]');
}
