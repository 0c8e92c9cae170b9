/**
 * Training runs in IndexedDB (idb-keyval, its own database like the dataset cache): one record per
 * run with its settings, the losses so far and the last checkpoint (serializeTrainerState: adapter
 * weights, AdamW moments, step; the order and dropout draws follow from the seed and the step in its
 * hyper-parameters), and the run's training text beside it. A reload, a closed tab or a lost device
 * resumes from the record exactly: the worker rebuilds the data from the stored text and continues
 * at the checkpoint's step. Written by the training worker, read by the Train view's store.
 */
import { createStore, del, get, set, values, type UseStore } from 'idb-keyval';
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import type { ModelLocation } from '../engine/reasoningEngine.ts';
import type { AdapterSpec } from './init.ts';
import type { TrainingHyper } from './checkpoint.ts';

export const TRAINING_DB_NAME = 'reasoning-lab-training';

let runStore: UseStore | undefined;
let dataStore: UseStore | undefined;
let downloadStore: UseStore | undefined;
const runs = (): UseStore => (runStore ??= createStore(TRAINING_DB_NAME, 'runs'));
// a second database: idb-keyval's createStore opens one object store per database
const texts = (): UseStore => (dataStore ??= createStore(`${TRAINING_DB_NAME}-data`, 'texts'));

export type TrainingRunStatus = 'new' | 'running' | 'paused' | 'done' | 'stopped' | 'error';

export interface TrainingRunRecord {
  id: string;
  name: string;
  createdAt: string;
  updatedAt: string;
  base: { id: string; name: string; location: ModelLocation; config: LlamaConfig | null };
  method: AdapterSpec['kind'];
  spec: AdapterSpec;
  /** totalSteps resolved by the worker when the run was given epochs (null until then) */
  hyper: Omit<TrainingHyper, 'totalSteps'> & { totalSteps: number | null };
  epochs: number | null;
  cutoffLen: number;
  checkpointEvery: number;
  data: { name: string; examples: number | null; truncated: number | null; unlabelled: number | null };
  status: TrainingRunStatus;
  message: string | null;
  backend: string | null;
  /** one per optimizer step up to the checkpoint */
  losses: number[];
  lrs: number[];
  tokens: number;
  seconds: number;
  /** serializeTrainerState after `losses.length` steps; null before the first checkpoint */
  state: string | null;
}

export async function saveRun(r: TrainingRunRecord): Promise<void> {
  await set(r.id, { ...r, updatedAt: new Date().toISOString() }, runs());
}

export async function getRun(id: string): Promise<TrainingRunRecord | undefined> {
  return get<TrainingRunRecord>(id, runs());
}

export async function listRuns(): Promise<TrainingRunRecord[]> {
  return ((await values<TrainingRunRecord>(runs())) ?? []).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export async function saveRunText(id: string, text: string): Promise<void> {
  await set(id, text, texts());
}

export async function getRunText(id: string): Promise<string | undefined> {
  return get<string>(id, texts());
}

/** Removes a run and its text. */
export async function deleteRun(id: string): Promise<void> {
  await del(id, runs());
  await del(id, texts());
}

const downloads = (): UseStore => (downloadStore ??= createStore(`${TRAINING_DB_NAME}-downloads`, 'files'));

/** A training file fetched from a URL (math_10k from its public source): downloaded once, then read from IndexedDB. */
/** `check` refuses a text that is no training file (it throws), so nothing bad is ever cached. */
export async function cachedTrainingText(
  url: string,
  check: (text: string) => void,
  doFetch: typeof fetch = fetch,
): Promise<{ text: string; cached: boolean }> {
  const hit = await get<string>(url, downloads());
  if (typeof hit === 'string') return { text: hit, cached: true };
  let res: Response;
  try {
    res = await doFetch(url);
  } catch (e) {
    throw new Error(`Could not download ${url}: ${(e as Error).message}. Check the connection or the URL.`, { cause: e });
  }
  if (!res.ok) throw new Error(`Could not download ${url}: HTTP ${res.status}.`);
  if ((res.headers.get('content-type') ?? '').includes('text/html')) throw new Error(`${url} is a web page, not a training file (check the URL).`);
  const text = await res.text();
  check(text);
  await set(url, text, downloads());
  return { text, cached: false };
}
