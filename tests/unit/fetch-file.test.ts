import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import {
  BrokenFileError,
  classifyResponse,
  decodedLength,
  fetchFileBytes,
  fetchFileJson,
  FileNotFoundError,
  HostUnreachableError,
  HttpStatusError,
  isHtmlContentType,
  looksLikeHtml,
  requireFileJson,
} from '../../src/formats/fetchFile.ts';
import { INDEX_HTML, startShardServer, type ShardServer } from '../browser/helpers/shardServer.ts';

/**
 * The fetch layer's classification against a real local HTTP server that behaves like real hosts
 * (Node's fetch here; the browser's in tests/browser/fetch-hosts.spec.ts).
 */
const enc = new TextEncoder();
const JSON_TEXT = JSON.stringify({ model_type: 'llama', padding: 'x'.repeat(5000) });
const BIN = new Uint8Array(100_000).map((_, i) => (i * 7919) % 251);

let spa: ShardServer;
let plain: ShardServer;
let cdn: ShardServer;
let hub: ShardServer;

beforeAll(async () => {
  const files = { 'a.json': enc.encode(JSON_TEXT), 'shard.bin': BIN };
  spa = await startShardServer(files, { spaFallback: INDEX_HTML });
  plain = await startShardServer(files);
  cdn = await startShardServer(files);
  hub = await startShardServer({});
  hub.redirectTo(cdn.url);
});
afterAll(async () => {
  await Promise.all([spa, plain, cdn, hub].map((s) => s.close()));
});

describe('fetch layer: missing', () => {
  it('a 404 is missing (null), and requireFile* names the file and URL', async () => {
    expect(await fetchFileJson(`${plain.url}nope.json`)).toBeNull();
    await expect(requireFileJson(`${plain.url}nope.json`, { file: 'nope.json' })).rejects.toThrow(
      new FileNotFoundError('nope.json', `${plain.url}nope.json`, 'status', 404),
    );
  });

  it('a 410 is missing', async () => {
    plain.fault('a.json', { kind: 'status', status: 410 });
    const c = await classifyResponse(await fetch(`${plain.url}a.json`));
    expect(c).toMatchObject({ kind: 'missing', reason: 'status', status: 410 });
  });

  it("an SPA host's index page (200, text/html) in place of JSON or binary is missing", async () => {
    expect(await fetchFileJson(`${spa.url}tokenizer.json`)).toBeNull();
    expect(await fetchFileBytes(`${spa.url}params_shard_9.bin`)).toBeNull();
    const e = await requireFileJson(`${spa.url}tokenizer.json`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FileNotFoundError);
    expect((e as FileNotFoundError).reason).toBe('html');
    expect((e as Error).message).toMatch(/tokenizer\.json was not found at .*web page \(HTML\)/);
  });

  it('an index page sent as text/plain, or with no Content-Type, is recognised by its first bytes', async () => {
    for (const type of ['text/plain', null]) {
      const s = await startShardServer({}, { spaFallback: `\n  ${INDEX_HTML.toUpperCase()}`, spaContentType: type });
      try {
        expect(await fetchFileJson(`${s.url}tensor-cache.json`)).toBeNull();
      } finally {
        await s.close();
      }
    }
  });

  it('files the SPA host does have are found whole', async () => {
    expect(await fetchFileJson(`${spa.url}a.json`)).toEqual(JSON.parse(JSON_TEXT));
    expect(await fetchFileBytes(`${spa.url}shard.bin`)).toEqual(BIN);
  });
});

describe('fetch layer: broken', () => {
  it('a close-delimited JSON body cut short does not parse: broken, naming the file', async () => {
    plain.fault('a.json', { kind: 'close-delimited', afterBytes: 40 });
    const e = await fetchFileJson(`${plain.url}a.json`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BrokenFileError);
    expect((e as Error).message).toMatch(/^a\.json from .* arrived broken \(not valid JSON/);
  });

  it('a close-delimited body cut short of the size the caller knows is broken; whole, it is found', async () => {
    plain.fault('shard.bin', { kind: 'close-delimited', afterBytes: 60_000 });
    await expect(fetchFileBytes(`${plain.url}shard.bin`, { expectedSize: BIN.length })).rejects.toThrow(/60000 bytes where 100000 were expected/);
    plain.fault('shard.bin', { kind: 'close-delimited' });
    expect(await fetchFileBytes(`${plain.url}shard.bin`, { expectedSize: BIN.length })).toEqual(BIN);
  });

  it('Content-Length larger than the body is broken', async () => {
    plain.fault('shard.bin', { kind: 'drop', afterBytes: 30_000 });
    await expect(fetchFileBytes(`${plain.url}shard.bin`)).rejects.toBeInstanceOf(BrokenFileError);
  });

  it('gzip: Content-Length counts the compressed bytes, the decoded body is found whole', async () => {
    plain.fault('a.json', { kind: 'gzip' });
    const res = await fetch(`${plain.url}a.json`);
    expect(res.headers.get('Content-Encoding')).toBe('gzip');
    expect(Number(res.headers.get('Content-Length'))).toBeLessThan(JSON_TEXT.length);
    expect(decodedLength(res)).toBeNull();
    await res.body?.cancel();
    plain.fault('a.json', { kind: 'gzip' });
    expect(await fetchFileJson(`${plain.url}a.json`)).toEqual(JSON.parse(JSON_TEXT));
    plain.fault('shard.bin', { kind: 'gzip', closeDelimited: true });
    expect(await fetchFileBytes(`${plain.url}shard.bin`, { expectedSize: BIN.length })).toEqual(BIN);
  });

  it('gzip cut short (close-delimited, no size known): never found as a whole JSON file', async () => {
    plain.fault('a.json', { kind: 'gzip', closeDelimited: true, afterBytes: 30 });
    await expect(fetchFileJson(`${plain.url}a.json`)).rejects.toBeInstanceOf(BrokenFileError);
  });
});

describe('fetch layer: other answers', () => {
  it('a redirect to another origin (the hub to its CDN) is followed', async () => {
    expect(await fetchFileBytes(`${hub.url}shard.bin`, { expectedSize: BIN.length })).toEqual(BIN);
    expect(hub.gets('shard.bin').map((g) => g.status)).toEqual([302]);
    expect(cdn.gets('shard.bin').length).toBe(1);
  });

  it('an HTTP 500 is neither found nor missing', async () => {
    plain.fault('a.json', { kind: 'status', status: 500 });
    await expect(fetchFileJson(`${plain.url}a.json`)).rejects.toThrow(new HttpStatusError('a.json', `${plain.url}a.json`, 500));
  });

  it('a host that does not answer is unreachable, named by host', async () => {
    const port = await new Promise<number>((done) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => done(p));
      });
    });
    const e = await fetchFileJson(`http://127.0.0.1:${port}/models/index.json`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HostUnreachableError);
    expect((e as Error).message).toMatch(new RegExp(`^Could not reach 127\\.0\\.0\\.1:${port} to fetch index\\.json`));
  });
});

describe('fetch layer: the HTML tests', () => {
  it('Content-Type', () => {
    expect(isHtmlContentType('text/html; charset=utf-8')).toBe(true);
    expect(isHtmlContentType('application/xhtml+xml')).toBe(true);
    expect(isHtmlContentType('application/json')).toBe(false);
    expect(isHtmlContentType(null)).toBe(false);
  });

  it('first bytes', () => {
    expect(looksLikeHtml(enc.encode('\ufeff  <!DOCTYPE html><html>'))).toBe(true);
    expect(looksLikeHtml(enc.encode('<html lang="en">'))).toBe(true);
    expect(looksLikeHtml(enc.encode('{"a": "<html>"}'))).toBe(false);
    expect(looksLikeHtml(enc.encode('{"question": "<!doctype html>"}'))).toBe(false);
    expect(looksLikeHtml(BIN)).toBe(false);
  });
});
