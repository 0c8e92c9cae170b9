/**
 * npm run convert-adapter -- --in <peft-dir> --base <converted-model-dir> --out <dir>
 *   [--name "shown name"] [--dtype auto|float32|float16] [--force]
 *
 * Reads a PEFT adapter (adapter_config.json + adapter_model.safetensors, or adapter_model.bin: LoRA from Hugging Face
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
import { readBaseModelJson } from '../formats/modelFiles.ts';
import { PEFT_CONFIG_FILE, PEFT_PICKLED_WEIGHTS_FILE, PEFT_WEIGHTS_FILE } from '../formats/peftAdapter.ts';
import { dirModelSource } from './hfCheckpoint.ts';

const USAGE =
  'usage: npm run convert-adapter -- --in <peft-dir> --base <converted-model-dir> --out <dir> ' +
  '[--name "shown name"] [--dtype auto|float32|float16] [--force]';

function readJsonFile(path: string, what: string): unknown {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path}`);
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
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
  const adapterConfig = readJsonFile(join(inDir, PEFT_CONFIG_FILE), PEFT_CONFIG_FILE);
  // safetensors when there, else the pickled adapter_model.bin (read without running its code).
  const weightsFile = ([PEFT_WEIGHTS_FILE, PEFT_PICKLED_WEIGHTS_FILE] as const).find((f) => existsSync(join(inDir, f)));
  if (!weightsFile) throw new Error(`neither ${PEFT_WEIGHTS_FILE} nor ${PEFT_PICKLED_WEIGHTS_FILE} found in ${inDir}`);
  const base = await readBaseModelJson(dirModelSource(baseDir), `${baseDir} (is --base a converted model directory?)`);

  if (existsSync(outDir) && readdirSync(outDir).length > 0 && !opts.force) {
    throw new Error(`${outDir} already exists and is not empty; pass --force to replace it`);
  }

  const { manifest, shards } = await convertPeftAdapter({
    adapterConfig,
    adapterWeights: readFileSync(join(inDir, weightsFile)),
    adapterWeightsFile: weightsFile,
    baseChatConfig: base.chatConfig,
    baseTensorCache: base.tensorCache,
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
