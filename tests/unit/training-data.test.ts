/**
 * Training data preparation (src/training/data.ts) on the real files: LLM-Adapters' math_data.json
 * and GSM8K's train.jsonl, read from ../shared/data (never copied), with the Llama-2 tokenizer the
 * tiny model ships.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer } from '../../src/formats/tokenizer.ts';
import { IGNORE_INDEX } from '../../src/engine/referenceTraining.ts';
import { TrainingDataError, generatePrompt, parseTrainingFile, prepareTrainingData, tokenizeRecord } from '../../src/training/data.ts';

const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(import.meta.dirname, '../../../shared/data'));
const MODEL_DIR = resolve(import.meta.dirname, '../../models/tiny/q0f32');
const mathDataText = readFileSync(resolve(DATA_DIR, 'llm-adapters/train/math_data.json'), 'utf8');
const gsm8kTrainText = readFileSync(resolve(DATA_DIR, 'gsm8k/train.jsonl'), 'utf8');

let tok: Tokenizer;
beforeAll(async () => {
  tok = await loadTokenizer(
    JSON.parse(readFileSync(resolve(MODEL_DIR, 'tokenizer.json'), 'utf8')),
    JSON.parse(readFileSync(resolve(MODEL_DIR, 'tokenizer_config.json'), 'utf8')),
  );
});

const S16 = '                '; // 16 spaces

describe('generate_prompt (LLM-Adapters finetune.py @063e3d4)', () => {
  it('no-input branch, character for character, on math_data.json record 0', () => {
    const first = (JSON.parse(mathDataText) as Array<{ instruction: string; input: string; output: string }>)[0];
    expect(S16.length).toBe(16);
    const expected =
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.  # noqa: E501\n\n' +
      S16 +
      '### Instruction:\n' +
      S16 +
      'Julia played tag with 16 kids on monday. If she played tag with 12 more kids on monday than on tuesday. How many kids did she play with on tuesday?\n' +
      S16 +
      '\n' +
      S16 +
      '### Response:\n' +
      S16 +
      '\nA: She played with 16 kids on Monday. She played with 12 more kids on Monday than on Tuesday. That means on Tuesday she played with 16 - 12 = 4 kids. The answer is 4.';
    expect(generatePrompt(first)).toBe(expected);
  });
  it('input branch', () => {
    const p = generatePrompt({ instruction: 'Add.', input: '2 and 3', output: '5' });
    expect(p).toBe(
      'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.  # noqa: E501\n\n' +
        `${S16}### Instruction:\n${S16}Add.\n${S16}\n${S16}### Input:\n${S16}2 and 3\n${S16}\n${S16}### Response:\n${S16}5`,
    );
  });
});

describe('tokenize (finetune.py): BOS, EOS when room, cut at cutoff_len 256', () => {
  it('math_data.json: every record', () => {
    const parsed = parseTrainingFile(mathDataText, 'math_data.json');
    if (parsed.kind !== 'instructions') throw new Error('kind');
    expect(parsed.records.length).toBe(3260);
    const ds = prepareTrainingData(tok, mathDataText, 'math_data.json');
    expect(ds.kind).toBe('instructions');
    expect(ds.unlabelled).toBe(0);
    expect(ds.examples.length).toBe(3260);
    let cut = 0;
    ds.examples.forEach((ex, i) => {
      expect(ex.inputIds[0]).toBe(1); // <s>
      expect(ex.labels).toEqual(ex.inputIds); // train_on_inputs True
      const untruncated = tok.encode(generatePrompt(parsed.records[i]));
      if (untruncated.length > 256) {
        cut++;
        expect(ex.inputIds).toEqual(untruncated.slice(0, 256)); // cut, no EOS
      } else if (untruncated.length === 256) {
        expect(ex.inputIds).toEqual(untruncated); // no room for EOS
      } else {
        expect(ex.inputIds).toEqual([...untruncated, 2]);
      }
    });
    expect(ds.truncated).toBe(cut);
    // the text round-trips through the tokenizer for a short example
    const ex0 = ds.examples[0];
    expect(tok.decode(ex0.inputIds)).toBe(generatePrompt(parsed.records[0]));
  });

  it('a small cutoff cuts and counts', () => {
    const ds = prepareTrainingData(tok, mathDataText, 'math_data.json', { cutoffLen: 40 });
    expect(ds.truncated).toBe(3260);
    expect(ds.examples.every((e) => e.inputIds.length === 40 && e.inputIds[39] !== 2)).toBe(true);
  });

  it('train_on_inputs False masks the prompt (output "") to -100, the response stays', () => {
    const rec = (JSON.parse(mathDataText) as Array<{ instruction: string; input: string; output: string }>)[5];
    const ex = tokenizeRecord(tok, rec, { trainOnInputs: false });
    const userLen = tok.encode(generatePrompt({ ...rec, output: '' })).length;
    expect(userLen).toBeGreaterThan(20);
    expect(ex.labels.slice(0, userLen).every((y) => y === IGNORE_INDEX)).toBe(true);
    expect(ex.labels.slice(userLen)).toEqual(ex.inputIds.slice(userLen));
    expect(ex.labels[ex.labels.length - 1]).toBe(2);
    // the trained part decodes to the response's text (up to the token at the boundary)
    expect(rec.output.endsWith(tok.decode(ex.labels.slice(userLen + 2)).trim())).toBe(true);
  });

  it('GSM8K train.jsonl rows (question, answer) read as instruction / output', () => {
    const parsed = parseTrainingFile(gsm8kTrainText, 'gsm8k/train.jsonl');
    if (parsed.kind !== 'instructions') throw new Error('kind');
    expect(parsed.records.length).toBe(7473);
    expect(parsed.records[0].instruction.startsWith('Natalia sold clips to 48 of her friends')).toBe(true);
    expect(parsed.records[0].output.endsWith('#### 72')).toBe(true);
    const head = gsm8kTrainText.split('\n').slice(0, 100).join('\n');
    const ds = prepareTrainingData(tok, head, 'gsm8k head', { trainOnInputs: false });
    expect(ds.examples.length).toBe(100);
    for (const ex of ds.examples) {
      expect(ex.inputIds[0]).toBe(1);
      expect(ex.labels[0]).toBe(IGNORE_INDEX);
      expect(ex.labels.length).toBe(ex.inputIds.length);
    }
  });
});

describe('pre-tokenized JSONL', () => {
  it('used exactly as given; longer than max_len cut and counted', () => {
    const text = [
      JSON.stringify({ input_ids: [5, 6, 7], labels: [-100, 6, 7] }),
      '',
      JSON.stringify({ input_ids: [1, 2, 3, 4, 5, 6], labels: [1, 2, 3, 4, 5, 6] }),
    ].join('\n');
    const ds = prepareTrainingData(tok, text, 'rows.jsonl', { maxLen: 4 });
    expect(ds.kind).toBe('pretokenized');
    expect(ds.examples).toEqual([
      { inputIds: [5, 6, 7], labels: [-100, 6, 7] },
      { inputIds: [1, 2, 3, 4], labels: [1, 2, 3, 4] },
    ]);
    expect(ds.truncated).toBe(1);
  });
  it('rows with nothing to train are dropped and counted', () => {
    const ds = prepareTrainingData(
      tok,
      `${JSON.stringify({ input_ids: [5, 6], labels: [5, -100] })}\n${JSON.stringify({ input_ids: [5, 6], labels: [-100, 6] })}`,
      'rows.jsonl',
    );
    expect(ds.examples.length).toBe(1);
    expect(ds.unlabelled).toBe(1);
  });
});

describe('bad input refuses the file with a message naming the record', () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      'missing output (array index)',
      JSON.stringify([
        { instruction: 'a', input: '', output: 'b' },
        { instruction: 'x', input: '' },
      ]),
      /record 1: "output" is missing/,
    ],
    [
      'empty instruction (JSONL line)',
      `${JSON.stringify({ instruction: 'a', output: 'b' })}\n${JSON.stringify({ instruction: '  ', output: 'b' })}`,
      /line 2: "instruction" is missing or empty/,
    ],
    ['not JSON', '{"instruction": "a", "output": "b"}\n{oops', /line 2 is not valid JSON/],
    [
      'mixed kinds',
      `${JSON.stringify({ instruction: 'a', output: 'b' })}\n${JSON.stringify({ input_ids: [1], labels: [1] })}`,
      /line 2: a pre-tokenized row in a file of text records/,
    ],
    ['labels length', JSON.stringify({ input_ids: [1, 2], labels: [1] }), /line 1: 2 input_ids but 1 labels/],
    ['token out of vocabulary', JSON.stringify({ input_ids: [1, 32000], labels: [1, 2] }), /input_ids\[1\] = 32000 is not a token id below 32000/],
    ['bad label', JSON.stringify({ input_ids: [1, 2], labels: [1, -5] }), /labels\[1\] = -5 is neither -100 nor a token id/],
    ['empty file', '  \n', /is empty/],
    ['empty array', '[]', /has no records/],
    ['GSM8K row without answer', JSON.stringify({ question: 'q?' }), /line 1: "answer" is missing/],
  ];
  for (const [label, text, re] of cases) {
    it(label, () => {
      expect(() => prepareTrainingData(tok, text, 'f')).toThrow(TrainingDataError);
      expect(() => prepareTrainingData(tok, text, 'f')).toThrow(re);
    });
  }
});
