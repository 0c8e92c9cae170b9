import { tinyModelVocab } from '../../../src/cli/makeTinyModel.ts';

/** The tiny models' modes, their logits tolerance against the reference and their vocabulary (for random prompt ids), for engine.spec.ts and the device kit. */
const MODES = [
  { mode: 'q0f32', tol: 1e-4 },
  { mode: 'q4f32_1', tol: 1e-4 },
  // f16 modes store weights (and the KV cache) in f16; the reference computes on the same f16
  // weights in f32/f64, so the difference is the f16 KV cache's rounding: 1e-2.
  { mode: 'q0f16', tol: 1e-2 },
  { mode: 'q4f16_1', tol: 1e-2 },
  // Widths 40 and 37 (not multiples of 32 or 4), 5 query heads on 1 kv head, tied embeddings.
  { mode: 'odd-q0f32', tol: 1e-4 },
  { mode: 'odd-q0f16', tol: 1e-2 },
  // q4 input widths 80 and 172 (not multiples of 32): MLC's padded last group in every row. 500 ids.
  { mode: 'padded-q4f32_1', tol: 1e-4 },
  { mode: 'padded-q4f16_1', tol: 1e-2 },
] as const;

export const TINY_MODES = MODES.map((m) => ({ ...m, vocab: tinyModelVocab(m.mode) }));
