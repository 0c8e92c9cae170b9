import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { commonPrefixLength, sharedPrefixLength } from '../../src/engine/sharedPrefix.ts';
import { DEFAULT_PREFILL_CHUNK } from '../../src/engine/memoryPlan.ts';
import { GSM8K_PROMPT_TOKENS, GSM8K_SHARED_PREFIX_TOKENS } from '../../src/cli/gsm8kEstimate.ts';
import { BASELINE, buildPrompt } from '../../src/reasoning/prompts.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(ROOT, '../shared/data'));

describe('the prompt prefix a batch prefills once', () => {
  it('is the longest common prefix of the token ids', () => {
    expect(
      commonPrefixLength([
        [1, 2, 3, 4],
        [1, 2, 3, 9],
        [1, 2, 7],
      ]),
    ).toBe(2);
    expect(
      commonPrefixLength([
        [5, 6],
        [5, 6],
      ]),
    ).toBe(2);
    expect(
      commonPrefixLength([
        [1, 2],
        [3, 2],
      ]),
    ).toBe(0);
    // One prompt alone shares nothing with anyone.
    expect(commonPrefixLength([[1, 2, 3]])).toBe(0);
    expect(commonPrefixLength([])).toBe(0);
  });

  it('is cut to whole prefill chunks, so every row takes the call it takes alone', () => {
    const shared = Array.from({ length: 11 }, (_, i) => i);
    const prompts = [
      [...shared, 100, 1],
      [...shared, 101, 2, 3],
    ];
    expect(sharedPrefixLength(prompts, 4)).toBe(8);
    expect(sharedPrefixLength(prompts, 11)).toBe(11);
    expect(sharedPrefixLength(prompts, 12)).toBe(0);
    expect(sharedPrefixLength(prompts, 1)).toBe(11);
  });

  it('leaves every prompt at least its last token to prefill (its logits give the first new token)', () => {
    // Identical prompts: 8 tokens in common, but each must still prefill one of its own.
    const p = [1, 2, 3, 4, 5, 6, 7, 8];
    expect(sharedPrefixLength([p, [...p], [...p]], 4)).toBe(4);
    expect(sharedPrefixLength([p, [...p]], 1)).toBe(7);
    // A prompt that is the others' prefix.
    expect(
      sharedPrefixLength(
        [
          [1, 2, 3, 4],
          [1, 2, 3, 4, 5, 6],
        ],
        2,
      ),
    ).toBe(2);
  });

  it('refuses a chunk that is not a positive whole number', () => {
    expect(() => sharedPrefixLength([[1], [1]], 0)).toThrow(/positive whole chunk/);
    expect(() => sharedPrefixLength([[1], [1]], 2.5)).toThrow(/positive whole chunk/);
  });
});

describe("the GSM8K estimate's shared prefix", () => {
  it('is the share of the baseline prompts of the real test set that they all start with, in whole prefill chunks', () => {
    const questions = readFileSync(join(DATA_DIR, 'gsm8k/test.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).question as string);
    expect(questions).toHaveLength(1319);
    const prompts = questions.map((question) => [...buildPrompt(BASELINE, { question })].map((c) => c.codePointAt(0)!));
    const mean = prompts.reduce((s, p) => s + p.length, 0) / prompts.length;
    const sharedTokens = (commonPrefixLength(prompts) / mean) * GSM8K_PROMPT_TOKENS;
    expect(GSM8K_SHARED_PREFIX_TOKENS).toBe(Math.floor(sharedTokens / DEFAULT_PREFILL_CHUNK) * DEFAULT_PREFILL_CHUNK);
  });
});
