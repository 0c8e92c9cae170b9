/**
 * Which engine the Generate view runs: ours (Reasoning Lab: adapters, every model) or WebLLM
 * (the base model with hard prompts only). WebLLM's state lives here; ours stays in `engine`.
 * The WebLLM package itself is imported only when a WebLLM model is loaded (engine/webllm.ts).
 */
import { engine, type TokenEvent } from './engine.svelte.ts';
import { WEBLLM_APP_MODELS, WEBLLM_MODEL_FOR_MANIFEST, loadWebLLM, generateWebLLM } from '../../engine/webllm.ts';
import type { WireGenerateOptions, WireGenerateResult } from '../../engine/protocol.ts';
import type { StopReason } from '../../engine/engine.ts';

export type EngineKind = 'ours' | 'webllm';

export const WEBLLM_ADAPTERS_OFF =
  'Adapters are off with WebLLM: it runs MLC’s compiled base model as published, with hard prompts only. ' +
  'Choose the Reasoning Lab engine to use LoRA, series or parallel adapters.';

/** The WebLLM ids offered in the app, base models first (the ones the paper's prompts were run on). */
export const WEBLLM_CHOICES = WEBLLM_APP_MODELS.map((id) => ({
  id,
  label: `${id}${/chat/.test(id) ? ' (chat-tuned)' : ' (base)'}${/q4f16/.test(id) ? ', needs shader-f16' : ''}`,
}));

class EngineChoiceStore {
  kind = $state<EngineKind>('ours');
  /** The WebLLM model to load (defaults to the base model that needs no shader-f16). */
  modelId = $state(WEBLLM_MODEL_FOR_MANIFEST['llama-2-7b-q4f32_1']);
  status = $state<'idle' | 'loading' | 'ready' | 'error'>('idle');
  /** The WebLLM model loaded now. */
  loaded = $state<string | null>(null);
  progress = $state<{ fraction: number; text: string } | null>(null);
  error = $state<{ title: string; message: string } | null>(null);
  private generating = $state<string | null>(null);
  private abort: AbortController | null = null;

  readonly webllm = $derived(this.kind === 'webllm');
  /** The chosen engine can generate now. */
  readonly ready = $derived(this.kind === 'webllm' ? this.status === 'ready' : engine.ready);
  /** What the chosen engine is busy with, or null. */
  readonly busy = $derived(this.kind === 'webllm' ? this.generating : engine.busy);

  async load(): Promise<void> {
    const id = this.modelId;
    this.error = null;
    this.status = 'loading';
    this.progress = null;
    this.loaded = null;
    this.abort = new AbortController();
    try {
      await loadWebLLM(id, { onProgress: (p) => (this.progress = p), signal: this.abort.signal });
      this.loaded = id;
      this.status = 'ready';
    } catch (e) {
      this.status = 'error';
      const err = e as Error;
      this.error = { title: 'WebLLM is not available', message: err.message || String(e) };
    } finally {
      this.abort = null;
    }
  }

  /** Stop loading (a download in progress). */
  stopLoading() {
    this.abort?.abort();
  }

  /** Same shape as engine.generate, so the Generate view calls either. Text prompts only. */
  generate = (
    prompt: string | number[],
    options: WireGenerateOptions,
    onToken?: (t: TokenEvent) => void,
    label = 'Generating',
  ): { promise: Promise<WireGenerateResult>; cancel(): void } => {
    if (this.kind !== 'webllm') return engine.generate(prompt, options, onToken, label);
    if (this.status !== 'ready') return { promise: Promise.reject(new Error('Load a WebLLM model first.')), cancel() {} };
    if (this.generating) return { promise: Promise.reject(new Error(`Wait for "${this.generating}" to finish, or stop it.`)), cancel() {} };
    if (typeof prompt !== 'string') return { promise: Promise.reject(new Error('WebLLM takes text prompts only.')), cancel() {} };
    const abort = new AbortController();
    this.generating = label;
    let index = 0;
    const promise = generateWebLLM(prompt, { maxNewTokens: options.maxNewTokens, temperature: options.temperature ?? 0, stop: options.stopStrings, signal: abort.signal }, (textDelta) =>
      onToken?.({ tokenId: -1, index: index++, textDelta }),
    )
      .then((r): WireGenerateResult => {
        const stopReason: StopReason = r.finishReason === 'cancelled' ? 'cancelled' : r.finishReason === 'stop' ? 'stop' : 'length';
        const ms = (tokens: number, perSecond: number) => (perSecond > 0 ? (tokens * 1000) / perSecond : 0);
        return {
          ids: [],
          promptIds: [],
          text: r.text,
          stopReason,
          prefillTokens: r.promptTokens,
          prefillMs: ms(r.promptTokens, r.prefillTokensPerSecond),
          decodeTokens: Math.max(0, r.completionTokens - 1),
          decodeMs: ms(Math.max(0, r.completionTokens - 1), r.decodeTokensPerSecond),
        };
      })
      .catch((e: unknown) => {
        this.error = { title: 'WebLLM stopped', message: (e as Error).message || String(e) };
        throw e;
      })
      .finally(() => (this.generating = null));
    return { promise, cancel: () => abort.abort() };
  };

  dismissError() {
    this.error = null;
  }
}

export const engineChoice = new EngineChoiceStore();
