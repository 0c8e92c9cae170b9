/**
 * What the adapter picker offers for a base model, as plain data (no Svelte state: unit-tested in
 * Node). Choice ids (also in share links and run records): "none", "demo:<kind>" (the tiny demo
 * adapter of the loaded tiny mode), "idb:<manifest id>" (stored in this browser, or published and
 * still to download), "url:<folder URL>".
 */
import type { ModelLocation } from '../engine/protocol.ts';
import type { ModelStatus } from '../storage/index.ts';

export const ADAPTER_KINDS = ['lora', 'series', 'parallel'] as const;
export type AdapterKind = (typeof ADAPTER_KINDS)[number];
export const KIND_WORDS: Record<string, string> = { lora: 'LoRA', series: 'series adapter', parallel: 'parallel adapter' };
export const DEMO_NOTE = 'random weights';

export interface AdapterChoice {
  id: string;
  label: string;
  /** lora | series | parallel; "" until loaded for an adapter given by URL. */
  kind: string;
  note?: string;
  /** Where the engine reads it; null: a published adapter not downloaded yet. */
  location: ModelLocation | null;
}

/** "tiny/q4f32_1" (the app's id for a tiny demo model) → its mode; null for other models. */
export function tinyModeOf(modelId: string): string | null {
  return modelId.startsWith('tiny/') ? modelId.slice('tiny/'.length) : null;
}

/** The manifest id adapters name as their base ("tiny/q4f32_1" is the manifest "tiny-q4f32_1"). */
export function baseManifestId(modelId: string): string {
  const mode = tinyModeOf(modelId);
  return mode ? `tiny-${mode}` : modelId;
}

export function kindWord(kind: string | null | undefined): string {
  return kind ? (KIND_WORDS[kind] ?? kind) : 'adapter';
}

/** How an adapter is named wherever a solution or a run shows it: "tiny lora (random) · LoRA". */
export function adapterLabel(a: { name: string; kind?: string | null } | null | undefined): string {
  return a ? `${a.name} · ${kindWord(a.kind)}` : 'none (base model)';
}

/** A choice for an adapter folder given by URL (a share link, or the picker's URL field). */
export function urlChoice(url: string): AdapterChoice {
  const name = url.replace(/\/+$/, '').split('/').pop() || url;
  return { id: `url:${url}`, label: `${name} (from ${url})`, kind: '', location: { kind: 'http', baseUrl: url } };
}

/** Everything the picker offers for the base model `modelId`, given the storage's model list. */
export function adapterChoicesFor(modelId: string | null, stored: readonly ModelStatus[], baseURI: string): AdapterChoice[] {
  if (!modelId) return [];
  const out: AdapterChoice[] = [];
  const mode = tinyModeOf(modelId);
  if (mode) {
    for (const kind of ADAPTER_KINDS) {
      out.push({
        id: `demo:${kind}`,
        label: `Tiny ${kindWord(kind)} demo`,
        kind,
        note: DEMO_NOTE,
        location: { kind: 'http', baseUrl: new URL(`models/tiny/adapters/${mode}-${kind}/`, baseURI).href },
      });
    }
  }
  const base = baseManifestId(modelId);
  for (const m of stored) {
    const a = m.manifest.adapter;
    if (m.kind !== 'adapter' || !a || a.baseModel !== base) continue;
    out.push({
      id: `idb:${m.id}`,
      label: m.name,
      kind: a.method,
      location: m.state === 'stored' ? { kind: 'idb', modelId: m.id } : null,
    });
  }
  return out;
}
