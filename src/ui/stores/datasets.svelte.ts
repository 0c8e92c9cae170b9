/** Datasets loaded on demand (from the configurable data URL, cached in IndexedDB by datasetStore). */
import { loadDataset } from '../../reasoning/datasetStore.ts';
import { describeSkipped, type DatasetName, type ParsedDataset } from '../../reasoning/datasets.ts';

/**
 * Where datasets come from: `?data=<url>` on the page, else the dev server's ../shared/data
 * (served at data/) in development, else each dataset's public source.
 */
export function defaultDataBase(): string | undefined {
  const fromQuery = new URLSearchParams(location.search).get('data');
  if (fromQuery !== null) return fromQuery === 'public' ? undefined : new URL(fromQuery, document.baseURI).href;
  return import.meta.env.DEV ? new URL('data/', document.baseURI).href : undefined;
}

type Entry = { status: 'loading' } | { status: 'ready'; data: ParsedDataset; warnings: string[] } | { status: 'error'; message: string };

class DatasetsStore {
  baseUrl = $state<string | undefined>(defaultDataBase());
  /** Replaced on each change, never mutated: a dataset's problems stay plain objects, not deep proxies. */
  entries = $state.raw<Partial<Record<DatasetName, Entry>>>({});
  private inflight = new Map<DatasetName, Promise<ParsedDataset>>();

  /** The parsed dataset (loading it once). */
  load(name: DatasetName): Promise<ParsedDataset> {
    const existing = this.inflight.get(name);
    if (existing) return existing;
    this.set(name, { status: 'loading' });
    const p = loadDataset(name, { baseUrl: this.baseUrl }).then(
      (data) => {
        this.set(name, { status: 'ready', data, warnings: describeSkipped(data.skipped) });
        return data;
      },
      (e: unknown) => {
        this.inflight.delete(name);
        this.set(name, { status: 'error', message: (e as Error).message });
        throw e;
      },
    );
    this.inflight.set(name, p);
    return p;
  }

  private set(name: DatasetName, entry: Entry) {
    this.entries = { ...this.entries, [name]: entry };
  }

  get(name: DatasetName): ParsedDataset | null {
    const e = this.entries[name];
    return e?.status === 'ready' ? e.data : null;
  }
}

export const datasets = new DatasetsStore();
