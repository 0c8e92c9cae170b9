/// <reference lib="webworker" />
/**
 * The engine's Web Worker: a message pump (protocol.ts) around one in-thread Engine, which owns
 * the GPU device, the model, its tokenizer and adapters, so long GPU waits never block the page.
 */
import { Engine } from './engine.ts';
import type { EngineRequest, EngineResponse } from './protocol.ts';

const engine = new Engine();
/** Generations in progress, by request id (a 'cancel' aborts one). */
const running = new Map<number, AbortController>();

function post(msg: EngineResponse) {
  (self as unknown as DedicatedWorkerGlobalScope).postMessage(msg);
}

/** Run a generation with an abort signal that a 'cancel' for its id triggers. */
async function cancellable(id: number, work: (signal: AbortSignal) => Promise<void>) {
  const abort = new AbortController();
  running.set(id, abort);
  try {
    await work(abort.signal);
  } finally {
    running.delete(id);
  }
}

async function handle(req: EngineRequest) {
  switch (req.type) {
    case 'load': {
      const info = await engine.load(req.location, {
        contextLength: req.contextLength,
        kvCache: req.kvCache,
        onProgress: (progress) => post({ type: 'progress', id: req.id, progress }),
      });
      post({ type: 'loaded', id: req.id, info });
      return;
    }
    case 'setKvCache':
      post({ type: 'loaded', id: req.id, info: await engine.setKvCache(req.kvCache) });
      return;
    case 'tokenize':
      post({ type: 'tokens', id: req.id, ids: await engine.tokenize(req.text) });
      return;
    case 'generate':
      return cancellable(req.id, async (signal) => {
        const result = await engine.generate(req.prompt, req.options, { signal, onToken: (t) => post({ type: 'token', id: req.id, ...t }) });
        post({ type: 'done', id: req.id, result });
      });
    case 'generateBatch':
      return cancellable(req.id, async (signal) => {
        await engine.generateBatch(req.prompts, req.options, {
          signal,
          onStart: (shape) => post({ type: 'batchStart', id: req.id, ...shape }),
          onToken: (seq, t) => post({ type: 'seqToken', id: req.id, seq, ...t }),
          onDone: (seq, result) => post({ type: 'seqDone', id: req.id, seq, result }),
        });
        post({ type: 'batchDone', id: req.id });
      });
    case 'loadAdapter':
      post({ type: 'adapter', id: req.id, adapter: await engine.loadAdapter(req.location, req.adapterId) });
      return;
    case 'useAdapter':
      await engine.useAdapter(req.adapterId);
      post({ type: 'ok', id: req.id });
      return;
    case 'unloadAdapter':
      await engine.unloadAdapter(req.adapterId);
      post({ type: 'ok', id: req.id });
      return;
    case 'cancel':
      running.get(req.target)?.abort();
      return;
    case 'unload':
      await engine.unload();
      post({ type: 'ok', id: req.id });
      return;
  }
}

self.onmessage = (e: MessageEvent<EngineRequest>) => {
  handle(e.data).catch((err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    post({ type: 'error', id: e.data.id, name: error.name, message: error.message });
  });
};
