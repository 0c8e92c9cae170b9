/**
 * Models known to storage (manifests in models/*.json or imported), their state in this browser,
 * and live download progress. Base models that are stored become choices in the model picker.
 */
import {
  allManifests,
  cancelDownload,
  deleteModel,
  downloadModel,
  listModels,
  storageInfo,
  subscribe,
  type ModelStatus,
  type ProgressEvent,
  type StorageInfo,
} from '../../storage/index.ts';
import type { ModelChoice } from './engine.svelte.ts';

class ModelsStore {
  list = $state<ModelStatus[]>([]);
  progress = $state<Record<string, ProgressEvent>>({});
  errors = $state<Record<string, string>>({});
  storage = $state<StorageInfo | null>(null);
  loaded = $state(false);
  private unsubscribe: (() => void) | null = null;

  async refresh() {
    try {
      this.list = await listModels(await allManifests());
      this.storage = await storageInfo();
    } catch (e) {
      console.error('Could not read stored models', e);
    } finally {
      this.loaded = true;
    }
  }

  start() {
    if (this.unsubscribe) return;
    this.unsubscribe = subscribe((e) => {
      if (e.type === 'progress') this.progress[e.modelId] = e;
      else {
        if (e.error) this.errors[e.modelId] = e.error.message;
        void this.refresh();
      }
    });
    void this.refresh();
  }

  async download(status: ModelStatus) {
    delete this.errors[status.id];
    try {
      await downloadModel(status.manifest);
    } catch (e) {
      this.errors[status.id] = (e as Error).message;
    } finally {
      delete this.progress[status.id];
      await this.refresh();
    }
  }

  cancel(id: string) {
    cancelDownload(id);
  }

  async remove(id: string) {
    await deleteModel(id);
    await this.refresh();
  }
}

export const models = new ModelsStore();

/** Stored base models as picker choices (loaded from IndexedDB by the engine). */
class StoredChoices {
  readonly list = $derived<ModelChoice[]>(
    models.list
      .filter((m) => m.kind === 'base' && m.state === 'stored')
      .map((m) => ({ id: m.id, label: m.name, location: { kind: 'idb', modelId: m.id } })),
  );
}
export const storedChoices = new StoredChoices();
