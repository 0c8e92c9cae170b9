/**
 * The page's one engine: which model is loaded, load progress, the current generation, and the
 * last error in words a user can act on. Components read this; only these methods change it.
 */
import { EngineClient, type BatchCallbacks } from '../../engine/client.ts';
import type { LoadProgress } from '../../engine/weights.ts';
import type { ModelLocation, WireGenerateOptions, WireGenerateResult } from '../../engine/protocol.ts';

export type LoadedInfo = Awaited<ReturnType<EngineClient['load']>>;
export type TokenEvent = { tokenId: number; index: number; textDelta: string };

export interface ModelChoice {
  /** Stable id (also used in share links and run records): "tiny/q4f32_1", or a stored model's id. */
  id: string;
  label: string;
  location: ModelLocation;
  /** Shown beside the name (e.g. "random weights: shows the pipeline, not the reasoning"). */
  note?: string;
}

export const TINY_MODES = ['q4f32_1', 'q4f16_1', 'q0f32', 'q0f16'] as const;
export const TINY_NOTE = 'random weights: shows the pipeline, not the reasoning';

/** The offline demo models the dev server / static site serve at models/tiny/<mode>/. */
export function tinyModelChoices(): ModelChoice[] {
  return TINY_MODES.map((mode) => ({
    id: `tiny/${mode}`,
    label: `Tiny demo model (${mode})`,
    note: TINY_NOTE,
    location: { kind: 'http', baseUrl: new URL(`models/tiny/${mode}/`, document.baseURI).href },
  }));
}

/** A user-facing message for anything thrown by the engine or the browser. */
export function describeError(e: unknown): { title: string; message: string } {
  const err = e instanceof Error ? e : new Error(String(e));
  const titles: Record<string, string> = {
    WebGPUUnavailableError: 'WebGPU is not available',
    DeviceLostError: 'The GPU stopped responding',
    GPUOutOfMemoryError: 'Not enough GPU memory',
    ModelFormatError: 'The model files could not be read',
    WorkerError: 'The engine stopped',
    NotStoredError: 'The model is not downloaded',
    AdapterError: 'The adapter does not fit this model',
  };
  return { title: titles[err.name] ?? 'Something went wrong', message: err.message };
}

/** True when this browser has no WebGPU at all (checked before starting the worker). */
export function webgpuMissing(): boolean {
  return typeof navigator === 'undefined' || !('gpu' in navigator);
}

export const NO_WEBGPU_MESSAGE =
  'This browser does not offer WebGPU, which Reasoning Lab needs to run the model on your GPU. ' +
  'Use a recent Chrome or Edge (113 or newer) on desktop, or Safari 26 / Firefox 141 or newer, with hardware acceleration turned on.';

export type EngineStatus = 'idle' | 'loading' | 'ready' | 'error';

/** An adapter as the engine knows it: its name (from adapter.json) and kind (lora, series, parallel). */
export interface AdapterInfo {
  name: string;
  kind: string;
}

/** A stable key for where an adapter is read from (several can be resident at once). */
export function locationKey(location: ModelLocation): string {
  return location.kind === 'http' ? `http:${location.baseUrl}` : `idb:${location.modelId}`;
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
  /** Adapters resident beside the loaded base, by locationKey (cleared when a base loads). */
  resident = $state<Record<string, AdapterInfo>>({});

  private client: EngineClient | null = null;
  private current: { cancel(): void } | null = null;

  readonly ready = $derived(this.status === 'ready');
  readonly loadFraction = $derived(this.progress && this.progress.bytesTotal > 0 ? this.progress.bytesLoaded / this.progress.bytesTotal : 0);

  async load(choice: ModelChoice): Promise<void> {
    this.error = null;
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
      this.info = await this.client.load(choice.location, { onProgress: (p) => (this.progress = p) });
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
   * Make the adapter at `location` resident beside the loaded base (a no-op when it already is).
   * Rejects with the engine's own words when it does not fit the base.
   */
  async loadAdapter(location: ModelLocation): Promise<AdapterInfo> {
    const key = locationKey(location);
    const known = this.resident[key];
    if (known) return known;
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    if (this.busy) throw new Error(`Wait for "${this.busy}" to finish, or stop it.`);
    const client = this.client;
    const info = await client.loadAdapter(location);
    // The base may have been replaced while the adapter loaded: then it is not resident any more.
    if (client === this.client && this.status === 'ready') this.resident[key] = { name: info.name, kind: info.kind };
    return { name: info.name, kind: info.kind };
  }

  /** Use a resident adapter (by name) for the next generations, or none; instant (no reload). */
  async useAdapter(name: string | null): Promise<void> {
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    if ((this.adapter?.name ?? null) === name) return;
    if (this.busy) throw new Error(`Wait for "${this.busy}" to finish, or stop it.`);
    const r = await this.client.useAdapter(name);
    this.adapter = r.name && r.kind ? { name: r.name, kind: r.kind } : null;
  }

  async tokenize(text: string): Promise<number[]> {
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    return this.client.tokenize(text);
  }

  /**
   * Generate with the loaded model. Same shape as EngineClient.generate (what the evaluation
   * runner takes), plus bookkeeping: `busy` while it runs, errors shown in the banner.
   */
  generate = (
    prompt: string | number[],
    options: WireGenerateOptions,
    onToken?: (t: TokenEvent) => void,
    label = 'Generating',
  ): { promise: Promise<WireGenerateResult>; cancel(): void } => this.track(label, (client) => client.generate(prompt, options, onToken));

  /**
   * Generate for many prompts with continuous batching (an evaluation run); same bookkeeping as
   * generate. The worker sizes the batch to the prompts and the memory budget.
   */
  generateBatch = (
    prompts: (string | number[])[],
    options: WireGenerateOptions,
    callbacks: BatchCallbacks & { maxBatch?: number | 'auto' },
    label = 'Generating',
  ): { promise: Promise<{ maxBatch: number }>; cancel(): void } => this.track(label, (client) => client.generateBatch(prompts, options, callbacks));

  /** One generation at a time: `busy` while it runs, its errors shown in the banner. */
  private track<T>(label: string, start: (client: EngineClient) => { promise: Promise<T>; cancel(): void }): { promise: Promise<T>; cancel(): void } {
    if (!this.client || this.status !== 'ready') {
      return { promise: Promise.reject(new Error('Load a model first.')), cancel() {} };
    }
    if (this.busy) return { promise: Promise.reject(new Error(`Wait for "${this.busy}" to finish, or stop it.`)), cancel() {} };
    this.busy = label;
    const handle = start(this.client);
    this.current = handle;
    const promise = handle.promise
      .catch((e: unknown) => {
        const d = describeError(e);
        // The GPU is gone: the model must be loaded again.
        if ((e as Error).name === 'DeviceLostError') this.status = 'error';
        this.error = d;
        throw e;
      })
      .finally(() => {
        if (this.current === handle) this.current = null;
        this.busy = null;
      });
    return { promise, cancel: () => handle.cancel() };
  }

  cancel() {
    this.current?.cancel();
  }

  dismissError() {
    this.error = null;
  }
}

export const engine = new EngineStore();
