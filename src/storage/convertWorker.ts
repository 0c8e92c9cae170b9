/**
 * The worker that runs "Add from Hugging Face" (hfConvert.ts): reading, quantizing and storing
 * happen here, off the page's thread. One conversion per worker; Pause terminates the worker
 * (what was saved after the last whole parameter is where Resume starts).
 *
 * Messages: in `ConvertRequest` (the access token travels only in this message and lives only in
 * this worker's memory); out `ConvertReply`.
 */
import { lockName } from './active.ts';
import { hubCheckpointFiles } from './hubCheckpoint.ts';
import { convertCheckpointToStore, type ConvertJob, type ConvertProgress } from './hfConvert.ts';
import { localCheckpointFiles } from '../formats/rangeCheckpoint.ts';
import type { ModelManifest } from '../formats/manifest.ts';

export interface ConvertRequest {
  type: 'start';
  job: ConvertJob;
  accessToken?: string;
  /** Local sources: the picked files by path inside the checkpoint folder. */
  localFiles?: [string, File][];
  shardBytes?: number;
  blockBytes?: number;
}

export type ConvertReply =
  { type: 'progress'; progress: ConvertProgress } | { type: 'done'; manifest: ModelManifest } | { type: 'error'; name: string; message: string };

const post = (m: ConvertReply) => (self as unknown as Worker).postMessage(m);

self.onmessage = async (e: MessageEvent<ConvertRequest>) => {
  const req = e.data;
  if (req.type !== 'start') return;
  const { job } = req;
  try {
    const run = async () => {
      const files =
        job.source.kind === 'hub'
          ? await hubCheckpointFiles(job.source.repo, { hubUrl: job.source.hubUrl, revision: job.source.revision, accessToken: req.accessToken })
          : localCheckpointFiles(job.source.folder, new Map(req.localFiles ?? []));
      return convertCheckpointToStore(job, files, async () => (await import('../formats/llama2Tokenizer.ts')).llama2TokenizerFiles(), {
        shardBytes: req.shardBytes,
        blockBytes: req.blockBytes,
        onProgress: (progress) => post({ type: 'progress', progress }),
      });
    };
    // One tab converts a model at a time; a download or delete of the same id waits for it.
    const manifest = navigator.locks
      ? await navigator.locks.request(lockName(job.id), { ifAvailable: true }, async (lock) => {
          if (!lock) throw Object.assign(new Error(`${job.name} is being converted or downloaded in another tab; let it finish there.`), { name: 'BusyError' });
          return run();
        })
      : await run();
    post({ type: 'done', manifest });
  } catch (err) {
    const x = err as Error;
    post({ type: 'error', name: x?.name ?? 'Error', message: x?.message ?? String(err) });
  }
};
