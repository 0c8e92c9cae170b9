import { test, expect } from '@playwright/test';
import { openStorage } from './helpers/shardServer.ts';

test('incremental SHA-256 matches WebCrypto on random data, split anywhere, saved and restored mid-way', async ({ page }) => {
  await openStorage(page);
  const result = await page.evaluate(async () => {
    const S = (window as unknown as { S: typeof import('../../src/storage/index.ts') }).S;
    const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
    const random = (n: number) => {
      const a = new Uint8Array(n);
      for (let i = 0; i < n; i += 65536) crypto.getRandomValues(a.subarray(i, Math.min(n, i + 65536)));
      return a;
    };
    const failures: string[] = [];
    const sizes = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096, 65_537, 1_000_003];
    for (const n of sizes) {
      const data = random(n);
      const want = hex(await crypto.subtle.digest('SHA-256', data));
      if ((await S.sha256Hex(data)) !== want) failures.push(`whole ${n}`);
      // Random splits, with the state saved, structured-cloned (as IndexedDB would) and restored.
      let h = await S.createSha256();
      for (let at = 0; at < n;) {
        const k = Math.min(n - at, 1 + Math.floor(Math.random() * 300));
        h.update(data.subarray(at, at + k));
        at += k;
        if (Math.random() < 0.3) {
          const saved = structuredClone(h.save());
          h = await S.createSha256();
          h.load(saved);
        }
      }
      if (h.digest('hex') !== want) failures.push(`split ${n}`);
    }
    // Throughput, for the record (hashing runs on the download path).
    const big = random(64 << 20);
    const t = performance.now();
    await S.sha256Hex(big);
    const mbPerS = 64 / ((performance.now() - t) / 1000);
    return { failures, mbPerS };
  });
  console.log(`SHA-256 throughput in Chromium: ${result.mbPerS.toFixed(0)} MiB/s`);
  expect(result.failures).toEqual([]);
});
