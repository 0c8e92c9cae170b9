/**
 * Models known to storage (manifests in models/*.json or imported), their state in this browser,
 * live download progress (this tab's or another tab's), storage room, and every action of the
 * models panel. Errors are kept as the storage errors word them. Base models that are stored, or
 * served with the app (the tiny demo models), are the model picker's choices.
 */
import {
  allManifests,
  cancelDownload,
  deleteModel,
  downloadModel,
  importManifestFromFile,
  importManifestFromUrl,
  listModels,
  storageInfo,
  subscribe,
  verifyModel,
  type ModelManifest,
  type ModelStatus,
  type ProgressEvent,
  type StorageInfo,
} from '../../storage/index.ts';
import { locationOf, modelChoicesFrom } from '../adapterChoices.ts';
import { obtainAdvice } from '../../storage/catalog.ts';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class ModelsStore {
  /** Replaced whole on every refresh (never mutated), so kept as plain objects, not deep proxies. */
  list = $state.raw<ModelStatus[]>([]);
  /** Latest progress event per model while it downloads (here or in another tab). */
  progress = $state<Record<string, ProgressEvent>>({});
  /** The last error per model, in the storage error's own words. */
  errors = $state<Record<string, string>>({});
  /** The name of that error's class ("NetworkError": the host could not be reached, so the action is Retry). */
  errorNames = $state<Record<string, string>>({});
  /** Good news per model ("All 5 files verified."). */
  notices = $state<Record<string, string>>({});
  /** Models with an action under way here (verify, delete). */
  busy = $state<Record<string, string>>({});
  /** A model waits for another tab that is downloading it. */
  waiting = $state<Record<string, boolean>>({});
  storage = $state<StorageInfo | null>(null);
  loaded = $state(false);
  /** Errors of the panel itself (import, storage estimate). */
  panelError = $state<string | null>(null);
  panelNotice = $state<string | null>(null);

  readonly bases = $derived(this.list.filter((m) => m.kind === 'base'));
  readonly adapters = $derived(this.list.filter((m) => m.kind === 'adapter'));
  /** The model picker's choices (manifest ids; see adapterChoices.ts). */
  readonly choices = $derived(modelChoicesFrom(this.list));
  /** Bases the engine can read (stored, or served with the app), with where from: what an adapter is checked against. */
  readonly readableBases = $derived(
    this.bases.flatMap((m) => {
      const location = locationOf(m);
      return location ? [{ id: m.id, name: m.name, location }] : [];
    }),
  );

  private unsubscribe: (() => void) | null = null;
  private refreshing: Promise<void> | null = null;
  private again = false;

  /** Re-read the catalog, the store and the storage estimate (coalesced while one is running). */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try {
          this.list = await listModels(await allManifests());
        } catch (e) {
          this.panelError = `Could not read the models stored in this browser: ${message(e)}`;
        }
        try {
          this.storage = await storageInfo();
        } catch {
          this.storage = null;
        }
      } while (this.again);
      this.loaded = true;
      this.refreshing = null;
    })();
    return this.refreshing;
  }

  start() {
    if (this.unsubscribe) return;
    this.unsubscribe = subscribe((e) => {
      if (e.type === 'progress') {
        this.progress[e.modelId] = e;
        return;
      }
      if (e.state === 'waiting') this.waiting[e.modelId] = true;
      else delete this.waiting[e.modelId];
      if (e.state !== 'downloading' && e.state !== 'waiting') delete this.progress[e.modelId];
      if (e.error && e.error.name !== 'CancelledError') {
        this.errors[e.modelId] = e.error.message;
        this.errorNames[e.modelId] = e.error.name;
      }
      void this.refresh();
    });
    void this.refresh();
  }

  /** Download, or resume what an earlier attempt (or another tab) left. */
  async download(status: Pick<ModelStatus, 'id' | 'manifest'>) {
    delete this.errors[status.id];
    delete this.errorNames[status.id];
    delete this.notices[status.id];
    // Entries to train, convert or import are listed, never fetched (nothing there to download).
    const advice = obtainAdvice(status.manifest);
    if (advice) {
      this.errors[status.id] = advice;
      return;
    }
    try {
      await downloadModel(status.manifest);
    } catch (e) {
      // A pause is the user's own doing: say so quietly, not as an error.
      if ((e as Error).name === 'CancelledError') this.notices[status.id] = message(e);
      else {
        this.errors[status.id] = message(e);
        this.errorNames[status.id] = (e as Error).name;
      }
    } finally {
      delete this.progress[status.id];
      delete this.waiting[status.id];
      await this.refresh();
    }
  }

  /** What the download button says: Retry after the host could not be reached, else Download (nothing stored) or Resume. */
  downloadAction(m: Pick<ModelStatus, 'id' | 'state'>): 'Download' | 'Resume' | 'Retry' {
    if (this.errorNames[m.id] === 'NetworkError') return 'Retry';
    // After a failed first attempt the error says "press Resume": so does the button.
    return m.state === 'not-stored' && !this.errors[m.id] ? 'Download' : 'Resume';
  }

  /** Pause: stop the download (here or in the tab running it); what is stored is kept. */
  cancel(id: string) {
    cancelDownload(id);
  }

  /** Re-hash every stored file; a damaged one is discarded and the model shows as damaged. */
  async verify(id: string) {
    delete this.errors[id];
    delete this.errorNames[id];
    delete this.notices[id];
    this.busy[id] = 'Verifying';
    try {
      const bad = await verifyModel(id);
      if (bad.length === 0) {
        const n = this.list.find((m) => m.id === id)?.files.filter((f) => f.state === 'complete').length ?? 0;
        this.notices[id] = `Every stored byte checks out (${n} file${n === 1 ? '' : 's'} verified against their SHA-256).`;
      } else this.errors[id] = bad.map((b) => b.message).join(' ');
    } catch (e) {
      this.errors[id] = message(e);
    } finally {
      delete this.busy[id];
      await this.refresh();
    }
  }

  async remove(id: string) {
    delete this.errors[id];
    delete this.errorNames[id];
    delete this.notices[id];
    this.busy[id] = 'Deleting';
    try {
      await deleteModel(id);
    } catch (e) {
      this.errors[id] = message(e);
    } finally {
      delete this.busy[id];
      await this.refresh();
    }
  }

  private async importWith(f: () => Promise<ModelManifest>) {
    this.panelError = null;
    this.panelNotice = null;
    try {
      const m = await f();
      this.panelNotice = `Added ${m.name} (${m.kind === 'adapter' ? 'adapter' : 'base model'}). Download it below.`;
      await this.refresh();
      return m;
    } catch (e) {
      this.panelError = message(e);
      return null;
    }
  }

  importUrl(url: string) {
    return this.importWith(() => importManifestFromUrl(url.trim()));
  }

  importFile(file: File) {
    return this.importWith(() => importManifestFromFile(file));
  }

  /** Ask the browser to keep this site's storage (not evict it under pressure). */
  async persist() {
    this.panelError = null;
    const ok = (await navigator.storage?.persist?.()) ?? false;
    if (!ok) this.panelError = 'The browser did not grant persistent storage; it may remove downloaded models when the disk runs low.';
    await this.refresh();
  }
}

export const models = new ModelsStore();
