import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryShardSink, TensorCacheWriter, checkShardBuffer, decodeRecord, parseTensorCache } from '../../src/formats/tensorCache.ts';
import { createMd5, createSha256, md5Hex, restoreHashState, sha256Hex } from '../../src/formats/hashes.ts';
import { f32ArrayToBf16, f32ArrayToF16 } from '../../src/formats/f16.ts';
import { rawRecordBytes, iterateShardTensors } from '../../src/formats/modelFiles.ts';
import type { ModelSource, TensorRecord } from '../../src/formats/tensorCacheTypes.ts';
import { Rng } from '../../src/formats/random.ts';

const u8 = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** SHA-256 through WebCrypto (Node 20+), a second oracle beside node:crypto. */
async function sha256HexWebCrypto(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Buffer.from(d).toString('hex');
}

describe('hashes', () => {
  it('md5 and sha256 match node:crypto and WebCrypto', async () => {
    const rng = new Rng(1);
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, 100_003]) {
      const b = new Uint8Array(n).map(() => rng.int(256));
      expect(await md5Hex(b)).toBe(createHash('md5').update(b).digest('hex'));
      expect(await sha256Hex(b)).toBe(createHash('sha256').update(b).digest('hex'));
      expect(await sha256HexWebCrypto(b)).toBe(await sha256Hex(b));
    }
    expect(await md5Hex(new TextEncoder().encode('abc'))).toBe('900150983cd24fb0d6963f7d28e17f72');
  });

  // A resumed download saves the hasher's state with each committed chunk (IndexedDB stores a
  // structured clone) and continues in a new hasher after a reload.
  for (const [name, create] of [
    ['sha256', createSha256],
    ['md5', createMd5],
  ] as const) {
    it(`${name} saved mid-way, restored in a new hasher and continued equals node:crypto over the whole`, async () => {
      const rng = new Rng(7);
      for (const n of [0, 1, 63, 64, 65, 1000, 100_003]) {
        const b = new Uint8Array(n).map(() => rng.int(256));
        for (const cut of new Set([0, Math.floor(n / 3), n])) {
          const first = await create();
          first.update(b.subarray(0, cut));
          const saved = structuredClone(first.save());
          const resumed = await create();
          expect(restoreHashState(resumed, saved)).toBe(true);
          resumed.update(b.subarray(cut));
          expect(resumed.digest('hex')).toBe(createHash(name).update(b).digest('hex'));
        }
      }
    });
  }

  it("refuses a saved state it cannot continue (an earlier build's) and leaves the hasher fresh", async () => {
    const h = await createSha256();
    h.update(new Uint8Array([1, 2, 3]));
    const oldShape = { h: [1, 2, 3, 4, 5, 6, 7, 8], tail: new Uint8Array(3), length: 3 };
    expect(restoreHashState(h, oldShape)).toBe(false);
    expect(restoreHashState(h, new Uint8Array(10))).toBe(false);
    const abc = new TextEncoder().encode('abc');
    expect(h.update(abc).digest('hex')).toBe(createHash('sha256').update(abc).digest('hex'));
  });
});

describe('tensor cache writer + parser', () => {
  async function build(shardBytes: number) {
    const sink = new MemoryShardSink();
    const w = new TensorCacheWriter(sink, { shardBytes });
    const a = Float32Array.from({ length: 40 }, (_, i) => i * 0.5 - 3);
    await w.add({ name: 'a', shape: [4, 10], dtype: 'float32' }, u8(a));
    await w.add({ name: 'h', shape: [40], dtype: 'float16' }, u8(f32ArrayToF16(a)));
    await w.add({ name: 'big', shape: [100], dtype: 'uint32' }, async (emit) => {
      for (let i = 0; i < 100; i += 25) await emit(u8(Uint32Array.from({ length: 25 }, (_, j) => i + j)));
    });
    await w.add({ name: 'b', shape: [3], dtype: 'bfloat16' }, u8(f32ArrayToBf16(Float32Array.from([1, 2, 3]))));
    const cache = await w.finish({ ParamSize: 4 });
    return { sink, cache, a };
  }

  it('shards with MLC placement (out-of-band for big records) and round-trips', async () => {
    const { sink, cache, a } = await build(400);
    // a: 160 B, h: 80 B -> pending 240; big: 400 B, 2·400 >= 400 -> own shard; b: 6 B stays pending
    expect(cache.records.map((s) => s.records.map((r) => r.name))).toEqual([['big'], ['a', 'h', 'b']]);
    expect(cache.records[0].dataPath).toBe('params_shard_0.bin');
    expect(cache.records[1].records.map((r) => r.byteOffset)).toEqual([0, 160, 240]);
    expect(cache.records[1].records[0].format).toBe('raw');
    expect(cache.records[1].records[1].format).toBe('f32-to-bf16');
    const parsed = parseTensorCache(JSON.parse(JSON.stringify(cache)));
    expect(parsed).toEqual(cache);
    for (const shard of parsed.records) {
      const buf = sink.files.get(shard.dataPath)!;
      expect(shard.md5sum).toBe(createHash('md5').update(buf).digest('hex'));
      expect(shard.sha256).toBe(await sha256HexWebCrypto(buf));
    }
    const main = sink.files.get('params_shard_1.bin')!;
    expect(Array.from(decodeRecord(parsed.records[1].records[0], main))).toEqual(Array.from(a));
    expect(Array.from(decodeRecord(parsed.records[1].records[1], main))).toEqual(Array.from(a));
    expect(Array.from(decodeRecord(parsed.records[1].records[2], main))).toEqual([1, 2, 3]);
    const big = decodeRecord(parsed.records[0].records[0], sink.files.get('params_shard_0.bin')!);
    expect(big).toBeInstanceOf(Uint32Array);
    expect(big[99]).toBe(99);
  });

  it('commits the pending shard when a small record would overflow it', async () => {
    const { cache } = await build(200);
    expect(cache.records.map((s) => s.records.map((r) => r.name))).toEqual([['a'], ['big'], ['h', 'b']]);
  });

  it('honours f32-to-bf16 only for float32 records', () => {
    const bits = f32ArrayToBf16(Float32Array.from([1.5, -2]));
    const rec: TensorRecord = { name: 's', shape: [2], dtype: 'float32', format: 'f32-to-bf16', nbytes: 4, byteOffset: 0 };
    expect(Array.from(decodeRecord(rec, u8(bits)))).toEqual([1.5, -2]);
    expect(Array.from(new Float32Array(rawRecordBytes(rec, u8(bits)).buffer))).toEqual([1.5, -2]);
    const half: TensorRecord = { ...rec, dtype: 'float16' };
    const hb = f32ArrayToF16(Float32Array.from([1.5, -2]));
    expect(Array.from(decodeRecord(half, u8(hb)))).toEqual([1.5, -2]);
    expect(rawRecordBytes(half, u8(hb))).toEqual(u8(hb)); // f16 stays f16
  });

  const good = {
    metadata: {},
    records: [
      {
        dataPath: 'params_shard_0.bin',
        format: 'raw-shard',
        nbytes: 16,
        records: [{ name: 'w', shape: [2, 2], dtype: 'float32', format: 'raw', nbytes: 16, byteOffset: 0 }],
      },
    ],
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each case edits a deep JSON clone field by field
  const mutate = (f: (o: any) => void) => {
    const o = JSON.parse(JSON.stringify(good));
    f(o);
    return o;
  };
  it.each([
    ['{not json', /tensor-cache\.json: not JSON/],
    [{ metadata: {} }, /missing "records" array/],
    [mutate((o) => delete o.records[0].records[0].name), /record 0 has no name/],
    [mutate((o) => delete o.records[0].records[0].shape), /record w: missing or invalid shape/],
    [mutate((o) => delete o.records[0].records[0].dtype), /record w: missing dtype/],
    [mutate((o) => (o.records[0].records[0].dtype = 'int8')), /record w: unknown dtype int8/],
    [mutate((o) => (o.records[0].records[0].nbytes = 12)), /record w: nbytes 12 does not match shape \[2, 2\] float32 = 16 bytes/],
    [mutate((o) => (o.records[0].records[0].format = 'f32-to-bf16')), /nbytes 16 does not match .* \(stored as bf16\) = 8 bytes/],
    [mutate((o) => (o.records[0].records[0].byteOffset = 8)), /byteOffset 8 \+ nbytes 16 is beyond the end of params_shard_0\.bin \(16 bytes\)/],
    [mutate((o) => delete o.records[0].dataPath), /shard 0: missing dataPath/],
    [
      mutate((o) => (o.records[0].dataPath = 'https://attacker.invalid/s.bin')),
      /shard 0: dataPath "https:\/\/attacker\.invalid\/s\.bin" must be a file name under the model folder \(it is a URL/,
    ],
    [mutate((o) => (o.records[0].dataPath = '../../other/s.bin')), /shard 0: dataPath .* \(it climbs out of the model folder with \.\.\/\)/],
  ])('rejects %j', (input, msg) => {
    expect(() => parseTensorCache(input)).toThrow(msg);
  });

  it('detects a truncated shard', async () => {
    const cache = parseTensorCache(good);
    expect(() => checkShardBuffer(cache.records[0], new Uint8Array(10))).toThrow(
      /shard params_shard_0\.bin has 10 bytes but tensor-cache\.json says 16 \(truncated download\?\)/,
    );
    expect(() => decodeRecord(cache.records[0].records[0], new Uint8Array(10))).toThrow(/beyond the shard's 10 bytes/);
    const source: ModelSource = { readJson: async () => null, readShard: async () => new ArrayBuffer(10) };
    await expect(iterateShardTensors(source, cache).next()).rejects.toThrow(/truncated download/);
  });
});

describe('tensor cache writer resume', () => {
  it('a writer resumed from state() after any record writes the same shards and index as one never stopped', async () => {
    const rng = new Rng(9);
    // Sizes that exercise both placements at a 4 KiB cap: pending records and out-of-band shards.
    const records = [300, 700, 2100, 64, 900, 1500, 10, 3000, 800].map((n, i) => ({ name: `t${i}`, data: rng.normalArray(n, 1) }));
    const writeAll = async (w: TensorCacheWriter, from: number, to: number) => {
      for (let i = from; i < to; i++) await w.add({ name: records[i].name, shape: [records[i].data.length], dtype: 'float32' }, u8(records[i].data));
    };
    const opts = { shardBytes: 4096 };
    const whole = new MemoryShardSink();
    const w0 = new TensorCacheWriter(whole, opts);
    await writeAll(w0, 0, records.length);
    const want = await w0.finish({ a: 1 });
    for (let stop = 1; stop < records.length; stop++) {
      const first = new MemoryShardSink();
      const w1 = new TensorCacheWriter(first, opts);
      await writeAll(w1, 0, stop);
      // What a stopped conversion keeps: plain data (through JSON, as IndexedDB would clone it) and a copy of the pending bytes.
      const state = JSON.parse(JSON.stringify(w1.state())) as ReturnType<TensorCacheWriter['state']>;
      const pending = w1.pendingData().slice();
      const second = new MemoryShardSink();
      const w2 = TensorCacheWriter.resume(second, opts, state, pending);
      await writeAll(w2, stop, records.length);
      const got = await w2.finish({ a: 1 });
      expect(got, `stopped after ${stop}`).toEqual(want);
      const files = new Map([...first.files, ...second.files]);
      expect([...files.keys()].sort()).toEqual([...whole.files.keys()].sort());
      for (const [p, b] of whole.files) expect(Buffer.from(files.get(p)!).equals(Buffer.from(b)), `${p} after stop ${stop}`).toBe(true);
    }
    expect(want.records.length).toBeGreaterThan(3);
  });

  it('refuses pending bytes that do not match the saved state', async () => {
    const w = new TensorCacheWriter(new MemoryShardSink(), { shardBytes: 4096 });
    await w.add({ name: 'a', shape: [10], dtype: 'float32' }, new Uint8Array(40));
    expect(() => TensorCacheWriter.resume(new MemoryShardSink(), { shardBytes: 4096 }, w.state(), new Uint8Array(8))).toThrow(
      'cannot resume: 8 bytes of the pending shard saved, 40 expected',
    );
  });
});
