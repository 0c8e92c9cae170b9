/** Downloads running in this tab, and the Web Lock that makes a model's download single-tab. */

import { requestRemoteCancel } from './events.ts';

/** The Web Lock held while a tab downloads (or deletes) a model. */
export function lockName(modelId: string): string {
  return `reasoning-lab-model:${modelId}`;
}

export interface ActiveDownload {
  controller: AbortController;
  promise: Promise<void>;
}

export const activeDownloads = new Map<string, ActiveDownload>();

/**
 * Cancel a model's download, in this tab or in whichever other tab runs it. What was downloaded
 * is kept; `downloadModel` rejects with CancelledError.
 */
export function cancelDownload(modelId: string): void {
  const a = activeDownloads.get(modelId);
  if (a) a.controller.abort();
  else requestRemoteCancel(modelId);
}

/** Names of the model locks held in any tab of this site (empty where Web Locks are missing). */
export async function heldModelLocks(): Promise<Set<string>> {
  if (typeof navigator === 'undefined' || !navigator.locks) return new Set();
  const q = await navigator.locks.query();
  return new Set((q.held ?? []).map((l) => l.name ?? ''));
}
