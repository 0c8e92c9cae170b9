import { beforeAll, describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import {
  buildRunRecord,
  parseShard,
  promptConfigText,
  recordDifferences,
  recordedKvCache,
  shardIndices,
  ShardSpecError,
  type RunRecord,
} from '../../src/reasoning/runRecord.ts';
import { mergeResults, MergeError, describeIndices, type MergeLine } from '../../src/reasoning/mergeResults.ts';
import { getPromptConfig } from '../../src/reasoning/prompts.ts';
import { createRun, addRunItem, runJsonlRows, runRows, runSummaryRows } from '../../src/reasoning/runs.ts';

const config = getPromptConfig('q_end');

function record(
  over: Partial<{ indices: number[]; shard: { index: number; count: number } | null; maxNewTokens: number; browser: string }> = {},
): Promise<RunRecord> {
  return buildRunRecord({
    appVersion: '0.1.0',
    model: { id: 'models/tiny/q4f32_1', fingerprint: 'ab'.repeat(32), source: 'models/tiny/q4f32_1' },
    adapter: null,
    promptId: 'q_end',
    config,
    maxNewTokens: over.maxNewTokens ?? 8,
    dataset: { name: 'gsm8k', url: 'data/gsm8k/test.jsonl', sha256: 'cd'.repeat(32), indices: over.indices ?? [0, 1, 2, 3, 4], shard: over.shard ?? null },
    environment: { browser: over.browser ?? 'chromium 1', gpuAdapter: 'swiftshader', engine: 'reasoning-lab webgpu' },
    started: new Date('2026-01-01T00:00:00Z'),
  });
}

describe('run record', () => {
  it('carries the prompt configuration text and its SHA-256 (node:crypto as the oracle), decoding and dates', async () => {
    const r = await record();
    expect(r.prompt.text).toBe(promptConfigText(config));
    expect(JSON.parse(r.prompt.text)).toEqual({ id: 'q_end', template: config.template, stopSequences: config.stopSequences });
    expect(r.prompt.sha256).toBe(createHash('sha256').update(r.prompt.text, 'utf8').digest('hex'));
    expect(r.decoding).toEqual({ kind: 'greedy', maxNewTokens: 8, stops: config.stopSequences });
    expect(r.dates).toEqual({ started: '2026-01-01T00:00:00.000Z', finished: null });
    const beams = await buildRunRecord({
      ...{ appVersion: '0', model: r.model, adapter: null, promptId: 'q_end', config, maxNewTokens: 8, dataset: r.dataset, environment: r.environment },
      decoding: { kind: 'beam', numBeams: 4 },
    });
    expect(beams.decoding).toEqual({ kind: 'beam', numBeams: 4, maxNewTokens: 8, stops: config.stopSequences });
  });

  it('differences name the field; dates, environment, shard and file locations are free', async () => {
    expect(recordDifferences(await record(), await record({ shard: { index: 1, count: 3 }, browser: 'chromium 2' }))).toEqual([]);
    expect(recordDifferences(await record(), await record({ maxNewTokens: 16 }))).toEqual(['decoding.maxNewTokens: 8 vs 16']);
    expect(recordDifferences(await record(), await record({ indices: [0, 1, 2] }))[0]).toMatch(/^dataset\.indices: /);
  });

  it("a record that names its KV cache keeps it; one from before the field ran its mode's own (f16 weights, f16 cache)", () => {
    expect(recordedKvCache({ kvCache: 'f16' }, 'q4f32_1')).toBe('f16');
    expect(recordedKvCache({ kvCache: 'f32' }, 'q4f16_1')).toBe('f32');
    expect(recordedKvCache({}, 'q4f32_1')).toBe('f32');
    expect(recordedKvCache({}, 'q0f32')).toBe('f32');
    expect(recordedKvCache({}, 'q4f16_1')).toBe('f16');
    expect(recordedKvCache(undefined, 'q0f16')).toBe('f16');
    // Said unknown, or nothing to resolve against: unknown, not guessed.
    expect(recordedKvCache({ kvCache: null }, 'q4f32_1')).toBeNull();
    expect(recordedKvCache({}, null)).toBeNull();
  });
});

describe('--shard K/N', () => {
  it.each([
    ['4/3', /K must be less than N; shards of 3 are numbered 0 to 2/],
    ['-1/2', /K \(this shard's number\) must not be negative/],
    ['1/0', /N \(the number of shards\) must be at least 1/],
    ['a/b', /expects K\/N with whole numbers/],
    ['1.5/3', /expects K\/N with whole numbers/],
  ])('%s is refused clearly', (spec, message) => {
    expect(() => parseShard(spec)).toThrow(ShardSpecError);
    expect(() => parseShard(spec)).toThrow(message);
  });

  it('shards partition the selected list by position (i mod N = K), in run order', async () => {
    const selection = [7, 3, 9, 0, 5, 1, 8];
    const parts = [0, 1, 2].map((k) => shardIndices(selection, parseShard(`${k}/3`)));
    expect(parts).toEqual([
      [7, 0, 8],
      [3, 5],
      [9, 1],
    ]);
    expect(parts.flat().sort((a, b) => a - b)).toEqual([...selection].sort((a, b) => a - b));
    expect(shardIndices(selection, parseShard('0/1'))).toEqual(selection);
  });
});

describe('merge', () => {
  // One record per shard of a 2-way split, made once (building a record hashes its prompt: async).
  const shardRecords: RunRecord[] = [];
  beforeAll(async () => {
    for (const index of [0, 1]) shardRecords[index] = await record({ shard: { index, count: 2 } });
  });
  const line = (index: number, shard: number, output = `out ${index}`): MergeLine => ({
    index,
    output,
    correct: false,
    pred: null,
    gold: 1,
    record: shardRecords[shard],
  });

  it('puts parts back in selection order, the shard cleared; an identical duplicate counts once', async () => {
    const m = mergeResults([
      { name: 'a', lines: [line(0, 0), line(2, 0), line(4, 0)] },
      { name: 'b', lines: [line(3, 1), line(1, 1), line(3, 1)] },
    ]);
    expect(m.lines.map((l) => l.index)).toEqual([0, 1, 2, 3, 4]);
    expect(m.duplicates).toEqual([3]);
    expect(m.record.dataset.shard).toBeNull();
    expect(m.lines.every((l) => l.record!.dataset.shard === null)).toBe(true);
  });

  it('lists missing indices, refuses a disagreeing duplicate, a stray index and a different record (naming the field)', async () => {
    expect(() => mergeResults([{ name: 'a', lines: [line(0, 0), line(4, 0)] }])).toThrow(/3 of the run's 5 problems are missing: 1-3/);
    expect(() =>
      mergeResults([
        { name: 'a', lines: [line(0, 0)] },
        { name: 'b', lines: [line(0, 1, 'other')] },
      ]),
    ).toThrow(/Problem 0 is in a line 1 and b line 1 with different outputs/);
    expect(() => mergeResults([{ name: 'a', lines: [line(9, 0)] }])).toThrow(MergeError);
    const other = { ...line(1, 1), record: await record({ maxNewTokens: 4 }) };
    expect(() =>
      mergeResults([
        { name: 'a', lines: [line(0, 0)] },
        { name: 'b', lines: [other] },
      ]),
    ).toThrow(/b line 1 belongs to a different run than a line 1: decoding\.maxNewTokens: 8 vs 4/);
    expect(() => mergeResults([{ name: 'a', lines: [{ index: 0, output: 'x' }] }])).toThrow(/has no run record/);
  });

  it('describes indices as ranges', async () => {
    expect(describeIndices([5, 1, 2, 3, 9])).toBe('1-3, 5, 9');
  });
});

describe('app run exports', () => {
  it('CSV rows stay flat; JSONL rows add every mode, lm-eval sample fields and the record; summary rows per mode', async () => {
    let run = createRun(
      { dataset: 'gsm8k', promptId: 'q_end', promptTemplate: config.template, adapter: null, model: 'tiny', record: await record({ indices: [5] }) },
      [5],
      1000,
    );
    run = addRunItem(run, { index: 5, pred: 18, gold: 18, correct: true, target: '18', output: 'so $18.' });
    expect(Object.keys(runRows(run)[0])).toEqual(['run', 'dataset', 'prompt', 'adapter', 'model', 'index', 'pred', 'gold', 'correct', 'output']);
    const [line] = runJsonlRows(run);
    expect(line).toMatchObject({
      doc_id: 5,
      target: '18',
      resps: [['so $18.']],
      filtered_resps: ['[invalid]'],
      filter: 'strict-match',
      exact_match: 0,
      scores: {
        'llm-adapters': { pred: 18, correct: true },
        'lm-eval-strict': { pred: '[invalid]', correct: false },
        'lm-eval-flexible': { pred: '$18.', correct: true },
      },
    });
    expect((line.record as { prompt: { sha256: string } }).prompt.sha256).toBe(run.record!.prompt.sha256);
    expect(runSummaryRows(run).map((r) => [r.mode, r.correct, r.total])).toEqual([
      ['llm-adapters', 1, 1],
      ['lm-eval-strict', 0, 1],
      ['lm-eval-flexible', 1, 1],
    ]);
  });
});
