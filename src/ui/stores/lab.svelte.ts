/**
 * The lab's choices: prompt configuration(s), custom template, dataset and problem, generation
 * length. Mirrored into the URL hash so a link restores them (see shareHash / readHash).
 */
import { customPrompt, getPromptConfig, PROMPT_CONFIGS, type PromptConfig } from '../../reasoning/prompts.ts';
import { DATASET_NAMES, isDatasetName, type DatasetName } from '../../reasoning/datasets.ts';
import { currentAdapterId, currentModelId, DEFAULT_MODEL_ID, NO_ADAPTER } from '../adapterChoices.ts';

export const CUSTOM_ID = 'custom';
export { NO_ADAPTER };
export type View = 'generate' | 'lab' | 'accuracy' | 'models';
export const VIEWS: View[] = ['generate', 'lab', 'accuracy', 'models'];

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

  readonly resolved = $derived(resolve(this.promptId, this.customTemplate, this.customStops));
  readonly config = $derived(this.resolved.config);
  readonly compareResolved = $derived(this.compareId === null ? null : resolve(this.compareId, this.customTemplate, this.customStops));
  readonly compareConfig = $derived(this.compareResolved?.config ?? null);

  /** Compare side by side (B starts on another hard prompt, with A's adapter), or stop comparing. */
  setComparing(on: boolean) {
    this.compareId = on ? (this.promptId === 'a_begin' ? 'q_end' : 'a_begin') : null;
    if (on) this.compareAdapterId = this.adapterId;
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
    return '#' + p.toString();
  }

  /** Restore choices from a hash (unknown or malformed values are ignored). */
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
  }
}

export const lab = new LabStore();
export { DATASET_NAMES };
