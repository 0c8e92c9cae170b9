import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adapterChoicesFor, adapterLabel, currentAdapterId, currentModelId, modelChoicesFrom, urlChoice } from '../../src/ui/adapterChoices.ts';
import { paperValueForRun } from '../../src/reasoning/runner.ts';
import { parseManifest, type ModelManifest } from '../../src/formats/manifest.ts';
import type { ModelStatus } from '../../src/storage/index.ts';

const SITE = 'http://localhost:5199/';
const MODELS = join(import.meta.dirname, '../../models');

/** A shipped catalog manifest as the app reads it (models/index.json beside the page). */
function shipped(id: string): ModelManifest {
  return parseManifest(readFileSync(join(MODELS, `${id}.json`), 'utf8'), `${id}.json`, `${SITE}models/${id}.json`);
}

function status(manifest: ModelManifest, state: ModelStatus['state']): ModelStatus {
  return { id: manifest.id, name: manifest.name, kind: manifest.kind, state, bytesStored: 0, bytesTotal: null, files: [], manifest } as unknown as ModelStatus;
}

function adapter(id: string, baseModel: string, method: 'lora' | 'series' | 'parallel', state: ModelStatus['state']): ModelStatus {
  return status({ schema: 1, id, name: `${id} name`, kind: 'adapter', adapter: { method, baseModel, baseFingerprint: null }, files: [] }, state);
}

const catalog = [
  'tiny-q4f32_1',
  'tiny-q4f32_1-lora',
  'tiny-q4f32_1-series',
  'tiny-q4f32_1-parallel',
  'tiny-q0f32',
  'tiny-q0f32-lora',
  'llama-2-7b-q4f32_1',
].map((id) => status(shipped(id), 'not-stored'));

describe('model choices come from the catalog', () => {
  it('offers the tiny models (served with the app, read over HTTP) and stored bases, not bases still to download', () => {
    const stored = status({ schema: 1, id: 'my-base', name: 'My base', kind: 'base', files: [] }, 'stored');
    const choices = modelChoicesFrom([...catalog, stored]);
    expect(choices.map((c) => c.id)).toEqual(['tiny-q4f32_1', 'tiny-q0f32', 'my-base']);
    expect(choices[0].location).toEqual({ kind: 'http', baseUrl: 'http://localhost:5199/models/tiny/q4f32_1/' });
    expect(choices[0].note).toBe('random weights: shows the pipeline, not the reasoning');
    expect(choices[2].location).toEqual({ kind: 'idb', modelId: 'my-base' });
  });

  it('a tiny model once stored is read from IndexedDB, under the same id', () => {
    const choices = modelChoicesFrom([status(shipped('tiny-q4f32_1'), 'stored')]);
    expect(choices).toEqual([expect.objectContaining({ id: 'tiny-q4f32_1', location: { kind: 'idb', modelId: 'tiny-q4f32_1' } })]);
  });
});

describe('adapter choices for a base model', () => {
  it("offers the tiny model its mode's three demo adapters, marked as random weights", () => {
    const choices = adapterChoicesFor('tiny-q4f32_1', catalog);
    expect(choices.map((c) => [c.id, c.kind]).sort()).toEqual([
      ['tiny-q4f32_1-lora', 'lora'],
      ['tiny-q4f32_1-parallel', 'parallel'],
      ['tiny-q4f32_1-series', 'series'],
    ]);
    expect(choices.every((c) => c.note === 'random weights')).toBe(true);
    expect(choices.find((c) => c.kind === 'lora')!.location).toEqual({ kind: 'http', baseUrl: 'http://localhost:5199/models/tiny/adapters/q4f32_1-lora/' });
  });

  it('lists stored adapters for this base, published ones as "download first", and nothing made for other bases', () => {
    const stored = [
      adapter('user-adapter-mine-tiny-q4f32_1', 'tiny-q4f32_1', 'lora', 'stored'),
      adapter('other-base', 'tiny-q0f32', 'lora', 'stored'),
      adapter('llama-2-7b-lora-math10k-q4f32_1', 'llama-2-7b-q4f32_1', 'lora', 'not-stored'),
      adapter('llama-2-7b-series-math10k-q4f32_1', 'llama-2-7b-q4f32_1', 'series', 'stored'),
    ];
    const tiny = adapterChoicesFor('tiny-q4f32_1', [...catalog, ...stored]);
    expect(tiny.map((c) => c.id)).toEqual(['tiny-q4f32_1-lora', 'tiny-q4f32_1-series', 'tiny-q4f32_1-parallel', 'user-adapter-mine-tiny-q4f32_1']);
    expect(tiny[3].location).toEqual({ kind: 'idb', modelId: 'user-adapter-mine-tiny-q4f32_1' });

    const big = adapterChoicesFor('llama-2-7b-q4f32_1', [...catalog, ...stored]);
    expect(big.map((c) => [c.id, c.kind, c.location === null])).toEqual([
      ['llama-2-7b-lora-math10k-q4f32_1', 'lora', true],
      ['llama-2-7b-series-math10k-q4f32_1', 'series', false],
    ]);
    expect(adapterChoicesFor(null, stored)).toEqual([]);
  });

  it('names URL adapters by their folder, adapters by name and kind', () => {
    const u = urlChoice('https://example.org/adapters/my-lora/');
    expect(u.id).toBe('url:https://example.org/adapters/my-lora/');
    expect(u.label).toContain('my-lora');
    expect(u.kind).toBeNull();
    expect(u.location).toEqual({ kind: 'http', baseUrl: 'https://example.org/adapters/my-lora/' });
    expect(adapterLabel({ name: 'tiny lora (random)', kind: 'lora' })).toBe('tiny lora (random) · LoRA');
    expect(adapterLabel(null)).toBe('none (base model)');
  });
});

describe('older share links and run records keep working', () => {
  it('maps the old tiny ids to the catalog ids, and leaves today’s ids alone', () => {
    expect(currentModelId('tiny/q0f16')).toBe('tiny-q0f16');
    expect(currentModelId('tiny-q0f16')).toBe('tiny-q0f16');
    expect(currentModelId('llama-2-7b-q4f16_1')).toBe('llama-2-7b-q4f16_1');
    expect(currentAdapterId('demo:series', 'tiny/q4f32_1')).toBe('tiny-q4f32_1-series');
    expect(currentAdapterId('demo:lora', 'tiny-q0f32')).toBe('tiny-q0f32-lora');
    expect(currentAdapterId('idb:user-adapter-mine-tiny-q4f32_1', 'tiny-q4f32_1')).toBe('user-adapter-mine-tiny-q4f32_1');
    expect(currentAdapterId('url:https://example.org/a/', 'tiny-q4f32_1')).toBe('url:https://example.org/a/');
    expect(currentAdapterId('none', 'tiny-q4f32_1')).toBe('none');
    expect(currentAdapterId('tiny-q4f32_1-lora', 'tiny-q4f32_1')).toBe('tiny-q4f32_1-lora');
  });

  it('every old demo adapter id names a shipped catalog manifest made for that base', () => {
    for (const mode of ['q0f16', 'q0f32', 'q4f16_1', 'q4f32_1'])
      for (const kind of ['lora', 'series', 'parallel'] as const) {
        const m = shipped(currentAdapterId(`demo:${kind}`, `tiny/${mode}`));
        expect(m.adapter).toEqual({ method: kind, baseModel: currentModelId(`tiny/${mode}`), baseFingerprint: null });
      }
  });
});

describe("a run's paper cell follows its recorded adapter kind", () => {
  it('uses the kind, never the name', () => {
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'gsm8k', adapter: 'my math adapter', adapterKind: 'lora' })).toBe(44.66);
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'svamp', adapter: 'x', adapterKind: 'series' })).toBe(42.3);
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'mawps', adapter: 'x', adapterKind: 'parallel' })).toBe(83.61);
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'aqua', adapter: 'lora-ish name', adapterKind: 'series' })).toBe(17.32);
    // No recorded kind: the name is not guessed from.
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'aqua', adapter: 'tiny lora (random)' })).toBeUndefined();
    expect(paperValueForRun({ promptId: 'q_end', dataset: 'gsm8k', adapter: 'x', adapterKind: 'lora' })).toBeUndefined();
    expect(paperValueForRun({ promptId: 'q_end', dataset: 'gsm8k', adapter: null, adapterKind: null })).toBe(15.61);
  });
});
