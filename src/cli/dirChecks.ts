/** Checks of the directories CLIs are given, made before any browser starts: a missing one fails at once, naming itself. */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ADAPTER_MANIFEST_FILE } from '../formats/adapterFormat.ts';
import { UsageError } from './args.ts';

/** The resolved path of a converted adapter directory given as --adapter, or a UsageError saying what is wrong with it. */
export function checkAdapterDir(arg: string): string {
  const dir = resolve(arg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--adapter ${arg}: no such directory.`);
  if (!existsSync(join(dir, ADAPTER_MANIFEST_FILE)))
    throw new UsageError(`--adapter ${arg} is not a converted adapter directory (no ${ADAPTER_MANIFEST_FILE}). Run npm run convert-adapter first.`);
  return dir;
}
