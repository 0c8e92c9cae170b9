/**
 * The lab's choices: prompt configuration(s), custom template, dataset and problem, generation
 * length, decoding. Mirrored into the URL hash so a link restores them (see shareHash / readHash),
 * with the engine's KV cache choice (it changes the numbers a run gets).
 */
import { customPrompt, getPromptConfig, PROMPT_CONFIGS, type PromptConfig } from '../../reasoning/prompts.ts';
import { DATASET_NAMES, isDatasetName, type DatasetName } from '../../reasoning/datasets.ts';
import { ADAPTER_KINDS, currentAdapterId, currentModelId, DEFAULT_MODEL_ID, NO_ADAPTER, type AdapterKind } from '../adapterChoices.ts';
import type { Decoding } from '../../reasoning/runRecord.ts';
import { isKvCacheOption } from '../../engine/kvCache.ts';
import { engine } from './engine.svelte.ts';

export const CUSTOM_ID = 'custom';
export { NO_ADAPTER };
export type View = 'generate' | 'lab' | 'accuracy' | 'train' | 'models';
export const VIEWS: View[] = ['generate', 'lab', 'accuracy', 'train', 'models'];

/** Stop sequences are edited one per line; "\n" in a line means a newline. */
export function parseStops(text: string): string[] {
  return text
    .split('\n')
    .map((s) => s.replace(/\\n/g, '\n'))
    .filter((s) => s.length > 0);
}
export function formatStops(stops: readonly string[]): string {
  return stops.map((s) => s.replace(/\n/g, '\\n')).join('\n');
}

/** Beams the decoding choice offers: 1 is greedy; LLM-Adapters' evaluate.py decodes with 4. */
export const BEAM_CHOICES: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8];
export const PAPER_BEAMS = 4;

/** A beam count from a link: a whole number 1..8, else null. */
export function parseBeams(text: string | null): number | null {
  const n = text !== null && /^\d+$/.test(text) ? Number(text) : NaN;
  return BEAM_CHOICES.includes(n) ? n : null;
}

export function decodingFor(numBeams: number): Decoding {
  return numBeams > 1 ? { kind: 'beam', numBeams } : { kind: 'greedy' };
}

/** The paper's adapter rows (LoRA, series, parallel) were measured with 4-beam search, its prompt-only rows greedily. */
export function defaultBeamsFor(kind: AdapterKind | null | undefined): number {
  return kind && ADAPTER_KINDS.includes(kind) ? PAPER_BEAMS : 1;
}

function resolve(id: string, template: string, stops: string): { config: PromptConfig | null; error: string | null } {
  try {
    return { config: id === CUSTOM_ID ? customPrompt(template, parseStops(stops)) : getPromptConfig(id), error: null };
  } catch (e) {
    return { config: null, error: (e as Error).message };
  }
}

class LabStore {
  view = $state<View>('lab');
  /** The base model's manifest id (see adapterChoices.ts). */
  modelId = $state(DEFAULT_MODEL_ID);
  promptId = $state('q_end');
  /** Second configuration for side-by-side comparison; null: no comparison. */
  compareId = $state<string | null>(null);
  /**
   * The adapter wanted with configuration A and in runs (an AdapterChoice id, see adapterChoices.ts);
   * applied once a model is loaded.
   */
  adapterId = $state(NO_ADAPTER);
  /** Configuration B's own adapter when comparing. */
  compareAdapterId = $state(NO_ADAPTER);
  customTemplate = $state('Question: {question}\nLet us think step by step.\nAnswer:');
  customStops = $state('\\nQuestion:');
  dataset = $state<DatasetName>('gsm8k');
  problemIndex = $state(0);
  maxNewTokens = $state(48);
  /** Beams for solving and runs: 1 greedy, more: beam search (see GenerateOptions.numBeams). */
  numBeams = $state(1);
  /** The adapter choice the decoding was last set for (followAdapter): a new one brings its default. */
  private decodingAdapterId: string | null = null;

  readonly decoding = $derived(decodingFor(this.numBeams));

  readonly resolved = $derived(resolve(this.promptId, this.customTemplate, this.customStops));
  readonly config = $derived(this.resolved.config);
  readonly compareResolved = $derived(this.compareId === null ? null : resolve(this.compareId, this.customTemplate, this.customStops));
  readonly compareConfig = $derived(this.compareResolved?.config ?? null);

  /** Compare side by side (B starts on another hard prompt, with A's adapter), or stop comparing. */
  setComparing(on: boolean) {
    this.compareId = on ? (this.promptId === 'a_begin' ? 'q_end' : 'a_begin') : null;
    if (on) this.compareAdapterId = this.adapterId;
  }

  /**
   * The standing rule for the decoding: when the adapter choice changes, the decoding becomes the
   * paper's for that adapter's kind (4 beams for LoRA / series / parallel, else greedy); the user
   * may change it after. The choice a link restored keeps the link's decoding.
   */
  followAdapter(kind: AdapterKind | null | undefined) {
    if (this.decodingAdapterId === this.adapterId) return;
    if (this.decodingAdapterId !== null) this.numBeams = defaultBeamsFor(kind);
    this.decodingAdapterId = this.adapterId;
  }

  /** The URL hash for the current choices. */
  get hash(): string {
    const p = new URLSearchParams();
    p.set('view', this.view);
    p.set('model', this.modelId);
    p.set('prompt', this.promptId);
    if (this.adapterId !== NO_ADAPTER) p.set('adapter', this.adapterId);
    if (this.compareId) p.set('compare', this.compareId);
    if (this.compareId && this.compareAdapterId !== NO_ADAPTER) p.set('compareAdapter', this.compareAdapterId);
    if (this.promptId === CUSTOM_ID || this.compareId === CUSTOM_ID) {
      p.set('template', this.customTemplate);
      p.set('stops', this.customStops);
    }
    p.set('dataset', this.dataset);
    p.set('problem', String(this.problemIndex));
    p.set('max', String(this.maxNewTokens));
    if (this.numBeams > 1) p.set('beams', String(this.numBeams));
    if (engine.kvCache !== 'auto') p.set('kv', engine.kvCache);
    return '#' + p.toString();
  }

  /** Restore choices from a hash (unknown or malformed values are ignored; a missing or bad `beams` is greedy). */
  readHash(hash: string) {
    const p = new URLSearchParams(hash.replace(/^#/, ''));
    const known = (id: string | null) => id !== null && (id === CUSTOM_ID || PROMPT_CONFIGS.some((c) => c.id === id));
    const view = p.get('view');
    if (view && (VIEWS as string[]).includes(view)) this.view = view as View;
    const model = p.get('model');
    if (model) this.modelId = currentModelId(model);
    if (known(p.get('prompt'))) this.promptId = p.get('prompt')!;
    // Links made before adapters were named by manifest id still open (see currentAdapterId).
    this.adapterId = currentAdapterId(p.get('adapter') || NO_ADAPTER, this.modelId);
    this.compareAdapterId = currentAdapterId(p.get('compareAdapter') || NO_ADAPTER, this.modelId);
    const compare = p.get('compare');
    this.compareId = known(compare) ? compare : null;
    const template = p.get('template');
    if (template !== null) this.customTemplate = template;
    const stops = p.get('stops');
    if (stops !== null) this.customStops = stops;
    const dataset = p.get('dataset');
    if (dataset && isDatasetName(dataset)) this.dataset = dataset;
    const problem = Number(p.get('problem'));
    if (p.has('problem') && Number.isInteger(problem) && problem >= 0) this.problemIndex = problem;
    const max = Number(p.get('max'));
    if (p.has('max') && Number.isInteger(max) && max > 0 && max <= 2048) this.maxNewTokens = max;
    // Absent or malformed: greedy. The decoding belongs to the link's adapter (followAdapter leaves it).
    this.numBeams = parseBeams(p.get('beams')) ?? 1;
    this.decodingAdapterId = this.adapterId;
    // Absent or malformed: the mode's own. A loaded model switches in place (engine.chooseKvCache).
    const kv = p.get('kv');
    const option = isKvCacheOption(kv) ? kv : 'auto';
    if (option !== engine.kvCache) void engine.chooseKvCache(option);
  }
}

export const lab = new LabStore();
export { DATASET_NAMES };
