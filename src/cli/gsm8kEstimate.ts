/**
 * The full GSM8K test set (1319 problems, 8-shot prompts of about 900 tokens, at most 256 new
 * tokens, batches of 32) through the engine, estimated from one run's measured prefill rate and
 * batch-32 greedy step time (npm run bench, the device kit). An upper bound: every answer is taken
 * to run to 256 tokens. The exemplars every prompt shares are prefilled once (sharedPrefix.ts), and
 * each problem prefills only the rest. On a software adapter the number describes that adapter, not a GPU, and
 * says so in its label.
 */
export interface Gsm8kEstimate {
  problems: number;
  promptTokens: number;
  /** Of promptTokens, those every prompt shares, prefilled once for the whole test set. */
  sharedPrefixTokens: number;
  maxNewTokens: number;
  batch: number;
  prefillSeconds: number;
  decodeSeconds: number;
  totalSeconds: number;
  /** Measured on a software adapter (SwiftShader): not a GPU's number. */
  software: boolean;
  /** "SwiftShader number (software adapter), not a GPU's" or "GPU number". */
  label: string;
  basis: string;
}

export const GSM8K_TEST_PROBLEMS = 1319;
export const GSM8K_PROMPT_TOKENS = 900; // 8 exemplars of the baseline prompt and a question
/**
 * The baseline prompts of data/gsm8k/test.jsonl share their first 2144 characters, 0.898 of the
 * mean prompt's 2387 (shared-prefix.test.ts recomputes it): 0.898 x 900 = 808 tokens, of which the
 * engine reuses whole 128-token prefill chunks (DEFAULT_PREFILL_CHUNK), 768.
 */
export const GSM8K_SHARED_PREFIX_TOKENS = 768;
export const GSM8K_MAX_NEW_TOKENS = 256;
export const GSM8K_BATCH = 32;

export function gsm8kEstimate(prefillTokensPerSecond: number, batch32GreedyMsPerStep: number, measuredPromptLen: number, software: boolean): Gsm8kEstimate {
  const problems = GSM8K_TEST_PROBLEMS;
  const promptTokens = GSM8K_PROMPT_TOKENS;
  const maxNewTokens = GSM8K_MAX_NEW_TOKENS;
  const batch = GSM8K_BATCH;
  const sharedPrefixTokens = GSM8K_SHARED_PREFIX_TOKENS;
  const prefillSeconds = (sharedPrefixTokens + problems * (promptTokens - sharedPrefixTokens)) / prefillTokensPerSecond;
  const decodeSeconds = (Math.ceil(problems / batch) * maxNewTokens * batch32GreedyMsPerStep) / 1000;
  return {
    problems,
    promptTokens,
    sharedPrefixTokens,
    maxNewTokens,
    batch,
    prefillSeconds,
    decodeSeconds,
    totalSeconds: prefillSeconds + decodeSeconds,
    software,
    label: software ? "SwiftShader number (software adapter), not a GPU's" : 'GPU number',
    basis: `upper bound: every answer runs to ${maxNewTokens} tokens; the ${sharedPrefixTokens} shared prompt tokens prefilled once, the other ${promptTokens - sharedPrefixTokens} per problem, at the ${measuredPromptLen}-token rate, each step at the batch-32 greedy step time measured from position ${measuredPromptLen}`,
  };
}
