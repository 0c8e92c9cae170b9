/**
 * The Train view's rules: the recipe form (the paper's three recipes one click each, every field
 * editable), where the data comes from, starting a run in the training worker, pause and resume,
 * the live numbers (loss curve, tokens/s, ETA), and what a finished (or paused) run's adapter
 * becomes: an adapter in the picker ("Use this adapter", through the same import as a dropped PEFT
 * folder) or a PEFT download. Runs, checkpoints and their text live in IndexedDB
 * (src/training/checkpointStore.ts), so they survive a reload.
 */
import { parseTrainingFile, DEFAULT_CUTOFF_LEN } from '../../training/data.ts';
import { defaultHyper } from '../../training/referenceTrainer.ts';
import { paperRecipe, specFromRecipe, type TrainingMethod } from '../../training/recipes.ts';
import { parseTrainerState } from '../../training/checkpoint.ts';
import { exportTrainedAdapter } from '../../training/export.ts';
import { cachedTrainingText, getRun, listRuns, saveRun, saveRunText, deleteRun, type TrainingRunRecord } from '../../training/checkpointStore.ts';
import type { TrainingEvent, TrainingRequest } from '../../training/workerProtocol.ts';
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from '../../formats/peftAdapter.ts';
import type { ModelManifest } from '../../storage/index.ts';
import { engine } from './engine.svelte.ts';
import { adapterImport } from './adapterImport.svelte.ts';
import { defaultDataBase } from './datasets.svelte.ts';
import { downloadBytes } from '../download.ts';

/** math_10k, the paper's training set, from its public source (LLM-Adapters' repository). */
export const MATH_10K_URL = 'https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main/ft-training_set/math_10k.json';
/** The development copy served from ../shared/data (dev server only). */
export const DEV_MATH_DATA_PATH = 'llm-adapters/train/math_data.json';

export type DataChoice = 'dev' | 'url' | 'file';

/** The form's fields as typed (text, so "3e-4" stays as written); parsed by settingsFromForm. */
export interface TrainForm {
  r: string;
  alpha: string;
  dropout: string;
  bottleneck: string;
  targets: string;
  microBatch: string;
  gradAccum: string;
  epochs: string;
  /** empty: run `epochs` epochs */
  steps: string;
  lr: string;
  warmup: string;
  weightDecay: string;
  cutoff: string;
  seed: string;
  shuffle: boolean;
  checkpointEvery: string;
}

export function formFromRecipe(method: TrainingMethod): TrainForm {
  const { spec, run } = paperRecipe(method);
  return {
    r: spec.kind === 'lora' ? String(spec.r) : '',
    alpha: spec.kind === 'lora' ? String(spec.alpha) : '',
    dropout: String(spec.dropout),
    bottleneck: spec.kind === 'lora' ? '' : String(spec.bottleneckSize),
    targets: spec.targets.join(', '),
    microBatch: String(run.microBatch),
    gradAccum: String(run.gradAccum),
    epochs: String(run.epochs),
    steps: '',
    lr: String(run.lr),
    warmup: String(run.warmupSteps),
    weightDecay: String(run.weightDecay),
    cutoff: String(run.cutoffLen),
    seed: '42',
    shuffle: true,
    checkpointEvery: '10',
  };
}

function field(value: string, label: string, kind: 'int' | 'number', min: number, what: string): number {
  const x = Number(value);
  if (value.trim() === '' || !Number.isFinite(x) || (kind === 'int' && !Number.isInteger(x)) || x < min)
    throw new Error(`${label} must be ${what}, not "${value}".`);
  return x;
}

/** The form to a run's settings, or an error naming the field. */
export function settingsFromForm(method: TrainingMethod, f: TrainForm) {
  const dropout = field(f.dropout, 'Dropout', 'number', 0, 'a probability in [0, 1)');
  if (dropout >= 1) throw new Error(`Dropout must be a probability in [0, 1), not "${f.dropout}".`);
  const spec = specFromRecipe(method, {
    r: method === 'lora' ? field(f.r, 'r', 'int', 1, 'a positive integer') : undefined,
    alpha: method === 'lora' ? field(f.alpha, 'Alpha', 'number', Number.MIN_VALUE, 'a positive number') : undefined,
    bottleneck: method === 'lora' ? undefined : field(f.bottleneck, 'Bottleneck size', 'int', 1, 'a positive integer'),
    dropout,
    targets: f.targets
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== ''),
  });
  const steps = f.steps.trim() === '' ? null : field(f.steps, 'Steps', 'int', 1, 'a positive integer (or empty for epochs)');
  const epochs = steps === null ? field(f.epochs, 'Epochs', 'number', Number.MIN_VALUE, 'a positive number') : null;
  const hyper = defaultHyper({
    microBatch: field(f.microBatch, 'Micro-batch', 'int', 1, 'a positive integer'),
    gradAccum: field(f.gradAccum, 'Gradient accumulation', 'int', 1, 'a positive integer'),
    lr: field(f.lr, 'Learning rate', 'number', 0, 'a non-negative number'),
    warmupSteps: field(f.warmup, 'Warmup steps', 'int', 0, 'a non-negative integer'),
    weightDecay: field(f.weightDecay, 'Weight decay', 'number', 0, 'a non-negative number'),
    seed: field(f.seed, 'Seed', 'int', 0, 'a non-negative integer'),
    shuffle: f.shuffle,
    totalSteps: 0,
  });
  return {
    spec,
    hyper: { ...hyper, totalSteps: steps },
    epochs,
    cutoffLen: field(f.cutoff, 'Cutoff length', 'int', 2, 'an integer ≥ 2'),
    checkpointEvery: field(f.checkpointEvery, 'Checkpoint every', 'int', 1, 'a positive integer'),
  };
}

export function formatDuration(seconds: number): string {
  const t = Math.max(0, Math.round(seconds));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${t % 60} s` : `${t % 60} s`;
}

/** What the view shows of the run in progress (or the one last looked at). */
export interface LiveRun {
  record: TrainingRunRecord;
  /** worker state: loading the base/data, running, pausing (after this step) */
  phase: 'loading' | 'running' | 'pausing' | 'idle';
  totalSteps: number | null;
  peakGpuBytes: number;
}

class TrainingStore {
  method = $state<TrainingMethod>('lora');
  form = $state<TrainForm>(formFromRecipe('lora'));
  dataChoice = $state<DataChoice>(import.meta.env.DEV ? 'dev' : 'url');
  dataUrl = $state(MATH_10K_URL);
  file = $state.raw<File | null>(null);
  runs = $state.raw<TrainingRunRecord[]>([]);
  live = $state.raw<LiveRun | null>(null);
  error = $state<string | null>(null);
  notice = $state<string | null>(null);
  private worker: Worker | null = null;

  readonly busy = $derived(this.live !== null && this.live.phase !== 'idle');

  /** One click: the paper's recipe for `method` in every field. */
  applyRecipe(method: TrainingMethod) {
    this.method = method;
    this.form = formFromRecipe(method);
  }

  async refresh() {
    this.runs = await listRuns();
    if (!this.live && this.runs.length > 0) this.live = { record: this.runs[0], phase: 'idle', totalSteps: this.runs[0].hyper.totalSteps, peakGpuBytes: 0 };
  }

  private async dataText(): Promise<{ name: string; text: string }> {
    if (this.dataChoice === 'file') {
      if (!this.file) throw new Error('Choose a training file (LLM-Adapters JSON, or JSONL of records or pre-tokenized rows).');
      return { name: this.file.name, text: await this.file.text() };
    }
    const url =
      this.dataChoice === 'dev' ? new URL(DEV_MATH_DATA_PATH, defaultDataBase() ?? new URL('data/', document.baseURI).href).href : this.dataUrl.trim();
    if (!url) throw new Error('Give the URL of a training file.');
    const name = decodeURIComponent(new URL(url, document.baseURI).pathname.split('/').pop() || 'training data');
    // the dev copy is read fresh each time; a URL's file is cached (math_10k downloads once)
    if (this.dataChoice === 'dev') {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`Could not read the development data at ${url}: HTTP ${res.status}.`);
      return { name, text: await res.text() };
    }
    return { name, text: (await cachedTrainingText(url, (text) => parseTrainingFile(text, name))).text };
  }

  /** Checks the form and the data, stores a new run and starts it. Nothing is stored when a check fails. */
  async start() {
    this.error = null;
    this.notice = null;
    if (this.busy) return;
    const base = engine.model;
    try {
      if (!base) throw new Error('Load a base model first (Model, above): the adapter trains on it, frozen.');
      const settings = settingsFromForm(this.method, this.form);
      const { name, text } = await this.dataText();
      parseTrainingFile(text, name); // refuses records without output / with an empty instruction, by record
      const id = `train-${Date.now().toString(36)}`;
      const rec: TrainingRunRecord = {
        id,
        name: `${settings.spec.kind} on ${name} (${new Date().toISOString().slice(0, 16).replace('T', ' ')})`,
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
        base: { id: base.id, name: base.label, location: $state.snapshot(base.location), config: null },
        method: settings.spec.kind,
        spec: settings.spec,
        hyper: settings.hyper,
        epochs: settings.epochs,
        cutoffLen: settings.cutoffLen ?? DEFAULT_CUTOFF_LEN,
        checkpointEvery: settings.checkpointEvery,
        data: { name, examples: null, truncated: null, unlabelled: null },
        status: 'new',
        message: null,
        backend: null,
        losses: [],
        lrs: [],
        tokens: 0,
        seconds: 0,
        state: null,
      };
      await saveRunText(id, text);
      await saveRun(rec);
      this.launch(rec);
    } catch (e) {
      this.error = (e as Error).message;
    }
  }

  async resume(id: string) {
    this.error = null;
    if (this.busy) return;
    const rec = await getRun(id);
    if (!rec) {
      this.error = 'That run is no longer stored.';
      return;
    }
    this.launch(rec);
  }

  pause() {
    if (!this.worker || !this.live) return;
    this.live = { ...this.live, phase: 'pausing' };
    this.worker.postMessage({ type: 'pause' } satisfies TrainingRequest);
  }

  async remove(id: string) {
    if (this.live?.record.id === id && this.busy) return;
    await deleteRun(id);
    if (this.live?.record.id === id) this.live = null;
    await this.refresh();
  }

  show(id: string) {
    const rec = this.runs.find((r) => r.id === id);
    if (rec && !this.busy) this.live = { record: rec, phase: 'idle', totalSteps: rec.hyper.totalSteps, peakGpuBytes: 0 };
  }

  private launch(rec: TrainingRunRecord) {
    this.worker?.terminate();
    const worker = new Worker(new URL('../../training/worker.ts', import.meta.url), { type: 'module' });
    this.worker = worker;
    this.live = {
      record: { ...rec, losses: rec.losses.slice(0, rec.state ? undefined : 0) },
      phase: 'loading',
      totalSteps: rec.hyper.totalSteps,
      peakGpuBytes: 0,
    };
    worker.onmessage = (e: MessageEvent<TrainingEvent>) => void this.receive(e.data);
    worker.onerror = (e) => {
      this.error = `The training worker failed: ${e.message || 'unknown error'}. The last checkpoint is kept; Resume continues from it.`;
      this.finish();
    };
    worker.postMessage({ type: 'run', runId: rec.id } satisfies TrainingRequest);
  }

  private finish() {
    this.worker?.terminate();
    this.worker = null;
    if (this.live) this.live = { ...this.live, phase: 'idle' };
    void this.refresh().then(() => {
      const rec = this.live && this.runs.find((r) => r.id === this.live!.record.id);
      if (rec && this.live) this.live = { ...this.live, record: rec };
    });
  }

  private async receive(m: TrainingEvent) {
    const live = this.live;
    if (!live || live.record.id !== m.runId) return;
    const r = live.record;
    switch (m.type) {
      case 'ready': {
        const kept = r.losses.slice(0, m.startStep);
        this.live = {
          ...live,
          phase: live.phase === 'pausing' ? 'pausing' : 'running',
          totalSteps: m.totalSteps,
          record: { ...r, backend: m.backend, losses: kept, lrs: r.lrs.slice(0, m.startStep), status: 'running', data: { ...r.data, ...m } },
        };
        break;
      }
      case 'step':
        this.live = {
          ...live,
          peakGpuBytes: m.peakGpuBytes,
          record: { ...r, losses: [...r.losses, m.loss], lrs: [...r.lrs, m.lr], tokens: m.tokens, seconds: m.seconds },
        };
        break;
      case 'checkpoint':
        this.notice = `Checkpoint saved after step ${m.step}.`;
        break;
      case 'paused':
        this.notice = `Paused after step ${m.step}; checkpoint saved. Resume continues from it, also after a reload.`;
        this.finish();
        break;
      case 'done':
        this.notice = `Finished ${m.step} steps. Use the adapter or export it.`;
        this.finish();
        break;
      case 'stopped':
        this.error = m.message;
        this.finish();
        break;
      case 'error':
        this.error = m.removed ? `${m.message} (nothing was stored)` : m.message;
        if (m.removed) this.live = null;
        this.finish();
        break;
    }
  }

  private async peftFiles(id: string) {
    const rec = await getRun(id);
    if (!rec?.state || !rec.base.config) throw new Error('This run has no checkpoint yet.');
    const state = parseTrainerState(rec.state);
    const out = exportTrainedAdapter(rec.base.config, rec.spec, state.adapter, rec.base.name);
    return { rec, step: state.step, out };
  }

  /** Converts the run's adapter as a dropped PEFT folder would be, so it joins the Adapter picker (and the Lab and Accuracy runs). */
  async useAdapter(id: string): Promise<ModelManifest | null> {
    this.error = null;
    try {
      const { rec, step, out } = await this.peftFiles(id);
      const folder = `trained-${rec.method}-${rec.id.slice(6)}`;
      const manifest = await adapterImport.importPeft(
        [
          { file: new File([out.adapterConfigJson], PEFT_CONFIG_FILE, { type: 'application/json' }), path: `${folder}/${PEFT_CONFIG_FILE}` },
          { file: new File([out.adapterWeights as Uint8Array<ArrayBuffer>], PEFT_WEIGHTS_FILE), path: `${folder}/${PEFT_WEIGHTS_FILE}` },
        ],
        { id: rec.base.id, name: rec.base.name, location: rec.base.location },
        `${folder} (step ${step})`,
      );
      if (!manifest) throw new Error(adapterImport.status?.message ?? 'the adapter could not be stored');
      this.notice = `${manifest.name} is in the Adapter picker.`;
      return manifest;
    } catch (e) {
      this.error = (e as Error).message;
      return null;
    }
  }

  /** PEFT's two files (adapter_config.json + adapter_model.safetensors, F32, PEFT key names). */
  async exportAdapter(id: string) {
    this.error = null;
    try {
      const { out } = await this.peftFiles(id);
      downloadBytes(PEFT_CONFIG_FILE, new TextEncoder().encode(out.adapterConfigJson), 'application/json');
      downloadBytes(PEFT_WEIGHTS_FILE, out.adapterWeights);
    } catch (e) {
      this.error = (e as Error).message;
    }
  }
}

export const training = new TrainingStore();
