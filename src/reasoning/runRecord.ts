/**
 * A run record: everything needed to say what a result was made with, and to check that results
 * made apart (shards, resumed sessions) belong to one run. Carried by every CLI result line and
 * summary, every app run and every export. Pure data and pure functions (browser and Node).
 *
 * Two records describe the same run when they agree on every field but the ones that may differ
 * between machines and sessions (RECORD_FREE_FIELDS: dates, browser/GPU/engine, the shard number).
 */
import { sha256Hex } from '../formats/hashes.ts';
import type { PromptConfig } from './prompts.ts';
import type { DatasetName } from './datasets.ts';
import { defaultKvFormat, type KvFormat } from '../engine/kvCache.ts';
import type { QuantMode } from '../formats/llamaConfig.ts';

export const RUN_RECORD_VERSION = 1;

/** How tokens were chosen. Beam search is another module's work; the record can already say it. */
export type Decoding = { kind: 'greedy' } | { kind: 'beam'; numBeams: number };

export interface Shard {
  /** 0-based shard number K of N. */
  index: number;
  count: number;
}

export interface RunRecord {
  recordVersion: typeof RUN_RECORD_VERSION;
  /** package.json "version" of Reasoning Lab. */
  appVersion: string;
  model: { id: string; fingerprint: string | null; source: string };
  adapter: { name: string | null; kind: string | null; fingerprint: string | null; baseFingerprint: string | null; source: string } | null;
  prompt: {
    id: string;
    /** The configuration exactly as used: canonical JSON of {id, template, stopSequences}. */
    text: string;
    /** SHA-256 (hex) of `text` as UTF-8. */
    sha256: string;
  };
  decoding: Decoding & { maxNewTokens: number; stops: string[] };
  /**
   * The KV cache's format the model ran with ('auto' resolved against the mode: engine/kvCache.ts),
   * or null where it was not known. It changes the numbers (an f16 cache rounds every cached key and
   * value), so parts run with different caches are not one run.
   */
  kvCache: KvFormat | null;
  dataset: {
    name: DatasetName;
    /** Where the file was read from (a path for the CLI, a URL in the app). */
    url: string;
    /** SHA-256 (hex) of the file's bytes; null when not known. */
    sha256: string | null;
    seed: number | null;
    limit: number | null;
    /** The selected problem indices (before sharding), in run order. */
    indices: number[];
    /** This part's shard of `indices`, or null for the whole run. */
    shard: Shard | null;
  };
  environment: { browser: string | null; gpuAdapter: string | null; engine: string };
  dates: { started: string; finished: string | null };
}

const encoder = new TextEncoder();

export function sha256OfText(text: string): Promise<string> {
  return sha256Hex(encoder.encode(text));
}

/** The prompt configuration's canonical text (key order fixed, nothing but what shapes the prompt). */
export function promptConfigText(config: Pick<PromptConfig, 'id' | 'template' | 'stopSequences'>): string {
  return JSON.stringify({ id: config.id, template: config.template, stopSequences: [...config.stopSequences] });
}

export interface RunRecordInput {
  appVersion: string;
  model: RunRecord['model'];
  adapter: RunRecord['adapter'];
  promptId: string;
  config: Pick<PromptConfig, 'id' | 'template' | 'stopSequences'>;
  decoding?: Decoding;
  maxNewTokens: number;
  kvCache?: KvFormat | null;
  dataset: Omit<RunRecord['dataset'], 'shard' | 'seed' | 'limit'> & { seed?: number | null; limit?: number | null; shard?: Shard | null };
  environment: RunRecord['environment'];
  started?: Date;
}

export async function buildRunRecord(input: RunRecordInput): Promise<RunRecord> {
  const text = promptConfigText(input.config);
  return {
    recordVersion: RUN_RECORD_VERSION,
    appVersion: input.appVersion,
    model: { ...input.model },
    adapter: input.adapter ? { ...input.adapter } : null,
    prompt: { id: input.promptId, text, sha256: await sha256OfText(text) },
    decoding: { ...(input.decoding ?? { kind: 'greedy' }), maxNewTokens: input.maxNewTokens, stops: [...input.config.stopSequences] },
    kvCache: input.kvCache ?? null,
    dataset: {
      name: input.dataset.name,
      url: input.dataset.url,
      sha256: input.dataset.sha256,
      seed: input.dataset.seed ?? null,
      limit: input.dataset.limit ?? null,
      indices: [...input.dataset.indices],
      shard: input.dataset.shard ?? null,
    },
    environment: { ...input.environment },
    dates: { started: (input.started ?? new Date()).toISOString(), finished: null },
  };
}

/**
 * The KV cache a stored record's results were decoded with. A record written before records named
 * the cache (no `kvCache` field, or no record at all) ran the mode's own format: there was no
 * other then. null: not known (a record that said null, or no mode to resolve against).
 */
export function recordedKvCache(record: { kvCache?: KvFormat | null } | null | undefined, mode: QuantMode | null): KvFormat | null {
  if (record && record.kvCache !== undefined) return record.kvCache;
  return mode ? defaultKvFormat(mode) : null;
}

/**
 * Fields that may differ between parts of one run (shards on other machines, resumed sessions):
 * when and where it ran, which shard, and where files were read from (their hashes and
 * fingerprints pin what was read, and a pod mounts the same files at another path).
 */
export const RECORD_FREE_FIELDS: readonly string[] = ['dates', 'environment', 'dataset.shard', 'dataset.url', 'model.source', 'adapter.source'];

function isFree(path: string, free: readonly string[]): boolean {
  return free.some((f) => path === f || path.startsWith(`${f}.`));
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? 'undefined' : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * The fields (dotted paths, e.g. "prompt.sha256", "dataset.indices") where two records of what
 * should be one run differ, with both values; [] when they agree. `free` fields are skipped.
 */
export function recordDifferences(a: unknown, b: unknown, free: readonly string[] = RECORD_FREE_FIELDS, path = ''): string[] {
  if (path && isFree(path, free)) return [];
  const bothObjects = a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b);
  if (bothObjects) {
    const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
    return keys.flatMap((k) => recordDifferences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], free, path ? `${path}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [`${path || '(record)'}: ${describe(a)} vs ${describe(b)}`];
}

/** The indices shard K of N takes from a selection: positions i with i mod N = K. */
export function shardIndices(indices: readonly number[], shard: Shard | null): number[] {
  if (!shard) return [...indices];
  return indices.filter((_, i) => i % shard.count === shard.index);
}

export class ShardSpecError extends Error {
  override name = 'ShardSpecError';
}

/** "K/N" with integers 0 <= K < N; a clear error for anything else. */
export function parseShard(spec: string): Shard {
  const m = /^\s*(-?\d+)\s*\/\s*(-?\d+)\s*$/.exec(spec);
  if (!m) throw new ShardSpecError(`--shard expects K/N with whole numbers (shard K of N, 0 <= K < N), got "${spec}".`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new ShardSpecError(`--shard ${spec}: N (the number of shards) must be at least 1.`);
  if (index < 0) throw new ShardSpecError(`--shard ${spec}: K (this shard's number) must not be negative; shards are numbered 0 to N-1.`);
  if (index >= count) throw new ShardSpecError(`--shard ${spec}: K must be less than N; shards of ${count} are numbered 0 to ${count - 1}.`);
  return { index, count };
}
