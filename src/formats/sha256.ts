/**
 * Incremental SHA-256 (FIPS 180-4).
 *
 * Why hand-written: WebCrypto's `crypto.subtle.digest` takes the whole message at once, and a
 * shard must be hashed as it streams in (and across a page reload, when a download resumes), so
 * the running state must be saveable. `saveState()` / `Sha256.fromState()` give a plain,
 * structured-cloneable object that is stored in IndexedDB next to the last committed chunk.
 */

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const H0 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** The running state of a hash, as stored in IndexedDB between chunks. */
export interface Sha256State {
  /** The eight 32-bit working words (as signed ints). */
  h: number[];
  /** Bytes not yet forming a whole 64-byte block (0..63 bytes). */
  tail: Uint8Array;
  /** Total bytes hashed so far. */
  length: number;
}

export class Sha256 {
  private readonly h = new Int32Array(H0);
  private readonly w = new Int32Array(64);
  private readonly tail = new Uint8Array(64);
  private tailLen = 0;
  private length = 0;
  private finished = false;

  /** Bytes hashed so far. */
  get bytesHashed(): number {
    return this.length;
  }

  static fromState(s: Sha256State): Sha256 {
    const x = new Sha256();
    x.h.set(s.h);
    x.tail.set(s.tail);
    x.tailLen = s.tail.length;
    x.length = s.length;
    return x;
  }

  saveState(): Sha256State {
    return { h: Array.from(this.h), tail: this.tail.slice(0, this.tailLen), length: this.length };
  }

  update(data: Uint8Array): this {
    if (this.finished) throw new Error('Sha256: update() after digest()');
    let pos = 0;
    const n = data.length;
    this.length += n;
    if (this.tailLen > 0) {
      const take = Math.min(64 - this.tailLen, n);
      this.tail.set(data.subarray(0, take), this.tailLen);
      this.tailLen += take;
      pos = take;
      if (this.tailLen < 64) return this;
      this.block(this.tail, 0);
      this.tailLen = 0;
    }
    const whole = (n - pos) >> 6;
    if (whole > 0) {
      this.blocks(data, pos, whole);
      pos += whole * 64;
    }
    if (pos < n) {
      this.tail.set(data.subarray(pos), 0);
      this.tailLen = n - pos;
    }
    return this;
  }

  /** Finishes the hash; the object cannot be updated afterwards. */
  digest(): Uint8Array {
    if (this.finished) throw new Error('Sha256: digest() called twice');
    const bitLenHi = Math.floor(this.length / 0x20000000); // length * 8 / 2^32
    const bitLenLo = (this.length * 8) >>> 0;
    const pad = new Uint8Array(this.tailLen < 56 ? 64 - this.tailLen : 128 - this.tailLen);
    pad[0] = 0x80;
    const L = pad.length;
    pad[L - 8] = bitLenHi >>> 24;
    pad[L - 7] = bitLenHi >>> 16;
    pad[L - 6] = bitLenHi >>> 8;
    pad[L - 5] = bitLenHi;
    pad[L - 4] = bitLenLo >>> 24;
    pad[L - 3] = bitLenLo >>> 16;
    pad[L - 2] = bitLenLo >>> 8;
    pad[L - 1] = bitLenLo;
    const len = this.length;
    this.update(pad);
    this.length = len;
    this.finished = true;
    const out = new Uint8Array(32);
    for (let i = 0; i < 8; i++) {
      const v = this.h[i];
      out[i * 4] = v >>> 24;
      out[i * 4 + 1] = v >>> 16;
      out[i * 4 + 2] = v >>> 8;
      out[i * 4 + 3] = v;
    }
    return out;
  }

  /** Finishes the hash and returns it as 64 lowercase hex digits. */
  hex(): string {
    return toHex(this.digest());
  }

  private block(d: Uint8Array, p: number): void {
    this.blocks(d, p, 1);
  }

  /** Compress `n` consecutive 64-byte blocks of `d` from `p` (state kept in locals across blocks). */
  private blocks(d: Uint8Array, p: number, n: number): void {
    const w = this.w;
    const h = this.h;
    let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];
    for (let blk = 0; blk < n; blk++) {
      for (let i = 0; i < 16; i++, p += 4) {
        w[i] = (d[p] << 24) | (d[p + 1] << 16) | (d[p + 2] << 8) | d[p + 3];
      }
      for (let i = 16; i < 64; i++) {
        const x = w[i - 15];
        const y = w[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let a = h0, b = h1, c = h2, dd = h3, e = h4, f = h5, g = h6, hh = h7;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const ch = (e & f) ^ (~e & g);
        const t1 = (hh + S1 + ch + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const maj = (a & b) ^ (a & c) ^ (b & c);
        hh = g;
        g = f;
        f = e;
        e = (dd + t1) | 0;
        dd = c;
        c = b;
        b = a;
        a = (t1 + S0 + maj) | 0;
      }
      h0 = (h0 + a) | 0;
      h1 = (h1 + b) | 0;
      h2 = (h2 + c) | 0;
      h3 = (h3 + dd) | 0;
      h4 = (h4 + e) | 0;
      h5 = (h5 + f) | 0;
      h6 = (h6 + g) | 0;
      h7 = (h7 + hh) | 0;
    }
    h[0] = h0;
    h[1] = h1;
    h[2] = h2;
    h[3] = h3;
    h[4] = h4;
    h[5] = h5;
    h[6] = h6;
    h[7] = h7;
  }
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, '0');
  return s;
}

/** SHA-256 of a whole buffer, as hex. */
export function sha256Hex(data: Uint8Array | ArrayBuffer): string {
  return new Sha256().update(data instanceof Uint8Array ? data : new Uint8Array(data)).hex();
}
