/**
 * Adapters end to end in the page: a seeded random PEFT adapter is converted exactly as a dropped
 * folder would be (convertPeftAdapter), made resident in the engine, and compared with the
 * reference pass running the same converted tensors.
 */
import { Engine } from '../../../src/engine/engine.ts';
import { loadReferenceLlama, referenceAdapterFromManifest } from '../../../src/engine/reference.ts';
import { readAdapterTensors, type AdapterKind } from '../../../src/formats/adapterFormat.ts';
import { convertPeftAdapter } from '../../../src/formats/adapterConversion.ts';
import { randomPeftAdapter, type RandomAdapterOptions } from '../../../src/formats/randomAdapter.ts';
import { httpModelSource, loadModelManifest } from '../../../src/formats/modelFiles.ts';
import type { ModelSource } from '../../../src/formats/tensorCacheTypes.ts';
import { relErr } from './kernelChecks.ts';
import { argmax } from '../../../src/engine/sampling.ts';

const engines = new Map<string, Engine>();

type KernelChoice = { q4Decode?: 'auto' | 'workgroup' | 'row'; prefillMatmul?: 'auto' | 'tiled' | 'row' };

async function engineFor(url: string, kernels: KernelChoice = {}): Promise<Engine> {
  const key = `${url}|${JSON.stringify(kernels)}`;
  let e = engines.get(key);
  if (!e) {
    e = new Engine();
    await e.load(httpModelSource(url), kernels);
    engines.set(key, e);
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
  const { id: loaded } = await engine.loadAdapter(
    memorySource(converted.shards, { 'adapter.json': converted.manifest as unknown as Record<string, unknown> }),
    name,
  );
  const tensors = await readAdapterTensors(converted.manifest, converted.shards);
  const ref = await loadReferenceLlama(httpModelSource(url), referenceAdapterFromManifest(converted.manifest, tensors));

  await engine.useAdapter(loaded);
  const got = await engine.logits(promptIds);
  ref.reset();
  const want = ref.forward(promptIds);
  await engine.useAdapter(null);
  const base = await engine.logits(promptIds);
  // No stop id: every run is newTokens long, whatever a random model's EOS odds.
  const baseIds = (await engine.generate(promptIds, { maxNewTokens: newTokens, stopTokenIds: [] })).ids;
  await engine.useAdapter(loaded);
  const gotIds = (await engine.generate(promptIds, { maxNewTokens: newTokens, stopTokenIds: [] })).ids;
  const wantIds = ref.greedyGenerate(promptIds, newTokens, []);
  await engine.useAdapter(null);
  return { logitsErr: relErr(got, want), baseVsAdapter: relErr(base, want), gotIds, wantIds, baseIds };
}

/**
 * An adapter through the GPU kernels, which 'auto' does not pick on a CPU-emulated adapter: the
 * tiled prefill matmul (more than 8 rows) and the q4 workgroup decode kernel (up to 8), each with
 * LoRA / parallel up-projections fused in. Every prompt token's logits from one 9-row prefill;
 * then a 5-row prefill, the prompt's last tokens one at a time and greedy steps, each step's
 * logits and the greedy ids against the reference; plus the body's dispatch labels (which kernels
 * ran). On a CPU-emulated adapter every call through the workgroup kernels costs about as many
 * workgroups as the LM head has rows: the spec runs it on a 500-id model (small-q4f32_1).
 */
export async function checkAdapterGpuKernels(url: string, kind: AdapterKind, opts: RandomAdapterOptions, promptIds: number[], newTokens: number) {
  const name = `gpu-kernels-${kind}-${JSON.stringify(opts)}`;
  const converted = await makeAdapter(url, kind, opts, name);
  const engine = await engineFor(url, { q4Decode: 'workgroup', prefillMatmul: 'tiled' });
  const { id: loaded } = await engine.loadAdapter(
    memorySource(converted.shards, { 'adapter.json': converted.manifest as unknown as Record<string, unknown> }),
    name,
  );
  const tensors = await readAdapterTensors(converted.manifest, converted.shards);
  const ref = await loadReferenceLlama(httpModelSource(url), referenceAdapterFromManifest(converted.manifest, tensors));
  const worst = (got: Float32Array[], want: Float32Array[]) => Math.max(...got.map((g, i) => relErr(g, want[i])));

  await engine.useAdapter(loaded);
  const model = engine.llamaModel();
  const V = model.config.vocabSize;
  const prefill = await engine.logits(promptIds, { allLogits: true });
  ref.reset();
  const wantPrefill = ref.forwardAll(promptIds);
  const prefillErr = worst(
    wantPrefill.map((_, t) => prefill.subarray(t * V, (t + 1) * V)),
    wantPrefill,
  );

  // The prompt's last 4 tokens one at a time, then the greedy steps, through the forced decode kernel.
  const first = promptIds.length - 4;
  model.reset();
  const stepped = [await model.forward(promptIds.slice(0, first))];
  for (const id of promptIds.slice(first)) stepped.push(await model.forward([id]));
  const gotIds: number[] = [];
  for (;;) {
    gotIds.push(argmax(stepped[stepped.length - 1]));
    if (gotIds.length >= newTokens) break;
    stepped.push(await model.forward([gotIds[gotIds.length - 1]]));
  }
  const wantIds = ref.greedyGenerate(promptIds, newTokens);
  ref.reset();
  // The reference's logits at the positions the engine's steps ended on (the engine's own ids fed back).
  const wantSteps = ref.forwardAll([...promptIds, ...gotIds.slice(0, -1)]).slice(first - 1);
  const decodeErr = worst(stepped, wantSteps);

  const labels = model.bodyDispatchLabels(loaded);
  await engine.useAdapter(null);
  const base = await engine.logits(promptIds);
  await engine.unloadAdapter(loaded);
  return { prefillErr, decodeErr, baseVsAdapter: relErr(base, wantPrefill[wantPrefill.length - 1]), gotIds, wantIds, labels };
}

/** Dispatches one forward call runs, with no adapter and with each of the given ones (resident together). */
export async function dispatchCounts(url: string, cases: { kind: AdapterKind; opts: RandomAdapterOptions }[]) {
  const engine = await engineFor(url);
  const names: string[] = [];
  for (const [i, c] of cases.entries()) {
    const converted = await makeAdapter(url, c.kind, c.opts, `count-${i}-${c.kind}`);
    names.push(
      (
        await engine.loadAdapter(
          memorySource(converted.shards, { 'adapter.json': converted.manifest as unknown as Record<string, unknown> }),
          `count-${i}-${c.kind}`,
        )
      ).id,
    );
  }
  const model = engine.llamaModel();
  const result = { layers: model.config.numLayers, base: model.bodyDispatchLabels(null), adapters: names.map((n) => model.bodyDispatchLabels(n)) };
  for (const n of names) await engine.unloadAdapter(n);
  return result;
}

/** An adapter converted against one base must be refused by another (different fingerprint). */
export async function loadIntoOtherBase(adapterBaseUrl: string, otherUrl: string): Promise<string> {
  const converted = await makeAdapter(adapterBaseUrl, 'lora', { seed: 3 }, 'mismatched');
  const engine = await engineFor(otherUrl);
  try {
    await engine.loadAdapter(memorySource(converted.shards, { 'adapter.json': converted.manifest as unknown as Record<string, unknown> }), 'mismatched');
    return 'loaded';
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Reshaping a loaded model (another context and batch, weights kept): the resident adapter stays
 * active and exact, the planner still predicts the buffers, batched generation matches the
 * reference; a shape that cannot fit is refused and the old one keeps working.
 */
export async function checkReshape(url: string, promptIds: number[][], newTokens: number) {
  const { planMemory } = await import('../../../src/engine/memoryPlan.ts');
  const converted = await makeAdapter(url, 'parallel', { seed: 11 }, 'reshape-parallel');
  const engine = new Engine();
  await engine.load(httpModelSource(url));
  const { contextLength, maxBatch } = engine.info!;
  const before = { contextLength, maxBatch };
  const { id: name } = await engine.loadAdapter(
    memorySource(converted.shards, { 'adapter.json': converted.manifest as unknown as Record<string, unknown> }),
    'reshape-parallel',
  );
  await engine.useAdapter(name);
  const tensors = await readAdapterTensors(converted.manifest, converted.shards);
  const ref = await loadReferenceLlama(httpModelSource(url), referenceAdapterFromManifest(converted.manifest, tensors));
  const wantIds = promptIds.map((p) => ref.greedyGenerate(p, newTokens));

  const longest = Math.max(...promptIds.map((p) => p.length));
  const shape = await engine.configure({ contextLength: longest + newTokens, maxBatch: 3 });
  const m = engine.llamaModel();
  const planned = planMemory(m.config, m.mode, m.kvFormat, m.contextLength, m.prefillChunk, m.maxBatch);
  // The shape configure gave: the batch run keeps it (its context is the same longest prompt + new tokens).
  const batched = (await engine.generateBatch(promptIds, { maxNewTokens: newTokens, maxBatch: 3 })).results.map((r) => r.ids);

  let refused = '';
  try {
    // So many sequences that even the token-id buffer is over the binding limit: refused before any big allocation.
    const tooMany = Math.floor(m.gpu.device.limits.maxStorageBufferBindingSize / 4) + 1;
    await engine.configure({ contextLength: m.contextLength, maxBatch: tooMany });
  } catch (e) {
    refused = `${(e as Error).name}: ${(e as Error).message}`;
  }
  const after = { contextLength: engine.llamaModel().contextLength, maxBatch: engine.llamaModel().maxBatch };
  const afterIds = (await engine.generate(promptIds[0], { maxNewTokens: newTokens })).ids;
  const restored = await engine.configure({ contextLength: before.contextLength, maxBatch: 1 });
  const restoredIds = (await engine.generate(promptIds[0], { maxNewTokens: newTokens })).ids;
  const adapterStillActive = engine.llamaModel().adapterNames.includes(name);
  await engine.unload();
  return { before, shape, planned, actual: m.memory, batched, wantIds, refused, after, afterIds, restored, restoredIds, adapterStillActive };
}
