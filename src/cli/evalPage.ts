/**
 * The in-page half of `npm run eval` (src/cli/eval.ts): runs in the headless Chromium page, where
 * the app's own engine lives. Loads the model once, then solves the problems with continuous
 * batching and hands each result back to Node as soon as it is done (Node writes the JSONL line).
 *
 * Greedy decoding; generation stops at EOS, at `maxNewTokens`, or as soon as the decoded text
 * contains one of the configuration's stop sequences (the output is cut there).
 */
import { Engine } from '../engine/engine.ts';
import { PromptTooLongError } from '../engine/errors.ts';
import { buildPrompt, type PromptConfig } from '../reasoning/prompts.ts';
import type { KvCacheOption, KvFormat } from '../engine/kvCache.ts';

export interface EvalPageOptions {
  /** The model directory's URL (a mounted local directory, or a remote baseUrl). */
  modelUrl: string;
  /** A mounted adapter directory's URL, or null. */
  adapterUrl: string | null;
  config: PromptConfig;
  problems: { index: number; question: string }[];
  maxNewTokens: number;
  /** Sequences decoded together: a number, or 'auto' (as many as GPU memory allows). */
  maxBatch: number | 'auto';
  /** Beams per problem (1 or absent: greedy); with beams, problems are solved one at a time. */
  numBeams?: number;
  /** The KV cache's format to load with ('auto' or absent: the mode's own). */
  kvCache?: KvCacheOption;
  /** The format the run record names (Node resolved it from the model's files), or null when unknown. */
  recordedKvCache?: KvFormat | null;
  /** Name of the function Node exposed (page.exposeFunction) to receive each result. */
  reportFn: string;
  /** Name of the function Node exposed to receive status messages (loading, context size). */
  statusFn: string;
}

export interface EvalPageResult {
  index: number;
  /** Generated text, cut at the first stop sequence. */
  output: string;
  /** Generated token ids (including a final EOS, and any tokens of a stop sequence). */
  newTokens: number;
  stopReason: string;
  prefillTokens: number;
  prefillMs: number;
  decodeTokens: number;
  decodeMs: number;
}

/** Run every problem; resolves with the GPU adapter description when done. */
export async function runEvalInPage(opts: EvalPageOptions): Promise<{ gpuAdapter: string; contextLength: number; adapter: string | null }> {
  const w = globalThis as unknown as Record<string, (arg: unknown) => Promise<void>>;
  const report = w[opts.reportFn];
  const status = w[opts.statusFn];
  const engine = new Engine();
  await status('loading the model');
  // A batch of 1 at first: generateBatch sizes the context to the longest prompt and takes the batch asked for.
  const info = await engine.load({ kind: 'http', baseUrl: opts.modelUrl }, { kvCache: opts.kvCache });
  if (!info.hasTokenizer) throw new Error(`The model at ${opts.modelUrl} has no tokenizer.json`);
  // The record every result line carries must say what ran: never write lines it would misdescribe.
  if (opts.recordedKvCache && opts.recordedKvCache !== info.kvCache) {
    throw new Error(`The run record names an ${opts.recordedKvCache} KV cache, but the engine loaded the model with ${info.kvCache}.`);
  }
  let adapterName: string | null = null;
  if (opts.adapterUrl) {
    const adapter = await engine.loadAdapter({ kind: 'http', baseUrl: opts.adapterUrl }, opts.adapterUrl);
    await engine.useAdapter(adapter.id);
    adapterName = adapter.name;
  }
  await status(`model loaded on ${info.adapterInfo} (KV cache ${info.kvCache})`);

  const stops = opts.config.stopSequences;
  // All problems go through continuous batching: up to maxBatch decode together, the weights
  // read once per step for all of them; results are reported in completion order.
  let batch: Awaited<ReturnType<Engine['generateBatch']>>;
  try {
    batch = await engine.generateBatch(
      opts.problems.map((p) => buildPrompt(opts.config, p)),
      // 'auto' here: as many sequences as GPU memory allows (up to the engine's limit), not the app's budget.
      { maxNewTokens: opts.maxNewTokens, temperature: 0, stopStrings: stops, maxBatch: opts.maxBatch, memoryBudget: Infinity, numBeams: opts.numBeams },
      {
        onStart: (shape) => void status(`batch of ${shape.maxBatch} (context: ${shape.contextLength} tokens)`),
        onDone: (seq, r) =>
          void report({
            index: opts.problems[seq].index,
            output: r.text ?? '',
            newTokens: r.ids.length,
            stopReason: r.stopReason,
            prefillTokens: r.prefillTokens,
            prefillMs: r.prefillMs,
            decodeTokens: r.decodeTokens,
            decodeMs: r.decodeMs,
          } satisfies EvalPageResult),
      },
    );
  } catch (e) {
    if (e instanceof PromptTooLongError) {
      throw new Error(
        `The longest "${opts.config.id}" prompt has ${e.promptTokens} tokens, more than this model's ${e.contextWindow}-token context window: ` +
          'choose a shorter prompt configuration (e.g. q_end or zero_shot).',
        { cause: e },
      );
    }
    throw e;
  }
  if (batch.sharedPrefixTokens > 0) await status(`the ${batch.sharedPrefixTokens} prompt tokens every problem shares were prefilled once`);
  await engine.unload();
  return { gpuAdapter: info.adapterInfo, contextLength: batch.contextLength, adapter: adapterName };
}
