/// <reference lib="webworker" />
/**
 * The engine's Web Worker: owns the GPU device, the loaded model and its tokenizer, so long
 * GPU waits never block the page. Speaks protocol.ts.
 */
import { Engine } from './engine.ts';
import type { EngineRequest, EngineResponse, ModelLocation } from './protocol.ts';
import { httpModelSource } from '../formats/modelFiles.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { loadTokenizer, type Tokenizer } from '../formats/tokenizer.ts';
import { EngineError } from './errors.ts';

const engine = new Engine();
let tokenizer: Tokenizer | null = null;
const running = new Map<number, AbortController>();

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
      const info = await engine.load(await sourceFor(req.location), {
        contextLength: req.contextLength,
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
      let promptIds: number[];
      if (typeof req.prompt === 'string') {
        if (!tokenizer) throw new EngineError('This model has no tokenizer: send token ids instead of text.');
        promptIds = tokenizer.encode(req.prompt);
      } else promptIds = req.prompt;
      const abort = new AbortController();
      running.set(req.id, abort);
      const decoder = tokenizer?.streamDecoder(promptIds.slice(-4));
      const stops = req.options.stopStrings?.filter((s) => s.length > 0) ?? [];
      let text = '';
      try {
        const result = await engine.generate(promptIds, {
          ...req.options,
          signal: abort.signal,
          onToken: (tokenId, index) => {
            const textDelta = decoder ? decoder.push(tokenId) : '';
            text += textDelta;
            post({ type: 'token', id: req.id, tokenId, index, textDelta });
            return stops.some((s) => text.includes(s));
          },
        });
        if (decoder) text += decoder.flush();
        let finalText: string | null = decoder ? text : null;
        if (finalText !== null && result.stopReason === 'stop') {
          const cut = Math.min(...stops.map((s) => finalText!.indexOf(s)).filter((i) => i >= 0));
          finalText = finalText.slice(0, cut);
        }
        if (finalText !== null && result.stopReason === 'eos') finalText = tokenizer!.decode(result.ids);
        post({ type: 'done', id: req.id, result: { ...result, promptIds, text: finalText } });
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
