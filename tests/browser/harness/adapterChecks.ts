/**
 * Adapters end to end in the page: a seeded random PEFT adapter is converted exactly as a dropped
 * folder would be (convertPeftAdapter), made resident in the engine, and compared with the
 * reference pass running the same converted tensors.
 */
import { Engine } from '../../../src/engine/engine.ts';
import { loadReferenceLlama, referenceAdapterFromManifest } from '../../../src/engine/reference.ts';
import { convertPeftAdapter, readAdapterTensors, type AdapterKind } from '../../../src/formats/adapter.ts';
import { randomPeftAdapter, type RandomAdapterOptions } from '../../../src/formats/randomAdapter.ts';
import { httpModelSource, loadModelManifest } from '../../../src/formats/modelFiles.ts';
import type { ModelSource } from '../../../src/formats/tensorCacheTypes.ts';
import { relErr } from './kernelChecks.ts';

const engines = new Map<string, Engine>();

async function engineFor(url: string): Promise<Engine> {
  let e = engines.get(url);
  if (!e) {
    e = new Engine();
    await e.load(httpModelSource(url));
    engines.set(url, e);
  }
  return e;
}

/** A converted adapter held in memory, served through the same ModelSource interface as a directory. */
function memorySource(files: Map<string, Uint8Array>, json: Record<string, unknown>): ModelSource {
  return {
    readJson: async (p) => json[p] ?? null,
    readShard: async (p) => {
      const b = files.get(p);
      if (!b) throw new Error(`no ${p}`);
      return b.slice().buffer;
    },
  };
}

async function makeAdapter(url: string, kind: AdapterKind, opts: RandomAdapterOptions, name: string) {
  const source = httpModelSource(url);
  const m = await loadModelManifest(source);
  const peft = randomPeftAdapter(m.config, kind, opts);
  const converted = await convertPeftAdapter({
    adapterConfig: peft.adapterConfig,
    adapterWeights: peft.adapterWeights,
    baseChatConfig: await source.readJson('mlc-chat-config.json'),
    baseTensorCache: await source.readJson('tensor-cache.json'),
    name,
  });
  return converted;
}

export interface AdapterCheck {
  logitsErr: number;
  baseVsAdapter: number; // how much the adapter changes the logits (relative)
  gotIds: number[];
  wantIds: number[];
  baseIds: number[];
}

export async function checkAdapter(url: string, kind: AdapterKind, opts: RandomAdapterOptions, promptIds: number[], newTokens: number): Promise<AdapterCheck> {
  const name = `${kind}-${JSON.stringify(opts)}`;
  const converted = await makeAdapter(url, kind, opts, name);
  const engine = await engineFor(url);
  const loaded = await engine.loadAdapter(memorySource(converted.shards, { 'adapter.json': converted.manifest as unknown as Record<string, unknown> }));
  const tensors = await readAdapterTensors(converted.manifest, converted.shards);
  const ref = await loadReferenceLlama(httpModelSource(url), referenceAdapterFromManifest(converted.manifest, tensors));

  engine.useAdapter(loaded);
  const got = await engine.logits(promptIds);
  ref.reset();
  const want = ref.forward(promptIds);
  engine.useAdapter(null);
  const base = await engine.logits(promptIds);
  const baseIds = (await engine.generate(promptIds, { maxNewTokens: newTokens })).ids;
  engine.useAdapter(loaded);
  const gotIds = (await engine.generate(promptIds, { maxNewTokens: newTokens })).ids;
  const wantIds = ref.greedyGenerate(promptIds, newTokens);
  engine.useAdapter(null);
  return { logitsErr: relErr(got, want), baseVsAdapter: relErr(base, want), gotIds, wantIds, baseIds };
}

/** An adapter converted against one base must be refused by another (different fingerprint). */
export async function loadIntoOtherBase(adapterBaseUrl: string, otherUrl: string): Promise<string> {
  const converted = await makeAdapter(adapterBaseUrl, 'lora', { seed: 3 }, 'mismatched');
  const engine = await engineFor(otherUrl);
  try {
    await engine.loadAdapter(memorySource(converted.shards, { 'adapter.json': converted.manifest as unknown as Record<string, unknown> }));
    return 'loaded';
  } catch (e) {
    return (e as Error).message;
  }
}
