import { describe, it, expect } from 'vitest';
import {
  PROMPT_CONFIGS,
  getPromptConfig,
  buildPrompt,
  customPrompt,
  withAlpaca,
  cutAtStop,
  BASELINE,
  ALPACA,
  ALPACA_TEMPLATE,
  usesAlpacaFrame,
} from '../../src/reasoning/prompts.ts';
import { GSM8K_COT_EXEMPLARS } from '../../src/reasoning/exemplars.ts';

const problem = { question: 'Tom has 3 apples and buys 2 more. How many apples does he have?' };
const Q = problem.question;

describe('prompt configurations (exact text)', () => {
  it('baseline: the 8 Wei et al. exemplars in "Q: … A: …" form, then the question', () => {
    expect(GSM8K_COT_EXEMPLARS).toHaveLength(8);
    const text = buildPrompt(BASELINE, problem);
    expect(
      text.startsWith(
        'Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?\n' +
          'A: There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.\n\n' +
          'Q: If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?\n' +
          'A: There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.\n\n',
      ),
    ).toBe(true);
    expect(
      text.endsWith(
        'Q: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\n' +
          'A: Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.\n\n' +
          `Q: ${Q}\nA:`,
      ),
    ).toBe(true);
    expect(text.split('\nA: ').length - 1).toBe(8);
    expect(BASELINE.stopSequences).toEqual(['\nQ:', '\n\n\n']);
    expect(BASELINE.paperGsm8k).toBe(14.6);
  });

  it('zero-shot, q_end, a_begin', () => {
    expect(buildPrompt(getPromptConfig('zero_shot'), problem)).toBe(`Q: ${Q}\nA:`);
    expect(buildPrompt(getPromptConfig('q_end'), problem)).toBe(`Q: ${Q}\nLet's work through this problem step-by-step:\nA:`);
    expect(buildPrompt(getPromptConfig('a_begin'), problem)).toBe(`Q: ${Q}\nA: Take a deep breath and work on this problem step-by-step.`);
    expect(getPromptConfig('q_end').paperGsm8k).toBe(15.61);
    expect(getPromptConfig('a_begin').paperGsm8k).toBe(20.32);
    expect(getPromptConfig('zero_shot').paperGsm8k).toBe(0);
  });

  it('alpaca: LLM-Adapters evaluate.py generate_prompt, indentation and trailing space included', () => {
    expect(buildPrompt(ALPACA, problem)).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n' +
        `                ### Instruction:\n                ${Q}\n\n                ### Response:\n                `,
    );
    expect(ALPACA.stopSequences).toEqual([]);
  });

  it('hard prompts inside the Alpaca template', () => {
    const head =
      'Below is an instruction that describes a task. Write a response that appropriately completes the request. \n\n                ### Instruction:\n                ';
    expect(buildPrompt(getPromptConfig('alpaca+q_end'), problem)).toBe(
      `${head}${Q}\nLet's work through this problem step-by-step:\n\n                ### Response:\n                `,
    );
    expect(buildPrompt(getPromptConfig('alpaca+a_begin'), problem)).toBe(
      `${head}${Q}\n\n                ### Response:\n                Take a deep breath and work on this problem step-by-step.`,
    );
    expect(() => withAlpaca(BASELINE)).toThrow(/no Alpaca form/);
    expect(withAlpaca(ALPACA)).toBe(ALPACA);
  });

  it('custom templates: one {question}, inserted verbatim', () => {
    const custom = customPrompt('Problem: {question}\nSolution:', ['\nProblem:']);
    expect(buildPrompt(custom, { question: 'What is {question} $& $1?' })).toBe('Problem: What is {question} $& $1?\nSolution:');
    expect(() => customPrompt('no placeholder')).toThrow(/exactly one \{question\}/);
    expect(() => customPrompt('{question} {question}')).toThrow(/found 2/);
  });

  it('every configuration has an id, label, description, template and stops', () => {
    const ids = PROMPT_CONFIGS.map((c) => c.id);
    expect(ids).toEqual(['baseline', 'zero_shot', 'q_end', 'a_begin', 'alpaca', 'alpaca+q_end', 'alpaca+a_begin']);
    for (const c of PROMPT_CONFIGS) {
      expect(c.label.length).toBeGreaterThan(0);
      expect(c.description.length).toBeGreaterThan(20);
      expect(c.template.split('{question}')).toHaveLength(2);
    }
    expect(() => getPromptConfig('nope')).toThrow(/Unknown prompt configuration/);
  });

  it('stop sequences cut the few-shot continuation before the next question', () => {
    expect(cutAtStop(' He has 3 + 2 = 5 apples. The answer is 5.\n\nQ: Next question', BASELINE.stopSequences)).toBe(
      ' He has 3 + 2 = 5 apples. The answer is 5.\n',
    );
    expect(cutAtStop('no stop here', BASELINE.stopSequences)).toBe('no stop here');
  });
});

describe('usesAlpacaFrame (the indentation note is shown where the frame is)', () => {
  it('is true exactly for the Alpaca configurations, and for a custom template holding the frame', () => {
    const framed = PROMPT_CONFIGS.filter((c) => usesAlpacaFrame(c)).map((c) => c.id);
    expect(framed.sort()).toEqual(
      PROMPT_CONFIGS.filter((c) => c.id === ALPACA.id || c.id.startsWith('alpaca+'))
        .map((c) => c.id)
        .sort(),
    );
    expect(framed).toContain('alpaca');
    expect(usesAlpacaFrame(customPrompt(`Note.\n${ALPACA_TEMPLATE}`))).toBe(true);
    // Without the 16 spaces it is not LLM-Adapters' frame.
    expect(usesAlpacaFrame(customPrompt(ALPACA_TEMPLATE.replace(/\n {16}/g, '\n')))).toBe(false);
  });
});
