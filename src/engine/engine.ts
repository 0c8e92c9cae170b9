/**
 * The ReasoningEngine (reasoningEngine.ts) on this thread, in the spirit of WebLLM's MLCEngine:
 * load with progress callbacks, generate with a token stream, adapters, continuous batching,
 * errors as named classes. No DOM, no UI. The engine worker (worker.ts) is a message pump around
 * one of these; the CLI pages and the test pages use it directly. It owns the text layer: the
 * tokenizer, stream decoding, stop strings and the final text.
 */
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { httpModelSource, loadModelManifest } from '../formats/modelFiles.ts';
import { loadTokenizer, type Tokenizer } from '../formats/tokenizer.ts';
import { ADAPTER_MANIFEST_FILE, checkAdapterAgainstBase, parseAdapterManifest, readAdapterTensors } from '../formats/adapterFormat.ts';
import { createGpuContext, type GpuContext } from './gpu.ts';
import { LlamaModel, type ModelLoadOptions } from './llama.ts';
import { Sampler, type SamplingOptions } from './sampling.ts';
import { EngineError, GPUOutOfMemoryError, PromptTooLongError } from './errors.ts';
import { batchForBudget, formatBinaryBytes, DEFAULT_BATCH_MEMORY } from './memoryPlan.ts';
import { SequenceText } from './sequenceText.ts';
import { sharedPrefixLength } from './sharedPrefix.ts';
import { resolveKvFormat, type KvCacheOption, type KvFormat } from './kvCache.ts';
import { beamSearch, type BeamSearchOptions, type BeamSearchResult, type BeamStepper } from './beamSearch.ts';
import type {
  BatchCallbacks,
  BatchOptions,
  BatchResult,
  BatchShape,
  EngineInfo,
  GenerateCallbacks,
  GenerateOptions,
  GenerateResult,
  LoadedAdapter,
  ModelLocation,
  Prompt,
  ReasoningEngine,
  StopReason,
  TokenEvent,
} from './reasoningEngine.ts';

/** On this thread a token callback may also end its sequence: returning true stops it there (stopReason 'stop'). */
export interface InThreadGenerateCallbacks extends Omit<GenerateCallbacks, 'onToken'> {
  onToken?: (t: TokenEvent) => boolean | void;
}
export interface InThreadBatchCallbacks extends Omit<BatchCallbacks, 'onToken'> {
  onToken?: (seq: number, t: TokenEvent) => boolean | void;
}

/** A generation's ids and timings, before the text layer adds the prompt and text. */
type IdsResult = Omit<GenerateResult, 'promptIds' | 'text'>;

/**
 * Why a sequence ends with the token it has just been given (its `count`-th), or null: the
 * text layer or the caller asked to stop ('stop'), a stop id ('eos'), or it reached its length.
 */
function endReason(id: number, count: number, maxNew: number, stop: Set<number>, saidStop: boolean): StopReason | null {
  if (saidStop) return 'stop';
  if (stop.has(id)) return 'eos';
  return count >= maxNew ? 'length' : null;
}

/** Beams a generation asks for: 1 (greedy or sampling) unless options.numBeams says more. */
function beamCount(options: GenerateOptions): number {
  return options.numBeams ?? 1;
}

/** A location resolved to the files behind it (IndexedDB code is imported only when used). */
async function sourceFor(from: ModelLocation | ModelSource): Promise<ModelSource> {
  if (!('kind' in from)) return from;
  if (from.kind === 'http') return httpModelSource(new URL(from.baseUrl, globalThis.location?.href).href);
  const { idbModelSource } = await import('../storage/source.ts');
  return idbModelSource(from.modelId);
}

/** What load made, beside the model itself. */
interface Loaded {
  model: LlamaModel;
  tokenizer: Tokenizer | null;
  /** The base's mlc-chat-config.json and tensor cache as load read them (for loadAdapter's check). */
  baseChatConfig: unknown;
  baseTensorCache: unknown;
  /** The shape single generations run with (a batch run reshapes; the next generation restores it). */
  home: BatchShape;
  /** Resident adapters by the caller's id. */
  adapters: Map<string, LoadedAdapter>;
  static: Omit<EngineInfo, 'contextLength' | 'maxBatch' | 'memory'>;
}

export class Engine implements ReasoningEngine {
  private gpu: GpuContext | null = null;
  private loaded: Loaded | null = null;

  /** The model as single generations run it, or null when none is loaded. */
  get info(): EngineInfo | null {
    const l = this.loaded;
    if (!l) return null;
    return { ...l.static, ...l.home, memory: l.model.memory };
  }

  /** Load a base model from a location or any ModelSource (replacing the loaded one and its adapters). */
  async load(from: ModelLocation | ModelSource, opts: ModelLoadOptions = {}): Promise<EngineInfo> {
    this.release();
    const source = await sourceFor(from);
    const manifest = await loadModelManifest(source);
    // A lost device never comes back (WebGPU gives no way to revive one): ask for a new one.
    if (this.gpu?.lost) this.gpu = null;
    this.gpu ??= await createGpuContext();
    const model = await LlamaModel.load(this.gpu, source, manifest.config, manifest.mode, manifest.cache, opts);
    try {
      const tokenizer = manifest.tokenizerJson ? await loadTokenizer(manifest.tokenizerJson, manifest.tokenizerConfig ?? undefined) : null;
      this.loaded = {
        model,
        tokenizer,
        baseChatConfig: manifest.chatConfigJson,
        baseTensorCache: manifest.tensorCacheJson,
        home: { contextLength: model.contextLength, maxBatch: model.maxBatch },
        adapters: new Map(),
        static: {
          config: manifest.config,
          mode: manifest.mode,
          kvCache: model.kvFormat,
          adapterInfo: this.gpu.adapterInfo,
          hasF16: this.gpu.hasF16,
          hasSubgroups: this.gpu.hasSubgroups,
          hasTokenizer: tokenizer !== null,
        },
      };
    } catch (e) {
      model.destroy();
      throw e;
    }
    return this.info!;
  }

  private requireLoaded(): Loaded {
    if (!this.loaded) throw new EngineError('No model is loaded. Load a model first.');
    return this.loaded;
  }

  /**
   * The loaded LlamaModel itself, beneath this interface: only for the bench's raw decode timings
   * and the tests' oracle comparisons (dispatch labels, memory plan, KV positions).
   */
  llamaModel(): LlamaModel {
    return this.requireLoaded().model;
  }

  async tokenize(text: string): Promise<number[]> {
    return this.encode(this.requireLoaded(), text);
  }

  private encode(l: Loaded, prompt: Prompt): number[] {
    if (typeof prompt !== 'string') return prompt;
    if (!l.tokenizer) throw new EngineError('This model has no tokenizer: send token ids instead of text.');
    return l.tokenizer.encode(prompt);
  }

  /** Logits of a fresh sequence: the last token's, or every token's with allLogits. */
  async logits(ids: number[], opts: { allLogits?: boolean; keepCache?: boolean } = {}): Promise<Float32Array> {
    const model = this.requireLoaded().model;
    if (!opts.keepCache) model.reset();
    return model.forward(ids, opts);
  }

  /** Generate after a prompt, one sequence, from an empty cache, with the shape single generations have. */
  async generate(prompt: Prompt, options: GenerateOptions, callbacks: InThreadGenerateCallbacks = {}): Promise<GenerateResult> {
    const l = this.requireLoaded();
    const promptIds = this.encode(l, prompt);
    // A batch run may have left the model with a short context: give it the usual one back.
    await this.reshape({ ...l.home });
    if (beamCount(options) > 1) return this.generateByBeams(promptIds, { ...l.home }, options, callbacks);
    const text = new SequenceText(l.tokenizer, promptIds, options.stopStrings);
    const r = await this.generateIds(this.requireLoaded().model, promptIds, options, callbacks.signal, (tokenId, index) => {
      const textDelta = text.push(tokenId);
      return callbacks.onToken?.({ tokenId, index, textDelta }) === true || text.stopped;
    });
    return { promptIds, ...r, text: text.final(r.ids, r.stopReason) };
  }

  private async generateIds(
    model: LlamaModel,
    promptIds: number[],
    opts: GenerateOptions & SamplingOptions,
    signal: AbortSignal | undefined,
    onToken: (id: number, index: number) => boolean,
  ): Promise<IdsResult> {
    model.reset(0);
    const stop = new Set(opts.stopTokenIds ?? model.config.eosTokenIds);
    const sampler = new Sampler(opts);
    const maxNew = Math.min(opts.maxNewTokens, model.contextLength - promptIds.length);
    if (maxNew <= 0) throw new EngineError(`The prompt (${promptIds.length} tokens) leaves no room in the ${model.contextLength}-token context.`);
    const ids: number[] = [];
    let reason: StopReason | null = null;
    /** Give the sequence its next token (the same checks on both decoding paths); true while it goes on. */
    const accept = (id: number): boolean => {
      ids.push(id);
      reason = endReason(id, ids.length, maxNew, stop, onToken(id, ids.length - 1));
      return reason === null;
    };
    const t0 = performance.now();
    let logits = await model.forward(promptIds);
    const prefillMs = performance.now() - t0;
    const t1 = performance.now();
    if (signal?.aborted) reason = 'cancelled';
    else if (accept(sampler.next(logits))) {
      if (sampler.greedy) {
        // Every later id is chosen on the GPU (model.decodeGreedy), which runs ahead: ids of steps
        // still in flight after the end are dropped.
        await model.decodeGreedy([{ slot: 0, token: ids[0] }], maxNew - 1, (out) => {
          if (reason !== null) return false;
          if (signal?.aborted) reason = 'cancelled';
          else accept(out[0]);
          return reason === null;
        });
        // Slot 0 holds the prompt and every id but the last, as the sampling loop leaves it.
        model.rewind(promptIds.length + ids.length - 1);
      } else {
        while (reason === null) {
          logits = await model.forward([ids[ids.length - 1]]);
          if (signal?.aborted) reason = 'cancelled';
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
   * was made for this base (against the base files load read). Several can be resident, keyed by
   * the caller's `id`; useAdapter picks one.
   */
  async loadAdapter(from: ModelLocation | ModelSource, id: string): Promise<LoadedAdapter> {
    const l = this.requireLoaded();
    const source = await sourceFor(from);
    const json = await source.readJson(ADAPTER_MANIFEST_FILE);
    if (json === null) throw new EngineError(`${ADAPTER_MANIFEST_FILE} not found: is this a converted adapter directory? (npm run convert-adapter)`);
    const manifest = parseAdapterManifest(json);
    await checkAdapterAgainstBase(manifest, l.baseChatConfig, l.baseTensorCache);
    const shards = new Map<string, ArrayBuffer>();
    for (const s of manifest.shards) shards.set(s.dataPath, await source.readShard(s.dataPath));
    const tensors = await readAdapterTensors(manifest, shards);
    if (this.loaded !== l) throw new EngineError('The base model was replaced while the adapter loaded: load the adapter again.');
    // The model keys its adapters by name: here by the caller's id, so two adapters that share a name can both be resident.
    await l.model.addAdapter({ ...manifest, name: id }, tensors);
    const adapter: LoadedAdapter = { id, kind: manifest.kind, name: manifest.name };
    l.adapters.set(id, adapter);
    return adapter;
  }

  /** Use a resident adapter (by the id it was loaded with) for the next generations; null: the base alone. */
  async useAdapter(id: string | null): Promise<void> {
    const l = this.requireLoaded();
    if (id !== null && !l.adapters.has(id)) throw new EngineError(`No adapter "${id}" is loaded.`);
    l.model.useAdapter(id);
  }

  async unloadAdapter(id: string): Promise<void> {
    const l = this.requireLoaded();
    l.model.removeAdapter(id);
    l.adapters.delete(id);
  }

  /** The resident adapters, by the ids they were loaded with. */
  get adapters(): LoadedAdapter[] {
    return [...(this.loaded?.adapters.values() ?? [])];
  }

  /**
   * Give the loaded model another context length and batch for single generations, without
   * reloading its weights. On failure the old shape is kept and the error thrown; if even that
   * cannot be made again, the model is unloaded.
   */
  async configure(opts: { contextLength: number; maxBatch: number | 'auto'; memoryBudget?: number }): Promise<BatchShape> {
    const shape = await this.reshape(opts);
    this.requireLoaded().home = shape;
    return shape;
  }

  /**
   * Give the loaded model another KV cache format (the option resolved against its mode) in place:
   * the weights and resident adapters stay, only the cache and activations are made again, at the
   * shape single generations have. A no-op when it has that format already. On failure (the new
   * cache does not fit) the old format is kept and the error thrown.
   */
  async setKvCache(option: KvCacheOption): Promise<EngineInfo> {
    const l = this.requireLoaded();
    const kvFormat = resolveKvFormat(l.static.mode, option);
    if (kvFormat !== l.model.kvFormat) {
      try {
        await this.reshape({ ...l.home, kvFormat });
      } finally {
        // What the model has now, whether or not the switch took (reshape puts the old one back).
        if (this.loaded) this.loaded.static = { ...this.loaded.static, kvCache: this.loaded.model.kvFormat };
      }
    }
    return this.info!;
  }

  /** Reshape the model (weights kept), as configure says; a no-op when it has that shape (and KV format) already. */
  private async reshape(opts: { contextLength: number; maxBatch: number | 'auto'; memoryBudget?: number; kvFormat?: KvFormat }): Promise<BatchShape> {
    const l = this.requireLoaded();
    const want = Math.min(Math.floor(opts.contextLength), l.model.config.contextWindowSize);
    const sameFormat = opts.kvFormat === undefined || opts.kvFormat === l.model.kvFormat;
    if (sameFormat && l.model.contextLength === want && l.model.maxBatch === opts.maxBatch) return { contextLength: want, maxBatch: l.model.maxBatch };
    let reshaped: Awaited<ReturnType<LlamaModel['reshape']>>;
    try {
      reshaped = await l.model.reshape(opts);
    } catch (e) {
      // Not even the old shape could be made again: nothing is usable.
      this.release();
      throw e;
    }
    l.model = reshaped.model;
    if (reshaped.error) throw reshaped.error;
    return { contextLength: l.model.contextLength, maxBatch: l.model.maxBatch };
  }

  /**
   * Generate for many prompts with continuous batching (reasoningEngine.ts): the context is sized
   * to the longest prompt plus maxNewTokens and the batch to options.maxBatch; each sequence gets
   * exactly the ids it would get alone. onToken and onDone report as they happen.
   */
  async generateBatch(prompts: Prompt[], options: BatchOptions, callbacks: InThreadBatchCallbacks = {}): Promise<BatchResult> {
    const l = this.requireLoaded();
    const promptIds = prompts.map((p) => this.encode(l, p));
    const window = l.model.config.contextWindowSize;
    const longest = promptIds.reduce((m, ids) => Math.max(m, ids.length), 0);
    if (longest + 1 > window) throw new PromptTooLongError(longest, window);
    if (beamCount(options) > 1) {
      // Beam search solves one prompt at a time, its beams the batch's slots.
      const shape = await this.reshapeForBeams(Math.min(longest + options.maxNewTokens, window), beamCount(options), options.memoryBudget);
      callbacks.onStart?.(shape);
      const results: GenerateResult[] = [];
      for (const [seq, ids] of promptIds.entries()) {
        if (callbacks.signal?.aborted) break;
        results[seq] = await this.generateByBeams(ids, shape, options, {
          signal: callbacks.signal,
          onToken: (t) => callbacks.onToken?.(seq, t),
        });
        callbacks.onDone?.(seq, results[seq]);
      }
      return { contextLength: l.model.contextLength, maxBatch: l.model.maxBatch, results, sharedPrefixTokens: 0 };
    }
    // Only the context this batch needs, so more sequences fit beside the weights.
    const shape = await this.reshape({
      contextLength: longest + options.maxNewTokens,
      maxBatch: options.maxBatch ?? 'auto',
      memoryBudget: options.memoryBudget ?? DEFAULT_BATCH_MEMORY,
    });
    const model = this.requireLoaded().model;
    const sharedPrefixTokens = sharedPrefixLength(promptIds, model.prefillChunk);
    callbacks.onStart?.({ ...shape, sharedPrefixTokens });
    const texts = promptIds.map((ids) => new SequenceText(l.tokenizer, ids, options.stopStrings));
    const results: GenerateResult[] = new Array(prompts.length);
    await this.generateBatchIds(
      model,
      promptIds,
      sharedPrefixTokens,
      options,
      callbacks.signal,
      (seq, tokenId, index) => {
        const textDelta = texts[seq].push(tokenId);
        return callbacks.onToken?.(seq, { tokenId, index, textDelta }) === true || texts[seq].stopped;
      },
      (seq, r) => {
        results[seq] = { promptIds: promptIds[seq], ...r, text: texts[seq].final(r.ids, r.stopReason) };
        callbacks.onDone?.(seq, results[seq]);
      },
    );
    return { ...shape, results, sharedPrefixTokens };
  }

  /**
   * Continuous batching over token ids: up to `model.maxBatch` sequences decode together; a
   * finished sequence frees its slot and the next prompt joins. The prompts' shared prefix
   * (sharedPrefix.ts) is prefilled once, into the first slot used, and every other sequence
   * starts from a copy of its KV rows, or from the rows its slot still holds.
   */
  private async generateBatchIds(
    model: LlamaModel,
    prompts: number[][],
    prefix: number,
    opts: GenerateOptions & SamplingOptions,
    signal: AbortSignal | undefined,
    onToken: (seq: number, id: number, index: number) => boolean,
    onDone: (seq: number, result: IdsResult) => void,
  ): Promise<void> {
    const stop = new Set(opts.stopTokenIds ?? model.config.eosTokenIds);
    // Slots whose first `prefix` positions hold the shared prefix's KV. Only this call's own
    // prefills count: what a slot held before may come from another adapter or prompt.
    const holdsPrefix: number[] = [];
    interface Active {
      seq: number;
      slot: number;
      ids: number[];
      sampler: Sampler;
      maxNew: number;
      cached: number;
      admitted: number;
      prefillMs: number;
      decodeStart: number;
    }
    const freeSlots = Array.from({ length: model.maxBatch }, (_, i) => model.maxBatch - 1 - i);
    const active: Active[] = [];
    let next = 0;
    const finish = (a: Active, stopReason: StopReason) => {
      const r: IdsResult = {
        ids: a.ids,
        stopReason,
        prefillTokens: prompts[a.seq].length - a.cached,
        cachedPromptTokens: a.cached,
        prefillMs: a.prefillMs,
        decodeTokens: Math.max(a.ids.length - 1, 0),
        decodeMs: performance.now() - a.decodeStart,
      };
      freeSlots.push(a.slot);
      active.splice(active.indexOf(a), 1);
      onDone(a.seq, r);
    };
    /** Give a sequence its next token; true when it has ended. */
    const accept = (a: Active, id: number): boolean => {
      if (a.ids.length === 0) {
        a.decodeStart = performance.now();
        a.prefillMs = a.decodeStart - a.admitted;
      }
      a.ids.push(id);
      const reason = endReason(id, a.ids.length, a.maxNew, stop, onToken(a.seq, id, a.ids.length - 1));
      if (reason) finish(a, reason);
      return reason !== null;
    };
    /**
     * Take the next waiting prompt into a free slot. Its shared prefix is still in the slot's first
     * rows, or is copied from a slot that has it, or (the first time) is prefilled here with the
     * rest of the prompt; returns the sequence and the ids still to prefill.
     */
    const admit = (): { a: Active; rest: number[] } | null => {
      if (freeSlots.length === 0 || next >= prompts.length) return null;
      const seq = next++;
      const prompt = prompts[seq];
      const maxNew = Math.min(opts.maxNewTokens, model.contextLength - prompt.length);
      if (maxNew <= 0) throw new EngineError(`Prompt ${seq} (${prompt.length} tokens) leaves no room in the ${model.contextLength}-token context.`);
      const slot = freeSlots.pop()!;
      const admitted = performance.now();
      let cached = 0;
      if (prefix > 0 && holdsPrefix.includes(slot)) {
        model.rewind(prefix, slot);
        cached = prefix;
      } else if (prefix > 0 && holdsPrefix.length > 0) {
        model.copySlot(holdsPrefix[0], slot, prefix);
        cached = prefix;
      } else {
        model.reset(slot);
      }
      // The prefill (or copy) is queued before any later copy from this slot.
      if (prefix > 0 && !holdsPrefix.includes(slot)) holdsPrefix.push(slot);
      const sampler = new Sampler({ ...opts, seed: (opts.seed ?? 0) + seq });
      const a: Active = { seq, slot, ids: [], cached, sampler, maxNew, admitted, prefillMs: 0, decodeStart: admitted };
      active.push(a);
      return { a, rest: cached ? prompt.slice(cached) : prompt };
    };
    if (new Sampler(opts).greedy) {
      // Greedy: the GPU picks every id and runs ahead (model.decodeGreedyStream). A finished
      // sequence's lane takes the next prompt without waiting for the others; once no prompt is
      // waiting, the stream returns at the next end and goes on with the rest in a smaller batch.
      while (next < prompts.length || active.length > 0) {
        if (signal?.aborted) break;
        const lanes = [...active];
        await model.decodeGreedyStream(
          lanes.map((a) => ({ slot: a.slot, token: a.ids[a.ids.length - 1], steps: a.maxNew - a.ids.length })),
          {
            ids: (pairs) => {
              const ended: number[] = [];
              if (signal?.aborted) return ended;
              for (const { lane, id } of pairs) if (accept(lanes[lane], id)) ended.push(lane);
              return ended;
            },
            refill: (lane) => {
              const joined = admit();
              if (!joined) return null;
              lanes[lane] = joined.a;
              return { slot: joined.a.slot, tokens: joined.rest, steps: joined.a.maxNew - 1 };
            },
            stop: () => !!signal?.aborted,
          },
        );
      }
    } else {
      while (next < prompts.length || active.length > 0) {
        if (signal?.aborted) break;
        // Admit waiting prompts into free slots: prefill each, then sample its first token.
        for (let joined = admit(); joined; joined = admit()) {
          const logits = await model.prefillSlot(joined.a.slot, joined.rest);
          accept(joined.a, joined.a.sampler.next(logits));
        }
        // One decode step for every active sequence.
        const batch = [...active];
        if (batch.length === 0) continue;
        const logits = await model.decodeBatch(batch.map((a) => ({ slot: a.slot, token: a.ids[a.ids.length - 1] })));
        batch.forEach((a, i) => accept(a, a.sampler.next(logits[i])));
      }
    }
    for (const a of [...active]) finish(a, 'cancelled');
  }

  // ---- Beam search (the algorithm is in beamSearch.ts) ----

  /**
   * Give the model `beams` slots of `contextLength` tokens, or say how many beams fit: within
   * `memoryBudget` bytes of KV cache and activations when the caller sets one, else what the GPU
   * could allocate (the model is then left with that many slots).
   */
  private async reshapeForBeams(contextLength: number, beams: number, memoryBudget?: number): Promise<BatchShape> {
    const model = this.requireLoaded().model;
    const refuse = (fit: number, within: string) =>
      new EngineError(
        `${beams} beams need ${beams} sequences of ${contextLength} tokens decoded together, but only ${fit} fit ${within}: use at most ${fit} beams, or a shorter prompt or fewer new tokens.`,
      );
    if (memoryBudget !== undefined && Number.isFinite(memoryBudget)) {
      const fit = batchForBudget(model.config, model.mode, model.kvFormat, contextLength, model.prefillChunk, memoryBudget, beams);
      if (fit < beams) throw refuse(fit, `in the ${formatBinaryBytes(memoryBudget)} of KV cache and activations this run may take`);
    }
    try {
      return await this.reshape({ contextLength, maxBatch: beams });
    } catch (e) {
      if (!(e instanceof GPUOutOfMemoryError) || !this.loaded) throw e;
      // 'auto' halves the batch until the GPU can allocate it: that many beams would fit.
      const fit = await this.reshape({ contextLength, maxBatch: 'auto', memoryBudget: Infinity });
      throw refuse(fit.maxBatch, 'in the GPU memory beside the weights');
    }
  }

  /**
   * One prompt by beam search, with the text layer: the beams decode as slots of one batch (the
   * model is given `shape`, with at least numBeams slots), then the best hypothesis' ids are
   * reported token by token and its text cut at the first stop string, as the greedy path does.
   * As LLM-Adapters' evaluate.py decodes, beams end only at a stop id or the length.
   */
  private async generateByBeams(
    promptIds: number[],
    shape: BatchShape,
    options: GenerateOptions,
    callbacks: InThreadGenerateCallbacks,
  ): Promise<GenerateResult> {
    const l = this.requireLoaded();
    if (l.model.contextLength !== shape.contextLength || l.model.maxBatch < beamCount(options))
      await this.reshapeForBeams(shape.contextLength, Math.max(shape.maxBatch, beamCount(options)));
    const r = await this.generateBeams(promptIds, {
      numBeams: beamCount(options),
      maxNewTokens: options.maxNewTokens,
      stopTokenIds: options.stopTokenIds,
      signal: callbacks.signal,
    });
    const text = new SequenceText(l.tokenizer, promptIds, options.stopStrings);
    r.ids.forEach((tokenId, index) => {
      // The text is built whether or not anyone listens.
      const textDelta = text.push(tokenId);
      callbacks.onToken?.({ tokenId, index, textDelta });
    });
    const { score: _score, ...ids } = r;
    // Stop strings cut the text only: the search itself ran to a stop id or the length.
    return { promptIds, ...ids, text: text.final(r.ids, text.stopped ? 'stop' : r.stopReason) };
  }

  /**
   * Beam search after a prompt, as LLM-Adapters' evaluate.py decodes (transformers' BeamSearchScorer:
   * see beamSearch.ts): the beams are slots 0..numBeams-1 of the batch, decoded together, and a
   * forked beam copies its KV cache rows. Returns the best hypothesis (its stop id last when one
   * ended it) and its length-normalized score. Token ids only (the text layer is generateByBeams).
   */
  async generateBeams(
    promptIds: number[],
    opts: {
      numBeams: number;
      maxNewTokens: number;
      stopTokenIds?: number[];
      lengthPenalty?: number;
      signal?: AbortSignal;
      onStep?: BeamSearchOptions['onStep'];
    },
  ): Promise<IdsResult & { score: number }> {
    const model = this.requireLoaded().model;
    const n = opts.numBeams;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new EngineError(`numBeams must be a whole number of at least 1, not ${n}.`);
    if (n > model.maxBatch) {
      throw new EngineError(
        `${n} beams need ${n} sequences decoded together, but the model was loaded with room for ${model.maxBatch} (maxBatch): use at most ${model.maxBatch} beams, or load or configure it with maxBatch ${n}.`,
      );
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
      r = await beamSearch(stepper, promptIds, {
        numBeams: n,
        maxNewTokens: maxNew,
        stopTokenIds: opts.stopTokenIds ?? model.config.eosTokenIds,
        lengthPenalty: opts.lengthPenalty,
        signal: opts.signal,
        onStep: opts.onStep,
      });
    } catch (e) {
      if (e instanceof RangeError) throw new EngineError(e.message);
      throw e;
    }
    // decodeTokens: batched decode steps (each gives every beam one token).
    return {
      ids: r.ids,
      score: r.score,
      stopReason: r.stopReason,
      prefillTokens: promptIds.length,
      prefillMs,
      decodeTokens: r.steps,
      decodeMs: performance.now() - t0 - prefillMs,
    };
  }

  async unload(): Promise<void> {
    this.release();
  }

  /** Free the model's GPU buffers (the device stays for the next load). */
  private release() {
    this.loaded?.model.destroy();
    this.loaded = null;
  }
}
