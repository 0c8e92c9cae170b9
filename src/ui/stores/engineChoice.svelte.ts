/**
 * Which engine the Generate view runs: ours (Reasoning Lab: adapters, every model) or WebLLM
 * (the base model with hard prompts only). WebLLM's state lives here; ours stays in `engine`.
 * The WebLLM package itself is imported only when a WebLLM model is loaded (engine/webllm.ts).
 */
import { engine, type Labelled } from './engine.svelte.ts';
import { WEBLLM_APP_MODELS, WEBLLM_MODEL_FOR_MANIFEST, WEBLLM_NO_ADAPTERS, WEBLLM_UNPINNED, WebLLMEngine } from '../../engine/webllm.ts';
import type { GenerateCallbacks, GenerateOptions, GenerateResult, Prompt } from '../../engine/reasoningEngine.ts';

export type EngineKind = 'ours' | 'webllm';

export const WEBLLM_ADAPTERS_OFF = WEBLLM_NO_ADAPTERS;
export { WEBLLM_UNPINNED };

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
  private readonly webllmEngine = new WebLLMEngine();

  /** The user has said yes to WebLLM's unpinned third-party model library in this page (see WEBLLM_UNPINNED). */
  libraryAccepted = $state(false);
  /** Load was pressed before that yes: the question is on screen. */
  askingLibrary = $state(false);

  readonly webllm = $derived(this.kind === 'webllm');
  /** The chosen engine can generate now. */
  readonly ready = $derived(this.kind === 'webllm' ? this.status === 'ready' : engine.ready);
  /** What the chosen engine is busy with, or null. */
  readonly busy = $derived(this.kind === 'webllm' ? this.generating : engine.busy);

  async load(): Promise<void> {
    // Nothing of WebLLM's is fetched before the user has read where its code comes from and said yes.
    if (!this.libraryAccepted) return void (this.askingLibrary = true);
    const id = this.modelId;
    this.error = null;
    this.status = 'loading';
    this.progress = null;
    this.loaded = null;
    this.abort = new AbortController();
    try {
      await this.webllmEngine.load(id, { onProgress: (p) => (this.progress = p), signal: this.abort.signal });
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

  /** Yes to the unpinned model library: load now. */
  acceptLibrary(): Promise<void> {
    this.libraryAccepted = true;
    this.askingLibrary = false;
    return this.load();
  }

  declineLibrary() {
    this.askingLibrary = false;
  }

  /** Stop loading (a download in progress). */
  stopLoading() {
    this.abort?.abort();
  }

  /** Same shape as engine.generate (ReasoningEngine.generate plus a label), so the Generate view calls either. */
  generate = (prompt: Prompt, options: GenerateOptions, callbacks: GenerateCallbacks & Labelled = {}): Promise<GenerateResult> => {
    if (this.kind !== 'webllm') return engine.generate(prompt, options, callbacks);
    if (this.status !== 'ready') return Promise.reject(new Error('Load a WebLLM model first.'));
    if (this.generating) return Promise.reject(new Error(`Wait for "${this.generating}" to finish, or stop it.`));
    this.generating = callbacks.label ?? 'Generating';
    return this.webllmEngine
      .generate(prompt, options, callbacks)
      .catch((e: unknown) => {
        this.error = { title: 'WebLLM stopped', message: (e as Error).message || String(e) };
        throw e;
      })
      .finally(() => (this.generating = null));
  };

  dismissError() {
    this.error = null;
  }
}

export const engineChoice = new EngineChoiceStore();
