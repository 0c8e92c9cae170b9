/** Datasets loaded on demand (from the configurable data URL, cached in IndexedDB by datasetStore). */
import { loadDataset } from '../../reasoning/datasetStore.ts';
import { describeSkipped, type DatasetName, type ParsedDataset } from '../../reasoning/datasets.ts';
import { foreignOrigin } from '../foreignSources.ts';

/**
 * Where datasets come from: `?data=<url>` on the page, else the dev server's ../shared/data
 * (served at data/) in development, else each dataset's public source.
 */
export function defaultDataBase(): string | undefined {
  const fromQuery = new URLSearchParams(location.search).get('data');
  if (fromQuery !== null) return fromQuery === 'public' ? undefined : new URL(fromQuery, document.baseURI).href;
  return builtInDataBase();
}

/** Where datasets come from when no link says: ../shared/data in development, else each public source. */
function builtInDataBase(): string | undefined {
  return import.meta.env.DEV ? new URL('data/', document.baseURI).href : undefined;
}

/** A link's `?data=` on another site: nothing is fetched from it until the user confirms (see foreignSources.ts). */
function linkedForeignBase(base: string | undefined): { url: string; origin: string } | null {
  const origin = base === undefined ? null : foreignOrigin(base, location.origin, document.baseURI);
  return base !== undefined && origin ? { url: base, origin } : null;
}

type Entry = { status: 'loading' } | { status: 'ready'; data: ParsedDataset; warnings: string[] } | { status: 'error'; message: string };

class DatasetsStore {
  baseUrl = $state<string | undefined>(defaultDataBase());
  /** The other site a link asked to read datasets from, until the user answers; loads wait meanwhile. */
  pendingSource = $state<{ url: string; origin: string } | null>(linkedForeignBase(this.baseUrl));
  private answered: Promise<void> = Promise.resolve();
  private answer: () => void = () => {};

  constructor() {
    if (this.pendingSource) this.answered = new Promise((ok) => (this.answer = ok));
  }

  /** The user said yes to the link's data site: loads go on, from there. */
  confirmSource() {
    this.pendingSource = null;
    this.answer();
  }

  /**
   * The dataset URL field: read datasets from the folder at `text` (the ../shared/data layout:
   * gsm8k/test.jsonl, llm-adapters/…), resolved against the page; empty: the built-in source.
   * Typed by the user and confirmed with Use, so their own choice, not a link's: no consent asked.
   * Datasets already loaded are loaded again from there. Returns an error in words, or null.
   */
  useSource(text: string): string | null {
    const t = text.trim();
    let base: string | undefined;
    try {
      base = t === '' ? builtInDataBase() : new URL(t.endsWith('/') ? t : `${t}/`, document.baseURI).href;
    } catch {
      return `"${t}" is not a URL of a dataset folder.`;
    }
    if (base !== undefined && !/^https?:$/.test(new URL(base).protocol)) return `"${t}" is not an http(s) URL.`;
    this.baseUrl = base;
    if (this.pendingSource) this.confirmSource();
    // Loads still running read the old source: their results are dropped (see load).
    this.generation++;
    this.inflight.clear();
    const names = Object.keys(this.entries) as DatasetName[];
    this.entries = {};
    for (const name of names) this.load(name).catch(() => {});
    return null;
  }

  /** Where datasets come from now, in words ("the built-in source" when no URL is set). */
  readonly sourceLabel = $derived(this.baseUrl ?? 'each dataset’s public source');

  /** The user said no: the built-in datasets are used instead, and nothing is fetched from that site. */
  declineSource() {
    this.baseUrl = builtInDataBase();
    this.pendingSource = null;
    this.answer();
  }

  /** Replaced on each change, never mutated: a dataset's problems stay plain objects, not deep proxies. */
  entries = $state.raw<Partial<Record<DatasetName, Entry>>>({});
  private inflight = new Map<DatasetName, Promise<ParsedDataset>>();
  /** Bumped when the source changes. */
  private generation = 0;

  /** The parsed dataset (loading it once). */
  load(name: DatasetName): Promise<ParsedDataset> {
    const existing = this.inflight.get(name);
    if (existing) return existing;
    this.set(name, { status: 'loading' });
    const generation = this.generation;
    // baseUrl is read once answered: a declined link's site is never asked.
    const p = this.answered
      .then(() => loadDataset(name, { baseUrl: this.baseUrl }))
      .then(
        (data) => {
          if (generation === this.generation) this.set(name, { status: 'ready', data, warnings: describeSkipped(data.skipped) });
          return data;
        },
        (e: unknown) => {
          if (generation === this.generation) {
            this.inflight.delete(name);
            this.set(name, { status: 'error', message: (e as Error).message });
          }
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
