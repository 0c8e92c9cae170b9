/**
 * A Hugging Face checkpoint read by byte ranges, wherever its files are: the hub (Range requests,
 * src/storage/hubCheckpoint.ts) or files the user picked (File.slice). Only headers and the rows
 * asked for are ever read, so a 10 GB safetensors shard is never held whole.
 *
 * File choice follows transformers' `from_pretrained` (and src/cli/hfCheckpoint.ts, the Node
 * reader): model.safetensors.index.json's weight_map when present, else model.safetensors, else
 * every *.safetensors file.
 */
import {
  CheckpointError,
  HF_CONFIG_FILE,
  HF_GENERATION_CONFIG_FILE,
  HF_INDEX_FILE,
  HF_SINGLE_FILE,
  parseHfLlamaConfig,
  type CheckpointTensors,
  type SourceTensor,
} from './hfConversion.ts';
import type { LlamaConfig } from './llamaConfig.ts';
import { decodeFloatBytes, floatDtypeBytes, parseSafetensorsHeader, safetensorsHeaderLength } from './safetensors.ts';

/** The files of a checkpoint, read by range. */
export interface CheckpointFiles {
  /** Named in errors: a repo id, a folder name. */
  readonly where: string;
  /** Every file path of the checkpoint (relative to its root). */
  readonly paths: readonly string[];
  /** Size of a file in bytes, when known. */
  size(path: string): number | undefined;
  /** Bytes [start, end) of a file: exactly end − start of them, or an error. */
  read(path: string, start: number, end: number): Promise<Uint8Array>;
}

interface RangeTensor extends SourceTensor {
  file: string;
  /** absolute byte offset of the tensor's data in its file */
  offset: number;
}

type Json = Record<string, unknown>;

/** A small JSON file of the checkpoint, or null when it has none. */
export async function readCheckpointJson(files: CheckpointFiles, path: string): Promise<Json | null> {
  if (!files.paths.includes(path)) return null;
  const size = files.size(path);
  const bytes = await files.read(path, 0, size ?? 0);
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new CheckpointError(`${files.where}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

export class RangeCheckpoint implements CheckpointTensors {
  private constructor(
    readonly files: CheckpointFiles,
    readonly config: Json,
    readonly generationConfig: Json | null,
    readonly tensors: Map<string, RangeTensor>,
  ) {}

  get where(): string {
    return this.files.where;
  }

  /**
   * Read config.json and every safetensors header (a few KB per file).
   * @throws CheckpointError naming what is missing or wrong: no config.json, no safetensors (a
   *   PyTorch .bin checkpoint), a shard the index lists but the checkpoint lacks
   */
  static async open(files: CheckpointFiles): Promise<RangeCheckpoint> {
    const config = await readCheckpointJson(files, HF_CONFIG_FILE);
    if (!config) {
      throw new CheckpointError(
        `${files.where} has no ${HF_CONFIG_FILE}: not a Hugging Face model checkpoint (it has ${files.paths.slice(0, 8).join(', ') || 'no files'}${files.paths.length > 8 ? ', …' : ''}).`,
      );
    }
    const generationConfig = await readCheckpointJson(files, HF_GENERATION_CONFIG_FILE);
    // Not a Llama (or one we do not implement): say so before looking for weights.
    parseHfLlamaConfig(config, generationConfig, `${files.where}/${HF_CONFIG_FILE}`);
    let weightMap: Record<string, string> | null = null;
    let shardFiles: string[];
    const index = await readCheckpointJson(files, HF_INDEX_FILE);
    if (index) {
      if (!index.weight_map || typeof index.weight_map !== 'object') throw new CheckpointError(`${files.where}: ${HF_INDEX_FILE} has no weight_map`);
      weightMap = index.weight_map as Record<string, string>;
      shardFiles = [...new Set(Object.values(weightMap))].sort();
    } else if (files.paths.includes(HF_SINGLE_FILE)) {
      shardFiles = [HF_SINGLE_FILE];
    } else {
      shardFiles = files.paths.filter((p) => p.endsWith('.safetensors')).sort();
      if (shardFiles.length === 0) {
        const bin = files.paths.some((p) => /(^|\/)pytorch_model.*\.bin$/.test(p));
        throw new CheckpointError(
          bin
            ? `${files.where} has only PyTorch .bin weights; this converter reads safetensors (model.safetensors or a sharded model.safetensors.index.json).`
            : `${files.where} has no *.safetensors weights.`,
        );
      }
    }
    const tensors = new Map<string, RangeTensor>();
    for (const file of shardFiles) {
      if (!files.paths.includes(file)) throw new CheckpointError(`${files.where}: ${file} is listed in ${HF_INDEX_FILE} but missing`);
      const source = `${files.where}/${file}`;
      const size = files.size(file);
      const n = safetensorsHeaderLength(await files.read(file, 0, 8), source);
      const prefix = await files.read(file, 0, 8 + n);
      const header = parseSafetensorsHeader(prefix, { fileSize: size ?? prefix.length, source });
      for (const info of header.tensors.values()) {
        if (weightMap && weightMap[info.name] !== undefined && weightMap[info.name] !== file) continue;
        tensors.set(info.name, { dtype: info.dtype, shape: info.shape, file, offset: header.dataStart + info.dataOffsets[0] });
      }
    }
    if (weightMap) {
      for (const [name, file] of Object.entries(weightMap)) {
        if (!tensors.has(name)) throw new CheckpointError(`${files.where}/${file}: tensor ${name} is listed in ${HF_INDEX_FILE} but not in the file`);
      }
    }
    return new RangeCheckpoint(files, config, generationConfig, tensors);
  }

  llamaConfig(): LlamaConfig {
    return parseHfLlamaConfig(this.config, this.generationConfig, `${this.files.where}/${HF_CONFIG_FILE}`);
  }

  async readRows(name: string, rowStart: number, rowCount: number): Promise<Float32Array> {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(`missing tensor ${name} in checkpoint ${this.where}`);
    const eb = floatDtypeBytes(t.dtype, name);
    const rowElems = t.shape.length <= 1 ? (t.shape[0] ?? 1) : t.shape.slice(1).reduce((a, b) => a * b, 1);
    const rows = t.shape.length <= 1 ? 1 : t.shape[0];
    if (rowStart < 0 || rowStart + rowCount > rows)
      throw new CheckpointError(`${name}: rows [${rowStart}, ${rowStart + rowCount}) out of range (${rows} rows)`);
    const start = t.offset + rowStart * rowElems * eb;
    const bytes = await this.files.read(t.file, start, start + rowCount * rowElems * eb);
    return decodeFloatBytes(t.dtype, bytes, name);
  }
}

/** CheckpointFiles over picked or dropped files (paths relative to the checkpoint folder). */
export function localCheckpointFiles(where: string, files: Map<string, Blob>): CheckpointFiles {
  return {
    where,
    paths: [...files.keys()],
    size: (p) => files.get(p)?.size,
    async read(path, start, end) {
      const f = files.get(path);
      if (!f) throw new CheckpointError(`${where}: ${path} is missing`);
      if (end > f.size) throw new CheckpointError(`${where}/${path}: bytes [${start}, ${end}) are beyond its ${f.size} bytes (truncated file?)`);
      return new Uint8Array(await f.slice(start, end).arrayBuffer());
    },
  };
}
