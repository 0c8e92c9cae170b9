/**
 * Test oracle for beam search: a literal, plain-TypeScript port of Hugging Face transformers'
 * beam search as LLM-Adapters ran it (transformers from git in spring 2023, v4.28/v4.29):
 * `src/transformers/generation/beam_search.py` `BeamHypotheses` and `BeamSearchScorer.process` /
 * `finalize` (the same from v4.26 to v4.34), and `generation/utils.py` `GenerationMixin.beam_search`
 * (v4.28) for batch_size 1, num_beam_groups 1, num_beam_hyps_to_keep 1, no logits processors.
 *
 * It shares no code with the engine's beamSearch.ts (that is the point: a wrong scorer there shows
 * up as a mismatch here), and it has no KV cache to reorder: every step it recomputes each beam's
 * next-token logits from the beam's whole `input_ids` (prompt included), as a model without a
 * cache would. Python names are kept where they help line the two up.
 */
import type { ReferenceLlama } from './reference.ts';

/** The next-token logits after a whole sequence (prompt + generated so far). [vocab] */
export type NextTokenLogits = (inputIds: number[]) => Float32Array;

/** The reference model as a NextTokenLogits: a fresh cache and the whole sequence every call. */
export function referenceNextTokenLogits(model: ReferenceLlama): NextTokenLogits {
  return (inputIds) => {
    model.reset();
    return model.forward(inputIds);
  };
}

/** `BeamHypotheses` (beam_search.py): n-best list of finished hypotheses. */
class BeamHypotheses {
  beams: [score: number, hyp: number[]][] = [];
  worst_score = 1e9;

  constructor(
    readonly num_beams: number,
    readonly length_penalty: number,
  ) {}

  get length() {
    return this.beams.length;
  }

  add(hyp: number[], sum_logprobs: number) {
    // score = sum_logprobs / (hyp.shape[-1] ** self.length_penalty): hyp is input_ids[beam], prompt included.
    const score = sum_logprobs / Math.pow(hyp.length, this.length_penalty);
    if (this.length < this.num_beams || score > this.worst_score) {
      this.beams.push([score, hyp]);
      if (this.length > this.num_beams) {
        // sorted([(s, idx) for idx, (s, _, _) in enumerate(self.beams)]): by score, then index
        const sorted_next_scores = this.beams.map(([s], idx) => [s, idx] as const).sort((a, b) => (a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1]));
        this.beams.splice(sorted_next_scores[0][1], 1);
        this.worst_score = sorted_next_scores[1][0];
      } else {
        this.worst_score = Math.min(score, this.worst_score);
      }
    }
  }

  /** early_stopping is False: the `cur_len` heuristic. */
  is_done(best_sum_logprobs: number, cur_len: number): boolean {
    if (this.length < this.num_beams) return false;
    const highest_attainable_score = best_sum_logprobs / Math.pow(cur_len, this.length_penalty);
    return this.worst_score >= highest_attainable_score;
  }
}

export interface ReferenceBeamResult {
  /** `sequences[0]` minus the prompt: generated ids, eos_token_id[0] appended when it fits. */
  ids: number[];
  /** `sequences_scores[0]`: the best hypothesis' score. */
  score: number;
}

/**
 * `model.generate(input_ids, GenerationConfig(num_beams=N), max_new_tokens=M)` for one prompt,
 * with `eos_token_id` the given list (transformers appends eos_token_id[0] to a finished hypothesis).
 */
export function referenceBeamSearch(
  nextTokenLogits: NextTokenLogits,
  prompt: number[],
  num_beams: number,
  max_new_tokens: number,
  eos_token_id: number[],
  length_penalty = 1.0,
): ReferenceBeamResult {
  const max_length = prompt.length + max_new_tokens; // generation_config.max_length
  const beam_hyp = new BeamHypotheses(num_beams, length_penalty);
  let done = false;
  // _expand_inputs_for_generation: num_beams copies of the prompt.
  let input_ids: number[][] = Array.from({ length: num_beams }, () => [...prompt]);
  // beam_scores[:, 1:] = -1e9
  let beam_scores: number[] = Array.from({ length: num_beams }, (_, i) => (i === 0 ? 0 : -1e9));
  let final_beam_scores: number[];
  for (;;) {
    const cur_len = input_ids[0].length;
    // next_token_scores = log_softmax(logits[:, -1, :]) + beam_scores[:, None], flattened over num_beams * vocab
    const flat: number[] = [];
    let vocab_size = 0;
    for (let b = 0; b < num_beams; b++) {
      const logits = nextTokenLogits(input_ids[b]);
      vocab_size = logits.length;
      let m = -Infinity;
      for (const x of logits) m = Math.max(m, x);
      let z = 0;
      for (const x of logits) z += Math.exp(x - m);
      const lse = m + Math.log(z);
      for (const x of logits) flat.push(x - lse + beam_scores[b]);
    }
    // torch.topk(next_token_scores, 2 * num_beams, largest=True, sorted=True)
    const order = flat.map((_, i) => i).sort((a, b) => (flat[b] !== flat[a] ? flat[b] - flat[a] : a - b));
    const top = order.slice(0, 2 * num_beams);
    const next_scores = top.map((i) => flat[i]);
    const next_indices = top.map((i) => Math.floor(i / vocab_size));
    const next_tokens = top.map((i) => i % vocab_size);

    // BeamSearchScorer.process
    const next_beam_scores: number[] = [];
    const next_beam_tokens: number[] = [];
    const next_beam_indices: number[] = [];
    for (let beam_token_rank = 0; beam_token_rank < top.length; beam_token_rank++) {
      const next_token = next_tokens[beam_token_rank];
      const next_score = next_scores[beam_token_rank];
      const next_index = next_indices[beam_token_rank];
      if (eos_token_id.includes(next_token)) {
        if (beam_token_rank >= num_beams) continue;
        beam_hyp.add([...input_ids[next_index]], next_score);
      } else {
        next_beam_scores.push(next_score);
        next_beam_tokens.push(next_token);
        next_beam_indices.push(next_index);
      }
      if (next_beam_scores.length === num_beams) break;
    }
    if (next_beam_scores.length < num_beams) throw new Error(`At most ${num_beams} tokens in ${next_tokens} can be equal to eos_token_id ${eos_token_id}`);
    done = done || beam_hyp.is_done(Math.max(...next_scores), cur_len);

    // input_ids = torch.cat([input_ids[beam_idx, :], beam_next_tokens.unsqueeze(-1)], dim=-1)
    beam_scores = next_beam_scores;
    input_ids = next_beam_indices.map((idx, j) => [...input_ids[idx], next_beam_tokens[j]]);
    final_beam_scores = beam_scores;
    // if beam_scorer.is_done or stopping_criteria(input_ids, scores): break  (MaxLengthCriteria)
    if (done || input_ids[0].length >= max_length) break;
  }

  // BeamSearchScorer.finalize
  if (!done) for (let beam_id = 0; beam_id < num_beams; beam_id++) beam_hyp.add(input_ids[beam_id], final_beam_scores[beam_id]);
  // sorted(beam_hyp.beams, key=lambda x: x[0]).pop(): a stable sort, so the last of equal scores
  const sorted_hyps = beam_hyp.beams.map((h, i) => ({ h, i })).sort((a, b) => (a.h[0] !== b.h[0] ? a.h[0] - b.h[0] : a.i - b.i));
  const [best_score, best_hyp] = sorted_hyps[sorted_hyps.length - 1].h;
  const sent_max_len = Math.min(best_hyp.length + 1, max_length);
  const sequence = [...best_hyp];
  if (best_hyp.length < sent_max_len) sequence.push(eos_token_id[0]);
  return { ids: sequence.slice(prompt.length), score: best_score };
}
