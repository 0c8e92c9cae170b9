import { describe, expect, it } from 'vitest';
import { formatMinutes } from '../../src/ui/duration.ts';

describe('time left, in words', () => {
  it('rounds to whole minutes and shows hours past 60', () => {
    expect(formatMinutes(0.4)).toBe('under a minute');
    expect(formatMinutes(1)).toBe('1 min');
    expect(formatMinutes(7.4)).toBe('7 min');
    expect(formatMinutes(59.6)).toBe('1 h 00 min');
    expect(formatMinutes(125)).toBe('2 h 05 min');
  });
  it('says it does not know rather than print a negative or infinite time', () => {
    expect(formatMinutes(Infinity)).toBe('unknown time');
    expect(formatMinutes(-3)).toBe('unknown time');
    expect(formatMinutes(NaN)).toBe('unknown time');
  });
});
