import { describe, expect, it } from 'vitest';
import { planRun, runEvaluation, solveProblem, decodingOptions, type GenerateBatchFn, type GenerateFn } from '../../src/reasoning/runner.ts';
import { decodingLabel, decodingOf, type Run } from '../../src/reasoning/runs.ts';
import { getPromptConfig } from '../../src/reasoning/prompts.ts';
import type { BatchOptions, GenerateOptions, GenerateResult } from '../../src/engine/reasoningEngine.ts';
import type { Problem } from '../../src/reasoning/datasets.ts';

/**
 * The decoding a run is made with reaches the engine's options (numBeams), and a stored run that
 * resumes decodes as it started. The engine here is a recorder of the options it is handed
 * (what it decodes is the engine's own tests' business: beam-search.spec.ts).
 */

const problems: Problem[] = [0, 1, 2, 3].map((index) => ({ index, question: `What is ${index} + 1?`, gold: index + 1 }));
const config = getPromptConfig('q_end');

const result = (text: string): GenerateResult => ({
  promptIds: [],
  ids: [],
  text,
  stopReason: 'length',
  prefillTokens: 0,
  prefillMs: 0,
  decodeTokens: 1,
  decodeMs: 0,
});

/** A generateBatch that answers every prompt "The answer is 1." and keeps the options of each call. */
function recordingBatch(seen: BatchOptions[]): GenerateBatchFn {
  return async (prompts, options, callbacks) => {
    seen.push(options);
    const results = prompts.map(() => result('The answer is 1.'));
    results.forEach((r, seq) => callbacks?.onDone?.(seq, r));
    return { contextLength: 64, maxBatch: 1, results, sharedPrefixTokens: 0 };
  };
}

const runConfig = { dataset: 'gsm8k' as const, promptId: 'q_end', promptTemplate: config.template, adapter: null, model: 'tiny-q4f32_1', limit: 4, seed: 1 };

describe('decoding of runs', () => {
  it('a 4-beam run asks the engine for 4 beams, also when resumed from its stored form; a greedy run asks for none', async () => {
    const seen: BatchOptions[] = [];
    const beamRun = planRun({ ...runConfig, decoding: { kind: 'beam', numBeams: 4 } }, problems);
    // Stopped after one problem, stored (JSON), and resumed: the rest still decodes with 4 beams.
    const partial: Run = JSON.parse(JSON.stringify({ ...beamRun, items: [] }));
    const firstOnly = { ...partial, order: partial.order.slice(0, 1) };
    const afterOne = await runEvaluation({ generateBatch: recordingBatch(seen), run: firstOnly, problems, config, maxNewTokens: 8 });
    const resumed: Run = JSON.parse(JSON.stringify({ ...afterOne, order: beamRun.order }));
    const done = await runEvaluation({ generateBatch: recordingBatch(seen), run: resumed, problems, config, maxNewTokens: 8 });
    expect(done.items).toHaveLength(4);
    expect(seen.map((o) => o.numBeams)).toEqual([4, 4]);
    expect(seen[1]).toMatchObject({ maxNewTokens: 8, temperature: 0, stopStrings: config.stopSequences });

    const greedySeen: BatchOptions[] = [];
    await runEvaluation({ generateBatch: recordingBatch(greedySeen), run: planRun(runConfig, problems), problems, config, maxNewTokens: 8 });
    expect('numBeams' in greedySeen[0]).toBe(false);
  });

  it('solveProblem passes the beams it is given', async () => {
    const seen: GenerateOptions[] = [];
    const generate: GenerateFn = async (_prompt, options) => (seen.push(options), result('The answer is 1.'));
    await solveProblem(generate, config, 'gsm8k', problems[0], { maxNewTokens: 8, decoding: { kind: 'beam', numBeams: 3 } });
    await solveProblem(generate, config, 'gsm8k', problems[0], { maxNewTokens: 8 });
    expect(seen[0].numBeams).toBe(3);
    expect('numBeams' in seen[1]).toBe(false);
  });

  it('names decodings, and a run stored before the choice existed was greedy', () => {
    expect(decodingLabel({ kind: 'beam', numBeams: 4 })).toBe('4 beams');
    expect(decodingLabel({ kind: 'greedy' })).toBe('greedy');
    expect(decodingOf({})).toEqual({ kind: 'greedy' });
    expect(decodingOptions({ kind: 'greedy' })).toEqual({});
    expect(decodingOptions({ kind: 'beam', numBeams: 2 })).toEqual({ numBeams: 2 });
  });
});
