/**
 * npm run convert-adapter -- --in <peft-dir> --base <converted-model-dir> --out <dir>
 *   [--name "shown name"] [--dtype auto|float32|float16] [--force]
 *
 * Reads a PEFT adapter (adapter_config.json + adapter_model.safetensors: LoRA from Hugging Face
 * PEFT, series / parallel bottleneck adapters from LLM-Adapters), checks it against the converted
 * base model (mlc-chat-config.json + tensor-cache.json or ndarray-cache.json), and writes
 * adapter.json + adapter_shard_N.bin. The conversion itself is convertPeftAdapter in
 * src/formats/adapterConversion.ts (the app runs the same code on dropped files). Nothing is written on error:
 * files go to a temporary directory beside --out, renamed into place at the end.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs, runMain, UsageError } from './args.ts';
import { ADAPTER_MANIFEST_FILE, type AdapterManifest } from '../formats/adapterFormat.ts';
import { convertPeftAdapter } from '../formats/adapterConversion.ts';

const USAGE =
  'usage: npm run convert-adapter -- --in <peft-dir> --base <converted-model-dir> --out <dir> ' +
  '[--name "shown name"] [--dtype auto|float32|float16] [--force]';

function readJsonFile(path: string, what: string): unknown {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path}`);
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

export interface ConvertAdapterDirOptions {
  inDir: string;
  baseDir: string;
  outDir: string;
  name?: string;
  dtype?: 'auto' | 'float32' | 'float16';
  force?: boolean;
  maxShardBytes?: number;
}

/** Converts a PEFT adapter directory to ours; the CLI's whole job, callable from tests. */
export async function convertAdapterDir(opts: ConvertAdapterDirOptions): Promise<AdapterManifest> {
  const inDir = resolve(opts.inDir);
  const baseDir = resolve(opts.baseDir);
  const outDir = resolve(opts.outDir);
  const adapterConfig = readJsonFile(join(inDir, 'adapter_config.json'), 'adapter_config.json');
  const weightsPath = join(inDir, 'adapter_model.safetensors');
  if (!existsSync(weightsPath)) {
    const bin = existsSync(join(inDir, 'adapter_model.bin'));
    throw new Error(
      `adapter_model.safetensors not found in ${inDir}` +
        (bin ? ' (found adapter_model.bin: a pickle; re-save it with safetensors, e.g. model.save_pretrained(dir, safe_serialization=True))' : ''),
    );
  }
  const chatConfig = readJsonFile(join(baseDir, 'mlc-chat-config.json'), 'base mlc-chat-config.json (is --base a converted model directory?)');
  const cachePath = ['tensor-cache.json', 'ndarray-cache.json'].map((f) => join(baseDir, f)).find((p) => existsSync(p));
  if (!cachePath) throw new Error(`base tensor-cache.json (or ndarray-cache.json) not found in ${baseDir}`);
  const tensorCache = readJsonFile(cachePath, 'base tensor cache');

  if (existsSync(outDir) && readdirSync(outDir).length > 0 && !opts.force) {
    throw new Error(`${outDir} already exists and is not empty; pass --force to replace it`);
  }

  const { manifest, shards } = await convertPeftAdapter({
    adapterConfig,
    adapterWeights: readFileSync(weightsPath),
    baseChatConfig: chatConfig,
    baseTensorCache: tensorCache,
    name: opts.name ?? basename(inDir),
    dtype: opts.dtype,
    maxShardBytes: opts.maxShardBytes,
  });

  // Write beside the destination, then swap it in: an error leaves nothing behind.
  mkdirSync(dirname(outDir), { recursive: true });
  const tmp = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  try {
    mkdirSync(tmp);
    for (const [path, bytes] of shards) writeFileSync(join(tmp, path), bytes);
    writeFileSync(join(tmp, ADAPTER_MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    if (existsSync(outDir)) {
      const old = `${outDir}.old-${process.pid}-${Date.now()}`;
      renameSync(outDir, old);
      renameSync(tmp, outDir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, outDir);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return manifest;
}

async function main() {
  const { values, flags } = parseArgs(process.argv.slice(2), { strings: ['in', 'base', 'out', 'name', 'dtype'], flags: ['force'] });
  if (!values.in || !values.base || !values.out) throw new UsageError('--in, --base and --out are required.');
  const dtype = values.dtype ?? 'auto';
  if (dtype !== 'auto' && dtype !== 'float32' && dtype !== 'float16') throw new UsageError('--dtype must be auto, float32 or float16.');
  const m = await convertAdapterDir({ inDir: values.in, baseDir: values.base, outDir: values.out, name: values.name, dtype, force: flags.has('force') });
  const hyper = m.lora
    ? `r=${m.lora.r} alpha=${m.lora.alpha}${m.lora.rslora ? ' rslora' : ''} scaling=${m.lora.scaling}`
    : `bottleneck=${m.bottleneck!.bottleneckSize} ${m.bottleneck!.nonLinearity} scaling=${m.bottleneck!.scaling}`;
  const bytes = m.shards.reduce((s, x) => s + x.nbytes, 0);
  process.stdout.write(
    `wrote ${resolve(values.out)}: ${m.kind} adapter "${m.name}" on ${m.targets.join(', ')} (${hyper}), ` +
      `${m.shards.length} shard(s), ${(bytes / 1048576).toFixed(1)} MiB, base ${m.base.fingerprint.slice(0, 12)}\n`,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) runMain(main, USAGE);
