import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDeviceKit } from '../../src/cli/deviceKit.ts';
import type { KitReport } from '../devicekit/main.ts';
import { decodeStepDispatches } from './forwardStructure.ts';

/**
 * npm run device-kit's kit, built uncompressed, run in quick mode outside any browser on the
 * SwiftShader Vulkan driver Chromium ships (through the kit's own Node and dawn.node). The checks
 * inside compare each kernel and the tiny models' greedy ids against the plain-TS reference; here
 * the report must say every one passed under the browser tests' tolerances, and the bench rows exist.
 */
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

describe('device kit', () => {
  let dir: string;
  let run: { status: number | null; stdout: string; stderr: string };
  let report: KitReport;

  beforeAll(async () => {
    if (!existsSync(SWIFTSHADER)) throw new Error(`${SWIFTSHADER} is missing: the kit's test runs on Chromium's SwiftShader Vulkan driver`);
    dir = await mkdtemp(join(tmpdir(), 'device-kit-test-'));
    await buildDeviceKit({ outDir: join(dir, 'kit'), compress: false });
    const r = spawnSync('sh', [join(dir, 'kit', 'run.sh'), '--quick', '--out', join(dir, 'out')], {
      cwd: dir, // not the checkout: the kit must not need node_modules
      env: { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER, LD_LIBRARY_PATH: '/usr/lib/chromium', DAWN_NODE: '' },
      encoding: 'utf8',
      timeout: 560_000,
    });
    run = { status: r.status, stdout: r.stdout, stderr: r.stderr };
    report = JSON.parse(await readFile(join(dir, 'out', 'device-kit-report.json'), 'utf8')) as KitReport;
  }, 600_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('holds Node, dawn.node, one bundle and run.sh', async () => {
    for (const f of ['node', 'dawn.node', 'kit.mjs', 'run.sh', 'manifest.json']) expect(existsSync(join(dir, 'kit', f)), f).toBe(true);
    expect((await stat(join(dir, 'kit', 'dawn.node'))).size).toBeGreaterThan(1e6);
  });

  it('runs on SwiftShader and exits 0 with a table', () => {
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(report.ok).toBe(true);
    expect(run.stdout).toMatch(/^device kit \(quick, .*\): OK$/m);
    expect(run.stdout).toMatch(/^checks: \d+ passed, 0 failed$/m);
    expect(report.adapter!.engine.isSoftware).toBe(true);
    expect(report.adapter!.engine.adapterInfo).toMatch(/swiftshader/i);
    expect(report.adapter!.features).toContain('timestamp-query');
    expect(report.adapter!.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  it('passes every kernel and model oracle check under the browser tests’ tolerances', () => {
    const results = report.checks.results;
    const failed = results.filter((r) => !r.passed);
    expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
    const groups = new Set(results.map((r) => r.group));
    for (const g of [
      'matmul',
      'matmul tiled',
      'q4 matvec',
      'q4 matvec subgroups',
      'q4 matvec + adapter',
      'matmul + adapter',
      'matmul tiled + adapter',
      'embedding',
      'rmsnorm',
      'rope + kv write',
      'swiglu',
      'attention',
      'attention fused',
      'norm + matmul',
      'norm + q4 matvec',
      'norm + q4 matvec subgroups',
      'argmax',
    ])
      expect(groups, g).toContain(g);
    for (const r of results) {
      if (r.group.startsWith('model ')) continue;
      if (r.group === 'argmax') expect(r.firstDiff, r.name).toBe(-1);
      else {
        // kernels.spec.ts: 1e-4 on every kernel
        expect(r.tol, `${r.group} ${r.name}`).toBe(1e-4);
        expect(r.maxErr, `${r.group} ${r.name}`).toBeLessThan(1e-4);
      }
    }
    // engine.spec.ts: logits within 1e-4 (f32 modes) or 1e-2 (f16 modes), greedy ids equal, in every mode.
    for (const mode of ['q0f32', 'q4f32_1', 'q0f16', 'q4f16_1', 'odd-q0f32', 'odd-q0f16']) {
      const m = results.filter((r) => r.group === `model ${mode}`);
      const logits = m.find((r) => r.name === 'all logits vs reference');
      expect(logits?.maxErr, mode).toBeLessThan(/f16/.test(mode) ? 1e-2 : 1e-4);
      expect(logits?.tol, mode).toBe(/f16/.test(mode) ? 1e-2 : 1e-4);
      const greedy = m.filter((r) => r.name.startsWith('greedy'));
      expect(greedy.length, mode).toBeGreaterThan(0);
      for (const g of greedy) expect(g.firstDiff, `${mode} ${g.name}`).toBe(-1);
    }
  });

  it('reports bench rows at batch 1, 8 and 32, a GSM8K estimate and a per-kernel profile', () => {
    const b = report.bench!;
    expect(b, report.benchError).not.toBeNull();
    expect(b.layers).toBe(2);
    expect(b.copy.bytesPerSecond).toBeGreaterThan(0);
    expect(b.prefill.tokensPerSecond).toBeGreaterThan(0);
    expect(b.decode.map((d) => d.batch)).toEqual([1, 8, 32]);
    for (const d of b.decode) {
      expect(d.greedyTokensPerSecond).toBeGreaterThan(0);
      expect(d.bytesPerStep).toBeGreaterThan(b.memory.weights / 2); // at least the layers' weights, read once a step
      expect(d.efficiency).toBeGreaterThan(0);
    }
    // Dispatches as the engine counted them while encoding each greedy step, against the forward's structure.
    for (const d of b.decode) {
      expect(d.dispatchesPerStep, `batch ${d.batch}`).toBe(decodeStepDispatches(b.layers, true));
      expect(d.encodeMsPerStep).toBeGreaterThan(0);
    }
    expect(run.stdout).toMatch(/dispatches\s+encode ms/);
    // More sequences read more KV cache a step.
    expect(b.decode[2].bytesPerStep).toBeGreaterThan(b.decode[0].bytesPerStep);
    expect(b.gsm8k!.totalSeconds).toBeCloseTo(b.gsm8k!.prefillSeconds + b.gsm8k!.decodeSeconds, 6);
    expect(b.gsm8k!.prefillSeconds).toBeCloseTo((768 + 1319 * (900 - 768)) / b.prefill.tokensPerSecond, 6);
    expect(b.gsm8k!.software).toBe(true);
    expect(run.stdout).toMatch(/^GSM8K estimate, SwiftShader number/m);
    const p = b.profile![0];
    expect(p.batch).toBe(1);
    expect(p.dispatches).toBe(b.decode[0].dispatchesPerStep);
    expect(p.kernels.reduce((a, k) => a + k.count, 0)).toBe(p.dispatches);
    expect(p.kernels.map((k) => k.kernel)).toEqual(expect.arrayContaining(['embedding', 'argmax']));
    expect(p.totalUs).toBeGreaterThan(0);
  });

  it('leaves training out of the quick run unless --train (its pipelines take minutes to compile on SwiftShader)', () => {
    expect(report.training).toBeNull();
    expect(report.trainingError).toBeUndefined();
  });
});
