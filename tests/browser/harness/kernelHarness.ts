/**
 * Runs one engine kernel on given inputs in the page (imported by tests/browser/kernels.spec.ts
 * through Vite). Buffers are bound by their WGSL names through the engine's own binding table
 * (kernels.ts BINDINGS, bindKernel), so a wrong slot there fails these checks; `read` names the
 * buffers copied back.
 */
import { createGpuContext, type GpuContext } from '../../../src/engine/gpu.ts';
import { submitAndRead } from './dispatchHarness.ts';
import { PipelineCache, bindKernel, type KernelBuffers, type KernelName, type KernelVariant } from '../../../src/engine/kernels.ts';

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
}

export async function runKernel(run: KernelRun): Promise<Float32Array[]> {
  ctx ??= await createGpuContext();
  pipes ??= new PipelineCache(ctx.device);
  const device = ctx.device;
  device.pushErrorScope('validation');
  const pipeline = pipes.get(run.kernel, run.variant ?? {}, run.constants);
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
