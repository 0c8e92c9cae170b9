/** The problem view's solutions: one per configuration (A, and B when comparing), solved in turn on one GPU. */
import { solveProblem, RunCancelled, type Solution } from '../../reasoning/runner.ts';
import type { PromptConfig } from '../../reasoning/prompts.ts';
import type { DatasetName, Problem } from '../../reasoning/datasets.ts';
import type { Decoding } from '../../reasoning/runRecord.ts';
import { untrack } from 'svelte';
import { engine, type AdapterInfo } from './engine.svelte.ts';
import { adapters } from './adapters.svelte.ts';
import { lab } from './lab.svelte.ts';
import { promptFit } from './promptFit.svelte.ts';

export interface SolutionState {
  text: string;
  running: boolean;
  done: Solution | null;
  error: string | null;
  /** The adapter this solution was generated with (null: the base model alone). */
  adapter: AdapterInfo | null;
}

const empty = (): SolutionState => ({ text: '', running: false, done: null, error: null, adapter: null });

class SolveStore {
  a = $state<SolutionState>(empty());
  b = $state<SolutionState>(empty());
  running = $state(false);
  private abort: AbortController | null = null;

  reset() {
    this.a = empty();
    this.b = empty();
  }

  /**
   * Solve with configuration A, then B when comparing. Each side has its own adapter (a choice id
   * of stores/adapters; by default the one in use): the engine switches to it before that side's solve.
   * Both sides decode alike (greedy, or beam search: lab.decoding by default).
   */
  async solve(
    dataset: DatasetName,
    problem: Problem,
    configs: { a: PromptConfig; b: PromptConfig | null },
    maxNewTokens: number,
    adapterIds: { a: string; b: string } = { a: adapters.activeId, b: adapters.activeId },
    decoding: Decoding = lab.decoding,
  ) {
    this.reset();
    this.running = true;
    const abort = (this.abort = new AbortController());
    try {
      await adapters.withLock('Solving', () => this.solveSides(dataset, problem, configs, maxNewTokens, adapterIds, decoding, abort));
    } finally {
      this.running = false;
      this.abort = null;
    }
  }

  private async solveSides(
    dataset: DatasetName,
    problem: Problem,
    configs: { a: PromptConfig; b: PromptConfig | null },
    maxNewTokens: number,
    adapterIds: { a: string; b: string },
    decoding: Decoding,
    abort: AbortController,
  ) {
    for (const key of ['a', 'b'] as const) {
      const config = configs[key];
      if (!config || abort.signal.aborted) continue;
      const slot = this[key];
      slot.running = true;
      try {
        slot.adapter = await adapters.ensure(adapterIds[key]);
        slot.done = await solveProblem((p, o, c) => engine.generate(p, o, { ...c, label: `Solving with ${config.label}` }), config, dataset, problem, {
          maxNewTokens,
          decoding,
          signal: abort.signal,
          onText: (t) => (slot.text = t),
        });
      } catch (e) {
        slot.error = e instanceof RunCancelled ? 'Stopped.' : (e as Error).message;
      } finally {
        slot.running = false;
      }
    }
  }

  stop() {
    this.abort?.abort();
  }

  /**
   * Why the lab cannot solve `problem` now with its configuration(s), in words shown beside the
   * Solve button; null when it can. A prompt that does not fit the context is refused here, before
   * anything is sent to the engine (it would only fail there).
   */
  blockedBy(problem: Problem | null): string | null {
    if (!engine.ready) return 'Load a model above to solve.';
    if (engine.busy) return `Wait for "${engine.busy}" to finish, or stop it.`;
    if (!problem) return 'Choose a problem first.';
    const comparing = lab.compareId !== null;
    if (!lab.config || (comparing && !lab.compareConfig)) return 'Fix the custom template first.';
    const sides = comparing
      ? ([
          ['A', lab.config],
          ['B', lab.compareConfig!],
        ] as const)
      : ([['', lab.config]] as const);
    for (const [name, config] of sides) {
      const fit = promptFit.check(config, problem, lab.maxNewTokens);
      // Until counted it is not known to fit (a click then would only fail in the engine).
      if (fit.count === null) return 'Counting the prompt’s tokens…';
      if (fit.problem) return name ? `Configuration ${name}: ${fit.problem}` : fit.problem;
    }
    return null;
  }

  /**
   * The rule that a different problem or configuration makes old solutions stale (a solve going
   * on keeps its own); and that picking another adapter brings its kind's decoding (lab.followAdapter:
   * the paper's adapter rows used 4 beams). Call once (App does); returns the cleanup.
   */
  start(): () => void {
    return $effect.root(() => {
      $effect(() => {
        void [lab.dataset, lab.problemIndex, lab.promptId, lab.compareId, lab.adapterId, lab.compareAdapterId, lab.numBeams];
        untrack(() => {
          if (!this.running) this.reset();
        });
      });
      $effect(() => {
        const kind = adapters.kindOf(lab.adapterId);
        untrack(() => lab.followAdapter(kind));
      });
    });
  }
}

export const solver = new SolveStore();
