/**
 * The engine's text layer for one sequence: its text as the tokens arrive (incremental
 * decoding), whether a stop string has appeared, and the final text. Used by the in-thread
 * engine (engine.ts) for every generation, so no caller tokenizes or checks stop strings itself.
 */
import type { Tokenizer } from '../formats/tokenizer.ts';
import type { StopReason } from './reasoningEngine.ts';

export class SequenceText {
  private readonly decoder;
  private readonly stops: string[];
  private text = '';

  /** Without a tokenizer there is no text: every delta is '' and the final text null. */
  constructor(
    private readonly tokenizer: Tokenizer | null,
    promptIds: readonly number[],
    stopStrings: readonly string[] = [],
  ) {
    // The prompt's last tokens make the first generated "▁" the space it is after the prompt.
    this.decoder = tokenizer?.streamDecoder(promptIds.slice(-4)) ?? null;
    this.stops = stopStrings.filter((s) => s.length > 0);
  }

  /** Take the next generated id; returns the text it completes. */
  push(tokenId: number): string {
    const delta = this.decoder ? this.decoder.push(tokenId) : '';
    this.text += delta;
    return delta;
  }

  /** The text so far contains a stop string. */
  get stopped(): boolean {
    return this.stops.some((s) => this.text.includes(s));
  }

  /** The final text: cut before the first stop string, or the exact decode of the ids after an EOS. */
  final(ids: readonly number[], stopReason: StopReason): string | null {
    if (!this.decoder) return null;
    this.text += this.decoder.flush();
    if (stopReason === 'eos') return this.tokenizer!.decode(ids);
    if (stopReason !== 'stop') return this.text;
    const at = this.stops.map((s) => this.text.indexOf(s)).filter((i) => i >= 0);
    // 'stop' without a stop string in the text: the caller's onToken asked to stop.
    return at.length ? this.text.slice(0, Math.min(...at)) : this.text;
  }
}
