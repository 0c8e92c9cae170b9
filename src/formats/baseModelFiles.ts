/**
 * The file names of an MLC model directory, as MLC-LLM writes them and WebLLM reads them (the
 * reader of config + tensor cache is modelFiles.ts `readBaseModelJson`).
 */

/** MLC's model configuration (architecture, quantization, tokenizer files). */
export const MLC_CHAT_CONFIG_FILE = 'mlc-chat-config.json';
/** The tensor cache, by its current name first: MLC renamed ndarray-cache.json to tensor-cache.json. */
export const TENSOR_CACHE_FILES = ['tensor-cache.json', 'ndarray-cache.json'] as const;
export type TensorCacheFile = (typeof TENSOR_CACHE_FILES)[number];
/** The name we write a tensor cache under. */
export const TENSOR_CACHE_FILE: TensorCacheFile = TENSOR_CACHE_FILES[0];
/** Hugging Face tokenizers' files, as MLC copies them beside the weights. */
export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
export const SENTENCEPIECE_MODEL_FILE = 'tokenizer.model';
