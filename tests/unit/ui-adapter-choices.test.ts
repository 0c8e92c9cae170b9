import { describe, expect, it } from 'vitest';
import { adapterChoicesFor, adapterLabel, baseManifestId, urlChoice } from '../../src/ui/adapterChoices.ts';
import { paperValueForRun } from '../../src/reasoning/runner.ts';
import type { ModelStatus } from '../../src/storage/index.ts';

const BASE_URI = 'http://localhost:5199/';

function adapter(id: string, baseModel: string, method: string, state: ModelStatus['state']): ModelStatus {
  return {
    id,
    name: `${id} name`,
    kind: 'adapter',
    state,
    bytesStored: 0,
    bytesTotal: null,
    files: [],
    manifest: { id, name: `${id} name`, kind: 'adapter', adapter: { method, baseModel, baseFingerprint: null } },
  } as unknown as ModelStatus;
}

describe('adapter choices for a base model', () => {
  it('offers the loaded tiny mode its three demo adapters, marked as random weights', () => {
    const choices = adapterChoicesFor('tiny/q4f32_1', [], BASE_URI);
    expect(choices.map((c) => c.id)).toEqual(['demo:lora', 'demo:series', 'demo:parallel']);
    expect(choices.every((c) => c.note === 'random weights')).toBe(true);
    expect(choices[0].location).toEqual({ kind: 'http', baseUrl: 'http://localhost:5199/models/tiny/adapters/q4f32_1-lora/' });
  });

  it('lists stored adapters for this base, published ones as "download first", and nothing made for other bases', () => {
    const stored = [
      adapter('user-adapter-mine-tiny-q4f32_1', 'tiny-q4f32_1', 'lora', 'stored'),
      adapter('other-base', 'tiny-q0f32', 'lora', 'stored'),
      adapter('llama-2-7b-lora-math10k-q4f32_1', 'llama-2-7b-q4f32_1', 'lora', 'not-stored'),
      adapter('llama-2-7b-series-math10k-q4f32_1', 'llama-2-7b-q4f32_1', 'series', 'stored'),
    ];
    const tiny = adapterChoicesFor('tiny/q4f32_1', stored, BASE_URI);
    expect(tiny.map((c) => c.id)).toEqual(['demo:lora', 'demo:series', 'demo:parallel', 'idb:user-adapter-mine-tiny-q4f32_1']);
    expect(tiny[3].location).toEqual({ kind: 'idb', modelId: 'user-adapter-mine-tiny-q4f32_1' });

    const big = adapterChoicesFor('llama-2-7b-q4f32_1', stored, BASE_URI);
    expect(big.map((c) => [c.id, c.kind, c.location === null])).toEqual([
      ['idb:llama-2-7b-lora-math10k-q4f32_1', 'lora', true],
      ['idb:llama-2-7b-series-math10k-q4f32_1', 'series', false],
    ]);
    expect(adapterChoicesFor(null, stored, BASE_URI)).toEqual([]);
  });

  it('names bases as their manifests do, URL adapters by their folder, adapters by name and kind', () => {
    expect(baseManifestId('tiny/q0f16')).toBe('tiny-q0f16');
    expect(baseManifestId('llama-2-7b-q4f16_1')).toBe('llama-2-7b-q4f16_1');
    const u = urlChoice('https://example.org/adapters/my-lora/');
    expect(u.id).toBe('url:https://example.org/adapters/my-lora/');
    expect(u.label).toContain('my-lora');
    expect(u.location).toEqual({ kind: 'http', baseUrl: 'https://example.org/adapters/my-lora/' });
    expect(adapterLabel({ name: 'tiny lora (random)', kind: 'lora' })).toBe('tiny lora (random) · LoRA');
    expect(adapterLabel(null)).toBe('none (base model)');
  });
});

describe("a run's paper cell follows its recorded adapter kind", () => {
  it('uses the kind over the name', () => {
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'gsm8k', adapter: 'my math adapter', adapterKind: 'lora' })).toBe(44.66);
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'svamp', adapter: 'x', adapterKind: 'series' })).toBe(42.3);
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'mawps', adapter: 'x', adapterKind: 'parallel' })).toBe(83.61);
    expect(paperValueForRun({ promptId: 'alpaca', dataset: 'aqua', adapter: 'tiny lora (random)' })).toBe(18.9);
    expect(paperValueForRun({ promptId: 'q_end', dataset: 'gsm8k', adapter: 'x', adapterKind: 'lora' })).toBeUndefined();
    expect(paperValueForRun({ promptId: 'q_end', dataset: 'gsm8k', adapter: null, adapterKind: null })).toBe(15.61);
  });
});
