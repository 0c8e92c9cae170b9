/**
 * npm run eval -- --model <dir|manifest.json> [--adapter <dir>]
 *   --prompt <baseline|q_end|a_begin|alpaca|zero_shot|alpaca+q_end|alpaca+a_begin|FILE>
 *   --dataset <gsm8k|svamp|aqua|mawps> [--data <file>] [--limit N] [--seed S]
 *   [--max-new-tokens 256] [--beams N] [--kv-cache auto|f16|f32] [--shard K/N] [--out results.jsonl] [--gpu|--no-gpu]
 *
 * Headless evaluation: the app's engine runs in ONE headless Chromium page (the model is loaded
 * once); each problem's result comes back to Node as soon as it is solved, is scored here with the
 * LLM-Adapters rules, written to --out as one JSON line, and reported on stderr (problems done,
 * accuracy so far with its 95% Wilson interval, tokens/s, time left). Greedy decoding, 256 new
 * tokens at most by default (the paper's setting), stopping at EOS or the configuration's stop
 * sequences; --beams N: beam search as LLM-Adapters decodes (4 beams), one problem at a time.
 * Rerunning with the same --out resumes: problems already in the file are skipped, and the
 * summary counts every line of the file. The last stdout line is a JSON summary.
 *
 * --data defaults to the dataset's file under ../shared/data (env REASONING_LAB_DATA overrides
 * that root). --prompt FILE is a custom template with one {question}; it has no stop sequences
 * (generation ends at EOS or --max-new-tokens). The model is a converted model directory, or a
 * manifest (models/*.json) whose baseUrl is a local directory or an http(s) URL.
 *
 * Every output is scored in every mode that applies (llm-adapters, lm-eval-strict,
 * lm-eval-flexible: src/reasoning/score.ts); `pred`/`correct` are LLM-Adapters'. Every line and the
 * summary carry the run record (src/reasoning/runRecord.ts): model and adapter fingerprints, the
 * prompt configuration text and hash, decoding, the data file's hash and the selected indices,
 * the KV cache's format, app version, browser, GPU adapter, engine, dates.
 *
 * --kv-cache f16 stores an f32 mode's KV cache in f16 (half the bytes: about twice the batch in
 * the same memory, at f16's rounding of every cached key and value); auto (the default) keeps the
 * mode's own (f32 for q4f32_1 / q0f32, f16 for q4f16_1 / q0f16). The record names the format in
 * use, so parts run with different caches are refused by resume and by npm run merge.
 *
 * --shard K/N runs part K (0-based) of N: the problems at positions i of the selected list (after
 * --seed and --limit) with i mod N = K. `npm run merge` puts the parts back together.
 */
import { appendFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, runMain, UsageError } from './args.ts';
import type { EvalPageOptions, EvalPageResult } from './evalPage.ts';
import { ADAPTER_MANIFEST_FILE } from '../formats/adapterFormat.ts';
import { MLC_CHAT_CONFIG_FILE } from '../formats/baseModelFiles.ts';
import {
  DATASET_NAMES,
  DATASETS,
  describeSkipped,
  isDatasetName,
  parseDataset,
  selectProblems,
  type DatasetName,
  type Problem,
} from '../reasoning/datasets.ts';
import { customPrompt, getPromptConfig, PROMPT_CONFIGS, type PromptConfig } from '../reasoning/prompts.ts';
import { scoreOutput, summarize, type ModeResult, type ScoringMode } from '../reasoning/score.ts';
import {
  buildRunRecord,
  parseShard,
  RECORD_FREE_FIELDS,
  recordDifferences,
  recordedKvCache,
  sha256OfText,
  shardIndices,
  ShardSpecError,
  type Decoding,
  type RunRecord,
  type Shard,
} from '../reasoning/runRecord.ts';
import { lmEvalSampleFields, resultSummary, scoresOf, type LmEvalSampleFields } from '../reasoning/export.ts';
import { parseManifest } from '../formats/manifest.ts';
import { baseFingerprint, httpModelSource, readBaseModelJson } from '../formats/modelFiles.ts';
import { parseMlcChatConfig } from '../formats/mlcChatConfig.ts';
import type { QuantMode } from '../formats/llamaConfig.ts';
import { isKvCacheOption, KV_CACHE_OPTIONS, resolveKvFormat, type KvCacheOption } from '../engine/kvCache.ts';
import { sha256Hex } from '../formats/hashes.ts';
import { dirModelSource } from './hfCheckpoint.ts';

const ROOT = resolve(import.meta.dirname, '../..');

const DEFAULT_PROMPT = 'q_end';

const USAGE =
  'usage: npm run eval -- --model <dir|manifest.json> [--adapter <dir>] ' +
  `[--prompt <${PROMPT_CONFIGS.map((c) => c.id).join('|')}|FILE>] --dataset <${DATASET_NAMES.join('|')}> ` +
  '[--data <file>] [--limit N] [--seed S] [--max-new-tokens 256] [--batch auto|B] [--beams N] [--kv-cache auto|f16|f32] [--shard K/N] [--out results.jsonl] [--gpu|--no-gpu]';

/** What the record calls the engine that generated (the app's own WebGPU engine, src/engine). */
const ENGINE_NAME = 'reasoning-lab webgpu';

/** What a results line was made with; a resumed --out file must match it. */
export interface RunIdentity {
  model: string;
  adapter: string | null;
  prompt: string;
  dataset: DatasetName;
  max_new_tokens: number;
}

/**
 * One line of --out: `pred`/`correct` by LLM-Adapters' rules, `scores` in every mode, lm-eval's
 * sample fields (doc_id, target, resps, filtered_resps, filter, exact_match: strict-match), the record.
 */
export interface ResultLine extends Partial<LmEvalSampleFields> {
  index: number;
  question: string;
  prompt_config: string;
  output: string;
  pred: number | string | null;
  gold: number | string;
  correct: boolean;
  scores?: Partial<Record<ScoringMode, ModeResult>>;
  new_tokens: number;
  stop_reason: string;
  decode_tokens_per_s: number | null;
  run: RunIdentity;
  record?: RunRecord;
}

async function main() {
  const { values, flags } = parseArgs(process.argv.slice(2), {
    strings: ['model', 'adapter', 'prompt', 'dataset', 'data', 'limit', 'seed', 'max-new-tokens', 'out', 'batch', 'beams', 'shard', 'kv-cache'],
    flags: ['gpu', 'no-gpu'],
  });
  if (!values.model) throw new UsageError('--model is required.');
  if (!values.dataset) throw new UsageError('--dataset is required.');
  if (!isDatasetName(values.dataset)) throw new UsageError(`Unknown --dataset "${values.dataset}". Known: ${DATASET_NAMES.join(', ')}.`);
  const dataset = values.dataset;
  // The default fits small test models too (the 8-shot baseline needs ~900 tokens of context).
  const promptArg = values.prompt ?? DEFAULT_PROMPT;
  if (values.prompt === undefined) process.stderr.write(`no --prompt given: using ${DEFAULT_PROMPT}\n`);
  const limit = values.limit === undefined ? undefined : intArg(values.limit, 'limit');
  const seed = values.seed === undefined ? undefined : intArg(values.seed, 'seed');
  const maxNewTokens = intArg(values['max-new-tokens'] ?? '256', 'max-new-tokens');
  if (maxNewTokens === 0) throw new UsageError('--max-new-tokens must be at least 1.');
  // Sequences decoded together (continuous batching); 'auto' takes as many as GPU memory allows.
  const batch: number | 'auto' = values.batch === undefined || values.batch === 'auto' ? 'auto' : intArg(values.batch, 'batch');
  if (batch === 0) throw new UsageError('--batch must be at least 1 (or auto).');
  // --beams N: beam search as LLM-Adapters' evaluate.py (num_beams=4), one problem at a time; 1 (default): greedy.
  const numBeams = intArg(values.beams ?? '1', 'beams');
  if (numBeams === 0) throw new UsageError('--beams must be at least 1 (1: greedy decoding).');
  const decoding: Decoding = numBeams > 1 ? { kind: 'beam', numBeams } : { kind: 'greedy' };
  const shard = values.shard === undefined ? null : shardArg(values.shard);
  const kvCache = kvCacheArg(values['kv-cache']);

  const { config, promptId } = resolvePrompt(promptArg);
  const model = resolveModel(values.model);
  const adapterDir = values.adapter === undefined ? null : resolve(values.adapter);
  if (adapterDir && !(existsSync(adapterDir) && statSync(adapterDir).isDirectory())) throw new Error(`--adapter ${values.adapter}: no such directory.`);
  if (adapterDir && !existsSync(join(adapterDir, ADAPTER_MANIFEST_FILE))) {
    throw new Error(`--adapter ${values.adapter} is not a converted adapter directory (no ${ADAPTER_MANIFEST_FILE}). Run npm run convert-adapter first.`);
  }

  // Data, read here and handed to the page.
  const dataPath = resolve(values.data ?? join(resolve(process.env.REASONING_LAB_DATA ?? resolve(ROOT, '../shared/data')), DATASETS[dataset].path));
  if (!existsSync(dataPath)) {
    throw new Error(`The ${dataset} data file ${dataPath} does not exist${values.data ? '' : ' (set --data <file> or REASONING_LAB_DATA to the data root)'}.`);
  }
  const dataBytes = readFileSync(dataPath);
  const parsed = parseDataset(dataBytes.toString('utf8'), dataset);
  for (const line of describeSkipped(parsed.skipped)) process.stderr.write(`warning: ${dataPath}: ${line}; skipped\n`);
  if (parsed.problems.length === 0) throw new Error(`${dataPath} has no usable ${dataset} problems.`);
  const selection = selectProblems(parsed.problems, { limit, seed });
  // A shard is a slice of the selected list (positions i mod N = K), so shards of one selection
  // partition it whatever --seed and --limit chose.
  const mine = new Set(
    shardIndices(
      selection.map((p) => p.index),
      shard,
    ),
  );
  const selected = selection.filter((p) => mine.has(p.index));

  const run: RunIdentity = {
    model: model.id,
    adapter: adapterDir ? displayPath(adapterDir) : null,
    prompt: promptId,
    dataset,
    max_new_tokens: maxNewTokens,
  };

  const facts = await modelFacts(model);
  const record = await buildRunRecord({
    appVersion: appVersion(),
    model: { id: model.id, fingerprint: facts.fingerprint, source: model.dir ? displayPath(model.dir) : model.url! },
    adapter: adapterDir ? await adapterRecord(adapterDir) : null,
    promptId,
    config,
    maxNewTokens,
    decoding,
    // The format the page will load with (resolved as the engine resolves it; the page checks).
    kvCache: facts.mode ? resolveKvFormat(facts.mode, kvCache) : null,
    dataset: { name: dataset, url: displayPath(dataPath), sha256: await sha256Hex(dataBytes), seed, limit, indices: selection.map((p) => p.index), shard },
    environment: { browser: null, gpuAdapter: null, engine: ENGINE_NAME },
  });

  // Resume: what --out already holds.
  const outPath = values.out ? resolve(values.out) : null;
  const done = new Map<number, ResultLine>();
  if (outPath) for (const line of readResults(outPath, run, record, facts.mode ?? null)) done.set(line.index, line);
  const todo = selected.filter((p) => !done.has(p.index));
  if (done.size > 0) process.stderr.write(`resuming ${displayPath(outPath!)}: ${done.size} problems already done, ${todo.length} to go\n`);

  const session =
    todo.length === 0
      ? null
      : await runInBrowser({
          model,
          adapterDir,
          config,
          promptId,
          dataset,
          todo,
          selected,
          maxNewTokens,
          batch,
          numBeams,
          kvCache,
          outPath,
          done,
          run,
          record,
          gpu: flags.has('gpu') ? true : flags.has('no-gpu') ? false : undefined,
        });

  const { scores, ...summary } = resultSummary(DATASETS[dataset].answerKind, [...done.values()]);
  process.stdout.write(
    JSON.stringify({
      dataset,
      prompt: promptId,
      model: model.id,
      adapter: run.adapter,
      ...summary,
      decoding: record.decoding,
      problems_per_minute: session && session.problems > 0 ? round((session.problems * 60_000) / session.ms, 3) : null,
      // Aggregate throughput: every sequence's new tokens over the wall time (batched sequences overlap).
      decode_tokens_per_s: session && session.ms > 0 ? round((session.decodeTokens * 1000) / session.ms, 2) : null,
      ...(outPath ? { out: displayPath(outPath) } : {}),
      ...(shard ? { shard: `${shard.index}/${shard.count}` } : {}),
      scores,
      record: { ...record, dates: { ...record.dates, finished: new Date().toISOString() } },
    }) + '\n',
  );
}

interface ResolvedModel {
  /** How results name the model: a path relative to the working directory, or a URL. */
  id: string;
  /** A local model directory to mount, or null for a remote one. */
  dir: string | null;
  /** The remote model directory URL, when not local. */
  url: string | null;
}

function resolveModel(arg: string): ResolvedModel {
  const path = resolve(arg);
  if (!existsSync(path)) throw new Error(`--model ${arg}: no such file or directory.`);
  let dir: string;
  if (statSync(path).isDirectory()) dir = path;
  else {
    const text = readFileSync(path, 'utf8');
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`--model ${arg} is neither a model directory nor a JSON manifest (${(e as Error).message}).`, { cause: e });
    }
    // A model directory's own mlc-chat-config.json also names its directory.
    if (raw && typeof raw === 'object' && 'model_type' in raw) dir = dirname(path);
    else {
      const manifest = parseManifest(raw, arg, pathToFileURL(path).href);
      if (manifest.kind !== 'base') throw new Error(`--model ${arg} is an adapter manifest: give the base model as --model and the adapter as --adapter.`);
      const base = manifest.baseUrl!;
      if (/^https?:/.test(base)) return { id: base, dir: null, url: base.endsWith('/') ? base : `${base}/` };
      if (!base.startsWith('file:')) throw new Error(`--model ${arg}: baseUrl ${base} is neither a local directory nor an http(s) URL.`);
      dir = fileURLToPath(base);
      if (!existsSync(dir)) {
        throw new Error(`--model ${arg} points at ${dir}, which does not exist${/[\\/]tiny[\\/]/.test(dir) ? ' (run npm run make-tiny-model)' : ''}.`);
      }
    }
  }
  dir = dir.replace(/[\\/]+$/, '');
  if (!existsSync(join(dir, MLC_CHAT_CONFIG_FILE)))
    throw new Error(`${dir} is not a converted model directory (no ${MLC_CHAT_CONFIG_FILE}). Run npm run convert first.`);
  return { id: displayPath(dir), dir, url: null };
}

function resolvePrompt(arg: string): { config: PromptConfig; promptId: string } {
  if (PROMPT_CONFIGS.some((c) => c.id === arg)) return { config: getPromptConfig(arg), promptId: arg };
  if (existsSync(arg) && statSync(arg).isFile()) {
    const config = customPrompt(readFileSync(arg, 'utf8'));
    return { config, promptId: `file:${displayPath(resolve(arg))}` };
  }
  throw new UsageError(`--prompt "${arg}" is neither a prompt configuration (${PROMPT_CONFIGS.map((c) => c.id).join(', ')}) nor a template file.`);
}

/**
 * The lines already in --out. A last line cut off mid-write (no newline, not JSON) is dropped from
 * the file so it is redone; any other unreadable line, or a line from a different run, is an error.
 */
function readResults(outPath: string, run: RunIdentity, record: RunRecord, mode: QuantMode | null): ResultLine[] {
  if (!existsSync(outPath)) return [];
  const text = readFileSync(outPath, 'utf8');
  const lines = text.split('\n');
  const results: ResultLine[] = [];
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const isLast = i === lines.length - 1;
    const lineStart = offset;
    offset += Buffer.byteLength(raw, 'utf8') + 1;
    if (raw.trim() === '') continue;
    let line: ResultLine;
    try {
      line = JSON.parse(raw) as ResultLine;
      if (typeof line !== 'object' || line === null || !Number.isInteger(line.index) || typeof line.correct !== 'boolean') throw new Error('not a result line');
    } catch (e) {
      if (isLast) {
        process.stderr.write(`${displayPath(outPath)}: line ${i + 1} was cut off mid-write; it will be redone\n`);
        truncateSync(outPath, lineStart);
        break;
      }
      throw new Error(`${displayPath(outPath)} line ${i + 1} is not a result line (${(e as Error).message}); fix or remove it, or use another --out.`, {
        cause: e,
      });
    }
    // Lines from before records named the KV cache ran the mode's own one (recordedKvCache).
    const was = line.record ? { ...line.record, kvCache: recordedKvCache(line.record, mode) } : line.record;
    const mismatch = describeMismatch(line.run, run) ?? describeRecordMismatch(was, record);
    if (mismatch) {
      throw new Error(
        `${displayPath(outPath)} holds results of a different run (line ${i + 1}: ${mismatch}). ` +
          'Refusing to mix them: use another --out, or rerun with the same --model/--adapter/--prompt/--dataset/--max-new-tokens/--kv-cache.',
      );
    }
    results.push(line);
  }
  // A file whose last complete line lacks its newline: add it so appended lines start on their own.
  const now = readFileSync(outPath, 'utf8');
  if (now.length > 0 && !now.endsWith('\n')) appendFileSync(outPath, '\n');
  return results;
}

function describeMismatch(was: Partial<RunIdentity> | undefined, now: RunIdentity): string | null {
  if (!was || typeof was !== 'object') return 'it has no "run" field';
  const diffs: string[] = [];
  for (const key of ['model', 'adapter', 'prompt', 'dataset', 'max_new_tokens'] as const) {
    if ((was[key] ?? null) !== now[key]) diffs.push(`${key} was ${JSON.stringify(was[key] ?? null)}, now ${JSON.stringify(now[key])}`);
  }
  return diffs.length > 0 ? diffs.join('; ') : null;
}

/**
 * A line's record against this invocation's (lines written before records existed have none).
 * A resumed file may grow: --limit (and so the selected indices) may change; the shard may not.
 */
function describeRecordMismatch(was: RunRecord | undefined, now: RunRecord): string | null {
  if (!was) return null;
  const free = [...RECORD_FREE_FIELDS.filter((f) => f !== 'dataset.shard'), 'dataset.indices', 'dataset.limit'];
  const diffs = recordDifferences(was, now, free);
  return diffs.length > 0 ? `record ${diffs.join('; ')}` : null;
}

function shardArg(spec: string): Shard {
  try {
    return parseShard(spec);
  } catch (e) {
    if (e instanceof ShardSpecError) throw new UsageError(e.message);
    throw e;
  }
}

function appVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The base model's fingerprint (formats/modelFiles.ts baseFingerprint, the one adapters bind to)
 * and its quantization mode (which 'auto' KV caches follow), both null when Node cannot read them.
 */
async function modelFacts(model: ResolvedModel): Promise<{ fingerprint: string | null; mode: QuantMode | null }> {
  try {
    const { chatConfig, tensorCache } = await readBaseModelJson(model.dir ? dirModelSource(model.dir) : httpModelSource(model.url!));
    return { fingerprint: await baseFingerprint(chatConfig, tensorCache), mode: parseMlcChatConfig(chatConfig).quantization };
  } catch {
    // A model the page cannot load either fails there with its own clear message.
    return { fingerprint: null, mode: null };
  }
}

function kvCacheArg(v: string | undefined): KvCacheOption {
  if (v === undefined) return 'auto';
  if (!isKvCacheOption(v)) throw new UsageError(`--kv-cache expects one of ${KV_CACHE_OPTIONS.join(', ')}, got "${v}".`);
  return v;
}

/** adapter.json's name, kind and base fingerprint; the adapter's own fingerprint is adapter.json's SHA-256. */
async function adapterRecord(dir: string): Promise<NonNullable<RunRecord['adapter']>> {
  const text = readFileSync(join(dir, ADAPTER_MANIFEST_FILE), 'utf8');
  let json: { name?: unknown; kind?: unknown; method?: unknown; base?: { fingerprint?: unknown } } = {};
  try {
    json = JSON.parse(text);
  } catch {
    // Left to the page's loader to report.
  }
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  return {
    name: str(json.name),
    kind: str(json.kind) ?? str(json.method),
    fingerprint: await sha256OfText(text),
    baseFingerprint: str(json.base?.fingerprint),
    source: displayPath(dir),
  };
}

interface RunContext {
  model: ResolvedModel;
  adapterDir: string | null;
  config: PromptConfig;
  promptId: string;
  dataset: DatasetName;
  todo: Problem[];
  selected: Problem[];
  maxNewTokens: number;
  batch: number | 'auto';
  numBeams: number;
  kvCache: KvCacheOption;
  outPath: string | null;
  done: Map<number, ResultLine>;
  run: RunIdentity;
  record: RunRecord;
  gpu: boolean | undefined;
}

/** Solve `todo` in one page; returns this session's throughput (model loading excluded). */
async function runInBrowser(ctx: RunContext): Promise<{ problems: number; ms: number; decodeTokens: number; decodeMs: number }> {
  const mounts: Record<string, string> = {};
  if (ctx.model.dir) mounts['/cli-model'] = ctx.model.dir;
  if (ctx.adapterDir) mounts['/cli-adapter'] = ctx.adapterDir;
  const byIndex = new Map(ctx.todo.map((p) => [p.index, p]));
  const selectedIndices = new Set(ctx.selected.map((p) => p.index));
  const stats = { problems: 0, ms: 0, decodeTokens: 0, decodeMs: 0, newTokens: 0 };
  let started = 0;
  if (ctx.outPath && !existsSync(ctx.outPath)) writeFileSync(ctx.outPath, '');

  // Imported here so argument and data errors report without loading Vite and Playwright.
  const { openBrowserSession } = await import('./browserSession.ts');
  const session = await openBrowserSession({ mounts, gpu: ctx.gpu, quiet: !process.env.DEBUG });
  try {
    // The record names where this ran (a resumed run or a shard may run elsewhere: a free field).
    ctx.record.environment = {
      browser: `${session.page.context().browser()?.browserType().name() ?? 'browser'} ${session.page.context().browser()?.version() ?? ''}`.trim(),
      gpuAdapter: await session.page.evaluate(gpuAdapterDescription),
      engine: ENGINE_NAME,
    };
    await session.page.exposeFunction('__evalStatus', (message: string) => {
      process.stderr.write(`${message}\n`);
      if (message.startsWith('model loaded')) started = performance.now();
    });
    await session.page.exposeFunction('__evalResult', (r: EvalPageResult) => {
      const problem = byIndex.get(r.index);
      if (!problem) throw new Error(`The page reported problem ${r.index}, which was not asked for.`);
      const scored = scoreOutput(ctx.dataset, problem, r.output);
      const kind = DATASETS[ctx.dataset].answerKind;
      const tps = r.decodeTokens > 0 && r.decodeMs > 0 ? (r.decodeTokens * 1000) / r.decodeMs : null;
      const line: ResultLine = {
        index: r.index,
        question: problem.question,
        prompt_config: ctx.config.id === 'custom' ? ctx.promptId : ctx.config.id,
        output: r.output,
        pred: scored.pred,
        gold: scored.gold,
        correct: scored.correct,
        scores: scoresOf(kind, scored),
        ...lmEvalSampleFields(kind, { ...scored, output: r.output }),
        new_tokens: r.newTokens,
        stop_reason: r.stopReason,
        decode_tokens_per_s: tps === null ? null : round(tps, 2),
        run: ctx.run,
        record: ctx.record,
      };
      if (ctx.outPath) appendFileSync(ctx.outPath, JSON.stringify(line) + '\n');
      ctx.done.set(r.index, line);
      stats.problems++;
      stats.decodeTokens += r.decodeTokens;
      stats.decodeMs += r.decodeMs;
      stats.newTokens += r.newTokens;
      stats.ms = performance.now() - started;
      process.stderr.write(progressLine(ctx, selectedIndices, stats) + '\n');
    });
    const options: EvalPageOptions = {
      modelUrl: ctx.model.dir ? '/cli-model/' : ctx.model.url!,
      adapterUrl: ctx.adapterDir ? '/cli-adapter/' : null,
      config: ctx.config,
      problems: ctx.todo.map((p) => ({ index: p.index, question: p.question })),
      maxNewTokens: ctx.maxNewTokens,
      maxBatch: ctx.batch,
      numBeams: ctx.numBeams,
      kvCache: ctx.kvCache,
      recordedKvCache: ctx.record.kvCache,
      reportFn: '__evalResult',
      statusFn: '__evalStatus',
    };
    const info = await session.page
      .evaluate(async (opts) => {
        const { runEvalInPage } = (await import(/* @vite-ignore */ '/src/cli/evalPage.ts' as string)) as typeof import('./evalPage.ts');
        return runEvalInPage(opts);
      }, options)
      .catch((e: Error) => {
        // Playwright wraps the page's error as "page.evaluate: Error: <message>\n    at <page stack>".
        if (process.env.DEBUG) throw e;
        throw new Error(e.message.replace(/^page\.evaluate: (\w*Error: )?/, '').split(/\n\s+at /)[0]);
      });
    process.stderr.write(`done on ${info.gpuAdapter}${info.adapter ? ` with adapter ${info.adapter}` : ''}\n`);
  } finally {
    await session.close();
  }
  return stats;
}

/** In the page: the WebGPU adapter the engine will get (the same request it makes, src/engine/gpu.ts). */
async function gpuAdapterDescription(): Promise<string | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = await gpu?.requestAdapter();
  if (!adapter) return null;
  const info = adapter.info;
  return [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'unknown adapter';
}

function progressLine(
  ctx: RunContext,
  selected: Set<number>,
  s: { problems: number; ms: number; decodeTokens: number; decodeMs: number; newTokens: number },
): string {
  const doneSelected = [...ctx.done.keys()].filter((i) => selected.has(i)).length;
  const all = summarize([...ctx.done.values()]);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const tps = s.decodeMs > 0 ? `${((s.decodeTokens * 1000) / s.decodeMs).toFixed(1)} tok/s` : '- tok/s';
  const perProblem = s.problems > 0 ? s.ms / s.problems : 0;
  const left = (selected.size - doneSelected) * perProblem;
  return (
    `[${doneSelected}/${selected.size}] accuracy ${pct(all.accuracy)} (${all.correct}/${all.total}, 95% CI ${pct(all.interval.lower)}–${pct(all.interval.upper)})` +
    ` | ${tps} | ${(perProblem / 1000).toFixed(1)} s/problem | ${formatDuration(left)} left`
  );
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A path relative to the working directory when it lies inside it, else absolute; '/' separators. */
function displayPath(p: string): string {
  const rel = relative(process.cwd(), p);
  const shown = rel === '' ? '.' : rel.startsWith('..') ? p : rel;
  return shown.split(sep).join('/');
}

function intArg(s: string, name: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} expects a non-negative integer, got "${s}".`);
  return n;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

runMain(main, USAGE);
