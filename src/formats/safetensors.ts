/**
 * safetensors reader/writer (https://github.com/huggingface/safetensors, format section):
 * 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
 * `{ "<name>": { "dtype": "F16", "shape": [..], "data_offsets": [begin, end] }, "__metadata__": {..} }`,
 * then the data; offsets are relative to the byte after the header. The header may end with spaces.
 * Only F32 / F16 / BF16 tensors can be decoded; other dtypes parse but are refused when read.
 */
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from './f16.ts';

export const SAFETENSORS_DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export type SafetensorsFloatDtype = 'F32' | 'F16' | 'BF16';
export const SAFETENSORS_FLOAT_DTYPES: readonly SafetensorsFloatDtype[] = ['F32', 'F16', 'BF16'];

export interface SafetensorsTensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** [begin, end) relative to the start of the data section */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** N, the JSON header length */
  headerLength: number;
  /** absolute byte offset of the data section: 8 + N */
  dataStart: number;
  metadata: Record<string, string> | null;
  tensors: Map<string, SafetensorsTensorInfo>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

function toU8(bytes: Uint8Array | ArrayBuffer): Uint8Array {
  return bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
}

/** N from the first 8 bytes; `source` names the file in errors. */
export function safetensorsHeaderLength(prefix: Uint8Array | ArrayBuffer, source = 'safetensors file'): number {
  const u8 = toU8(prefix);
  if (u8.length < 8) {
    throw new SafetensorsError(`${source}: truncated: ${u8.length} bytes, too short for the 8-byte header length`);
  }
  const n = new DataView(u8.buffer, u8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(100 * 1024 * 1024)) {
    throw new SafetensorsError(`${source}: header length ${n} is implausibly large (not a safetensors file?)`);
  }
  return Number(n);
}

function numel(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Parse and validate the header. `prefix` holds at least the first 8 + N bytes (or the whole file);
 * `fileSize` is the full file length (defaults to prefix length) and is used to detect truncation.
 */
export function parseSafetensorsHeader(prefix: Uint8Array | ArrayBuffer, opts: { fileSize?: number; source?: string } = {}): SafetensorsHeader {
  const u8 = toU8(prefix);
  const source = opts.source ?? 'safetensors file';
  const fileSize = opts.fileSize ?? u8.length;
  const headerLength = safetensorsHeaderLength(u8, source);
  const dataStart = 8 + headerLength;
  if (fileSize < dataStart) {
    throw new SafetensorsError(`${source}: truncated: header says ${headerLength} bytes of JSON but the file has only ${fileSize} bytes`);
  }
  if (u8.length < dataStart) {
    throw new SafetensorsError(`${source}: need the first ${dataStart} bytes to parse the header, got ${u8.length}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(u8.subarray(8, dataStart)));
  } catch (e) {
    throw new SafetensorsError(`${source}: malformed header JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(`${source}: malformed header: expected a JSON object`);
  }
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const info = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!info || typeof info !== 'object') throw new SafetensorsError(`${source}: tensor ${name}: entry is not an object`);
    if (typeof info.dtype !== 'string') throw new SafetensorsError(`${source}: tensor ${name}: missing dtype`);
    const elemBytes = SAFETENSORS_DTYPE_BYTES[info.dtype];
    if (elemBytes === undefined) throw new SafetensorsError(`${source}: tensor ${name}: unknown dtype ${info.dtype}`);
    if (!Array.isArray(info.shape) || !info.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsError(`${source}: tensor ${name}: shape must be an array of non-negative integers`);
    }
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0]) {
      throw new SafetensorsError(`${source}: tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const shape = info.shape as number[];
    const [begin, end] = off as [number, number];
    const expected = numel(shape) * elemBytes;
    if (end - begin !== expected) {
      throw new SafetensorsError(
        `${source}: tensor ${name}: shape [${shape.join(', ')}] ${info.dtype} needs ${expected} bytes but data_offsets ` +
          `[${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > dataSize) {
      throw new SafetensorsError(`${source}: truncated: tensor ${name} ends at data byte ${end} but the file holds only ${dataSize} data bytes`);
    }
    tensors.set(name, { name, dtype: info.dtype, shape, dataOffsets: [begin, end] });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.dataOffsets[0] < prev.dataOffsets[1] && cur.dataOffsets[1] > cur.dataOffsets[0]) {
      throw new SafetensorsError(`${source}: tensors ${prev.name} [${prev.dataOffsets}] and ${cur.name} [${cur.dataOffsets}] overlap`);
    }
  }
  return { headerLength, dataStart, metadata, tensors };
}

/** Bytes per element of a float dtype, or a clear error for anything else. */
export function floatDtypeBytes(dtype: string, name: string): number {
  if (dtype === 'F32') return 4;
  if (dtype === 'F16' || dtype === 'BF16') return 2;
  throw new SafetensorsError(`tensor ${name} has dtype ${dtype}; only F32, F16 and BF16 are supported`);
}

/** Decode raw little-endian bytes of a float dtype to float32. */
export function decodeFloatBytes(dtype: string, bytes: Uint8Array, name = 'tensor'): Float32Array {
  const eb = floatDtypeBytes(dtype, name);
  if (bytes.length % eb !== 0) throw new SafetensorsError(`tensor ${name}: ${bytes.length} bytes is not a whole number of ${dtype}`);
  // Copy to an aligned buffer (offsets in a file need not be aligned).
  const aligned = bytes.byteOffset % eb === 0 ? bytes : bytes.slice();
  if (dtype === 'F32') {
    return new Float32Array(aligned.buffer.slice(aligned.byteOffset, aligned.byteOffset + aligned.length));
  }
  const u16 = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length / 2);
  return dtype === 'F16' ? f16ArrayToF32(u16) : bf16ArrayToF32(u16);
}

/** Read one tensor of a whole in-memory file as float32. */
export function readSafetensorsTensor(file: Uint8Array | ArrayBuffer, name: string, header: SafetensorsHeader = parseSafetensorsHeader(file)): Float32Array {
  const u8 = toU8(file);
  const info = header.tensors.get(name);
  if (!info) throw new SafetensorsError(`tensor ${name} not found in safetensors file`);
  const begin = header.dataStart + info.dataOffsets[0];
  const end = header.dataStart + info.dataOffsets[1];
  if (end > u8.length) throw new SafetensorsError(`truncated: tensor ${name} ends at byte ${end}, file has ${u8.length}`);
  return decodeFloatBytes(info.dtype, u8.subarray(begin, end), name);
}

export interface SafetensorsInput {
  name: string;
  dtype: SafetensorsFloatDtype;
  shape: number[];
  /** Float32Array values are encoded to dtype; a Uint16Array is taken as raw F16/BF16 bits. */
  data: Float32Array | Uint16Array;
}

/** Encode float32 values (or pass raw 16-bit patterns) as little-endian bytes of a dtype. */
export function encodeFloatData(dtype: SafetensorsFloatDtype, data: Float32Array | Uint16Array): Uint8Array {
  if (dtype === 'F32') {
    if (!(data instanceof Float32Array)) throw new SafetensorsError('F32 data must be a Float32Array');
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  }
  const u16 = data instanceof Uint16Array ? data : dtype === 'F16' ? f32ArrayToF16(data) : f32ArrayToBf16(data);
  return new Uint8Array(u16.buffer, u16.byteOffset, u16.byteLength);
}

/** Build the header JSON bytes (padded with spaces to a multiple of 8) for tensors laid out in order. */
export function buildSafetensorsHeader(
  tensors: { name: string; dtype: string; shape: number[]; nbytes: number }[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name in header) throw new SafetensorsError(`duplicate tensor name ${t.name}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.nbytes] };
    offset += t.nbytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  json = out;
  return json;
}

/** Write a whole safetensors file in memory. */
export function writeSafetensors(tensors: SafetensorsInput[], metadata?: Record<string, string>): Uint8Array {
  const encoded = tensors.map((t) => {
    const bytes = encodeFloatData(t.dtype, t.data);
    const expected = numel(t.shape) * SAFETENSORS_DTYPE_BYTES[t.dtype];
    if (bytes.length !== expected) {
      throw new SafetensorsError(`tensor ${t.name}: shape [${t.shape}] needs ${expected} bytes, data has ${bytes.length}`);
    }
    return bytes;
  });
  const head = buildSafetensorsHeader(
    tensors.map((t, i) => ({ name: t.name, dtype: t.dtype, shape: t.shape, nbytes: encoded[i].length })),
    metadata,
  );
  const total = head.length + encoded.reduce((s, b) => s + b.length, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let o = head.length;
  for (const b of encoded) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}
