/**
 * Host side of causal attention's backward over whole training sequences (attnBackQuery.wgsl then
 * attnBackKeyValue.wgsl): given the forward's fused q | k | v rows (q and k after RoPE) and dOut,
 * the gradient of the attention output, they write dq, dk and dv into the same fused layout, dk and
 * dv summed over the query heads sharing each kv head. Softmax is recomputed, so nothing of size
 * [rows, heads, T] is kept; the only scratch is `stats` (attentionStatsBytes).
 * The oracle is referenceTraining.ts's causalAttentionBack.
 *
 * Rows: the Params uniform (trainingMatmul.ts trainingParams) holds rows = B·T and kvLen = T, the
 * length every sequence of the micro-batch is right-padded to; row b·T + t is position t.
 */
import { EngineError } from './errors.ts';
import { bindKernel, type Dispatch, type PipelineCache } from './kernels.ts';

/** The largest head dimension the kernels hold in workgroup memory (attnBack*.wgsl MAX_HD). */
export const MAX_ATTENTION_BACK_HEAD_DIM = 256;

export interface AttentionHeads {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

export interface AttentionBackCall {
  heads: AttentionHeads;
  /** [rows, (numHeads + 2·numKvHeads)·headDim]: q | k | v per row, q and k after RoPE. */
  qkv: GPUBuffer;
  /** [rows, numHeads·headDim] */
  dOut: GPUBuffer;
  /** [rows, (numHeads + 2·numKvHeads)·headDim]: dq | dk | dv, every value written. */
  dqkv: GPUBuffer;
  /** Scratch of attentionStatsBytes(rows, numHeads) bytes: each (row, head)'s log-sum-exp and Σ P dP. */
  stats: GPUBuffer;
  params: GPUBuffer;
  label?: string;
}

/** Bytes of the stats scratch for `rows` rows. */
export function attentionStatsBytes(rows: number, numHeads: number): number {
  return rows * numHeads * 8;
}

/** The two dispatches, in order: the query side (dq and the stats), then the key / value side. */
export function recordAttentionBackward(device: GPUDevice, pipes: PipelineCache, c: AttentionBackCall): Dispatch[] {
  const { numHeads: H, numKvHeads: KV, headDim: hd } = c.heads;
  const label = c.label ?? 'attention backward';
  for (const [what, v] of [
    ['numHeads', H],
    ['numKvHeads', KV],
    ['headDim', hd],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new EngineError(`${label}: ${what} must be a positive integer, got ${v}.`);
  }
  if (H % KV !== 0) throw new EngineError(`${label}: ${H} query heads cannot share ${KV} kv heads evenly.`);
  if (hd > MAX_ATTENTION_BACK_HEAD_DIM) throw new EngineError(`${label}: head dimension ${hd} is over the kernels' ${MAX_ATTENTION_BACK_HEAD_DIM}.`);
  const constants = { HEAD_DIM: hd, N_HEADS: H, N_KV_HEADS: KV };
  const buffers = { p: c.params, qkv: c.qkv, dOut: c.dOut, dqkv: c.dqkv, stats: c.stats };
  const query = pipes.get('attnBackQuery', {}, constants);
  const keyValue = pipes.get('attnBackKeyValue', {}, constants);
  return [
    {
      label: `${label}: dq`,
      pipeline: query,
      bindGroups: bindKernel(device, query, 'attnBackQuery', buffers, `${label}: dq`),
      workgroups: (rows) => [rows, H, 1],
    },
    {
      label: `${label}: dk, dv`,
      pipeline: keyValue,
      bindGroups: bindKernel(device, keyValue, 'attnBackKeyValue', buffers, `${label}: dk, dv`),
      workgroups: (rows) => [rows, KV, 1],
    },
  ];
}
