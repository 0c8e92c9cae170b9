/**
 * Which TrainerBackend a run gets (the CLI and the Train view's worker ask here): the WebGPU trainer
 * when a hardware WebGPU adapter is there and the run is one it trains, else the reference trainer
 * (CPU, f64), with a one-line notice saying why. The reference is kept for:
 * - no WebGPU device at all;
 * - a software adapter (SwiftShader, llvmpipe): there the f64 reference is faster on the small models
 *   such a machine can train, and compiling the pass's pipelines alone takes minutes;
 * - a base the GPU backward cannot read (a q4 weight whose width is not a multiple of 32).
 * A micro-batch that does not fit the GPU is an error (TrainingMemoryError, saying what fits), not a
 * silent switch to a trainer hundreds of times slower.
 */
import type { GpuContext } from '../engine/gpu.ts';
import { EngineError } from '../engine/errors.ts';
import type { ModelManifestInfo } from '../formats/modelFiles.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { ReferenceTrainerBackend, type TrainerBackend } from './backend.ts';
import type { TrainerState } from './checkpoint.ts';
import type { TokenizedExample } from './data.ts';
import { GpuTrainerBackend } from './gpuTrainer.ts';
import type { ReferenceModel } from './referenceTrainer.ts';

export interface BackendChoice {
  backend: TrainerBackend;
  /** why the reference trainer runs instead of the GPU one (null when the GPU trains) */
  notice: string | null;
}

export async function chooseTrainerBackend(o: {
  /** the WebGPU context, or why there is none */
  gpu: GpuContext | { unavailable: string };
  /** also train on a software adapter (tests of the GPU path on SwiftShader) */
  allowSoftware?: boolean;
  source: ModelSource;
  info: ModelManifestInfo;
  data: TokenizedExample[];
  state: TrainerState;
  /** the dense f64-ready base, read only when the reference trains */
  referenceModel: () => Promise<ReferenceModel>;
}): Promise<BackendChoice> {
  const reference = async (notice: string): Promise<BackendChoice> => ({
    backend: new ReferenceTrainerBackend(await o.referenceModel(), o.data, o.state),
    notice,
  });
  if ('unavailable' in o.gpu) return reference(`no WebGPU device (${o.gpu.unavailable}): training on the reference trainer`);
  if (o.gpu.isSoftware && !o.allowSoftware)
    return reference(`only a software WebGPU adapter (${o.gpu.adapterInfo}): training on the reference trainer, faster there`);
  try {
    return { backend: await GpuTrainerBackend.create(o.gpu, o.source, o.info, o.data, o.state), notice: null };
  } catch (e) {
    if (e instanceof EngineError && /multiple of 32 columns/.test(e.message))
      return reference(`the WebGPU trainer cannot run this base (${e.message}): training on the reference trainer`);
    throw e;
  }
}
