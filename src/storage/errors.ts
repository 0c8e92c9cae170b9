/**
 * Storage errors: one class per thing that can go wrong, each with a message a user can act on.
 * The UI shows `error.message` as it is.
 */

/** Bytes as a person reads them, in decimal units as disks and browsers count storage: "3.6 GB", "512 MB", "12 kB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'an unknown amount';
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(v)} bytes` : `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/**
 * The connection dropped while fetching a file, or never opened (`host` set: the host could not be
 * reached; `offline`: the browser says it has no network). Committed chunks are kept.
 */
export class NetworkError extends Error {
  override name = 'NetworkError';
  readonly host: string | undefined;
  readonly offline: boolean;
  constructor(
    readonly file: string,
    options?: { cause?: unknown; host?: string; offline?: boolean },
  ) {
    const host = options?.host;
    super(
      host === undefined
        ? `Connection lost while downloading ${file}. What was already downloaded is kept — press Resume to continue.`
        : options?.offline
          ? `Could not reach ${host} to download ${file}: you appear to be offline. What was already downloaded is kept — press Retry when you are back online.`
          : // The browser says it is online, yet the host refused or never answered: offline to that host, or it is down.
            `Could not reach ${host} to download ${file}: you appear to be offline, or ${host} is down or blocked from here. What was already downloaded is kept — press Retry to try again.`,
      { cause: options?.cause },
    );
    this.host = host;
    this.offline = options?.offline ?? false;
  }
}

// The fetch layer's classification (shared with the engine, the catalog and datasets): storage throws these too.
export { BrokenFileError, FileNotFoundError, HostUnreachableError, HttpStatusError } from '../formats/fetchFile.ts';

/** The server answered with an HTTP error status. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly file: string,
    readonly status: number,
    readonly url: string,
  ) {
    const what =
      status === 404
        ? 'was not found on the server (the model manifest may be out of date)'
        : status === 401 || status === 403
          ? `was refused by the server (HTTP ${status}); the files may need a login or a different address`
          : status === 429
            ? 'was refused because of too many requests (HTTP 429); wait a minute, then press Resume'
            : status >= 500
              ? `could not be downloaded: the server had a problem (HTTP ${status}). Try again later — press Resume`
              : `could not be downloaded (HTTP ${status})`;
    super(`${file} ${what}.`);
  }
}

/** A file's bytes do not match its recorded sha256 (or size). Its bytes were discarded. */
export class IntegrityError extends Error {
  override name = 'IntegrityError';
  constructor(
    readonly file: string,
    readonly detail: 'sha256 mismatch' | 'md5 mismatch' | 'size mismatch',
    readonly expected?: string,
    readonly actual?: string,
  ) {
    super(`${file} is corrupted (${detail}); it will be downloaded again when you press Resume.`);
  }
}

/**
 * Not enough room in browser storage: found by the check before any byte is written
 * (`refusedWrite` false), or when the browser refused a write (QuotaExceededError; the refused
 * write left nothing behind).
 */
export class QuotaError extends Error {
  override name = 'QuotaError';
  constructor(
    readonly neededBytes: number,
    readonly availableBytes: number,
    readonly modelName: string,
    readonly refusedWrite = false,
  ) {
    super(
      refusedWrite
        ? `Not enough storage for ${modelName}: the browser refused to store more of it ` +
            `(${formatBytes(neededBytes)} still to download). Free disk space or delete other models, then press Resume.`
        : `Not enough storage for ${modelName}: it needs ${formatBytes(neededBytes)} more, but only ` +
            `${formatBytes(Math.max(0, availableBytes))} is available to this site. Free disk space or delete other models, then press Resume.`,
    );
  }
}

/** The download was cancelled by the user. What was downloaded is kept. */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor(readonly modelName: string) {
    super(`Download of ${modelName} was cancelled. What was already downloaded is kept — press Resume to continue.`);
  }
}

/** A file was asked for that is not (completely) stored. */
export class NotStoredError extends Error {
  override name = 'NotStoredError';
  constructor(
    readonly modelId: string,
    readonly file: string,
  ) {
    super(`${file} of model ${modelId} is not stored in this browser yet. Download the model first.`);
  }
}

/** Another tab holds the model (downloading it); the action must wait or be done there. */
export class BusyError extends Error {
  override name = 'BusyError';
  constructor(
    readonly modelId: string,
    action: string,
  ) {
    super(`Model ${modelId} is being downloaded in another tab; ${action}`);
  }
}

/** Serializable form of an error, for events and stored records. */
export interface ErrorInfo {
  name: string;
  message: string;
}

export function errorInfo(e: unknown): ErrorInfo {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

/**
 * A write the browser refused for want of room. Chromium says QuotaExceededError when its quota
 * check refuses, but when the disk itself fills before that check (a small or nearly full disk:
 * seen with a profile on a 16 MiB tmpfs) the large value's blob file cannot be written and the
 * transaction fails with DataError "Failed to write blobs (IOError)".
 */
export function isQuotaExceeded(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { name, message } = e as { name?: string; message?: string };
  return (
    name === 'QuotaExceededError' ||
    (name === 'UnknownError' && /quota|space/i.test(String(message))) ||
    (name === 'DataError' && /failed to write blobs/i.test(String(message)))
  );
}
