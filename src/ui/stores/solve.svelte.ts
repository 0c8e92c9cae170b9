/** The problem view's solutions: one per configuration (A, and B when comparing), solved in turn on one GPU. */
import { solveProblem, RunCancelled, type Solution } from '../../reasoning/runner.ts';
import type { PromptConfig } from '../../reasoning/prompts.ts';
import type { DatasetName, Problem } from '../../reasoning/datasets.ts';
import { engine } from './engine.svelte.ts';

export interface SolutionState {
  text: string;
  running: boolean;
  done: Solution | null;
  error: string | null;
}

const empty = (): SolutionState => ({ text: '', running: false, done: null, error: null });

class SolveStore {
  a = $state<SolutionState>(empty());
  b = $state<SolutionState>(empty());
  running = $state(false);
  private abort: AbortController | null = null;

  reset() {
    this.a = empty();
    this.b = empty();
  }

  async solve(dataset: DatasetName, problem: Problem, configs: { a: PromptConfig; b: PromptConfig | null }, maxNewTokens: number) {
    this.reset();
    this.running = true;
    const abort = (this.abort = new AbortController());
    try {
      for (const key of ['a', 'b'] as const) {
        const config = configs[key];
        if (!config || abort.signal.aborted) continue;
        const slot = this[key];
        slot.running = true;
        try {
          slot.done = await solveProblem(
            (p, o, t) => engine.generate(p, o, t, `Solving with ${config.label}`),
            config,
            dataset,
            problem,
            { maxNewTokens, signal: abort.signal, onText: (t) => (slot.text = t) },
          );
        } catch (e) {
          slot.error = e instanceof RunCancelled ? 'Stopped.' : (e as Error).message;
        } finally {
          slot.running = false;
        }
      }
    } finally {
      this.running = false;
      this.abort = null;
    }
  }

  stop() {
    this.abort?.abort();
  }
}

export const solver = new SolveStore();
