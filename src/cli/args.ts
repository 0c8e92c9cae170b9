/** Minimal `--name value` / `--flag` parsing for the CLIs, with a clear error for unknown options. */
export function parseArgs(argv: string[], spec: { strings?: string[]; flags?: string[] }): { values: Record<string, string>; flags: Set<string> } {
  const values: Record<string, string> = {};
  const flags = new Set<string>();
  const strings = new Set(spec.strings ?? []);
  const flagNames = new Set(spec.flags ?? []);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new UsageError(`Unexpected argument "${a}".`);
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (flagNames.has(name)) flags.add(name);
    else if (strings.has(name)) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value.`);
      values[name] = v;
    } else throw new UsageError(`Unknown option --${name}.`);
  }
  return { values, flags };
}

export class UsageError extends Error {}

/** Run a CLI main, printing errors as one clear line (no stack) and exiting non-zero. */
export function runMain(main: () => Promise<void>, usage: string) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      const err = e as Error;
      process.stderr.write(`error: ${err.message}\n`);
      if (err instanceof UsageError) process.stderr.write(`${usage}\n`);
      if (process.env.DEBUG) process.stderr.write(`${err.stack}\n`);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}
