/**
 * Token counts of prompts with the loaded model's tokenizer, and whether a prompt fits its context
 * (promptFit.ts's rule): the prompt preview shows the count and the warning, the lab's Solve button
 * is disabled with the same reason. Counted once per model and text (the custom editor changes on
 * each key, so old texts are forgotten beyond a few hundred).
 */
import { buildPrompt, type PromptConfig } from '../../reasoning/prompts.ts';
import type { Problem } from '../../reasoning/datasets.ts';
import { engine } from './engine.svelte.ts';
import { promptFitProblem } from '../promptFit.ts';

export interface PromptFit {
  /** The exact prompt text. */
  text: string;
  /** Its tokens with the loaded model's tokenizer; null until counted (or with no model loaded). */
  count: number | null;
  /** The loaded model's context length, or null. */
  context: number | null;
  /** Why it cannot be solved, or null. */
  problem: string | null;
}

const KEEP = 256;

class PromptFitStore {
  private counts = $state<Record<string, number>>({});
  private asked = new Set<string>();

  /** The token count of `text` for the loaded model (null until the worker has counted it). */
  count(text: string): number | null {
    if (!engine.ready || !engine.model || !engine.info) return null;
    const key = `${engine.model.id}\n${engine.info.contextLength}\n${text}`;
    const known = this.counts[key];
    if (known !== undefined) return known;
    if (!this.asked.has(key)) {
      this.asked.add(key);
      // Counted later (never written while a derived value reads it).
      engine.tokenize(text).then(
        (ids) => {
          if (this.asked.size > KEEP) {
            this.asked = new Set([key]);
            this.counts = { [key]: ids.length };
          } else this.counts[key] = ids.length;
        },
        () => this.asked.delete(key),
      );
    }
    return null;
  }

  /** The prompt for `config` and `problem` (its placeholder when none), its count, and whether it fits. */
  check(config: PromptConfig, problem: Problem | null, maxNewTokens: number): PromptFit {
    const text = buildPrompt(config, problem ?? { question: '{question}' });
    const count = this.count(text);
    const context = engine.ready ? (engine.info?.contextLength ?? null) : null;
    return { text, count, context, problem: promptFitProblem(count, maxNewTokens, context) };
  }
}

export const promptFit = new PromptFitStore();
