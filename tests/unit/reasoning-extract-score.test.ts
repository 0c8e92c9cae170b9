import { describe, it, expect } from 'vitest';
import { extractAnswerNumber, extractAnswerLetter, extractAnswer, splitSteps, findArithmetic, evaluateArithmetic } from '../../src/reasoning/extract.ts';
import { isCorrect, scoreOutputs, ScoreError } from '../../src/reasoning/score.ts';
import { wilsonInterval, Z_95 } from '../../src/reasoning/wilson.ts';
import type { Problem } from '../../src/reasoning/datasets.ts';

describe('numeric answer extraction (LLM-Adapters: commas removed, last number)', () => {
  it.each([
    ['The answer is 18.', 18],
    ['#### 18', 18],
    ['A: 18', 18],
    ['She has $1,234.50 left.', 1234.5],
    ['The temperature fell to -7 degrees.', -7],
    ['16 - 3 - 4 = 9 eggs, so 9 * 2 = $18. The answer is 18', 18],
    ['It costs 1,000,000 dollars', 1000000],
    ['Half is 0.5', 0.5],
    ['There are 3 apples and 4 pears, total 7.', 7],
    ['ends with a decimal point 42.', 42],
  ])('%j -> %d', (output, expected) => {
    expect(extractAnswerNumber(output)).toBe(expected);
  });

  it('no number at all -> null (never correct)', () => {
    expect(extractAnswerNumber('I do not know.')).toBeNull();
    expect(extractAnswerNumber('')).toBeNull();
    expect(isCorrect(null, 0, 'number')).toBe(false);
  });

  it('keeps LLM-Adapters quirks: a hyphen before a digit is a minus sign', () => {
    // re.findall(r'-?\d+\.?\d*', "pages 10-12") -> ['10', '-12']
    expect(extractAnswerNumber('pages 10-12')).toBe(-12);
  });
});

describe('AQuA letter extraction (LLM-Adapters: first capital A-E)', () => {
  it.each([
    ['(D)', 'D'],
    ['The answer is (B).', 'B'],
    ['  C is correct', 'C'],
    ['Answer: E', 'A'], // the "A" of "Answer" comes first: LLM-Adapters' rule, kept as is
    ['none of these', null],
  ])('%j -> %s', (output, expected) => {
    expect(extractAnswerLetter(output)).toBe(expected);
  });

  it('dispatches by dataset', () => {
    expect(extractAnswer('aqua', 'so (C)')).toBe('C');
    expect(extractAnswer('svamp', 'so 12')).toBe(12);
  });
});

describe('scoring', () => {
  it('numeric tolerance 1e-3, letters by equality', () => {
    expect(isCorrect(18, 18, 'number')).toBe(true);
    expect(isCorrect(18.0005, 18, 'number')).toBe(true);
    expect(isCorrect(18.002, 18, 'number')).toBe(false);
    expect(isCorrect(1.833, 1.8333333333333335, 'number')).toBe(true);
    expect(isCorrect('D', 'D', 'letter')).toBe(true);
    expect(isCorrect('A', 'D', 'letter')).toBe(false);
  });

  it('scoreOutputs: per item and summary', () => {
    const problems: Problem[] = [
      { index: 0, question: 'q0', gold: 18 },
      { index: 1, question: 'q1', gold: 3 },
      { index: 2, question: 'q2', gold: 1234.5 },
    ];
    const { items, summary } = scoreOutputs('gsm8k', problems, [
      { index: 0, output: 'The answer is 18.' },
      { index: 1, output: 'no idea' },
      { index: 2, output: 'Total: $1,234.50' },
    ]);
    expect(items).toEqual([
      { index: 0, pred: 18, gold: 18, correct: true },
      { index: 1, pred: null, gold: 3, correct: false },
      { index: 2, pred: 1234.5, gold: 1234.5, correct: true },
    ]);
    expect(summary).toMatchObject({ correct: 2, total: 3, accuracy: 2 / 3 });
    expect(() => scoreOutputs('gsm8k', problems, [{ index: 7, output: '1' }])).toThrow(ScoreError);
  });
});

describe('Wilson 95% interval', () => {
  // By hand (= statsmodels proportion_confint(k, n, alpha=0.05, method="wilson")), z = 1.959963984540054, z² = 3.841458820694124:
  //  81/263: p = 0.307985, center = (p + z²/526)/(1 + z²/263) = 0.315288/1.014606 = 0.310749,
  //          half = z·sqrt(p(1-p)/263 + z²/(4·263²))/1.014606 = 0.055464  ->  (0.255285, 0.366213)
  //  0/10:   (0, z²/(10 + z²)) = (0, 0.277533);   10/10: (10/(10 + z²), 1) = (0.722467, 1)
  //  1/2:    center 0.5, half = z·sqrt(1/8 + z²/16)/(1 + z²/2) = 0.405468 -> (0.094531, 0.905469)
  it.each([
    [81, 263, 0.255285, 0.366213],
    [0, 10, 0, 0.277533],
    [10, 10, 0.722467, 1],
    [1, 2, 0.094531, 0.905469],
  ])('%d/%d', (k, n, lower, upper) => {
    const ci = wilsonInterval(k, n);
    expect(ci.lower).toBeCloseTo(lower, 5);
    expect(ci.upper).toBeCloseTo(upper, 5);
  });

  it('edge cases', () => {
    expect(Z_95).toBe(1.959963984540054);
    expect(wilsonInterval(0, 0)).toEqual({ lower: 0, upper: 1 });
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
  });
});

describe('steps and arithmetic checks', () => {
  it('splits a solution into steps by line, or by sentence for one paragraph', () => {
    expect(splitSteps('Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.\n#### 18')).toEqual([
      'Janet sells 16 - 3 - 4 = 9 eggs.',
      'She makes 9 * 2 = $18.',
      '#### 18',
    ]);
    expect(splitSteps(' He pays 2.5 dollars each. So 4 * 2.5 = 10. The answer is 10.')).toEqual([
      'He pays 2.5 dollars each.',
      'So 4 * 2.5 = 10.',
      'The answer is 10.',
    ]);
  });

  it('evaluates arithmetic safely', () => {
    expect(evaluateArithmetic('48/2')).toBe(24);
    expect(evaluateArithmetic('(5 + 3) * 2')).toBe(16);
    expect(evaluateArithmetic('2 + 3 * 4')).toBe(14);
    expect(evaluateArithmetic('-3 + 5')).toBe(2);
    expect(evaluateArithmetic('5 x 3')).toBe(15);
    expect(evaluateArithmetic('50 * 20%')).toBe(10);
    expect(evaluateArithmetic('$1,200 / 4')).toBe(300);
    expect(evaluateArithmetic('1/0')).toBeNull();
    expect(evaluateArithmetic('alert(1)')).toBeNull();
    expect(evaluateArithmetic('2 +')).toBeNull();
  });

  it('finds and checks calculator annotations and plain statements', () => {
    const solution =
      'Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18.\nSo 48 / 2 = 25 is wrong, but 5 x 3 = 15 and 10 / 3 = 3.33.';
    const checks = findArithmetic(solution);
    expect(checks.map((c) => [c.kind, c.expression, c.claimed, c.correct])).toEqual([
      ['annotation', '16-3-4', 9, true],
      ['annotation', '9*2', 18, true],
      ['statement', '48 / 2', 25, false],
      ['statement', '5 x 3', 15, true],
      ['statement', '10 / 3', 3.33, true],
    ]);
    for (const c of checks) expect(solution.slice(c.start, c.end)).toBe(c.text);
    expect(checks[0].text).toBe('<<16-3-4=9>>');
    expect(checks[2].text).toBe('48 / 2 = 25');
    // A wrong annotation is flagged.
    expect(findArithmetic('<<3*4=13>>13')[0]).toMatchObject({ actual: 12, claimed: 13, correct: false });
    // Numbers without an operator are not statements.
    expect(findArithmetic('In 2023 = the year')).toEqual([]);
  });
});
