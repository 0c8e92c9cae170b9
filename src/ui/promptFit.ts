/**
 * Whether a prompt can be solved in the loaded model's context: the rule the prompt preview warns
 * with and the Solve button obeys (plain function, so both say the same thing).
 */

/**
 * Why a prompt of `promptTokens` tokens plus `maxNewTokens` new ones cannot be solved in a
 * `contextLength`-token context, or null when it fits (or is not counted yet: nothing to say).
 */
export function promptFitProblem(promptTokens: number | null, maxNewTokens: number, contextLength: number | null): string | null {
  if (promptTokens === null || contextLength === null) return null;
  if (promptTokens + maxNewTokens <= contextLength) return null;
  const room = contextLength - promptTokens;
  const advice = room > 0 ? `Choose a shorter configuration or at most ${room} new tokens.` : 'Choose a shorter configuration.';
  return `This prompt (${promptTokens} tokens) plus ${maxNewTokens} new tokens does not fit this model's ${contextLength}-token context. ${advice}`;
}
