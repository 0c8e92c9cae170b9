/**
 * A solution laid out for display: numbered steps, each cut into plain text, calculator chips
 * (<<48/2=24>>) and checked arithmetic statements. Pure data; components render every piece as
 * text (never as HTML).
 */
import { findArithmetic, splitSteps, type ArithmeticCheck } from '../reasoning/extract.ts';

export type Segment =
  { kind: 'text'; text: string } | { kind: 'chip'; text: string; check: ArithmeticCheck } | { kind: 'statement'; text: string; check: ArithmeticCheck };

export interface Step {
  number: number;
  segments: Segment[];
  /** 'ok': every arithmetic check holds; 'wrong': at least one fails; 'none': nothing to check. */
  verdict: 'ok' | 'wrong' | 'none';
  checks: ArithmeticCheck[];
}

export function segmentStep(text: string): { segments: Segment[]; checks: ArithmeticCheck[] } {
  const checks = findArithmetic(text);
  const segments: Segment[] = [];
  let at = 0;
  for (const check of checks) {
    if (check.start < at) continue; // overlapping matches: keep the first
    if (check.start > at) segments.push({ kind: 'text', text: text.slice(at, check.start) });
    segments.push({ kind: check.kind === 'annotation' ? 'chip' : 'statement', text: check.text, check });
    at = check.end;
  }
  if (at < text.length) segments.push({ kind: 'text', text: text.slice(at) });
  return { segments, checks };
}

export function layoutSolution(solution: string): Step[] {
  return splitSteps(solution).map((line, i) => {
    const { segments, checks } = segmentStep(line);
    const verdict = checks.some((c) => c.correct === false) ? 'wrong' : checks.some((c) => c.correct === true) ? 'ok' : 'none';
    return { number: i + 1, segments, verdict, checks };
  });
}

/** "48/2 = 24" for a chip's label; the claimed result as written. */
export function chipLabel(check: ArithmeticCheck): string {
  return `${check.expression} = ${check.claimed}`;
}

export function checkTitle(check: ArithmeticCheck): string {
  if (check.correct === null) return `Could not check ${check.expression}`;
  if (check.correct) return `Checked: ${check.expression} = ${check.claimed}`;
  return `Wrong: ${check.expression} is ${formatNumber(check.actual!)}, not ${check.claimed}`;
}

export function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(6)));
}
