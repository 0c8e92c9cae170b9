/**
 * WebGPU for a Node CLI: Dawn's Node bindings (the `webgpu` package, the Dawn that Chrome uses, as
 * the device kit runs the engine), with their globals (GPUBufferUsage, …) installed before any
 * engine module that reads them at load is imported. The engine code is the browser's, unchanged.
 * Returns why there is none instead of throwing: the caller then trains on the reference.
 */
import { register } from 'node:module';
import type { GpuContext } from '../engine/gpu.ts';

let hooked = false;
/** Dawn's GPU object must outlive every device made from it: collecting it crashes the process. */
const keep: GPU[] = [];

export async function nodeWebGpu(): Promise<GpuContext | { unavailable: string }> {
  try {
    const dawn = (await import('webgpu')) as unknown as { create(flags: string[]): GPU; globals: object };
    Object.assign(globalThis, dawn.globals);
    // The engine's kernels are imported as text (`.wgsl?raw`): teach Node's loader that once.
    if (!hooked) register('./wgslRawHooks.mjs', import.meta.url);
    hooked = true;
    const { createGpuContext } = await import('../engine/gpu.ts');
    const gpu = dawn.create([]);
    keep.push(gpu);
    return await createGpuContext(gpu);
  } catch (e) {
    return { unavailable: (e as Error).message };
  }
}
