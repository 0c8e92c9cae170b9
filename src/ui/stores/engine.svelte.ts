/**
 * The page's one engine: which model is loaded, load progress, the current generation, and the
 * last error in words a user can act on. Components read this; only these methods change it.
 */
import { EngineClient, type BatchCallbacks } from '../../engine/client.ts';
import type { LoadProgress } from '../../engine/weights.ts';
import type { ModelLocation, WireGenerateOptions, WireGenerateResult } from '../../engine/protocol.ts';
import type { AdapterKind } from '../../formats/adapterFormat.ts';
import { describeError } from '../errors.ts';

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

export { describeError };

/** True when this browser has no WebGPU at all (checked before starting the worker). */
export function webgpuMissing(): boolean {
  return typeof navigator === 'undefined' || !('gpu' in navigator);
}

export const NO_WEBGPU_MESSAGE =
  'This browser does not offer WebGPU, which Reasoning Lab needs to run the model on your GPU. ' +
  'Use a recent Chrome or Edge (113 or newer) on desktop, or Safari 26 / Firefox 141 or newer, with hardware acceleration turned on.';

export type EngineStatus = 'idle' | 'loading' | 'ready' | 'error';

/** A resident adapter: the id it was loaded under, its name (from adapter.json) and kind. */
export interface AdapterInfo {
  id: string;
  kind: AdapterKind;
  name: string;
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
  /** Adapters resident beside the loaded base, by the id they were loaded under (cleared when a base loads). */
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
   * Make the adapter at `location` resident beside the loaded base under `id` (a no-op when it
   * already is). Rejects with the engine's own words when it does not fit the base.
   */
  async loadAdapter(location: ModelLocation, id: string): Promise<AdapterInfo> {
    const known = this.resident[id];
    if (known) return known;
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    if (this.busy) throw new Error(`Wait for "${this.busy}" to finish, or stop it.`);
    const client = this.client;
    const loaded = await client.loadAdapter(location);
    // The worker reports one of the three kinds adapter.json allows.
    const info: AdapterInfo = { id, kind: loaded.kind as AdapterKind, name: loaded.name };
    // The base may have been replaced while the adapter loaded: then it is not resident any more.
    if (client === this.client && this.status === 'ready') this.resident[id] = info;
    return info;
  }

  /** Use a resident adapter (by the id it was loaded under) for the next generations, or none; instant (no reload). */
  async useAdapter(id: string | null): Promise<void> {
    if (!this.client || this.status !== 'ready') throw new Error('Load a model first.');
    if ((this.adapter?.id ?? null) === id) return;
    const info = id === null ? null : this.resident[id];
    if (info === undefined) throw new Error(`The adapter "${id}" is not loaded.`);
    if (this.busy) throw new Error(`Wait for "${this.busy}" to finish, or stop it.`);
    // The worker keys its resident adapters by name.
    const r = await this.client.useAdapter(info?.name ?? null);
    this.adapter = info && r.name ? info : null;
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
