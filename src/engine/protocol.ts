/**
 * The one small typed message protocol between the app's EngineClient and the engine worker:
 * each ReasoningEngine call as a request, its callbacks and its answer as responses.
 * Requests carry an id; every response names the request it answers.
 */
import type {
  BatchOptions,
  BatchShape,
  EngineInfo,
  GenerateOptions,
  GenerateResult,
  LoadedAdapter,
  ModelLocation,
  Prompt,
  TokenEvent,
} from './reasoningEngine.ts';
import type { LoadProgress } from './weights.ts';
import type { KvCacheOption } from './kvCache.ts';

export type { ModelLocation };

export type EngineRequest =
  | { type: 'load'; id: number; location: ModelLocation; contextLength?: number; kvCache?: KvCacheOption }
  | { type: 'setKvCache'; id: number; kvCache: KvCacheOption }
  | { type: 'tokenize'; id: number; text: string }
  | { type: 'generate'; id: number; prompt: Prompt; options: GenerateOptions }
  | { type: 'generateBatch'; id: number; prompts: Prompt[]; options: BatchOptions }
  /** `adapterId`: the caller's key for the adapter (useAdapter and unloadAdapter take it). */
  | { type: 'loadAdapter'; id: number; location: ModelLocation; adapterId: string }
  | { type: 'useAdapter'; id: number; adapterId: string | null }
  | { type: 'unloadAdapter'; id: number; adapterId: string }
  /** Ends the generation `target` after its current token. */
  | { type: 'cancel'; id: number; target: number }
  | { type: 'unload'; id: number };

export type EngineResponse =
  | { type: 'progress'; id: number; progress: LoadProgress }
  | { type: 'loaded'; id: number; info: EngineInfo }
  | { type: 'tokens'; id: number; ids: number[] }
  | { type: 'adapter'; id: number; adapter: LoadedAdapter }
  | ({ type: 'token'; id: number } & TokenEvent)
  | { type: 'done'; id: number; result: GenerateResult }
  /** A batch's shape, once the model has been given it (before the first token). */
  | ({ type: 'batchStart'; id: number } & BatchShape)
  | ({ type: 'seqToken'; id: number; seq: number } & TokenEvent)
  | { type: 'seqDone'; id: number; seq: number; result: GenerateResult }
  | { type: 'batchDone'; id: number }
  /** useAdapter, unloadAdapter and unload have nothing to say but that they are done. */
  | { type: 'ok'; id: number }
  | { type: 'error'; id: number; name: string; message: string };
