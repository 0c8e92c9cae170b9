/**
 * The public engine API (load, generate with a token stream, cancel, unload), in the spirit of
 * WebLLM's engine: progress callbacks while loading, errors as named classes. No DOM, no UI:
 * it runs in a Web Worker in the app and in a page driven by the headless CLI.
 */
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import { loadModelManifest } from '../formats/modelFiles.ts';
import { createGpuContext, type GpuContext } from './gpu.ts';
import { LlamaModel, type ModelLoadOptions } from './llama.ts';
import { Sampler, type SamplingOptions } from './sampling.ts';
import { EngineError } from './errors.ts';
import { beamSearch, type BeamSearchOptions, type BeamSearchResult, type BeamStepper } from './beamSearch.ts';
import { ADAPTER_MANIFEST_FILE, checkAdapterAgainstBase, parseAdapterManifest, readAdapterTensors } from '../formats/adapterFormat.ts';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Token ids that end the generation (the model's EOS by default); the stop id is included in the output. */
  stopTokenIds?: number[];
  /** Called after each token; return true to stop (stop strings are checked by the caller, which has the tokenizer). */
  onToken?: (id: number, index: number) => boolean | void;
  signal?: AbortSignal;
}

export type StopReason = 'eos' | 'stop' | 'length' | 'cancelled';

export interface GenerateResult {
  ids: number[];
  stopReason: StopReason;
  prefillTokens: number;
  prefillMs: number;
  decodeTokens: number;
  decodeMs: number;
}

export interface LoadedModelInfo {
  config: LlamaConfig;
  mode: QuantMode;
  contextLength: number;
  memory: LlamaModel['memory'];
  adapterInfo: string;
  hasF16: boolean;
  hasSubgroups: boolean;
  tokenizerJson: object | null;
  tokenizerConfig: object | null;
}

/**
 * Why a sequence ends with the token it has just been given (its `count`-th), or null: the
 * caller's onToken asked to stop ('stop'), a stop id ('eos'), or it reached its length.
 */
function endReason(id: number, count: number, maxNew: number, stop: Set<number>, onTokenSaidStop: boolean | void): StopReason | null {
  if (onTokenSaidStop === true) return 'stop';
  if (stop.has(id)) return 'eos';
  return count >= maxNew ? 'length' : null;
}

export class Engine {
  private gpu: GpuContext | null = null;
  private baseSource: ModelSource | null = null;
  model: LlamaModel | null = null;
  info: LoadedModelInfo | null = null;

  async load(source: ModelSource, opts: ModelLoadOptions = {}): Promise<LoadedModelInfo> {
    this.unload();
    const manifest = await loadModelManifest(source);
    this.gpu ??= await createGpuContext();
    this.model = await LlamaModel.load(this.gpu, source, manifest.config, manifest.mode, manifest.cache, opts);
    this.baseSource = source;
    const tokenizerConfig = (await source.readJson('tokenizer_config.json').catch(() => null)) as object | null;
    this.info = {
      config: manifest.config,
      mode: manifest.mode,
      contextLength: this.model.contextLength,
      memory: this.model.memory,
      adapterInfo: this.gpu.adapterInfo,
      hasF16: this.gpu.hasF16,
      hasSubgroups: this.gpu.hasSubgroups,
      tokenizerJson: manifest.tokenizerJson,
      tokenizerConfig,
    };
    return this.info;
  }

  private requireModel(): LlamaModel {
    if (!this.model) throw new EngineError('No model is loaded. Load a model first.');
    return this.model;
  }

  /** Logits of a fresh sequence: the last token's, or every token's with allLogits. */
  async logits(ids: number[], opts: { allLogits?: boolean; keepCache?: boolean } = {}): Promise<Float32Array> {
    const model = this.requireModel();
    if (!opts.keepCache) model.reset();
    return model.forward(ids, opts);
  }

  /** Generate after a prompt, one sequence, from an empty cache. */
  async generate(promptIds: number[], opts: GenerateOptions): Promise<GenerateResult> {
    const model = this.requireModel();
    model.reset(0);
    const stop = new Set(opts.stopTokenIds ?? this.info!.config.eosTokenIds);
    const sampler = new Sampler(opts);
    const maxNew = Math.min(opts.maxNewTokens, model.contextLength - promptIds.length);
    if (maxNew <= 0) throw new EngineError(`The prompt (${promptIds.length} tokens) leaves no room in the ${model.contextLength}-token context.`);
    const ids: number[] = [];
    let reason: StopReason | null = null;
    /** Give the sequence its next token (the same checks on both decoding paths); true while it goes on. */
    const accept = (id: number): boolean => {
      ids.push(id);
      reason = endReason(id, ids.length, maxNew, stop, opts.onToken?.(id, ids.length - 1));
      return reason === null;
    };
    const t0 = performance.now();
    let logits = await model.forward(promptIds);
    const prefillMs = performance.now() - t0;
    const t1 = performance.now();
    if (opts.signal?.aborted) reason = 'cancelled';
    else if (accept(sampler.next(logits))) {
      if (sampler.greedy) {
        // Every later id is chosen on the GPU (model.decodeGreedy), which runs ahead: ids of steps
        // still in flight after the end are dropped.
        await model.decodeGreedy([{ slot: 0, token: ids[0] }], maxNew - 1, (out) => {
          if (reason !== null) return false;
          if (opts.signal?.aborted) reason = 'cancelled';
          else accept(out[0]);
          return reason === null;
        });
        // Slot 0 holds the prompt and every id but the last, as the sampling loop leaves it.
        model.rewind(promptIds.length + ids.length - 1);
      } else {
        while (reason === null) {
          logits = await model.forward([ids[ids.length - 1]]);
          if (opts.signal?.aborted) reason = 'cancelled';
          else accept(sampler.next(logits));
        }
      }
    }
    return {
      ids,
      stopReason: reason ?? 'length',
      prefillTokens: promptIds.length,
      prefillMs,
      decodeTokens: Math.max(ids.length - 1, 0),
      decodeMs: performance.now() - t1,
    };
  }

  /**
   * Make a converted adapter (adapter.json + shards) resident beside the base, after checking it
   * was made for this base. Returns its name; several can be resident, useAdapter picks one.
   */
  async loadAdapter(source: ModelSource): Promise<string> {
    const model = this.requireModel();
    const json = await source.readJson(ADAPTER_MANIFEST_FILE);
    if (json === null) throw new EngineError(`${ADAPTER_MANIFEST_FILE} not found: is this a converted adapter directory? (npm run convert-adapter)`);
    const manifest = parseAdapterManifest(json);
    const [chat, cache] = await Promise.all([
      this.baseSource!.readJson('mlc-chat-config.json'),
      this.baseSource!.readJson('tensor-cache.json').then((c) => c ?? this.baseSource!.readJson('ndarray-cache.json')),
    ]);
    await checkAdapterAgainstBase(manifest, chat, cache);
    const shards = new Map<string, ArrayBuffer>();
    for (const s of manifest.shards) shards.set(s.dataPath, await source.readShard(s.dataPath));
    const tensors = await readAdapterTensors(manifest, shards);
    await model.addAdapter(manifest, tensors);
    return manifest.name;
  }

  /**
   * Give the loaded model another context length and batch without reloading its weights (an
   * evaluation: many short sequences; the playground: one long one). On failure the old shape is
   * kept and the error thrown; if even that cannot be made again, the model is unloaded.
   */
  async configure(opts: { contextLength: number; maxBatch: number | 'auto'; memoryBudget?: number }): Promise<{ contextLength: number; maxBatch: number }> {
    const model = this.requireModel();
    const want = Math.min(Math.floor(opts.contextLength), model.config.contextWindowSize);
    if (model.contextLength === want && model.maxBatch === opts.maxBatch) return { contextLength: want, maxBatch: model.maxBatch };
    let reshaped: Awaited<ReturnType<LlamaModel['reshape']>>;
    try {
      reshaped = await model.reshape(opts);
    } catch (e) {
      // Not even the old shape could be made again: nothing is usable.
      this.unload();
      throw e;
    }
    this.model = reshaped.model;
    this.info = { ...this.info!, contextLength: this.model.contextLength, memory: this.model.memory };
    if (reshaped.error) throw reshaped.error;
    return { contextLength: this.model.contextLength, maxBatch: this.model.maxBatch };
  }

  /** Use a resident adapter for the next generations (null: the base alone). */
  useAdapter(name: string | null) {
    this.requireModel().useAdapter(name);
  }

  unloadAdapter(name: string) {
    this.requireModel().removeAdapter(name);
  }

  /**
   * Generate for many prompts with continuous batching: up to `model.maxBatch` sequences decode
   * together (the weights are read once per step for all of them); a finished sequence frees its
   * slot and the next prompt joins. Each sequence gets exactly the ids it would get alone.
   * Results come back in prompt order; onToken and onDone report as they happen.
   */
  async generateBatch(
    prompts: number[][],
    opts: Omit<GenerateOptions, 'onToken'> & {
      onToken?: (seq: number, id: number, index: number) => boolean | void;
      onDone?: (seq: number, result: GenerateResult) => void;
    },
  ): Promise<GenerateResult[]> {
    const model = this.requireModel();
    const stop = new Set(opts.stopTokenIds ?? this.info!.config.eosTokenIds);
    const results: GenerateResult[] = new Array(prompts.length);
    interface Active {
      seq: number;
      slot: number;
      ids: number[];
      sampler: Sampler;
      maxNew: number;
      logits: Float32Array;
      prefillMs: number;
      decodeStart: number;
    }
    const freeSlots = Array.from({ length: model.maxBatch }, (_, i) => model.maxBatch - 1 - i);
    const active: Active[] = [];
    let next = 0;
    const finish = (a: Active, stopReason: StopReason) => {
      const r: GenerateResult = {
        ids: a.ids,
        stopReason,
        prefillTokens: prompts[a.seq].length,
        prefillMs: a.prefillMs,
        decodeTokens: Math.max(a.ids.length - 1, 0),
        decodeMs: performance.now() - a.decodeStart,
      };
      results[a.seq] = r;
      freeSlots.push(a.slot);
      active.splice(active.indexOf(a), 1);
      opts.onDone?.(a.seq, r);
    };
    /** Give a sequence its next token; true when it has ended. */
    const accept = (a: Active, id: number): boolean => {
      a.ids.push(id);
      const reason = endReason(id, a.ids.length, a.maxNew, stop, opts.onToken?.(a.seq, id, a.ids.length - 1));
      if (reason) finish(a, reason);
      return reason !== null;
    };
    /** Sample the next token of a sequence from its logits; true when it has ended. */
    const advance = (a: Active): boolean => accept(a, a.sampler.next(a.logits));
    const greedy = new Sampler(opts).greedy;
    while (next < prompts.length || active.length > 0) {
      if (opts.signal?.aborted) {
        for (const a of [...active]) finish(a, 'cancelled');
        break;
      }
      // Admit waiting prompts into free slots: prefill each, then take its first token.
      while (freeSlots.length > 0 && next < prompts.length) {
        const seq = next++;
        const prompt = prompts[seq];
        const maxNew = Math.min(opts.maxNewTokens, model.contextLength - prompt.length);
        if (maxNew <= 0) throw new EngineError(`Prompt ${seq} (${prompt.length} tokens) leaves no room in the ${model.contextLength}-token context.`);
        const slot = freeSlots.pop()!;
        model.reset(slot);
        const t0 = performance.now();
        const logits = await model.prefillSlot(slot, prompt);
        const a: Active = { seq, slot, ids: [], sampler: new Sampler({ ...opts, seed: (opts.seed ?? 0) + seq }), maxNew, logits, prefillMs: performance.now() - t0, decodeStart: performance.now() };
        active.push(a);
        advance(a);
      }
      if (active.length === 0) continue;
      const batch = [...active];
      if (greedy) {
        // Greedy: the GPU picks each next token and runs ahead; decode until a sequence ends (its
        // slot then admits a waiting prompt) or the shortest remaining length is reached.
        const steps = Math.min(...batch.map((a) => a.maxNew - a.ids.length));
        let ended = false;
        await model.decodeGreedy(
          batch.map((a) => ({ slot: a.slot, token: a.ids[a.ids.length - 1] })),
          steps,
          (out) => {
            if (opts.signal?.aborted) return false;
            // Steps in flight after a sequence ended still carry valid ids for the others.
            batch.forEach((a, i) => {
              if (active.includes(a) && accept(a, out[i])) ended = true;
            });
            return !ended;
          },
        );
        continue;
      }
      // One decode step for every active sequence.
      const logits = await model.decodeBatch(batch.map((a) => ({ slot: a.slot, token: a.ids[a.ids.length - 1] })));
      batch.forEach((a, i) => {
        a.logits = logits[i];
        advance(a);
      });
    }
    return results;
  }

  unload() {
    this.model?.destroy();
    this.model = null;
    this.baseSource = null;
    this.info = null;
  }

  // ---- Beam search (issue 14): self-contained; the algorithm is in beamSearch.ts ----

  /**
   * Beam search after a prompt, as LLM-Adapters' evaluate.py decodes (transformers' BeamSearchScorer:
   * see beamSearch.ts): the beams are slots 0..numBeams-1 of the batch, decoded together, and a
   * forked beam copies its KV cache rows. Returns the best hypothesis (its stop id last when one
   * ended it) and its length-normalized score.
   */
  async generateBeams(
    promptIds: number[],
    opts: { numBeams: number; maxNewTokens: number; stopTokenIds?: number[]; lengthPenalty?: number; signal?: AbortSignal; onStep?: BeamSearchOptions['onStep'] },
  ): Promise<GenerateResult & { score: number }> {
    const model = this.requireModel();
    const n = opts.numBeams;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new EngineError(`numBeams must be a whole number of at least 1, not ${n}.`);
    if (n > model.maxBatch) {
      throw new EngineError(`${n} beams need ${n} sequences decoded together, but the model was loaded with room for ${model.maxBatch} (maxBatch): use at most ${model.maxBatch} beams, or load or configure it with maxBatch ${n}.`);
    }
    const maxNew = Math.min(opts.maxNewTokens, model.contextLength - promptIds.length);
    if (maxNew <= 0) throw new EngineError(`The prompt (${promptIds.length} tokens) leaves no room in the ${model.contextLength}-token context.`);
    let prefillMs = 0;
    const stepper: BeamStepper = {
      prefill: async (slot, ids) => {
        const t = performance.now();
        model.reset(slot);
        const logits = await model.prefillSlot(slot, ids);
        prefillMs = performance.now() - t;
        return logits;
      },
      fork: (from, to, length) => model.copySlot(from, to, length),
      step: (entries) => model.decodeBatch(entries),
    };
    const t0 = performance.now();
    let r: BeamSearchResult;
    try {
      r = await beamSearch(stepper, promptIds, { numBeams: n, maxNewTokens: maxNew, stopTokenIds: opts.stopTokenIds ?? this.info!.config.eosTokenIds, lengthPenalty: opts.lengthPenalty, signal: opts.signal, onStep: opts.onStep });
    } catch (e) {
      if (e instanceof RangeError) throw new EngineError(e.message);
      throw e;
    }
    // decodeTokens: batched decode steps (each gives every beam one token).
    return { ids: r.ids, score: r.score, stopReason: r.stopReason, prefillTokens: promptIds.length, prefillMs, decodeTokens: r.steps, decodeMs: performance.now() - t0 - prefillMs };
  }
}
