import { describe, expect, it } from 'vitest';
import { buildSafetensorsHeader, parseSafetensorsHeader, readSafetensorsTensor, writeSafetensors } from '../../src/formats/safetensors.ts';

function fileWithHeader(header: unknown, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

describe('safetensors', () => {
  const a = Float32Array.from([1, -2, 3.5, 0.1, 65504, -0.25]);
  const file = writeSafetensors(
    [
      { name: 'a32', dtype: 'F32', shape: [2, 3], data: a },
      { name: 'a16', dtype: 'F16', shape: [6], data: a },
      { name: 'abf', dtype: 'BF16', shape: [3, 2], data: a },
    ],
    { format: 'pt' },
  );

  it('writes and reads back F32 / F16 / BF16', () => {
    const h = parseSafetensorsHeader(file);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.dataStart % 8).toBe(0);
    expect(h.tensors.get('a16')).toEqual({ name: 'a16', dtype: 'F16', shape: [6], dataOffsets: [24, 36] });
    expect(Array.from(readSafetensorsTensor(file, 'a32'))).toEqual(Array.from(a));
    const f16 = readSafetensorsTensor(file, 'a16');
    expect(f16[0]).toBe(1);
    expect(f16[4]).toBe(65504);
    expect(f16[3]).toBeCloseTo(0.1, 3);
    const bf = readSafetensorsTensor(file, 'abf');
    expect(bf[2]).toBe(3.5);
    expect(bf[3]).toBeCloseTo(0.1, 2);
  });

  it('reads tensors at unaligned offsets', () => {
    const f = writeSafetensors([
      { name: 'x', dtype: 'F16', shape: [1], data: Float32Array.from([2]) },
      { name: 'y', dtype: 'F32', shape: [2], data: Float32Array.from([3, 4]) },
    ]);
    expect(Array.from(readSafetensorsTensor(f, 'y'))).toEqual([3, 4]);
  });

  it('rejects a file shorter than 8 bytes', () => {
    expect(() => parseSafetensorsHeader(new Uint8Array(5))).toThrow(/truncated: 5 bytes, too short for the 8-byte header length/);
  });
  it('rejects a file shorter than its header', () => {
    expect(() => parseSafetensorsHeader(file.subarray(0, 40))).toThrow(/truncated: header says \d+ bytes of JSON but the file has only 40 bytes/);
  });
  it('rejects a file shorter than its data offsets', () => {
    expect(() => parseSafetensorsHeader(file.subarray(0, file.length - 3))).toThrow(
      /truncated: tensor abf ends at data byte 48 but the file holds only 45 data bytes/,
    );
  });
  it('rejects malformed JSON', () => {
    expect(() => parseSafetensorsHeader(fileWithHeader('{"a": [1, 2', 0))).toThrow(/malformed header JSON/);
    expect(() => parseSafetensorsHeader(fileWithHeader('[1]', 0))).toThrow(/expected a JSON object/);
  });
  it('rejects overlapping tensors', () => {
    const f = fileWithHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12);
    expect(() => parseSafetensorsHeader(f)).toThrow(/tensors a \[0,8\] and b \[4,12\] overlap/);
  });
  it('rejects shape / byte-count mismatch', () => {
    const f = fileWithHeader({ w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 8] } }, 8);
    expect(() => parseSafetensorsHeader(f)).toThrow(/tensor w: shape \[2, 3\] F16 needs 12 bytes but data_offsets \[0, 8\] span 8/);
  });
  it('rejects bad offsets and unknown dtypes', () => {
    expect(() => parseSafetensorsHeader(fileWithHeader({ w: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 8))).toThrow(
      /data_offsets must be \[begin, end\]/,
    );
    expect(() => parseSafetensorsHeader(fileWithHeader({ w: { dtype: 'Q9', shape: [1], data_offsets: [0, 4] } }, 4))).toThrow(/tensor w: unknown dtype Q9/);
  });
  it('parses but refuses to decode integer tensors', () => {
    const f = fileWithHeader({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8);
    expect(parseSafetensorsHeader(f).tensors.get('ids')!.dtype).toBe('I64');
    expect(() => readSafetensorsTensor(f, 'ids')).toThrow(/tensor ids has dtype I64; only F32, F16 and BF16 are supported/);
  });
  it('header is space-padded to 8 bytes', () => {
    const h = buildSafetensorsHeader([{ name: 'x', dtype: 'F32', shape: [1], nbytes: 4 }]);
    expect(h.length % 8).toBe(0);
    expect(h[h.length - 1] === 0x20 || h[h.length - 1] === 0x7d).toBe(true);
  });
});
