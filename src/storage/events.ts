/**
 * Storage events for the UI: download progress and model state changes, in this tab and (through
 * a BroadcastChannel) in every other tab of the site, so a tab that waits for another tab's
 * download shows its progress.
 */

import type { ErrorInfo } from './errors.ts';

/**
 * not-stored: nothing in this browser · downloading: a tab is downloading it now ·
 * partial: some files stored, resumable · stored: every file complete and verified ·
 * corrupt: a file failed verification (its bytes were discarded; Resume downloads it again).
 */
export type ModelState = 'not-stored' | 'downloading' | 'partial' | 'stored' | 'corrupt';

export interface ProgressEvent {
  type: 'progress';
  modelId: string;
  /** The file that just advanced, its 1-based index among `fileCount` files. */
  file: string;
  fileIndex: number;
  fileCount: number;
  fileBytesDone: number;
  fileBytesTotal: number | null;
  /** Files complete so far. */
  filesDone: number;
  /** Whole model: bytes stored (or in flight) and expected. */
  bytesDone: number;
  bytesTotal: number;
  /** Download rate over the last few seconds, bytes per second. */
  bytesPerSecond: number;
  /** Time left at that rate; null while unknown. */
  etaSeconds: number | null;
  /** True when the event came from another tab. */
  remote?: boolean;
}

export interface StateEvent {
  type: 'state';
  modelId: string;
  /** 'waiting': another tab holds the download; this tab observes and takes over if needed. */
  state: ModelState | 'waiting';
  error?: ErrorInfo;
  remote?: boolean;
}

export type StorageEvent = ProgressEvent | StateEvent;
export type StorageListener = (event: StorageEvent) => void;

interface CancelRequest {
  type: 'cancel-request';
  modelId: string;
}

const CHANNEL = 'reasoning-lab-models';
const listeners = new Set<StorageListener>();
const cancelHandlers = new Map<string, () => void>();
let channel: BroadcastChannel | undefined;

function getChannel(): BroadcastChannel | undefined {
  if (channel || typeof BroadcastChannel === 'undefined') return channel;
  channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (m: MessageEvent<StorageEvent | CancelRequest>) => {
    const e = m.data;
    if (e.type === 'cancel-request') cancelHandlers.get(e.modelId)?.();
    else deliver({ ...e, remote: true });
  };
  return channel;
}

function deliver(e: StorageEvent): void {
  for (const l of [...listeners]) {
    try {
      l(e);
    } catch (err) {
      console.error('storage listener failed', err);
    }
  }
}

/**
 * Listen to progress and state events of every model, from this tab and other tabs.
 * Works with Svelte: call it in an `$effect` and return the unsubscribe function.
 * @returns a function that stops listening
 */
export function subscribe(listener: StorageListener): () => void {
  getChannel();
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

/** Send an event to this tab's listeners and to other tabs. */
export function emit(e: StorageEvent): void {
  deliver(e);
  getChannel()?.postMessage(e);
}

/** @internal The tab running a download registers how to cancel it, for requests from other tabs. */
export function onCancelRequest(modelId: string, handler: () => void): () => void {
  getChannel();
  cancelHandlers.set(modelId, handler);
  return () => {
    if (cancelHandlers.get(modelId) === handler) cancelHandlers.delete(modelId);
  };
}

/** @internal Ask whichever tab downloads the model to cancel. */
export function requestRemoteCancel(modelId: string): void {
  getChannel()?.postMessage({ type: 'cancel-request', modelId } satisfies CancelRequest);
}
