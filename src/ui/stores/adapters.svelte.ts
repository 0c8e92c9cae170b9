/**
 * Adapters for the loaded base model: which can be chosen (demo adapters of the tiny models,
 * adapters stored in IndexedDB, published ones still to download), which one the engine uses, and
 * loading one. Several stay resident in the engine, so switching back is instant (no reload).
 *
 * Choice ids (also in share links and run records): "none", "demo:<kind>" (the tiny demo adapter of
 * the loaded tiny mode), "idb:<manifest id>" (stored in this browser), "url:<folder URL>".
 */
import { adapterChoicesFor, urlChoice, adapterLabel, kindWord, type AdapterChoice } from '../adapterChoices.ts';
import { engine, locationKey, type AdapterInfo } from './engine.svelte.ts';
import { lab, NO_ADAPTER } from './lab.svelte.ts';
import { models } from './models.svelte.ts';

export { NO_ADAPTER };
export { ADAPTER_KINDS, KIND_WORDS, DEMO_NOTE, adapterChoicesFor, adapterLabel, baseManifestId, kindWord, tinyModeOf, urlChoice, type AdapterChoice, type AdapterKind } from '../adapterChoices.ts';

class AdaptersStore {
  /** The choices for the loaded model (or, before one loads, the model picked in the model bar). */
  readonly choices = $derived(adapterChoicesFor(engine.model?.id ?? lab.modelId, models.list, document.baseURI));
  /** Published adapters for this base that must be downloaded before they can be used. */
  readonly downloadFirst = $derived(this.choices.filter((c) => c.location === null));
  /** The choice id being loaded now. */
  loading = $state<string | null>(null);
  error = $state<{ title: string; message: string } | null>(null);
  /** Set while a solve or a run switches adapters itself (the picker then waits). */
  lockedBy = $state<string | null>(null);
  /** The choice id whose adapter the engine uses (valid while engine.adapter is set). */
  private lastUsed = $state(NO_ADAPTER);

  readonly activeId = $derived(engine.adapter ? this.lastUsed : NO_ADAPTER);

  /** The choice for an id: listed for this base, or an adapter folder URL; null when unknown here. */
  resolve(id: string): AdapterChoice | null {
    if (id.startsWith('url:')) return this.choices.find((c) => c.id === id) ?? urlChoice(id.slice(4));
    return this.choices.find((c) => c.id === id) ?? null;
  }

  /** What the engine said about a resident choice (name, kind), or null when it is not resident. */
  infoOf(id: string): AdapterInfo | null {
    const loc = this.resolve(id)?.location;
    return loc ? (engine.resident[locationKey(loc)] ?? null) : null;
  }

  /** A human name for a choice id ("none (base model)", the engine's name once resident, else the label). */
  describe(id: string): string {
    if (id === NO_ADAPTER) return adapterLabel(null);
    const info = this.infoOf(id);
    if (info) return adapterLabel(info);
    const c = this.resolve(id);
    return c ? `${c.label}${c.kind ? ` · ${kindWord(c.kind)}` : ''}` : id;
  }

  /**
   * Make the adapter `id` resident (loading it once) and the one the engine uses; "none": the base
   * alone. Resolves with what the engine uses. Throws with the engine's words when it does not fit.
   */
  async ensure(id: string): Promise<AdapterInfo | null> {
    if (id === NO_ADAPTER) {
      await engine.useAdapter(null);
      this.lastUsed = NO_ADAPTER;
      return null;
    }
    const choice = this.resolve(id);
    if (!choice) throw new Error(`The adapter "${id}" is not available for ${engine.model?.label ?? 'this model'}.`);
    if (!choice.location) throw new Error(`${choice.label} is not downloaded yet: download it in the Models tab first.`);
    let info = engine.resident[locationKey(choice.location)];
    if (!info) {
      this.loading = id;
      try {
        info = await engine.loadAdapter(choice.location, locationKey(choice.location));
      } finally {
        this.loading = null;
      }
    }
    await engine.useAdapter(info.id);
    this.lastUsed = id;
    return info;
  }

  /**
   * Apply the adapter the lab wants (lab.adapterId: the picker, a share link). On failure the
   * error banner says why in the engine's words and the choice goes back to what is in use.
   */
  async apply(id = lab.adapterId): Promise<void> {
    if (!engine.ready || this.loading !== null || this.lockedBy !== null) return;
    if (id === this.activeId) return;
    this.error = null;
    try {
      await this.ensure(id);
    } catch (e) {
      const label = this.resolve(id)?.label ?? id;
      this.error = { title: `Could not use the adapter ${label}`, message: e instanceof Error ? e.message : String(e) };
      if (lab.adapterId === id) lab.adapterId = this.activeId;
    }
    // The user may have chosen again while this one loaded (e.g. over a share link's adapter being
    // restored): that later choice wins, it is not dropped.
    if (lab.adapterId !== id && lab.adapterId !== this.activeId) await this.apply();
  }

  /**
   * Run `work` with the adapter switching left to it (solves and runs call ensure themselves);
   * afterwards the adapter the lab shows is active again.
   */
  async withLock<T>(label: string, work: () => Promise<T>): Promise<T> {
    this.lockedBy = label;
    try {
      return await work();
    } finally {
      this.lockedBy = null;
      if (engine.ready && lab.adapterId !== this.activeId) await this.apply();
    }
  }

  dismissError() {
    this.error = null;
  }
}

export const adapters = new AdaptersStore();
