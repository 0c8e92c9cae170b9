/**
 * A PEFT adapter read from the Hugging Face hub by its repo id ("shuyuej/metamath_lora_llama2_7b_3_epoch"):
 * the repository's file list (`listFiles`), then adapter_config.json and adapter_model.safetensors
 * (or adapter_model.bin) through `downloadFile`, which follows the hub's resolve URLs to its CDN.
 * Conversion is not done here: the files come back as File objects, exactly what a dropped folder
 * gives, so the one conversion path (stores/adapterImport → convertPeftAdapter) handles both.
 *
 * The hub is another origin: it is fetched only when the user typed a repo id and pressed Import.
 * Its URL is configurable (`?hub=<url>` on the page, for a mirror or a test's local hub).
 */
import { PEFT_CONFIG_FILE, PEFT_PICKLED_WEIGHTS_FILE, PEFT_WEIGHTS_FILE } from '../formats/peftAdapter.ts';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

/** The hub to read from: `?hub=<url>` on the page (resolved against it), else huggingface.co. */
export function configuredHubUrl(): string {
  const q = typeof location === 'undefined' ? null : new URLSearchParams(location.search).get('hub');
  return q ? new URL(q, location.href).href.replace(/\/+$/, '') : DEFAULT_HUB_URL;
}

/** A repo id as the hub spells one: owner/name, letters, digits, '-', '_' and '.'. */
const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/** A file read from the hub, with its path inside a folder named after the repository (as a drop gives). */
export interface HubFile {
  file: File;
  path: string;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown }).statusCode;
  return typeof s === 'number' ? s : undefined;
}

/**
 * The PEFT adapter in a hub repository: its adapter_config.json and weights (safetensors where the
 * repository has them, else adapter_model.bin), as Files named `<repo name>/<file>`.
 * @throws Error naming what is wrong: a malformed repo id, a repository the hub does not have (or
 *   keeps private), one without the PEFT files (listing what it has), or a network failure
 */
export async function fetchPeftFromHub(repo: string, opts: { hubUrl?: string; revision?: string; onStatus?: (text: string) => void } = {}): Promise<HubFile[]> {
  const id = repo.trim();
  if (!REPO_RE.test(id)) throw new Error(`"${repo}" is not a Hugging Face repo id: write it as owner/name, e.g. shuyuej/metamath_lora_llama2_7b_3_epoch.`);
  const hubUrl = opts.hubUrl ?? configuredHubUrl();
  const { listFiles, downloadFile } = await import('@huggingface/hub');
  const where = { repo: { type: 'model' as const, name: id }, hubUrl, revision: opts.revision };
  const fail = (e: unknown, what: string): Error => {
    const status = statusOf(e);
    if (status === 404) return new Error(`Hugging Face has no model repository ${id} (HTTP 404 from ${hubUrl}).`);
    if (status === 401 || status === 403)
      return new Error(`${id} on Hugging Face is private or gated (HTTP ${status}): it cannot be read without an access token.`);
    return new Error(`Could not ${what} ${id} from ${hubUrl}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  };

  opts.onStatus?.(`Listing the files of ${id}…`);
  const names: string[] = [];
  try {
    for await (const f of listFiles(where)) if (f.type === 'file') names.push(f.path);
  } catch (e) {
    throw fail(e, 'list the files of');
  }
  const weightsFile = names.includes(PEFT_WEIGHTS_FILE) ? PEFT_WEIGHTS_FILE : names.includes(PEFT_PICKLED_WEIGHTS_FILE) ? PEFT_PICKLED_WEIGHTS_FILE : null;
  if (!names.includes(PEFT_CONFIG_FILE) || !weightsFile) {
    const missing = [names.includes(PEFT_CONFIG_FILE) ? null : PEFT_CONFIG_FILE, weightsFile ? null : `${PEFT_WEIGHTS_FILE} or ${PEFT_PICKLED_WEIGHTS_FILE}`];
    throw new Error(
      `${id} is not a PEFT adapter repository: it lacks ${missing.filter((x) => x !== null).join(' and ')} (it has ${names.length ? names.join(', ') : 'no files'}).`,
    );
  }

  const folder = id.split('/')[1];
  const out: HubFile[] = [];
  for (const path of [PEFT_CONFIG_FILE, weightsFile]) {
    opts.onStatus?.(`Downloading ${path} from ${id}…`);
    let blob: Blob | null;
    try {
      blob = await downloadFile({ ...where, path });
      // A WebBlob reads lazily: read it now, so a failure is reported here, as this file's.
      if (blob) blob = new Blob([await blob.arrayBuffer()]);
    } catch (e) {
      throw fail(e, `download ${path} of`);
    }
    if (!blob) throw new Error(`${id} lists ${path}, but the hub does not serve it (HTTP 404).`);
    out.push({ file: new File([blob], path), path: `${folder}/${path}` });
  }
  return out;
}
