/**
 * Node-only helpers around Hugging Face Llama checkpoints and model directories:
 * read config.json / generation_config.json, locate tensors across (sharded) safetensors files,
 * read a tensor's rows straight from disk with a file handle (never the whole file), write
 * synthetic checkpoints for tests, and ModelSource / ShardSink over a directory.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { CheckpointError, parseHfLlamaConfig, type CheckpointTensors } from '../formats/hfConversion.ts';
import {
  decodeFloatBytes,
  floatDtypeBytes,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  writeSafetensors,
  type SafetensorsInput,
} from '../formats/safetensors.ts';
import type { ShardFile, ShardSink } from '../formats/tensorCache.ts';
import type { ModelSource } from '../formats/tensorCacheTypes.ts';

export { CheckpointError, parseHfLlamaConfig };

/** A ModelSource over a local model directory. */
export function dirModelSource(dir: string): ModelSource {
  return {
    async readJson(path: string) {
      const p = join(dir, path);
      if (!existsSync(p)) return null;
      const text = await readFile(p, 'utf8');
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new CheckpointError(`${p} is not valid JSON: ${(e as Error).message}`);
      }
    },
    async readShard(path: string) {
      const b = await readFile(join(dir, path));
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    },
  };
}

/** A ShardSink writing params_shard_N.bin files into a directory, chunk by chunk. */
export function dirShardSink(dir: string): ShardSink {
  return {
    async open(dataPath: string): Promise<ShardFile> {
      const fh = await open(join(dir, dataPath), 'w');
      return {
        write: async (chunk) => {
          await fh.write(chunk);
        },
        close: () => fh.close(),
      };
    },
  };
}

type Json = Record<string, unknown>;

export interface HfTensorRef {
  name: string;
  dtype: string;
  shape: number[];
  file: string;
  /** absolute byte offset of the tensor's data in its file */
  offset: number;
}

/** An opened HF checkpoint directory: configs and a tensor index over its safetensors files. */
export class HfCheckpoint implements CheckpointTensors {
  private handles = new Map<string, FileHandle>();

  private constructor(
    readonly dir: string,
    readonly config: Json,
    readonly generationConfig: Json | null,
    readonly tensors: Map<string, HfTensorRef>,
  ) {}

  static async open(dir: string): Promise<HfCheckpoint> {
    const cfgPath = join(dir, 'config.json');
    if (!existsSync(cfgPath)) throw new CheckpointError(`${dir}: config.json not found (not a Hugging Face checkpoint?)`);
    const readJson = async (p: string): Promise<Json> => {
      try {
        return JSON.parse(await readFile(p, 'utf8')) as Json;
      } catch (e) {
        throw new CheckpointError(`${p}: not valid JSON: ${(e as Error).message}`);
      }
    };
    const config = await readJson(cfgPath);
    const genPath = join(dir, 'generation_config.json');
    const generationConfig = existsSync(genPath) ? await readJson(genPath) : null;

    const indexPath = join(dir, 'model.safetensors.index.json');
    let files: string[];
    let weightMap: Record<string, string> | null = null;
    if (existsSync(indexPath)) {
      const index = await readJson(indexPath);
      if (!index.weight_map || typeof index.weight_map !== 'object') throw new CheckpointError(`${indexPath}: missing weight_map`);
      weightMap = index.weight_map as Record<string, string>;
      files = [...new Set(Object.values(weightMap))].sort();
    } else if (existsSync(join(dir, 'model.safetensors'))) {
      files = ['model.safetensors'];
    } else {
      files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
      if (files.length === 0) {
        throw new CheckpointError(`${dir}: no *.safetensors weights found (PyTorch .bin checkpoints are not supported)`);
      }
    }
    const tensors = new Map<string, HfTensorRef>();
    for (const file of files) {
      const path = join(dir, file);
      if (!existsSync(path)) throw new CheckpointError(`${path}: listed in model.safetensors.index.json but missing`);
      const size = (await stat(path)).size;
      const fh = await open(path, 'r');
      try {
        const first = Buffer.alloc(Math.min(8, size));
        await fh.read(first, 0, first.length, 0);
        const n = safetensorsHeaderLength(first, path);
        const prefix = Buffer.alloc(Math.min(8 + n, size));
        await fh.read(prefix, 0, prefix.length, 0);
        const header = parseSafetensorsHeader(prefix, { fileSize: size, source: path });
        for (const info of header.tensors.values()) {
          if (weightMap && weightMap[info.name] !== undefined && weightMap[info.name] !== file) continue;
          tensors.set(info.name, { name: info.name, dtype: info.dtype, shape: info.shape, file: path, offset: header.dataStart + info.dataOffsets[0] });
        }
      } finally {
        await fh.close();
      }
    }
    if (weightMap) {
      for (const [name, file] of Object.entries(weightMap)) {
        if (!tensors.has(name)) throw new CheckpointError(`${join(dir, file)}: tensor ${name} is listed in model.safetensors.index.json but not in the file`);
      }
    }
    return new HfCheckpoint(dir, config, generationConfig, tensors);
  }

  get where(): string {
    return this.dir;
  }

  llamaConfig(): LlamaConfig {
    return parseHfLlamaConfig(this.config, this.generationConfig, join(this.dir, 'config.json'));
  }

  private async handle(file: string): Promise<FileHandle> {
    let fh = this.handles.get(file);
    if (!fh) {
      fh = await open(file, 'r');
      this.handles.set(file, fh);
    }
    return fh;
  }

  /** Rows [rowStart, rowStart + rowCount) of a tensor as float32 (a 1-D tensor is one row). */
  async readRows(name: string, rowStart: number, rowCount: number): Promise<Float32Array> {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(`missing tensor ${name} in checkpoint ${this.dir}`);
    const eb = floatDtypeBytes(t.dtype, name);
    const rowElems = t.shape.length <= 1 ? (t.shape[0] ?? 1) : t.shape.slice(1).reduce((a, b) => a * b, 1);
    const rows = t.shape.length <= 1 ? 1 : t.shape[0];
    if (rowStart < 0 || rowStart + rowCount > rows)
      throw new CheckpointError(`${name}: rows [${rowStart}, ${rowStart + rowCount}) out of range (${rows} rows)`);
    const nbytes = rowCount * rowElems * eb;
    const buf = Buffer.alloc(nbytes);
    const fh = await this.handle(t.file);
    let got = 0;
    while (got < nbytes) {
      const { bytesRead } = await fh.read(buf, got, nbytes - got, t.offset + rowStart * rowElems * eb + got);
      if (bytesRead === 0) throw new CheckpointError(`${t.file}: unexpected end of file while reading ${name}`);
      got += bytesRead;
    }
    return decodeFloatBytes(t.dtype, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), name);
  }

  async close(): Promise<void> {
    for (const fh of this.handles.values()) await fh.close();
    this.handles.clear();
  }
}

export interface WriteHfOptions {
  config: Json;
  tensors: SafetensorsInput[];
  generationConfig?: Json;
  /** > 1 writes model-0000i-of-0000n.safetensors + model.safetensors.index.json */
  shards?: number;
  /** files copied into the checkpoint (tokenizer.json, ...) */
  copyFiles?: string[];
}

/** Write a synthetic HF checkpoint (tests, the tiny model). */
export async function writeHfCheckpoint(dir: string, opts: WriteHfOptions): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(opts.config, null, 2));
  if (opts.generationConfig) await writeFile(join(dir, 'generation_config.json'), JSON.stringify(opts.generationConfig, null, 2));
  const n = Math.max(1, opts.shards ?? 1);
  if (n === 1) {
    await writeFile(join(dir, 'model.safetensors'), writeSafetensors(opts.tensors, { format: 'pt' }));
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(opts.tensors.length / n);
    for (let i = 0; i < n; i++) {
      const part = opts.tensors.slice(i * per, (i + 1) * per);
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
      for (const t of part) weightMap[t.name] = file;
      await writeFile(join(dir, file), writeSafetensors(part, { format: 'pt' }));
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
  }
  for (const f of opts.copyFiles ?? []) await copyFile(f, join(dir, f.split('/').pop()!));
}
