/**
 * The in-page half of `npm run bench`: on the page's WebGPU device, measure the copy bandwidth
 * ceiling, then prefill and decode speed of a model (and of each adapter), all in one run so the
 * ratios compare like with like.
 */
import { Engine } from '../engine/engine.ts';
import { measureCopyBandwidth } from '../engine/bandwidth.ts';
import { decodeBytesPerStep } from '../engine/memoryPlan.ts';
import type { KvCacheOption, KvFormat } from '../engine/kvCache.ts';
import { httpModelSource, readBaseModelJson } from '../formats/modelFiles.ts';
import { syntheticModelSource, llama2_7bShape } from '../formats/syntheticModel.ts';
import { ADAPTER_MANIFEST_FILE, type AdapterKind } from '../formats/adapterFormat.ts';
import { convertPeftAdapter } from '../formats/adapterConversion.ts';
import { randomPeftAdapter } from '../formats/randomAdapter.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import type { QuantMode } from '../formats/llamaConfig.ts';
import type { LoadedAdapter } from '../engine/reasoningEngine.ts';
import type { EncodeStats } from '../engine/llama.ts';
import type { ProgressEvent } from './progress.ts';
import { gsm8kEstimate, GSM8K_BATCH, type Gsm8kEstimate } from './gsm8kEstimate.ts';
import { profileDecodeStep, type KernelProfile } from '../engine/kernelProfile.ts';
import type { TrainBenchOptions, TrainBenchReport } from '../training/trainBench.ts';

export interface BenchOptions {
  model: { url: string } | { synthetic: { layers: number; mode: QuantMode } };
  /** Converted adapter directories (URLs), or the paper's configurations made at random ('paper:lora' …). */
  adapters: string[];
  batch: number;
  promptLen: number;
  gen: number;
  /** The KV cache's format ('auto' or absent: the mode's own). */
  kvCache?: KvCacheOption;
}

export interface DecodeTiming {
  tokensPerSecond: number; // all sequences together
  msPerStep: number;
  efficiency: number; // bytesPerStep * steps/s / copy bandwidth
  overhead: number | null; // decode time vs the base, with an adapter
  dispatchesPerStep: number; // counted as the engine encoded them (LlamaModel.encodeStats)
  encodeMsPerStep: number; // JS time to queue a step's params and encode its pass
}

/** Decode with every step's logits read back (model.decodeBatch), and greedy with the argmax on the GPU, pipelined (model.decodeGreedy). */
export interface DecodeMeasure extends DecodeTiming {
  adapter: string | null;
  bytesPerStep: number;
  greedy: DecodeTiming;
}

export interface BenchResult {
  gpuAdapter: string;
  model: string;
  mode: QuantMode;
  /** The KV cache's format the model ran with. */
  kvCache: KvFormat;
  layers: number;
  memory: { weights: number; kvCache: number; activations: number; total: number };
  copyBytesPerSecond: number;
  prefillTokensPerSecond: number;
  timeToFirstTokenMs: number;
  decode: DecodeMeasure[];
  batch: number;
  /** One beam-search step with `batch` beams (engine.generateBeams: decode, log-softmax, top 2N, forks), base model. */
  beam: { numBeams: number; msPerStep: number; vsGreedyStep: number; vsReadBackStep: number };
  /** Per-kernel GPU time of a greedy step of the base model at `batch` (timestamp-query); null with the reason in profileSkipped. */
  profile: KernelProfile | null;
  profileSkipped?: string;
  /** The full GSM8K test set at this run's rates: needs --batch 32 (null otherwise, with the reason). */
  gsm8k: Gsm8kEstimate | null;
  gsm8kSkipped?: string;
  software: boolean;
}

function memorySource(files: Map<string, Uint8Array>, json: Record<string, unknown>): ModelSource {
  return {
    readJson: async (p) => json[p] ?? null,
    readShard: async (p) => files.get(p)!.slice().buffer,
  };
}

/** The paper's adapter configurations (GUIDE.md), random, converted against this base. */
async function paperAdapter(base: ModelSource, kind: AdapterKind): Promise<ModelSource> {
  const { parseMlcChatConfig } = await import('../formats/mlcChatConfig.ts');
  const { chatConfig: chat, tensorCache } = await readBaseModelJson(base);
  const config = parseMlcChatConfig(chat).config;
  const peft = randomPeftAdapter(config, kind, kind === 'lora' ? { r: 32, alpha: 64, std: 0.01 } : { r: 256, std: 0.01 });
  const converted = await convertPeftAdapter({
    ...peft,
    baseChatConfig: chat,
    baseTensorCache: tensorCache,
    name: `paper ${kind}`,
  });
  return memorySource(converted.shards, { [ADAPTER_MANIFEST_FILE]: converted.manifest });
}

/** `progress` hears of every phase and step as it happens (the CLI prints them: a bench on a software adapter takes minutes). */
export async function runBench(o: BenchOptions, progress: (e: ProgressEvent) => void = () => {}): Promise<BenchResult> {
  const source = 'url' in o.model ? httpModelSource(o.model.url) : syntheticModelSource(llama2_7bShape(o.model.synthetic.layers), o.model.synthetic.mode);
  const engine = new Engine();
  progress({ phase: 'loading the model' });
  const info = await engine.load(source, {
    contextLength: o.promptLen + o.gen + 2,
    maxBatch: o.batch,
    kvCache: o.kvCache,
    onProgress: (p) => progress({ phase: 'loading the model', unit: 'shard', step: p.shard, steps: p.shardCount }),
  });
  // The raw decode paths are what the bench times: the LlamaModel beneath the engine interface.
  const model = engine.llamaModel();
  const device = model.gpu.device;
  progress({ phase: 'measuring copy bandwidth' });
  const copyBytesPerSecond = (await measureCopyBandwidth(device)).bytesPerSecond;
  const prompt = (seq: number) => Array.from({ length: o.promptLen }, (_, i) => 1 + ((i * 7919 + seq * 104729) % (info.config.vocabSize - 1)));

  // Prefill: once to compile every pipeline, then measured.
  progress({ phase: `prefill, ${o.promptLen} tokens (compiling, then measured)` });
  await engine.logits(prompt(0));
  const t0 = performance.now();
  await engine.logits(prompt(0));
  const prefillMs = performance.now() - t0;

  const decode: DecodeMeasure[] = [];
  /** Every slot holds its prompt again, so both decode timings start from the same caches. */
  const prefillSlots = async () => {
    for (let s = 0; s < o.batch; s++) {
      model.reset(s);
      await model.prefillSlot(s, prompt(s));
    }
  };
  const measureDecode = async (adapter: LoadedAdapter | null, adapterBytes: number) => {
    const which = adapter ? `adapter ${adapter.name}` : 'base model';
    await engine.useAdapter(adapter?.id ?? null);
    const steps = o.gen - 1;
    const readBack = `decode, ${which} (logits read back)`;
    progress({ phase: readBack, step: 0, steps });
    await prefillSlots();
    const entries = Array.from({ length: o.batch }, (_, s) => ({ slot: s, token: 29871 % info.config.vocabSize }));
    await model.decodeBatch(entries); // warm-up (this adapter's pipelines)
    model.resetEncodeStats();
    const t = performance.now();
    for (let i = 1; i < o.gen; i++) {
      await model.decodeBatch(entries);
      progress({ phase: readBack, step: i, steps });
    }
    const msPerStep = (performance.now() - t) / steps;
    const readBackEncode = stepEncode(model.encodeStats, steps);
    // The same steps again, greedy: argmax on the GPU, only ids read back, steps pipelined.
    const greedy = `decode, ${which} (GPU argmax, pipelined)`;
    progress({ phase: greedy, step: 0, steps });
    await prefillSlots();
    await model.decodeGreedy(entries, 1, () => {}); // warm-up (the argmax pipeline)
    model.resetEncodeStats();
    const tg = performance.now();
    await model.decodeGreedy(entries, steps, (_ids, step) => progress({ phase: greedy, step: step + 1, steps }));
    const greedyMsPerStep = (performance.now() - tg) / steps;
    const greedyEncode = stepEncode(model.encodeStats, steps);
    const meanPos = o.promptLen + 1 + steps / 2;
    const bytesPerStep = decodeBytesPerStep(info.config, info.mode, info.kvCache, o.batch, meanPos, adapterBytes);
    const base = decode[0];
    const timing = (ms: number, baseMs: number | undefined, enc: ReturnType<typeof stepEncode>): DecodeTiming => ({
      tokensPerSecond: (o.batch * 1000) / ms,
      msPerStep: ms,
      efficiency: (bytesPerStep * (1000 / ms)) / copyBytesPerSecond,
      overhead: baseMs !== undefined && adapter ? ms / baseMs - 1 : null,
      ...enc,
    });
    decode.push({
      adapter: adapter?.name ?? null,
      bytesPerStep,
      ...timing(msPerStep, base?.msPerStep, readBackEncode),
      greedy: timing(greedyMsPerStep, base?.greedy.msPerStep, greedyEncode),
    });
  };
  await measureDecode(null, 0);
  // Per-kernel GPU times of the base model's greedy step, each dispatch replayed in a timed pass of its own.
  let profile: KernelProfile | null = null;
  let profileSkipped: string | undefined;
  if (!device.features.has('timestamp-query')) profileSkipped = 'the adapter has no timestamp-query';
  else {
    progress({ phase: `per-kernel profile, batch ${o.batch}` });
    await prefillSlots();
    try {
      profile = await profileDecodeStep(model, o.batch, o.promptLen, 3);
    } catch (e) {
      profileSkipped = `profile failed: ${(e as Error).message}`;
    }
  }
  const gsm8k = o.batch === GSM8K_BATCH ? gsm8kEstimate((o.promptLen * 1000) / prefillMs, decode[0].greedy.msPerStep, o.promptLen, model.gpu.isSoftware) : null;
  // Beam search at N = batch beams against the greedy step at batch N: it should cost no more
  // than N times the greedy step (it decodes the same N rows, plus logits read-back and scoring).
  progress({ phase: `beam search, ${o.batch} beams, ${o.gen} tokens` });
  const beamRun = await engine.generateBeams(prompt(0), { numBeams: o.batch, maxNewTokens: o.gen, stopTokenIds: [] });
  const beamMs = beamRun.decodeMs / Math.max(beamRun.decodeTokens, 1);
  const beam = { numBeams: o.batch, msPerStep: beamMs, vsGreedyStep: beamMs / decode[0].greedy.msPerStep, vsReadBackStep: beamMs / decode[0].msPerStep };
  for (const a of o.adapters) {
    progress({ phase: `loading adapter ${a}` });
    const src = a.startsWith('paper:') ? await paperAdapter(source, a.slice(6) as AdapterKind) : httpModelSource(a);
    const adapter = await engine.loadAdapter(src, a);
    await measureDecode(adapter, model.adapterBytes(adapter.id));
  }
  await engine.unload();
  return {
    gpuAdapter: info.adapterInfo,
    model: 'url' in o.model ? o.model.url : `synthetic Llama-2-7B shape, ${o.model.synthetic.layers} layers`,
    mode: info.mode,
    kvCache: info.kvCache,
    layers: info.config.numLayers,
    memory: info.memory,
    copyBytesPerSecond,
    prefillTokensPerSecond: (o.promptLen * 1000) / prefillMs,
    timeToFirstTokenMs: prefillMs,
    decode,
    batch: o.batch,
    beam,
    profile,
    ...(profileSkipped ? { profileSkipped } : {}),
    gsm8k,
    ...(gsm8k ? {} : { gsm8kSkipped: `needs the batch-${GSM8K_BATCH} step time: run with --batch ${GSM8K_BATCH}` }),
    software: model.gpu.isSoftware,
  };
}

/** A measured run's encode stats per step; every step must have been one call of the same dispatches. */
function stepEncode(s: EncodeStats, steps: number): { dispatchesPerStep: number; encodeMsPerStep: number } {
  if (s.calls !== steps || s.dispatches !== s.calls * s.lastCallDispatches)
    throw new Error(`decode steps encoded unevenly: ${s.dispatches} dispatches in ${s.calls} calls for ${steps} steps`);
  return { dispatchesPerStep: s.lastCallDispatches, encodeMsPerStep: s.encodeMs / s.calls };
}

/**
 * The training rows (training/trainBench.ts) on this page's GPU, on a device of their own: run after
 * runBench, whose engine has freed its buffers by then.
 */
export async function runTrainBench(o: Omit<TrainBenchOptions, 'log'>, progress: (e: ProgressEvent) => void = () => {}): Promise<TrainBenchReport> {
  const { createGpuContext } = await import('../engine/gpu.ts');
  const { runTrainingBench } = await import('../training/trainBench.ts');
  const gpu = await createGpuContext();
  try {
    return await runTrainingBench(gpu, { ...o, log: (m) => progress({ phase: m }) });
  } finally {
    gpu.device.destroy();
  }
}

export interface WebLLMBenchOptions {
  modelId: string;
  /** Same prompt and generation lengths as our measurement. */
  promptLen: number;
  gen: number;
  /** Give up when the library or weights stop arriving for this long (ms). */
  stallMs: number;
}

export type WebLLMBenchResult =
  | { modelId: string; promptTokens: number; genTokens: number; prefillTokensPerSecond: number; decodeTokensPerSecond: number }
  | { modelId: string; skipped: string };

/**
 * The same measurement through WebLLM on this page's GPU: load `modelId` (its compiled library and
 * MLC weights), warm up, then one greedy completion of `gen` tokens after a `promptLen`-token prompt.
 * Never throws: what stops WebLLM (offline, no shader-f16, …) comes back as `skipped`.
 */
export async function runWebLLMBench(o: WebLLMBenchOptions): Promise<WebLLMBenchResult> {
  const { loadWebLLM, generateWebLLM, unloadWebLLM, WebLLMUnavailableError } = await import('../engine/webllm.ts');
  try {
    await loadWebLLM(o.modelId, { stallMs: o.stallMs });
    // "the" is one Llama-2 token with or without its leading space: BOS + (P − 1) × "▁the" = P tokens.
    const prompt = Array.from({ length: Math.max(1, o.promptLen - 1) }, () => 'the').join(' ');
    await generateWebLLM(prompt, { maxNewTokens: 2, ignoreEos: true }); // compiles every pipeline
    const r = await generateWebLLM(prompt, { maxNewTokens: o.gen, ignoreEos: true });
    return {
      modelId: o.modelId,
      promptTokens: r.promptTokens,
      genTokens: r.completionTokens,
      prefillTokensPerSecond: r.prefillTokensPerSecond,
      decodeTokensPerSecond: r.decodeTokensPerSecond,
    };
  } catch (e) {
    return { modelId: o.modelId, skipped: e instanceof WebLLMUnavailableError ? e.reason : (e as Error).message || String(e) };
  } finally {
    await unloadWebLLM();
  }
}
