/** The opening every JSON-file parser shares: text, bytes or a parsed value in, an object out. */

export type JsonObject = Record<string, unknown>;

export function isJsonObject(x: unknown): x is JsonObject {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * What a JSON file holds, as an object. `input` is the file's text, its bytes (UTF-8), or a value
 * parsed already (passed through once checked to be an object). Each parser words the two
 * failures in its own error class, naming its file: `notJson` gets JSON.parse's message.
 */
export function parseJsonObject(input: unknown, fail: { notJson: (detail: string) => Error; notObject: () => Error }): JsonObject {
  let json = input;
  const text = input instanceof Uint8Array || input instanceof ArrayBuffer ? new TextDecoder().decode(input) : input;
  if (typeof text === 'string') {
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw fail.notJson((e as Error).message);
    }
  }
  if (!isJsonObject(json)) throw fail.notObject();
  return json;
}
