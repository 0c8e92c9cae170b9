/// <reference lib="webworker" />
/**
 * The engine's Web Worker: owns the GPU device, the loaded model and its tokenizer, so long
 * GPU waits never block the page. Speaks protocol.ts.
 */
import { Engine, type GenerateResult } from './engine.ts';
import { DEFAULT_CONTEXT } from './llama.ts';
import type { EngineRequest, EngineResponse, ModelLocation } from './protocol.ts';
import { httpModelSource } from '../formats/modelFiles.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { loadTokenizer, type Tokenizer } from '../formats/tokenizer.ts';
import { EngineError } from './errors.ts';

const engine = new Engine();
let tokenizer: Tokenizer | null = null;
const running = new Map<number, AbortController>();
/** The context the model was loaded with (single generations get it back after a batch run). */
let loadedContext = DEFAULT_CONTEXT;
/** KV cache + activations a batch run may take when the page does not say (WebGPU cannot tell what is free). */
const DEFAULT_BATCH_MEMORY = 2 * 2 ** 30;

function encodePrompt(prompt: string | number[]): number[] {
  if (typeof prompt !== 'string') return prompt;
  if (!tokenizer) throw new EngineError('This model has no tokenizer: send token ids instead of text.');
  return tokenizer.encode(prompt);
}

/**
 * One sequence's text as its tokens arrive: incremental decoding, the stop strings seen so far,
 * and the final text (cut before the first stop string; the exact decode after an EOS).
 */
class SequenceText {
  private readonly decoder;
  private readonly stops: string[];
  private text = '';
  constructor(promptIds: number[], stopStrings: string[] = []) {
    this.decoder = tokenizer?.streamDecoder(promptIds.slice(-4)) ?? null;
    this.stops = stopStrings.filter((s) => s.length > 0);
  }
  push(tokenId: number): string {
    const delta = this.decoder ? this.decoder.push(tokenId) : '';
    this.text += delta;
    return delta;
  }
  get stopped(): boolean {
    return this.stops.some((s) => this.text.includes(s));
  }
  final(result: GenerateResult): string | null {
    if (!this.decoder) return null;
    this.text += this.decoder.flush();
    if (result.stopReason === 'eos') return tokenizer!.decode(result.ids);
    if (result.stopReason !== 'stop') return this.text;
    return this.text.slice(0, Math.min(...this.stops.map((s) => this.text.indexOf(s)).filter((i) => i >= 0)));
  }
}

function post(msg: EngineResponse) {
  (self as unknown as DedicatedWorkerGlobalScope).postMessage(msg);
}

async function sourceFor(location: ModelLocation): Promise<ModelSource> {
  if (location.kind === 'http') return httpModelSource(new URL(location.baseUrl, self.location.href).href);
  const { idbModelSource } = await import('../storage/source.ts');
  return idbModelSource(location.modelId);
}

async function handle(req: EngineRequest) {
  switch (req.type) {
    case 'load': {
      tokenizer = null;
      loadedContext = req.contextLength ?? DEFAULT_CONTEXT;
      const info = await engine.load(await sourceFor(req.location), {
        contextLength: loadedContext,
        onProgress: (progress) => post({ type: 'progress', id: req.id, progress }),
      });
      if (info.tokenizerJson) tokenizer = await loadTokenizer(info.tokenizerJson, info.tokenizerConfig ?? undefined);
      const { tokenizerJson: _t, tokenizerConfig: _c, ...rest } = info;
      post({ type: 'loaded', id: req.id, info: { ...rest, hasTokenizer: tokenizer !== null } });
      return;
    }
    case 'tokenize': {
      if (!tokenizer) throw new EngineError('This model has no tokenizer.');
      post({ type: 'tokens', id: req.id, ids: tokenizer.encode(req.text) });
      return;
    }
    case 'generate': {
      const promptIds = encodePrompt(req.prompt);
      const abort = new AbortController();
      running.set(req.id, abort);
      // A batch run may have left the model with a short context: give it the loaded one back.
      await engine.configure({ contextLength: loadedContext, maxBatch: 1 });
      const text = new SequenceText(promptIds, req.options.stopStrings);
      try {
        const result = await engine.generate(promptIds, {
          ...req.options,
          signal: abort.signal,
          onToken: (tokenId, index) => {
            post({ type: 'token', id: req.id, tokenId, index, textDelta: text.push(tokenId) });
            return text.stopped;
          },
        });
        post({ type: 'done', id: req.id, result: { ...result, promptIds, text: text.final(result) } });
      } finally {
        running.delete(req.id);
      }
      return;
    }
    case 'generateBatch': {
      const prompts = req.prompts.map(encodePrompt);
      const window = engine.info?.config.contextWindowSize ?? 0;
      const longest = prompts.reduce((m, ids) => Math.max(m, ids.length), 0);
      if (longest + 1 > window) throw new EngineError(`The longest prompt has ${longest} tokens, more than this model's ${window}-token context window: choose a shorter prompt.`);
      const abort = new AbortController();
      running.set(req.id, abort);
      try {
        // Only the context this batch needs, so more sequences fit beside the weights.
        const shape = await engine.configure({
          contextLength: longest + req.options.maxNewTokens,
          maxBatch: req.maxBatch ?? 'auto',
          memoryBudget: req.memoryBudget ?? DEFAULT_BATCH_MEMORY,
        });
        post({ type: 'batchStart', id: req.id, ...shape });
        const texts = prompts.map((ids) => new SequenceText(ids, req.options.stopStrings));
        await engine.generateBatch(prompts, {
          ...req.options,
          signal: abort.signal,
          onToken: (seq, tokenId, index) => {
            post({ type: 'seqToken', id: req.id, seq, tokenId, index, textDelta: texts[seq].push(tokenId) });
            return texts[seq].stopped;
          },
          onDone: (seq, result) => post({ type: 'seqDone', id: req.id, seq, result: { ...result, promptIds: prompts[seq], text: texts[seq].final(result) } }),
        });
        post({ type: 'batchDone', id: req.id, maxBatch: shape.maxBatch });
      } finally {
        running.delete(req.id);
      }
      return;
    }
    case 'loadAdapter': {
      const name = await engine.loadAdapter(await sourceFor(req.location));
      post({ type: 'adapter', id: req.id, name, kind: engine.model!.adapterKind(name) });
      return;
    }
    case 'useAdapter': {
      engine.useAdapter(req.name);
      post({ type: 'adapter', id: req.id, name: req.name, kind: req.name ? engine.model!.adapterKind(req.name) : null });
      return;
    }
    case 'cancel':
      running.get(req.target)?.abort();
      return;
    case 'unload':
      engine.unload();
      tokenizer = null;
      post({ type: 'unloaded', id: req.id });
      return;
  }
}

self.onmessage = (e: MessageEvent<EngineRequest>) => {
  handle(e.data).catch((err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    post({ type: 'error', id: e.data.id, name: error.name, message: error.message });
  });
};
