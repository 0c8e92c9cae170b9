import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readTorchStateDict, torchTensorToF32, TorchPickleError } from '../../src/formats/torchPickle.ts';

/** Written by real torch.save (PyTorch 1.13) with its expected values: ../shared/data/torch-pickle. */
const DIR = resolve(import.meta.dirname, '../../../shared/data/torch-pickle');
const expected = JSON.parse(readFileSync(resolve(DIR, 'expected.json'), 'utf8')) as {
  tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
};
const read = (f: string) => new Uint8Array(readFileSync(resolve(DIR, f)));

describe('torch.save state dicts, read without running pickled code', () => {
  for (const file of ['zip_format.bin', 'legacy_format.bin']) {
    it(`${file}: every tensor with torch's dtype, shape and values (views, offsets and shared storage included)`, () => {
      const tensors = readTorchStateDict(read(file), file);
      expect([...tensors.keys()].sort()).toEqual(Object.keys(expected.tensors).sort());
      for (const [name, want] of Object.entries(expected.tensors)) {
        const t = tensors.get(name)!;
        expect(t.dtype, name).toBe(want.dtype);
        expect(t.shape, name).toEqual(want.shape);
        expect(Array.from(torchTensorToF32(name, t)), name).toEqual(want.values);
      }
    });

    it(`${file}: a truncated copy is refused with a clear message`, () => {
      const bytes = read(file);
      for (const cut of [bytes.length - 1, Math.floor(bytes.length / 2), 40]) {
        expect(() => readTorchStateDict(bytes.subarray(0, cut), file)).toThrow(TorchPickleError);
        expect(() => readTorchStateDict(bytes.subarray(0, cut), file)).toThrow(/truncated|corrupt|cannot be read|neither/);
      }
    });
  }

  /** A protocol-2 pickle from raw opcodes (what a crafted adapter_model.bin could hold). */
  const pickle = (...parts: (string | number[])[]) =>
    new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? Array.from(new TextEncoder().encode(p)) : p)));
  const legacyWith = (body: Uint8Array) => {
    // The legacy header as torch writes it: the magic number and protocol version pickles.
    const magic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
    const version = [0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e];
    return new Uint8Array([...magic, ...version, 0x80, 0x02, 0x7d, 0x2e, ...body]);
  };

  it('refuses a global a state dict never needs (os.system), naming it, before calling anything', () => {
    // cos\nsystem\n(S'echo pwned'\ntR.  — the classic pickle payload, as SHORT_BINUNICODE.
    const evil = pickle([0x80, 0x02], 'cos\nsystem\n', [0x8c, 10], 'echo pwned', [0x85, 0x52, 0x2e]);
    expect(() => readTorchStateDict(legacyWith(evil), 'adapter_model.bin')).toThrow(/"os\.system".*refused/);
    expect(() => readTorchStateDict(legacyWith(pickle([0x80, 0x02], 'cbuiltins\neval\n', [0x2e])), 'x.bin')).toThrow(/"builtins\.eval"/);
  });

  it('refuses a dict whose values are not tensors, and a file that is not torch.save at all', () => {
    // The dict {'a': 7}, then an empty storage-key list.
    const notTensors = pickle([0x80, 0x02, 0x7d, 0x8c, 1], 'a', [0x4b, 7, 0x73, 0x2e, 0x80, 0x02, 0x5d, 0x2e]);
    expect(() => readTorchStateDict(legacyWith(notTensors), 'x.bin')).toThrow(/entry "a" is 7, not a tensor/);
    expect(() => readTorchStateDict(new TextEncoder().encode('<!doctype html><html></html>'), 'x.bin')).toThrow(/neither a zip nor a legacy torch.save file/);
  });
});
