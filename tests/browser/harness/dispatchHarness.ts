/**
 * Runs Dispatches recorded by the engine's own host code (forward.ts, trainingKernels.ts) on real
 * buffers in the page, so a check covers the wrapper's constants, bindings and workgroup counts
 * as well as the kernel. Buffers made here are destroyed by release().
 */
import { createGpuContext } from '../../../src/engine/gpu.ts';
import { PipelineCache, type Dispatch } from '../../../src/engine/kernels.ts';

export interface Gpu {
  device: GPUDevice;
  pipes: PipelineCache;
}

let gpuOnce: Promise<Gpu> | null = null;
const made: GPUBuffer[] = [];

export function gpu(): Promise<Gpu> {
  gpuOnce ??= createGpuContext().then((ctx) => ({ device: ctx.device, pipes: new PipelineCache(ctx.device) }));
  return gpuOnce;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** A storage buffer holding `data` (or `data` zeroed bytes); `uniform` for a uniform buffer. */
export function upload(device: GPUDevice, data: ArrayBufferView | ArrayBuffer | number, uniform = false): GPUBuffer {
  const bytes = typeof data === 'number' ? data : data.byteLength;
  const buf = device.createBuffer({
    size: Math.max(16, Math.ceil(bytes / 16) * 16),
    usage: uniform ? GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST : STORAGE,
  });
  made.push(buf);
  if (typeof data !== 'number') write(device, buf, data);
  return buf;
}

export function write(device: GPUDevice, buf: GPUBuffer, data: ArrayBufferView | ArrayBuffer): void {
  const src = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const padded = new Uint8Array(Math.ceil(src.byteLength / 4) * 4);
  padded.set(src);
  device.queue.writeBuffer(buf, 0, padded);
}

/** The Params uniform (params.wgsl) of a call over `rows` rows. */
export function paramsFor(device: GPUDevice, rows: number): GPUBuffer {
  return upload(device, new Uint32Array([rows, 0, 0, rows]), true);
}

/** One recorded dispatch and the row counts its workgroups are sized for (as llama.ts encodeRows passes them). */
export interface DispatchStep {
  d: Dispatch;
  rows: number;
  kvLen: number;
}

/** Records `steps` in one compute pass, copies `read` back and returns them as f32 views; a validation error throws WebGPU's message. */
export async function runSteps(device: GPUDevice, steps: DispatchStep[], read: GPUBuffer[]): Promise<Float32Array[]> {
  device.pushErrorScope('validation');
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  for (const { d, rows, kvLen } of steps) {
    pass.setPipeline(d.pipeline);
    d.bindGroups.forEach((g, i) => pass.setBindGroup(i, g));
    pass.dispatchWorkgroups(...d.workgroups(rows, kvLen));
  }
  pass.end();
  return submitAndRead(device, enc, read);
}

/**
 * Copies `read` after what `enc` recorded, submits, pops the validation scope the caller pushed
 * before recording, and returns the buffers as f32 views.
 */
export async function submitAndRead(device: GPUDevice, enc: GPUCommandEncoder, read: GPUBuffer[]): Promise<Float32Array[]> {
  const staging = read.map((src) => {
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
  return out;
}

/** Runs the dispatches in one compute pass over `rows` rows, then reads `read` back (f32 views). */
export function runDispatches(device: GPUDevice, dispatches: Dispatch[], rows: number, read: GPUBuffer[]): Promise<Float32Array[]> {
  return runSteps(
    device,
    dispatches.map((d) => ({ d, rows, kvLen: rows })),
    read,
  );
}

/**
 * Runs `fn` (recording and running dispatches) inside a validation error scope, so a shader that
 * fails to compile or a bad binding fails the check with WebGPU's message; then releases buffers.
 */
export async function validated<T>(fn: (g: Gpu) => Promise<T>): Promise<T> {
  const g = await gpu();
  g.device.pushErrorScope('validation');
  let out: { value: T } | { error: unknown };
  try {
    out = { value: await fn(g) };
  } catch (error) {
    out = { error };
  }
  const err = await g.device.popErrorScope();
  release();
  if (err) throw new Error(`WebGPU validation error: ${err.message}`);
  if ('error' in out) throw out.error;
  return out.value;
}

/** Destroys every buffer upload() made. */
export function release(): void {
  for (const b of made.splice(0)) b.destroy();
}
