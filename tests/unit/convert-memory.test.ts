/**
 * The converter streams: a checkpoint holding one 256 MiB F16 tensor converts with a peak RSS growth
 * far below the file size (a whole-tensor converter would need >= 512 MiB for its float32 copy).
 * Runs the conversion in a child process so the measurement is not polluted by the test runner.
 */
import { execFileSync } from 'node:child_process';
import { open, mkdtemp, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyHfConfig } from '../../src/cli/makeTinyModel.ts';
import { buildSafetensorsHeader, encodeFloatData } from '../../src/formats/safetensors.ts';
import { Rng } from '../../src/formats/random.ts';

const root = await mkdtemp(join(tmpdir(), 'convert-mem-'));
afterAll(() => rm(root, { recursive: true, force: true }));

const MiB = 1024 * 1024;

describe('converter memory bound', () => {
  it('converts a 256 MiB tensor with RSS growth far below the file size', async () => {
    const shape = { vocab: 65536, hidden: 2048, heads: 16, kvHeads: 1, ffn: 32, layers: 1, tie: true };
    const hf = join(root, 'hf');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(hf);
    await writeFile(join(hf, 'config.json'), JSON.stringify(tinyHfConfig(shape)));
    const rng = new Rng(5);
    const hd = 128;
    const small: { name: string; shape: number[] }[] = [
      { name: 'model.layers.0.self_attn.q_proj.weight', shape: [16 * hd, 2048] },
      { name: 'model.layers.0.self_attn.k_proj.weight', shape: [hd, 2048] },
      { name: 'model.layers.0.self_attn.v_proj.weight', shape: [hd, 2048] },
      { name: 'model.layers.0.self_attn.o_proj.weight', shape: [2048, 16 * hd] },
      { name: 'model.layers.0.mlp.gate_proj.weight', shape: [32, 2048] },
      { name: 'model.layers.0.mlp.up_proj.weight', shape: [32, 2048] },
      { name: 'model.layers.0.mlp.down_proj.weight', shape: [2048, 32] },
      { name: 'model.layers.0.input_layernorm.weight', shape: [2048] },
      { name: 'model.layers.0.post_attention_layernorm.weight', shape: [2048] },
      { name: 'model.norm.weight', shape: [2048] },
    ];
    const big = { name: 'model.embed_tokens.weight', shape: [65536, 2048] };
    const all = [big, ...small].map((t) => ({ ...t, dtype: 'F16', nbytes: t.shape.reduce((a, b) => a * b, 1) * 2 }));
    const fh = await open(join(hf, 'model.safetensors'), 'w');
    await fh.write(buildSafetensorsHeader(all));
    const chunk = encodeFloatData('F16', rng.normalArray(MiB / 2, 0.05)); // 1 MiB of F16
    for (let i = 0; i < 256; i++) await fh.write(chunk);
    for (const t of all.slice(1)) await fh.write(encodeFloatData('F16', rng.normalArray(t.nbytes / 2, 0.05)));
    await fh.close();
    const fileSize = (await stat(join(hf, 'model.safetensors'))).size;
    expect(fileSize).toBeGreaterThan(256 * MiB);

    const script = join(root, 'measure.mts');
    await writeFile(
      script,
      `
      import { convertCheckpoint } from ${JSON.stringify(resolve('src/cli/convert.ts'))};
      const before = process.memoryUsage().rss;
      await convertCheckpoint({ inDir: process.argv[2], outDir: process.argv[3], quant: process.argv[4] as any });
      console.log(JSON.stringify({ before, peak: process.resourceUsage().maxRSS * 1024 }));
    `,
    );
    for (const quant of ['q0f16', 'q4f16_1']) {
      const out = join(root, `out-${quant}`);
      const stdout = execFileSync(process.execPath, ['--import', 'tsx', script, hf, out, quant], { encoding: 'utf8', cwd: process.cwd() });
      const { before, peak } = JSON.parse(stdout.trim().split('\n').pop()!);
      const growth = peak - before;
      console.log(
        `${quant}: file ${(fileSize / MiB).toFixed(0)} MiB, RSS before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, growth ${(growth / MiB).toFixed(0)} MiB`,
      );
      expect(growth).toBeLessThan(160 * MiB);
      await rm(out, { recursive: true, force: true });
    }
  }, 300_000);
});
