/**
 * Beam search with the semantics of Hugging Face transformers' `BeamSearchScorer`, as LLM-Adapters'
 * evaluate.py ran it (`GenerationConfig(temperature=0.1, top_p=0.75, top_k=40, num_beams=4)`,
 * `max_new_tokens=256`, no `do_sample`; AGI-Edgerunners/LLM-Adapters evaluate.py at 32e03afa).
 * LLM-Adapters' requirements.txt installs transformers from git; in spring 2023 that is v4.28/v4.29.
 * The rules below are those of transformers `src/transformers/generation/beam_search.py`
 * (`BeamSearchScorer.process` / `finalize`, `BeamHypotheses.add` / `is_done`: unchanged from v4.26,
 * which added the tri-state `early_stopping`, until v4.35, which added `decoder_prompt_len`) and of
 * `generation/utils.py` `GenerationMixin.beam_search` (v4.28):
 *
 * - Plain beam search: with `do_sample` False, `generate()` takes the `is_beam_gen_mode` path and
 *   calls `beam_search(..., logits_processor=...)` with no logits warper, so temperature, top_k
 *   and top_p do nothing (they only apply in `beam_sample`). The processors a bare
 *   GenerationConfig builds are none, so a beam's token scores are log_softmax(logits).
 * - Beam scores: the summed log-probabilities of the generated tokens. Beams start as N copies of
 *   the prompt with scores [0, -1e9, -1e9, ...], so the first step's candidates come from beam 0.
 * - Each step takes the top 2N of beamScore[b] + logprob[b][v] over all N·vocab pairs, best first.
 *   Walking them in rank order: a stop token (EOS) at rank < N ends that beam's hypothesis, which
 *   is added to the finished list; a stop token at rank >= N is skipped; any other token becomes
 *   a live beam, until N are live. Fewer than N non-stop tokens among the 2N is an error.
 * - A finished hypothesis is `input_ids[beam]` at that step: the prompt and the generated tokens,
 *   WITHOUT the stop token. Its score is sum_logprobs / len^length_penalty (length_penalty 1.0)
 *   where len is that whole length, prompt included (v4.35 changed it to generated tokens only).
 * - The finished list keeps the N best (`BeamHypotheses.add`: a new one enters while fewer than N
 *   are kept or when it beats the worst; the worst is then dropped).
 * - After each step, with `early_stopping=False`: done when N hypotheses are kept and the worst
 *   kept score >= best / cur_len^length_penalty, where best is the highest of the step's 2N
 *   candidate scores (stop tokens included) and cur_len is the length before this step's token
 *   was appended (the prompt plus the tokens generated so far).
 * - Otherwise the search ends when prompt + generated reaches max_length = prompt + max_new_tokens
 *   (MaxLengthCriteria); then `finalize` adds the N live beams (score sum / max_length^lp).
 * - The result is the best kept hypothesis (`sorted(...).pop()`: among equal scores the one added
 *   last). transformers then appends eos_token_id[0] when it fits (a finished hypothesis); we
 *   return the stop token that actually ended it (the same id when there is one stop id).
 *
 * The model is reached through `BeamStepper`: beams are slots of a batch, and forking a beam copies
 * its KV cache rows into another slot (transformers reorders `past_key_values` by beam index).
 */

/** What beam search needs from a model: a batch of slots, each holding one sequence's cache. */
export interface BeamStepper {
  /** Empty `slot` and run `promptIds` into it; the logits of its last token. [vocab] */
  prefill(slot: number, promptIds: number[]): Promise<Float32Array>;
  /** Make slot `to` hold the first `length` tokens of slot `from` (which is left as it is). */
  fork(from: number, to: number, length: number): void;
  /** Append one token to each entry's slot; each entry's logits for the next token, in order. */
  step(entries: { slot: number; token: number }[]): Promise<Float32Array[]>;
}

export interface BeamSearchOptions {
  numBeams: number;
  maxNewTokens: number;
  /** Token ids that end a hypothesis (transformers' eos_token_id list). */
  stopTokenIds: number[];
  /** transformers' length_penalty (1.0 in LLM-Adapters' runs). */
  lengthPenalty?: number;
  signal?: AbortSignal;
  /** After each step: the live beams (generated ids, summed log-probabilities), best first. */
  onStep?: (step: number, beams: { ids: number[]; score: number }[]) => void;
}

export interface BeamSearchResult {
  /** Generated ids of the best hypothesis, with its stop token last when one ended it. */
  ids: number[];
  /** Its score: summed log-probabilities / (prompt + generated without the stop token)^lengthPenalty. */
  score: number;
  /** 'eos': a stop token ended it; 'length': it reached maxNewTokens; 'cancelled': the signal fired. */
  stopReason: 'eos' | 'length' | 'cancelled';
  /** Decode steps run (batched steps of N beams; the prefill not counted). */
  steps: number;
}

/** The sentinel score of beams 1.. at the start (transformers: `beam_scores[:, 1:] = -1e9`). */
const DEAD_BEAM_SCORE = -1e9;

/** log_softmax in f64 over f32 logits. [vocab] */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logZ;
  return out;
}

interface Candidate {
  score: number;
  beam: number;
  token: number;
}

/**
 * The k best (beamScore[b] + rows[b][v]) over all beams and tokens, best first; equal scores keep
 * the lower flat index (beam·vocab + token) first. A bounded insertion list: k is 2N, tiny beside N·vocab.
 */
export function topCandidates(beamScores: number[], rows: Float64Array[], k: number): Candidate[] {
  const best: Candidate[] = [];
  for (let b = 0; b < rows.length; b++) {
    const row = rows[b];
    const base = beamScores[b];
    for (let v = 0; v < row.length; v++) {
      const s = base + row[v];
      if (best.length === k && s <= best[k - 1].score) continue;
      let i = best.length < k ? best.length : k - 1;
      while (i > 0 && best[i - 1].score < s) i--;
      best.splice(i, 0, { score: s, beam: b, token: v });
      if (best.length > k) best.pop();
    }
  }
  return best;
}

/** transformers' BeamHypotheses: the numBeams best finished hypotheses. */
class FinishedHypotheses {
  /** In insertion order, as transformers keeps `self.beams`. */
  readonly kept: { score: number; ids: number[]; stop: number | null }[] = [];
  private worst = 1e9;

  constructor(
    private readonly numBeams: number,
    private readonly lengthPenalty: number,
  ) {}

  /** `length`: the whole hypothesis, prompt included, stop token excluded. */
  add(ids: number[], stop: number | null, sumLogprobs: number, length: number) {
    const score = sumLogprobs / length ** this.lengthPenalty;
    if (this.kept.length < this.numBeams || score > this.worst) {
      this.kept.push({ score, ids, stop });
      if (this.kept.length > this.numBeams) {
        // Drop the worst (the earliest added among equals); the worst is then the next one up.
        const order = this.kept.map((h, i) => ({ s: h.score, i })).sort((a, b) => a.s - b.s || a.i - b.i);
        this.kept.splice(order[0].i, 1);
        this.worst = order[1].s;
      } else {
        this.worst = Math.min(score, this.worst);
      }
    }
  }

  /** early_stopping=False: no live beam can still beat the worst kept one (by the cur_len heuristic). */
  isDone(bestSumLogprobs: number, curLen: number): boolean {
    if (this.kept.length < this.numBeams) return false;
    return this.worst >= bestSumLogprobs / curLen ** this.lengthPenalty;
  }

  /** The best kept hypothesis: among equal scores the one added last (transformers' sorted().pop()). */
  best() {
    let best = this.kept[0];
    for (const h of this.kept) if (h.score >= best.score) best = h;
    return best;
  }
}

/** A live beam: the slot holding its cache, its generated ids, its summed log-probabilities. */
interface Beam {
  slot: number;
  ids: number[];
  score: number;
}

/**
 * Beam search after `promptIds` over slots 0..numBeams-1 of `stepper`. The caller checks that the
 * prompt plus maxNewTokens fits the context and that numBeams slots exist.
 */
export async function beamSearch(stepper: BeamStepper, promptIds: number[], opts: BeamSearchOptions): Promise<BeamSearchResult> {
  const N = opts.numBeams;
  if (!Number.isInteger(N) || N < 1) throw new RangeError(`numBeams must be a whole number of at least 1, not ${N}.`);
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1)
    throw new RangeError(`maxNewTokens must be a whole number of at least 1, not ${opts.maxNewTokens}.`);
  if (promptIds.length === 0) throw new RangeError('Beam search needs a prompt of at least one token.');
  const lp = opts.lengthPenalty ?? 1.0;
  const stop = new Set(opts.stopTokenIds);
  const P = promptIds.length;
  const maxLength = P + opts.maxNewTokens;
  const finished = new FinishedHypotheses(N, lp);

  // Every beam starts as the prompt; only slot 0 is filled, the others fork from it as needed.
  const first = logSoftmax(await stepper.prefill(0, promptIds));
  let beams: Beam[] = Array.from({ length: N }, (_, b) => ({ slot: 0, ids: [], score: b === 0 ? 0 : DEAD_BEAM_SCORE }));
  let rows: Float64Array[] = beams.map(() => first);
  let done = false;
  let cancelled = false;
  let steps = 0;
  // curLen: transformers' input_ids.shape[-1] before this step's token is appended.
  for (let curLen = P; ;) {
    const candidates = topCandidates(
      beams.map((b) => b.score),
      rows,
      2 * N,
    );
    const next: { from: Beam; token: number; score: number }[] = [];
    for (const [rank, c] of candidates.entries()) {
      const from = beams[c.beam];
      if (stop.has(c.token)) {
        if (rank >= N) continue;
        finished.add(from.ids, c.token, c.score, curLen);
      } else {
        next.push({ from, token: c.token, score: c.score });
      }
      if (next.length === N) break;
    }
    if (next.length < N) {
      throw new RangeError(
        `At most ${N} of the ${2 * N} best next tokens (${candidates.map((c) => c.token).join(', ')}) can be stop tokens (${[...stop].join(', ')}): fewer stop ids, or fewer beams.`,
      );
    }
    done ||= finished.isDone(candidates[0].score, curLen);
    curLen += 1;

    // The new beams' caches: the first child of a beam keeps its slot; the others take slots no
    // parent of this step holds, and copy the parent's cache (its prompt and ids) there first.
    const parentSlots = new Set(next.map((n) => n.from.slot));
    const spare = Array.from({ length: N }, (_, s) => s).filter((s) => !parentSlots.has(s));
    const claimed = new Set<number>();
    const forks: { from: number; to: number; length: number }[] = [];
    beams = next.map((n) => {
      let slot = n.from.slot;
      if (claimed.has(slot)) {
        slot = spare.shift()!;
        forks.push({ from: n.from.slot, to: slot, length: P + n.from.ids.length });
      }
      claimed.add(slot);
      return { slot, ids: [...n.from.ids, n.token], score: n.score };
    });
    opts.onStep?.(
      steps,
      beams.map((b) => ({ ids: b.ids, score: b.score })),
    );

    if (done || curLen >= maxLength) break;
    if (opts.signal?.aborted) {
      cancelled = true;
      break;
    }
    for (const f of forks) stepper.fork(f.from, f.to, f.length);
    const logits = await stepper.step(beams.map((b) => ({ slot: b.slot, token: b.ids[b.ids.length - 1] })));
    rows = logits.map(logSoftmax);
    steps++;
  }
  // finalize: unless done, the live beams join the finished ones (at their whole length).
  if (!done) for (const b of beams) finished.add(b.ids, null, b.score, P + b.ids.length);
  const best = finished.best();
  return {
    ids: best.stop === null ? best.ids : [...best.ids, best.stop],
    score: best.score,
    stopReason: best.stop !== null ? 'eos' : cancelled ? 'cancelled' : 'length',
    steps,
  };
}
