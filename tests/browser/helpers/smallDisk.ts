/**
 * A size-limited directory for a Chromium profile: a tmpfs of a few MiB. Chromium's storage
 * quota follows the disk its profile is on, so IndexedDB on it really refuses writes once the
 * disk is about 60% full (a 16 MiB disk refused the same write, at the same byte, every time),
 * where the CDP quota override did not always reach IndexedDB. Mounting needs root (CI runs as
 * root) or CAP_SYS_ADMIN; without it this fails at once, saying so.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallDisk {
  dir: string;
  /** Give the disk this many MiB (a tmpfs grows in place, keeping its files). */
  resize(mib: number): void;
  /** Unmount and remove the directory. */
  remove(): void;
}

export function mountSmallDisk(mib: number): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'rl-small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const uid = process.getuid?.();
    const why = ((e as { stderr?: Buffer }).stderr?.toString() || (e as Error).message).trim();
    throw new Error(
      `Precondition: this test needs a ${mib} MiB tmpfs for Chromium's profile, and mounting one failed (${why}). ` +
        `Mounting needs root or CAP_SYS_ADMIN (CI runs as root; this process runs as uid ${uid ?? 'unknown'}): run the browser tests as root, e.g. in the CI container.`,
      { cause: e },
    );
  }
  return {
    dir,
    resize: (size) => void execFileSync('mount', ['-o', `remount,size=${size}m`, dir], { stdio: 'pipe' }),
    remove: () => {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
