/**
 * The device kit's program (started by entry.ts, bundled into device-kit/kit.mjs by
 * `npm run device-kit`): on the GPU that Dawn's Node bindings find, report the adapter, run the kernel
 * and whole-model oracle checks of the browser tests, then the bench, and write one JSON report.
 *   node kit.mjs [--quick] [--out DIR] [--no-bench] [--no-checks] [--no-train | --train] [--bench-layers N] [--bench-prompt P] [--bench-steps S]
 *                [--train-layers N] [--train-steps S] [--checks GROUP_PREFIX]
 * DIR defaults to $OUT, else the current folder. Then training steps of each paper recipe
 * (src/training/trainBench.ts, as npm run bench --train): full mode on synthetic:2 (7B shapes, or
 * --train-layers) at the recipes' micro-batch 4 × 4 of 256 tokens (--no-train: none); quick mode only
 * with --train, on the bench's narrow model, micro-batch 2 × 1 of 16 tokens, one step. Exit status 0
 * only when every check passed and the bench and training (when asked) ran.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createGpuContext, provideGpu } from '../../src/engine/gpu.ts';
import { runCheck, type Check, type CheckResult } from './checks.ts';
import { kernelChecks } from './kernelCases.ts';
import { modelChecks, serveTinyModels } from './modelCases.ts';
import { runBench, type BenchOptions, type BenchReport } from './bench.ts';
import { formatReport } from './table.ts';
import { llama2_7bShape } from '../../src/formats/syntheticModel.ts';
import { runTrainingBench, type TrainBenchOptions, type TrainBenchReport } from '../../src/training/trainBench.ts';
import { TRAINING_METHODS } from '../../src/training/recipes.ts';

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean | null;
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  features: string[];
  limits: Record<string, number>;
  /** What the engine's context made of it (src/engine/gpu.ts). */
  engine: { adapterInfo: string; isSoftware: boolean; hasF16: boolean; hasSubgroups: boolean; deviceFeatures: string[] };
}

export interface KitReport {
  kit: { mode: 'quick' | 'full'; node: string; startedAt: string; seconds: number; dawnFlags: string[] };
  adapter: AdapterReport | null;
  checks: { passed: number; failed: number; results: CheckResult[] };
  bench: BenchReport | null;
  benchError?: string;
  training: TrainBenchReport | null;
  trainingError?: string;
  error?: string;
  ok: boolean;
}

const LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

// Quick (SwiftShader on a CI machine): 7B layers are far too slow there (a prefill of 8 tokens
// through two of them took minutes), so a narrow Llama with the same structure.
const QUICK_SHAPE = { ...llama2_7bShape(2), hiddenSize: 512, intermediateSize: 1376, numHeads: 4, numKvHeads: 4, vocabSize: 4096 };
const QUICK_SHAPE_NAME = 'synthetic narrow Llama (2 layers, hidden 512, ffn 1376, vocab 4096: quick)';

export interface Dawn {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

async function describeAdapter(gpu: GPU): Promise<AdapterReport> {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('Dawn found no GPU adapter (is the Vulkan loader installed, and a Vulkan driver?)');
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number; isFallbackAdapter?: boolean };
  const limits: Record<string, number> = {};
  for (const k of LIMITS) limits[k] = adapter.limits[k];
  const ctx = await createGpuContext();
  const report: AdapterReport = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: info.isFallbackAdapter ?? null,
    subgroupMinSize: info.subgroupMinSize ?? null,
    subgroupMaxSize: info.subgroupMaxSize ?? null,
    features: [...adapter.features].map(String).sort(),
    limits,
    engine: {
      adapterInfo: ctx.adapterInfo,
      isSoftware: ctx.isSoftware,
      hasF16: ctx.hasF16,
      hasSubgroups: ctx.hasSubgroups,
      deviceFeatures: [...ctx.device.features].map(String).sort(),
    },
  };
  ctx.device.destroy();
  return report;
}

/** Runs the kit on Dawn, whose globals (GPUBufferUsage, …) entry.ts has installed before this module was evaluated. */
export async function runKit(dawn: Dawn): Promise<never> {
  const argv = process.argv.slice(2);
  const flag = (f: string) => argv.includes(f);
  const outIdx = argv.indexOf('--out');
  const outDir = resolve(outIdx >= 0 ? argv[outIdx + 1] : (process.env.OUT ?? '.'));
  const quick = flag('--quick');
  const log = (m: string) => console.error(`[kit ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}`);
  const t0 = performance.now();
  const dawnFlags = (process.env.DAWN_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const report: KitReport = {
    kit: { mode: quick ? 'quick' : 'full', node: process.version, startedAt: new Date().toISOString(), seconds: 0, dawnFlags },
    adapter: null,
    checks: { passed: 0, failed: 0, results: [] },
    bench: null,
    training: null,
    ok: false,
  };
  await mkdir(outDir, { recursive: true });
  const reportPath = join(outDir, 'device-kit-report.json');
  // Written after every section, so a run stopped at its time limit still leaves what it measured.
  const save = async () => {
    report.kit.seconds = (performance.now() - t0) / 1000;
    report.checks.passed = report.checks.results.filter((r) => r.passed).length;
    report.checks.failed = report.checks.results.length - report.checks.passed;
    await writeFile(reportPath, JSON.stringify(report, null, 2));
  };
  const tinyDir = await mkdtemp(join(tmpdir(), 'device-kit-tiny-'));
  try {
    const gpu = dawn.create(dawnFlags);
    provideGpu(gpu);
    report.adapter = await describeAdapter(gpu);
    log(`adapter: ${report.adapter.engine.adapterInfo}; features: ${report.adapter.features.join(' ')}`);
    await save();

    if (!flag('--no-checks')) {
      const checks: Check[] = kernelChecks();
      log('making the tiny models');
      await serveTinyModels(tinyDir);
      checks.push(...modelChecks({ quick, hasF16: report.adapter.engine.hasF16 }));
      const only = argv.indexOf('--checks'); // a group prefix ('model', 'q4 matvec', …): rerun a part
      const todo = checks.filter((c) => (!quick || !c.fullOnly) && (only < 0 || c.group.startsWith(argv[only + 1])));
      // One group after another (the log and the table go by group), in the order groups first appear.
      const groupOrder = [...new Set(todo.map((c) => c.group))];
      todo.sort((a, b) => groupOrder.indexOf(a.group) - groupOrder.indexOf(b.group));
      let group = '';
      for (const c of todo) {
        if (c.group !== group) {
          group = c.group;
          log(`checks: ${group}`);
          await save();
        }
        const r = await runCheck(c);
        report.checks.results.push(r);
        if (!r.passed)
          log(
            `FAILED ${r.group}: ${r.name}${r.error ? ` (${r.error})` : r.maxErr !== undefined ? ` (error ${r.maxErr} >= ${r.tol})` : ` (first difference at ${r.firstDiff})`}`,
          );
      }
      await save();
    }

    if (!flag('--no-bench')) {
      try {
        const layersArg = argv.indexOf('--bench-layers');
        const layers = layersArg >= 0 ? Number(argv[layersArg + 1]) : quick ? 0 : 32;
        if (!Number.isInteger(layers) || layers < 0 || layers > 32)
          throw new Error(`--bench-layers wants 1 to 32 layers of Llama-2-7B's shape (0: the narrow quick shape), not ${argv[layersArg + 1]}`);
        // Quick (SwiftShader on a CI machine): 7B layers are far too slow there (a prefill of 8 tokens
        // through two of them took minutes), so a narrow Llama with the same structure, unless --bench-layers.
        const shape = layers > 0 ? llama2_7bShape(layers) : QUICK_SHAPE;
        const shapeName = layers > 0 ? `synthetic:${layers} (Llama-2-7B shapes, ${layers} layers)` : QUICK_SHAPE_NAME;
        const opts: BenchOptions = quick
          ? {
              shape,
              shapeName,
              mode: 'q4f16_1',
              batches: [1, 8, 32],
              promptLen: 8,
              steps: 1,
              profileSteps: 1,
              profileBatches: [1],
              copyBytes: 16 * 2 ** 20,
              warmUp: false,
              logitsPath: false,
              log,
            }
          : {
              shape,
              shapeName,
              mode: 'q4f16_1',
              batches: [1, 8, 32],
              promptLen: 900,
              steps: 48,
              profileSteps: 5,
              profileBatches: [1, 32],
              copyBytes: 256 * 2 ** 20,
              warmUp: true,
              logitsPath: true,
              log,
            };
        // Shorter runs where time is short (or to try the full path on a slow adapter).
        const positive = (name: string) => {
          const i = argv.indexOf(name);
          if (i < 0) return undefined;
          const n = Number(argv[i + 1]);
          if (!Number.isInteger(n) || n < 1) throw new Error(`${name} wants a whole number >= 1, not ${argv[i + 1]}`);
          return n;
        };
        opts.promptLen = positive('--bench-prompt') ?? opts.promptLen;
        opts.steps = positive('--bench-steps') ?? opts.steps;
        report.bench = await runBench(opts);
      } catch (e) {
        report.benchError = `${(e as Error).name}: ${(e as Error).message}`;
        log(`bench failed: ${report.benchError}`);
      }
    }
    // Quick runs (CI on SwiftShader) train only when asked: compiling the training pass's pipelines
    // there took 4 minutes on a loaded 2-core machine, too much for CI's budget; the GPU run trains by default.
    if (quick ? flag('--train') : !flag('--no-train')) {
      try {
        const arg = (name: string, d: number, max: number) => {
          const i = argv.indexOf(name);
          if (i < 0) return d;
          const n = Number(argv[i + 1]);
          if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${name} wants a whole number from 1 to ${max}, not ${argv[i + 1]}`);
          return n;
        };
        const layers = arg('--train-layers', 2, 32);
        const steps = arg('--train-steps', quick ? 1 : 2, 100);
        const opts: TrainBenchOptions = quick
          ? {
              layers: 2,
              shape: QUICK_SHAPE,
              shapeName: QUICK_SHAPE_NAME,
              mode: 'q4f16_1',
              methods: [...TRAINING_METHODS],
              microBatch: 2,
              gradAccum: 1,
              seqLen: 16,
              steps,
              warmUp: false,
              quickNote: `quick: micro-batch 2 x 1 of 16-token rows (the recipes: 4 x 4 of 256), ${steps} step(s) timed with the pipeline compiles: shows the path runs, not its speed`,
              log,
            }
          : { layers, mode: 'q4f16_1', methods: [...TRAINING_METHODS], microBatch: 4, gradAccum: 4, seqLen: 256, steps, warmUp: true, quickNote: null, log };
        const ctx = await createGpuContext();
        try {
          report.training = await runTrainingBench(ctx, opts);
        } finally {
          ctx.device.destroy();
        }
      } catch (e) {
        report.trainingError = `${(e as Error).name}: ${(e as Error).message}`;
        log(`training failed: ${report.trainingError}`);
      }
      await save();
    }
    report.ok =
      report.checks.results.every((r) => r.passed) &&
      (flag('--no-bench') || report.bench !== null) &&
      (!(quick ? flag('--train') : !flag('--no-train')) || report.training !== null);
  } catch (e) {
    report.error = `${(e as Error).name}: ${(e as Error).message}`;
    log(`error: ${report.error}`);
  } finally {
    await rm(tinyDir, { recursive: true, force: true });
  }
  await save();
  console.log(formatReport(report));
  console.log(`report: ${reportPath}`);
  // Dawn keeps the event loop alive while a device exists: leave explicitly.
  process.exit(report.ok ? 0 : 1);
}
