/**
 * Writes models/tiny/<mode>/ for every mode: a seeded random Llama (vocab 32000, hidden 64, 4 heads,
 * 2 kv heads, head_dim 16, ffn 160, 2 layers) with the real Llama-2 tokenizer, made by writing a HF
 * checkpoint to a temp dir and running the converter on it (so the tiny model exercises the converter);
 * models/tiny/odd-q0f32 and odd-q0f16 (widths 40 / 37, 5:1 grouped-query heads, tied embeddings);
 * models/tiny/padded-q4f32_1 and padded-q4f16_1 (q4 widths 80 / 172: each row's last group padded);
 * models/tiny/small-<q0f32|q4f32_1|q4f16_1> (the tiny shape with a 500-id vocabulary);
 * and models/tiny/adapters/<model>-<lora|series|parallel>/ (random PEFT adapters, converted).
 *   npm run make-tiny-model [-- --if-missing] [--out models/tiny]
 *
 * The padded and small models have a 500-id vocabulary and no tokenizer (Llama-2's fits only 32000
 * ids): they are for tests that feed token ids. Their LM head is 500 rows, not 32000, which is what
 * the tests that force the GPU kernels (one workgroup per row) or train cost on a CPU-emulated adapter.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { LLAMA2_VOCAB_SIZE, llama2TokenizerFiles } from '../formats/llama2Tokenizer.ts';
import { parseMlcChatConfig } from '../formats/mlcChatConfig.ts';
import { ADAPTER_MANIFEST_FILE, type AdapterKind } from '../formats/adapterFormat.ts';
import { convertPeftAdapter } from '../formats/adapterConversion.ts';
import { MLC_CHAT_CONFIG_FILE, TENSOR_CACHE_FILE } from '../formats/baseModelFiles.ts';
import { readBaseModelJson } from '../formats/modelFiles.ts';
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from '../formats/peftAdapter.ts';
import { randomPeftAdapter } from '../formats/randomAdapter.ts';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { QUANT_MODES, type QuantMode } from '../formats/llamaConfig.ts';
import { Rng } from '../formats/random.ts';
import type { SafetensorsInput } from '../formats/safetensors.ts';
import { convertCheckpoint } from './convert.ts';
import { dirModelSource, writeHfCheckpoint } from './hfCheckpoint.ts';

export { llama2TokenizerFiles };

export const TINY_SEED = 1234;

export interface TinyShape {
  vocab: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  layers: number;
  tie?: boolean;
}

/** The small models' vocabulary: not a multiple of 8, 32 or 64, so the LM head's last row tile and workgroup are partial. */
export const SMALL_VOCAB = 500;

export const TINY_SHAPE: TinyShape = { vocab: LLAMA2_VOCAB_SIZE, hidden: 64, heads: 4, kvHeads: 2, ffn: 160, layers: 2 };
export const ODD_SHAPE: TinyShape = { vocab: LLAMA2_VOCAB_SIZE, hidden: 40, heads: 5, kvHeads: 1, ffn: 37, layers: 2, tie: true };
/** q4 widths that are not multiples of 32 (hidden 80, ffn 172): MLC pads each row's last group. */
export const PADDED_SHAPE: TinyShape = { vocab: SMALL_VOCAB, hidden: 80, heads: 4, kvHeads: 2, ffn: 172, layers: 2 };
/** The tiny shape with a small vocabulary. */
export const SMALL_SHAPE: TinyShape = { ...TINY_SHAPE, vocab: SMALL_VOCAB };

/** HF config.json of a small Llama. */
export function tinyHfConfig(s: TinyShape): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.hidden,
    intermediate_size: s.ffn,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    num_hidden_layers: s.layers,
    vocab_size: s.vocab,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 512,
    hidden_act: 'silu',
    tie_word_embeddings: s.tie ?? false,
    rope_scaling: null,
    attention_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
}

/**
 * Seeded HF-named tensors. Linear weights ~ N(0, 1/sqrt(in)), embeddings ~ N(0, 0.5), lm_head
 * ~ N(0, 0.25) so logits spread over a few units, norms ~ 1 + N(0, 0.1).
 */
export function tinyHfTensors(s: TinyShape, seed = TINY_SEED, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): SafetensorsInput[] {
  const rng = new Rng(seed);
  const headDim = s.hidden / s.heads;
  const t = (name: string, shape: number[], std: number, mean = 0): SafetensorsInput => ({
    name,
    dtype,
    shape,
    data: rng.normalArray(
      shape.reduce((a, b) => a * b, 1),
      std,
      mean,
    ),
  });
  const out: SafetensorsInput[] = [t('model.embed_tokens.weight', [s.vocab, s.hidden], 0.5)];
  for (let i = 0; i < s.layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      t(`${p}.self_attn.q_proj.weight`, [s.heads * headDim, s.hidden], 1 / Math.sqrt(s.hidden)),
      t(`${p}.self_attn.k_proj.weight`, [s.kvHeads * headDim, s.hidden], 1 / Math.sqrt(s.hidden)),
      t(`${p}.self_attn.v_proj.weight`, [s.kvHeads * headDim, s.hidden], 1 / Math.sqrt(s.hidden)),
      t(`${p}.self_attn.o_proj.weight`, [s.hidden, s.heads * headDim], 1 / Math.sqrt(s.hidden)),
      t(`${p}.mlp.gate_proj.weight`, [s.ffn, s.hidden], 1 / Math.sqrt(s.hidden)),
      t(`${p}.mlp.up_proj.weight`, [s.ffn, s.hidden], 1 / Math.sqrt(s.hidden)),
      t(`${p}.mlp.down_proj.weight`, [s.hidden, s.ffn], 1 / Math.sqrt(s.ffn)),
      t(`${p}.input_layernorm.weight`, [s.hidden], 0.1, 1),
      t(`${p}.post_attention_layernorm.weight`, [s.hidden], 0.1, 1),
    );
  }
  out.push(t('model.norm.weight', [s.hidden], 0.1, 1));
  if (!s.tie) out.push(t('lm_head.weight', [s.vocab, s.hidden], 0.25));
  return out;
}

/** The demo and test models: every mode of the tiny shape, and q0 modes of an odd shape; `adapters`: random adapters are converted for it. */
export const TINY_MODELS: { dir: string; shape: TinyShape; modes: readonly QuantMode[]; adapters?: boolean }[] = [
  ...QUANT_MODES.map((m) => ({ dir: m, shape: TINY_SHAPE, modes: [m], adapters: true })),
  // Widths that are not multiples of 32 (or 4), one kv head for five query heads, tied embeddings.
  { dir: 'odd-q0f32', shape: ODD_SHAPE, modes: ['q0f32'] },
  { dir: 'odd-q0f16', shape: ODD_SHAPE, modes: ['q0f16'] },
  // q4 with every input width padded to a whole group (80 → 96, 172 → 192), as MLC writes it.
  { dir: 'padded-q4f32_1', shape: PADDED_SHAPE, modes: ['q4f32_1'] },
  { dir: 'padded-q4f16_1', shape: PADDED_SHAPE, modes: ['q4f16_1'] },
  { dir: 'small-q0f32', shape: SMALL_SHAPE, modes: ['q0f32'] },
  { dir: 'small-q4f32_1', shape: SMALL_SHAPE, modes: ['q4f32_1'] },
  { dir: 'small-q4f16_1', shape: SMALL_SHAPE, modes: ['q4f16_1'] },
];

/** The vocabulary of the tiny model in models/tiny/<dir> (token ids a test may feed it are below this). */
export function tinyModelVocab(dir: string): number {
  const m = TINY_MODELS.find((x) => x.dir === dir);
  if (!m) throw new Error(`no tiny model ${dir}`);
  return m.shape.vocab;
}

/** Random non-zero PEFT adapters (the paper's targets) converted against each tiny base. */
const TINY_ADAPTER_KINDS: AdapterKind[] = ['lora', 'series', 'parallel'];

async function writeTinyAdapters(outRoot: string, baseDir: string, model: string) {
  const { chatConfig: chat, tensorCache: cache } = await readBaseModelJson(dirModelSource(baseDir), baseDir);
  const { config } = parseMlcChatConfig(chat);
  for (const [i, kind] of TINY_ADAPTER_KINDS.entries()) {
    const peft = randomPeftAdapter(config, kind, { seed: 100 + i });
    const dir = join(outRoot, 'adapters', `${model}-${kind}`);
    await mkdir(join(dir, 'peft'), { recursive: true });
    // The PEFT source too, so `npm run convert-adapter` can be tried on it.
    await writeFile(join(dir, 'peft', PEFT_CONFIG_FILE), JSON.stringify(peft.adapterConfig, null, 2));
    await writeFile(join(dir, 'peft', PEFT_WEIGHTS_FILE), peft.adapterWeights);
    const converted = await convertPeftAdapter({
      adapterConfig: peft.adapterConfig,
      adapterWeights: peft.adapterWeights,
      baseChatConfig: chat,
      baseTensorCache: cache,
      name: `tiny ${kind} (random)`,
    });
    await writeFile(join(dir, ADAPTER_MANIFEST_FILE), JSON.stringify(converted.manifest, null, 2));
    for (const [path, bytes] of converted.shards) await writeFile(join(dir, path), bytes);
  }
}

export async function makeTinyModel(outRoot: string, opts: { ifMissing?: boolean; log?: (m: string) => void } = {}) {
  const log = opts.log ?? (() => {});
  // Present means every model with its shape's vocabulary (a clone made before a shape changed
  // is remade) and every adapter.
  const present = (m: (typeof TINY_MODELS)[number]) => {
    const chat = join(outRoot, m.dir, MLC_CHAT_CONFIG_FILE);
    if (!existsSync(join(outRoot, m.dir, TENSOR_CACHE_FILE)) || !existsSync(chat)) return false;
    if (parseMlcChatConfig(JSON.parse(readFileSync(chat, 'utf8'))).config.vocabSize !== m.shape.vocab) return false;
    return !m.adapters || TINY_ADAPTER_KINDS.every((k) => existsSync(join(outRoot, 'adapters', `${m.dir}-${k}`, ADAPTER_MANIFEST_FILE)));
  };
  const done = () => TINY_MODELS.every(present);
  if (opts.ifMissing && done()) {
    log(`${outRoot}: all tiny models present, skipping`);
    return;
  }
  const tokenizer = llama2TokenizerFiles();
  // One HF checkpoint per shape, converted into each of its models.
  for (const shape of new Set(TINY_MODELS.map((m) => m.shape))) {
    const hfDir = await mkdtemp(join(tmpdir(), 'tiny-llama-hf-'));
    try {
      await writeHfCheckpoint(hfDir, {
        config: tinyHfConfig(shape),
        generationConfig: { bos_token_id: 1, eos_token_id: 2 },
        tensors: tinyHfTensors(shape),
      });
      if (shape.vocab === LLAMA2_VOCAB_SIZE) for (const [name, json] of Object.entries(tokenizer)) await writeFile(join(hfDir, name), JSON.stringify(json));
      for (const m of TINY_MODELS.filter((x) => x.shape === shape)) {
        const t0 = performance.now();
        await convertCheckpoint({ inDir: hfDir, outDir: join(outRoot, m.dir), quant: m.modes[0] });
        if (m.adapters) await writeTinyAdapters(outRoot, join(outRoot, m.dir), m.dir);
        log(`${join(outRoot, m.dir)} (${(performance.now() - t0).toFixed(0)} ms)`);
      }
    } finally {
      await rm(hfDir, { recursive: true, force: true });
    }
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--out');
  const out = i >= 0 ? argv[i + 1] : 'models/tiny';
  makeTinyModel(out, { ifMissing: argv.includes('--if-missing'), log: (m) => console.log(m) }).catch((e: Error) => {
    console.error(`make-tiny-model: ${e.message}`);
    process.exit(1);
  });
}
