/**
 * Whole-model checks in the page: the WebGPU engine against the reference forward pass
 * (src/engine/reference.ts) on the generated tiny model, read from the same shards.
 */
import { Engine } from '../../../src/engine/engine.ts';
import { LlamaModel } from '../../../src/engine/llama.ts';
import { ReferenceLlama, referenceWeightsFromRecords } from '../../../src/engine/reference.ts';
import { httpModelSource, iterateShardTensors, loadModelManifest } from '../../../src/formats/modelFiles.ts';
import { seededRng } from '../../../src/formats/random.ts';
import { f32ArrayToBf16 } from '../../../src/formats/f16.ts';
import type { ModelSource, TensorCache } from '../../../src/formats/tensorCacheTypes.ts';
import { relErr } from './kernelChecks.ts';
import { loadTrainingBase } from '../../../src/training/referenceModel.ts';
import type { KvCacheOption, KvFormat } from '../../../src/engine/kvCache.ts';

const engines = new Map<string, Engine>();
const references = new Map<string, ReferenceLlama>();

export async function engineFor(
  url: string,
  opts: {
    prefillChunk?: number;
    contextLength?: number;
    maxBatch?: number | 'auto';
    q4Decode?: 'auto' | 'workgroup' | 'row';
    prefillMatmul?: 'auto' | 'tiled' | 'row';
    kvCache?: KvCacheOption;
  } = {},
): Promise<Engine> {
  const key = `${url}|${JSON.stringify(opts)}`;
  let e = engines.get(key);
  if (!e) {
    e = new Engine();
    await e.load(httpModelSource(url), opts);
    engines.set(key, e);
  }
  return e;
}

/** The reference on the model's records; kvCache 'f16' rounds its cached keys and values to f16 (as the engine's f16 cache stores them). */
export async function referenceFor(url: string, kvCache: KvFormat = 'f32'): Promise<ReferenceLlama> {
  const key = `${url}|${kvCache}`;
  let r = references.get(key);
  if (!r) {
    const base = await loadTrainingBase(httpModelSource(url));
    r = new ReferenceLlama(base.config, base.weights, undefined, { kvCache });
    references.set(key, r);
  }
  return r;
}

/**
 * The KV format the oracle stores for an engine loaded with `asked`: with an explicit kvCache,
 * the engine's own (so an f16 cache is held to the f32 paths' 1e-4); without, f32 as before (the
 * f16 modes' checks at 1e-2 against the f32 reference, tinyModes.ts, stay what they were).
 */
function oracleKv(engine: Engine, asked: KvCacheOption | undefined): KvFormat {
  return asked === undefined ? 'f32' : engine.info!.kvCache;
}

/** The engine's reported GPU memory (summed from its real buffers) and the planner's prediction, with the KV format in use. */
export async function memoryReport(url: string, opts: { kvCache?: KvCacheOption } = {}) {
  const { planMemory } = await import('../../../src/engine/memoryPlan.ts');
  const engine = await engineFor(url, opts);
  const info = engine.info!;
  return {
    kvCache: info.kvCache,
    actual: info.memory,
    planned: planMemory(info.config, info.mode, info.kvCache, info.contextLength, engine.llamaModel().prefillChunk, info.maxBatch),
  };
}

/**
 * Engine.setKvCache through a sequence of options on one loaded model: after each switch, the
 * format and memory it reports (against the planner's), the worst logit error of one prompt
 * against the reference storing that format and against the one storing the other, and greedy
 * ids against the reference's. Then an unknown option, which must be refused with the format kept.
 */
export async function kvCacheSwitches(url: string, options: KvCacheOption[], ids: number[], promptIds: number[], maxNewTokens: number) {
  const { planMemory } = await import('../../../src/engine/memoryPlan.ts');
  const engine = new Engine();
  await engine.load(httpModelSource(url));
  const steps = [];
  try {
    for (const option of options) {
      const info = await engine.setKvCache(option);
      const other: KvFormat = info.kvCache === 'f16' ? 'f32' : 'f16';
      const logitsError = async (kv: KvFormat) => {
        const ref = await referenceFor(url, kv);
        const got = await engine.logits(ids, { allLogits: true });
        ref.reset();
        const want = ref.forwardAll(ids);
        const V = want[0].length;
        return Math.max(...want.map((w, t) => relErr(got.subarray(t * V, (t + 1) * V), w)));
      };
      const got = await engine.generate(promptIds, { maxNewTokens, stopTokenIds: [] });
      steps.push({
        option,
        kvCache: info.kvCache,
        memory: info.memory,
        planned: planMemory(info.config, info.mode, info.kvCache, info.contextLength, engine.llamaModel().prefillChunk, info.maxBatch),
        errorOwn: await logitsError(info.kvCache),
        errorOther: await logitsError(other),
        got: got.ids,
        want: (await referenceFor(url, info.kvCache)).greedyGenerate(promptIds, maxNewTokens, []),
      });
    }
    const refused = await engine.setKvCache('half' as KvCacheOption).then(
      () => null,
      (e: Error) => e.message,
    );
    return { steps, refused, after: engine.info!.kvCache };
  } finally {
    await engine.unload();
  }
}

/**
 * A switch whose cache cannot be made: at a batch whose f16 cache is under the device's buffer
 * limits and whose f32 cache is over them (memoryPlan.batchForLimits for each, at the full
 * context), setKvCache('f32') must be refused by name, and the model keep its f16 cache, its
 * shape and its greedy ids (the f16 reference's).
 */
export async function kvCacheSwitchRefused(url: string, promptIds: number[], maxNewTokens: number) {
  const { batchForLimits } = await import('../../../src/engine/memoryPlan.ts');
  const engine = new Engine();
  await engine.load(httpModelSource(url), { kvCache: 'f16' });
  try {
    const m = engine.llamaModel();
    const ctx = m.config.contextWindowSize;
    const fits = (kv: KvFormat) => batchForLimits(m.config, kv, ctx, m.prefillChunk, m.gpu.device.limits, 1 << 16);
    const slots = fits('f32') + 1;
    await engine.configure({ contextLength: ctx, maxBatch: slots });
    const shape = (i = engine.info!) => ({ kvCache: i.kvCache, contextLength: i.contextLength, maxBatch: i.maxBatch, kvBytes: i.memory.kvCache });
    const before = shape();
    const refused = await engine.setKvCache('f32').then(
      () => null,
      (e: Error) => `${e.name}: ${e.message}`,
    );
    const after = shape();
    const got = await engine.generate(promptIds, { maxNewTokens, stopTokenIds: [] });
    const want = (await referenceFor(url, 'f16')).greedyGenerate(promptIds, maxNewTokens, []);
    return { slots, f16Fits: fits('f16'), before, refused, after, got: got.ids, want };
  } finally {
    await engine.unload();
  }
}

export function randomIds(n: number, seed: number, vocab = 32000): number[] {
  const rng = seededRng(seed);
  return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 3 + rng.int(vocab - 3)));
}

/** Largest relative error over every token's logits of one prompt, against the reference storing oracleKv's format (or `against`). */
export async function checkAllLogits(
  url: string,
  ids: number[],
  opts: { prefillChunk?: number; prefillMatmul?: 'tiled' | 'row'; q4Decode?: 'workgroup' | 'row'; kvCache?: KvCacheOption; against?: KvFormat } = {},
) {
  const { against, ...load } = opts;
  const engine = await engineFor(url, load);
  const ref = await referenceFor(url, against ?? oracleKv(engine, load.kvCache));
  const got = await engine.logits(ids, { allLogits: true });
  ref.reset();
  const want = ref.forwardAll(ids);
  const V = want[0].length;
  let worst = 0;
  want.forEach((w, t) => (worst = Math.max(worst, relErr(got.subarray(t * V, (t + 1) * V), w))));
  return worst;
}

/** Prefill N tokens then decode M more, against the same tokens fed one at a time (engine) and the reference. */
export async function checkPrefillThenDecode(url: string, ids: number[], prefill: number) {
  const engine = await engineFor(url);
  const ref = await referenceFor(url);
  const model = engine.llamaModel();
  model.reset();
  const stepped: Float32Array[] = [];
  for (const id of ids) stepped.push(await model.forward([id]));
  model.reset();
  const batched: Float32Array[] = [await model.forward(ids.slice(0, prefill))];
  for (const id of ids.slice(prefill)) batched.push(await model.forward([id]));
  ref.reset();
  const want = ref.forwardAll(ids).slice(prefill - 1);
  let engineVsEngine = 0;
  let engineVsReference = 0;
  batched.forEach((b, i) => {
    engineVsEngine = Math.max(engineVsEngine, relErr(b, stepped[prefill - 1 + i]));
    engineVsReference = Math.max(engineVsReference, relErr(b, want[i]));
  });
  return { engineVsEngine, engineVsReference };
}

export async function greedyBoth(
  url: string,
  promptIds: number[],
  maxNewTokens: number,
  opts: { q4Decode?: 'workgroup' | 'row'; kvCache?: KvCacheOption; stopTokenIds?: number[] } = {},
) {
  const { stopTokenIds, ...load } = opts;
  const engine = await engineFor(url, load);
  const ref = await referenceFor(url, oracleKv(engine, load.kvCache));
  const got = await engine.generate(promptIds, { maxNewTokens, stopTokenIds });
  const want = ref.greedyGenerate(promptIds, maxNewTokens, stopTokenIds);
  return { got: got.ids, want };
}

/**
 * Continuous batching: prompts of ragged lengths through `maxBatch` slots (later prompts join as
 * earlier ones finish; sequence i is stopped after stopAfter[i] tokens by its own stop rule), each
 * against the reference's greedy ids and against the same prompt generated alone.
 */
export async function batchedVsAlone(
  url: string,
  prompts: number[][],
  maxBatch: number,
  maxNewTokens: number,
  stopAfter: number[],
  prefillChunk?: number,
  kvCache?: KvCacheOption,
) {
  const engine = await engineFor(url, { maxBatch, prefillChunk, kvCache });
  const ref = await referenceFor(url, oracleKv(engine, kvCache));
  const joinOrder: number[] = [];
  const { results: batched, sharedPrefixTokens } = await engine.generateBatch(
    prompts,
    { maxNewTokens, maxBatch },
    {
      onToken: (seq, { index }) => {
        if (index === 0) joinOrder.push(seq);
        return index + 1 >= stopAfter[seq];
      },
    },
  );
  const alone: number[][] = [];
  const want: number[][] = [];
  for (const [i, p] of prompts.entries()) {
    alone.push((await engine.generate(p, { maxNewTokens }, { onToken: ({ index }) => index + 1 >= stopAfter[i] })).ids);
    want.push(ref.greedyGenerate(p, Math.min(maxNewTokens, stopAfter[i])));
  }
  return {
    batched: batched.map((r) => r.ids),
    stopReasons: batched.map((r) => r.stopReason),
    alone,
    want,
    joinOrder,
    sharedPrefixTokens,
    cached: batched.map((r) => r.cachedPromptTokens),
    prefilled: batched.map((r) => r.prefillTokens),
  };
}

/**
 * model.decodeGreedyStream at batch 2 over three prompts, as the engine drives it: both lanes join
 * at the start (prefilled in chunks of 4); when a sequence ends its lane takes the next prompt, and
 * once none is waiting the stream returns and starts again with the lanes still running. The log
 * says when each refill was asked for, whose ids each delivery carried and when a stream returned.
 */
export async function greedyStreamRefill(url: string, prompts: number[][], steps: number[]) {
  const engine = await engineFor(url, { maxBatch: 2, prefillChunk: 4 });
  const ref = await referenceFor(url);
  const model = engine.llamaModel();
  const log: string[] = [];
  const ids: number[][] = prompts.map(() => []);
  const slotOf: number[] = [];
  const free = [1, 0];
  const done = (seq: number) => ids[seq].length === steps[seq] + 1;
  let lanes: number[] = []; // lane -> sequence
  let next = 0;
  while (next < prompts.length || lanes.length > 0) {
    const current = [...lanes];
    await model.decodeGreedyStream(
      current.map((seq) => ({ slot: slotOf[seq], token: ids[seq][ids[seq].length - 1], steps: steps[seq] + 1 - ids[seq].length })),
      {
        ids: (pairs) => {
          log.push(`ids ${pairs.map((p) => current[p.lane]).join(',')}`);
          const ended: number[] = [];
          for (const { lane, id } of pairs) {
            const seq = current[lane];
            ids[seq].push(id);
            if (done(seq)) {
              ended.push(lane);
              free.push(slotOf[seq]);
            }
          }
          return ended;
        },
        refill: (lane) => {
          if (next >= prompts.length) return null;
          const seq = next++;
          slotOf[seq] = free.pop()!;
          model.reset(slotOf[seq]);
          current[lane] = seq;
          log.push(`refill ${seq}`);
          return { slot: slotOf[seq], tokens: prompts[seq], steps: steps[seq] };
        },
      },
    );
    log.push('return');
    lanes = current.filter((seq) => !done(seq));
  }
  return {
    ids,
    want: prompts.map((p, i) => ref.greedyGenerate(p, steps[i] + 1, [])),
    log,
    // Each slot's tokens in the cache, by sequence.
    positions: slotOf.map((slot) => model.positions[slot]),
  };
}

/**
 * model.decodeGreedy told to stop (onStep returns false) at step `stopAt` of `steps`: the steps
 * already in flight are still delivered, in order, and the slot's position counts exactly the
 * delivered steps, so a second decodeGreedy from the last id continues the reference's greedy ids.
 */
export async function greedyStopInFlight(url: string, prompt: number[], stopAt: number, steps: number, more: number) {
  const { argmax } = await import('../../../src/engine/sampling.ts');
  const engine = await engineFor(url);
  const ref = await referenceFor(url);
  const model = engine.llamaModel();
  model.reset(0);
  const ids = [argmax(await model.forward(prompt))];
  const stepsSeen: number[] = [];
  const ran = await model.decodeGreedy([{ slot: 0, token: ids[0] }], steps, (out, step) => {
    stepsSeen.push(step);
    ids.push(out[0]);
    return step < stopAt;
  });
  const positionAfterStop = model.positions[0];
  const ran2 = await model.decodeGreedy([{ slot: 0, token: ids[ids.length - 1] }], more, (out) => void ids.push(out[0]));
  return { ran, ran2, stepsSeen, positionAfterStop, positionAtEnd: model.positions[0], ids, want: ref.greedyGenerate(prompt, ids.length, []) };
}

/**
 * engine.generate (greedy, the GPU path) stopped by onToken after `stopAfter` tokens: slot 0 then
 * holds the prompt and every id but the last (position prompt + ids - 1), and decoding on from the
 * last id gives the reference's continuation.
 */
export async function generateThenContinue(url: string, prompt: number[], maxNewTokens: number, stopAfter: number, more: number) {
  const engine = await engineFor(url);
  const ref = await referenceFor(url);
  // No stop id: only onToken and the length end it (a 500-id model draws EOS often).
  const r = await engine.generate(prompt, { maxNewTokens, stopTokenIds: [] }, { onToken: ({ index }) => index + 1 >= stopAfter });
  const model = engine.llamaModel();
  const position = model.positions[0];
  const ids = [...r.ids];
  await model.decodeGreedy([{ slot: 0, token: ids[ids.length - 1] }], more, (out) => void ids.push(out[0]));
  return { generated: r.ids, stopReason: r.stopReason, position, ids, want: ref.greedyGenerate(prompt, ids.length, []) };
}

/** decodeGreedy's refusals (as EngineError messages), and recovery after onStep throws mid-pipeline. */
export async function greedyMisuse(url: string) {
  const engine = await engineFor(url, { maxBatch: 2, contextLength: 32 });
  const model = engine.llamaModel();
  const errors: string[] = [];
  const attempt = async (f: () => Promise<unknown>) => {
    try {
      await f();
      errors.push('no error');
    } catch (e) {
      errors.push(`${(e as Error).name}: ${(e as Error).message}`);
    }
  };
  model.reset(0);
  model.reset(1);
  await model.forward([1, 5, 9]);
  await attempt(() =>
    model.decodeGreedy(
      [
        { slot: 0, token: 3 },
        { slot: 0, token: 4 },
      ],
      2,
      () => {},
    ),
  );
  await attempt(() =>
    model.decodeGreedy(
      [
        { slot: 0, token: 3 },
        { slot: 1, token: 4 },
        { slot: 2, token: 5 },
      ],
      2,
      () => {},
    ),
  );
  await attempt(() => model.decodeGreedy([{ slot: 0, token: 3 }], 30, () => {}));
  const before = model.positions[0];
  let calls = 0;
  await attempt(() =>
    model.decodeGreedy([{ slot: 0, token: 3 }], 10, (_ids, step) => {
      calls++;
      if (step === 1) throw new Error('onStep failed');
    }),
  );
  const afterThrow = model.positions[0];
  // Every staging buffer was unmapped: a full run (more steps than the ring holds) works.
  const ran = await model.decodeGreedy(
    [
      { slot: 0, token: 3 },
      { slot: 1, token: 7 },
    ],
    8,
    () => {},
  );
  return { errors, calls, before, afterThrow, ran };
}

/**
 * Sampling with a temperature keeps the logits path (decodeGreedy is never called); a temperature
 * so low that only the maximum keeps any probability gives the reference's greedy ids, alone and batched.
 */
export async function samplingPath(url: string, prompts: number[][], maxNewTokens: number) {
  const engine = await engineFor(url, { maxBatch: 2 });
  const ref = await referenceFor(url);
  // Counted on the prototype: a batch run reshapes the model (a new LlamaModel, the weights kept).
  const proto = LlamaModel.prototype;
  const original = proto.decodeGreedy;
  let greedyCalls = 0;
  proto.decodeGreedy = function (this: LlamaModel, ...a: Parameters<LlamaModel['decodeGreedy']>) {
    greedyCalls++;
    return original.apply(this, a);
  };
  try {
    const temperature = 1e-6;
    const alone = [];
    for (const p of prompts) alone.push((await engine.generate(p, { maxNewTokens, temperature })).ids);
    const batched = (await engine.generateBatch(prompts, { maxNewTokens, temperature, maxBatch: 2 })).results.map((r) => r.ids);
    const samplingCalls = greedyCalls;
    await engine.generate(prompts[0], { maxNewTokens: 3 });
    return { alone, batched, samplingCalls, greedyCalls, want: prompts.map((p) => ref.greedyGenerate(p, maxNewTokens)) };
  } finally {
    proto.decodeGreedy = original;
  }
}

/**
 * The model at `url` as MLC's `tvmjs.dump_tensor_cache(..., encode_format="f32-to-bf16")` writes it
 * (tvm python/tvm/contrib/tvmjs.py): every float32 record stored as bf16 bytes under format
 * "f32-to-bf16", other dtypes raw; rebuilt in memory from the served files.
 */
export function bf16EncodedSource(url: string): ModelSource {
  const http = httpModelSource(url);
  let cache: Promise<{ original: TensorCache; encoded: TensorCache }> | null = null;
  const caches = () =>
    (cache ??= (async () => {
      const original = (await loadModelManifest(http)).cache;
      const encoded: TensorCache = {
        metadata: original.metadata,
        records: original.records.map((s) => {
          let offset = 0;
          const records = s.records.map((r) => {
            const nbytes = r.dtype === 'float32' ? r.nbytes / 2 : r.nbytes;
            const rec = { ...r, format: r.dtype === 'float32' ? 'f32-to-bf16' : 'raw', byteOffset: offset, nbytes };
            offset += Math.ceil(nbytes / 4) * 4;
            return rec;
          });
          return { dataPath: s.dataPath, format: 'raw-shard', nbytes: offset, records };
        }),
      };
      return { original, encoded };
    })());
  return {
    async readJson(path) {
      if (path === 'tensor-cache.json') return (await caches()).encoded;
      if (path === 'ndarray-cache.json') return null;
      return http.readJson(path);
    },
    async readShard(path) {
      const { original, encoded } = await caches();
      const i = original.records.findIndex((s) => s.dataPath === path);
      const raw = new Uint8Array(await http.readShard(path));
      const out = new Uint8Array(encoded.records[i].nbytes);
      original.records[i].records.forEach((r, j) => {
        const to = encoded.records[i].records[j].byteOffset;
        const bytes = raw.slice(r.byteOffset, r.byteOffset + r.nbytes);
        out.set(r.dtype === 'float32' ? new Uint8Array(f32ArrayToBf16(new Float32Array(bytes.buffer)).buffer) : bytes, to);
      });
      return out.buffer;
    },
  };
}

/** Logits of a bf16-encoded copy of the model: engine against the reference reading the same records, and against the raw model's reference. */
export async function checkBf16EncodedLogits(url: string, ids: number[]) {
  const source = bf16EncodedSource(url);
  const engine = new Engine();
  try {
    await engine.load(source);
    const m = await loadModelManifest(source);
    const records = new Map<string, Float32Array | Uint32Array>();
    const shapes = new Map<string, number[]>();
    let encodedRecords = 0;
    for await (const shard of iterateShardTensors(source, m.cache)) {
      for (const { record, data } of shard.records) {
        records.set(record.name, data);
        shapes.set(record.name, record.shape);
        if (record.format === 'f32-to-bf16') encodedRecords++;
      }
    }
    const ref = new ReferenceLlama(m.config, referenceWeightsFromRecords(records, shapes, m.mode, m.config));
    const got = await engine.logits(ids, { allLogits: true });
    const want = ref.forwardAll(ids);
    const raw = await referenceFor(url);
    raw.reset();
    const rawWant = raw.forwardAll(ids);
    const V = want[0].length;
    let vsReference = 0;
    let vsRaw = 0;
    want.forEach((w, t) => {
      vsReference = Math.max(vsReference, relErr(got.subarray(t * V, (t + 1) * V), w));
      vsRaw = Math.max(vsRaw, relErr(got.subarray(t * V, (t + 1) * V), rawWant[t]));
    });
    return { vsReference, vsRaw, encodedRecords };
  } finally {
    await engine.unload();
  }
}
