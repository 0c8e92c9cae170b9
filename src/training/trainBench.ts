/**
 * Training rows of `npm run bench` and the device kit: each paper recipe (recipes.ts) trained by
 * the WebGPU trainer (gpuTrainer.ts) on the synthetic model with Llama-2-7B's layer shapes and a
 * few layers, frozen base in its mode. Reports per recipe the measured training tokens/s and the
 * trainer's own peak GPU memory (peakGpuBytes, by part), then projects both to the 32 layers of
 * Llama-2-7B and estimates three epochs of math_10k with the LoRA recipe.
 *
 * Every micro-batch holds `seqLen`-token rows with no padding (seeded random ids, loss on every
 * token), so the tokens counted are the tokens computed. Runs in a page (bench) and in Node over
 * Dawn (device kit): no Node or DOM imports.
 */
import type { GpuContext } from '../engine/gpu.ts';
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import {
  LLAMA2_7B_LAYERS,
  MATH_10K,
  TRAIN_MEMORY_GOAL_BYTES,
  projectTrainerMemory,
  stepMacsPerToken,
  type TrainBenchReport,
  type TrainBenchRow,
} from './trainBenchReport.ts';
import { loadModelManifest } from '../formats/modelFiles.ts';
import { llama2_7bShape, syntheticModelSource } from '../formats/syntheticModel.ts';
import { Rng } from '../formats/random.ts';
import { GpuTrainerBackend, READBACK_CHUNK_BYTES } from './gpuTrainer.ts';
import { paperRecipe, type TrainingMethod } from './recipes.ts';
import { createTrainerState, defaultHyper } from './referenceTrainer.ts';
import type { TokenizedExample } from './data.ts';

export type { TrainBenchReport, TrainBenchRow } from './trainBenchReport.ts';

export interface TrainBenchOptions {
  /** Layers of Llama-2-7B's shape to train (2: synthetic:2), or a whole shape (the device kit's quick narrow model). */
  layers: number;
  shape?: LlamaConfig;
  shapeName?: string;
  mode: QuantMode;
  methods: TrainingMethod[];
  /** Sequences per micro-batch (the recipes: 4). */
  microBatch: number;
  /** Micro-batches per optimizer step (the recipes: 4). */
  gradAccum: number;
  /** Tokens per sequence (the recipes' cutoff: 256). */
  seqLen: number;
  /** Optimizer steps timed, after one untimed warm-up step unless `warmUp` is false. */
  steps: number;
  /** Off: the one timed step includes compiling every pipeline (quick runs on a software adapter). */
  warmUp: boolean;
  /** Why this run is not the recipe's shape, shown beside the rows (null: it is). */
  quickNote: string | null;
  log?: (m: string) => void;
}

function cacheBytes(records: Array<{ records: Array<{ nbytes: number }> }>): number {
  return records.reduce((s, shard) => s + shard.records.reduce((a, r) => a + r.nbytes, 0), 0);
}

function randomRows(n: number, seqLen: number, vocab: number, seed: number): TokenizedExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const ids = Array.from({ length: seqLen }, () => 3 + Math.floor(rng.next() * (vocab - 3)));
    return { inputIds: ids, labels: ids.slice() };
  });
}

export async function runTrainingBench(gpu: GpuContext, o: TrainBenchOptions): Promise<TrainBenchReport> {
  const log = o.log ?? (() => {});
  const config = o.shape ?? llama2_7bShape(o.layers);
  const source = syntheticModelSource(config, o.mode);
  const info = await loadModelManifest(source);
  // The 32-layer model's tensor cache (JSON only: no weights are made) for the projection.
  const target = o.shape ? { ...o.shape, numLayers: LLAMA2_7B_LAYERS } : llama2_7bShape(LLAMA2_7B_LAYERS);
  const targetInfo = await loadModelManifest(syntheticModelSource(target, o.mode));
  const weightCacheBytes = cacheBytes(info.cache.records);
  const targetCacheBytes = cacheBytes(targetInfo.cache.records);
  const perStep = o.microBatch * o.gradAccum;
  const data = randomRows(perStep * (o.steps + (o.warmUp ? 1 : 0)), o.seqLen, config.vocabSize, 7);
  const macRatio = stepMacsPerToken(config) / stepMacsPerToken(target);
  const rows: TrainBenchRow[] = [];
  for (const method of o.methods) {
    const recipe = paperRecipe(method);
    const hyper = defaultHyper({
      totalSteps: 1000,
      microBatch: o.microBatch,
      gradAccum: o.gradAccum,
      lr: recipe.run.lr,
      warmupSteps: recipe.run.warmupSteps,
      weightDecay: recipe.run.weightDecay,
      shuffle: false,
    });
    const spec = recipe.spec; // with the recipe's dropout: the WebGPU trainer applies it
    log(`training bench: ${recipe.label}: uploading the base and recording the pass`);
    const trainer = await GpuTrainerBackend.create(gpu, source, info, data, createTrainerState(config, spec, hyper));
    try {
      if (o.warmUp) {
        log(`training bench: ${recipe.label}: warm-up step (compiles the pipelines)`);
        await trainer.step();
      }
      let tokens = 0;
      let loss = NaN;
      const t0 = performance.now();
      for (let s = 0; s < o.steps; s++) {
        const r = await trainer.step();
        tokens += r.tokens;
        loss = r.loss;
        log(`training bench: ${recipe.label}: step ${s + 1} of ${o.steps}, loss ${r.loss.toFixed(3)}`);
      }
      const ms = performance.now() - t0;
      const memory = trainer.gpuMemory();
      const tokensPerSecond = (tokens * 1000) / ms;
      const pm = projectTrainerMemory(
        memory,
        { config, weightCacheBytes, microBatch: o.microBatch, seqLen: o.seqLen },
        { config: target, weightCacheBytes: targetCacheBytes },
        READBACK_CHUNK_BYTES,
      );
      const goalBytes = TRAIN_MEMORY_GOAL_BYTES[method];
      rows.push({
        method,
        label: recipe.label,
        dropout: spec.dropout,
        microBatch: o.microBatch,
        gradAccum: o.gradAccum,
        seqLen: o.seqLen,
        steps: o.steps,
        msPerStep: ms / o.steps,
        tokensPerSecond,
        loss,
        memory,
        projected: o.shape
          ? null
          : {
              layers: LLAMA2_7B_LAYERS,
              tokensPerSecondFirstOrder: (tokensPerSecond * config.numLayers) / LLAMA2_7B_LAYERS,
              tokensPerSecondMacWeighted: tokensPerSecond * macRatio,
              memory: pm,
              goalBytes,
              fitsGoal: pm.total <= goalBytes,
            },
      });
    } finally {
      trainer.dispose();
    }
  }
  const lora = rows.find((r) => r.method === 'lora');
  const computedTokens = MATH_10K.epochs * MATH_10K.examples * MATH_10K.paddedTokensPerExample;
  return {
    model: o.shapeName ?? `synthetic:${o.layers} (Llama-2-7B shapes, ${o.layers} layers)`,
    mode: info.mode,
    layers: config.numLayers,
    software: gpu.isSoftware,
    quickNote: o.quickNote,
    rows,
    math10k: lora?.projected
      ? {
          firstOrderSeconds: computedTokens / lora.projected.tokensPerSecondFirstOrder,
          macWeightedSeconds: computedTokens / lora.projected.tokensPerSecondMacWeighted,
          computedTokens,
          basis: MATH_10K.basis,
        }
      : null,
  };
}
