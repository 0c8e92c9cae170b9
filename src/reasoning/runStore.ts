/** Runs persisted in IndexedDB so they survive a reload and resume. */
import { createStore, get, set, del, values, type UseStore } from 'idb-keyval';
import type { Run } from './runs.ts';

let store: UseStore | undefined;
const runs = (): UseStore => (store ??= createStore('reasoning-lab-runs', 'runs'));

export async function saveRun(run: Run): Promise<void> {
  await set(run.id, run, runs());
}

export async function loadRun(id: string): Promise<Run | undefined> {
  return get<Run>(id, runs());
}

/** Every stored run, most recently updated first. */
export async function listRuns(): Promise<Run[]> {
  const all = await values<Run>(runs());
  return all.sort((a, b) => b.updatedAt - a.updatedAt);
}

export async function deleteRun(id: string): Promise<void> {
  await del(id, runs());
}
