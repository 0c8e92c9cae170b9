/**
 * Beam search checks in the page: Engine.generateBeams on the WebGPU engine against the literal
 * port of transformers' beam search (src/engine/referenceBeamSearch.ts) running on the reference
 * forward pass, on the generated tiny model read from the same shards.
 */
import { referenceBeamSearch, referenceNextTokenLogits } from '../../../src/engine/referenceBeamSearch.ts';
import { engineFor, referenceFor } from './modelChecks.ts';

/** Beams are slots of the batch: the engine is loaded with room for 4 sequences. */
const BEAM_SLOTS = 4;

/** generateBeams and the reference port for one prompt; stop ids default to the model's EOS. */
export async function beamsBoth(url: string, prompt: number[], numBeams: number, maxNewTokens: number, stopTokenIds?: number[]) {
  const engine = await engineFor(url, { maxBatch: BEAM_SLOTS });
  const ref = await referenceFor(url);
  const stop = stopTokenIds ?? engine.info!.config.eosTokenIds;
  let steps = 0;
  const got = await engine.generateBeams(prompt, { numBeams, maxNewTokens, stopTokenIds: stop, onStep: () => void steps++ });
  const want = referenceBeamSearch(referenceNextTokenLogits(ref), prompt, numBeams, maxNewTokens, stop);
  return { got: { ids: got.ids, score: got.score, stopReason: got.stopReason, decodeTokens: got.decodeTokens, steps }, want };
}

/** One beam through generateBeams, the greedy generate() (GPU argmax path) and the reference's greedy ids. */
export async function oneBeamVsGreedy(url: string, prompt: number[], maxNewTokens: number, stopTokenIds?: number[]) {
  const engine = await engineFor(url, { maxBatch: BEAM_SLOTS });
  const ref = await referenceFor(url);
  const stop = stopTokenIds ?? engine.info!.config.eosTokenIds;
  const beam = await engine.generateBeams(prompt, { numBeams: 1, maxNewTokens, stopTokenIds: stop });
  const greedy = await engine.generate(prompt, { maxNewTokens, stopTokenIds: stop });
  return { beam: beam.ids, beamStop: beam.stopReason, greedy: greedy.ids, greedyStop: greedy.stopReason, want: ref.greedyGenerate(prompt, maxNewTokens, stop) };
}

/** The reference's greedy ids (to pick a stop id that beam search will meet). */
export async function referenceGreedy(url: string, prompt: number[], maxNewTokens: number) {
  return (await referenceFor(url)).greedyGenerate(prompt, maxNewTokens, []);
}

/**
 * LlamaModel.copySlot: slot 1 made from slot 0's first `keep` tokens then fed the rest of `ids`
 * gives the reference's logits for `ids`, as slot 0 fed the same does (and slot 0 is unchanged).
 */
export async function copySlotThenDecode(url: string, ids: number[], keep: number, extra: number[]) {
  const { relErr } = await import('./kernelChecks.ts');
  const engine = await engineFor(url, { maxBatch: BEAM_SLOTS });
  const ref = await referenceFor(url);
  const model = engine.llamaModel();
  for (let s = 0; s < BEAM_SLOTS; s++) model.reset(s);
  await model.prefillSlot(0, ids);
  // Slot 2 holds something else first: the copy must replace it.
  await model.prefillSlot(2, [1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
  model.copySlot(0, 2, keep);
  const positionAfterCopy = model.positions[2];
  let fromCopy: Float32Array | null = null;
  for (const t of [...ids.slice(keep), ...extra]) fromCopy = (await model.decodeBatch([{ slot: 2, token: t }]))[0];
  let fromOriginal: Float32Array | null = null;
  for (const t of extra) fromOriginal = (await model.decodeBatch([{ slot: 0, token: t }]))[0];
  ref.reset();
  const want = ref.forward([...ids, ...extra]);
  return { positionAfterCopy, copyVsReference: relErr(fromCopy!, want), originalVsReference: relErr(fromOriginal!, want) };
}

/** generateBeams' and copySlot's refusals, as "Name: message". */
export async function beamMisuse(url: string) {
  const engine = await engineFor(url, { maxBatch: BEAM_SLOTS });
  const errors: string[] = [];
  const attempt = async (f: () => unknown) => {
    try {
      await f();
      errors.push('no error');
    } catch (e) {
      errors.push(`${(e as Error).name}: ${(e as Error).message}`);
    }
  };
  const prompt = [1, 5, 9];
  await attempt(() => engine.generateBeams(prompt, { numBeams: 0, maxNewTokens: 4 }));
  await attempt(() => engine.generateBeams(prompt, { numBeams: 2.5, maxNewTokens: 4 }));
  await attempt(() => engine.generateBeams(prompt, { numBeams: BEAM_SLOTS + 1, maxNewTokens: 4 }));
  const model = engine.llamaModel();
  model.reset(0);
  await model.prefillSlot(0, prompt);
  await attempt(() => model.copySlot(0, 1, prompt.length + 1));
  await attempt(() => model.copySlot(0, BEAM_SLOTS, 1));
  // Still usable after the refusals.
  const after = await engine.generateBeams(prompt, { numBeams: 2, maxNewTokens: 3, stopTokenIds: [] });
  return { errors, afterLength: after.ids.length };
}

/**
 * More beams than a run's memory budget holds: generateBatch says how many fit (the planner's
 * count for that budget), leaves the model usable, and runs with that many.
 */
export async function beamsOverBudget(url: string) {
  const { planMemory } = await import('../../../src/engine/memoryPlan.ts');
  const engine = await engineFor(url, { maxBatch: 1 });
  const prompt = [1, 5, 9];
  const maxNewTokens = 4;
  const model = engine.llamaModel();
  // Room for exactly 2 sequences of prompt + new tokens.
  const two = planMemory(model.config, model.mode, model.kvFormat, prompt.length + maxNewTokens, model.prefillChunk, 2);
  const budget = two.kvCache + two.activations;
  let refusal = 'no error';
  try {
    await engine.generateBatch([prompt], { maxNewTokens, numBeams: 4, memoryBudget: budget, stopTokenIds: [] });
  } catch (e) {
    refusal = `${(e as Error).name}: ${(e as Error).message}`;
  }
  const fits = await engine.generateBatch([prompt], { maxNewTokens, numBeams: 2, memoryBudget: budget, stopTokenIds: [] });
  return { refusal, fitsIds: fits.results[0].ids.length, fitsBatch: fits.maxBatch };
}
