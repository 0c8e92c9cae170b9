/**
 * A converted model directory (any mode) as the reference trainer needs it: config, dense f32 base
 * weights (q4 dequantized, frozen) and the tokenizer when the model has one. One reader for the CLI
 * and the app's training worker.
 */
import type { LlamaConfig, QuantMode } from '../formats/llamaConfig.ts';
import { iterateShardTensors, loadModelManifest, type ModelManifestInfo } from '../formats/modelFiles.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';
import { loadTokenizer, type Tokenizer } from '../formats/tokenizer.ts';
import { referenceWeightsFromRecords } from '../engine/reference.ts';
import type { ReferenceModel } from './referenceTrainer.ts';

export interface LoadedTrainingBase extends ReferenceModel {
  mode: QuantMode;
  info: ModelManifestInfo;
}

/** The JSON files only (cheap): enough to check arguments before any heavy work. */
export async function readTrainingBaseInfo(source: ModelSource): Promise<{ config: LlamaConfig; mode: QuantMode; info: ModelManifestInfo }> {
  const info = await loadModelManifest(source);
  return { config: info.config, mode: info.mode, info };
}

export async function baseTokenizer(info: ModelManifestInfo): Promise<Tokenizer | null> {
  return info.tokenizerJson ? loadTokenizer(info.tokenizerJson, info.tokenizerConfig ?? undefined) : null;
}

/** Reads every shard and dequantizes: the frozen base as dense f32 (the config gives q4's true widths, which padded groups hide). */
export async function loadTrainingBase(source: ModelSource, info?: ModelManifestInfo): Promise<LoadedTrainingBase> {
  const m = info ?? (await loadModelManifest(source));
  const records = new Map<string, Float32Array | Uint32Array>();
  const shapes = new Map<string, number[]>();
  for await (const shard of iterateShardTensors(source, m.cache)) {
    for (const { record, data } of shard.records) {
      records.set(record.name, data);
      shapes.set(record.name, record.shape);
    }
  }
  return { config: m.config, mode: m.mode, info: m, weights: referenceWeightsFromRecords(records, shapes, m.mode, m.config) };
}
