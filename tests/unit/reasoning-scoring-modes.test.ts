/**
 * The three scoring modes against their rules as written upstream (expected values worked out by
 * hand from Python's `re` semantics, quoted in each case; lm-evaluation-harness ships no test
 * cases for the gsm8k_cot filters).
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  exactMatch,
  gsm8kTarget,
  GSM8K_COT_FLEXIBLE,
  GSM8K_COT_STRICT,
  INVALID,
  normalizeForExactMatch,
  GSM8K_COT_EXACT_MATCH,
  pyRegex,
  regexFilter,
} from '../../src/reasoning/lmEval.ts';
import { modeResult, modesFor, scoreModes, scoreOutput, summarizeModes } from '../../src/reasoning/score.ts';
import { parseDataset } from '../../src/reasoning/datasets.ts';
import { wilsonInterval } from '../../src/reasoning/wilson.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(ROOT, '../shared/data'));

describe('lm-eval strict-match: re.findall("The answer is (\\-?[0-9\\.\\,]+).")[0]', () => {
  it.each([
    ['Janet has 9 eggs. The answer is 18.', '18'],
    // The group is greedy, then the unescaped "." takes one character back: "1,000." -> "1,000".
    ['So the total is 1,000. The answer is 1,000.', '1,000'],
    // First match wins (group_select 0); mid-text the "." is followed by a space, so it stays in the group.
    ['The answer is 5. Wait. The answer is 6.', '5.'],
    ['The answer is -3.5 degrees.', '-3.5'],
    // "." is any character: at the very end the group gives its last digit to it ("18" -> "1").
    ['The answer is 18', '1'],
    // Case matters: the yaml sets no flag.
    ['the answer is 18.', INVALID],
    ['The answer is $18.', INVALID],
    ['No answer here', INVALID],
  ])('%j -> %j', (resp, want) => {
    expect(regexFilter(resp, GSM8K_COT_STRICT)).toBe(want);
  });
});

describe('lm-eval flexible-extract: last match of (-?[$0-9.,]{2,})|(-?[0-9]+)', () => {
  it.each([
    ['Janet sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 = $18.', '$18.'],
    ['The answer is 18', '18'],
    ['so 7', '7'],
    ['I have 1,234.50 dollars left, about 5', '5'],
    // "-?" belongs to the match: "10-12" -> "10", then "-12".
    ['pages 10-12', '-12'],
    // A lone "." or "," is 1 character, too short for {2,}; ".." is a match.
    ['Really..', '..'],
    ['none', INVALID],
  ])('%j -> %j', (resp, want) => {
    expect(regexFilter(resp, GSM8K_COT_FLEXIBLE)).toBe(want);
  });
});

describe('exact_match with gsm8k_cot settings (regexes_to_ignore , \\$ (?s).*####  \\.$, ignore_case)', () => {
  it.each([
    ['$18.', '18', true],
    ['1,000', '1000', true],
    ['18.0', '18', false], // no numeric comparison: "18.0" != "18"
    ['18..', '18', false], // only the last "." is removed
    [INVALID, '18', false],
    ['#### 18', '18', true], // (?s).*#### removes everything up to the last "#### "
    ['a\nb #### 42', '42', true], // DOTALL: across lines
    ['42.\n', '42\n', true], // Python's $ also matches before a final newline
  ])('%j vs %j -> %s', (pred, ref, want) => {
    expect(exactMatch(pred, ref)).toBe(want);
  });

  it('normalizes both sides the same way', () => {
    expect(normalizeForExactMatch('$1,234.', GSM8K_COT_EXACT_MATCH)).toBe('1234');
    expect(normalizeForExactMatch('ABC', GSM8K_COT_EXACT_MATCH)).toBe('abc');
  });

  it('pyRegex: (?s) becomes the s flag, a final $ also matches before a trailing newline, an escaped \\$ stays literal', () => {
    expect(pyRegex('(?s).*#### ').flags).toContain('s');
    expect('5.\n'.replace(pyRegex(String.raw`\.$`), '')).toBe('5\n');
    expect('a$b$'.replace(pyRegex(String.raw`\$`), '')).toBe('ab');
    expect(() => pyRegex('(?i)abc')).toThrow(/inline flags/);
  });
});

describe('targets and modes on real data', () => {
  it("GSM8K's target is the text after the last '####' (doc_to_target), commas kept", () => {
    expect(gsm8kTarget('Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72')).toBe('72');
    const problems = parseDataset(readFileSync(join(DATA_DIR, 'gsm8k/test.jsonl'), 'utf8'), 'gsm8k').problems;
    const withComma = problems.find((p) => p.target?.includes(','));
    // Some GSM8K answers are written "1,000"-style: exact match removes the comma on both sides.
    if (withComma) expect(exactMatch(String(withComma.gold), withComma.target!)).toBe(true);
    expect(problems[0].target).toBe('18');
  });

  it('one output, three verdicts', () => {
    const problem = { index: 0, question: 'q', gold: 18, target: '18' };
    const item = scoreOutput('gsm8k', problem, 'She makes 9 * 2 = $18 a day.');
    expect(item.correct).toBe(true); // LLM-Adapters: last number 18
    expect(item.modes).toEqual({
      'llm-adapters': { pred: 18, correct: true },
      'lm-eval-strict': { pred: INVALID, correct: false }, // no "The answer is"
      'lm-eval-flexible': { pred: '$18', correct: true }, // "$18" -> "18"
    });
    // "18.0" is within 0.001 of 18 for LLM-Adapters, but not the string "18" for lm-eval.
    const decimal = scoreModes('number', 'The answer is 18.0.', 18, '18');
    expect(decimal['llm-adapters']!.correct).toBe(true);
    expect(decimal['lm-eval-strict']).toEqual({ pred: '18.0', correct: false });
  });

  it('AQuA keeps LLM-Adapters\' first-capital rule (the "A" of "Answer" included) and has no lm-eval mode', () => {
    expect(modesFor('letter')).toEqual(['llm-adapters']);
    const problem = { index: 0, question: 'q', gold: 'C' };
    const item = scoreOutput('aqua', problem, 'Answer: C');
    expect(item.pred).toBe('A');
    expect(item.correct).toBe(false);
    expect(modeResult('letter', { ...item, output: 'Answer: C' }, 'lm-eval-strict')).toBeNull();
  });

  it('summaries per mode, with Wilson intervals; items stored without modes are rescored from their output', () => {
    const items = [
      { index: 0, pred: 18, gold: 18, correct: true, output: 'The answer is 18.' },
      { index: 1, pred: 5, gold: 5, correct: true, output: 'so 5' },
      { index: 2, pred: 3, gold: 4, correct: false, output: 'The answer is 3.' },
    ];
    const s = summarizeModes('number', items);
    expect(s['llm-adapters']).toMatchObject({ correct: 2, total: 3 });
    expect(s['lm-eval-strict']).toMatchObject({ correct: 1, total: 3, interval: wilsonInterval(1, 3) });
    expect(s['lm-eval-flexible']).toMatchObject({ correct: 2, total: 3 });
  });
});
