/**
 * What the device kit checks, and how one check's outcome is recorded: a relative error under a
 * tolerance (the browser tests' own), or two id lists that must be equal.
 */

export interface CheckResult {
  group: string;
  name: string;
  passed: boolean;
  /** Relative error against the oracle (checks with a tolerance). */
  maxErr?: number;
  tol?: number;
  /** Equality checks (argmax, greedy ids): where the lists first differ, -1 when equal. */
  firstDiff?: number;
  /** How long the check took, ms (pipeline compiles included). */
  ms: number;
  error?: string;
}

export interface Check {
  group: string;
  name: string;
  /** Both quick (SwiftShader, CI) and full mode run it unless fullOnly. */
  fullOnly?: boolean;
  run: () => Promise<{ maxErr: number; tol: number } | { got: unknown[]; want: unknown[] }>;
}

/** First index where two lists differ (-1: equal, also in length). */
export function firstDifference(got: unknown[], want: unknown[]): number {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) if (JSON.stringify(got[i]) !== JSON.stringify(want[i])) return i;
  return -1;
}

export async function runCheck(c: Check): Promise<CheckResult> {
  const t0 = performance.now();
  try {
    const r = await c.run();
    const ms = performance.now() - t0;
    if ('maxErr' in r) return { group: c.group, name: c.name, passed: r.maxErr < r.tol, maxErr: r.maxErr, tol: r.tol, ms };
    const firstDiff = firstDifference(r.got, r.want);
    return { group: c.group, name: c.name, passed: firstDiff < 0, firstDiff, ms };
  } catch (e) {
    return { group: c.group, name: c.name, passed: false, ms: performance.now() - t0, error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}
