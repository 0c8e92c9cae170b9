/**
 * What the model bar and the adapter picker offer, as plain data derived from the storage's model
 * list (the catalog, imported and stored manifests; no Svelte state: unit-tested in Node).
 *
 * One identity per model and adapter, from the picker to the engine and into share links and run
 * records: its manifest id ("tiny-q4f32_1", "tiny-q4f32_1-lora", "user-adapter-…"), or, for an
 * adapter folder given by URL, "url:<folder URL>". "none" is the base model alone.
 */
import type { ModelLocation } from '../engine/protocol.ts';
import type { AdapterKind } from '../formats/adapterFormat.ts';
import { catalogExtras } from '../storage/catalog.ts';
import type { ModelStatus } from '../storage/index.ts';
import type { ModelChoice } from './stores/engine.svelte.ts';

export type { AdapterKind, ModelChoice };
export const ADAPTER_KINDS: readonly AdapterKind[] = ['lora', 'series', 'parallel'];
export const KIND_WORDS: Record<AdapterKind, string> = { lora: 'LoRA', series: 'series adapter', parallel: 'parallel adapter' };
/** The adapter choice meaning "the base model alone". */
export const NO_ADAPTER = 'none';
/** The model the app offers first (the offline demo model). */
export const DEFAULT_MODEL_ID = 'tiny-q4f32_1';

export function isAdapterKind(x: unknown): x is AdapterKind {
  return typeof x === 'string' && (ADAPTER_KINDS as readonly string[]).includes(x);
}

export interface AdapterChoice {
  /** The manifest id, or "url:<folder URL>". */
  id: string;
  label: string;
  /** null until loaded for an adapter given by URL (its adapter.json says). */
  kind: AdapterKind | null;
  note?: string;
  /** Where the engine reads it; null: a published adapter not downloaded yet. */
  location: ModelLocation | null;
}

/**
 * Where the engine reads a model or adapter from: IndexedDB once stored; straight from the site
 * when the catalog says its files are served with the app (the tiny demo models); else nowhere
 * yet (it must be downloaded first).
 */
export function locationOf(m: Pick<ModelStatus, 'id' | 'state' | 'manifest'>): ModelLocation | null {
  if (m.state === 'stored') return { kind: 'idb', modelId: m.id };
  if (catalogExtras(m.manifest).servedWithApp && m.manifest.baseUrl && /^https?:/.test(m.manifest.baseUrl))
    return { kind: 'http', baseUrl: m.manifest.baseUrl };
  return null;
}

/**
 * The one name of a model or adapter: its manifest's name, as the Models view, the model bar, the
 * adapter picker and the status lines show it (adapterName for an adapter chosen by id).
 */
export function displayName(m: Pick<ModelStatus, 'manifest'>): string {
  return m.manifest.name;
}

/** The base models the model bar offers: stored ones and those served with the app. */
export function modelChoicesFrom(list: readonly ModelStatus[]): ModelChoice[] {
  const out: ModelChoice[] = [];
  for (const m of list) {
    const location = m.kind === 'base' ? locationOf(m) : null;
    if (location) out.push({ id: m.id, label: displayName(m), location, note: catalogExtras(m.manifest).note });
  }
  return out;
}

export function kindWord(kind: AdapterKind | null | undefined): string {
  return kind ? KIND_WORDS[kind] : 'adapter';
}

/** How an adapter is named wherever a solution or a run shows it: "tiny lora (random) · LoRA". */
export function adapterLabel(a: { name: string; kind?: AdapterKind | null } | null | undefined): string {
  return a ? `${a.name} · ${kindWord(a.kind)}` : 'none (base model)';
}

/**
 * The one name of an adapter wherever it shows (the picker, the status line, solutions, runs): the
 * name of its manifest (catalog or stored) when it is listed for the base; else, for a folder given
 * by URL, the name its adapter.json gives once loaded, or the folder's name before. adapter.json's
 * own name ("tiny lora (random)") is kept in run records, never shown beside a listed adapter.
 */
export function adapterName(id: string, choices: readonly Pick<AdapterChoice, 'id' | 'label'>[], loaded?: { name: string } | null): string {
  if (id === NO_ADAPTER) return 'none (base model)';
  const listed = choices.find((c) => c.id === id);
  if (listed) return listed.label;
  if (loaded) return loaded.name;
  return id.startsWith('url:') ? urlChoice(id.slice('url:'.length)).label : id;
}

/** A choice for an adapter folder given by URL (a share link, or the picker's URL field). */
export function urlChoice(url: string): AdapterChoice {
  const name = url.replace(/\/+$/, '').split('/').pop() || url;
  return { id: `url:${url}`, label: `${name} (from ${url})`, kind: null, location: { kind: 'http', baseUrl: url } };
}

/** Everything the picker offers for the base model `modelId` (a manifest id), given the storage's model list. */
export function adapterChoicesFor(modelId: string | null, list: readonly ModelStatus[]): AdapterChoice[] {
  if (!modelId) return [];
  const out: AdapterChoice[] = [];
  for (const m of list) {
    const a = m.manifest.adapter;
    if (m.kind !== 'adapter' || !a || a.baseModel !== modelId) continue;
    out.push({ id: m.id, label: displayName(m), kind: a.method, note: catalogExtras(m.manifest).note, location: locationOf(m) });
  }
  return out;
}

/**
 * The one place older ids are mapped to today's (share links and run records made before models
 * and adapters were named by their manifest ids): "tiny/<mode>" → "tiny-<mode>"; "demo:<kind>"
 * (the demo adapter of the tiny mode loaded) → "tiny-<mode>-<kind>"; "idb:<id>" → "<id>".
 */
export function currentModelId(id: string): string {
  return id.startsWith('tiny/') ? `tiny-${id.slice('tiny/'.length)}` : id;
}

/** An adapter id as it is today; `modelId` is the base it was chosen for (a demo adapter's base). */
export function currentAdapterId(id: string, modelId: string): string {
  if (id.startsWith('demo:')) return `${currentModelId(modelId)}-${id.slice('demo:'.length)}`;
  if (id.startsWith('idb:')) return id.slice('idb:'.length);
  return id;
}
