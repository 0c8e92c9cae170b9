/**
 * Axis ticks for the accuracy chart: round steps (1, 2 or 5 times a power of ten) from 0, at most
 * `maxCount` of them, so an axis over 1319 problems reads 0, 500, 1000 and one over 5 reads 0 … 5
 * (with room for two ticks only, 0 and the end).
 */
export function niceTicks(max: number, maxCount: number): number[] {
  if (!(max > 0) || maxCount < 2) return [0];
  const rough = max / (maxCount - 1);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  // Whole problems only (a step under 1 would label half a problem), and never past the end: an
  // axis too short for a round step is labelled at its two ends.
  const whole = Math.min(Math.max(1, Math.round(step)), Math.ceil(max));
  const ticks: number[] = [];
  for (let t = 0; t <= max + 1e-9; t += whole) ticks.push(t);
  return ticks;
}
