/**
 * npm run train -- --model <dir> (--method lora|series|parallel [--r N --alpha A --dropout P --bottleneck N --targets a,b] | --init <peft dir>)
 *   --data <file> (--steps N | --epochs E) --batch B --grad-accum G --lr X --warmup W --weight-decay D
 *   [--max-len 256] [--seed S] [--no-shuffle] --out <peft dir> [--json]
 *
 * Trains an adapter on a frozen base (src/training, through the TrainerBackend seam: the WebGPU
 * trainer through Dawn's Node bindings on a hardware adapter, else the reference trainer, CPU, f64,
 * saying why: src/training/chooseBackend.ts) and writes a PEFT folder (adapter_config.json +
 * adapter_model.safetensors, F32). --method's unset fields come from the paper's recipe
 * (src/training/recipes.ts). --batch is the micro-batch, --grad-accum the micro-batches per
 * optimizer step. Every argument, the model's files, --init's adapter and the whole data file are
 * checked before the base weights are read. Progress goes to stderr; --json prints one JSON object
 * last on stdout: losses (one per optimizer step, the mean of its micro-batches' losses), lrs,
 * tokensPerSecond, peakGpuBytes (the GPU trainer's allocated buffers at their most; 0 on the CPU). A non-finite loss or update stops the run, keeps the last good
 * state, writes it to --out and exits 1.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs, runMain, UsageError } from './args.ts';
import { dirModelSource } from './hfCheckpoint.ts';
import { PEFT_CONFIG_FILE, PEFT_PICKLED_WEIGHTS_FILE, PEFT_WEIGHTS_FILE } from '../formats/peftAdapter.ts';
import { DEFAULT_CUTOFF_LEN, hasTrainedTarget, parseTrainingFile, prepareTrainingData, type PreparedDataset } from '../training/data.ts';
import type { AdapterSpec } from '../training/init.ts';
import { RecipeError, specFromRecipe, TRAINING_METHODS, type TrainingMethod } from '../training/recipes.ts';
import { peftInit, type PeftInit } from '../training/peftInit.ts';
import { baseTokenizer, loadTrainingBase, readTrainingBaseInfo } from '../training/referenceModel.ts';
import { nodeWebGpu } from './nodeWebGpu.ts';
import { createTrainerState, defaultHyper } from '../training/referenceTrainer.ts';
import { trainerTotalSteps } from '../training/schedule.ts';
import { adamwInitState } from '../training/adamw.ts';
import { adapterTensorList, type TrainerState } from '../training/checkpoint.ts';
import { ReferenceTrainerBackend, tallyStep, type TrainerBackend, type TrainingTally } from '../training/backend.ts';
import { exportTrainedAdapter } from '../training/export.ts';

const USAGE =
  'usage: npm run train -- --model <dir> (--method lora|series|parallel [--r N --alpha A --dropout P --bottleneck N --targets a,b] | --init <peft dir>) ' +
  '--data <file> (--steps N | --epochs E) --batch B --grad-accum G --lr X --warmup W --weight-decay D [--max-len 256] [--seed S] [--no-shuffle] --out <peft dir> [--json]';

const STRINGS = [
  'model',
  'method',
  'r',
  'alpha',
  'dropout',
  'bottleneck',
  'targets',
  'init',
  'data',
  'steps',
  'epochs',
  'batch',
  'grad-accum',
  'lr',
  'warmup',
  'weight-decay',
  'max-len',
  'seed',
  'out',
];

function num(values: Record<string, string>, name: string, kind: 'int' | 'number', min: number, what: string, max = Infinity): number {
  const raw = values[name];
  const x = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(x) || (kind === 'int' && !Number.isInteger(x)) || x < min || x > max) {
    throw new UsageError(`--${name} must be ${what}, got "${raw}".`);
  }
  return x;
}

export interface TrainArgs {
  model: string;
  method?: TrainingMethod;
  init?: string;
  specOverrides: { r?: number; alpha?: number; dropout?: number; bottleneck?: number; targets?: string[] };
  data: string;
  steps?: number;
  epochs?: number;
  batch: number;
  gradAccum: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  maxLen: number;
  seed: number;
  shuffle: boolean;
  out: string;
  json: boolean;
}

/** The command line to checked arguments (no file is read here). */
export function parseTrainArgs(argv: string[]): TrainArgs {
  const { values, flags } = parseArgs(argv, { strings: STRINGS, flags: ['no-shuffle', 'json'] });
  const missing = ['model', 'data', 'batch', 'grad-accum', 'lr', 'warmup', 'weight-decay', 'out'].filter((k) => values[k] === undefined);
  if (missing.length) throw new UsageError(`missing ${missing.map((k) => `--${k}`).join(', ')}.`);
  if ((values.method === undefined) === (values.init === undefined))
    throw new UsageError('give exactly one of --method lora|series|parallel and --init <peft dir>.');
  if ((values.steps === undefined) === (values.epochs === undefined)) throw new UsageError('give exactly one of --steps N and --epochs E.');
  const method = values.method as TrainingMethod | undefined;
  if (method !== undefined && !TRAINING_METHODS.includes(method)) throw new UsageError(`--method must be lora, series or parallel, got "${values.method}".`);
  const specFlags = ['r', 'alpha', 'dropout', 'bottleneck', 'targets'].filter((k) => values[k] !== undefined);
  if (values.init !== undefined && specFlags.length)
    throw new UsageError(`${specFlags.map((k) => `--${k}`).join(', ')} shape a new adapter (--method); --init takes its config from the adapter.`);
  if (method === 'lora' && values.bottleneck !== undefined) throw new UsageError('--bottleneck applies to series and parallel adapters, not LoRA (use --r).');
  if (method && method !== 'lora' && (values.r !== undefined || values.alpha !== undefined))
    throw new UsageError(`--r and --alpha apply to LoRA, not ${method} adapters (use --bottleneck).`);
  const o: TrainArgs['specOverrides'] = {};
  if (values.r !== undefined) o.r = num(values, 'r', 'int', 1, 'a positive integer');
  if (values.alpha !== undefined) o.alpha = num(values, 'alpha', 'number', Number.MIN_VALUE, 'a positive number');
  if (values.dropout !== undefined) {
    o.dropout = num(values, 'dropout', 'number', 0, 'a probability in [0, 1)', 1);
    if (o.dropout >= 1) throw new UsageError(`--dropout must be a probability in [0, 1), got "${values.dropout}".`);
  }
  if (values.bottleneck !== undefined) o.bottleneck = num(values, 'bottleneck', 'int', 1, 'a positive integer');
  if (values.targets !== undefined) {
    o.targets = values.targets.split(',').map((t) => t.trim());
    if (o.targets.some((t) => t === '')) throw new UsageError(`--targets must be module names separated by commas, got "${values.targets}".`);
  }
  return {
    model: values.model,
    method,
    init: values.init,
    specOverrides: o,
    data: values.data,
    steps: values.steps !== undefined ? num(values, 'steps', 'int', 1, 'a positive integer') : undefined,
    epochs: values.epochs !== undefined ? num(values, 'epochs', 'number', Number.MIN_VALUE, 'a positive number') : undefined,
    batch: num(values, 'batch', 'int', 1, 'a positive integer'),
    gradAccum: num(values, 'grad-accum', 'int', 1, 'a positive integer'),
    lr: num(values, 'lr', 'number', 0, 'a non-negative number'),
    warmup: num(values, 'warmup', 'int', 0, 'a non-negative integer'),
    weightDecay: num(values, 'weight-decay', 'number', 0, 'a non-negative number'),
    maxLen: values['max-len'] !== undefined ? num(values, 'max-len', 'int', 2, 'an integer ≥ 2') : DEFAULT_CUTOFF_LEN,
    seed: values.seed !== undefined ? num(values, 'seed', 'int', 0, 'an integer in [0, 2^32)', 2 ** 32 - 1) : 42,
    shuffle: !flags.has('no-shuffle'),
    out: values.out,
    json: flags.has('json'),
  };
}

/** --method plus its overrides: the paper's recipe with the given fields replaced; unknown modules refused by name. */
export function specFromArgs(method: TrainingMethod, o: TrainArgs['specOverrides']): AdapterSpec {
  try {
    return specFromRecipe(method, o);
  } catch (e) {
    if (!(e instanceof RecipeError)) throw e;
    throw new UsageError(`${o.targets && /no module/.test(e.message) ? '--targets: ' : ''}${e.message}.`);
  }
}

function readJsonFile(path: string, what: string): unknown {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** --out may be new, empty, or a PEFT folder (replaced); anything else is refused so nothing unrelated is overwritten. */
function checkOutDir(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new Error(`--out ${out} exists and is not a directory`);
  const other = readdirSync(out).filter((f) => f !== PEFT_CONFIG_FILE && f !== PEFT_WEIGHTS_FILE);
  if (other.length)
    throw new Error(`--out ${out} holds other files (${other.slice(0, 3).join(', ')}): give a new or empty folder, or a PEFT adapter folder to replace`);
}

/** Writes the two files beside --out, then swaps them in: an error leaves nothing behind. */
function writePeftDir(out: string, configJson: string, weights: Uint8Array): void {
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}-${Date.now()}`;
  try {
    mkdirSync(tmp);
    writeFileSync(join(tmp, PEFT_CONFIG_FILE), configJson);
    writeFileSync(join(tmp, PEFT_WEIGHTS_FILE), weights);
    if (existsSync(out)) {
      const old = `${out}.old-${process.pid}-${Date.now()}`;
      renameSync(out, old);
      renameSync(tmp, out);
      rmSync(old, { recursive: true, force: true });
    } else renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

export interface TrainSummary {
  backend: string;
  method: AdapterSpec['kind'];
  steps: number;
  stepsDone: number;
  losses: number[];
  lrs: number[];
  tokensPerSecond: number;
  peakGpuBytes: number;
  examples: number;
  truncated: number;
  unlabelled: number;
  out: string;
  stopped: string | null;
}

const fmtTime = (s: number) => {
  const t = Math.max(0, Math.round(s));
  return `${Math.floor(t / 3600)}:${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`;
};

/** The whole CLI, callable from tests: checks everything, trains, writes --out. */
export async function runTrain(args: TrainArgs, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<TrainSummary> {
  const modelDir = resolve(args.model);
  if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) throw new Error(`--model ${args.model}: no such directory`);
  const source = dirModelSource(modelDir);
  const base = await readTrainingBaseInfo(source).catch((e: Error) => {
    throw new Error(`--model ${args.model} is not a converted model folder: ${e.message}`, { cause: e });
  });

  let spec: AdapterSpec;
  let init: PeftInit | undefined;
  if (args.init !== undefined) {
    const dir = resolve(args.init);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--init ${args.init}: no such directory`);
    const weightsFile = ([PEFT_WEIGHTS_FILE, PEFT_PICKLED_WEIGHTS_FILE] as const).find((f) => existsSync(join(dir, f)));
    if (!weightsFile) throw new Error(`--init ${args.init}: neither ${PEFT_WEIGHTS_FILE} nor ${PEFT_PICKLED_WEIGHTS_FILE} found`);
    init = await peftInit({
      adapterConfig: readJsonFile(join(dir, PEFT_CONFIG_FILE), `--init ${PEFT_CONFIG_FILE}`),
      adapterWeights: new Uint8Array(readFileSync(join(dir, weightsFile))),
      adapterWeightsFile: weightsFile,
      baseChatConfig: base.info.chatConfigJson,
      baseTensorCache: base.info.tensorCacheJson,
    }).catch((e: Error) => {
      throw new Error(`--init ${args.init}: ${e.message.replace(/^--init: /, '')}`, { cause: e });
    });
    spec = init.spec;
  } else spec = specFromArgs(args.method!, args.specOverrides);

  const dataPath = resolve(args.data);
  if (!existsSync(dataPath) || !statSync(dataPath).isFile()) throw new Error(`--data ${args.data}: no such file`);
  const text = readFileSync(dataPath, 'utf8');
  const tok = await baseTokenizer(base.info);
  let data: PreparedDataset;
  if (tok) data = prepareTrainingData(tok, text, basename(dataPath), { cutoffLen: args.maxLen, maxLen: args.maxLen });
  else {
    // No tokenizer: only pre-tokenized rows, used as given (cut at --max-len), as prepareTrainingData does.
    const parsed = parseTrainingFile(text, basename(dataPath), base.config.vocabSize);
    if (parsed.kind !== 'pretokenized')
      throw new Error(`--model ${args.model} has no tokenizer.json: only pre-tokenized JSONL ({"input_ids": [...], "labels": [...]}) can train on it`);
    const cut = parsed.rows.map((r) => ({ inputIds: r.inputIds.slice(0, args.maxLen), labels: r.labels.slice(0, args.maxLen) }));
    const examples = cut.filter(hasTrainedTarget);
    const truncated = parsed.rows.filter((r) => r.inputIds.length > args.maxLen).length;
    data = { kind: 'pretokenized', examples, truncated, unlabelled: cut.length - examples.length };
  }
  if (data.examples.length === 0) throw new Error(`--data ${args.data}: no example has a labelled target token (${data.unlabelled} dropped)`);

  const totalSteps = args.steps ?? trainerTotalSteps(data.examples.length, args.batch, args.gradAccum, args.epochs!);
  const out = resolve(args.out);
  checkOutDir(out);

  const hyper = defaultHyper({
    microBatch: args.batch,
    gradAccum: args.gradAccum,
    lr: args.lr,
    warmupSteps: args.warmup,
    totalSteps,
    shuffle: args.shuffle,
    seed: args.seed,
    weightDecay: args.weightDecay,
  });
  log(
    `data: ${data.examples.length} examples from ${basename(dataPath)} (${data.kind}; ${data.truncated} cut at ${args.maxLen} tokens, ` +
      `${data.unlabelled} without a labelled target dropped)`,
  );

  // Heavy work from here on.
  let state: TrainerState;
  if (init) {
    state = { spec, hyper, step: 0, adapter: init.adapter, optim: new Map() };
    for (const t of adapterTensorList(init.adapter)) state.optim.set(t.name, adamwInitState(t.data.length));
  } else state = createTrainerState(base.config, spec, hyper);
  const gpu = await nodeWebGpu();
  let backend: TrainerBackend;
  if ('unavailable' in gpu) {
    backend = new ReferenceTrainerBackend(await loadTrainingBase(source, base.info), data.examples, state);
    log(`no WebGPU device (${gpu.unavailable}): training on the reference trainer`);
  } else {
    // Imported only now: engine modules read Dawn's WebGPU globals as they load.
    const { chooseTrainerBackend } = await import('../training/chooseBackend.ts');
    const choice = await chooseTrainerBackend({
      gpu,
      allowSoftware: process.env.REASONING_LAB_TRAIN_ON_SOFTWARE_GPU === '1',
      source,
      info: base.info,
      data: data.examples,
      state,
      referenceModel: () => loadTrainingBase(source, base.info),
    });
    backend = choice.backend;
    if (choice.notice) log(choice.notice);
  }
  log(
    `backend: ${backend.label}; ${spec.kind} on ${spec.targets.join(', ')}; ${totalSteps} optimizer steps of ${args.gradAccum} × ${args.batch} examples; ` +
      `base ${base.mode}, frozen`,
  );

  const tally: TrainingTally = { tokens: 0, seconds: 0, losses: [], lrs: [] };
  const { losses, lrs } = tally;
  let stopped: string | null = null;
  for (let s = 0; s < totalSteps; s++) {
    const r = await tallyStep(backend, tally);
    if ('stopped' in r) {
      stopped = r.stopped;
      break;
    }
    const { tokens, seconds } = tally;
    const rate = tokens / Math.max(seconds, 1e-9);
    log(
      `step ${s + 1}/${totalSteps}  loss ${losses[s].toFixed(4)}  lr ${lrs[s].toExponential(2)}  ${rate.toFixed(0)} tok/s  ` +
        `ETA ${fmtTime((seconds / (s + 1)) * (totalSteps - s - 1))}`,
    );
  }

  const exported = exportTrainedAdapter(base.config, spec, backend.state.adapter, init?.baseModelNameOrPath ?? basename(modelDir), init?.keys);
  writePeftDir(out, exported.adapterConfigJson, exported.adapterWeights);
  log(`wrote ${out}: PEFT ${spec.kind} adapter after ${backend.state.step} steps (${PEFT_CONFIG_FILE} + ${PEFT_WEIGHTS_FILE}, F32)`);
  if (stopped) log(`stopped: ${stopped}`);
  const summary: TrainSummary = {
    backend: backend.label,
    method: spec.kind,
    steps: totalSteps,
    stepsDone: losses.length,
    losses,
    lrs,
    tokensPerSecond: tally.seconds > 0 ? tally.tokens / tally.seconds : 0,
    peakGpuBytes: backend.peakGpuBytes(),
    examples: data.examples.length,
    truncated: data.truncated,
    unlabelled: data.unlabelled,
    out,
    stopped,
  };
  backend.dispose();
  return summary;
}

async function main() {
  const args = parseTrainArgs(process.argv.slice(2));
  const summary = await runTrain(args);
  if (args.json) process.stdout.write(JSON.stringify(summary) + '\n');
  if (summary.stopped) throw new Error(summary.stopped);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) runMain(main, USAGE);
