import { describe, it, expect } from 'vitest';
import { BATCH_MEMORY_CHOICES, batchMemoryLabel, DEFAULT_BATCH_MEMORY } from '../../src/ui/batchMemory.ts';

describe("the Accuracy view's GPU memory choices for a batch", () => {
  it('offer the default, larger budgets and all the GPU gives, each labelled', () => {
    expect(BATCH_MEMORY_CHOICES).toContain(DEFAULT_BATCH_MEMORY);
    expect(BATCH_MEMORY_CHOICES.at(-1)).toBe(Infinity);
    expect(batchMemoryLabel(DEFAULT_BATCH_MEMORY)).toBe('2.00 GiB (default)');
    expect(batchMemoryLabel(8 * 2 ** 30)).toBe('8.00 GiB');
    expect(batchMemoryLabel(Infinity)).toBe('all the GPU gives');
  });
});
