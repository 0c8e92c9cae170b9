/**
 * Evaluation runs: every run so far (from IndexedDB), the one running now, and start / stop /
 * resume. The runner does the work (src/reasoning/runner.ts); this store only keeps the UI's view.
 */
import { listRuns, saveRun, deleteRun, appendRunItem } from '../../reasoning/runStore.ts';
import { decodingOf, GREEDY, runProgress, type Run } from '../../reasoning/runs.ts';
import { planRun, runEvaluation, RunCancelled } from '../../reasoning/runner.ts';
import { customPrompt, getPromptConfig, type PromptConfig } from '../../reasoning/prompts.ts';
import type { DatasetName, Problem } from '../../reasoning/datasets.ts';
import { engine } from './engine.svelte.ts';
import { datasets } from './datasets.svelte.ts';
import { adapters, NO_ADAPTER } from './adapters.svelte.ts';
import { currentAdapterId, currentModelId } from '../adapterChoices.ts';
import { buildRunRecord, recordedKvCache, type Decoding, type RunRecord } from '../../reasoning/runRecord.ts';
import { baseFingerprintOf, httpModelSource } from '../../formats/modelFiles.ts';
import type { ModelLocation } from '../../engine/protocol.ts';
import pkg from '../../../package.json';
import { DEFAULT_BATCH_MEMORY } from '../batchMemory.ts';

/** The base model's fingerprint (formats/modelFiles.ts baseFingerprint), wherever its files are; null if they cannot be read. */
async function fingerprintAt(location: ModelLocation): Promise<string | null> {
  try {
    const source = location.kind === 'http' ? httpModelSource(location.baseUrl) : (await import('../../storage/source.ts')).idbModelSource(location.modelId);
    return await baseFingerprintOf(source);
  } catch {
    return null;
  }
}

/**
 * A run as the lab stores it: what is needed to resume it exactly. `model` and `adapterId` are the
 * model's and the adapter's ids (adapterChoices.ts), `adapter` / `adapterKind` what the engine reported.
 */
export type LabRun = Run & { maxNewTokens: number; stopSequences: string[]; promptLabel: string; adapterId?: string };

export interface StartOptions {
  dataset: DatasetName;
  config: PromptConfig;
  maxNewTokens: number;
  /** undefined: every problem in file order. */
  limit?: number;
  seed?: number;
  /** The adapter choice to run with (default: the one in use). */
  adapterId?: string;
  /** Default: greedy. Kept with the run: Resume and Rerun decode the same way. */
  decoding?: Decoding;
}

/** A stored run with today's ids (runs recorded before models and adapters were named by manifest id). */
function withCurrentIds(run: LabRun): LabRun {
  const model = currentModelId(run.model);
  const adapterId = run.adapterId === undefined ? undefined : currentAdapterId(run.adapterId, run.model);
  return model === run.model && adapterId === run.adapterId ? run : { ...run, model, adapterId };
}

/** The configuration a stored run was made with. */
export function configOfRun(run: LabRun): PromptConfig {
  if (run.promptId === 'custom') return customPrompt(run.promptTemplate, run.stopSequences);
  return getPromptConfig(run.promptId);
}

/**
 * Why a run cannot go on with the KV cache the model has now, or null. One run, one cache format:
 * an f16 cache rounds every key and value, so its outputs may differ from an f32 one's. A run
 * stored before records named the cache ran the mode's own (the loaded model is the run's).
 */
function kvCacheRefusal(run: LabRun): string | null {
  const kv = recordedKvCache(run.record, engine.info?.mode ?? null);
  if (kv === null || engine.info?.kvCache === kv) return null;
  return `This run used an ${kv} KV cache; the model is loaded with an ${engine.info?.kvCache} one. Choose ${kv} under KV cache to resume.`;
}

class RunsStore {
  /** Every stored run, newest first; replaced (never mutated) on each change, so plain objects that IndexedDB and the worker take as they are. */
  list = $state.raw<LabRun[]>([]);
  /** The run on screen (chart, progress). */
  selectedId = $state<string | null>(null);
  /** The run generating now. */
  activeId = $state<string | null>(null);
  current = $state<{ problem: Problem; position: number; text: string } | null>(null);
  /** Problems the engine solves together in the active run (each with `beams` beams), and problems finished per minute. */
  /** The active run's pace: problems at a time, problems per minute and minutes left at that pace. */
  throughput = $state<{
    batch: number;
    beams: number;
    perMinute: number | null;
    minutesLeft: number | null;
    /** Prompt tokens all problems share, prefilled once (0: none). */
    sharedPrefixTokens: number;
  } | null>(null);
  /** Tokens of the problems the active run finished since it (re)started. */
  private finishedTokens = $state(0);
  /** Tokens generated so far by the active run's problems still being solved (shown beside "k of N problems"). */
  tokensInFlight = $state(0);
  /** Tokens the active run has decoded since it (re)started, those in flight included. */
  readonly decodedTokens = $derived(this.finishedTokens + this.tokensInFlight);
  /** Problems solved at a time: 'auto' (as many as fit a GPU-memory budget) or a number (1: one by one, to watch each). */
  batch = $state<number | 'auto'>('auto');
  /** With batch 'auto': bytes of KV cache and activations the batch may take (Infinity: all the GPU gives). */
  batchMemory = $state(DEFAULT_BATCH_MEMORY);
  error = $state<string | null>(null);
  loaded = $state(false);
  private abort: AbortController | null = null;

  readonly selected = $derived(this.list.find((r) => r.id === this.selectedId) ?? this.list[0] ?? null);
  readonly selectedProgress = $derived(this.selected ? runProgress(this.selected) : null);

  async refresh() {
    try {
      this.list = ((await listRuns()) as LabRun[]).map(withCurrentIds);
    } catch (e) {
      this.error = `Stored runs could not be read: ${(e as Error).message}`;
    } finally {
      this.loaded = true;
    }
  }

  private put(run: LabRun) {
    const i = this.list.findIndex((r) => r.id === run.id);
    this.list = i >= 0 ? this.list.with(i, run) : [run, ...this.list];
  }

  async start(opts: StartOptions) {
    this.error = null;
    const model = engine.model?.id;
    if (!model || !engine.ready) return void (this.error = 'Load a model first.');
    if (this.activeId) return void (this.error = 'A run is already going: stop it first.');
    const data = await datasets.load(opts.dataset).catch((e: Error) => void (this.error = e.message));
    if (!data) return;
    const adapterId = opts.adapterId ?? adapters.activeId;
    const decoding = opts.decoding ?? GREEDY;
    let adapter: Awaited<ReturnType<typeof adapters.ensure>>;
    try {
      adapter = await adapters.ensure(adapterId);
    } catch (e) {
      return void (this.error = `The adapter could not be used: ${(e as Error).message}`);
    }
    const planned = planRun(
      {
        dataset: opts.dataset,
        promptId: opts.config.id,
        promptTemplate: opts.config.template,
        adapter: adapter?.name ?? null,
        adapterKind: adapter?.kind ?? null,
        model,
        seed: opts.seed,
        limit: opts.limit,
        decoding,
      },
      data.problems,
    );
    const choice = engine.model!;
    const source = data as Partial<{ url: string; sha256: string }>;
    const record: RunRecord = await buildRunRecord({
      appVersion: pkg.version,
      model: {
        id: model,
        fingerprint: await fingerprintAt(choice.location),
        source: choice.location.kind === 'http' ? choice.location.baseUrl : `idb:${choice.location.modelId}`,
      },
      adapter: adapter ? { name: adapter.name, kind: adapter.kind ?? null, fingerprint: null, baseFingerprint: null, source: adapterId } : null,
      promptId: opts.config.id,
      config: opts.config,
      decoding,
      maxNewTokens: opts.maxNewTokens,
      kvCache: engine.info?.kvCache ?? null,
      dataset: { name: opts.dataset, url: source.url ?? '', sha256: source.sha256 ?? null, seed: opts.seed, limit: opts.limit, indices: planned.order },
      environment: {
        browser: navigator.userAgent,
        gpuAdapter: (engine.info as { adapterInfo?: string } | null)?.adapterInfo ?? null,
        engine: 'reasoning-lab webgpu',
      },
    });
    const run: LabRun = {
      ...planned,
      record,
      maxNewTokens: opts.maxNewTokens,
      stopSequences: [...opts.config.stopSequences],
      promptLabel: opts.config.label,
      adapterId,
    };
    await saveRun(run);
    this.put(run);
    await this.continue(run);
  }

  /** Continue a stored run with the loaded model (it must be the model the run started with). */
  async continue(run: LabRun) {
    this.error = null;
    if (this.activeId) return void (this.error = 'A run is already going: stop it first.');
    if (!engine.ready || engine.model?.id !== run.model) return void (this.error = `This run used the model "${run.model}": load it to resume.`);
    const kvRefusal = kvCacheRefusal(run);
    if (kvRefusal) return void (this.error = kvRefusal);
    let config: PromptConfig;
    try {
      config = configOfRun(run);
    } catch (e) {
      return void (this.error = (e as Error).message);
    }
    const data = await datasets.load(run.dataset).catch((e: Error) => void (this.error = e.message));
    if (!data) return;
    // The run's own adapter, switched to (and loaded if it is not resident) before it goes on.
    const adapterId = run.adapterId ?? (run.adapter === null ? NO_ADAPTER : null);
    if (adapterId === null) return void (this.error = `This run used the adapter "${run.adapter}", which this page cannot find again: start a new run.`);
    try {
      const used = await adapters.ensure(adapterId);
      if ((used?.name ?? null) !== run.adapter) throw new Error(`it is now "${used?.name ?? 'none'}", the run used "${run.adapter ?? 'none'}".`);
    } catch (e) {
      return void (this.error = `This run's adapter could not be used: ${(e as Error).message}`);
    }
    // Again, now the awaits are over: the format may have been switched meanwhile (locked from here on).
    const kvRefusalNow = kvCacheRefusal(run);
    if (kvRefusalNow) return void (this.error = kvRefusalNow);
    this.selectedId = run.id;
    this.activeId = run.id;
    adapters.lockedBy = 'Evaluating';
    const abort = (this.abort = new AbortController());
    const extra = { maxNewTokens: run.maxNewTokens, stopSequences: [...run.stopSequences], promptLabel: run.promptLabel, adapterId };
    const decoding = decodingOf(run);
    const beams = decoding.kind === 'beam' ? decoding.numBeams : 1;
    try {
      // Once per resume: the header with what this resume settled (a run stored before ids gets its adapter's).
      await saveRun({ ...run, ...extra });
    } catch (e) {
      this.finishRun();
      return void (this.error = `The run could not be saved: ${(e as Error).message}`);
    }
    const t0 = performance.now();
    const done0 = run.items.length;
    this.finishedTokens = 0;
    try {
      await runEvaluation({
        // Problems decode together (the weights are read once per step for all of them).
        generateBatch: (p, o, callbacks) =>
          engine.generateBatch(p, { ...o, maxBatch: this.batch, memoryBudget: this.batchMemory }, { ...callbacks, label: `Evaluating ${config.label}` }),
        // Beam search solves one problem at a time (its beams are the batch the engine reports).
        onBatchStart: ({ maxBatch, sharedPrefixTokens }) =>
          (this.throughput = {
            batch: beams > 1 ? 1 : maxBatch,
            beams,
            perMinute: null,
            minutesLeft: null,
            sharedPrefixTokens: sharedPrefixTokens ?? 0,
          }),
        run,
        problems: data.problems,
        config,
        maxNewTokens: run.maxNewTokens,
        signal: abort.signal,
        onProblemStart: (problem, position) => (this.current = { problem, position, text: '' }),
        onTokens: (n) => (this.tokensInFlight = n),
        onText: (_p, text) => {
          if (this.current) this.current.text = text;
        },
        save: (r, item) => appendRunItem(r.id, item),
        onProgress: (r, item) => {
          this.put({ ...r, ...extra });
          this.finishedTokens += item.generatedTokens ?? 0;
          if (!this.throughput) return;
          const perMinute = ((r.items.length - done0) * 60_000) / (performance.now() - t0);
          const left = runProgress(r).total - r.items.length;
          Object.assign(this.throughput, { perMinute, minutesLeft: perMinute > 0 ? left / perMinute : null });
        },
      });
    } catch (e) {
      if (!(e instanceof RunCancelled)) this.error = (e as Error).message;
    } finally {
      this.finishRun();
    }
  }

  private finishRun() {
    this.activeId = null;
    this.tokensInFlight = 0;
    this.current = null;
    this.throughput = null;
    this.abort = null;
    adapters.lockedBy = null;
    // Back to the adapter the picker shows (a resumed run may have used another).
    void adapters.apply();
  }

  /** A new run with a stored run's configuration (dataset, prompt, adapter, selection, max tokens, decoding). */
  async rerun(run: LabRun) {
    let config: PromptConfig;
    try {
      config = configOfRun(run);
    } catch (e) {
      return void (this.error = (e as Error).message);
    }
    if (engine.model?.id !== run.model) return void (this.error = `This run used the model "${run.model}": load it to rerun.`);
    const adapterId = run.adapterId ?? (run.adapter === null ? NO_ADAPTER : undefined);
    if (adapterId === undefined) return void (this.error = `This run used the adapter "${run.adapter}", which this page cannot find again.`);
    await this.start({ dataset: run.dataset, config, maxNewTokens: run.maxNewTokens, limit: run.limit, seed: run.seed, adapterId, decoding: decodingOf(run) });
  }

  stop() {
    this.abort?.abort();
  }

  async remove(id: string) {
    if (this.activeId === id) return;
    await deleteRun(id);
    this.list = this.list.filter((r) => r.id !== id);
  }
}

export const runs = new RunsStore();
