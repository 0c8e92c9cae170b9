/**
 * The kernel oracle checks of tests/browser/kernels.spec.ts, as a list the kit runs outside a
 * browser: the same check code (tests/browser/harness/kernelChecks.ts: each kernel against the
 * reference's pieces or a plain loop), the same cases and the same tolerance. Keep the cases in
 * step with that spec.
 */
import {
  checkArgmax,
  checkAttention,
  checkEmbedding,
  checkMatmul,
  checkNormMatmul,
  checkNormMatmulQkv,
  checkQ4MatVec,
  checkRmsnorm,
  checkRopeKvWrite,
  checkSwiglu,
} from '../browser/harness/kernelChecks.ts';
import type { Check } from './checks.ts';

/** f32 paths: 1e-4 (kernels.spec.ts TOL). */
const TOL = 1e-4;

type FusedCase = readonly [IN: number, OUT: number, rows: number, r: number, segments: 1 | 2 | 3, accumulate: boolean];

/**
 * Every case of the spec; the few marked `quick` are the quick mode's (SwiftShader on a CI machine,
 * where the tiled kernels' barriers make each tiled case seconds long): one or two of each kernel
 * and variant, small and odd sizes first. Groups are contiguous (the report's table goes by group).
 */
export function kernelChecks(): Check[] {
  const out: Check[] = [];
  const rel = (group: string, name: string, f: () => Promise<number>, quick = false) =>
    out.push({ group, name, fullOnly: !quick, run: async () => ({ maxErr: await f(), tol: TOL }) });
  const QUICK = new Set([
    'f32 37x29 rows 11',
    'f16 64x130 rows 3',
    'q4f32 96x33 rows 1',
    'q4f16 64x130 rows 9',
    'tiled f32 37x29 rows 9',
    'tiled q4f16 96x33 rows 9',
  ]);
  const isQuick = (tiled: boolean, f: string, shape: string) => QUICK.has(`${tiled ? 'tiled ' : ''}${f} ${shape}`);

  for (const [IN, OUT, rows] of [
    [37, 29, 1],
    [37, 29, 11],
    [64, 130, 3],
    [5, 1, 2],
  ] as const)
    for (const f of ['f32', 'f16'] as const)
      rel('matmul', `${f} ${IN}x${OUT} rows ${rows}`, () => checkMatmul(f, IN, OUT, rows), isQuick(false, f, `${IN}x${OUT} rows ${rows}`));
  for (const [IN, OUT, rows] of [
    [96, 33, 1],
    [64, 130, 9],
    [32, 1, 3],
  ] as const)
    for (const f of ['q4f32', 'q4f16'] as const)
      rel('matmul', `${f} ${IN}x${OUT} rows ${rows}`, () => checkMatmul(f, IN, OUT, rows), isQuick(false, f, `${IN}x${OUT} rows ${rows}`));
  rel('matmul', 'f32 accumulate', () => checkMatmul('f32', 37, 29, 5, { accumulate: true }));
  rel('matmul', 'q4f16 accumulate', () => checkMatmul('q4f16', 64, 70, 5, { accumulate: true }), true);
  rel('matmul', 'f32 row offset 4', () => checkMatmul('f32', 37, 29, 5, { xRowOffset: 4 }));
  rel('matmul', 'q4f32 row offset 3', () => checkMatmul('q4f32', 64, 70, 10, { xRowOffset: 3 }), true);
  for (const act of [1, 2, 3, 4]) rel('matmul', `f32 act ${act}`, () => checkMatmul('f32', 37, 29, 3, { act }), act === 4);

  for (const subgroups of [false, true]) {
    const g = `q4 matvec${subgroups ? ' subgroups' : ''}`;
    for (const [IN, OUT, rows] of [
      [32, 1, 1],
      [96, 33, 1],
      [4096, 7, 1],
      [320, 130, 8],
      [64, 65, 3],
    ] as const)
      for (const f of ['q4f16', 'q4f32'] as const)
        rel(
          g,
          `${f} ${IN}x${OUT} rows ${rows}`,
          () => checkQ4MatVec(f, IN, OUT, rows, { subgroups }),
          (f === 'q4f16' && IN === 320) || (f === 'q4f32' && IN === 96),
        );
    rel(g, 'q4f16 accumulate', () => checkQ4MatVec('q4f16', 128, 40, 4, { subgroups, accumulate: true }), true);
    rel(g, 'q4f32 row offset 5', () => checkQ4MatVec('q4f32', 64, 50, 6, { subgroups, xRowOffset: 5 }));
    rel(g, 'q4f16 split row 10', () => checkQ4MatVec('q4f16', 64, 20, 2, { subgroups, splitRow: 10 }), true);
    const fused: FusedCase[] = [
      [96, 33, 1, 4, 3, false],
      [320, 130, 8, 70, 2, true],
      [64, 65, 3, 256, 3, false],
      [32, 7, 1, 1, 1, true],
      [4096, 7, 1, 130, 2, true],
    ];
    for (const [IN, OUT, rows, r, segments, accumulate] of fused)
      for (const f of ['q4f16', 'q4f32'] as const)
        rel(
          `${g} + adapter`,
          `${f} ${IN}x${OUT} rows ${rows} r ${r} seg ${segments}${accumulate ? ' acc' : ''}`,
          () => checkQ4MatVec(f, IN, OUT, rows, { subgroups, accumulate, adapter: { r, segments } }),
          f === 'q4f16' && IN === 320,
        );
  }

  for (const [IN, OUT, rows] of [
    [37, 29, 9],
    [64, 130, 70],
    [5, 1, 65],
    [100, 64, 64],
  ] as const)
    for (const f of ['f32', 'f16'] as const)
      rel(
        'matmul tiled',
        `${f} ${IN}x${OUT} rows ${rows}`,
        () => checkMatmul(f, IN, OUT, rows, { tiled: true }),
        isQuick(true, f, `${IN}x${OUT} rows ${rows}`),
      );
  for (const [IN, OUT, rows] of [
    [96, 33, 9],
    [64, 130, 70],
    [32, 1, 65],
  ] as const)
    for (const f of ['q4f32', 'q4f16'] as const)
      rel(
        'matmul tiled',
        `${f} ${IN}x${OUT} rows ${rows}`,
        () => checkMatmul(f, IN, OUT, rows, { tiled: true }),
        isQuick(true, f, `${IN}x${OUT} rows ${rows}`),
      );
  rel('matmul tiled', 'q4f16 accumulate', () => checkMatmul('q4f16', 64, 70, 20, { tiled: true, accumulate: true }));
  rel('matmul tiled', 'f32 row offset 4', () => checkMatmul('f32', 37, 29, 75, { tiled: true, xRowOffset: 4 }));
  for (const act of [1, 2, 3, 4]) rel('matmul tiled', `f32 act ${act}`, () => checkMatmul('f32', 37, 29, 12, { act, tiled: true }));

  const fusedDense: FusedCase[] = [
    [37, 29, 1, 5, 1, false],
    [37, 29, 11, 3, 3, true],
    [64, 130, 3, 70, 2, false],
    [5, 7, 2, 1, 3, true],
  ];
  const fusedQ4: FusedCase[] = [
    [96, 33, 1, 4, 3, false],
    [64, 130, 9, 8, 2, true],
    [32, 5, 3, 130, 1, true],
  ];
  const fusedTiledDense: FusedCase[] = [
    [37, 29, 9, 5, 3, true],
    [64, 130, 70, 70, 2, false],
    [100, 64, 64, 1, 1, true],
  ];
  const fusedTiledQ4: FusedCase[] = [
    [96, 33, 9, 8, 3, false],
    [64, 130, 70, 130, 2, true],
    [32, 7, 65, 4, 3, true],
  ];
  // Three segments with the residual add (dense), two (q4 decode rows), three (q4 tiled).
  const quickFused = new Set(['f32 37x29 rows 11', 'q4f16 64x130 rows 9', 'tiled f32 37x29 rows 9', 'tiled q4f16 96x33 rows 9']);
  for (const tiled of [false, true])
    for (const [formats, cases] of [
      [['f32', 'f16'], tiled ? fusedTiledDense : fusedDense],
      [['q4f32', 'q4f16'], tiled ? fusedTiledQ4 : fusedQ4],
    ] as const)
      for (const [IN, OUT, rows, r, segments, accumulate] of cases)
        for (const f of formats)
          rel(
            `matmul${tiled ? ' tiled' : ''} + adapter`,
            `${f} ${IN}x${OUT} rows ${rows} r ${r} seg ${segments}${accumulate ? ' acc' : ''}`,
            () => checkMatmul(f, IN, OUT, rows, { tiled, accumulate, adapter: { r, segments } }),
            quickFused.has(`${tiled ? 'tiled ' : ''}${f} ${IN}x${OUT} rows ${rows}`),
          );

  rel('embedding', 'f32', () => checkEmbedding('f32', 50, 37, [0, 49, 7, 7]), true);
  rel('embedding', 'f16', () => checkEmbedding('f16', 50, 37, [3, 1]), true);
  rel('embedding', 'q4f32', () => checkEmbedding('q4f32', 50, 64, [0, 49, 12]), true);
  rel('embedding', 'q4f16', () => checkEmbedding('q4f16', 50, 96, [5]), true);
  for (const [dim, rows] of [
    [37, 3],
    [4096, 2],
    [1, 1],
  ] as const)
    rel('rmsnorm', `${dim} rows ${rows}`, () => checkRmsnorm(dim, rows), true);

  const rope = [
    [4, 2, 16, 3, 0, 10000, 0, 1],
    [3, 1, 6, 5, 1000, 500000, 0, 1],
    [5, 1, 8, 2, 7, 10000, 0, 1],
    [3, 3, 10, 2, 7, 10000, 2, 3],
    [8, 4, 14, 2, 40, 10000, 1, 2],
  ] as const;
  for (const kv of ['f32', 'f16'] as const)
    for (const [H, KV, hd, rows, pos, theta, slot, slots] of rope)
      rel(
        'rope + kv write',
        `${kv} ${H}/${KV} heads hd ${hd} pos ${pos} slot ${slot}/${slots}`,
        () => checkRopeKvWrite(kv, H, KV, hd, rows, pos, theta, slot, slots),
        true,
      );
  rel('swiglu', '37 rows 3', () => checkSwiglu(37, 3), true);
  rel('swiglu', '1 row 1', () => checkSwiglu(1, 1), true);

  const attention = [
    ['f32', 4, 2, 16, 0, 5, 16, 0, 1],
    ['f32', 6, 2, 6, 7, 1, 20, 0, 1],
    ['f32', 3, 3, 10, 70, 3, 80, 0, 1],
    ['f16', 4, 1, 8, 9, 4, 16, 0, 1],
    ['f32', 4, 2, 8, 6, 2, 12, 2, 3],
    ['f16', 2, 1, 6, 5, 1, 10, 1, 2],
  ] as const;
  for (const [kv, H, KV, hd, past, rows, ctx, slot, slots] of attention)
    rel(
      'attention',
      `${kv} ${H}/${KV} heads hd ${hd} past ${past} rows ${rows} slot ${slot}/${slots}`,
      () => checkAttention(kv, H, KV, hd, past, rows, ctx, slot, slots),
      true,
    );

  // attention.wgsl: scores, softmax and output in one dispatch (kernels.spec.ts's fused cases).
  const fusedAttention = [
    ['f32', 4, 2, 16, 0, 5, 16, 0, 1],
    ['f32', 3, 3, 10, 70, 3, 80, 0, 1],
    ['f16', 4, 1, 8, 9, 4, 16, 0, 1],
    ['f32', 4, 2, 8, 6, 2, 12, 2, 3],
    ['f16', 2, 1, 130, 5, 1, 10, 1, 2],
  ] as const;
  for (const [kv, H, KV, hd, past, rows, ctx, slot, slots] of fusedAttention)
    rel(
      'attention fused',
      `${kv} ${H}/${KV} heads hd ${hd} past ${past} rows ${rows} slot ${slot}/${slots}`,
      () => checkAttention(kv, H, KV, hd, past, rows, ctx, slot, slots, true),
      true,
    );

  // RMSNorm folded into the next matmul, with and without the SwiGLU epilogue (kernels.spec.ts).
  for (const [f, IN, OUT, rows] of [
    ['f32', 37, 30, 1],
    ['f16', 37, 30, 11],
    ['q4f32', 96, 34, 3],
    ['q4f16', 64, 130, 9],
  ] as const)
    for (const swiglu of [false, true])
      rel('norm + matmul', `${f} ${IN}x${OUT} rows ${rows}${swiglu ? ' swiglu' : ''}`, () => checkNormMatmul(f, IN, OUT, rows, { swiglu }), rows < 9);
  rel('norm + matmul', 'f32 row offset 4', () => checkNormMatmul('f32', 37, 29, 5, { xRowOffset: 4 }), true);
  for (const subgroups of [false, true]) {
    const group = `norm + q4 matvec${subgroups ? ' subgroups' : ''}`;
    for (const [f, IN, OUT, rows, swiglu] of [
      ['q4f16', 32, 2, 1, true],
      ['q4f16', 2080, 6, 1, true],
      ['q4f16', 320, 40, 8, false],
      ['q4f16', 320, 40, 8, true],
      ['q4f32', 64, 66, 3, true],
    ] as const)
      rel(
        group,
        `${f} ${IN}x${OUT} rows ${rows}${swiglu ? ' swiglu' : ''}`,
        () => checkNormMatmul(f, IN, OUT, rows, { swiglu, q4MatVec: true, subgroups }),
        IN < 2080,
      );
    rel(group, 'q4f32 row offset 5', () => checkNormMatmul('q4f32', 64, 50, 6, { q4MatVec: true, xRowOffset: 5, subgroups }));
  }
  // The qkv matmul with RoPE and the KV write in its epilogue (kernels.spec.ts has the f16-cache
  // cases, whose tolerance adds the f16 rounding; f32 caches here keep the kit's one tolerance).
  for (const [f, H, KV, hd, IN, slots, positions, q4MatVec, subgroups] of [
    ['f32', 4, 2, 16, 37, [0, 0, 0], [5, 6, 7], false, false],
    ['q4f32', 16, 8, 20, 64, [2, 0, 1], [9, 3, 0], false, false],
    ['q4f32', 4, 2, 20, 96, [0, 1, 2, 3, 4, 5, 6, 7], [4, 0, 9, 1, 2, 3, 6, 5], true, false],
    ['q4f32', 4, 2, 20, 96, [0, 1, 2, 3, 4, 5, 6, 7], [4, 0, 9, 1, 2, 3, 6, 5], true, true],
  ] as const)
    rel(
      'norm + qkv matmul + rope + kv write',
      `${f} ${H}/${KV} heads hd ${hd} rows ${slots.length}${q4MatVec ? ` q4 matvec${subgroups ? ' subgroups' : ''}` : ''}`,
      async () => {
        const e = await checkNormMatmulQkv(f, 'f32', H, KV, hd, IN, [...slots], [...positions], { q4MatVec, subgroups });
        return Math.max(e.q, e.k, e.v);
      },
      true,
    );

  for (const [vocab, rows, seed] of [
    [32000, 9, 1],
    [32000, 18, 2],
    [1, 3, 3],
    [37, 9, 4],
    [255, 9, 5],
    [257, 9, 6],
    [1000, 11, 7],
    [4099, 9, 8],
  ] as const)
    out.push({ group: 'argmax', name: `vocab ${vocab} rows ${rows}`, fullOnly: rows > 9, run: () => checkArgmax(vocab, rows, seed) });
  out.push({ group: 'argmax', name: 'vocab 500 head of the last 4 of 7 rows', run: () => checkArgmax(500, 7, 9, { xRowOffset: 3 }) });
  return out;
}
