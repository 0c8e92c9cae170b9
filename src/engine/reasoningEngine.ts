/**
 * The one engine interface, as WebLLM has one `MLCEngineInterface` with an in-thread and a worker
 * implementation: text (or token ids) in, tokens and text out, adapters and continuous batching
 * included. `Engine` (engine.ts) runs it on this thread: the CLI pages and the test pages use it;
 * `EngineClient` (client.ts) runs it in the engine worker: the app uses it. The text layer
 * (tokenizer, stream decoding, stop strings, the final text) lives behind it, so callers never
 * tokenize or look for stop strings themselves.
 */
import type { AdapterKind } from '../formats/adapterFormat.ts';
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import type { MemoryPlan } from './memoryPlan.ts';
import type { KvCacheOption, KvFormat } from './kvCache.ts';
import type { LoadProgress } from './weights.ts';

export type { AdapterKind };

/** Where a model or adapter is read from: a URL directory (HTTP) or the IndexedDB store. */
export type ModelLocation = { kind: 'http'; baseUrl: string } | { kind: 'idb'; modelId: string };

/** Text (tokenized by the model's tokenizer, BOS added) or token ids as they are. */
export type Prompt = string | number[];

/**
 * How to decode, for one sequence or a batch. Decoding strategies to come (e.g. `numBeams`) are
 * options here, so generate and generateBatch keep their shape.
 */
export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 or absent: greedy. */
  temperature?: number;
  /** 1 or absent: no nucleus cut. */
  topP?: number;
  seed?: number;
  /** Generation stops once the decoded text contains one of these (`text` is cut before the first). */
  stopStrings?: string[];
  /** Token ids that end the generation (the model's EOS by default); the stop id is included in `ids`. */
  stopTokenIds?: number[];
  /**
   * 1 or absent: greedy (or sampled, with a temperature). N > 1: beam search with N beams as
   * transformers' BeamSearchScorer runs it without sampling (LLM-Adapters' evaluate.py: 4); the
   * sampling options are then ignored, and stop strings cut the text only.
   */
  numBeams?: number;
}

/** A batch run also says how many sequences may decode together. */
export interface BatchOptions extends GenerateOptions {
  /**
   * Sequences decoded together: a number, or 'auto' (the default): as many as fit in
   * `memoryBudget` bytes of KV cache and activations beside the weights (default 2 GiB).
   */
  maxBatch?: number | 'auto';
  memoryBudget?: number;
}

export type StopReason = 'eos' | 'stop' | 'length' | 'cancelled';

export interface GenerateResult {
  /** The prompt as token ids (a text prompt tokenized). */
  promptIds: number[];
  /** Generated ids, including a final stop id and any tokens of a stop string. */
  ids: number[];
  /** The generated text (cut before the first stop string); null when the model has no tokenizer. */
  text: string | null;
  stopReason: StopReason;
  /** Prompt tokens run through the model; with cachedPromptTokens, those after the shared prefix. */
  prefillTokens: number;
  /** Batches only: prompt tokens whose KV came from the batch's shared prefix, prefilled once (sharedPrefix.ts). */
  cachedPromptTokens?: number;
  prefillMs: number;
  decodeTokens: number;
  decodeMs: number;
}

/** One generated token; `textDelta` is the text it completes ('' while a character is partial, or without a tokenizer). */
export interface TokenEvent {
  tokenId: number;
  index: number;
  textDelta: string;
}

export interface GenerateCallbacks {
  onToken?: (t: TokenEvent) => void;
  /** Aborting ends the generation after the current token: it resolves with stopReason 'cancelled'. */
  signal?: AbortSignal;
}

/** The shape a batch run was given: sequences decoded together, and each one's context. */
export interface BatchShape {
  maxBatch: number;
  contextLength: number;
  /** Leading tokens every prompt shares, prefilled once for the whole batch (sharedPrefix.ts); 0 or absent: none. */
  sharedPrefixTokens?: number;
}

/** What a batch run reports as it goes (sequence numbers index the prompts). */
export interface BatchCallbacks {
  onStart?: (shape: BatchShape) => void;
  onToken?: (seq: number, t: TokenEvent) => void;
  onDone?: (seq: number, result: GenerateResult) => void;
  /** Aborting ends the sequences in flight (stopReason 'cancelled') and starts no more. */
  signal?: AbortSignal;
}

export interface BatchResult extends BatchShape {
  /** In prompt order. */
  results: GenerateResult[];
  sharedPrefixTokens: number;
}

export interface LoadOptions {
  /** Tokens of context single generations get (default 2048, capped at the model's window). */
  contextLength?: number;
  /** The KV cache's format ('auto', the default: the mode's own; llama.ts ModelLoadOptions.kvCache). */
  kvCache?: KvCacheOption;
  onProgress?: (p: LoadProgress) => void;
}

/** The loaded model, as single generations run it. */
export interface EngineInfo {
  config: LlamaConfig;
  mode: QuantMode;
  /** The KV cache's format in use (the load's kvCache option resolved against the mode). */
  kvCache: KvFormat;
  contextLength: number;
  maxBatch: number;
  memory: MemoryPlan;
  /** The GPU adapter's description. */
  adapterInfo: string;
  hasF16: boolean;
  hasSubgroups: boolean;
  hasTokenizer: boolean;
}

/** An adapter made resident: the caller's `id` for it, its kind, and the name its manifest gives. */
export interface LoadedAdapter {
  id: string;
  kind: AdapterKind;
  name: string;
}

export interface ReasoningEngine {
  /** The loaded model, or null before load / after unload. */
  readonly info: EngineInfo | null;
  /** Load a base model (replacing the one loaded, with its adapters). */
  load(location: ModelLocation, opts?: LoadOptions): Promise<EngineInfo>;
  /**
   * Switch the loaded model's KV cache format in place (weights and adapters kept; only the cache
   * is made again). The old format stays if the new one does not fit.
   */
  setKvCache(option: KvCacheOption): Promise<EngineInfo>;
  tokenize(text: string): Promise<number[]>;
  /** Generate after one prompt. */
  generate(prompt: Prompt, options: GenerateOptions, callbacks?: GenerateCallbacks): Promise<GenerateResult>;
  /**
   * Generate for many prompts with continuous batching: the context is sized to the longest
   * prompt plus maxNewTokens, up to `maxBatch` sequences decode together (the weights are read
   * once per step for all of them), a finished one frees its slot for the next prompt. Each
   * sequence gets exactly what it would get alone.
   */
  generateBatch(prompts: Prompt[], options: BatchOptions, callbacks?: BatchCallbacks): Promise<BatchResult>;
  /**
   * Make a converted adapter resident beside the base, after checking it was made for this base.
   * `id` is the caller's key for it (useAdapter / unloadAdapter take it); loading an id again replaces it.
   */
  loadAdapter(location: ModelLocation, id: string): Promise<LoadedAdapter>;
  /** The resident adapter the next generations use (null: the base alone). */
  useAdapter(id: string | null): Promise<void>;
  unloadAdapter(id: string): Promise<void>;
  unload(): Promise<void>;
}
