/**
 * The in-page half of `npm run eval` (src/cli/eval.ts): runs in the headless Chromium page, where
 * the app's own engine lives. Loads the tokenizer and the model once, then solves the problems one
 * by one and hands each result back to Node as soon as it is done (Node writes the JSONL line).
 *
 * Greedy decoding; generation stops at EOS, at `maxNewTokens`, or as soon as the decoded text
 * contains one of the configuration's stop sequences (the output is cut there).
 */
import { Engine } from '../engine/engine.ts';
import { httpModelSource } from '../formats/modelFiles.ts';
import { loadTokenizer } from '../formats/tokenizer.ts';
import { parseMlcChatConfig } from '../formats/mlcChatConfig.ts';
import { buildPrompt, cutAtStop, findStop, type PromptConfig } from '../reasoning/prompts.ts';

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
  /** Beam search with this many beams (LLM-Adapters' decoding: 4); 1 or absent: greedy. */
  numBeams?: number;
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

interface AdapterCapableEngine {
  loadAdapter?: (source: unknown) => Promise<string>;
  useAdapter?: (name: string | null) => unknown;
}

export const ADAPTERS_UNSUPPORTED = 'adapters are not supported by this engine build yet';

/** Run every problem; resolves with the GPU adapter description when done. */
export async function runEvalInPage(opts: EvalPageOptions): Promise<{ gpuAdapter: string; contextLength: number; adapter: string | null }> {
  const w = globalThis as unknown as Record<string, (arg: unknown) => Promise<void>>;
  const report = w[opts.reportFn];
  const status = w[opts.statusFn];
  // Feature-detect adapter support before spending time loading the base model.
  if (opts.adapterUrl && typeof (Engine.prototype as unknown as AdapterCapableEngine).loadAdapter !== 'function') {
    throw new Error(ADAPTERS_UNSUPPORTED);
  }
  const source = httpModelSource(opts.modelUrl);
  const tokenizerJson = await source.readJson('tokenizer.json');
  if (tokenizerJson === null || typeof tokenizerJson !== 'object') throw new Error(`The model at ${opts.modelUrl} has no tokenizer.json`);
  const tokenizerConfig = (await source.readJson('tokenizer_config.json').catch(() => null)) as object | null;
  const tokenizer = await loadTokenizer(tokenizerJson, tokenizerConfig ?? undefined);

  // Tokenize every prompt first: the context only needs the longest prompt plus the new tokens.
  const prompts = opts.problems.map((p) => tokenizer.encode(buildPrompt(opts.config, p)));
  const longest = prompts.reduce((m, ids) => Math.max(m, ids.length), 0);
  const window = parseMlcChatConfig(await source.readJson('mlc-chat-config.json')).config.contextWindowSize;
  if (longest + 1 > window) {
    throw new Error(
      `The longest "${opts.config.id}" prompt has ${longest} tokens, more than this model's ${window}-token context window: ` +
        'choose a shorter prompt configuration (e.g. q_end or zero_shot).',
    );
  }
  const engine = new Engine();
  await status(`loading the model (context: ${longest} prompt + ${opts.maxNewTokens} new tokens)`);
  // Only the context this run needs (the engine caps it at the model's window; generation stops there).
  const beams = opts.numBeams ?? 1;
  // Beam search decodes one problem at a time, its beams the batch's slots.
  const info = await engine.load(source, { contextLength: longest + opts.maxNewTokens, maxBatch: beams > 1 ? beams : opts.maxBatch });
  let adapterName: string | null = null;
  if (opts.adapterUrl) {
    const e = engine as unknown as AdapterCapableEngine;
    adapterName = await e.loadAdapter!(httpModelSource(opts.adapterUrl));
    e.useAdapter?.(adapterName);
  }
  await status(`model loaded on ${info.adapterInfo}, batch of ${engine.model!.maxBatch}`);

  const stops = opts.config.stopSequences;
  if (beams > 1) {
    // As LLM-Adapters decodes: beams end at EOS or the length only; the text is cut at the stop sequences after.
    for (const [seq, ids] of prompts.entries()) {
      const r = await engine.generateBeams(ids, { numBeams: beams, maxNewTokens: opts.maxNewTokens });
      const text = tokenizer.streamDecoder(ids.slice(-4));
      for (const id of r.ids) text.push(id);
      text.flush();
      void report({ index: opts.problems[seq].index, output: cutAtStop(text.text, stops), newTokens: r.ids.length, stopReason: r.stopReason, prefillTokens: r.prefillTokens, prefillMs: r.prefillMs, decodeTokens: r.decodeTokens, decodeMs: r.decodeMs } satisfies EvalPageResult);
    }
    engine.unload();
    return { gpuAdapter: info.adapterInfo, contextLength: info.contextLength, adapter: adapterName };
  }
  // All problems go through continuous batching: up to maxBatch decode together, the weights
  // read once per step for all of them; results are reported in completion order.
  const decoders = prompts.map((ids) => tokenizer.streamDecoder(ids.slice(-4)));
  await engine.generateBatch(prompts, {
    maxNewTokens: opts.maxNewTokens,
    temperature: 0,
    onToken: (seq, id) => {
      decoders[seq].push(id);
      return stops.length > 0 && findStop(decoders[seq].text, stops) !== null;
    },
    onDone: (seq, r) => {
      decoders[seq].flush();
      void report({
        index: opts.problems[seq].index,
        output: cutAtStop(decoders[seq].text, stops),
        newTokens: r.ids.length,
        stopReason: r.stopReason,
        prefillTokens: r.prefillTokens,
        prefillMs: r.prefillMs,
        decodeTokens: r.decodeTokens,
        decodeMs: r.decodeMs,
      } satisfies EvalPageResult);
    },
  });
  engine.unload();
  return { gpuAdapter: info.adapterInfo, contextLength: info.contextLength, adapter: adapterName };
}
