/**
 * Convert a Hugging Face Llama checkpoint (safetensors) to MLC's layout:
 *   npm run convert -- --in <hf-dir> --out <dir> --quant <q4f16_1|q4f32_1|q0f16|q0f32> [--shard-mb 32]
 *
 * The conversion itself (mapping, quantization, order) is src/formats/hfConversion.ts, shared with
 * the browser's "Add from Hugging Face"; this file reads a directory and writes one, atomically.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { QUANT_MODES, type LlamaConfig, type QuantMode } from '../formats/llamaConfig.ts';
import { writeMlcChatConfig } from '../formats/mlcChatConfig.ts';
import { MLC_CHAT_CONFIG_FILE, TENSOR_CACHE_FILE } from '../formats/baseModelFiles.ts';
import { cacheMetadata, paramName, planParams, TOKENIZER_FILES, validateSources, writeParams } from '../formats/hfConversion.ts';
import { TensorCacheWriter } from '../formats/tensorCache.ts';
import type { TensorCache } from '../formats/tensorCacheTypes.ts';
import { CheckpointError, HfCheckpoint, dirShardSink } from './hfCheckpoint.ts';

export { planParams, TOKENIZER_FILES };

export interface ConvertOptions {
  inDir: string;
  outDir: string;
  quant: QuantMode;
  /** shard cap in bytes (default 32 MiB, MLC's) */
  shardBytes?: number;
  /** bytes of float32 per row block while streaming (default 8 MiB) */
  blockBytes?: number;
  log?: (msg: string) => void;
}

export interface ConvertResult {
  config: LlamaConfig;
  cache: TensorCache;
  tokenizerFiles: string[];
}

/** Convert a HF checkpoint directory into an MLC model directory (written atomically: temp dir, then rename). */
export async function convertCheckpoint(opts: ConvertOptions): Promise<ConvertResult> {
  const log = opts.log ?? (() => {});
  if (!(QUANT_MODES as readonly string[]).includes(opts.quant)) {
    throw new CheckpointError(`unknown quantization ${JSON.stringify(opts.quant)}; use one of ${QUANT_MODES.join(', ')}`);
  }
  const ckpt = await HfCheckpoint.open(opts.inDir);
  const outDir = resolve(opts.outDir);
  const tmpDir = join(dirname(outDir), `.${basename(outDir)}.tmp-${process.pid}-${Date.now()}`);
  try {
    const config = ckpt.llamaConfig();
    const params = planParams(config);
    const { totalParams } = validateSources(ckpt, params);
    await mkdir(tmpDir, { recursive: true });
    const writer = new TensorCacheWriter(dirShardSink(tmpDir), { shardBytes: opts.shardBytes });
    log(`converting ${opts.inDir} -> ${outDir} (${opts.quant})`);
    await writeParams(ckpt, params, opts.quant, writer, {
      blockBytes: opts.blockBytes,
      onParamDone: (_, p) => {
        if (p.kind === 'linear') log(`  ${paramName(p)} [${p.segments.reduce((a, s) => a + s.rows, 0)}, ${p.cols}]`);
      },
    });
    const cache = await writer.finish(cacheMetadata(writer, totalParams));
    await writeFile(join(tmpDir, TENSOR_CACHE_FILE), JSON.stringify(cache, null, 2));
    const tokenizerFiles: string[] = [];
    for (const f of TOKENIZER_FILES) {
      if (existsSync(join(opts.inDir, f))) {
        await copyFile(join(opts.inDir, f), join(tmpDir, f));
        tokenizerFiles.push(f);
      }
    }
    await writeFile(join(tmpDir, MLC_CHAT_CONFIG_FILE), JSON.stringify(writeMlcChatConfig(config, opts.quant, tokenizerFiles), null, 2));
    await ckpt.close();
    // Swap into place: an existing output is moved aside first and removed only after the rename.
    const old = existsSync(outDir) ? `${tmpDir}.old` : null;
    if (old) await rename(outDir, old);
    await rename(tmpDir, outDir);
    if (old) await rm(old, { recursive: true, force: true });
    log(`wrote ${cache.records.length} shard(s), ${writer.recordCount} records, ${(writer.totalBytes / 2 ** 20).toFixed(1)} MiB`);
    return { config, cache, tokenizerFiles };
  } catch (e) {
    await ckpt.close();
    await rm(tmpDir, { recursive: true, force: true });
    throw e;
  }
}

function parseArgs(argv: string[]): ConvertOptions {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const inDir = get('--in');
  const outDir = get('--out');
  const quant = get('--quant') ?? 'q4f16_1';
  if (!inDir || !outDir) throw new Error('usage: npm run convert -- --in <hf-dir> --out <dir> --quant <q4f16_1|q4f32_1|q0f16|q0f32> [--shard-mb 32]');
  const mb = get('--shard-mb');
  return { inDir, outDir, quant: quant as QuantMode, shardBytes: mb ? Number(mb) * 2 ** 20 : undefined, log: (m) => console.log(m) };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  convertCheckpoint(parseArgs(process.argv.slice(2))).catch((e: Error) => {
    console.error(`convert: ${e.message}`);
    process.exit(1);
  });
}
