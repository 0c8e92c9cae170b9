import { describe, expect, it } from 'vitest';
import { promptFitProblem } from '../../src/ui/promptFit.ts';
import { paperComparability, paperAdapterId, PAPER_RESULTS } from '../../src/reasoning/paper.ts';
import { runViewPage, runViewRecordText, runViewRows } from '../../src/reasoning/runView.ts';
import { adapterName, NO_ADAPTER } from '../../src/ui/adapterChoices.ts';
import { noValidProblems } from '../../src/reasoning/datasetStore.ts';
import { parseDataset } from '../../src/reasoning/datasets.ts';

describe('a prompt fits the context or says why not', () => {
  it('fits exactly at the context, refuses one token over, and names the room left', () => {
    expect(promptFitProblem(464, 48, 512)).toBeNull();
    expect(promptFitProblem(465, 48, 512)).toMatch(
      /^This prompt \(465 tokens\) plus 48 new tokens does not fit this model's 512-token context\. .*at most 47 new tokens\.$/,
    );
    expect(promptFitProblem(900, 48, 512)).toMatch(/Choose a shorter configuration\.$/);
    expect(promptFitProblem(null, 48, 512)).toBeNull();
    expect(promptFitProblem(900, 48, null)).toBeNull();
  });
});

describe("the paper's number is comparable only with the paper's model and adapter", () => {
  it('compares the paper base alone and its own math_10k adapter; not a tiny model, not another adapter of the kind', () => {
    expect(paperComparability({ model: 'llama-2-7b-q4f16_1', adapter: null })).toEqual({ comparable: true });
    const lora = paperAdapterId('lora', 'llama-2-7b-q4f16_1')!;
    expect(lora).toBe('llama-2-7b-lora-math10k-q4f16_1');
    expect(paperComparability({ model: 'llama-2-7b-q4f16_1', adapter: 'x', adapterKind: 'lora', adapterId: lora })).toEqual({ comparable: true });
    expect(paperComparability({ model: 'llama-2-7b-q4f16_1', adapter: 'MetaMath', adapterKind: 'lora', adapterId: 'metamath' })).toMatchObject({
      comparable: false,
    });
    expect(paperComparability({ model: 'llama-2-7b-chat-q4f16_1', adapter: null })).toMatchObject({ comparable: false });
    const tiny = paperComparability({ model: 'tiny-q4f32_1', adapter: 'tiny lora', adapterKind: 'lora', adapterId: 'tiny-q4f32_1-lora' });
    expect(tiny.comparable).toBe(false);
    if (!tiny.comparable) expect(tiny.reason).toContain('tiny-q4f32_1');
    // Every adapter row of the table has a catalog entry named by paperAdapterId.
    for (const r of PAPER_RESULTS) if (r.adapter) expect(paperAdapterId(r.adapter, 'llama-2-7b-q4f32_1')).toBe(`llama-2-7b-${r.adapter}-math10k-q4f32_1`);
  });
});

describe('a run read problem by problem', () => {
  const problems = Array.from({ length: 45 }, (_, i) => ({ index: i, question: `q${i}`, gold: i }));
  const run = {
    id: 'r',
    dataset: 'gsm8k' as const,
    promptId: 'q_end',
    model: 'tiny',
    adapter: null,
    items: problems.map((p) => ({ index: p.index, output: `out ${p.index}`, pred: p.index % 2 ? p.index : null, gold: p.gold, correct: p.index % 2 === 1 })),
  };
  it('pages, filters the wrong answers, clamps the page, and copies a record as text', () => {
    const rows = runViewRows(run, problems);
    expect(rows[3]).toEqual({ position: 4, index: 3, question: 'q3', output: 'out 3', pred: 3, gold: 3, correct: true });
    expect(runViewPage(rows, { onlyWrong: false, page: 2, pageSize: 20 })).toMatchObject({ page: 2, pages: 3, matching: 45, first: 41, last: 45 });
    const wrong = runViewPage(rows, { onlyWrong: true, page: 9, pageSize: 20 });
    expect(wrong).toMatchObject({ page: 1, pages: 2, matching: 23, first: 21, last: 23 });
    expect(wrong.rows.every((r) => !r.correct)).toBe(true);
    expect(runViewRows(run, null)[0].question).toBeNull();
    const text = runViewRecordText(run, rows[0]);
    expect(text).toContain('Question: q0\nOutput:\nout 0\nExtracted answer: none found\nGold: 0\nVerdict: incorrect');
  });
});

describe('one name per adapter', () => {
  it("is the listed manifest's name, also once loaded; a URL folder's adapter.json name once loaded", () => {
    const choices = [{ id: 'tiny-q4f32_1-lora', label: 'Tiny LoRA demo (q4f32_1)' }];
    expect(adapterName('tiny-q4f32_1-lora', choices, { name: 'tiny lora (random)' })).toBe('Tiny LoRA demo (q4f32_1)');
    expect(adapterName('url:https://x/a/', choices, { name: 'mine' })).toBe('mine');
    expect(adapterName('url:https://x/a/', choices)).toBe('a (from https://x/a/)');
    expect(adapterName(NO_ADAPTER, choices)).toBe('none (base model)');
  });
});

describe('a file with no valid problem', () => {
  it('says so with the reasons, counting items, not problems', () => {
    const parsed = parseDataset('{"question": "a?"}\n{"x": 1}\n', 'gsm8k');
    expect(parsed.problems).toHaveLength(0);
    expect(noValidProblems('GSM8K', 'https://h/d.jsonl', parsed)).toBe(
      'No valid problems at https://h/d.jsonl: none of its 2 items is a GSM8K problem (line 1 (item 0): missing "answer"; line 2 (item 1): missing "question"/"instruction"). Check the data URL.',
    );
    expect(noValidProblems('GSM8K', 'u', parseDataset('', 'gsm8k'))).toBe('No valid problems at u: the file is empty. Check the data URL.');
  });
});
