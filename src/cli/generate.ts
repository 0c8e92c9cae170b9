/**
 * npm run generate -- --model <dir> (--prompt "text" | --prompt-ids 1,2,3) --max-new-tokens N
 *   [--temperature T --top-p P --seed S] [--adapter <dir>] [--gpu | --no-gpu] [--json]
 *
 * Serves the app's engine on localhost and runs it in headless Chromium (software WebGPU without
 * a GPU). Prints the generated text as it streams; with --json the last stdout line is one JSON
 * object: ids (generated only), text, prefill_tokens_per_s, decode_tokens_per_s, adapter.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve, basename } from 'node:path';
import { parseArgs, runMain, UsageError } from './args.ts';
import { openBrowserSession } from './browserSession.ts';
import { progressReporter, type ProgressEvent } from './progress.ts';
import { checkAdapterDir } from './dirChecks.ts';
import { loadTokenizer, type Tokenizer } from '../formats/tokenizer.ts';
import { MLC_CHAT_CONFIG_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from '../formats/baseModelFiles.ts';

const USAGE =
  'usage: npm run generate -- --model <dir> (--prompt "text" | --prompt-ids 1,2,3) --max-new-tokens N ' +
  '[--temperature T] [--top-p P] [--seed S] [--adapter <dir>] [--gpu|--no-gpu] [--json]';

async function main() {
  const { values, flags } = parseArgs(process.argv.slice(2), {
    strings: ['model', 'prompt', 'prompt-ids', 'max-new-tokens', 'temperature', 'top-p', 'seed', 'adapter', 'context-length'],
    flags: ['json', 'gpu', 'no-gpu', 'quiet'],
  });
  if (!values.model) throw new UsageError('--model is required.');
  const modelDir = resolve(values.model);
  if (!existsSync(join(modelDir, MLC_CHAT_CONFIG_FILE)))
    throw new Error(`${modelDir} is not a converted model directory (no ${MLC_CHAT_CONFIG_FILE}). Run npm run convert first.`);
  if ((values.prompt === undefined) === (values['prompt-ids'] === undefined)) throw new UsageError('Give exactly one of --prompt or --prompt-ids.');
  const maxNewTokens = intArg(values['max-new-tokens'] ?? '64', 'max-new-tokens');
  const json = flags.has('json');

  let tokenizer: Tokenizer | null = null;
  const tokPath = join(modelDir, TOKENIZER_FILE);
  if (existsSync(tokPath)) {
    const cfgPath = join(modelDir, TOKENIZER_CONFIG_FILE);
    tokenizer = await loadTokenizer(JSON.parse(readFileSync(tokPath, 'utf8')), existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, 'utf8')) : undefined);
  }
  let promptIds: number[];
  if (values['prompt-ids'] !== undefined) {
    promptIds = values['prompt-ids'].split(',').map((s) => intArg(s.trim(), 'prompt-ids'));
  } else {
    if (!tokenizer) throw new Error(`${modelDir} has no tokenizer.json: use --prompt-ids instead of --prompt.`);
    promptIds = tokenizer.encode(values.prompt!);
  }
  // Every argument is checked here, before the browser starts (which takes seconds).
  const adapterDir = values.adapter === undefined ? null : checkAdapterDir(values.adapter);
  const temperature = numberArg(values.temperature, 0, 'temperature', (x) => x >= 0);
  const topP = numberArg(values['top-p'], 1, 'top-p', (x) => x > 0 && x <= 1);
  const seed = values.seed ? intArg(values.seed, 'seed') : 0;
  // Allocate just the context this run needs unless asked otherwise.
  const contextLength = values['context-length'] ? intArg(values['context-length'], 'context-length') : promptIds.length + maxNewTokens;
  const gpu = flags.has('gpu') ? true : flags.has('no-gpu') ? false : undefined;
  const mounts: Record<string, string> = { '/cli-model': modelDir };
  if (adapterDir) mounts['/cli-adapter'] = adapterDir;
  // Phases on stderr as they happen (stdout keeps the text or the JSON).
  const progress = flags.has('quiet') ? () => {} : progressReporter('generate');
  progress({ phase: 'starting the browser' });
  const session = await openBrowserSession({ mounts, gpu, quiet: !process.env.DEBUG });
  try {
    const decoder = tokenizer?.streamDecoder(promptIds.slice(-4));
    await session.page.exposeFunction('__onToken', (id: number) => {
      if (!json && decoder) process.stdout.write(decoder.push(id));
    });
    await session.page.exposeFunction('__progress', (e: ProgressEvent) => progress(e));
    const result = await session.page.evaluate(
      async ({ promptIds, maxNewTokens, temperature, topP, seed, adapter, contextLength }) => {
        const { Engine } = (await import(/* @vite-ignore */ '/src/engine/engine.ts' as string)) as typeof import('../engine/engine.ts');
        const { httpModelSource } = (await import(/* @vite-ignore */ '/src/formats/modelFiles.ts' as string)) as typeof import('../formats/modelFiles.ts');
        const report = (e: ProgressEvent) => void (window as unknown as { __progress(e: ProgressEvent): Promise<void> }).__progress(e);
        const engine = new Engine();
        report({ phase: 'loading the model' });
        const info = await engine.load(httpModelSource('/cli-model/'), {
          contextLength,
          onProgress: (p) => report({ phase: 'loading the model', unit: 'shard', step: p.shard, steps: p.shardCount }),
        });
        let adapterName: string | null = null;
        if (adapter) {
          report({ phase: 'loading the adapter' });
          const loaded = await engine.loadAdapter(httpModelSource('/cli-adapter/'), 'cli-adapter');
          await engine.useAdapter(loaded.id);
          adapterName = loaded.name;
        }
        report({ phase: `generating ${maxNewTokens} tokens after ${promptIds.length} prompt tokens` });
        const r = await engine.generate(
          promptIds,
          { maxNewTokens, temperature, topP, seed },
          { onToken: (t) => void (window as unknown as { __onToken(id: number): void }).__onToken(t.tokenId) },
        );
        return { ...r, adapter: adapterName, memory: info.memory, gpuAdapter: info.adapterInfo };
      },
      { promptIds, maxNewTokens, temperature, topP, seed, adapter: adapterDir !== null, contextLength },
    );
    const text = tokenizer ? tokenizer.decode(result.ids) : null;
    const prefillTps = result.prefillTokens / (result.prefillMs / 1000);
    const decodeTps = result.decodeTokens > 0 ? result.decodeTokens / (result.decodeMs / 1000) : null;
    if (json) {
      process.stdout.write(
        JSON.stringify({
          ids: result.ids,
          text,
          prompt_tokens: promptIds.length,
          stop_reason: result.stopReason,
          prefill_tokens_per_s: round(prefillTps),
          decode_tokens_per_s: decodeTps === null ? null : round(decodeTps),
          adapter: result.adapter,
          gpu_adapter: result.gpuAdapter,
        }) + '\n',
      );
    } else {
      if (decoder) process.stdout.write(decoder.flush() + '\n');
      else process.stdout.write(result.ids.join(',') + '\n');
      process.stderr.write(
        `${basename(modelDir)}: ${promptIds.length} prompt tokens at ${prefillTps.toFixed(1)} tok/s, ` +
          `${result.ids.length} new tokens${decodeTps ? ` at ${decodeTps.toFixed(1)} tok/s` : ''} (${result.stopReason}) on ${result.gpuAdapter}\n`,
      );
    }
  } finally {
    await session.close();
  }
}

function intArg(s: string, name: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} expects a non-negative integer, got "${s}".`);
  return n;
}

function numberArg(s: string | undefined, fallback: number, name: string, ok: (x: number) => boolean): number {
  if (s === undefined) return fallback;
  const x = Number(s);
  if (s.trim() === '' || !Number.isFinite(x) || !ok(x)) throw new UsageError(`--${name} got "${s}", which is not a valid ${name}.`);
  return x;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

runMain(main, USAGE);
