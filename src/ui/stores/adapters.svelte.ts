/**
 * Adapters for the loaded base model: which can be chosen (the catalog's demo adapters of the tiny
 * models, adapters stored in IndexedDB, published ones still to download, one given by URL), which
 * one the engine uses, and loading one. Several stay resident in the engine, so switching back is
 * instant (no reload). An adapter has one id everywhere (see adapterChoices.ts): the picker's
 * value, the share link, the run record and the key the engine keeps it resident under.
 */
import { untrack } from 'svelte';
import { adapterChoicesFor, adapterName, urlChoice, adapterLabel, kindWord, NO_ADAPTER, type AdapterChoice } from '../adapterChoices.ts';
import { foreignAdapterFolder } from '../foreignSources.ts';
import { engine, type AdapterInfo } from './engine.svelte.ts';
import { lab } from './lab.svelte.ts';
import { models } from './models.svelte.ts';

export { NO_ADAPTER };
export { ADAPTER_KINDS, KIND_WORDS, adapterChoicesFor, adapterLabel, kindWord, urlChoice, type AdapterChoice, type AdapterKind } from '../adapterChoices.ts';

class AdaptersStore {
  /** The choices for the loaded model (or, before one loads, the model picked in the model bar). */
  readonly choices = $derived(adapterChoicesFor(engine.model?.id ?? lab.modelId, models.list));
  /** Published adapters for this base that must be downloaded before they can be used. */
  readonly downloadFirst = $derived(this.choices.filter((c) => c.location === null));
  /** The choice id being loaded now. */
  loading = $state<string | null>(null);
  error = $state<{ title: string; message: string } | null>(null);
  /** Set while a solve or a run switches adapters itself (the picker then waits). */
  lockedBy = $state<string | null>(null);

  /** The id of the adapter the engine uses ("none": the base alone). */
  readonly activeId = $derived(engine.adapter?.id ?? NO_ADAPTER);

  /** Adapter folders on other sites the user said yes to in this page (typed in the picker, or confirmed). */
  approved = $state<string[]>([]);
  /**
   * The adapters a link named on another site that wait for the user's yes (the picker's and the
   * comparison's): nothing is fetched from there until then.
   */
  readonly pending = $derived(
    [...new Set([lab.adapterId, lab.compareId ? lab.compareAdapterId : NO_ADAPTER])].flatMap((id) => {
      const folder = this.needsConfirm(id);
      return folder ? [{ id, ...folder }] : [];
    }),
  );

  /** The folder and its site when `id` is an adapter on another origin not yet confirmed; else null. */
  needsConfirm(id: string): { url: string; origin: string } | null {
    if (this.approved.includes(id)) return null;
    return foreignAdapterFolder(id, location.origin);
  }

  /** Yes to the adapter from another site: it is fetched and used. */
  confirm(id: string) {
    if (!this.approved.includes(id)) this.approved = [...this.approved, id];
    void this.apply();
  }

  /** No: the base model alone instead (for the comparison side too), nothing fetched. */
  decline(id: string) {
    if (lab.adapterId === id) lab.adapterId = NO_ADAPTER;
    if (lab.compareAdapterId === id) lab.compareAdapterId = NO_ADAPTER;
  }

  /** The choice for an id: listed for this base, or an adapter folder URL; null when unknown here. */
  resolve(id: string): AdapterChoice | null {
    const listed = this.choices.find((c) => c.id === id);
    if (listed) return listed;
    return id.startsWith('url:') ? urlChoice(id.slice(4)) : null;
  }

  /** The kind of an adapter: the engine's word once resident, else the catalog's; null for none or unknown. */
  kindOf(id: string): AdapterChoice['kind'] {
    return engine.resident[id]?.kind ?? this.resolve(id)?.kind ?? null;
  }

  /** The adapter's one name (adapterChoices.ts adapterName): the picker's label, also once resident. */
  name(id: string): string {
    return adapterName(id, this.choices, engine.resident[id]);
  }

  /** Its name and kind, as every view shows an adapter: "Tiny LoRA demo (q4f32_1) · LoRA", "none (base model)". */
  describe(id: string): string {
    if (id === NO_ADAPTER) return adapterLabel(null);
    const kind = this.kindOf(id);
    return `${this.name(id)}${kind ? ` · ${kindWord(kind)}` : ''}`;
  }

  /** describe() for an adapter the engine reported (a solution's, a generation's); null: the base alone. */
  describeUsed(info: AdapterInfo | null): string {
    return info ? this.describe(info.id) : adapterLabel(null);
  }

  /**
   * How a stored run's adapter is shown: under its one name when the run's adapter id is listed for
   * the run's model; else as the run recorded it (adapter.json's name).
   */
  describeRun(run: { model: string; adapter: string | null; adapterKind?: AdapterChoice['kind']; adapterId?: string }): string {
    if (run.adapter === null) return adapterLabel(null);
    const listed = run.adapterId ? adapterChoicesFor(run.model, models.list).find((c) => c.id === run.adapterId) : undefined;
    return adapterLabel({ name: listed?.label ?? run.adapter, kind: run.adapterKind ?? listed?.kind ?? null });
  }

  /**
   * Make the adapter `id` resident (loading it once) and the one the engine uses; "none": the base
   * alone. Resolves with what the engine uses. Throws with the engine's words when it does not fit.
   */
  async ensure(id: string): Promise<AdapterInfo | null> {
    if (id === NO_ADAPTER) {
      await engine.useAdapter(null);
      return null;
    }
    let info: AdapterInfo | undefined = engine.resident[id];
    const foreign = this.needsConfirm(id);
    if (!info && foreign) throw new Error(`The adapter at ${foreign.url} is on another site (${foreign.origin}): confirm it above before it is downloaded.`);
    if (!info) {
      const choice = this.resolve(id);
      if (!choice) throw new Error(`The adapter "${id}" is not available for ${engine.model?.label ?? 'this model'}.`);
      if (!choice.location) throw new Error(`${choice.label} is not downloaded yet: download it in the Models tab first.`);
      this.loading = id;
      try {
        info = await engine.loadAdapter(choice.location, id);
      } finally {
        this.loading = null;
      }
    }
    await engine.useAdapter(id);
    return info;
  }

  /**
   * Apply the adapter the lab wants (lab.adapterId: the picker, a share link). On failure the
   * error banner says why in the engine's words and the choice goes back to what is in use.
   */
  async apply(id = lab.adapterId): Promise<void> {
    if (!engine.ready || this.loading !== null || this.lockedBy !== null) return;
    if (id === this.activeId) return;
    // A link's adapter on another site waits for the user's answer (the banner asks); nothing is fetched meanwhile.
    if (this.needsConfirm(id)) return;
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

  /** The picker's "Adapter from a URL": choose the folder at `text` (resolved against the page). */
  chooseUrl(text: string) {
    const u = text.trim();
    if (!u) return;
    try {
      const id = `url:${new URL(u.endsWith('/') ? u : `${u}/`, document.baseURI).href}`;
      // Typed by the user and confirmed with Use: their own choice, not a link's.
      if (!this.approved.includes(id)) this.approved = [...this.approved, id];
      lab.adapterId = id;
    } catch {
      this.error = { title: 'Not an address', message: `"${u}" is not a URL of an adapter folder (the folder holding adapter.json).` };
    }
  }

  /**
   * The rule that the wanted adapter is in use: applied when a model has loaded and whenever the
   * choice changes (the picker, a share link). Call once (App does); returns the cleanup.
   */
  start(): () => void {
    return $effect.root(() => {
      $effect(() => {
        void [engine.info, lab.adapterId];
        // Only those two trigger it: apply reads (and writes) much more.
        untrack(() => void this.apply());
      });
    });
  }

  dismissError() {
    this.error = null;
  }
}

export const adapters = new AdaptersStore();
