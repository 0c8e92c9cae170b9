import { DEFAULT_BATCH_MEMORY, formatBinaryBytes } from '../engine/memoryPlan.ts';

/**
 * The GPU memory an accuracy run's batch (KV caches and activations, beside the weights) may take,
 * as offered in the Accuracy view. WebGPU cannot say how much is free, so the user chooses; the
 * default suits a GPU that holds the 7B weights with a few GiB to spare, and "all the GPU gives"
 * starts at the batch the device's buffer limits allow and halves it until allocation succeeds.
 */
export const BATCH_MEMORY_CHOICES: readonly number[] = [1, 2, 4, 8, 16, 32].map((g) => g * 2 ** 30).concat([Infinity]);

export { DEFAULT_BATCH_MEMORY };

export function batchMemoryLabel(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'all the GPU gives';
  return `${formatBinaryBytes(bytes)}${bytes === DEFAULT_BATCH_MEMORY ? ' (default)' : ''}`;
}
