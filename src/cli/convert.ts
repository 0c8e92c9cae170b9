/**
 * Convert a Hugging Face Llama checkpoint (safetensors) to MLC's layout:
 *   npm run convert -- --in <hf-dir> --out <dir> --quant <q4f16_1|q4f32_1|q0f16|q0f32> [--shard-mb 32]
 *
 * Mapping verified against mlc-ai/mlc-llm python/mlc_llm/model/llama/llama_loader.py (`huggingface`):
 *  - self_attn.qkv_proj.weight = concat([q_proj, k_proj, v_proj], axis=0)  (rows: q, then k, then v)
 *  - mlp.gate_up_proj.weight   = concat([gate_proj, up_proj], axis=0)      (rows: gate, then up)
 *  - every other parameter keeps its HF name, cast to the model dtype; rotary_emb.inv_freq is unused.
 * In q4 modes every nn.Linear AND the embedding are group-quantized (quantization.py: q4f16_1 /
 * q4f32_1 have quantize_embedding=True, quantize_final_fc=True; group_quantization.py maps
 * `<name>.weight` to `<name>.q_weight` + `<name>.q_scale`); norms stay in the model dtype.
 * With tie_word_embeddings no lm_head is written (llama_model.py reuses embed_tokens).
 *
 * Streaming: each output record is produced in row blocks read from the safetensors files at their
 * offsets, so memory stays at a few row blocks + one shard (32 MiB) + the q_scale of the current
 * tensor (1/16 of its float16 size), whatever the checkpoint size.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { f32ArrayToF16 } from '../formats/f16.ts';
import {
  EMBED_NAME,
  FINAL_NORM_NAME,
  LM_HEAD_NAME,
  QUANT_MODES,
  floatDtype,
  isQ4,
  layerLinearNames,
  layerNormNames,
  type LlamaConfig,
  type QuantMode,
} from '../formats/llamaConfig.ts';
import { writeMlcChatConfig } from '../formats/mlcChatConfig.ts';
import { MLC_CHAT_CONFIG_FILE, SENTENCEPIECE_MODEL_FILE, TENSOR_CACHE_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from '../formats/baseModelFiles.ts';
import { q4PackedCols, q4ScaleCols, quantizeQ4 } from '../formats/quant.ts';
import { TensorCacheWriter } from '../formats/tensorCache.ts';
import type { TensorCache } from '../formats/tensorCacheTypes.ts';
import { CheckpointError, HfCheckpoint, dirShardSink } from './hfCheckpoint.ts';

export const TOKENIZER_FILES = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SENTENCEPIECE_MODEL_FILE];

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

interface Segment {
  src: string;
  rows: number;
}
type Param = { kind: 'linear'; base: string; segments: Segment[]; cols: number; colsWhat: string } | { kind: 'norm'; name: string; src: string; size: number };

/** The MLC parameters of a Llama, in MLC's order, with their HF sources. */
export function planParams(c: LlamaConfig): Param[] {
  const lin = (base: string, segments: Segment[], cols: number, colsWhat: string): Param => ({ kind: 'linear', base, segments, cols, colsWhat });
  const params: Param[] = [lin(EMBED_NAME, [{ src: `${EMBED_NAME}.weight`, rows: c.vocabSize }], c.hiddenSize, 'hidden_size')];
  const qRows = c.numHeads * c.headDim;
  const kvRows = c.numKvHeads * c.headDim;
  for (let i = 0; i < c.numLayers; i++) {
    const n = layerLinearNames(i);
    const hf = `model.layers.${i}`;
    params.push(
      lin(
        n.qkv,
        [
          { src: `${hf}.self_attn.q_proj.weight`, rows: qRows },
          { src: `${hf}.self_attn.k_proj.weight`, rows: kvRows },
          { src: `${hf}.self_attn.v_proj.weight`, rows: kvRows },
        ],
        c.hiddenSize,
        'hidden_size',
      ),
      lin(n.o, [{ src: `${hf}.self_attn.o_proj.weight`, rows: c.hiddenSize }], qRows, 'num_attention_heads·head_dim'),
      lin(
        n.gateUp,
        [
          { src: `${hf}.mlp.gate_proj.weight`, rows: c.intermediateSize },
          { src: `${hf}.mlp.up_proj.weight`, rows: c.intermediateSize },
        ],
        c.hiddenSize,
        'hidden_size',
      ),
      lin(n.down, [{ src: `${hf}.mlp.down_proj.weight`, rows: c.hiddenSize }], c.intermediateSize, 'intermediate_size'),
    );
    const norms = layerNormNames(i);
    params.push(
      { kind: 'norm', name: norms.input, src: norms.input, size: c.hiddenSize },
      { kind: 'norm', name: norms.postAttention, src: norms.postAttention, size: c.hiddenSize },
    );
  }
  params.push({ kind: 'norm', name: FINAL_NORM_NAME, src: FINAL_NORM_NAME, size: c.hiddenSize });
  if (!c.tieWordEmbeddings) params.push(lin(LM_HEAD_NAME, [{ src: `${LM_HEAD_NAME}.weight`, rows: c.vocabSize }], c.hiddenSize, 'hidden_size'));
  return params;
}

const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Check every source tensor exists with the expected shape — before writing anything. (q4 takes any width: MLC pads the last group.) */
function validateSources(ckpt: HfCheckpoint, params: Param[]): number {
  let total = 0;
  const check = (src: string, expected: number[]) => {
    const t = ckpt.tensors.get(src);
    if (!t) throw new CheckpointError(`missing tensor ${src} in checkpoint ${ckpt.dir}`);
    if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
      throw new CheckpointError(`tensor ${src} has shape [${t.shape.join(', ')}], expected [${expected.join(', ')}]`);
    }
    if (!['F32', 'F16', 'BF16'].includes(t.dtype)) throw new CheckpointError(`tensor ${src} has dtype ${t.dtype}; only F32, F16 and BF16 are supported`);
    total += expected.reduce((a, b) => a * b, 1);
  };
  for (const p of params) {
    if (p.kind === 'norm') check(p.src, [p.size]);
    else {
      for (const s of p.segments) check(s.src, [s.rows, p.cols]);
    }
  }
  return total;
}

async function writeParams(ckpt: HfCheckpoint, params: Param[], mode: QuantMode, writer: TensorCacheWriter, blockBytes: number, log: (m: string) => void) {
  const fdt = floatDtype(mode);
  const encodeFloat = (a: Float32Array) => (fdt === 'float16' ? u8(f32ArrayToF16(a)) : u8(a));
  for (const p of params) {
    if (p.kind === 'norm') {
      const w = await ckpt.readRows(p.src, 0, 1);
      await writer.add({ name: p.name, shape: [p.size], dtype: fdt }, encodeFloat(w));
      continue;
    }
    const rows = p.segments.reduce((a, s) => a + s.rows, 0);
    const blockRows = Math.max(1, Math.floor(blockBytes / (p.cols * 4)));
    // Visit the fused rows block by block, in output order.
    const forEachBlock = async (fn: (w: Float32Array, n: number, row0: number) => Promise<void>) => {
      let row0 = 0;
      for (const s of p.segments) {
        for (let r = 0; r < s.rows; r += blockRows) {
          const n = Math.min(blockRows, s.rows - r);
          await fn(await ckpt.readRows(s.src, r, n), n, row0 + r);
        }
        row0 += s.rows;
      }
    };
    if (isQ4(mode)) {
      const nGroups = q4ScaleCols(p.cols);
      const scales = new Float32Array(rows * nGroups);
      await writer.add({ name: `${p.base}.q_weight`, shape: [rows, q4PackedCols(p.cols)], dtype: 'uint32' }, async (emit) => {
        await forEachBlock(async (w, n, row0) => {
          const q = quantizeQ4(w, n, p.cols, fdt);
          scales.set(q.qScale, row0 * nGroups);
          await emit(u8(q.qWeight));
        });
      });
      await writer.add({ name: `${p.base}.q_scale`, shape: [rows, nGroups], dtype: fdt }, encodeFloat(scales));
    } else {
      await writer.add({ name: `${p.base}.weight`, shape: [rows, p.cols], dtype: fdt }, async (emit) => {
        await forEachBlock(async (w) => emit(encodeFloat(w)));
      });
    }
    log(`  ${p.base} [${rows}, ${p.cols}]`);
  }
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
    const totalParams = validateSources(ckpt, params);
    await mkdir(tmpDir, { recursive: true });
    const writer = new TensorCacheWriter(dirShardSink(tmpDir), { shardBytes: opts.shardBytes });
    log(`converting ${opts.inDir} -> ${outDir} (${opts.quant})`);
    await writeParams(ckpt, params, opts.quant, writer, opts.blockBytes ?? 8 * 1024 * 1024, log);
    const cache = await writer.finish({
      ParamSize: writer.recordCount,
      ParamBytes: writer.totalBytes,
      BitsPerParam: (writer.totalBytes * 8) / totalParams,
    });
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
