import { describe, expect, it } from 'vitest';
import { niceTicks } from '../../src/ui/chartTicks.ts';

describe('niceTicks', () => {
  it('steps by 1, 2 or 5 times a power of ten, from 0, never past the end, at most maxCount ticks', () => {
    for (const max of [1, 2, 3, 5, 7, 10, 19, 20, 99, 100, 250, 1000, 1319]) {
      for (const maxCount of [2, 3, 5, 6, 8]) {
        const ticks = niceTicks(max, maxCount);
        expect(ticks[0]).toBe(0);
        expect(ticks.length).toBeLessThanOrEqual(Math.max(maxCount, 2));
        expect(ticks.at(-1)!).toBeLessThanOrEqual(max);
        const step = ticks[1] - ticks[0];
        expect(Number.isInteger(step) && step >= 1).toBe(true);
        const mantissa = step / 10 ** Math.floor(Math.log10(step));
        if (step !== max) expect([1, 2, 5]).toContain(mantissa);
        // Evenly spaced, and the next one would be past the end.
        ticks.forEach((t, i) => expect(t).toBe(i * step));
        expect(ticks.at(-1)! + step).toBeGreaterThan(max);
      }
    }
  });

  it('covers the examples a reader meets', () => {
    expect(niceTicks(1319, 6)).toEqual([0, 500, 1000]);
    expect(niceTicks(5, 6)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(niceTicks(2, 6)).toEqual([0, 1, 2]);
    expect(niceTicks(3, 2)).toEqual([0, 3]);
  });
});
