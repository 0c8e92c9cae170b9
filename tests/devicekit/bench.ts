/**
 * The kit's bench: the synthetic Llama-2-7B shape (seeded weights made as the engine asks for
 * them), loaded once with 32 KV slots, then in the same run the copy bandwidth, a prefill of a long
 * prompt and decode steps at several batch sizes from a position past that prompt, and a GSM8K
 * test-set time estimate from those numbers. Decode rows start at `promptLen` without prefilling
 * every slot (the cache's contents do not change a step's work, only its length does).
 */
import { Engine } from '../../src/engine/engine.ts';
import { measureCopyBandwidth } from '../../src/engine/bandwidth.ts';
import { decodeBytesPerStep } from '../../src/engine/memoryPlan.ts';
import { syntheticModelSource } from '../../src/formats/syntheticModel.ts';
import type { LlamaConfig, QuantMode } from '../../src/formats/llamaConfig.ts';
import { profileDecodeStep, type KernelProfile } from '../../src/engine/kernelProfile.ts';
import { gsm8kEstimate, type Gsm8kEstimate } from '../../src/cli/gsm8kEstimate.ts';

export interface BenchOptions {
  /** The model's shape: Llama-2-7B's (llama2_7bShape) with some layers, or a smaller one (quick runs on SwiftShader). */
  shape: LlamaConfig;
  /** How the report names the shape. */
  shapeName: string;
  mode: QuantMode;
  batches: number[];
  promptLen: number;
  /** Decode steps measured per batch size (after one warm-up step). */
  steps: number;
  /** Decode steps whose dispatches are timed one by one (timestamp-query); 0: no profile. */
  profileSteps: number;
  /** Batch sizes profiled (of `batches`). */
  profileBatches: number[];
  /** Size of the buffer the copy bandwidth is measured on (capped by the device's limits). */
  copyBytes: number;
  /** Run everything once before it is timed (pipelines compile on first use). Off: quick runs on SwiftShader, whose numbers only show the parts work. */
  warmUp: boolean;
  /** Also time decode with every step's logits read back (model.decodeBatch), not only greedy. */
  logitsPath: boolean;
  log: (m: string) => void;
}

export interface DecodeRow {
  batch: number;
  /** The KV length the steps start at. */
  position: number;
  steps: number;
  /** Every step's logits read back (model.decodeBatch); null when not measured. */
  msPerStep: number | null;
  tokensPerSecond: number | null;
  /** Greedy, argmax on the GPU, steps pipelined (model.decodeGreedy): what generation uses. */
  greedyMsPerStep: number;
  greedyTokensPerSecond: number;
  /** Weights + the KV cache read at the steps' mean position (memoryPlan.decodeBytesPerStep). */
  bytesPerStep: number;
  /** bytesPerStep / greedy step time / copy bandwidth: 1 would be a step at the copy's speed. */
  efficiency: number;
  /** Dispatches one greedy step encoded (counted as the engine encoded them: LlamaModel.encodeStats). */
  dispatchesPerStep: number;
  /** JS time to queue a greedy step's params and encode its pass, per step (ms). */
  encodeMsPerStep: number;
}

export interface BenchReport {
  model: string;
  mode: QuantMode;
  layers: number;
  loadMs: number;
  memory: { weights: number; kvCache: number; activations: number; total: number };
  kernels: { q4Decode: string; prefillMatmul: string };
  copy: { bytesPerSecond: number; copyBufferToBuffer: number; kernel: number };
  prefill: { tokens: number; ms: number; tokensPerSecond: number };
  decode: DecodeRow[];
  gsm8k: Gsm8kEstimate | null;
  profile: KernelProfile[] | null;
  profileSkipped?: string;
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const maxBatch = Math.max(...o.batches);
  const engine = new Engine();
  const t0 = performance.now();
  const info = await engine.load(syntheticModelSource(o.shape, o.mode), { contextLength: o.promptLen + o.steps + o.profileSteps + 8, maxBatch });
  const loadMs = performance.now() - t0;
  o.log(`bench: loaded ${o.shapeName} (${(info.memory.total / 2 ** 30).toFixed(2)} GiB) in ${(loadMs / 1000).toFixed(1)} s`);
  const model = engine.llamaModel();
  const device = model.gpu.device;
  const copy = await measureCopyBandwidth(device, o.copyBytes);
  o.log(`bench: copy ${(copy.bytesPerSecond / 1e9).toFixed(1)} GB/s`);
  const V = info.config.vocabSize;
  const prompt = (seq: number) => Array.from({ length: o.promptLen }, (_, i) => 1 + ((i * 7919 + seq * 104729) % (V - 1)));

  // Prefill: once to compile every pipeline, then measured (TTFT: the last token's logits read back).
  if (o.warmUp) {
    model.reset(0);
    await model.prefillSlot(0, prompt(0));
  }
  model.reset(0);
  const tp = performance.now();
  await model.prefillSlot(0, prompt(0));
  const prefillMs = performance.now() - tp;
  const prefill = { tokens: o.promptLen, ms: prefillMs, tokensPerSecond: (o.promptLen * 1000) / prefillMs };
  o.log(`bench: prefill ${o.promptLen} tokens ${prefillMs.toFixed(0)} ms`);

  const startAt = (batch: number) => {
    for (let s = 0; s < batch; s++) {
      model.reset(s);
      model.positions[s] = o.promptLen;
    }
  };
  const decode: DecodeRow[] = [];
  let profile: KernelProfile[] | null = null;
  let profileSkipped: string | undefined;
  const hasTimestamps = device.features.has('timestamp-query');
  if (!hasTimestamps) profileSkipped = 'the adapter has no timestamp-query';
  else if (o.profileSteps <= 0) profileSkipped = 'no profile steps asked for';
  for (const batch of o.batches) {
    const entries = Array.from({ length: batch }, (_, s) => ({ slot: s, token: 29871 % V }));
    let msPerStep: number | null = null;
    if (o.logitsPath) {
      startAt(batch);
      if (o.warmUp) await model.decodeBatch(entries);
      const td = performance.now();
      for (let i = 0; i < o.steps; i++) await model.decodeBatch(entries);
      msPerStep = (performance.now() - td) / o.steps;
    }
    startAt(batch);
    if (o.warmUp) await model.decodeGreedy(entries, 1, () => {}); // the argmax pipeline too
    model.resetEncodeStats();
    const tg = performance.now();
    await model.decodeGreedy(entries, o.steps, () => {});
    const greedyMsPerStep = (performance.now() - tg) / o.steps;
    const enc = model.encodeStats;
    if (enc.calls !== o.steps || enc.dispatches !== enc.calls * enc.lastCallDispatches)
      throw new Error(`decode steps encoded unevenly: ${enc.dispatches} dispatches in ${enc.calls} calls for ${o.steps} steps`);
    const bytesPerStep = decodeBytesPerStep(info.config, info.mode, info.kvCache, batch, o.promptLen + 1 + o.steps / 2);
    decode.push({
      batch,
      position: o.promptLen,
      steps: o.steps,
      msPerStep,
      tokensPerSecond: msPerStep === null ? null : (batch * 1000) / msPerStep,
      greedyMsPerStep,
      greedyTokensPerSecond: (batch * 1000) / greedyMsPerStep,
      bytesPerStep,
      efficiency: (bytesPerStep * (1000 / greedyMsPerStep)) / copy.bytesPerSecond,
      dispatchesPerStep: enc.lastCallDispatches,
      encodeMsPerStep: enc.encodeMs / enc.calls,
    });
    o.log(
      `bench: batch ${batch}: ${msPerStep?.toFixed(1) ?? '-'} ms/step, greedy ${greedyMsPerStep.toFixed(1)} ms/step, ${enc.lastCallDispatches} dispatches, encode ${(enc.encodeMs / enc.calls).toFixed(3)} ms/step`,
    );
    if (hasTimestamps && o.profileSteps > 0 && o.profileBatches.includes(batch)) {
      startAt(batch);
      try {
        (profile ??= []).push(await profileDecodeStep(model, batch, o.promptLen, o.profileSteps));
      } catch (e) {
        profileSkipped = `profile failed: ${(e as Error).message}`;
      }
    }
  }
  const b32 = decode.find((d) => d.batch === 32);
  engine.unload();
  return {
    model: o.shapeName,
    mode: info.mode,
    layers: info.config.numLayers,
    loadMs,
    memory: info.memory,
    kernels: model.gpu.isSoftware
      ? { q4Decode: 'row (software adapter)', prefillMatmul: 'row (software adapter)' }
      : { q4Decode: 'workgroup', prefillMatmul: 'tiled' },
    copy,
    prefill,
    decode,
    gsm8k: b32 ? gsm8kEstimate(prefill.tokensPerSecond, b32.greedyMsPerStep, o.promptLen, model.gpu.isSoftware) : null,
    profile,
    ...(profileSkipped && !profile ? { profileSkipped } : {}),
  };
}
