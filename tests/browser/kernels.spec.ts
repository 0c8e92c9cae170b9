import { test, expect, type Page } from '@playwright/test';

/** Each kernel on a real WebGPU device against the oracle, on random inputs with odd sizes (f32 paths: 1e-4). */
type Checks = typeof import('./harness/kernelChecks.ts');

async function check<K extends keyof Checks>(page: Page, name: K, ...args: Parameters<Checks[K]>): Promise<number> {
  return page.evaluate(
    async ({ name, args }) => {
      const checks = (await import(/* @vite-ignore */ '/tests/browser/harness/kernelChecks.ts' as string)) as Checks;
      return (checks[name] as (...a: unknown[]) => Promise<number>)(...args);
    },
    { name, args: args as unknown[] },
  );
}

async function call<K extends keyof Checks>(page: Page, name: K, ...args: Parameters<Checks[K]>): Promise<Awaited<ReturnType<Checks[K]>>> {
  return page.evaluate(
    async ({ name, args }) => {
      const checks = (await import(/* @vite-ignore */ '/tests/browser/harness/kernelChecks.ts' as string)) as Checks;
      return (checks[name] as (...a: unknown[]) => Promise<unknown>)(...args);
    },
    { name, args: args as unknown[] },
  ) as Promise<Awaited<ReturnType<Checks[K]>>>;
}

test.beforeEach(async ({ page }) => {
  await page.goto('/harness.html');
});

const TOL = 1e-4;

test('matmul over f32, f16 and q4 weights, odd sizes, several rows', async ({ page }) => {
  for (const [IN, OUT, rows] of [
    [37, 29, 1],
    [37, 29, 11],
    [64, 130, 3],
    [5, 1, 2],
  ] as const) {
    expect(await check(page, 'checkMatmul', 'f32', IN, OUT, rows), `f32 ${IN}x${OUT} rows ${rows}`).toBeLessThan(TOL);
    expect(await check(page, 'checkMatmul', 'f16', IN, OUT, rows), `f16 ${IN}x${OUT} rows ${rows}`).toBeLessThan(TOL);
  }
  for (const [IN, OUT, rows] of [
    [96, 33, 1],
    [64, 130, 9],
    [32, 1, 3],
  ] as const) {
    expect(await check(page, 'checkMatmul', 'q4f32', IN, OUT, rows), `q4f32 ${IN}x${OUT}`).toBeLessThan(TOL);
    expect(await check(page, 'checkMatmul', 'q4f16', IN, OUT, rows), `q4f16 ${IN}x${OUT}`).toBeLessThan(TOL);
  }
});

test('matmul accumulates into the residual and reads from a row offset (LM head of the last rows)', async ({ page }) => {
  expect(await check(page, 'checkMatmul', 'f32', 37, 29, 5, { accumulate: true })).toBeLessThan(TOL);
  expect(await check(page, 'checkMatmul', 'q4f16', 64, 70, 5, { accumulate: true })).toBeLessThan(TOL);
  expect(await check(page, 'checkMatmul', 'f32', 37, 29, 5, { xRowOffset: 4 })).toBeLessThan(TOL);
  expect(await check(page, 'checkMatmul', 'q4f32', 64, 70, 10, { xRowOffset: 3 })).toBeLessThan(TOL);
});

test('q4 decode matrix-vector kernel, shared-memory and subgroup reductions', async ({ page }) => {
  for (const subgroups of [false, true]) {
    for (const [IN, OUT, rows] of [
      [32, 1, 1],
      [96, 33, 1],
      [4096, 7, 1],
      [320, 130, 8],
      [64, 65, 3],
    ] as const) {
      expect(await check(page, 'checkQ4MatVec', 'q4f16', IN, OUT, rows, { subgroups }), `q4f16 ${IN}x${OUT} rows ${rows} subgroups ${subgroups}`).toBeLessThan(
        TOL,
      );
      expect(await check(page, 'checkQ4MatVec', 'q4f32', IN, OUT, rows, { subgroups }), `q4f32 ${IN}x${OUT} rows ${rows} subgroups ${subgroups}`).toBeLessThan(
        TOL,
      );
    }
    expect(await check(page, 'checkQ4MatVec', 'q4f16', 128, 40, 4, { subgroups, accumulate: true })).toBeLessThan(TOL);
    expect(await check(page, 'checkQ4MatVec', 'q4f32', 64, 50, 6, { subgroups, xRowOffset: 5 })).toBeLessThan(TOL);
    expect(await check(page, 'checkQ4MatVec', 'q4f16', 64, 20, 2, { subgroups, splitRow: 10 })).toBeLessThan(TOL);
  }
});

test('tiled prefill matmul (workgroup memory) over f32, f16 and q4 weights, with partial tiles', async ({ page }) => {
  for (const [IN, OUT, rows] of [
    [37, 29, 9],
    [64, 130, 70],
    [5, 1, 65],
    [100, 64, 64],
  ] as const) {
    expect(await check(page, 'checkMatmul', 'f32', IN, OUT, rows, { tiled: true }), `f32 ${IN}x${OUT} rows ${rows}`).toBeLessThan(TOL);
    expect(await check(page, 'checkMatmul', 'f16', IN, OUT, rows, { tiled: true }), `f16 ${IN}x${OUT} rows ${rows}`).toBeLessThan(TOL);
  }
  for (const [IN, OUT, rows] of [
    [96, 33, 9],
    [64, 130, 70],
    [32, 1, 65],
  ] as const) {
    expect(await check(page, 'checkMatmul', 'q4f32', IN, OUT, rows, { tiled: true }), `q4f32 ${IN}x${OUT}`).toBeLessThan(TOL);
    expect(await check(page, 'checkMatmul', 'q4f16', IN, OUT, rows, { tiled: true }), `q4f16 ${IN}x${OUT}`).toBeLessThan(TOL);
  }
  expect(await check(page, 'checkMatmul', 'q4f16', 64, 70, 20, { tiled: true, accumulate: true })).toBeLessThan(TOL);
  expect(await check(page, 'checkMatmul', 'f32', 37, 29, 75, { tiled: true, xRowOffset: 4 })).toBeLessThan(TOL);
});

test('matmul with each adapter activation (tanh, relu, silu, gelu)', async ({ page }) => {
  for (const act of [1, 2, 3, 4]) {
    expect(await check(page, 'checkMatmul', 'f32', 37, 29, 3, { act }), `act ${act}`).toBeLessThan(TOL);
    expect(await check(page, 'checkMatmul', 'f32', 37, 29, 12, { act, tiled: true }), `tiled act ${act}`).toBeLessThan(TOL);
  }
});

// A LoRA / parallel adapter fused into the base matmul (adapterAdd.wgsl): y (+)= W x + scale[seg] U z,
// with 1-3 stacked segments (q | k | v) whose boundaries fall inside workgroups and tiles, bottleneck
// widths from 1 to past the q4 decode kernel's 64 lanes, with and without the residual add.
type FusedCase = readonly [IN: number, OUT: number, rows: number, r: number, segments: 1 | 2 | 3, accumulate: boolean];

test('per-row matmul with a fused adapter over f32, f16 and q4 weights', async ({ page }) => {
  const dense: FusedCase[] = [
    [37, 29, 1, 5, 1, false],
    [37, 29, 11, 3, 3, true],
    [64, 130, 3, 70, 2, false],
    [5, 7, 2, 1, 3, true],
  ];
  const q4: FusedCase[] = [
    [96, 33, 1, 4, 3, false],
    [64, 130, 9, 8, 2, true],
    [32, 5, 3, 130, 1, true],
  ];
  for (const [formats, cases] of [
    [['f32', 'f16'], dense],
    [['q4f32', 'q4f16'], q4],
  ] as const) {
    for (const [IN, OUT, rows, r, segments, accumulate] of cases) {
      for (const format of formats) {
        const err = await check(page, 'checkMatmul', format, IN, OUT, rows, { accumulate, adapter: { r, segments } });
        expect(err, `${format} ${IN}x${OUT} rows ${rows} r ${r} segments ${segments} accumulate ${accumulate}`).toBeLessThan(TOL);
      }
    }
  }
});

test('q4 decode matrix-vector kernel with a fused adapter, shared-memory and subgroup reductions', async ({ page }) => {
  const cases: FusedCase[] = [
    [96, 33, 1, 4, 3, false],
    [320, 130, 8, 70, 2, true],
    [64, 65, 3, 256, 3, false],
    [32, 7, 1, 1, 1, true],
    [4096, 7, 1, 130, 2, true],
  ];
  for (const subgroups of [false, true]) {
    for (const [IN, OUT, rows, r, segments, accumulate] of cases) {
      for (const format of ['q4f16', 'q4f32'] as const) {
        const err = await check(page, 'checkQ4MatVec', format, IN, OUT, rows, { subgroups, accumulate, adapter: { r, segments } });
        expect(err, `${format} ${IN}x${OUT} rows ${rows} r ${r} segments ${segments} accumulate ${accumulate} subgroups ${subgroups}`).toBeLessThan(TOL);
      }
    }
  }
});

test('tiled prefill matmul with a fused adapter over f32, f16 and q4 weights, with partial tiles', async ({ page }) => {
  const dense: FusedCase[] = [
    [37, 29, 9, 5, 3, true],
    [64, 130, 70, 70, 2, false],
    [100, 64, 64, 1, 1, true],
  ];
  const q4: FusedCase[] = [
    [96, 33, 9, 8, 3, false],
    [64, 130, 70, 130, 2, true],
    [32, 7, 65, 4, 3, true],
  ];
  for (const [formats, cases] of [
    [['f32', 'f16'], dense],
    [['q4f32', 'q4f16'], q4],
  ] as const) {
    for (const [IN, OUT, rows, r, segments, accumulate] of cases) {
      for (const format of formats) {
        const err = await check(page, 'checkMatmul', format, IN, OUT, rows, { tiled: true, accumulate, adapter: { r, segments } });
        expect(err, `${format} ${IN}x${OUT} rows ${rows} r ${r} segments ${segments} accumulate ${accumulate}`).toBeLessThan(TOL);
      }
    }
  }
});

// Exact, not within a tolerance: a lookup copies (f32, f16 widened) or dequantizes with one f32
// rounding of (q - 7)·scale, which the oracle's Math.fround gives too. This pins q4Values.wgsl's
// float-bits decoding of the nibbles (3 rows of 64 random values: every nibble at every position).
test('embedding lookup in every storage format gives the stored values bit for bit', async ({ page }) => {
  expect(await check(page, 'checkEmbedding', 'f32', 50, 37, [0, 49, 7, 7])).toBe(0);
  expect(await check(page, 'checkEmbedding', 'f16', 50, 37, [3, 1])).toBe(0);
  expect(await check(page, 'checkEmbedding', 'q4f32', 50, 64, [0, 49, 12])).toBe(0);
  expect(await check(page, 'checkEmbedding', 'q4f16', 50, 96, [5, 17, 33])).toBe(0);
});

test('RMSNorm on odd widths', async ({ page }) => {
  expect(await check(page, 'checkRmsnorm', 37, 3)).toBeLessThan(TOL);
  expect(await check(page, 'checkRmsnorm', 4096, 2)).toBeLessThan(TOL);
  expect(await check(page, 'checkRmsnorm', 1, 1)).toBeLessThan(TOL);
});

test('RoPE (rotate-half) on q in place and rotated k with v into the KV cache, f32 and f16 caches', async ({ page }) => {
  // (heads, kv heads, head dim, rows, start position, theta, slot, slots). Head dims 6, 10 and 14
  // have an odd half: a thread's adjacent k pair then straddles the rotate-half boundary.
  const cases = [
    [4, 2, 16, 3, 0, 10000, 0, 1],
    [3, 1, 6, 5, 1000, 500000, 0, 1],
    [5, 1, 8, 2, 7, 10000, 0, 1], // the odd tiny model's heads
    [3, 3, 10, 2, 7, 10000, 2, 3], // slot 2 of 3 (batched decoding)
    [8, 4, 14, 2, 40, 10000, 1, 2], // 84 threads a row: more than one workgroup
  ] as const;
  for (const kv of ['f32', 'f16'] as const) {
    for (const [H, KV, hd, rows, pos, theta, slot, slots] of cases) {
      const err = await check(page, 'checkRopeKvWrite', kv, H, KV, hd, rows, pos, theta, slot, slots);
      expect(err, `${kv} cache, ${H} heads, ${KV} kv heads, head dim ${hd}`).toBeLessThan(TOL);
    }
  }
});

test("the f16 KV cache rounds every key and value to nearest, ties to even (the reference's f16 cache), bit for bit", async ({ page }) => {
  const r = await call(page, 'checkKvF16Rounding');
  expect(r.mismatches).toEqual([]);
  expect(r.mismatchCount).toBe(0);
  // The check tells the roundings apart: toward zero would differ on many of these values.
  expect(r.towardZeroDiffers).toBeGreaterThan(r.values / 4);
});

test('SwiGLU on odd widths', async ({ page }) => {
  expect(await check(page, 'checkSwiglu', 37, 3)).toBeLessThan(TOL);
  expect(await check(page, 'checkSwiglu', 1, 1)).toBeLessThan(TOL);
});

test('causal grouped-query attention over the KV cache, f32 and f16 caches', async ({ page }) => {
  // (kv, heads, kv heads, head dim, cached positions, new rows, context)
  expect(await check(page, 'checkAttention', 'f32', 4, 2, 16, 0, 5, 16)).toBeLessThan(TOL);
  expect(await check(page, 'checkAttention', 'f32', 6, 2, 6, 7, 1, 20)).toBeLessThan(TOL);
  expect(await check(page, 'checkAttention', 'f32', 3, 3, 10, 70, 3, 80)).toBeLessThan(TOL);
  // f16 cache: the oracle sees the same f16-rounded keys and values, so f32 math must agree to 1e-4.
  expect(await check(page, 'checkAttention', 'f16', 4, 1, 8, 9, 4, 16)).toBeLessThan(TOL);
  // A sequence in slot 2 of a 3-slot cache (batched decoding): only its own keys are read.
  expect(await check(page, 'checkAttention', 'f32', 4, 2, 8, 6, 2, 12, 2, 3)).toBeLessThan(TOL);
  expect(await check(page, 'checkAttention', 'f16', 2, 1, 6, 5, 1, 10, 1, 2)).toBeLessThan(TOL);
});

test('attention in one dispatch (scores, softmax, output) matches the oracle, f32 and f16 caches, batched slots, head dims past 64', async ({ page }) => {
  // (kv, heads, kv heads, head dim, cached positions, new rows, context, slot, slots)
  expect(await check(page, 'checkAttention', 'f32', 4, 2, 16, 0, 5, 16, 0, 1, true)).toBeLessThan(TOL);
  expect(await check(page, 'checkAttention', 'f32', 3, 3, 10, 70, 3, 80, 0, 1, true)).toBeLessThan(TOL);
  expect(await check(page, 'checkAttention', 'f16', 4, 1, 8, 9, 4, 16, 0, 1, true)).toBeLessThan(TOL);
  expect(await check(page, 'checkAttention', 'f32', 4, 2, 8, 6, 2, 12, 2, 3, true)).toBeLessThan(TOL);
  expect(await check(page, 'checkAttention', 'f16', 2, 1, 130, 5, 1, 10, 1, 2, true)).toBeLessThan(TOL);
});

// RMSNorm folded into the matmul after it (Σx² beside the dot, the norm weight applied on the fly),
// optionally with SwiGLU in the epilogue of the fused [gate | up] matrix.
test('RMSNorm folded into the per-row matmul over f32, f16 and q4 weights, with a SwiGLU epilogue and a row offset', async ({ page }) => {
  for (const [format, IN, OUT, rows] of [
    ['f32', 37, 30, 1],
    ['f16', 37, 30, 11],
    ['q4f32', 96, 34, 3],
    ['q4f16', 64, 130, 9],
  ] as const) {
    for (const swiglu of [false, true]) {
      expect(await check(page, 'checkNormMatmul', format, IN, OUT, rows, { swiglu }), `${format} ${IN}x${OUT} rows ${rows} swiglu ${swiglu}`).toBeLessThan(TOL);
    }
  }
  expect(await check(page, 'checkNormMatmul', 'f32', 37, 29, 5, { xRowOffset: 4 })).toBeLessThan(TOL);
});

test('the q4 matvec reductions hold for subgroups of 4 to 128 lanes that are not consecutive slices (subgroups emulated in workgroup memory)', async ({
  page,
}) => {
  // Both q4 decode kernels end in the same reduction (reduceRowsSubgroup.wgsl). 65 groups: more than the 64 lanes.
  for (const size of [4, 8, 16, 32, 64, 128]) {
    const err = await check(page, 'checkQ4MatVec', 'q4f16', 2080, 9, 8, { subgroups: true, emulateSubgroupSize: size });
    expect(err, `q4MatVec, subgroups of ${size}`).toBeLessThan(TOL);
  }
  for (const size of [4, 32, 128]) {
    const err = await check(page, 'checkNormMatmul', 'q4f32', 320, 40, 3, { swiglu: true, q4MatVec: true, emulateSubgroupSize: size });
    expect(err, `normQ4MatVec with SwiGLU, subgroups of ${size}`).toBeLessThan(TOL);
  }
});

test('RMSNorm folded into the q4 decode matrix-vector kernel, with a SwiGLU epilogue, padded groups and a row offset, shared-memory and subgroup reductions', async ({
  page,
}) => {
  // 2080 columns: 65 groups, more than the 64 lanes; 8 rows: the kernel's whole tile. (Each case compiles a pipeline: few cases.)
  for (const [format, IN, OUT, rows, swiglu, subgroups] of [
    ['q4f16', 32, 2, 1, true, false],
    ['q4f16', 2080, 6, 1, true, true],
    ['q4f16', 320, 40, 8, false, false],
    ['q4f16', 320, 40, 8, true, true],
    ['q4f32', 64, 66, 3, true, false],
    ['q4f32', 96, 34, 2, false, true],
  ] as const) {
    expect(
      await check(page, 'checkNormMatmul', format, IN, OUT, rows, { swiglu, q4MatVec: true, subgroups }),
      `${format} ${IN}x${OUT} rows ${rows} swiglu ${swiglu} subgroups ${subgroups}`,
    ).toBeLessThan(TOL);
  }
  expect(await check(page, 'checkNormMatmul', 'q4f32', 64, 50, 6, { q4MatVec: true, xRowOffset: 5, subgroups: true })).toBeLessThan(TOL);
});

// The qkv matmul with RoPE and the KV write in its epilogue (qkvEpilogue.wgsl): the decode path
// has no separate ropeKvWrite pass. Rows at their own (slot, position): one sequence, or batched.
test('RMSNorm + qkv matmul with RoPE and the KV write in the epilogue, per-row and q4 decode kernels, f32 and f16 caches, batched slots', async ({ page }) => {
  // (weights, cache, heads, kv heads, head dim, IN, row slots, row positions, q4MatVec, subgroups)
  const cases = [
    ['f32', 'f32', 4, 2, 16, 37, [0, 0, 0], [5, 6, 7], false, false],
    ['f16', 'f16', 5, 1, 8, 40, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], false, false], // the odd tiny model's heads; two row tiles
    ['q4f32', 'f32', 16, 8, 20, 64, [2, 0, 1], [9, 3, 0], false, false], // half of 20 is even; 2 workgroups of quads; batched slots
    ['q4f16', 'f16', 4, 2, 16, 64, [1], [7], true, false],
    ['q4f32', 'f32', 4, 2, 20, 96, [0, 1, 2, 3, 4, 5, 6, 7], [4, 0, 9, 1, 2, 3, 6, 5], true, true], // a whole batch of 8
    ['q4f16', 'f16', 5, 1, 8, 2080, [0, 0, 0], [2, 3, 4], true, true], // 65 groups: more than the 64 lanes
  ] as const;
  for (const [format, kv, H, KV, hd, IN, slots, positions, q4MatVec, subgroups] of cases) {
    const err = await call(page, 'checkNormMatmulQkv', format, kv, H, KV, hd, IN, [...slots], [...positions], { q4MatVec, subgroups });
    const what = `${format} weights, ${kv} cache, ${H}/${KV} heads, hd ${hd}, ${slots.length} rows, q4MatVec ${q4MatVec} subgroups ${subgroups}`;
    expect(err.q, `q ${what}`).toBeLessThan(TOL);
    // New cache entries against the unrounded oracle: an f16 cache adds its rounding, at most 2^-11.
    const cacheTol = kv === 'f16' ? 2 ** -11 + TOL : TOL;
    expect(err.k, `k ${what}`).toBeLessThan(cacheTol);
    expect(err.v, `v ${what}`).toBeLessThan(cacheTol);
  }
});

test('greedy argmax: the first index of the maximum, as sampling.ts argmax (ties, NaN, infinities, odd vocab sizes)', async ({ page }) => {
  // Rows cycle through planted cases (see checkArgmax); 9 rows cover each once.
  for (const [vocab, rows, seed] of [
    [32000, 9, 1],
    [32000, 18, 2],
    [1, 3, 3],
    [37, 9, 4],
    [255, 9, 5],
    [257, 9, 6],
    [1000, 11, 7],
    [4099, 9, 8],
  ] as const) {
    const { got, want } = await call(page, 'checkArgmax', vocab, rows, seed);
    expect(got, `vocab ${vocab} rows ${rows}`).toEqual(want);
  }
  // The planted rows' answers, independently of sampling.ts: ties, NaN, nothing eligible, +inf, -FLT_MAX, -0/+0, subnormal, all NaN.
  const { want } = await call(page, 'checkArgmax', 1000, 9, 1);
  expect(want.slice(3)).toEqual([0, 700, 1, 2, 10, 0]);
  // The LM head of the last rows only (xRowOffset): logits row t gives tokens[t].
  const { got, want: w2 } = await call(page, 'checkArgmax', 500, 7, 9, { xRowOffset: 3 });
  expect(got).toEqual(w2);
});
