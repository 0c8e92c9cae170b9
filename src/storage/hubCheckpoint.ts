/**
 * A base-model checkpoint on the Hugging Face hub, read by byte ranges through @huggingface/hub:
 * `listFiles` for the file list and sizes, `downloadFile` for each file (a lazy blob that follows
 * the resolve URL's redirect to the CDN), and `slice(start, end).arrayBuffer()` on it, which is one
 * HTTP Range request. Only safetensors headers and the rows being converted are ever fetched.
 *
 * The access token (for gated repositories such as meta-llama/Llama-2-7b-hf) is passed in by the
 * caller for this session only: nothing here stores it.
 */
import type { CheckpointFiles } from '../formats/rangeCheckpoint.ts';
import { CheckpointError } from '../formats/hfConversion.ts';
import { configuredHubUrl } from './hubAdapter.ts';

/** A repo id as the hub spells one: owner/name, letters, digits, '-', '_' and '.'. */
export const HUB_REPO_RE = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

export interface HubCheckpointOptions {
  hubUrl?: string;
  revision?: string;
  /** An HF access token, kept in memory by the caller only. */
  accessToken?: string;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown }).statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** The hub's failures in words a user can act on. */
export function hubError(e: unknown, repo: string, hubUrl: string, what: string, withToken: boolean): Error {
  const status = statusOf(e);
  if (status === 401 || status === 403) {
    return new CheckpointError(
      withToken
        ? `${repo} refused the access token (HTTP ${status}): check that the token is valid and that your account has accepted the repository's license on Hugging Face.`
        : `${repo} is gated or private (HTTP ${status}): accept its license on Hugging Face, then paste an access token (read) and try again.`,
    );
  }
  if (status === 404) return new CheckpointError(`Hugging Face has no model repository ${repo} (HTTP 404 from ${hubUrl}).`);
  return new CheckpointError(`Could not ${what} ${repo} from ${hubUrl}: ${e instanceof Error ? e.message : String(e)}`);
}

/**
 * The files of a hub repository, read by range.
 * @throws CheckpointError for a malformed id, an unknown repository, a gated one (401/403, saying
 *   whether a token was given), or a network failure
 */
export async function hubCheckpointFiles(repo: string, opts: HubCheckpointOptions = {}): Promise<CheckpointFiles> {
  const id = repo.trim();
  if (!HUB_REPO_RE.test(id)) throw new CheckpointError(`"${repo}" is not a Hugging Face repo id: write it as owner/name, e.g. NousResearch/Llama-2-7b-hf.`);
  const hubUrl = opts.hubUrl ?? configuredHubUrl();
  const accessToken = opts.accessToken || undefined;
  const { listFiles, downloadFile } = await import('@huggingface/hub');
  const where = { repo: { type: 'model' as const, name: id }, hubUrl, revision: opts.revision, accessToken };
  const sizes = new Map<string, number>();
  try {
    for await (const f of listFiles({ ...where, recursive: true })) if (f.type === 'file') sizes.set(f.path, f.size);
  } catch (e) {
    throw hubError(e, id, hubUrl, 'list the files of', !!accessToken);
  }
  const blobs = new Map<string, Promise<Blob>>();
  const blobOf = (path: string): Promise<Blob> => {
    let b = blobs.get(path);
    if (!b) {
      b = (async () => {
        let blob: Blob | null;
        try {
          blob = await downloadFile({ ...where, path });
        } catch (e) {
          throw hubError(e, id, hubUrl, `read ${path} of`, !!accessToken);
        }
        if (!blob) throw new CheckpointError(`${id} lists ${path}, but the hub does not serve it (HTTP 404).`);
        return blob;
      })();
      // A failed open is not cached: the next read (a resume after a dropped network) tries again.
      b.catch(() => blobs.delete(path));
      blobs.set(path, b);
    }
    return b;
  };
  return {
    where: id,
    paths: [...sizes.keys()],
    size: (p) => sizes.get(p),
    async read(path, start, end) {
      const blob = await blobOf(path);
      let buf: ArrayBuffer;
      try {
        buf = await blob.slice(start, end).arrayBuffer();
      } catch (e) {
        throw hubError(e, id, hubUrl, `read ${path} of`, !!accessToken);
      }
      // A host that ignores Range answers the whole file; one that cuts the body short answers less.
      if (buf.byteLength !== end - start) {
        throw new CheckpointError(
          `${id}/${path}: asked for bytes [${start}, ${end}) and got ${buf.byteLength} bytes (a host that ignores Range, or a cut connection)`,
        );
      }
      return new Uint8Array(buf);
    },
  };
}
