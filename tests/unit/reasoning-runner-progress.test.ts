import { describe, expect, it } from 'vitest';
import { planRun, runEvaluation, type GenerateBatchFn } from '../../src/reasoning/runner.ts';
import { getPromptConfig } from '../../src/reasoning/prompts.ts';
import type { GenerateResult } from '../../src/engine/reasoningEngine.ts';
import type { Problem } from '../../src/reasoning/datasets.ts';

/**
 * Between finished problems a run reports the tokens its unfinished problems have so far. The
 * engine here replays a fixed schedule of token and done events (what it decodes is the engine's
 * own tests' business); the runner's count is checked against the schedule.
 */

const problems: Problem[] = [0, 1, 2].map((index) => ({ index, question: `What is ${index} + 1?`, gold: index + 1 }));
const config = getPromptConfig('q_end');
const runConfig = { dataset: 'gsm8k' as const, promptId: 'q_end', promptTemplate: config.template, adapter: null, model: 'tiny-q4f32_1' };

type Event = { token: number } | { done: number };
/** seq 0 and 1 decode together; 1 finishes after 2 tokens, 2 joins, 0 finishes after 4, then 2 after 3. */
const SCHEDULE: Event[] = [
  { token: 0 },
  { token: 1 },
  { token: 0 },
  { token: 1 },
  { done: 1 },
  { token: 2 },
  { token: 0 },
  { token: 2 },
  { token: 0 },
  { done: 0 },
  { token: 2 },
  { done: 2 },
];

const replaying: GenerateBatchFn = async (prompts, _options, callbacks) => {
  const counts = prompts.map(() => 0);
  const result = (seq: number): GenerateResult => ({
    promptIds: [],
    ids: [],
    text: 'The answer is 1.',
    stopReason: 'length',
    prefillTokens: 0,
    prefillMs: 0,
    decodeTokens: counts[seq],
    decodeMs: 0,
  });
  for (const e of SCHEDULE) {
    if ('token' in e) callbacks?.onToken?.(e.token, { tokenId: 5, index: counts[e.token]++, textDelta: 'x' });
    else callbacks?.onDone?.(e.done, result(e.done));
  }
  return { contextLength: 64, maxBatch: 2, results: prompts.map((_, seq) => result(seq)), sharedPrefixTokens: 0 };
};

describe('token progress of a run', () => {
  it('counts the tokens of the problems still being solved, after every token and every finished problem', async () => {
    const seen: number[] = [];
    const run = await runEvaluation({
      generateBatch: replaying,
      run: planRun(runConfig, problems),
      problems,
      config,
      maxNewTokens: 8,
      onTokens: (n) => seen.push(n),
    });
    expect(run.items).toHaveLength(3);
    // The expected counts, replayed from the schedule: +1 per token, minus a problem's tokens when it finishes.
    const want: number[] = [];
    const per = [0, 0, 0];
    let inFlight = 0;
    for (const e of SCHEDULE) {
      if ('token' in e) {
        per[e.token]++;
        want.push(++inFlight);
      } else want.push((inFlight -= per[e.done]));
    }
    expect(seen).toEqual(want);
    expect(seen.slice(0, 5)).toEqual([1, 2, 3, 4, 2]);
    expect(seen[seen.length - 1]).toBe(0);
  });
});
