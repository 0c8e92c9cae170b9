/**
 * The app's handle on the engine worker: promise-returning calls with progress and token
 * callbacks, and errors re-thrown with the worker's class name and message.
 */
import type { EngineRequest, EngineResponse, ModelLocation, WireGenerateOptions, WireGenerateResult } from './protocol.ts';
import type { LoadProgress } from './weights.ts';

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type LoadedInfo = Extract<EngineResponse, { type: 'loaded' }>['info'];

export class EngineWorkerError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: (p: LoadProgress) => void;
  onToken?: (t: { tokenId: number; index: number; textDelta: string }) => void;
  batch?: BatchCallbacks;
}

/** What a batch generation reports as it goes (sequence numbers index the prompts). */
export interface BatchCallbacks {
  onStart?: (shape: { maxBatch: number; contextLength: number }) => void;
  onToken?: (seq: number, t: { tokenId: number; index: number; textDelta: string }) => void;
  onDone?: (seq: number, result: WireGenerateResult) => void;
}

export class EngineClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly worker: Worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' })) {
    worker.onmessage = (e: MessageEvent<EngineResponse>) => this.receive(e.data);
    worker.onerror = (e) => {
      const err = new EngineWorkerError('WorkerError', `The engine worker failed: ${e.message || 'unknown error'}. Reload the page.`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  private receive(msg: EngineResponse) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    switch (msg.type) {
      case 'progress':
        p.onProgress?.(msg.progress);
        return;
      case 'token':
        p.onToken?.(msg);
        return;
      case 'batchStart':
        p.batch?.onStart?.(msg);
        return;
      case 'seqToken':
        p.batch?.onToken?.(msg.seq, msg);
        return;
      case 'seqDone':
        p.batch?.onDone?.(msg.seq, msg.result);
        return;
      case 'batchDone':
        this.pending.delete(msg.id);
        p.resolve({ maxBatch: msg.maxBatch });
        return;
      case 'error':
        this.pending.delete(msg.id);
        p.reject(new EngineWorkerError(msg.name, msg.message));
        return;
      case 'loaded':
        this.pending.delete(msg.id);
        p.resolve(msg.info);
        return;
      case 'tokens':
        this.pending.delete(msg.id);
        p.resolve(msg.ids);
        return;
      case 'done':
        this.pending.delete(msg.id);
        p.resolve(msg.result);
        return;
      case 'adapter':
        this.pending.delete(msg.id);
        p.resolve({ name: msg.name, kind: msg.kind });
        return;
      case 'unloaded':
        this.pending.delete(msg.id);
        p.resolve(undefined);
        return;
    }
  }

  private request<T>(req: WithoutId<EngineRequest>, callbacks: Omit<Pending, 'resolve' | 'reject'> = {}): { id: number; promise: Promise<T> } {
    const id = this.nextId++;
    const promise = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...callbacks });
    });
    this.worker.postMessage({ ...req, id } as EngineRequest);
    return { id, promise };
  }

  load(location: ModelLocation, opts: { contextLength?: number; onProgress?: (p: LoadProgress) => void } = {}): Promise<LoadedInfo> {
    return this.request<LoadedInfo>({ type: 'load', location, contextLength: opts.contextLength }, { onProgress: opts.onProgress }).promise;
  }

  tokenize(text: string): Promise<number[]> {
    return this.request<number[]>({ type: 'tokenize', text }).promise;
  }

  /** Start a generation; `cancel()` stops it after the current token (the promise then resolves with stopReason 'cancelled'). */
  generate(
    prompt: string | number[],
    options: WireGenerateOptions,
    onToken?: (t: { tokenId: number; index: number; textDelta: string }) => void,
  ): { promise: Promise<WireGenerateResult>; cancel(): void } {
    const { id, promise } = this.request<WireGenerateResult>({ type: 'generate', prompt, options }, { onToken });
    return { promise, cancel: () => this.worker.postMessage({ type: 'cancel', id: this.nextId++, target: id } satisfies EngineRequest) };
  }

  /**
   * Generate for many prompts with continuous batching (greedy or sampled, as `options` say);
   * each sequence reports its tokens and result through `callbacks` as it goes. `cancel()` ends
   * the sequences in flight (reported with stopReason 'cancelled') and starts no more.
   */
  generateBatch(
    prompts: (string | number[])[],
    options: WireGenerateOptions,
    callbacks: BatchCallbacks & { maxBatch?: number | 'auto'; memoryBudget?: number } = {},
  ): { promise: Promise<{ maxBatch: number }>; cancel(): void } {
    const { maxBatch, memoryBudget, ...batch } = callbacks;
    const { id, promise } = this.request<{ maxBatch: number }>({ type: 'generateBatch', prompts, options, maxBatch, memoryBudget }, { batch });
    return { promise, cancel: () => this.worker.postMessage({ type: 'cancel', id: this.nextId++, target: id } satisfies EngineRequest) };
  }

  /** Make a converted adapter resident beside the base (checked against it); resolves with its name and kind. */
  loadAdapter(location: ModelLocation): Promise<{ name: string; kind: string }> {
    return this.request<{ name: string; kind: string }>({ type: 'loadAdapter', location }).promise;
  }

  /** Use a resident adapter (by name) for the next generations, or none (null). */
  useAdapter(name: string | null): Promise<{ name: string | null; kind: string | null }> {
    return this.request<{ name: string | null; kind: string | null }>({ type: 'useAdapter', name }).promise;
  }

  unload(): Promise<void> {
    return this.request<void>({ type: 'unload' }).promise;
  }

  terminate() {
    this.worker.terminate();
  }
}
