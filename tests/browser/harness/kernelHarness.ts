/**
 * Runs one engine kernel on given inputs in the page (imported by tests/browser/kernels.spec.ts
 * through Vite). Buffers are bound in order; `read` names the bindings copied back.
 */
import { createGpuContext, type GpuContext } from '../../../src/engine/gpu.ts';
import { PipelineCache, bindGroup, type KernelName, type KernelVariant } from '../../../src/engine/kernels.ts';

let ctx: GpuContext | null = null;
let pipes: PipelineCache | null = null;

export type Init = Float32Array | Uint32Array | Uint16Array | number /* zeroed bytes */ | undefined;

export interface KernelRun {
  kernel: KernelName;
  variant?: KernelVariant;
  constants: Record<string, number>;
  params: [rows: number, startPos: number, xRowOffset: number, kvLen: number];
  group0: Init[]; // binding 0 is the Params uniform: pass undefined there
  group1?: Init[];
  group2?: Init[]; // a fused adapter's z, U and scales (matmul kernels' adapterAdd variant)
  workgroups: [number, number, number];
  read: { group: 0 | 1 | 2; binding: number }[];
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
    const buf = device.createBuffer({ size: Math.max(4, Math.ceil(size / 4) * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    if (typeof init !== 'number') {
      const bytes = new Uint8Array(Math.ceil(init.byteLength / 4) * 4);
      bytes.set(new Uint8Array(init.buffer, init.byteOffset, init.byteLength));
      device.queue.writeBuffer(buf, 0, bytes);
    }
    return buf;
  };
  const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array(run.params));
  const g0 = run.group0.map((init, i) => (i === 0 ? params : make(init)));
  const g1 = (run.group1 ?? []).map(make);
  const g2 = (run.group2 ?? []).map(make);
  const groups = [bindGroup(device, pipeline, 0, g0, 'g0')];
  if (run.group1) groups.push(bindGroup(device, pipeline, 1, g1, 'g1'));
  if (run.group2) groups.push(bindGroup(device, pipeline, 2, g2, 'g2'));
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  groups.forEach((g, i) => pass.setBindGroup(i, g));
  pass.dispatchWorkgroups(...run.workgroups);
  pass.end();
  const staging = run.read.map(({ group, binding }) => {
    const src = [g0, g1, g2][group][binding]!;
    const dst = device.createBuffer({ size: src.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.copyBufferToBuffer(src, 0, dst, 0, src.size);
    return dst;
  });
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(`WebGPU validation error: ${err.message}`);
  const out: Float32Array[] = [];
  for (const s of staging) {
    await s.mapAsync(GPUMapMode.READ);
    out.push(new Float32Array(s.getMappedRange().slice(0)));
    s.unmap();
    s.destroy();
  }
  for (const b of [...g0, ...g1, ...g2]) b?.destroy();
  return out;
}
