/**
 * The training worker: runs one stored run (checkpointStore.ts) step by step off the page's main
 * thread, through the TrainerBackend seam (chooseBackend.ts: the WebGPU trainer on a hardware
 * adapter, else the reference trainer, CPU f64). It reads
 * everything from IndexedDB (settings, text, last checkpoint), so a run resumes the same way after
 * a pause, a reload or a closed tab; it checkpoints every `checkpointEvery` steps, on pause and at
 * the end. A run that fails before its first step (bad data, unreadable base) is removed again,
 * leaving stored data as it was.
 */
import { httpModelSource, loadModelManifest } from '../formats/modelFiles.ts';
import { createGpuContext, type GpuContext } from '../engine/gpu.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { idbModelSource } from '../storage/source.ts';
import type { ModelLocation } from '../engine/reasoningEngine.ts';
import { prepareTrainingData } from './data.ts';
import { baseTokenizer, loadTrainingBase } from './referenceModel.ts';
import { createTrainerState, defaultHyper } from './referenceTrainer.ts';
import { trainerTotalSteps } from './schedule.ts';
import { parseTrainerState, serializeTrainerState, type TrainerState } from './checkpoint.ts';
import { tallyStep, type TrainerBackend } from './backend.ts';
import { chooseTrainerBackend } from './chooseBackend.ts';
import { deleteRun, getRun, getRunText, saveRun, type TrainingRunRecord } from './checkpointStore.ts';
import type { TrainingEvent, TrainingRequest } from './workerProtocol.ts';

const post = (e: TrainingEvent) => (self as unknown as Worker).postMessage(e);
let pauseWanted = false;

function sourceFor(location: ModelLocation): ModelSource {
  return location.kind === 'idb' ? idbModelSource(location.modelId) : httpModelSource(location.baseUrl); // absolute: the store resolves it against the page;
}

let gpuOnce: Promise<GpuContext | { unavailable: string }> | null = null;
/** One WebGPU device for the worker's runs (the GPU trainer's pipelines are cached per device). */
async function gpuContext(): Promise<GpuContext | { unavailable: string }> {
  const had = await gpuOnce;
  if (had && 'lost' in had && had.lost) gpuOnce = null; // a lost device: a resumed run asks for a new one
  gpuOnce ??= createGpuContext().catch((e: Error) => ({ unavailable: e.message }));
  return gpuOnce;
}

async function checkpoint(rec: TrainingRunRecord, state: TrainerState, status: TrainingRunRecord['status'], message: string | null = null) {
  rec.state = serializeTrainerState(state);
  rec.status = status;
  rec.message = message;
  await saveRun(rec);
}

async function run(runId: string) {
  const rec = await getRun(runId);
  if (!rec) throw new Error(`no stored training run ${runId}`);
  const fresh = rec.state === null;
  let backend: TrainerBackend;
  let totalSteps: number;
  let notice: string | null;
  try {
    const text = await getRunText(runId);
    if (text === undefined) throw new Error(`the training data of run ${rec.name} is no longer stored`);
    const source = sourceFor(rec.base.location);
    const info = await loadModelManifest(source);
    const tok = await baseTokenizer(info);
    if (!tok) throw new Error(`${rec.base.name} has no tokenizer: the Train view needs one to prepare the data`);
    const data = prepareTrainingData(tok, text, rec.data.name, { cutoffLen: rec.cutoffLen, maxLen: rec.cutoffLen });
    if (data.examples.length === 0) throw new Error(`${rec.data.name}: no example has a labelled target token (${data.unlabelled} dropped)`);
    totalSteps = rec.hyper.totalSteps ?? trainerTotalSteps(data.examples.length, rec.hyper.microBatch, rec.hyper.gradAccum, rec.epochs ?? 1);
    rec.hyper.totalSteps = totalSteps;
    rec.base.config = info.config;
    rec.data = { name: rec.data.name, examples: data.examples.length, truncated: data.truncated, unlabelled: data.unlabelled };
    let state: TrainerState;
    if (fresh) state = createTrainerState(info.config, rec.spec, defaultHyper({ ...rec.hyper, totalSteps }));
    else {
      state = parseTrainerState(rec.state!);
      // the record's losses are those up to the checkpoint: later ones are recomputed exactly
      rec.losses = rec.losses.slice(0, state.step);
      rec.lrs = rec.lrs.slice(0, state.step);
    }
    const choice = await chooseTrainerBackend({
      gpu: await gpuContext(),
      source,
      info,
      data: data.examples,
      state,
      referenceModel: () => loadTrainingBase(source, info),
    });
    backend = choice.backend;
    notice = choice.notice;
    rec.backend = backend.label;
  } catch (e) {
    if (fresh) await deleteRun(runId);
    post({ type: 'error', runId, message: (e as Error).message, removed: fresh });
    return;
  }
  rec.status = 'running';
  await checkpoint(rec, backend.state, 'running');
  post({
    type: 'ready',
    runId,
    backend: backend.label,
    ...(rec.data as { examples: number; truncated: number; unlabelled: number }),
    totalSteps,
    startStep: backend.state.step,
    notice,
  });

  while (backend.state.step < totalSteps) {
    // let a pause message in between steps
    await new Promise((r) => setTimeout(r, 0));
    if (pauseWanted) {
      await checkpoint(rec, backend.state, 'paused');
      post({ type: 'paused', runId, step: backend.state.step });
      return;
    }
    const s = await tallyStep(backend, rec);
    if ('stopped' in s) {
      await checkpoint(rec, backend.state, 'stopped', s.stopped);
      post({ type: 'stopped', runId, step: backend.state.step, message: s.stopped });
      return;
    }
    const r = s.result;
    post({ type: 'step', runId, step: r.step, loss: r.loss, lr: r.lr, tokens: rec.tokens, seconds: rec.seconds, peakGpuBytes: backend.peakGpuBytes() });
    if (backend.state.step % rec.checkpointEvery === 0 && backend.state.step < totalSteps) {
      await checkpoint(rec, backend.state, 'running');
      post({ type: 'checkpoint', runId, step: backend.state.step });
    }
  }
  await checkpoint(rec, backend.state, 'done');
  post({ type: 'done', runId, step: backend.state.step });
}

self.onmessage = (e: MessageEvent<TrainingRequest>) => {
  const m = e.data;
  if (m.type === 'pause') pauseWanted = true;
  else if (m.type === 'run') {
    pauseWanted = false;
    run(m.runId).catch(async (err: unknown) => {
      // an unexpected failure mid-run: the last checkpoint stays; the record says what happened
      const message = (err as Error).message;
      const rec = await getRun(m.runId).catch(() => undefined);
      if (rec) await saveRun({ ...rec, status: 'error', message }).catch(() => {});
      post({ type: 'error', runId: m.runId, message, removed: false });
    });
  }
};
