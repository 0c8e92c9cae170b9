/**
 * Per-kernel GPU time of a decode step from timestamp-query (bench and the device kit). WebGPU timestamps are written at the
 * start and end of a pass, and the engine runs a whole step in one pass; so the profiler replays a
 * step's dispatch list (body, LM head, argmax: what encodeRows runs) with each
 * dispatch in a pass of its own, and sums the times by kernel (labels with the layer left out).
 *
 * The dispatch list comes from LlamaModel.decodeStepDispatches and the row params from
 * prepareRows, as a decode call queues them.
 */
import type { LlamaModel } from './llama.ts';
import { pickDispatches } from './kernels.ts';

export interface KernelProfile {
  batch: number;
  position: number;
  steps: number;
  dispatches: number;
  /** Sum over every dispatch of its own pass's time (median over the steps), µs. */
  totalUs: number;
  kernels: { kernel: string; count: number; us: number; share: number }[];
}

/** "layer 3 scores" → "layer * scores"; "q4 matvec model.layers.3.mlp.down_proj.q_weight" → "q4 matvec model.layers.*.mlp.down_proj.q_weight". */
export function kernelKey(label: string): string {
  return label.replace(/\blayer \d+\b/g, 'layer *').replace(/\.\d+\./g, '.*.');
}

/** Time each dispatch of a greedy decode step over slots 0..batch-1 at `position`, `steps` times. */
export async function profileDecodeStep(model: LlamaModel, batch: number, position: number, steps: number): Promise<KernelProfile> {
  const device = model.gpu.device;
  // The dispatches a step over `batch` rows encodes (a fused decode dispatch may be several past its maxRows).
  const list = model.decodeStepDispatches().flatMap((d) => pickDispatches(d, batch));
  const n = list.length;
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * n });
  const resolve = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const perStep: number[][] = [];
  try {
    for (let step = 0; step < steps; step++) {
      device.pushErrorScope('validation');
      // Decode rows (one per slot) with the LM head over all of them, as decodeGreedy encodes them.
      const kvLen = model.prepareRows(Array.from({ length: batch }, (_, s) => ({ slot: s, pos: position + step })));
      const enc = device.createCommandEncoder();
      list.forEach((dsp, i) => {
        const pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
        pass.setPipeline(dsp.pipeline);
        dsp.bindGroups.forEach((g, j) => pass.setBindGroup(j, g));
        pass.dispatchWorkgroups(...dsp.workgroups(batch, kvLen));
        pass.end();
      });
      enc.resolveQuerySet(querySet, 0, 2 * n, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, read, 0, 16 * n);
      device.queue.submit([enc.finish()]);
      const err = await device.popErrorScope();
      if (err) throw new Error(`WebGPU validation error: ${err.message}`);
      await read.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(read.getMappedRange().slice(0));
      read.unmap();
      perStep.push(Array.from({ length: n }, (_, i) => Math.max(0, Number(t[2 * i + 1] - t[2 * i])) / 1000));
    }
  } finally {
    querySet.destroy();
    resolve.destroy();
    read.destroy();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const byKernel = new Map<string, { count: number; us: number }>();
  list.forEach((dsp, i) => {
    const key = kernelKey(dsp.label);
    const e = byKernel.get(key) ?? { count: 0, us: 0 };
    e.count++;
    e.us += median(perStep.map((s) => s[i]));
    byKernel.set(key, e);
  });
  const totalUs = [...byKernel.values()].reduce((a, e) => a + e.us, 0);
  const kernels = [...byKernel.entries()].map(([kernel, e]) => ({ kernel, ...e, share: totalUs > 0 ? e.us / totalUs : 0 })).sort((a, b) => b.us - a.us);
  return { batch, position, steps, dispatches: n, totalUs, kernels };
}
