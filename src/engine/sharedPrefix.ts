/**
 * The prompt prefix a batch can prefill once. GSM8K's 8-shot prompts share their ~800 tokens of
 * exemplars and differ only in the question; the Alpaca template shares its preamble. The
 * continuous batcher (engine.ts) prefills that prefix into the first slot it uses and gives every
 * other sequence a copy of its KV rows (LlamaModel.copySlot) or, in a slot that held it before,
 * keeps them (LlamaModel.rewind), then prefills only the sequence's own tokens.
 *
 * Why whole prefill chunks: a prompt alone is prefilled in chunks of `chunk` rows from position 0,
 * and a kernel may be chosen by a call's row count (a few rows take the decode kernels). Cutting
 * the prefix at a chunk boundary makes every row go through exactly the call it would go through
 * alone, so each sequence's cache, logits and greedy ids are bit for bit those of its prompt alone.
 */

/** Length of the longest common prefix of token id lists (0 for fewer than two). */
export function commonPrefixLength(prompts: readonly (readonly number[])[]): number {
  if (prompts.length < 2) return 0;
  let n = Math.min(...prompts.map((p) => p.length));
  const first = prompts[0];
  for (const p of prompts) {
    let i = 0;
    while (i < n && p[i] === first[i]) i++;
    n = i;
    if (n === 0) break;
  }
  return n;
}

/**
 * Tokens of the prompts' common prefix that a batch prefills once: whole chunks of `chunk`, and
 * short of every prompt's end, so each prompt still prefills at least its last token (its logits
 * give the first new token).
 */
export function sharedPrefixLength(prompts: readonly (readonly number[])[], chunk: number): number {
  if (!Number.isInteger(chunk) || chunk <= 0) throw new Error(`sharedPrefixLength needs a positive whole chunk, not ${chunk}.`);
  if (prompts.length < 2) return 0;
  const shortest = Math.min(...prompts.map((p) => p.length));
  const common = Math.min(commonPrefixLength(prompts), shortest - 1);
  return Math.max(0, Math.floor(common / chunk) * chunk);
}
