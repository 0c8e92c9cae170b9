/**
 * Runs one engine kernel on given inputs in the page (imported by tests/browser/kernels.spec.ts
 * through Vite). Buffers are bound by their WGSL names through the engine's own binding table
 * (kernels.ts BINDINGS, bindKernel), so a wrong slot there fails these checks; `read` names the
 * buffers copied back.
 */
import { createGpuContext, type GpuContext } from '../../../src/engine/gpu.ts';
import { submitAndRead } from './dispatchHarness.ts';
import { PipelineCache, bindKernel, kernelSource, type KernelBuffers, type KernelName, type KernelVariant } from '../../../src/engine/kernels.ts';

let ctx: GpuContext | null = null;
let pipes: PipelineCache | null = null;

export type Init = Float32Array | Uint32Array | Uint16Array | number /* zeroed bytes */ | undefined;

export interface KernelRun {
  kernel: KernelName;
  variant?: KernelVariant;
  constants: Record<string, number>;
  params: [rows: number, startPos: number, xRowOffset: number, kvLen: number];
  /** Every binding but the Params uniform `p` (which `params` fills), by name: weights, a fused adapter's adapterZ/U/Scales too. */
  buffers: Record<string, Init>;
  workgroups: [number, number, number];
  read: string[];
  /**
   * Run the kernel's subgroup variant with subgroups of this many lanes emulated in workgroup
   * memory (emulatedSubgroups below) instead of the device's own.
   */
  emulateSubgroupSize?: number;
}

/**
 * A subgroup kernel's source with subgroupAdd and subgroup_invocation_id emulated: subgroups of
 * `size` lanes (4 to 128; past the 64 threads, one subgroup of all) drawn from a shuffled order of
 * the workgroup's threads, so they are neither consecutive slices nor led by thread 0. The device
 * has one subgroup size (SwiftShader: 4); this is how a reduction is shown to hold for all of them.
 */
export function emulatedSubgroups(src: string, size: number): string {
  if (!/@compute @workgroup_size\(64\)/.test(src) || !src.includes('enable subgroups;')) throw new Error('emulatedSubgroups takes a 64-thread subgroup kernel');
  if (/subgroup_size|subgroup(?!Add\b|_invocation_id\b)[A-Z]\w*\(/.test(src)) throw new Error('emulatedSubgroups emulates subgroupAdd and the lane id only');
  const body = src
    .replace('enable subgroups;', '')
    .replace(', @builtin(subgroup_invocation_id) sgLane: u32', '')
    .replace(/(fn main\([\s\S]*?\)\s*\{)/, '$1\n  let sgLane = emuLane(lid);')
    .replaceAll('subgroupAdd(', 'emuSubgroupAdd(lid, ');
  return `${body}
const EMU_SIZE: u32 = ${size}u;
var<workgroup> emuX: array<f32, 64>;
// Thread i's place in the shuffled order (37 is odd: a permutation of 0..63); lane 0 of the first subgroup is thread 9.
fn emuRank(i: u32) -> u32 { return (i * 37u + 11u) % 64u; }
fn emuLane(i: u32) -> u32 { return emuRank(i) % EMU_SIZE; }
fn emuSubgroupAdd(lid: u32, v: f32) -> f32 {
  workgroupBarrier();
  emuX[lid] = v;
  workgroupBarrier();
  let group = emuRank(lid) / EMU_SIZE;
  var s = 0.0;
  for (var i = 0u; i < 64u; i++) {
    if (emuRank(i) / EMU_SIZE == group) { s += emuX[i]; }
  }
  return s;
}
`;
}

export async function runKernel(run: KernelRun): Promise<Float32Array[]> {
  ctx ??= await createGpuContext();
  pipes ??= new PipelineCache(ctx.device);
  const device = ctx.device;
  device.pushErrorScope('validation');
  let pipeline: GPUComputePipeline;
  if (run.emulateSubgroupSize !== undefined) {
    const code = emulatedSubgroups(kernelSource(run.kernel, { ...run.variant, subgroups: true }), run.emulateSubgroupSize);
    const module = device.createShaderModule({ code, label: `${run.kernel} emulated subgroups` });
    pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main', constants: run.constants } });
  } else {
    pipeline = pipes.get(run.kernel, run.variant ?? {}, run.constants);
  }
  const make = (init: Init): GPUBuffer | undefined => {
    if (init === undefined) return undefined;
    const size = typeof init === 'number' ? init : init.byteLength;
    const buf = device.createBuffer({
      size: Math.max(4, Math.ceil(size / 4) * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    if (typeof init !== 'number') {
      const bytes = new Uint8Array(Math.ceil(init.byteLength / 4) * 4);
      bytes.set(new Uint8Array(init.buffer, init.byteOffset, init.byteLength));
      device.queue.writeBuffer(buf, 0, bytes);
    }
    return buf;
  };
  const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array(run.params));
  const made: Record<string, GPUBuffer> = { p: params };
  for (const [name, init] of Object.entries(run.buffers)) {
    const b = make(init);
    if (b) made[name] = b;
  }
  const groups = bindKernel(device, pipeline, run.kernel, made as KernelBuffers<KernelName>, run.kernel);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  groups.forEach((g, i) => pass.setBindGroup(i, g));
  pass.dispatchWorkgroups(...run.workgroups);
  pass.end();
  const read = run.read.map((name) => {
    const src = made[name];
    if (!src) throw new Error(`${run.kernel} has no buffer ${name} to read`);
    return src;
  });
  const out = await submitAndRead(device, enc, read);
  for (const b of Object.values(made)) b.destroy();
  return out;
}
