/**
 * The device's copy bandwidth, the yardstick of decode efficiency (bytes a step must read x
 * steps/s / this): the same measure for `npm run bench` (benchPage.ts) and the device kit.
 */
import { PipelineCache, bindKernel } from './kernels.ts';

export interface CopyBandwidth {
  /** The better of the two, bytes per second (read + write counted). */
  bytesPerSecond: number;
  copyBufferToBuffer: number;
  /** bandwidthCopy.wgsl: 16-byte loads and stores. */
  kernel: number;
}

/** Bytes per second a large buffer copy moves (read + write), best of a few runs: copyBufferToBuffer and the copy kernel. */
export async function measureCopyBandwidth(device: GPUDevice, bytes = 256 * 2 ** 20): Promise<CopyBandwidth> {
  const size = Math.min(
    Math.floor(bytes / 16) * 16,
    Math.floor(device.limits.maxStorageBufferBindingSize / 16) * 16,
    Math.floor(device.limits.maxBufferSize / 16) * 16,
  );
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const src = device.createBuffer({ size, usage });
  const dst = device.createBuffer({ size, usage });
  const pipeline = new PipelineCache(device).get('bandwidthCopy', {}, { N: size / 16 });
  const [group] = bindKernel(device, pipeline, 'bandwidthCopy', { src, dst }, 'copy');
  const run = async (reps: number, kernel: boolean) => {
    const enc = device.createCommandEncoder();
    for (let r = 0; r < reps; r++) {
      if (kernel) {
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(Math.min(4096, Math.ceil(size / 16 / 256)));
        pass.end();
      } else enc.copyBufferToBuffer(src, 0, dst, 0, size);
    }
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return (2 * size * reps) / ((performance.now() - t0) / 1000);
  };
  const best = { copyBufferToBuffer: 0, kernel: 0 };
  for (const kernel of [false, true]) {
    await run(1, kernel); // warm-up
    for (let i = 0; i < 3; i++) {
      const b = await run(4, kernel);
      if (kernel) best.kernel = Math.max(best.kernel, b);
      else best.copyBufferToBuffer = Math.max(best.copyBufferToBuffer, b);
    }
  }
  src.destroy();
  dst.destroy();
  return { bytesPerSecond: Math.max(best.copyBufferToBuffer, best.kernel), ...best };
}
