/** Engine errors: named classes whose messages tell the user what to do. */

export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class WebGPUUnavailableError extends EngineError {
  constructor(detail: string) {
    super(
      `WebGPU is not available in this browser (${detail}). Use a recent Chrome or Edge (version 113 or newer) ` +
        `on desktop, or Safari 26 / Firefox 141 or newer, and make sure hardware acceleration is turned on.`,
    );
  }
}

export class DeviceLostError extends EngineError {
  constructor(reason: string, detail: string) {
    super(
      `The GPU device was lost (${reason}${detail ? `: ${detail}` : ''}). This happens when the GPU driver resets, ` +
        `the tab runs out of GPU memory, or the computer sleeps. Reload the model to continue; closing other GPU-heavy tabs may help.`,
    );
  }
}

export class GPUOutOfMemoryError extends EngineError {
  constructor(what: string, bytes: number, message?: string) {
    super(
      message ??
        `Not enough GPU memory to allocate ${what} (${(bytes / 2 ** 20).toFixed(1)} MiB). ` +
          `Close other GPU-heavy tabs or applications, choose a smaller model or context length, and try again.`,
    );
  }
}

/** The device's limits on one buffer: a shader binds each storage buffer whole. */
export type BufferLimitName = 'maxStorageBufferBindingSize' | 'maxBufferSize';

/**
 * One buffer larger than the device allows for any single buffer. Not a matter of free memory
 * (closing tabs does not help), so it says which limit and which buffer. A GPUOutOfMemoryError
 * still, so that 'auto' batch sizing halves past it as it does past a failed allocation.
 */
export class BufferLimitError extends GPUOutOfMemoryError {
  constructor(what: string, bytes: number, limitName: BufferLimitName, limit: number) {
    super(
      what,
      bytes,
      `${what} needs ${binaryBytes(bytes)} in one GPU buffer, more than this GPU's ${limitName} (${binaryBytes(limit)}) allows, ` +
        `however much memory is free. Choose a smaller model (or a more quantized one), a shorter context or fewer sequences at a time.`,
    );
  }
}

function binaryBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

export class ModelFormatError extends EngineError {}

export class GenerationCancelledError extends EngineError {
  constructor() {
    super('Generation was cancelled.');
  }
}

/** A batch's longest prompt leaves no room for a token in the model's context window. */
export class PromptTooLongError extends EngineError {
  constructor(
    readonly promptTokens: number,
    readonly contextWindow: number,
  ) {
    super(`The longest prompt has ${promptTokens} tokens, more than this model's ${contextWindow}-token context window: choose a shorter prompt.`);
  }
}

/** The engine cannot do this at all (e.g. adapters or batching with WebLLM): the message says what to use instead. */
export class NotSupportedError extends EngineError {}
