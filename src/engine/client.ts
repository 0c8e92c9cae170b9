/**
 * The ReasoningEngine over the engine worker (worker.ts), as the app uses it: the same calls as
 * the in-thread Engine, sent as protocol.ts messages; callbacks fire as the worker reports, and
 * errors are re-thrown with the worker's class name and message.
 */
import type { EngineRequest, EngineResponse } from './protocol.ts';
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
  LoadOptions,
  ModelLocation,
  Prompt,
  ReasoningEngine,
  TokenEvent,
} from './reasoningEngine.ts';
import type { LoadProgress } from './weights.ts';
import type { KvCacheOption } from './kvCache.ts';

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export class EngineWorkerError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** A request waiting for its answer, with the callbacks its progress messages go to. */
interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: (p: LoadProgress) => void;
  onToken?: (t: TokenEvent) => void;
  batch?: Omit<BatchCallbacks, 'signal'> & { shape?: BatchShape; results: GenerateResult[] };
}

/** A TokenEvent without the message's own fields. */
function tokenEvent(m: TokenEvent): TokenEvent {
  return { tokenId: m.tokenId, index: m.index, textDelta: m.textDelta };
}

export class EngineClient implements ReasoningEngine {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private loadedInfo: EngineInfo | null = null;

  constructor(private readonly worker: Worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' })) {
    worker.onmessage = (e: MessageEvent<EngineResponse>) => this.receive(e.data);
    worker.onerror = (e) => {
      const err = new EngineWorkerError('WorkerError', `The engine worker failed: ${e.message || 'unknown error'}. Reload the page.`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  /** The model the worker loaded, as its load reported it (null before). */
  get info(): EngineInfo | null {
    return this.loadedInfo;
  }

  private receive(msg: EngineResponse) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    const settle = (v: unknown) => {
      this.pending.delete(msg.id);
      p.resolve(v);
    };
    switch (msg.type) {
      case 'progress':
        return p.onProgress?.(msg.progress);
      case 'token':
        return p.onToken?.(tokenEvent(msg));
      case 'batchStart':
        p.batch!.shape = { maxBatch: msg.maxBatch, contextLength: msg.contextLength, sharedPrefixTokens: msg.sharedPrefixTokens };
        return p.batch!.onStart?.(p.batch!.shape);
      case 'seqToken':
        return p.batch!.onToken?.(msg.seq, tokenEvent(msg));
      case 'seqDone':
        p.batch!.results[msg.seq] = msg.result;
        return p.batch!.onDone?.(msg.seq, msg.result);
      case 'batchDone':
        // The shared prefix came with batchStart's shape.
        return settle({ ...p.batch!.shape!, results: p.batch!.results, sharedPrefixTokens: p.batch!.shape!.sharedPrefixTokens ?? 0 } satisfies BatchResult);
      case 'error':
        this.pending.delete(msg.id);
        return p.reject(new EngineWorkerError(msg.name, msg.message));
      case 'loaded':
        return settle(msg.info);
      case 'tokens':
        return settle(msg.ids);
      case 'done':
        return settle(msg.result);
      case 'adapter':
        return settle(msg.adapter);
      case 'ok':
        return settle(undefined);
    }
  }

  private request<T>(req: WithoutId<EngineRequest>, callbacks: Omit<Pending, 'resolve' | 'reject'> = {}, signal?: AbortSignal): Promise<T> {
    const id = this.nextId++;
    const promise = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...callbacks });
    });
    this.worker.postMessage({ ...req, id } as EngineRequest);
    if (signal) {
      // The worker ends the generation after its current token; the answer still comes back.
      const cancel = () => this.worker.postMessage({ type: 'cancel', id: this.nextId++, target: id } satisfies EngineRequest);
      if (signal.aborted) cancel();
      else {
        signal.addEventListener('abort', cancel, { once: true });
        const done = () => signal.removeEventListener('abort', cancel);
        promise.then(done, done);
      }
    }
    return promise;
  }

  async load(location: ModelLocation, opts: LoadOptions = {}): Promise<EngineInfo> {
    this.loadedInfo = null;
    const info = await this.request<EngineInfo>(
      { type: 'load', location, contextLength: opts.contextLength, kvCache: opts.kvCache },
      { onProgress: opts.onProgress },
    );
    this.loadedInfo = info;
    return info;
  }

  async setKvCache(option: KvCacheOption): Promise<EngineInfo> {
    const info = await this.request<EngineInfo>({ type: 'setKvCache', kvCache: option });
    this.loadedInfo = info;
    return info;
  }

  tokenize(text: string): Promise<number[]> {
    return this.request<number[]>({ type: 'tokenize', text });
  }

  generate(prompt: Prompt, options: GenerateOptions, callbacks: GenerateCallbacks = {}): Promise<GenerateResult> {
    return this.request<GenerateResult>({ type: 'generate', prompt, options }, { onToken: callbacks.onToken }, callbacks.signal);
  }

  generateBatch(prompts: Prompt[], options: BatchOptions, callbacks: BatchCallbacks = {}): Promise<BatchResult> {
    const { signal, ...batch } = callbacks;
    return this.request<BatchResult>({ type: 'generateBatch', prompts, options }, { batch: { ...batch, results: new Array(prompts.length) } }, signal);
  }

  loadAdapter(location: ModelLocation, id: string): Promise<LoadedAdapter> {
    return this.request<LoadedAdapter>({ type: 'loadAdapter', location, adapterId: id });
  }

  useAdapter(id: string | null): Promise<void> {
    return this.request<void>({ type: 'useAdapter', adapterId: id });
  }

  unloadAdapter(id: string): Promise<void> {
    return this.request<void>({ type: 'unloadAdapter', adapterId: id });
  }

  async unload(): Promise<void> {
    await this.request<void>({ type: 'unload' });
    this.loadedInfo = null;
  }

  /** Stop the worker; whatever still waits for it fails now instead of waiting forever. */
  terminate() {
    this.worker.terminate();
    const err = new EngineWorkerError('WorkerError', 'The engine worker was stopped.');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
