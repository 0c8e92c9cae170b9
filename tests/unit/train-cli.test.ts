/**
 * `npm run train` on the tiny model (q0f32, real tokenizer, real math_data.json records from
 * ../shared/data): the CLI's losses and weights equal the reference trainer run here in-process,
 * --no-shuffle takes examples (s·G+m)·B … in file order (checked against the base model's loss of
 * exactly those examples), --init reads back what --out wrote, the folder converts with
 * `npm run convert-adapter`, and bad input is refused before any training with nothing written.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirModelSource } from '../../src/cli/hfCheckpoint.ts';
import { parseTrainArgs, runTrain, type TrainSummary } from '../../src/cli/train.ts';
import { parseAdapterManifest, readAdapterTensors } from '../../src/formats/adapterFormat.ts';
import { parseSafetensorsHeader, readSafetensorsTensor } from '../../src/formats/safetensors.ts';
import { peftTensorKey } from '../../src/formats/peftExport.ts';
import { trainingForward } from '../../src/engine/referenceTraining.ts';
import { padBatch } from '../../src/training/batching.ts';
import { adapterTensorList, type TrainerState } from '../../src/training/checkpoint.ts';
import { adamwInitState } from '../../src/training/adamw.ts';
import { prepareTrainingData, type TokenizedExample } from '../../src/training/data.ts';
import { baseTokenizer, loadTrainingBase, type LoadedTrainingBase } from '../../src/training/referenceModel.ts';
import { createTrainerState, defaultHyper, trainStep } from '../../src/training/referenceTrainer.ts';
import type { AdapterSpec } from '../../src/training/init.ts';

const run = promisify(execFile);
const MODEL = 'models/tiny/q0f32';
const MATH = '../shared/data/llm-adapters/train/math_data.json';
const root = mkdtempSync(join(tmpdir(), 'train-cli-'));
const dataFile = join(root, 'math5.json');
const MAX_LEN = 56; // the prompt template alone is 47 tokens: the records differ after it
const tailFile = join(root, 'tails.jsonl');

async function cli(args: string[], viaNpm = false): Promise<{ summary: TrainSummary; stderr: string }> {
  const cmd = viaNpm ? ['npm', ['run', '--silent', 'train', '--', ...args]] : ['npx', ['tsx', 'src/cli/train.ts', ...args]];
  const { stdout, stderr } = await run(cmd[0] as string, cmd[1] as string[], { timeout: 400_000, maxBuffer: 1 << 24 });
  return { summary: JSON.parse(stdout.trim().split('\n').pop()!) as TrainSummary, stderr };
}

let base: LoadedTrainingBase;
let examples: TokenizedExample[];
let tails: TokenizedExample[];

beforeAll(async () => {
  // five real records of the dev data
  const records = (JSON.parse(readFileSync(MATH, 'utf8')) as unknown[]).slice(0, 5);
  writeFileSync(dataFile, JSON.stringify(records));
  base = await loadTrainingBase(dirModelSource(MODEL));
  const tok = (await baseTokenizer(base.info))!;
  examples = prepareTrainingData(tok, readFileSync(dataFile, 'utf8'), 'math5.json', { cutoffLen: MAX_LEN }).examples;
  // pre-tokenized rows: BOS and the last 7 + i tokens of record i (distinct, different lengths: padding matters)
  const rows = records.map((r, i) => {
    const ids = [1, ...prepareTrainingData(tok, JSON.stringify([r]), 'r').examples[0].inputIds.slice(-(7 + i))];
    return JSON.stringify({ input_ids: ids, labels: ids });
  });
  writeFileSync(tailFile, rows.join('\n') + '\n');
  tails = prepareTrainingData(tok, readFileSync(tailFile, 'utf8'), 'tails.jsonl').examples;
}, 120_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

const COMMON = ['--model', MODEL, '--data', dataFile, '--max-len', String(MAX_LEN)];
const LORA: AdapterSpec = { kind: 'lora', r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj', 'down_proj'] };

function peftTensors(dir: string): Map<string, Float32Array> {
  const bytes = new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors')));
  const h = parseSafetensorsHeader(bytes);
  return new Map([...h.tensors.keys()].map((k) => [k, readSafetensorsTensor(bytes, k, h)]));
}

describe('npm run train', () => {
  const outA = join(root, 'lora-a');
  let refA: TrainerState;

  it('LoRA with shuffle and dropout: the losses, rates and weights of the reference trainer; says which backend ran', async () => {
    const { summary, stderr } = await cli(
      [...COMMON, '--method', 'lora', '--r', '4', '--alpha', '8', '--dropout', '0.1', '--targets', 'q_proj,v_proj,down_proj'].concat([
        '--steps',
        '3',
        '--batch',
        '1',
        '--grad-accum',
        '2',
        '--lr',
        '2e-2',
        '--warmup',
        '1',
        '--weight-decay',
        '0.01',
        '--seed',
        '7',
        '--out',
        outA,
        '--json',
      ]),
      true,
    );
    refA = createTrainerState(
      base.config,
      LORA,
      defaultHyper({ microBatch: 1, gradAccum: 2, lr: 2e-2, warmupSteps: 1, totalSteps: 3, shuffle: true, seed: 7, weightDecay: 0.01 }),
    );
    const ref = [0, 1, 2].map(() => trainStep(base, examples, refA));
    expect(summary.backend).toBe('reference (CPU, f64)');
    expect(stderr).toContain('backend: reference (CPU, f64)');
    expect(stderr).toMatch(/step 3\/3 +loss \d+\.\d+ +lr /);
    expect(summary.losses).toEqual(ref.map((r) => r.loss));
    expect(summary.lrs).toEqual(ref.map((r) => r.lr));
    expect(summary.lrs[0]).toBe(0);
    expect(summary.tokensPerSecond).toBeGreaterThan(0);
    expect(summary.peakGpuBytes).toBe(0);
    expect(summary.truncated).toBe(5); // every record is longer than MAX_LEN tokens
    const cfg = JSON.parse(readFileSync(join(outA, 'adapter_config.json'), 'utf8'));
    expect([cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules]).toEqual(['LORA', 4, 8, 0.1, LORA.targets]);
    const got = peftTensors(outA);
    const want = adapterTensorList(refA.adapter);
    expect(got.size).toBe(want.length);
    for (const t of want) expect(got.get(peftTensorKey(t.layer, t.module, t.role)), t.name).toEqual(t.data);
    expect(want.some((t) => t.role === 'lora_B' && t.data.some((x) => x !== 0))).toBe(true);
  }, 600_000);

  it('the exported folder converts with npm run convert-adapter to the same tensors', async () => {
    const conv = join(root, 'converted');
    await run('npx', ['tsx', 'src/cli/convertAdapter.ts', '--in', outA, '--base', MODEL, '--out', conv], { timeout: 120_000 });
    const manifest = parseAdapterManifest(readFileSync(join(conv, 'adapter.json'), 'utf8'));
    expect(manifest.kind).toBe('lora');
    expect(manifest.lora!.scaling).toBe(2);
    const tensors = await readAdapterTensors(manifest, new Map(manifest.shards.map((s) => [s.dataPath, readFileSync(join(conv, s.dataPath))])));
    for (const t of adapterTensorList(refA.adapter)) expect(tensors.get(t.name), t.name).toEqual(t.data);
  }, 180_000);

  it("--init starts from --out's adapter: same keys and config back, and its first loss is the reference's from those weights", async () => {
    const outC = join(root, 'lora-c');
    const { summary } = await cli(
      [...COMMON, '--init', outA, '--steps', '1', '--batch', '2', '--grad-accum', '1', '--lr', '0', '--warmup', '0'].concat([
        '--weight-decay',
        '0',
        '--no-shuffle',
        '--out',
        outC,
        '--json',
      ]),
    );
    const a = peftTensors(outA);
    const c = peftTensors(outC);
    expect([...c.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of a) expect(c.get(k), k).toEqual(v); // lr 0 changes nothing
    const cfgA = JSON.parse(readFileSync(join(outA, 'adapter_config.json'), 'utf8'));
    const cfgC = JSON.parse(readFileSync(join(outC, 'adapter_config.json'), 'utf8'));
    expect(cfgC).toEqual(cfgA);
    // the reference trainer from refA's weights, with C's run settings
    const hyper = defaultHyper({ microBatch: 2, gradAccum: 1, lr: 0, warmupSteps: 0, totalSteps: 1, shuffle: false, seed: 42, weightDecay: 0 });
    const optim = new Map(adapterTensorList(refA.adapter).map((t) => [t.name, adamwInitState(t.data.length)]));
    const state: TrainerState = { spec: LORA, hyper, step: 0, adapter: refA.adapter, optim };
    expect(summary.losses).toEqual([trainStep(base, examples, state).loss]);
  }, 600_000);

  it("--no-shuffle: micro-batch m of step s holds examples (s·G+m)·B … +B−1 modulo the file (lr 0: the base model's loss of those)", async () => {
    const { summary } = await cli(
      ['--model', MODEL, '--data', tailFile, '--method', 'series', '--bottleneck', '4', '--steps', '2', '--batch', '2', '--grad-accum', '2'].concat([
        '--lr',
        '0',
        '--warmup',
        '0',
        '--weight-decay',
        '0',
        '--no-shuffle',
        '--out',
        join(root, 'series'),
        '--json',
      ]),
    );
    const N = tails.length;
    const lossesFrom = (first: number) =>
      [0, 1].map((s) => {
        const micro = [0, 1].map((m) => {
          const idx = [0, 1].map((j) => (first + (s * 2 + m) * 2 + j) % N);
          return trainingForward(base.config, base.weights, undefined, padBatch(idx.map((i) => tails[i]))).loss;
        });
        return (micro[0] + micro[1]) / 2;
      });
    const expected = lossesFrom(0);
    expect(summary.losses.length).toBe(2);
    summary.losses.forEach((l, i) => expect(Math.abs(l - expected[i])).toBeLessThan(1e-9 * expected[i]));
    // the order starting one example later gives other losses (so the check can fail)
    lossesFrom(1).forEach((l, i) => expect(Math.abs(l - expected[i])).toBeGreaterThan(1e-6));
  }, 600_000);
});

describe('npm run train refuses bad input before training, writing nothing', () => {
  const out = join(root, 'never');
  const args = (over: Record<string, string | null>) => {
    const a: Record<string, string | null> = {
      model: MODEL,
      method: 'lora',
      data: dataFile,
      steps: '1',
      batch: '1',
      'grad-accum': '1',
      lr: '1e-3',
      warmup: '0',
      'weight-decay': '0',
      'max-len': String(MAX_LEN),
      out,
      ...over,
    };
    return Object.entries(a).flatMap(([k, v]) => (v === null ? [] : [`--${k}`, v]));
  };
  const refuse = async (over: Record<string, string | null>, message: RegExp) => {
    await expect((async () => runTrain(parseTrainArgs(args(over)), () => {}))()).rejects.toThrow(message);
    expect(existsSync(out)).toBe(false);
  };

  it('arguments: missing, unknown, both or neither of a pair, bad numbers', async () => {
    await refuse({ out: null }, /missing --out/);
    await refuse({ method: null }, /exactly one of --method .* and --init/);
    await refuse({ init: root }, /exactly one of --method .* and --init/);
    await refuse({ epochs: '1' }, /exactly one of --steps N and --epochs E/);
    await refuse({ method: 'prefix' }, /--method must be lora, series or parallel, got "prefix"/);
    await refuse({ lr: 'fast' }, /--lr must be a non-negative number, got "fast"/);
    await refuse({ batch: '0' }, /--batch must be a positive integer, got "0"/);
    await refuse({ steps: '2.5' }, /--steps must be a positive integer, got "2.5"/);
    await refuse({ dropout: '1' }, /--dropout must be a probability in \[0, 1\), got "1"/);
    await refuse({ 'max-len': '1' }, /--max-len must be an integer ≥ 2/);
    await refuse({ warmup: 'NaN' }, /--warmup must be a non-negative integer/);
    await refuse({ bottleneck: '8' }, /--bottleneck applies to series and parallel adapters/);
    expect(() => parseTrainArgs([...args({}), '--rank', '4'])).toThrow(/Unknown option --rank/);
  });

  it('files: missing model folder, missing data, --init without a PEFT adapter, --out holding other files', async () => {
    await refuse({ model: join(root, 'nope') }, /--model .*nope: no such directory/);
    await refuse({ model: root }, /is not a converted model folder: mlc-chat-config.json not found/);
    await refuse({ data: join(root, 'nope.json') }, /--data .*nope.json: no such file/);
    await refuse({ method: null, init: root }, /--init .*: neither adapter_model.safetensors nor adapter_model.bin found/);
    const busy = join(root, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'notes.txt'), 'mine');
    await expect(runTrain(parseTrainArgs(args({ out: busy })), () => {})).rejects.toThrow(/holds other files \(notes.txt\)/);
    expect(readdirSync(busy)).toEqual(['notes.txt']);
  });

  it('a target module the model lacks, and series on a module LLM-Adapters has no series adapter for', async () => {
    await refuse({ targets: 'q_proj,lm_head' }, /the model has no module "lm_head" \(a Llama layer has q_proj, k_proj/);
    await refuse({ method: 'series', targets: 'q_proj' }, /series adapters only apply to gate_proj, up_proj and down_proj/);
  });

  it('data records without output or with an empty instruction, named by record', async () => {
    const bad = join(root, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify([
        { instruction: 'Add 2 and 2.', input: '', output: '4' },
        { instruction: 'Add 3 and 3.', input: '' },
      ]),
    );
    await refuse({ data: bad }, /bad.json record 1: "output" is missing/);
    writeFileSync(bad, JSON.stringify([{ instruction: '  ', input: '', output: '4' }]));
    await refuse({ data: bad }, /bad.json record 0: "instruction" is missing or empty/);
    const jsonl = join(root, 'bad.jsonl');
    writeFileSync(jsonl, '{"input_ids": [1, 5, 6], "labels": [1, 5, 6]}\n{"input_ids": [1, 5], "labels": [1]}\n');
    await refuse({ data: jsonl }, /bad.jsonl line 2: 2 input_ids but 1 labels/);
  });

  it('a non-finite update stops the run, keeps and writes the last good state, and says so', async () => {
    const stopped = join(root, 'stopped');
    const summary = await runTrain(parseTrainArgs(args({ lr: '1e300', steps: '3', out: stopped, dropout: '0' })), () => {});
    expect(summary.stopped).toMatch(/optimizer step 0 .*made adapter weights non-finite.*last good state \(after 0 steps\) is kept/);
    expect(summary.losses).toEqual([]);
    // the written adapter is the initial one: finite A, zero B
    const t = peftTensors(stopped);
    expect([...t.values()].every((a) => a.every(Number.isFinite))).toBe(true);
    expect([...t.entries()].filter(([k]) => k.includes('lora_B')).every(([, a]) => a.every((x) => x === 0))).toBe(true);
  }, 120_000);
});
