/**
 * The learning-rate schedule LLM-Adapters trains with: transformers' get_linear_schedule_with_warmup
 * (huggingface/transformers src/transformers/optimization.py @ad1fc96,
 * _get_linear_schedule_with_warmup_lr_lambda) under the Trainer's default lr_scheduler_type "linear",
 * warmup_steps 100 in finetune.py:
 *
 *   factor(s) = s / max(1, W)                       for s < W
 *             = max(0, (S − s) / max(1, S − W))     otherwise
 *
 * with s the number of optimizer steps taken before this one (LambdaLR starts at s = 0 and the
 * Trainer calls scheduler.step() after each optimizer.step()), so the very first update uses lr·0.
 */

export function linearWarmupFactor(step: number, warmupSteps: number, totalSteps: number): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`optimizer step ${step} must be a non-negative integer`);
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

/** The learning rate of optimizer step `step` (from 0). */
export function linearWarmupLr(step: number, baseLr: number, warmupSteps: number, totalSteps: number): number {
  return baseLr * linearWarmupFactor(step, warmupSteps, totalSteps);
}

/**
 * The Trainer's number of optimizer steps (transformers Trainer._inner_training_loop, no max_steps):
 * len(dataloader) = ceil(examples / micro_batch) (drop_last False), per epoch
 * max(len // grad_accum, 1) updates, total ceil(epochs · per_epoch).
 */
export function trainerTotalSteps(numExamples: number, microBatch: number, gradAccum: number, epochs: number): number {
  const batches = Math.ceil(numExamples / microBatch);
  const perEpoch = Math.max(Math.floor(batches / gradAccum), 1);
  return Math.ceil(epochs * perEpoch);
}
