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
  | { type: 'unloaded'; id: number }
  | { type: 'error'; id: number; name: string; message: string };
