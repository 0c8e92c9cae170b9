/**
 * The training bench's report (trainBench.ts measures it): its rows, the projection of a measured
 * run to Llama-2-7B's 32 layers, the math_10k estimate and the table. No GPU here: the CLI (Node)
 * prints it and unit tests check the projection's arithmetic.
 */
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import type { TrainerGpuMemory } from './gpuTrainer.ts';
import type { TrainingMethod } from './recipes.ts';

/** Layers of Llama-2-7B: what the rows are projected to. */
export const LLAMA2_7B_LAYERS = 32;
/** Llama-2-7B q4f16_1 as MLC publishes it (GUIDE.md): the base weights the goals are about. */
export const LLAMA2_7B_Q4F16_WEIGHT_BYTES = 3.79e9;
/** The goals, in GB (1e9 bytes, stricter than an "8 GB" card's 8 GiB). */
export const TRAIN_MEMORY_GOAL_BYTES: Record<TrainingMethod, number> = { lora: 8e9, series: 12e9, parallel: 12e9 };

/**
 * math_10k as the estimate takes it: about 10,000 examples (the brief's figure, not counted here), and
 * the tokens per example measured on ../shared/data/llm-adapters/train/math_data.json (3260
 * examples of the same LLM-Adapters math mix) with data.ts's prepareTrainingData (generate_prompt,
 * the Llama-2 tokenizer, BOS + EOS, cut at 256: 303 cut): 182.4 tokens on average; right-padded to
 * the longest of each micro-batch of 4 (file order) 225.6 tokens are computed per example.
 */
export const MATH_10K = {
  examples: 10_000,
  epochs: 3,
  tokensPerExample: 182.4,
  paddedTokensPerExample: 225.6,
  basis:
    '~10,000 examples (assumed); tokens per example measured on math_data.json (3260 LLM-Adapters math examples, generate_prompt + Llama-2 tokenizer + EOS, cut at 256): 182.4, 225.6 with right padding to each micro-batch of 4',
};

export interface TrainBenchRow {
  method: TrainingMethod;
  label: string;
  /** The dropout trained with: the recipe's (the WebGPU trainer applies it). */
  dropout: number;
  microBatch: number;
  gradAccum: number;
  seqLen: number;
  steps: number;
  msPerStep: number;
  tokensPerSecond: number;
  /** Final loss of the timed steps (a finite number shows the pass ran; random data, so nothing to learn). */
  loss: number;
  memory: TrainerGpuMemory;
  /** The same run at 32 layers, from this run's accounting (see projectTrainerMemory); null for a shape other than Llama-2-7B's. */
  projected: TrainProjection | null;
}

export interface TrainProjection {
  layers: number;
  /** tokensPerSecond × measured layers / 32: first order, every part of a step taken to grow with the layers. */
  tokensPerSecondFirstOrder: number;
  /** With the LM head and loss kept at their one-per-step cost (matmul multiply-adds, see stepMacsPerToken). */
  tokensPerSecondMacWeighted: number;
  memory: { weights: number; pass: number; adapterOptimizer: number; lossStaging: number; readbackStaging: number; total: number };
  /** The goal for this recipe (8 GB LoRA, 12 GB bottleneck) and whether the projected total is under it. */
  goalBytes: number;
  fitsGoal: boolean;
}

export interface TrainBenchReport {
  model: string;
  mode: QuantMode;
  layers: number;
  software: boolean;
  quickNote: string | null;
  rows: TrainBenchRow[];
  /** Three epochs of math_10k with the LoRA recipe at the 32-layer projections (null without a LoRA row). */
  math10k: { firstOrderSeconds: number; macWeightedSeconds: number; computedTokens: number; basis: string } | null;
}

/**
 * Matmul multiply-adds per trained token of one optimizer step: per layer the forward, its
 * recomputation (gradient checkpointing at layer boundaries) and the backward's dX, each through
 * every base linear; the LM head forward and dX once. Adapter, attention and elementwise work are
 * left out (small beside these at 7B shapes and T = 256).
 */
export function stepMacsPerToken(c: LlamaConfig): number {
  const d = c.hiddenSize;
  const perLayer = d * (c.numHeads + 2 * c.numKvHeads) * c.headDim + c.numHeads * c.headDim * d + 3 * d * c.intermediateSize;
  return 3 * perLayer * c.numLayers + 2 * c.vocabSize * d;
}

/**
 * A measured run's memory at `layers` layers: the weights grow by the tensor cache's bytes for the
 * extra layers; the pass by one more layer-boundary checkpoint a layer;
 * adapter and AdamW state by the layer ratio (every layer has the same modules); the read-back
 * staging up to the trainer's chunk; loss staging unchanged.
 */
export function projectTrainerMemory(
  m: TrainerGpuMemory,
  measured: { config: LlamaConfig; weightCacheBytes: number; microBatch: number; seqLen: number },
  target: { config: LlamaConfig; weightCacheBytes: number },
  readbackChunkBytes: number,
): TrainProjection['memory'] {
  const L0 = measured.config.numLayers;
  const L1 = target.config.numLayers;
  const weights = m.weights + (target.weightCacheBytes - measured.weightCacheBytes);
  // TrainingPass keeps L + 1 layer-boundary inputs of rows × hidden f32 (each buffer 16-byte aligned); nothing else in it depends on L.
  const checkpoint = Math.ceil((measured.microBatch * measured.seqLen * measured.config.hiddenSize * 4) / 16) * 16;
  const pass = m.pass + (L1 - L0) * checkpoint;
  const adapterOptimizer = (m.adapterOptimizer * L1) / L0;
  // Read-back maps parameters and both moments (3 of the 4 per-tensor buffers), in chunks of at most readbackChunkBytes.
  const readbackStaging = Math.max(m.readbackStaging, Math.min(readbackChunkBytes, 0.75 * adapterOptimizer));
  const total = weights + pass + adapterOptimizer + m.lossStaging + readbackStaging;
  return { weights, pass, adapterOptimizer, lossStaging: m.lossStaging, readbackStaging, total };
}

/** The training rows: measured on the bench's model, then projected to 32 layers; the math_10k estimate. */
export function formatTrainingLines(t: TrainBenchReport): string[] {
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  const first = t.rows[0];
  const hms = (s: number) => `${(s / 3600).toFixed(2)} h`;
  // Software adapters train well under 1 token/s: keep three significant digits there.
  const rate = (x: number) => (x >= 100 ? x.toFixed(1) : x.toPrecision(3));
  const lines = [
    `training, WebGPU trainer, ${t.model}, ${t.mode}${t.software ? ', software adapter (not a GPU number)' : ''}: micro-batch ${first?.microBatch} x ${first?.gradAccum} accumulation, ${first?.seqLen}-token rows (no padding), ${first?.steps} timed step(s)`,
    ...(t.quickNote ? [`  ${t.quickNote}`] : []),
    `${'recipe'.padEnd(30)}${'dropout'.padStart(8)}${'ms/step'.padStart(11)}${'tokens/s'.padStart(10)}${'peak GPU'.padStart(10)}${'(weights'.padStart(10)}${'pass'.padStart(9)}${'adapter+AdamW'.padStart(14)}${'staging)'.padStart(10)}`,
    ...t.rows.map(
      (r) =>
        `${r.label.padEnd(30)}${String(r.dropout).padStart(8)}${r.msPerStep.toFixed(0).padStart(11)}${rate(r.tokensPerSecond).padStart(10)}${gb(r.memory.peak).padStart(10)}` +
        `${gb(r.memory.weights).padStart(10)}${gb(r.memory.pass).padStart(9)}${gb(r.memory.adapterOptimizer).padStart(14)}${gb(r.memory.lossStaging + r.memory.readbackStaging).padStart(10)}`,
    ),
  ];
  const proj = t.rows.flatMap((r) => (r.projected ? [{ r, p: r.projected }] : []));
  if (proj.length === 0) lines.push('no 32-layer projection: not Llama-2-7B shapes');
  else
    lines.push(
      `projected to 32 layers (Llama-2-7B): tokens/s x ${t.layers}/32 (first order: the LM head and loss counted 32/${t.layers} times too), and by matmul multiply-adds (head once)` +
        (t.quickNote ? `; memory for the quick rows' micro-batch, far smaller than the recipes' 4 x 256 (their pass is larger): not the goal's number` : ''),
      `${'recipe'.padEnd(30)}${'tok/s 1st'.padStart(10)}${'tok/s MAC'.padStart(10)}${'peak GPU'.padStart(10)}${'goal'.padStart(8)}${'fits'.padStart(6)}`,
      ...proj.map(
        ({ r, p }) =>
          `${r.label.padEnd(30)}${rate(p.tokensPerSecondFirstOrder).padStart(10)}${rate(p.tokensPerSecondMacWeighted).padStart(10)}` +
          `${gb(p.memory.total).padStart(10)}${gb(p.goalBytes).padStart(8)}${(p.fitsGoal ? 'yes' : 'no').padStart(6)}`,
      ),
      `  peak GPU = the trainer's own buffers (peakGpuBytes: weights as uploaded, pass, adapter + grads + AdamW moments, staging), not the driver's overhead or pipelines;` +
        ` at 32 layers: weights from the 32-layer tensor cache (${gb(proj[0].p.memory.weights)}; MLC's Llama-2-7B q4f16_1 is ${gb(LLAMA2_7B_Q4F16_WEIGHT_BYTES)}), pass + one checkpoint a layer, adapter x 32/${t.layers}`,
    );
  if (t.math10k) {
    const m = t.math10k;
    lines.push(
      `math_10k, 3 epochs, LoRA recipe at the 32-layer projections: ${hms(m.firstOrderSeconds)} (first order), ${hms(m.macWeightedSeconds)} (MAC-weighted) for ${(m.computedTokens / 1e6).toFixed(2)} M computed tokens${t.software ? ' (software adapter: not a GPU number)' : ''}${t.quickNote ? ' (quick rows: not the recipe speed)' : ''}; goal: under 2 h on an RTX 4090-class GPU`,
      `  ${m.basis}`,
    );
  }
  return lines;
}
