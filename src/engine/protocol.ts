/**
 * The one small typed message protocol between the app and the engine worker.
 * Requests carry an id; every response names the request it answers.
 */
import type { LoadedModelInfo, GenerateResult } from './engine.ts';
import type { LoadProgress } from './weights.ts';

/** Where the worker reads a model from: a URL directory (HTTP) or the IndexedDB store. */
export type ModelLocation = { kind: 'http'; baseUrl: string } | { kind: 'idb'; modelId: string };

export interface WireGenerateOptions {
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Generation stops once the decoded text contains one of these (the stop text is trimmed from `text`). */
  stopStrings?: string[];
}

export type EngineRequest =
  | { type: 'load'; id: number; location: ModelLocation; contextLength?: number }
  | { type: 'generate'; id: number; prompt: string | number[]; options: WireGenerateOptions }
  /**
   * Many prompts with continuous batching (an evaluation run): the worker sizes the context to the
   * longest prompt + maxNewTokens and the batch to `memoryBudget` bytes of KV cache and activations.
   */
  | { type: 'generateBatch'; id: number; prompts: (string | number[])[]; options: WireGenerateOptions; maxBatch?: number | 'auto'; memoryBudget?: number }
  | { type: 'tokenize'; id: number; text: string }
  /** Make a converted adapter resident (HTTP directory or IndexedDB id); answers 'adapter' with its name. */
  | { type: 'loadAdapter'; id: number; location: ModelLocation }
  /** Use a resident adapter for the next generations; null: the base model alone. */
  | { type: 'useAdapter'; id: number; name: string | null }
  | { type: 'cancel'; id: number; target: number }
  | { type: 'unload'; id: number };

export interface WireGenerateResult extends GenerateResult {
  promptIds: number[];
  text: string | null;
}

export type EngineResponse =
  | { type: 'progress'; id: number; progress: LoadProgress }
  | { type: 'loaded'; id: number; info: Omit<LoadedModelInfo, 'tokenizerJson' | 'tokenizerConfig'> & { hasTokenizer: boolean } }
  | { type: 'tokens'; id: number; ids: number[] }
  | { type: 'adapter'; id: number; name: string | null; kind: string | null }
  | { type: 'token'; id: number; tokenId: number; index: number; textDelta: string }
  | { type: 'done'; id: number; result: WireGenerateResult }
  /** A batch's shape, once the model has been given it (before the first token). */
  | { type: 'batchStart'; id: number; maxBatch: number; contextLength: number }
  | { type: 'seqToken'; id: number; seq: number; tokenId: number; index: number; textDelta: string }
  | { type: 'seqDone'; id: number; seq: number; result: WireGenerateResult }
  | { type: 'batchDone'; id: number; maxBatch: number }
  | { type: 'unloaded'; id: number }
  | { type: 'error'; id: number; name: string; message: string };
