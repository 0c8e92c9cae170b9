/**
 * The page's one engine: which model is loaded, load progress, the current generation, and the
 * last error in words a user can act on. Components read this; only these methods change it.
 */
import { EngineClient } from '../../engine/client.ts';
import type { LoadProgress } from '../../engine/weights.ts';
import { resolveKvFormat, type KvCacheOption } from '../../engine/kvCache.ts';
import type {
  BatchCallbacks,
  BatchOptions,
  BatchResult,
  EngineInfo,
  GenerateCallbacks,
  GenerateOptions,
  GenerateResult,
  LoadedAdapter,
  ModelLocation,
  Prompt,
} from '../../engine/reasoningEngine.ts';
import { describeError } from '../errors.ts';

export type LoadedInfo = EngineInfo;
export type { TokenEvent } from '../../engine/reasoningEngine.ts';

export interface ModelChoice {
  /** The model's catalog manifest id (also used in share links and run records), e.g. "tiny-q4f32_1". */
  id: string;
  label: string;
  location: ModelLocation;
  /** Shown beside the name (e.g. "random weights: shows the pipeline, not the reasoning"). */
  note?: string;
}

export { describeError };

/** True when this browser has no WebGPU at all (checked before starting the worker). */
export function webgpuMissing(): boolean {
  return typeof navigator === 'undefined' || !('gpu' in navigator);
}

export const NO_WEBGPU_MESSAGE =
  'This browser does not offer WebGPU, which Reasoning Lab needs to run the model on your GPU. ' +
  'Use a recent Chrome or Edge (113 or newer) on desktop, or Safari 26 / Firefox 141 or newer, with hardware acceleration turned on.';

export type EngineStatus = 'idle' | 'loading' | 'ready' | 'error';

/** An adapter as the engine knows it: the id it was loaded under, its kind, and its name (from adapter.json). */
export type AdapterInfo = LoadedAdapter;

/** What the store's generations also take: the label `busy` shows while one runs. */
export interface Labelled {
  label?: string;
}

class EngineStore {
  status = $state<EngineStatus>('idle');
  model = $state<ModelChoice | null>(null);
  info = $state<LoadedInfo | null>(null);
  progress = $state<LoadProgress | null>(null);
  error = $state<{ title: string; message: string } | null>(null);
  /** Label of what is generating now (one generation at a time on one GPU). */
  busy = $state<string | null>(null);
  /** The adapter the next generation uses (null: the base model alone). */
  adapter = $state<AdapterInfo | null>(null);
  /** Adapters resident beside the loaded base, by the id they were loaded under (cleared when a base loads). */
  resident = $state<Record<string, AdapterInfo>>({});
  /**
   * The KV cache format chosen ('auto': the mode's own, engine/kvCache.ts): the next load asks for
   * it, and chooseKvCache switches a loaded model to it. f16 halves the cache of an f32 mode, so
   * about twice the batch fits an accuracy run; f32 keeps the greedy ids the independent f32
   * implementations give.
   */
  kvCache = $state<KvCacheOption>('auto');
  /** The model whose GPU device was lost (the error banner offers to load it again), or null. */
  lostModel = $state<ModelChoice | null>(null);
  /** The cache format the lost model ran with: "Reload the model" brings back exactly what was loaded. */
  private lostKvCache: KvCacheOption = 'auto';

  private client: EngineClient | null = null;
  /** Aborts the generation running now. */
  private current: AbortController | null = null;

  readonly ready = $derived(this.status === 'ready');
  /** The model loaded now runs with the cache format chosen now (false while a switch is made, or after one failed). */
  readonly kvCacheCurrent = $derived(this.info !== null && resolveKvFormat(this.info.mode, this.kvCache) === this.info.kvCache);
  readonly loadFraction = $derived(this.progress && this.progress.bytesTotal > 0 ? this.progress.bytesLoaded / this.progress.bytesTotal : 0);

  async load(choice: ModelChoice): Promise<void> {
    this.error = null;
    this.lostModel = null;
    if (webgpuMissing()) {
      this.status = 'error';
      this.error = { title: 'WebGPU is not available', message: NO_WEBGPU_MESSAGE };
      return;
    }
    this.cancel();
    this.status = 'loading';
    this.model = choice;
    this.info = null;
    this.progress = null;
    // A new base drops every adapter of the old one (the worker replaces its model).
    this.adapter = null;
    this.resident = {};
    try {
      this.client ??= new EngineClient();
      this.info = await this.client.load(choice.location, { onProgress: (p) => (this.progress = p), kvCache: this.kvCache });
      this.status = 'ready';
    } catch (e) {
      this.status = 'error';
      this.error = describeError(e);
      // A worker that failed may be in any state: start a fresh one next time.
      this.client?.terminate();
      this.client = null;
    }
  }

  /**
   * Choose the KV cache format. A loaded model switches to it in place: its weights and adapters
   * stay, only the cache is made again (for the 7B a reallocation, not a 3.8 GB read from
   * IndexedDB). While it switches, `busy` says so and generations wait. If the new cache does not
   * fit, the model keeps its format, the banner says why, and Load model tries a fresh load.
   */
  async chooseKvCache(option: KvCacheOption): Promise<void> {
    this.kvCache = option;
    if (!this.client || this.status !== 'ready' || this.kvCacheCurrent) return;
    if (this.busy) return void (this.error = describeError(new Error(`Wait for "${this.busy}" to finish, or stop it, before changing the KV cache.`)));
    this.error = null;
    this.busy = `Switching the KV cache to ${resolveKvFormat(this.info!.mode, option)}`;
    const client = this.client;
    try {
      const info = await client.setKvCache(option);
      if (client === this.client && this.status === 'ready') this.info = info;
    } catch (e) {
      if ((e as Error).name === 'DeviceLostError') this.dropLostDevice();
      this.error = describeError(e);
    } finally {
      this.busy = null;
    }
  }

  /**
   * Make the adapter at `location` resident beside the loaded base under `id` (the caller's key:
   * a manifest id or a stored location's key); a no-op when that id already is. Rejects with the
   * engine's own words when it does not fit the base.
   */
  async loadAdapter(location: ModelLocation, id: string): Promise<AdapterInfo> {
    const known = this.resident[id];
    if (known) return known;
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    if (this.busy) throw new Error(`Wait for "${this.busy}" to finish, or stop it.`);
    const client = this.client;
    const info = await client.loadAdapter(location, id);
    // The base may have been replaced while the adapter loaded: then it is not resident any more.
    if (client === this.client && this.status === 'ready') this.resident[id] = info;
    return info;
  }

  /** Use a resident adapter (by the id it was loaded under) for the next generations, or none; instant (no reload). */
  async useAdapter(id: string | null): Promise<void> {
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    if ((this.adapter?.id ?? null) === id) return;
    if (id !== null && !this.resident[id]) throw new Error(`The adapter "${id}" is not loaded: load it first.`);
    if (this.busy) throw new Error(`Wait for "${this.busy}" to finish, or stop it.`);
    await this.client.useAdapter(id);
    this.adapter = id === null ? null : this.resident[id];
  }

  async tokenize(text: string): Promise<number[]> {
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    return this.client.tokenize(text);
  }

  /**
   * Generate with the loaded model: ReasoningEngine.generate (what the evaluation runner takes),
   * plus bookkeeping: `busy` (with `label`) while it runs, errors shown in the banner.
   */
  generate = (prompt: Prompt, options: GenerateOptions, callbacks: GenerateCallbacks & Labelled = {}): Promise<GenerateResult> =>
    this.track(callbacks, (client, signal) => client.generate(prompt, options, { ...callbacks, signal }));

  /**
   * Generate for many prompts with continuous batching (an evaluation run); same bookkeeping as
   * generate. The engine sizes the batch to the prompts and the memory budget.
   */
  generateBatch = (prompts: Prompt[], options: BatchOptions, callbacks: BatchCallbacks & Labelled = {}): Promise<BatchResult> =>
    this.track(callbacks, (client, signal) => client.generateBatch(prompts, options, { ...callbacks, signal }));

  /** One generation at a time: `busy` while it runs, its errors shown in the banner; cancel() or the caller's signal stops it. */
  private track<T>(callbacks: { signal?: AbortSignal; label?: string }, start: (client: EngineClient, signal: AbortSignal) => Promise<T>): Promise<T> {
    if (!this.client || this.status !== 'ready') return Promise.reject(new Error('Load a model first.'));
    if (this.busy) return Promise.reject(new Error(`Wait for "${this.busy}" to finish, or stop it.`));
    this.busy = callbacks.label ?? 'Generating';
    const abort = new AbortController();
    const outer = callbacks.signal;
    const onAbort = () => abort.abort();
    if (outer?.aborted) onAbort();
    outer?.addEventListener('abort', onAbort, { once: true });
    this.current = abort;
    return start(this.client, abort.signal)
      .catch((e: unknown) => {
        const d = describeError(e);
        if ((e as Error).name === 'DeviceLostError') this.dropLostDevice();
        this.error = d;
        throw e;
      })
      .finally(() => {
        outer?.removeEventListener('abort', onAbort);
        if (this.current === abort) this.current = null;
        this.busy = null;
      });
  }

  /**
   * The GPU is gone and takes the model with it: a fresh worker (and in it a fresh device) serves
   * the next load, so "Reload the model" starts clean instead of reusing anything of the lost one.
   */
  private dropLostDevice() {
    this.status = 'error';
    this.lostModel = this.model;
    this.lostKvCache = this.info?.kvCache ?? this.kvCache;
    this.info = null;
    this.adapter = null;
    this.resident = {};
    this.client?.terminate();
    this.client = null;
  }

  /** Load again the model whose device was lost (the banner's one-click recovery). */
  reloadLost(): Promise<void> {
    // A plain copy: the worker cannot be sent the state proxy.
    if (!this.lostModel) return Promise.resolve();
    this.kvCache = this.lostKvCache;
    return this.load($state.snapshot(this.lostModel));
  }

  /** Stop the generation running now (it ends after its current token). */
  cancel() {
    this.current?.abort();
  }

  dismissError() {
    this.error = null;
  }
}

export const engine = new EngineStore();
