/**
 * npm run bench -- --model <dir|synthetic:LAYERS[:MODE]> [--adapter <dir|paper:lora|paper:series|paper:parallel>,...]
 *   [--batch B] [--prompt-len P] [--gen G] [--kv-cache auto|f16|f32] [--gpu|--no-gpu] [--json] [--webllm <model-id> [--webllm-stall S]]
 *   [--train|--train-quick [--train-only] [--train-steps N] [--train-methods lora,series,parallel]]
 *
 * Measures, in one run on one device: the copy bandwidth ceiling (a large buffer copy), prefill
 * tokens/s, time to first token, GPU memory, decode tokens/s with and without each adapter, and
 * decode efficiency = bytes one step must read × steps per second ÷ copy bandwidth. Decode is
 * timed twice: reading back every step's logits (decodeBatch), and greedy with the argmax on the
 * GPU and steps pipelined (decodeGreedy, what greedy generation uses).
 * `synthetic:2` is a generated model with Llama-2-7B's layer shapes and 2 layers (q4f16_1 unless
 * a mode follows), made in the page: no files needed. --kv-cache f16 runs an f32 mode with an f16 KV
 * cache (f32 an f16 mode with an f32 one); auto (the default) keeps the mode's own. The report names
 * the format, and the decode bytes per step count the cache at its size.
 * --train adds training rows (src/training/trainBench.ts): each paper recipe (LoRA, series, parallel)
 * trained by the WebGPU trainer on the synthetic model at the recipes' micro-batch 4 × accumulation 4
 * of 256-token rows, one warm-up step then --train-steps timed ones (default 2): tokens/s and the
 * trainer's peak GPU memory, both projected to 32 layers, and three epochs of math_10k with LoRA.
 * --train-quick instead trains 1 timed step (pipeline compiles included) of micro-batch 2 × 1 of
 * 16-token rows: what a software adapter (CI) can run; its rows say so. --train-only skips the
 * inference measurements. --train-methods lora,series,parallel picks recipes. Needs --model synthetic:N.
 * --webllm <id> then runs the same prompt and generation lengths through WebLLM on the same page
 * (e.g. Llama-2-7b-chat-hf-q4f16_1-MLC beside --model <that repository's MLC shards>) and prints both
 * engines' tokens/s side by side; when WebLLM cannot load (no internet for its model library and
 * weights, no shader-f16, …) it says so in one line and the run still succeeds.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, runMain, UsageError } from './args.ts';
import { openBrowserSession } from './browserSession.ts';
import { progressReporter, type ProgressEvent } from './progress.ts';
import { formatBinaryBytes } from '../engine/memoryPlan.ts';
import { isKvCacheOption, KV_CACHE_OPTIONS, type KvCacheOption } from '../engine/kvCache.ts';
import { QUANT_MODES, type QuantMode } from '../formats/llamaConfig.ts';
import { ADAPTER_MANIFEST_FILE } from '../formats/adapterFormat.ts';
import { MLC_CHAT_CONFIG_FILE } from '../formats/baseModelFiles.ts';
import type { BenchOptions, BenchResult, DecodeTiming, WebLLMBenchResult } from './benchPage.ts';
import type { TrainBenchOptions } from '../training/trainBench.ts';
import { formatTrainingLines, type TrainBenchReport } from '../training/trainBenchReport.ts';
import { TRAINING_METHODS, type TrainingMethod } from '../training/recipes.ts';

const USAGE =
  'usage: npm run bench -- --model <dir|synthetic:LAYERS[:MODE]> [--adapter <dir|paper:KIND>,...] [--batch B] [--prompt-len P] [--gen G] [--kv-cache auto|f16|f32] [--gpu|--no-gpu] [--json] [--webllm <model-id> [--webllm-stall S]] [--train|--train-quick [--train-only] [--train-steps N] [--train-methods lora,series,parallel]]';

function kvCacheArg(v: string | undefined): KvCacheOption {
  if (v === undefined) return 'auto';
  if (!isKvCacheOption(v)) throw new UsageError(`--kv-cache expects one of ${KV_CACHE_OPTIONS.join(', ')}, got "${v}".`);
  return v;
}

async function main() {
  const { values, flags } = parseArgs(process.argv.slice(2), {
    strings: ['model', 'adapter', 'batch', 'prompt-len', 'gen', 'kv-cache', 'webllm', 'webllm-stall', 'train-steps', 'train-methods'],
    flags: ['json', 'gpu', 'no-gpu', 'train', 'train-quick', 'train-only'],
  });
  if (!values.model) throw new UsageError('--model is required.');
  const mounts: Record<string, string> = {};
  let model: BenchOptions['model'];
  const synth = /^synthetic:(\d+)(?::(\w+))?$/.exec(values.model);
  if (synth) {
    const mode = (synth[2] ?? 'q4f16_1') as QuantMode;
    if (!QUANT_MODES.includes(mode)) throw new UsageError(`Unknown mode ${mode}: one of ${QUANT_MODES.join(', ')}.`);
    model = { synthetic: { layers: Number(synth[1]), mode } };
  } else {
    const dir = resolve(values.model);
    if (!existsSync(join(dir, MLC_CHAT_CONFIG_FILE))) throw new Error(`${dir} is not a converted model directory (no ${MLC_CHAT_CONFIG_FILE}).`);
    mounts['/bench-model'] = dir;
    model = { url: '/bench-model/' };
  }
  const adapters = (values.adapter ?? '')
    .split(',')
    .filter(Boolean)
    .map((a, i) => {
      if (/^paper:(lora|series|parallel)$/.test(a)) return a;
      const dir = resolve(a);
      if (!existsSync(join(dir, ADAPTER_MANIFEST_FILE)))
        throw new Error(
          `${dir} is not a converted adapter directory (no ${ADAPTER_MANIFEST_FILE}); use npm run convert-adapter, or paper:lora|series|parallel.`,
        );
      mounts[`/bench-adapter-${i}`] = dir;
      return `/bench-adapter-${i}/`;
    });
  const num = (v: string | undefined, d: number, name: string) => {
    const n = v === undefined ? d : Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} expects a positive integer.`);
    return n;
  };
  const opts: BenchOptions = {
    model,
    adapters,
    batch: num(values.batch, 1, 'batch'),
    promptLen: num(values['prompt-len'], 64, 'prompt-len'),
    gen: num(values.gen, 32, 'gen'),
    kvCache: kvCacheArg(values['kv-cache']),
  };
  if (opts.gen < 2) throw new UsageError('--gen must be at least 2 (one warm-up step, then measured steps).');
  if (values.webllm !== undefined && !values.webllm) throw new UsageError('--webllm expects a WebLLM model id, e.g. Llama-2-7b-chat-hf-q4f16_1-MLC.');
  const webllmStallMs = num(values['webllm-stall'], 60, 'webllm-stall') * 1000;
  const train = trainOptions(values, flags, 'synthetic' in model ? model.synthetic : null, num);
  const trainOnly = flags.has('train-only');
  // Progress goes to stderr as it happens (stdout keeps the table or the JSON).
  const progress = progressReporter('bench');
  progress({ phase: 'starting the browser' });
  const session = await openBrowserSession({ mounts, gpu: flags.has('gpu') ? true : flags.has('no-gpu') ? false : undefined, quiet: !process.env.DEBUG });
  let r: BenchResult | null = null;
  let webllm: WebLLMBenchResult | null = null;
  let training: TrainBenchReport | null = null;
  try {
    await session.page.exposeFunction('__benchProgress', (e: ProgressEvent) => progress(e));
    if (!trainOnly)
      r = await session.page.evaluate(async (o) => {
        const { runBench } = (await import(/* @vite-ignore */ '/src/cli/benchPage.ts' as string)) as typeof import('./benchPage.ts');
        return runBench(o, (e) => void (window as unknown as { __benchProgress(e: unknown): Promise<void> }).__benchProgress(e));
      }, opts);
    if (train)
      training = await session.page.evaluate(async (o) => {
        const { runTrainBench } = (await import(/* @vite-ignore */ '/src/cli/benchPage.ts' as string)) as typeof import('./benchPage.ts');
        return runTrainBench(o, (e) => void (window as unknown as { __benchProgress(e: unknown): Promise<void> }).__benchProgress(e));
      }, train);
    // After ours (whose GPU memory is freed by then), on the same page and GPU.
    if (values.webllm) {
      progress({ phase: `WebLLM ${values.webllm}: loading and generating` });
      webllm = await session.page.evaluate(
        async (o) => {
          const { runWebLLMBench } = (await import(/* @vite-ignore */ '/src/cli/benchPage.ts' as string)) as typeof import('./benchPage.ts');
          return runWebLLMBench(o);
        },
        { modelId: values.webllm, promptLen: opts.promptLen, gen: opts.gen, stallMs: webllmStallMs },
      );
    }
  } finally {
    await session.close();
  }
  if (flags.has('json')) {
    const w =
      webllm &&
      ('skipped' in webllm
        ? { model_id: webllm.modelId, skipped: webllm.skipped }
        : {
            model_id: webllm.modelId,
            prefill_tokens_per_s: webllm.prefillTokensPerSecond,
            decode_tokens_per_s: webllm.decodeTokensPerSecond,
            prompt_tokens: webllm.promptTokens,
            gen_tokens: webllm.genTokens,
          });
    process.stdout.write(JSON.stringify({ ...r, ...(w ? { webllm: w } : {}), ...(training ? { training } : {}) }) + '\n');
    return;
  }
  if (!r) {
    process.stdout.write(formatTrainingLines(training!).join('\n') + '\n');
    return;
  }
  const gbps = (b: number) => `${(b / 1e9).toFixed(2)} GB/s`;
  const lines = [
    `device          ${r.gpuAdapter}`,
    `copy bandwidth  ${gbps(r.copyBytesPerSecond)} (read + write of a ${'large'} buffer copy: the ceiling)`,
    `model           ${r.model} (${r.mode}, ${r.layers} layers, KV cache ${r.kvCache})`,
    `GPU memory      weights ${formatBinaryBytes(r.memory.weights)}, KV cache ${formatBinaryBytes(r.memory.kvCache)}, activations ${formatBinaryBytes(r.memory.activations)}, total ${formatBinaryBytes(r.memory.total)}`,
    `prefill         ${r.prefillTokensPerSecond.toFixed(1)} tokens/s (${opts.promptLen} tokens), time to first token ${r.timeToFirstTokenMs.toFixed(1)} ms`,
    '',
    `decode, batch ${r.batch}`,
    `${'adapter'.padEnd(26)}${'tokens/s'.padStart(10)}${'ms/step'.padStart(10)}${'bytes/step'.padStart(13)}${'efficiency'.padStart(12)}${'overhead'.padStart(10)}${'dispatches'.padStart(12)}${'encode ms'.padStart(11)}`,
    ...r.decode.flatMap((d) => [decodeRow(d.adapter ?? 'none (base)', d, d.bytesPerStep), decodeRow('  GPU argmax, pipelined', d.greedy, d.bytesPerStep)]),
    `${`beam search, ${r.beam.numBeams} beams`.padEnd(26)}${''.padStart(10)}${r.beam.msPerStep.toFixed(2).padStart(10)}   ${r.beam.vsGreedyStep.toFixed(2)}x the GPU-argmax step, ${r.beam.vsReadBackStep.toFixed(2)}x the read-back step (batch ${r.batch})`,
    '',
    'efficiency = bytes one decode step must read (weights, scales, KV cache, adapter) x steps/s / copy bandwidth',
    'first row of each: every step reads back its logits; "GPU argmax, pipelined": greedy, only token ids read back, 3 steps in flight',
    "dispatches: what one step encoded, counted as the engine encoded it; encode ms: JS time to queue the step's params and encode its pass",
    '',
    ...profileLines(r),
    '',
    r.gsm8k
      ? `GSM8K estimate, ${r.gsm8k.label}: ${(r.gsm8k.totalSeconds / 60).toFixed(1)} min for ${r.gsm8k.problems} problems (${r.gsm8k.promptTokens}-token prompts, <= ${r.gsm8k.maxNewTokens} new, batch ${r.gsm8k.batch}) = prefill ${(r.gsm8k.prefillSeconds / 60).toFixed(1)} + decode ${(r.gsm8k.decodeSeconds / 60).toFixed(1)} min (${r.gsm8k.basis})`
      : `GSM8K estimate: ${r.gsm8kSkipped}`,
    ...(webllm ? ['', ...webllmLines(webllm, r, opts)] : []),
    ...(training ? ['', ...formatTrainingLines(training)] : []),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

function decodeRow(name: string, d: DecodeTiming, bytesPerStep: number): string {
  return (
    `${name.padEnd(26)}${d.tokensPerSecond.toFixed(1).padStart(10)}${d.msPerStep.toFixed(2).padStart(10)}${formatBinaryBytes(bytesPerStep).padStart(13)}` +
    `${d.efficiency.toFixed(3).padStart(12)}${(d.overhead === null ? '-' : `${(d.overhead * 100).toFixed(1)}%`).padStart(10)}` +
    `${String(d.dispatchesPerStep).padStart(12)}${d.encodeMsPerStep.toFixed(3).padStart(11)}`
  );
}

/** The per-kernel profile's kernels by GPU time (timestamp-query), or why there is none. */
function profileLines(r: BenchResult): string[] {
  const p = r.profile;
  if (!p) return [`per-kernel profile: ${r.profileSkipped}`];
  const w = Math.max(6, ...p.kernels.map((k) => k.kernel.length)) + 2;
  return [
    `per-kernel profile, greedy step at batch ${p.batch} from position ${p.position} (${p.dispatches} dispatches, each timed in a pass of its own${r.software ? ', software adapter' : ''}): ${(p.totalUs / 1000).toFixed(2)} ms`,
    `${'kernel'.padEnd(w)}${'count'.padStart(7)}${'us'.padStart(10)}${'share'.padStart(8)}`,
    ...p.kernels.map(
      (k) => `${k.kernel.padEnd(w)}${String(k.count).padStart(7)}${k.us.toFixed(0).padStart(10)}${`${(100 * k.share).toFixed(1)}%`.padStart(8)}`,
    ),
  ];
}

/** Both engines' tokens/s for the same prompt and generation lengths, or why WebLLM was skipped. */
function webllmLines(w: WebLLMBenchResult, r: BenchResult, o: BenchOptions): string[] {
  if ('skipped' in w) return [`WebLLM: could not load ${w.modelId} (${w.skipped.replace(/\.\s*$/, '')}): skipped`];
  const row = (name: string, prefill: number, decode: number) => `${name.padEnd(44)}${prefill.toFixed(1).padStart(12)}${decode.toFixed(1).padStart(12)}`;
  return [
    `WebLLM side by side (prompt ${o.promptLen} tokens, ${o.gen} generated, greedy)`,
    `${'engine'.padEnd(44)}${'prefill t/s'.padStart(12)}${'decode t/s'.padStart(12)}`,
    // Greedy on both sides: ours with the argmax on the GPU, as greedy generation runs.
    row(`Reasoning Lab${r.batch > 1 ? ` (batch ${r.batch}, all sequences)` : ''}`, r.prefillTokensPerSecond, r.decode[0].greedy.tokensPerSecond),
    row(`WebLLM ${w.modelId}`, w.prefillTokensPerSecond, w.decodeTokensPerSecond),
    `(WebLLM's own counts: ${w.promptTokens} prompt tokens, ${w.genTokens} generated)`,
  ];
}

/** --train / --train-quick as the page's options (null: no training rows). */
function trainOptions(
  values: Record<string, string | undefined>,
  flags: Set<string>,
  synthetic: { layers: number; mode: QuantMode } | null,
  num: (v: string | undefined, d: number, name: string) => number,
): Omit<TrainBenchOptions, 'log'> | null {
  const quick = flags.has('train-quick');
  if (!quick && !flags.has('train')) {
    for (const f of ['train-only', 'train-steps', 'train-methods'])
      if (flags.has(f) || values[f] !== undefined) throw new UsageError(`--${f} goes with --train or --train-quick.`);
    return null;
  }
  if (!synthetic) throw new UsageError('--train needs --model synthetic:LAYERS[:MODE] (the training rows are for Llama-2-7B shapes).');
  const methods = (values['train-methods'] ?? TRAINING_METHODS.join(',')).split(',').map((m) => m.trim()) as TrainingMethod[];
  const bad = methods.filter((m) => !TRAINING_METHODS.includes(m));
  if (bad.length || methods.length === 0) throw new UsageError(`--train-methods takes ${TRAINING_METHODS.join(', ')}, not ${bad.join(', ') || '""'}.`);
  const steps = num(values['train-steps'], quick ? 1 : 2, 'train-steps');
  return quick
    ? {
        ...synthetic,
        methods,
        microBatch: 2,
        gradAccum: 1,
        seqLen: 16,
        steps,
        warmUp: false,
        quickNote: `quick: micro-batch 2 x 1 of 16-token rows (the recipes: 4 x 4 of 256), ${steps} step${steps === 1 ? '' : 's'} timed with the pipeline compiles, no warm-up: shows the path runs, not its speed`,
      }
    : { ...synthetic, methods, microBatch: 4, gradAccum: 4, seqLen: 256, steps, warmUp: true, quickNote: null };
}

runMain(main, USAGE);
