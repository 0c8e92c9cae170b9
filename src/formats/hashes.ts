/**
 * SHA-256 and MD5 for the whole project (browser main thread, worker, Node), through hash-wasm.
 *
 * Why hash-wasm and not WebCrypto: `crypto.subtle.digest` takes the whole message at once and has
 * no MD5, while a shard must be hashed as it streams in and, when a download resumes after a page
 * reload, continue from where it stopped. hash-wasm's hashers stream, and `save()` / `load()` give
 * their running state as plain bytes that IndexedDB stores next to the last committed chunk.
 * Creating a hasher is async (it instantiates the WebAssembly module); update() and digest() are
 * synchronous after that.
 */
import { createMD5, createSHA256, md5, sha256, type IDataType, type IHasher } from 'hash-wasm';

/** A streaming hasher: `update(bytes)`, `digest('hex')`, `save()`; see hash-wasm's IHasher. */
export type Hasher = IHasher;

/** A hasher's running state as `save()` returns it: structured-cloneable bytes. */
export type HashState = Uint8Array;

/** Bytes or text (hashed as UTF-8). */
export type HashInput = Uint8Array | ArrayBuffer | string;

const data = (x: HashInput): IDataType => (x instanceof ArrayBuffer ? new Uint8Array(x) : x);

/** SHA-256 of the whole input, as 64 lowercase hex digits. */
export function sha256Hex(input: HashInput): Promise<string> {
  return sha256(data(input));
}

/** MD5 of the whole input, as 32 lowercase hex digits (MLC's tensor caches publish `md5sum`). */
export function md5Hex(input: HashInput): Promise<string> {
  return md5(data(input));
}

/** A fresh streaming SHA-256. */
export function createSha256(): Promise<Hasher> {
  return createSHA256();
}

/** A fresh streaming MD5. */
export function createMd5(): Promise<Hasher> {
  return createMD5();
}

/**
 * Continue a hash from a saved state. Returns false, leaving the hasher fresh, when `state` is
 * not one this build can load: a partial download saved by an earlier build (older states were
 * plain objects of our own hand-written SHA-256, and hash-wasm refuses states of other builds).
 */
export function restoreHashState(hasher: Hasher, state: unknown): boolean {
  if (!(state instanceof Uint8Array)) return false;
  try {
    hasher.load(state);
    return true;
  } catch {
    hasher.init();
    return false;
  }
}
