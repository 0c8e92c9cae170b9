import { describe, expect, it } from 'vitest';
import { parseMlcChatConfig, writeMlcChatConfig } from '../../src/formats/mlcChatConfig.ts';
import { httpModelSource } from '../../src/formats/modelFiles.ts';

// Fields of the published Llama-2-7b-chat-hf-q4f16_1 mlc-chat-config.json (as quoted in WebLLM's tests).
const published = {
  model_type: 'llama',
  quantization: 'q4f16_1',
  model_config: {
    hidden_size: 4096,
    intermediate_size: 11008,
    num_attention_heads: 32,
    num_hidden_layers: 32,
    rms_norm_eps: 1e-5,
    vocab_size: 32000,
    position_embedding_base: 10000,
    context_window_size: 4096,
    prefill_chunk_size: 4096,
    num_key_value_heads: 32,
    head_dim: 128,
    tensor_parallel_shards: 1,
    max_batch_size: 80,
  },
  vocab_size: 32000,
  context_window_size: 4096,
  sliding_window_size: -1,
  prefill_chunk_size: 4096,
  conv_template: { name: 'llama-2' },
  pad_token_id: 0,
  bos_token_id: 1,
  eos_token_id: 2,
  tokenizer_files: ['tokenizer.model', 'tokenizer.json', 'tokenizer_config.json'],
  version: '0.1.0',
};

describe('mlc-chat-config.json', () => {
  it('reads the published Llama-2-7B config', () => {
    const r = parseMlcChatConfig(published);
    expect(r.quantization).toBe('q4f16_1');
    expect(r.tokenizerFiles).toEqual(['tokenizer.model', 'tokenizer.json', 'tokenizer_config.json']);
    expect(r.config).toEqual({
      hiddenSize: 4096,
      intermediateSize: 11008,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 32,
      headDim: 128,
      vocabSize: 32000,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      contextWindowSize: 4096,
      tieWordEmbeddings: false,
      bosTokenId: 1,
      eosTokenIds: [2],
    });
  });
  it('round-trips through writeMlcChatConfig', () => {
    const { config } = parseMlcChatConfig(published);
    const c2 = { ...config, numKvHeads: 8, tieWordEmbeddings: true, eosTokenIds: [2, 32000] };
    const back = parseMlcChatConfig(JSON.parse(JSON.stringify(writeMlcChatConfig(c2, 'q0f16', ['tokenizer.json']))));
    expect(back).toEqual({ config: c2, quantization: 'q0f16', tokenizerFiles: ['tokenizer.json'] });
  });
  it('defaults kv heads, head_dim and rope base like MLC', () => {
    const mc = { ...published.model_config } as Record<string, unknown>;
    delete mc.num_key_value_heads;
    delete mc.head_dim;
    delete mc.position_embedding_base;
    mc.rope_theta = 500000;
    const r = parseMlcChatConfig({ ...published, model_config: mc });
    expect(r.config.numKvHeads).toBe(32);
    expect(r.config.headDim).toBe(128);
    expect(r.config.ropeTheta).toBe(500000);
  });
  it('rejects unsupported model types and quantizations clearly', () => {
    expect(() => parseMlcChatConfig({ ...published, model_type: 'qwen2' })).toThrow(/unsupported model_type "qwen2"; only "llama" is supported/);
    expect(() => parseMlcChatConfig({ ...published, quantization: 'q3f16_1' })).toThrow(
      /unsupported quantization "q3f16_1"; supported: q4f16_1, q4f32_1, q0f16, q0f32/,
    );
    expect(() => parseMlcChatConfig('{')).toThrow(/not JSON/);
    expect(() => parseMlcChatConfig({ ...published, model_config: undefined })).toThrow(/missing model_config/);
    expect(() => parseMlcChatConfig({ ...published, model_config: { ...published.model_config, rope_scaling: { rope_type: 'llama3' } } })).toThrow(
      /rope_scaling .* is not supported/,
    );
  });
});

describe('httpModelSource', () => {
  it('names the URL on a non-OK status and maps 404 JSON to null', async () => {
    const fake = (async (url: string) =>
      url.endsWith('missing.json')
        ? new Response('nope', { status: 404 })
        : url.endsWith('.bin')
          ? new Response('err', { status: 500, statusText: 'Internal Server Error' })
          : new Response('{"a":1}')) as unknown as typeof fetch;
    const src = httpModelSource('http://host/models/tiny/q0f32', fake);
    expect(await src.readJson('x.json')).toEqual({ a: 1 });
    expect(await src.readJson('missing.json')).toBeNull();
    await expect(src.readShard('params_shard_0.bin')).rejects.toThrow(
      'params_shard_0.bin could not be fetched from http://host/models/tiny/q0f32/params_shard_0.bin (HTTP 500).',
    );
  });
});
