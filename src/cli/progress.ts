/**
 * Progress of a long CLI run, one line per event on stderr (stdout keeps the result: a table or
 * JSON): the phase, the step within it, and the rate since the phase began. A run on a software
 * adapter can take minutes; silence until the end looks like a hang.
 */
export interface ProgressEvent {
  /** What is happening, e.g. "loading the model", "decode, base model (logits read back)". */
  phase: string;
  /** Steps done so far in this phase, and how many there are when known. */
  step?: number;
  steps?: number;
  /** What a step is ("step", "shard", "token"); default "step". */
  unit?: string;
}

/** A reporter that prefixes every line with the CLI's name; `write` defaults to stderr. */
export function progressReporter(cli: string, write: (line: string) => void = (l) => void process.stderr.write(l)): (e: ProgressEvent) => void {
  let phase = '';
  let phaseStart = 0;
  return (e) => {
    const now = performance.now();
    if (e.phase !== phase) {
      phase = e.phase;
      phaseStart = now;
    }
    let line = `${cli}: ${e.phase}`;
    if (e.step !== undefined) {
      const unit = e.unit ?? 'step';
      line += `: ${unit} ${e.step}${e.steps !== undefined ? ` of ${e.steps}` : ''}`;
      const seconds = (now - phaseStart) / 1000;
      if (e.step > 0 && seconds > 0) line += `, ${(e.step / seconds).toFixed(2)} ${unit}s/s`;
    }
    write(`${line}\n`);
  };
}
