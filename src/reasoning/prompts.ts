/**
 * Prompt configurations as data. A configuration is a template with one `{question}` placeholder
 * plus the stop sequences that end generation; `buildPrompt` substitutes the question and nothing
 * else, so the preview shows exactly what the model reads.
 */
import { GSM8K_COT_EXEMPLARS } from './exemplars.ts';
import type { Problem } from './datasets.ts';

export interface PromptConfig {
  id: string;
  label: string;
  /** A few sentences for the classroom explanation panel. */
  description: string;
  /** The paper's Llama-2-7B GSM8K accuracy (%) for this prompt on the base model, when it reports one. */
  paperGsm8k?: number;
  /** Prompt text with a single `{question}` placeholder. */
  template: string;
  /** Generation stops when the output contains one of these (the stop text itself is cut off). */
  stopSequences: string[];
  /** The hard-prompt pieces, kept so a configuration can be re-framed (see `withAlpaca`). */
  hardPrompt?: { afterQuestion?: string; answerPrefix?: string };
}

export const QUESTION_PLACEHOLDER = '{question}';

/** The Q_end hard prompt: appended after the question. */
export const Q_END_TEXT = "Let's work through this problem step-by-step:";
/** The A_begin hard prompt: the answer opens with it. */
export const A_BEGIN_TEXT = 'Take a deep breath and work on this problem step-by-step.';

/**
 * LLM-Adapters' evaluation prompt (evaluate.py `generate_prompt`, no-input branch), character for
 * character: the f-string's source indentation (16 spaces) is part of the text the adapters were
 * evaluated with, as is the single space after "request.". (Training, finetune.py, used the same
 * frame with two spaces after "request." and 16-space "blank" lines; evaluate.py is what produced the
 * paper's numbers, so it is what we reproduce.)
 * Verified against AGI-Edgerunners/LLM-Adapters evaluate.py at 32e03afa69eb56c4eb2207d7c41e8492cf4bf54c.
 */
export const ALPACA_TEMPLATE =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request. \n' +
  '\n' +
  '                ### Instruction:\n' +
  '                {question}\n' +
  '\n' +
  '                ### Response:\n' +
  '                ';

/** A line only the Alpaca frame has: "### Instruction:" behind the 16 spaces of evaluate.py's source indentation. */
const ALPACA_INDENTED_LINE = '\n                ### Instruction:\n';

/** Said wherever the Alpaca frame is shown: its indentation looks like a mistake and is not. */
export const ALPACA_INDENT_NOTE =
  "The 16-space indentation is LLM-Adapters' own (their evaluate.py's source indentation, inside the prompt string), kept on purpose: the adapters were evaluated on exactly this text.";

/** Whether a configuration's template holds LLM-Adapters' Alpaca frame (plain, with a hard prompt, or pasted into a custom one). */
export function usesAlpacaFrame(config: PromptConfig): boolean {
  return config.template.includes(ALPACA_INDENTED_LINE);
}

/** Stops for the "Q: … A: …" frame: the model starting the next question, or running on into blank lines. */
const QA_STOPS = ['\nQ:', '\n\n\n'];

const FEW_SHOT_PREFIX = GSM8K_COT_EXEMPLARS.map((e) => `Q: ${e.question}\nA: ${e.answer}\n\n`).join('');

export const BASELINE: PromptConfig = {
  id: 'baseline',
  label: 'Baseline: 8-shot chain of thought',
  description:
    'Eight worked examples (the standard GSM8K chain-of-thought exemplars of Wei et al. 2022) come before the question, ' +
    'each written as "Q: … A: …" with the reasoning spelled out and ending in "The answer is N." The model copies the pattern. ' +
    'Without the examples (zero-shot) the base model scored 0 in the paper: it rarely produced an answer at all.',
  paperGsm8k: 14.6,
  template: `${FEW_SHOT_PREFIX}Q: ${QUESTION_PLACEHOLDER}\nA:`,
  stopSequences: QA_STOPS,
};

export const ZERO_SHOT: PromptConfig = {
  id: 'zero_shot',
  label: 'Zero-shot',
  description: 'Just the question in the "Q: … A:" frame, no examples and no hint. The paper measured 0 on GSM8K for the base model.',
  paperGsm8k: 0,
  template: `Q: ${QUESTION_PLACEHOLDER}\nA:`,
  stopSequences: QA_STOPS,
};

export const Q_END: PromptConfig = {
  id: 'q_end',
  label: 'Q_end: "Let\'s work through this problem step-by-step:"',
  description:
    'A hard prompt: a fixed sentence written after the question, asking for step-by-step work. ' +
    'No examples (zero-shot); the model weights are unchanged, only the text it reads differs.',
  paperGsm8k: 15.61,
  template: `Q: ${QUESTION_PLACEHOLDER}\n${Q_END_TEXT}\nA:`,
  stopSequences: QA_STOPS,
  hardPrompt: { afterQuestion: Q_END_TEXT },
};

export const A_BEGIN: PromptConfig = {
  id: 'a_begin',
  label: 'A_begin: "Take a deep breath and work on this problem step-by-step."',
  description:
    'A hard prompt placed at the start of the answer: the model continues a response that already opens with ' +
    '"Take a deep breath and work on this problem step-by-step." Zero-shot; it was the best hard prompt in the paper.',
  paperGsm8k: 20.32,
  template: `Q: ${QUESTION_PLACEHOLDER}\nA: ${A_BEGIN_TEXT}`,
  stopSequences: QA_STOPS,
  hardPrompt: { answerPrefix: A_BEGIN_TEXT },
};

export const ALPACA: PromptConfig = {
  id: 'alpaca',
  label: 'Alpaca instruction template (LLM-Adapters)',
  description:
    'The instruction template the LoRA, series and parallel adapters were trained and evaluated with (LLM-Adapters, ' +
    'from Stanford Alpaca): the question is the "### Instruction", the model writes the "### Response". ' +
    'Use it with an adapter; the adapters learned to answer in this frame and to stop with an end-of-sequence token.',
  template: ALPACA_TEMPLATE,
  // LLM-Adapters generates until end-of-sequence (or 256 new tokens); no stop strings.
  stopSequences: [],
};

/**
 * A hard prompt inside the Alpaca frame: Q_end's sentence goes on a new line after the question
 * within the instruction; A_begin's sentence opens the response. The few-shot baseline has no Alpaca
 * form (the adapters were trained zero-shot) and plain Alpaca is returned as it is.
 */
export function withAlpaca(config: PromptConfig): PromptConfig {
  if (config.id === ALPACA.id || config.id.startsWith('alpaca+')) return config;
  if (!config.hardPrompt) throw new Error(`"${config.id}" has no Alpaca form: only hard prompts (q_end, a_begin) combine with the Alpaca template`);
  const { afterQuestion, answerPrefix } = config.hardPrompt;
  let template = ALPACA_TEMPLATE;
  if (afterQuestion) template = template.replace(QUESTION_PLACEHOLDER, () => `${QUESTION_PLACEHOLDER}\n${afterQuestion}`);
  if (answerPrefix) template += answerPrefix;
  return {
    id: `alpaca+${config.id}`,
    label: `${config.label} in the Alpaca template`,
    description: `${config.description} Here inside the Alpaca instruction template: ${
      afterQuestion ? 'the sentence follows the question in the instruction' : 'the response opens with the sentence'
    }.`,
    template,
    stopSequences: [],
    hardPrompt: config.hardPrompt,
  };
}

/** A user-written template; it must contain `{question}` once. */
export function customPrompt(template: string, stopSequences: string[] = [], id = 'custom'): PromptConfig {
  const count = template.split(QUESTION_PLACEHOLDER).length - 1;
  if (count !== 1) {
    throw new Error(`A custom template needs exactly one ${QUESTION_PLACEHOLDER} placeholder (found ${count}).`);
  }
  return {
    id,
    label: 'Custom',
    description: 'Your own template: the question replaces {question}; everything else is sent as written.',
    template,
    stopSequences: stopSequences.filter((s) => s.length > 0),
  };
}

/** Every built-in configuration, in the order the UI lists them. */
export const PROMPT_CONFIGS: readonly PromptConfig[] = [BASELINE, ZERO_SHOT, Q_END, A_BEGIN, ALPACA, withAlpaca(Q_END), withAlpaca(A_BEGIN)];

/** A built-in configuration by id ("baseline", "q_end", "alpaca+a_begin", …). */
export function getPromptConfig(id: string): PromptConfig {
  const found = PROMPT_CONFIGS.find((c) => c.id === id);
  if (!found) throw new Error(`Unknown prompt configuration "${id}". Known: ${PROMPT_CONFIGS.map((c) => c.id).join(', ')}`);
  return found;
}

/** The exact prompt text for a problem. The question is inserted verbatim (never re-scanned for placeholders). */
export function buildPrompt(config: PromptConfig, problem: Pick<Problem, 'question'>): string {
  const at = config.template.indexOf(QUESTION_PLACEHOLDER);
  if (at < 0) throw new Error(`Prompt template "${config.id}" has no ${QUESTION_PLACEHOLDER} placeholder`);
  return config.template.slice(0, at) + problem.question + config.template.slice(at + QUESTION_PLACEHOLDER.length);
}

/**
 * Where generated text should be cut: the earliest stop sequence, or -1 when none occurs.
 * Works on streamed text too: call it on the whole output so far.
 */
export function findStop(output: string, stopSequences: readonly string[]): { at: number; stop: string } | null {
  let best: { at: number; stop: string } | null = null;
  for (const stop of stopSequences) {
    const at = output.indexOf(stop);
    if (at >= 0 && (best === null || at < best.at)) best = { at, stop };
  }
  return best;
}

/** The output with everything from the first stop sequence on removed. */
export function cutAtStop(output: string, stopSequences: readonly string[]): string {
  const hit = findStop(output, stopSequences);
  return hit ? output.slice(0, hit.at) : output;
}
