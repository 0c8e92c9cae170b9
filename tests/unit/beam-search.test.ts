/**
 * The beam search scorer (src/engine/beamSearch.ts) on hand-built "logits table" models: the
 * next-token logits are a function of the whole sequence, so every answer can be checked by
 * enumerating all sequences, and the stepper derives each step's logits from what its slots hold
 * (a wrong fork shows up as wrong logits). Oracles: exhaustive enumeration under transformers'
 * scoring rule, and the literal port of transformers' beam search (src/engine/referenceBeamSearch.ts).
 */
import { describe, it, expect } from 'vitest';
import { beamSearch, logSoftmax, topCandidates, type BeamStepper } from '../../src/engine/beamSearch.ts';
import { referenceBeamSearch, type NextTokenLogits } from '../../src/engine/referenceBeamSearch.ts';
import { Rng } from '../../src/formats/random.ts';

const EOS = 0;

/** Random logits for every sequence, fixed by (seed, sequence). */
function randomTable(seed: number, vocab: number, spread = 3): NextTokenLogits {
  const cache = new Map<string, Float32Array>();
  return (seq) => {
    const key = seq.join(',');
    let row = cache.get(key);
    if (!row) {
      let h = seed >>> 0;
      for (const t of seq) h = (Math.imul(h ^ (t + 1), 0x9e3779b1) + 0x7f4a7c15) >>> 0;
      const rng = new Rng(h);
      row = Float32Array.from({ length: vocab }, () => rng.uniform(-spread, spread));
      cache.set(key, row);
    }
    return row;
  };
}

/** Logits from probabilities given per sequence (by its generated part); unlisted: uniform. */
function probTable(promptLength: number, vocab: number, probs: Record<string, number[]>): NextTokenLogits {
  return (seq) => {
    const p = probs[seq.slice(promptLength).join(',')] ?? Array(vocab).fill(1 / vocab);
    return Float32Array.from(p, Math.log);
  };
}

/** A BeamStepper over a table: each slot holds its token list; counts the calls. */
function tableStepper(table: NextTokenLogits, slots: number) {
  const held: (number[] | null)[] = Array(slots).fill(null);
  const calls = { prefill: 0, fork: 0, step: 0 };
  const stepper: BeamStepper = {
    async prefill(slot, ids) {
      calls.prefill++;
      held[slot] = [...ids];
      return table(held[slot]);
    },
    fork(from, to, length) {
      calls.fork++;
      expect(from).not.toBe(to);
      expect(length).toBeLessThanOrEqual(held[from]!.length);
      held[to] = held[from]!.slice(0, length);
    },
    async step(entries) {
      calls.step++;
      expect(new Set(entries.map((e) => e.slot)).size).toBe(entries.length);
      return entries.map((e) => {
        if (e.slot >= slots) throw new Error(`slot ${e.slot} outside ${slots}`);
        held[e.slot]!.push(e.token);
        return table(held[e.slot]!);
      });
    },
  };
  return { stepper, calls };
}

/**
 * Every possible output and its transformers score: a sequence ended by EOS after k tokens scores
 * sum(logprobs, EOS's included) / (prompt + k)  (the hypothesis excludes EOS, includes the prompt);
 * one that runs to maxNew tokens scores sum / (prompt + maxNew). The best (ties: first found).
 */
function exhaustiveBest(table: NextTokenLogits, prompt: number[], vocab: number, maxNew: number, stop: number[]) {
  let best = { ids: [] as number[], score: -Infinity };
  const walk = (gen: number[], sum: number) => {
    const lp = logSoftmax(table([...prompt, ...gen]));
    for (let v = 0; v < vocab; v++) {
      const s = sum + lp[v];
      const ids = [...gen, v];
      if (stop.includes(v)) {
        const score = s / (prompt.length + gen.length);
        if (score > best.score) best = { ids, score };
      } else if (ids.length === maxNew) {
        const score = s / (prompt.length + maxNew);
        if (score > best.score) best = { ids, score };
      } else walk(ids, s);
    }
  };
  walk([], 0);
  return best;
}

/** Greedy decoding over a table: argmax (lowest id on ties) until EOS or maxNew. */
function greedy(table: NextTokenLogits, prompt: number[], maxNew: number, stop: number[]): number[] {
  const out: number[] = [];
  while (out.length < maxNew) {
    const row = table([...prompt, ...out]);
    let a = 0;
    for (let i = 1; i < row.length; i++) if (row[i] > row[a]) a = i;
    out.push(a);
    if (stop.includes(a)) break;
  }
  return out;
}

async function run(table: NextTokenLogits, prompt: number[], numBeams: number, maxNewTokens: number, stop = [EOS]) {
  // Slots for the beams (a bad numBeams gets one: the search must refuse it before using any).
  const { stepper, calls } = tableStepper(table, Number.isInteger(numBeams) && numBeams > 0 ? numBeams : 1);
  const r = await beamSearch(stepper, prompt, { numBeams, maxNewTokens, stopTokenIds: stop });
  return { ...r, calls };
}

describe('topCandidates', () => {
  it('returns the k best beam + token sums over all beams, best first, lower flat index first on ties', () => {
    const rows = [Float64Array.from([-1, -3, -0.5]), Float64Array.from([-0.2, -1, -1])];
    const got = topCandidates([0, -1], rows, 4);
    // sums: beam0 [-1, -3, -0.5], beam1 [-1.2, -2, -2]
    expect(got.map((c) => [c.beam, c.token, c.score])).toEqual([
      [0, 2, -0.5],
      [0, 0, -1],
      [1, 0, -1.2],
      [1, 1, -2],
    ]);
  });
});

describe('beam search against exhaustive enumeration (transformers scoring)', () => {
  it('a beam of 2 finds the best sequence where greedy decoding does not', async () => {
    // Token 1 is likelier first (0.5 against 0.4), but 2 then 1 (0.4 × 0.9) beats 1 then anything (0.5 × 0.36).
    const prompt = [1];
    const table = probTable(1, 3, {
      '': [0.1, 0.5, 0.4],
      '1': [0.3, 0.36, 0.34],
      '2': [0.05, 0.9, 0.05],
    });
    const best = exhaustiveBest(table, prompt, 3, 2, [EOS]);
    expect(best.ids).toEqual([2, 1]);
    const g = greedy(table, prompt, 2, [EOS]);
    expect(g).toEqual([1, 1]);
    const beam2 = await run(table, prompt, 2, 2);
    expect(beam2.ids).toEqual(best.ids);
    expect(beam2.score).toBeCloseTo(best.score, 12);
    expect(beam2.stopReason).toBe('length');
    // One beam is greedy decoding.
    const beam1 = await run(table, prompt, 1, 2);
    expect(beam1.ids).toEqual(g);
  });

  it('a finished hypothesis is scored over the prompt and its tokens, EOS excluded (two cases that tell the rules apart)', async () => {
    // Prompt of 4 tokens, 3 new at most. A = [1, EOS] ends early with log-prob sum -1 (0.6 × 0.6131);
    // B = [2, 1, 2] runs to the limit with sum sB (0.399 × q × q). transformers divides by the
    // hypothesis length, prompt included and EOS not: A by 4 + 1, B by 4 + 3.
    const prompt = [1, 2, 1, 2];
    const table = (q: number) =>
      probTable(4, 3, {
        '': [0.001, 0.6, 0.399],
        '1': [0.6131, 0.1935, 0.1934],
        '2': [0.001, q, 0.999 - q],
        '2,1': [0.001, 0.999 - q, q],
      });
    const sA = Math.log(0.6 * 0.6131);
    // sB = -1.45: -1/5 > -1.45/7, so A; dividing by generated tokens only (1 and 3) would pick B.
    // sB = -1.3: -1.3/7 > -1/5, so B; counting EOS in A's length (6) would pick A.
    for (const { sB, want, otherRule } of [
      { sB: -1.45, want: [1, EOS], otherRule: (sB1) => sB1 / 3 > sA / 1 },
      { sB: -1.3, want: [2, 1, 2], otherRule: (sB1) => sA / 6 > sB1 / 7 },
    ] as { sB: number; want: number[]; otherRule: (sB: number) => boolean }[]) {
      const q = Math.sqrt(Math.exp(sB) / 0.399);
      const t = table(q);
      expect(otherRule(sB)).toBe(true);
      const best = exhaustiveBest(t, prompt, 3, 3, [EOS]);
      expect(best.ids).toEqual(want);
      const r = await run(t, prompt, 2, 3);
      expect(r.ids).toEqual(want);
      expect(r.score).toBeCloseTo(want.length === 2 ? sA / 5 : sB / 7, 6);
      expect(r.stopReason).toBe(want.length === 2 ? 'eos' : 'length');
      const ref = referenceBeamSearch(t, prompt, 2, 3, [EOS]);
      expect(ref.ids).toEqual(want);
      expect(r.score).toBeCloseTo(ref.score, 12);
    }
  });

  it('a stop token ranked below the N live beams finishes nothing, even where it would have scored best', async () => {
    // One beam, prompt of 3: EOS is second (0.45) after token 1 (0.5), then everything is uniform.
    // Finished there, [EOS] would score log(0.45)/3 = -0.27, above any full sequence (log(0.5/3)/5 = -0.36),
    // but the step takes its N live beams in rank order and looks no further: one beam stays greedy decoding.
    const prompt = [1, 2, 1];
    const table = probTable(3, 3, { '': [0.45, 0.5, 0.05] });
    const best = exhaustiveBest(table, prompt, 3, 2, [EOS]);
    expect(best.ids).toEqual([EOS]);
    const r = await run(table, prompt, 1, 2);
    expect(r.ids).toEqual(greedy(table, prompt, 2, [EOS]));
    expect(r.ids).toEqual(referenceBeamSearch(table, prompt, 1, 2, [EOS]).ids);
    expect(r.ids).not.toEqual(best.ids);
  });

  it('with a beam wider than the number of sequences, beam search is exhaustive (random tables)', async () => {
    for (const [vocab, maxNew] of [
      [3, 3],
      [4, 2],
      [3, 4],
      [5, 2],
    ]) {
      for (let seed = 1; seed <= 6; seed++) {
        const table = randomTable(seed * 101 + vocab, vocab);
        const prompt = [1, 2].slice(0, 1 + (seed % 2));
        const best = exhaustiveBest(table, prompt, vocab, maxNew, [EOS]);
        const n = vocab ** maxNew;
        const r = await run(table, prompt, n, maxNew);
        expect(r.ids, `vocab ${vocab} maxNew ${maxNew} seed ${seed}`).toEqual(best.ids);
        expect(r.score).toBeCloseTo(best.score, 12);
      }
    }
  });
});

describe('beam search against the literal port of transformers (random tables)', () => {
  it('gives the reference its ids and score for 1 to 4 beams, EOS or not', async () => {
    let eosEnded = 0;
    let lengthEnded = 0;
    let earlyStops = 0;
    for (let seed = 1; seed <= 120; seed++) {
      const vocab = 3 + (seed % 3);
      const table = randomTable(seed, vocab, 1 + (seed % 4));
      const prompt = [1, 2, 1].slice(0, 1 + (seed % 3));
      const maxNew = 2 + (seed % 5);
      for (const n of [1, 2, 3, 4]) {
        const want = referenceBeamSearch(table, prompt, n, maxNew, [EOS]);
        const got = await run(table, prompt, n, maxNew);
        expect(got.ids, `seed ${seed}, ${n} beams`).toEqual(want.ids);
        expect(got.score).toBeCloseTo(want.score, 12);
        if (got.stopReason === 'eos') eosEnded++;
        else lengthEnded++;
        // Stopped by is_done before the last step the length allowed.
        if (got.calls.step < maxNew - 1) earlyStops++;
      }
    }
    // The cases cover both endings and the early-stopping rule.
    expect(eosEnded).toBeGreaterThan(20);
    expect(lengthEnded).toBeGreaterThan(20);
    expect(earlyStops).toBeGreaterThan(10);
  });

  it('a stop token ranked N or lower finishes no hypothesis (found where counting it would stop the search too early)', async () => {
    // Two random tables (found by search) where finishing the stop token at rank 2 or 3 of 4 as
    // well would fill the list of 2 sooner, stop the search and return [1, EOS] (-0.520, -0.493).
    for (const { seed, spread, want } of [
      { seed: 3885, spread: 1, want: [1, 1, 2, 1] },
      { seed: 7161, spread: 2, want: [2, 1, 1, 1] },
    ]) {
      const table = randomTable(seed, 3, spread);
      const ref = referenceBeamSearch(table, [1, 2], 2, 4, [EOS]);
      expect(ref.ids).toEqual(want);
      const r = await run(table, [1, 2], 2, 4);
      expect(r.ids).toEqual(ref.ids);
      expect(r.score).toBeCloseTo(ref.score, 12);
      expect(r.stopReason).toBe('length');
    }
  });

  it('one beam is greedy decoding', async () => {
    for (let seed = 1; seed <= 30; seed++) {
      const table = randomTable(seed + 500, 4);
      const r = await run(table, [1, 3], 1, 5);
      expect(r.ids).toEqual(greedy(table, [1, 3], 5, [EOS]));
    }
  });

  it('refuses a stop set that leaves fewer than N other tokens among the 2N best, like transformers', async () => {
    const table = randomTable(7, 3);
    await expect(run(table, [1], 2, 3, [0, 1, 2])).rejects.toThrow(/At most 2 of the 4 best next tokens .* can be stop tokens/);
    expect(() => referenceBeamSearch(table, [1], 2, 3, [0, 1, 2])).toThrow(/At most 2 tokens/);
  });

  it('refuses numBeams 0, a fractional numBeams and an empty prompt', async () => {
    const table = randomTable(1, 3);
    await expect(run(table, [1], 0, 3)).rejects.toThrow('numBeams must be a whole number of at least 1, not 0.');
    await expect(run(table, [1], 2.5, 3)).rejects.toThrow('numBeams must be a whole number of at least 1, not 2.5.');
    await expect(run(table, [], 2, 3)).rejects.toThrow('Beam search needs a prompt of at least one token.');
  });
});
