/**
 * WebLLM (@mlc-ai/web-llm) as an optional second engine: the base model with hard prompts only
 * (no adapters), and the yardstick `npm run bench -- --webllm <id>` measures ours against.
 *
 * A thin adapter over WebLLM's documented API (CreateMLCEngine, AppConfig.model_list,
 * initProgressCallback, completions.create with stream + include_usage). WebLLM itself is loaded
 * with a dynamic import only when someone picks it, so the app's first chunk does not carry it.
 * WebLLM needs its compiled model library (a wasm from GitHub) and the weights (Hugging Face) the
 * first time; both are cached in IndexedDB after that. Anything that stops it from loading comes
 * back as a WebLLMUnavailableError whose message says what to do.
 */
import type { AppConfig, InitProgressReport, MLCEngine, ModelRecord } from '@mlc-ai/web-llm';
import { NotSupportedError } from './errors.ts';
import type { BatchResult, GenerateCallbacks, GenerateOptions, GenerateResult, LoadedAdapter, Prompt, ReasoningEngine, StopReason } from './reasoningEngine.ts';

/** WebLLM could not be loaded here (offline, no WebGPU, no shader-f16, unknown model id, …). */
export class WebLLMUnavailableError extends Error {
  override name = 'WebLLMUnavailableError';
  constructor(
    readonly modelId: string,
    /** The reason alone, without the "could not load" preamble (the bench prints it in brackets). */
    readonly reason: string,
  ) {
    super(`WebLLM could not load ${modelId}: ${reason}`);
  }
}

const HF = 'https://huggingface.co/mlc-ai/';

/**
 * Our base-model manifests (models/*.json) → WebLLM model ids. The weights are the same MLC shards
 * our engine reads (same Hugging Face repositories, same tensor-cache.json): only the engine differs.
 * The chat models are in WebLLM's prebuiltAppConfig; the base Llama-2-7B (the one the adapters were
 * trained on) is not, so it gets a record of its own below, reusing the chat model's compiled library
 * (same architecture, shapes and quantization, so the same kernels).
 */
export const WEBLLM_MODEL_FOR_MANIFEST: Record<string, string> = {
  'llama-2-7b-q4f16_1': 'Llama-2-7b-hf-q4f16_1-MLC',
  'llama-2-7b-q4f32_1': 'Llama-2-7b-hf-q4f32_1-MLC',
  'llama-2-7b-chat-q4f16_1': 'Llama-2-7b-chat-hf-q4f16_1-MLC',
  'llama-2-7b-chat-q4f32_1': 'Llama-2-7b-chat-hf-q4f32_1-MLC',
};

/** Base (non-chat) Llama-2-7B records: weights from MLC's repository, library borrowed from the chat record. */
const BASE_RECORDS: { id: string; repo: string; libFrom: string }[] = [
  { id: 'Llama-2-7b-hf-q4f16_1-MLC', repo: 'Llama-2-7b-hf-q4f16_1-MLC', libFrom: 'Llama-2-7b-chat-hf-q4f16_1-MLC' },
  { id: 'Llama-2-7b-hf-q4f32_1-MLC', repo: 'Llama-2-7b-hf-q4f32_1-MLC', libFrom: 'Llama-2-7b-chat-hf-q4f32_1-MLC' },
];

/** The WebLLM models the app offers (ids; every prebuilt id works in the bench too). */
export const WEBLLM_APP_MODELS = Object.values(WEBLLM_MODEL_FOR_MANIFEST);

type WebLLMModule = typeof import('@mlc-ai/web-llm');
let modulePromise: Promise<WebLLMModule> | null = null;

/** WebLLM's module, imported on first use (a separate chunk in the built site). */
export function importWebLLM(): Promise<WebLLMModule> {
  modulePromise ??= import('@mlc-ai/web-llm').catch((e: unknown) => {
    modulePromise = null;
    throw e;
  });
  return modulePromise;
}

/** WebLLM's prebuilt models plus our base-model records, cached in IndexedDB. */
export function webllmAppConfig(webllm: Pick<WebLLMModule, 'prebuiltAppConfig'>): AppConfig {
  const prebuilt = webllm.prebuiltAppConfig.model_list;
  const extra: ModelRecord[] = [];
  for (const b of BASE_RECORDS) {
    const lib = prebuilt.find((r) => r.model_id === b.libFrom);
    if (!lib || prebuilt.some((r) => r.model_id === b.id)) continue;
    extra.push({ ...lib, model: HF + b.repo, model_id: b.id });
  }
  return { model_list: [...prebuilt, ...extra], cacheBackend: 'indexeddb' };
}

export interface WebLLMLoadOptions {
  onProgress?: (p: { fraction: number; text: string }) => void;
  /** Defaults to webllmAppConfig(): WebLLM's prebuilt models plus ours, IndexedDB cache. */
  appConfig?: AppConfig;
  /**
   * Give up when nothing arrives for this long (ms): the library and config fetches before the
   * first progress report, or between two reports while the weights download. Default 60 s.
   */
  stallMs?: number;
  signal?: AbortSignal;
}

export interface WebLLMGenerateOptions {
  maxNewTokens: number;
  /** 0 (the default) is greedy decoding. */
  temperature?: number;
  stop?: string[];
  /** Generate exactly maxNewTokens (the bench), ignoring the end-of-sequence token and stop strings. */
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

export interface WebLLMGenerateResult {
  text: string;
  promptTokens: number;
  completionTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  finishReason: string;
}

let current: { engine: MLCEngine; modelId: string } | null = null;

/** The model id WebLLM has loaded now, or null. */
export function loadedWebLLMModel(): string | null {
  return current?.modelId ?? null;
}

/** The host of a URL, for messages (the URL itself when it is relative). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** Put WebLLM's own error (or a failed fetch) into words a user can act on. */
function explain(modelId: string, record: ModelRecord | undefined, e: unknown): WebLLMUnavailableError {
  if (e instanceof WebLLMUnavailableError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const where = record ? ` (model library ${hostOf(record.model_lib)}, weights ${hostOf(record.model)})` : '';
  switch (err.name) {
    case 'WebGPUNotAvailableError':
    case 'WebGPUNotFoundError':
      return new WebLLMUnavailableError(modelId, 'this browser offers no WebGPU adapter.');
    case 'ShaderF16SupportError':
    case 'FeatureSupportError':
      return new WebLLMUnavailableError(modelId, `${err.message.trim()} Choose the q4f32_1 variant on this GPU.`);
    case 'DeviceLostError':
      return new WebLLMUnavailableError(modelId, 'the GPU was lost while loading (often not enough GPU memory).');
    case 'AbortError':
      return new WebLLMUnavailableError(modelId, 'loading was stopped.');
  }
  // Fetch failures: "Failed to fetch" (Chromium), "NetworkError …" (Firefox), "Load failed" (Safari),
  // or WebLLM's own "Cannot fetch <url> err= …".
  if (err.name === 'TypeError' || /fetch|network|load failed|ERR_|status/i.test(err.message)) {
    return new WebLLMUnavailableError(
      modelId,
      `its model library or weights could not be fetched${where}: ${err.message.trim()}. ` +
        'WebLLM downloads them from the internet the first time (then reads them from IndexedDB): connect and try again.',
    );
  }
  return new WebLLMUnavailableError(modelId, err.message.trim() || err.name);
}

/**
 * Load `modelId` into WebLLM (replacing what it had loaded). Rejects with WebLLMUnavailableError
 * when it cannot: nothing is left half-loaded then.
 */
export async function loadWebLLM(modelId: string, opts: WebLLMLoadOptions = {}): Promise<{ modelId: string }> {
  if (typeof navigator === 'undefined' || !('gpu' in navigator)) throw new WebLLMUnavailableError(modelId, 'this browser does not offer WebGPU.');
  let webllm: WebLLMModule;
  try {
    webllm = await importWebLLM();
  } catch (e) {
    throw new WebLLMUnavailableError(modelId, `its code could not be loaded (${(e as Error).message}).`);
  }
  const appConfig = opts.appConfig ?? webllmAppConfig(webllm);
  const record = appConfig.model_list.find((r) => r.model_id === modelId);
  if (!record) {
    const near = appConfig.model_list.filter((r) => /llama-2/i.test(r.model_id)).map((r) => r.model_id);
    throw new WebLLMUnavailableError(modelId, `not a WebLLM model id. Llama-2 ids: ${near.join(', ')}.`);
  }
  // Checked here (cheaply) so an f16 model on a GPU without shader-f16 fails before any download.
  if (record.required_features?.length) {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) throw new WebLLMUnavailableError(modelId, 'this browser offers no WebGPU adapter.');
    const missing = record.required_features.filter((f) => !adapter.features.has(f as GPUFeatureName));
    if (missing.length) throw new WebLLMUnavailableError(modelId, `this GPU lacks ${missing.join(', ')}. Choose the q4f32_1 variant.`);
  }
  await unloadWebLLM();

  const stallMs = opts.stallMs ?? 60_000;
  const engine = new webllm.MLCEngine({ appConfig });
  let last = Date.now();
  engine.setInitProgressCallback((r: InitProgressReport) => {
    last = Date.now();
    opts.onProgress?.({ fraction: r.progress, text: r.text });
  });
  let stop: (reason: string) => void = () => {};
  const stopped = new Promise<never>((_, reject) => {
    stop = (reason) => reject(new WebLLMUnavailableError(modelId, reason));
  });
  const timer = setInterval(
    () => {
      if (Date.now() - last > stallMs)
        stop(
          `nothing arrived for ${Math.round(stallMs / 1000)} s while fetching its model library or weights (${hostOf(record.model_lib)}, ${hostOf(record.model)}): the network is down or blocked.`,
        );
    },
    Math.min(1000, stallMs),
  );
  const onAbort = () => stop('loading was stopped.');
  opts.signal?.addEventListener('abort', onAbort);
  try {
    if (opts.signal?.aborted) onAbort();
    const reloading = engine.reload(modelId);
    reloading.catch(() => {}); // when the stall guard wins, WebLLM's own rejection comes later
    await Promise.race([reloading, stopped]);
  } catch (e) {
    // unload() aborts WebLLM's own fetches (its reload controller) and frees what it made.
    void engine.unload().catch(() => {});
    throw explain(modelId, record, e);
  } finally {
    clearInterval(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
  current = { engine, modelId };
  return { modelId };
}

/**
 * Complete `prompt` as plain text (WebLLM's completions API: no chat template, so the hard prompts
 * reach the model exactly as written), streaming each piece of text to `onDelta`.
 */
export async function generateWebLLM(prompt: string, opts: WebLLMGenerateOptions, onDelta?: (text: string) => void): Promise<WebLLMGenerateResult> {
  const c = current;
  if (!c) throw new Error('Load a WebLLM model first.');
  const onAbort = () => void c.engine.interruptGenerate();
  opts.signal?.addEventListener('abort', onAbort);
  try {
    const stream = await c.engine.completions.create({
      prompt,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: opts.maxNewTokens,
      temperature: opts.temperature ?? 0,
      ...(opts.stop?.length ? { stop: opts.stop.slice(0, 4) } : {}),
      ...(opts.ignoreEos ? { ignore_eos: true } : {}),
    });
    let text = '';
    let finishReason = 'length';
    let usage: { prompt_tokens: number; completion_tokens: number; extra?: { prefill_tokens_per_s?: number; decode_tokens_per_s?: number } } | undefined;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.text) {
        text += choice.text;
        onDelta?.(choice.text);
      }
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    let prefill = usage?.extra?.prefill_tokens_per_s;
    let decode = usage?.extra?.decode_tokens_per_s;
    if (prefill === undefined || decode === undefined) {
      // Older WebLLM: "prefill: 123.4 tokens/sec, decoding: 45.6 tokens/sec".
      const stats = await c.engine.runtimeStatsText();
      prefill ??= Number(/prefill:\s*([\d.]+)/.exec(stats)?.[1] ?? NaN);
      decode ??= Number(/decod\w*:\s*([\d.]+)/.exec(stats)?.[1] ?? NaN);
    }
    return {
      text,
      promptTokens: usage?.prompt_tokens ?? 0,
      completionTokens: usage?.completion_tokens ?? 0,
      prefillTokensPerSecond: prefill,
      decodeTokensPerSecond: decode,
      finishReason: opts.signal?.aborted ? 'cancelled' : finishReason,
    };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Stop a running generation (it then resolves with the text so far). */
export function interruptWebLLM(): void {
  void current?.engine.interruptGenerate();
}

/** Free WebLLM's GPU memory. */
export async function unloadWebLLM(): Promise<void> {
  const c = current;
  current = null;
  if (c) await c.engine.unload().catch(() => {});
}

/** What WebLLM cannot do, in words that say what to use instead. */
/**
 * Where WebLLM fetches its compiled model libraries (WebAssembly that runs in this page): the
 * moving `main` branch of github.com/mlc-ai/binary-mlc-llm-libs (prebuiltAppConfig's
 * modelLibURLPrefix; the package names no commit and no hash of the file). It could not be pinned
 * to a commit from here (no access to GitHub to read one), so the app says so and asks first.
 */
export const WEBLLM_LIBRARY_SOURCE = 'https://raw.githubusercontent.com/mlc-ai/binary-mlc-llm-libs/main/web-llm-models/';

export const WEBLLM_UNPINNED =
  `WebLLM runs a compiled model library (WebAssembly) that it downloads from ${WEBLLM_LIBRARY_SOURCE}: ` +
  'third-party code from the moving main branch of mlc-ai/binary-mlc-llm-libs, not pinned to a commit and not checked against a hash. ' +
  'It runs in this page with its access to what the page holds.';

export const WEBLLM_NO_ADAPTERS =
  'Adapters are off with WebLLM: it runs MLC’s compiled base model as published, with hard prompts only. ' +
  'Choose the Reasoning Lab engine to use LoRA, series or parallel adapters.';
export const WEBLLM_NO_BATCH = 'WebLLM generates one prompt at a time here: choose the Reasoning Lab engine for batched evaluation runs.';
export const WEBLLM_NO_TOKENIZE = 'WebLLM does not expose its tokenizer here: choose the Reasoning Lab engine to count tokens.';

/**
 * WebLLM behind the ReasoningEngine interface, where it can be: text generation with a token
 * stream and cancellation. It loads by WebLLM model id (loadWebLLM), not a ModelLocation, and
 * has no EngineInfo; adapters, batching and tokenizing are refused with NotSupportedError.
 */
export class WebLLMEngine implements Omit<ReasoningEngine, 'load' | 'info' | 'setKvCache'> {
  load(modelId: string, opts: WebLLMLoadOptions = {}): Promise<{ modelId: string }> {
    return loadWebLLM(modelId, opts);
  }

  /** The WebLLM model id loaded now, or null. */
  get modelId(): string | null {
    return loadedWebLLMModel();
  }

  /**
   * Complete a text prompt (greedy unless a temperature is given; topP, seed and stopTokenIds are
   * WebLLM's own defaults). Token ids are not reported: each event carries tokenId -1 and its text.
   */
  async generate(prompt: Prompt, options: GenerateOptions, callbacks: GenerateCallbacks = {}): Promise<GenerateResult> {
    if (typeof prompt !== 'string') throw new NotSupportedError('WebLLM takes text prompts only.');
    let index = 0;
    const r = await generateWebLLM(
      prompt,
      { maxNewTokens: options.maxNewTokens, temperature: options.temperature ?? 0, stop: options.stopStrings, signal: callbacks.signal },
      (textDelta) => callbacks.onToken?.({ tokenId: -1, index: index++, textDelta }),
    );
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
  }

  async generateBatch(): Promise<BatchResult> {
    throw new NotSupportedError(WEBLLM_NO_BATCH);
  }

  async tokenize(): Promise<number[]> {
    throw new NotSupportedError(WEBLLM_NO_TOKENIZE);
  }

  async loadAdapter(): Promise<LoadedAdapter> {
    throw new NotSupportedError(WEBLLM_NO_ADAPTERS);
  }

  /** The base alone (null) is all WebLLM runs; any adapter is refused. */
  async useAdapter(id: string | null): Promise<void> {
    if (id !== null) throw new NotSupportedError(WEBLLM_NO_ADAPTERS);
  }

  async unloadAdapter(): Promise<void> {
    throw new NotSupportedError(WEBLLM_NO_ADAPTERS);
  }

  unload(): Promise<void> {
    return unloadWebLLM();
  }
}
