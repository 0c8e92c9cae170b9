/**
 * Runs persisted in IndexedDB so they survive a reload and resume. A run is stored in two parts:
 * its header (configuration, problem order, run record: everything but the results) once, when it
 * starts, and each result as its own record as it finishes. Saving a result therefore writes one
 * small record whatever the run's size; re-saving the whole run after every problem wrote about
 * 1.4 GB over GSM8K's 1319 problems. Runs stored before this split keep their results in the
 * header: loading reads both.
 */
import { createStore, get, set, del, values, promisifyRequest, type UseStore } from 'idb-keyval';
import type { Run, RunItem } from './runs.ts';

/** One finished problem of a run, keyed [runId, problem index] (a rerun problem replaces its record). */
interface StoredItem {
  runId: string;
  /** When it finished (ms, strictly increasing across a page): orders the results as they were done. */
  done: number;
  item: RunItem;
}

let headerStore: UseStore | undefined;
let itemStore: UseStore | undefined;
const headers = (): UseStore => (headerStore ??= createStore('reasoning-lab-runs', 'runs'));
const items = (): UseStore => (itemStore ??= createStore('reasoning-lab-run-items', 'items'));

/** Every key of one run's items: [runId, any index] (an array sorts after every number). */
const itemsOf = (runId: string) => IDBKeyRange.bound([runId], [runId, []]);

let lastDone = 0;
/** Date.now(), made strictly increasing so results finished within one millisecond keep their order. */
function doneStamp(): number {
  return (lastDone = Math.max(Date.now(), lastDone + 1));
}

/** A run with its stored results: the header's own (runs stored before the split) then the separate ones, in the order done. */
function assemble(header: Run, stored: StoredItem[]): Run {
  if (stored.length === 0) return header;
  const sorted = [...stored].sort((a, b) => a.done - b.done);
  const later = new Set(sorted.map((s) => s.item.index));
  return {
    ...header,
    updatedAt: Math.max(header.updatedAt, sorted[sorted.length - 1].done),
    items: [...header.items.filter((i) => !later.has(i.index)), ...sorted.map((s) => s.item)],
  };
}

/** Store a whole run: its header, and each of its results (what a new run or an import does once). */
export async function saveRun(run: Run): Promise<void> {
  await set(run.id, { ...run, items: [] }, headers());
  if (run.items.length === 0) return;
  await items()('readwrite', (s) => {
    for (const item of run.items) s.put({ runId: run.id, done: doneStamp(), item } satisfies StoredItem, [run.id, item.index]);
    return promisifyRequest(s.transaction);
  });
}

/** Add one finished problem to a stored run: one record of that result's size, however many are done. */
export async function appendRunItem(runId: string, item: RunItem): Promise<void> {
  await items()('readwrite', (s) => promisifyRequest(s.put({ runId, done: doneStamp(), item } satisfies StoredItem, [runId, item.index])));
}

export async function loadRun(id: string): Promise<Run | undefined> {
  const header = await get<Run>(id, headers());
  if (!header) return undefined;
  const stored = await items()('readonly', (s) => promisifyRequest(s.getAll(itemsOf(id)) as IDBRequest<StoredItem[]>));
  return assemble(header, stored);
}

/** Every stored run, most recently updated first. */
export async function listRuns(): Promise<Run[]> {
  const all = await values<Run>(headers());
  const stored = await items()('readonly', (s) => promisifyRequest(s.getAll() as IDBRequest<StoredItem[]>));
  const byRun = new Map<string, StoredItem[]>();
  for (const s of stored) {
    const list = byRun.get(s.runId);
    if (list) list.push(s);
    else byRun.set(s.runId, [s]);
  }
  return all.map((h) => assemble(h, byRun.get(h.id) ?? [])).sort((a, b) => b.updatedAt - a.updatedAt);
}

export async function deleteRun(id: string): Promise<void> {
  await items()('readwrite', (s) => promisifyRequest(s.delete(itemsOf(id))));
  await del(id, headers());
}
