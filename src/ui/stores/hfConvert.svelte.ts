/**
 * "Add from Hugging Face": the form's state and the conversion worker (src/storage/convertWorker.ts).
 * The access token lives in this store's memory only: it is never saved, never put in a link or an
 * export, and goes to the worker in the start message alone.
 */
import {
  CONVERT_QUANTS,
  convertedModelId,
  discardConversion,
  pendingConversions,
  type ConversionState,
  type ConvertJob,
  type ConvertProgress,
  type ConvertQuant,
} from '../../storage/hfConvert.ts';
import type { ConvertReply, ConvertRequest } from '../../storage/convertWorker.ts';
import { configuredHubUrl } from '../../storage/hubAdapter.ts';
import { exportModelZip } from '../../storage/exportModel.ts';
import { models } from './models.svelte.ts';
import { downloadBlob } from '../download.ts';

export const DEFAULT_CONVERT_REPO = 'NousResearch/Llama-2-7b-hf';

/** Files of a picked or dropped checkpoint folder, paths relative to that folder. */
export function checkpointFolderFiles(files: readonly { file: File; path: string }[]): { folder: string; files: [string, File][] } {
  const config = files.find((f) => f.path.split('/').pop() === 'config.json');
  if (!config) throw new Error('The folder has no config.json: pick the folder of a Hugging Face checkpoint (config.json and *.safetensors).');
  const prefix = config.path.slice(0, config.path.length - 'config.json'.length);
  const inside = files.filter((f) => f.path.startsWith(prefix)).map((f) => [f.path.slice(prefix.length), f.file] as [string, File]);
  return { folder: prefix.replace(/\/$/, '') || config.file.name, files: inside };
}

class HfConvertStore {
  repo = $state(DEFAULT_CONVERT_REPO);
  /** Memory only (see the header). */
  token = $state('');
  quant = $state<ConvertQuant>('q4f16_1');
  progress = $state<ConvertProgress | null>(null);
  running = $state<string | null>(null);
  error = $state<string | null>(null);
  notice = $state<string | null>(null);
  pending = $state.raw<ConversionState[]>([]);
  readonly quants = CONVERT_QUANTS;
  /** Test hook: small shards and row blocks make a tiny checkpoint span many shards. */
  shardBytes: number | undefined;
  blockBytes: number | undefined;
  /** Ends the running conversion's worker (and settles its promise). */
  private stop: (() => void) | null = null;

  async refreshPending() {
    this.pending = await pendingConversions();
  }

  /**
   * Convert the repo id in the form (or resume its saved conversion). `as`: store it under a
   * catalog entry's id and name (the entry then shows Stored), e.g. Llama-2-7B from NousResearch.
   */
  startHub(repo = this.repo, quant = this.quant, as?: { id: string; name: string }) {
    const name = repo.trim();
    const job: ConvertJob = {
      id: as?.id ?? convertedModelId(name, quant),
      name: as?.name ?? `${name} (${quant}, converted here)`,
      quant,
      source: { kind: 'hub', repo: name, hubUrl: configuredHubUrl() },
    };
    return this.run(job);
  }

  /** Convert a picked or dropped checkpoint folder. */
  startLocal(picked: readonly { file: File; path: string }[], quant = this.quant) {
    let folder: string;
    let files: [string, File][];
    try {
      ({ folder, files } = checkpointFolderFiles(picked));
    } catch (e) {
      this.error = (e as Error).message;
      return Promise.resolve();
    }
    const job: ConvertJob = { id: convertedModelId(folder, quant), name: `${folder} (${quant}, converted here)`, quant, source: { kind: 'local', folder } };
    return this.run(job, files);
  }

  /** Resume a saved conversion (a hub one from its repo; a local one needs its folder picked again). */
  resume(s: ConversionState) {
    if (s.job.source.kind === 'hub') return this.run(s.job);
    this.notice = `Pick the folder ${s.job.source.folder} again to resume its conversion.`;
    return Promise.resolve();
  }

  async discard(id: string) {
    await discardConversion(id);
    await this.refreshPending();
    await models.refresh();
  }

  /** Stop now; what was converted up to the last whole tensor is kept for Resume. */
  pause() {
    this.stop?.();
    this.progress = null;
  }

  private run(job: ConvertJob, localFiles?: [string, File][]): Promise<void> {
    if (this.running) return Promise.resolve();
    this.error = null;
    this.notice = null;
    this.running = job.id;
    this.progress = null;
    const worker = new Worker(new URL('../../storage/convertWorker.ts', import.meta.url), { type: 'module' });
    return new Promise<void>((done) => {
      const finish = () => {
        worker.terminate();
        if (this.stop === finish) this.stop = null;
        this.running = null;
        void this.refreshPending().then(() => models.refresh());
        done();
      };
      this.stop = finish;
      worker.onmessage = (e: MessageEvent<ConvertReply>) => {
        const m = e.data;
        if (m.type === 'progress') this.progress = m.progress;
        else if (m.type === 'done') {
          this.notice = `Stored ${m.manifest.name}: ${this.progress?.tensorCount ?? ''} tensors converted.`;
          this.progress = null;
          finish();
        } else {
          this.error = m.message;
          this.progress = null;
          finish();
        }
      };
      worker.onerror = (e) => {
        this.error = `The conversion worker failed: ${e.message}`;
        finish();
      };
      const req: ConvertRequest = {
        type: 'start',
        job,
        accessToken: job.source.kind === 'hub' && this.token.trim() ? this.token.trim() : undefined,
        localFiles,
        shardBytes: this.shardBytes,
        blockBytes: this.blockBytes,
      };
      worker.postMessage(req);
    });
  }

  /** "Export as MLC folder": a zip of the stored model, saved through a Blob link. */
  async exportZip(id: string) {
    try {
      this.notice = `Packing ${id}…`;
      downloadBlob(`${id}.zip`, await exportModelZip(id));
      this.notice = `Exported ${id}.zip: unzip it and host the folder (see "Getting the models" in the README).`;
    } catch (e) {
      this.error = (e as Error).message;
    }
  }
}

export const hfConvert = new HfConvertStore();
