/**
 * lm-evaluation-harness' gsm8k_cot scoring, rule for rule, so our numbers can be set beside papers
 * that quote it. Sources (EleutherAI/lm-evaluation-harness):
 *  - lm_eval/tasks/gsm8k/gsm8k-cot.yaml (commit 01fe40a1f4d8e2fd9e31009f73b3aaa2be0d5128):
 *      doc_to_target: '{{answer.split('####')[-1].strip() ...}}'
 *      filter_list:
 *        strict-match:     regex "The answer is (\-?[0-9\.\,]+)." then take_first
 *        flexible-extract: regex "(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select: -1, then take_first
 *      metric_list: exact_match, ignore_case: true, ignore_punctuation: false,
 *        regexes_to_ignore: [',', '\$', '(?s).*#### ', '\.$']
 *  - lm_eval/filters/extraction.py RegexFilter (commit 03ebd203ed6ca73757d671b57e9444a952a74b5b):
 *      match = regex.findall(resp); if match: match = match[group_select]; a tuple (several groups)
 *      becomes its first non-empty element; match.strip(); no match: fallback "[invalid]".
 *  - lm_eval/api/metrics.py exact_match_hf_evaluate (ported from HF evaluate's exact_match):
 *      for s in regexes_to_ignore: re.sub(s, "", x) on predictions AND references, in order;
 *      then lower() when ignore_case; score = prediction == reference.
 * Python regex semantics that differ from JavaScript are translated explicitly (pyRegex below).
 */

/** RegexFilter's fallback when nothing matches. */
export const INVALID = '[invalid]';

export interface RegexFilterSpec {
  /** The pattern as the yaml writes it (Python syntax). */
  pattern: string;
  /** findall index: 0 = first match, -1 = last. */
  groupSelect: number;
}

export const GSM8K_COT_STRICT: RegexFilterSpec = { pattern: String.raw`The answer is (\-?[0-9\.\,]+).`, groupSelect: 0 };
export const GSM8K_COT_FLEXIBLE: RegexFilterSpec = { pattern: String.raw`(-?[$0-9.,]{2,})|(-?[0-9]+)`, groupSelect: -1 };

export interface ExactMatchSpec {
  regexesToIgnore: readonly string[];
  ignoreCase: boolean;
  ignorePunctuation: boolean;
}

export const GSM8K_COT_EXACT_MATCH: ExactMatchSpec = {
  regexesToIgnore: [',', String.raw`\$`, '(?s).*#### ', String.raw`\.$`],
  ignoreCase: true,
  ignorePunctuation: false,
};

/**
 * A Python `re` pattern as a JavaScript RegExp (global). Handles what the gsm8k_cot patterns use:
 * a leading `(?s)` (DOTALL → the `s` flag) and a final `$`, which in Python also matches just
 * before a trailing newline (JavaScript's `$` without `m` matches only at the very end). Escapes
 * such as `\-` and `\,` mean the same in both (no `u` flag, where they would be errors).
 */
export function pyRegex(pattern: string): RegExp {
  let source = pattern;
  let flags = 'g';
  if (source.startsWith('(?s)')) {
    source = source.slice(4);
    flags += 's';
  }
  if (/^\(\?[a-zA-Z]+\)/.test(source)) throw new Error(`pyRegex: inline flags other than (?s) are not supported: ${pattern}`);
  // A final `$` that is not escaped (an even number of backslashes before it).
  const tail = /(\\*)\$$/.exec(source);
  if (tail && tail[1].length % 2 === 0) source = `${source.slice(0, -1)}(?=\\n?$)`;
  return new RegExp(source, flags);
}

/** Python's re.findall: whole matches (no groups), group 1 (one group), or tuples of groups. */
function findall(re: RegExp, text: string): (string | string[])[] {
  const out: (string | string[])[] = [];
  for (const m of text.matchAll(re)) {
    if (m.length === 1) out.push(m[0]);
    else if (m.length === 2) out.push(m[1] ?? '');
    else out.push(m.slice(1).map((g) => g ?? ''));
  }
  return out;
}

/** RegexFilter.apply for one response. */
export function regexFilter(resp: string, spec: RegexFilterSpec, fallback = INVALID): string {
  const matches = findall(pyRegex(spec.pattern), resp);
  if (matches.length === 0) return fallback;
  const i = spec.groupSelect < 0 ? matches.length + spec.groupSelect : spec.groupSelect;
  // Python raises IndexError past either end; no gsm8k_cot setting gets there.
  if (i < 0 || i >= matches.length) throw new RangeError(`group_select ${spec.groupSelect} is out of range for ${matches.length} matches`);
  let match = matches[i];
  if (Array.isArray(match)) match = match.filter((g) => g !== '')[0] ?? '';
  return match.trim();
}

// string.punctuation in Python: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

/** exact_match_hf_evaluate for one (prediction, reference) pair. */
export function normalizeForExactMatch(text: string, spec: ExactMatchSpec): string {
  let s = text;
  for (const r of spec.regexesToIgnore) s = s.replace(pyRegex(r), '');
  if (spec.ignoreCase) s = s.toLowerCase();
  if (spec.ignorePunctuation) s = s.replace(PUNCTUATION, '');
  return s;
}

export function exactMatch(prediction: string, reference: string, spec: ExactMatchSpec = GSM8K_COT_EXACT_MATCH): boolean {
  return normalizeForExactMatch(prediction, spec) === normalizeForExactMatch(reference, spec);
}

/** doc_to_target of gsm8k_cot: the text after the last '####' of GSM8K's answer, stripped. */
export function gsm8kTarget(answer: string): string {
  const parts = answer.split('####');
  return parts[parts.length - 1].trim();
}
