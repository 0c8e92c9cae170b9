/**
 * Host side of the training matmul kernels: each function records one Dispatch (kernels.ts) from
 * GPU buffers, for the trainer to encode like the forward's dispatches (llama.ts encodeRows):
 * - recordMatmulBackInput: the input gradient dX = dYᵀ-through-W of y = W x, over a frozen base weight
 *   in any storage format or a small f32 adapter matrix (matmulBackInput.wgsl);
 * - recordMatmulBackWeight: the gradient of a trainable f32 matrix, dW (+)= scale · dYᵀ X
 *   (matmulBackWeight.wgsl): LoRA A and B, bottleneck down and up.
 * The oracles are referenceTraining.ts's matmulBackInput / matmulBackWeight.
 *
 * Token rows come from the Params uniform (params.wgsl; trainingParams below): dY row t is the
 * gradient of the forward's output row t, whose input was row xRowOffset + t, so a dispatch covers
 * p.rows − p.xRowOffset rows and `workgroups(rows)` takes that count.
 */
import { EngineError } from './errors.ts';
import { bindKernel, type Dispatch, type PipelineCache } from './kernels.ts';
import type { GpuMatrix } from './weights.ts';

/** The Params uniform of a training call over `rows` token rows (B·T) of sequences of `seqLen` tokens. */
export function trainingParams(rows: number, seqLen: number, xRowOffset = 0): Uint32Array<ArrayBuffer> {
  for (const [what, v] of [
    ['rows', rows],
    ['seqLen', seqLen],
    ['xRowOffset', xRowOffset],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new EngineError(`Training params: ${what} must be a non-negative integer, got ${v}.`);
  }
  if (xRowOffset > rows) throw new EngineError(`Training params: row offset ${xRowOffset} is past the ${rows} rows of the call.`);
  return new Uint32Array([rows, 0, xRowOffset, seqLen]);
}

export interface BackInputCall {
  /** The weight of the forward y = W x ([rows, cols] = [out, in]), any storage format. */
  w: GpuMatrix;
  /** The rows of W the forward's slice used (one module of a fused q | k | v or gate | up): default all. */
  rowStart?: number;
  rows?: number;
  /** dY: [call rows − xRowOffset, dyStride], the slice's gradient in columns dyCol.. (default: exactly `rows` wide). */
  dy: GPUBuffer;
  dyStride?: number;
  dyCol?: number;
  /** dX: [call rows, w.cols]; rows before xRowOffset are not touched. */
  dx: GPUBuffer;
  /** The Params uniform (trainingParams). */
  params: GPUBuffer;
  /** dX (+)= scale · dY W (LoRA's scaling on the B·A path). */
  scale?: number;
  /** Add onto dX instead of overwriting it (a value with several consumers). */
  accumulate?: boolean;
  label?: string;
}

function checkWhole(label: string, what: string, v: number, min = 0): void {
  if (!Number.isInteger(v) || v < min) throw new EngineError(`${label}: ${what} must be an integer of at least ${min}, got ${v}.`);
}

/** A call reads `count` columns of `what` from column `col` of rows `stride` wide: they must fit. */
function checkColumns(label: string, what: string, col: number, count: number, stride: number): void {
  if (col + count > stride) throw new EngineError(`${label}: ${what} columns ${col}..${col + count - 1} do not fit rows of ${stride} values.`);
}

/** dX[xRowOffset + t, c] (+)= scale · Σ_r dY[t, dyCol + r] · W[rowStart + r, c]. */
export function recordMatmulBackInput(device: GPUDevice, pipes: PipelineCache, c: BackInputCall): Dispatch {
  const w = c.w;
  const label = c.label ?? `matmul back input ${w.name}`;
  const rowStart = c.rowStart ?? 0;
  const rows = c.rows ?? w.rows - rowStart;
  const dyStride = c.dyStride ?? rows;
  const dyCol = c.dyCol ?? 0;
  checkWhole(label, 'rowStart', rowStart);
  checkWhole(label, 'the row count', rows, 1);
  checkWhole(label, 'dyCol', dyCol);
  checkWhole(label, 'dyStride', dyStride, 1);
  if (rowStart + rows > w.rows) throw new EngineError(`${label}: rows ${rowStart}..${rowStart + rows - 1} are past the ${w.rows} rows of ${w.name}.`);
  checkColumns(label, 'dY', dyCol, rows, dyStride);
  const q4 = w.format === 'q4f16' || w.format === 'q4f32';
  if (q4 && w.cols % 32 !== 0) throw new EngineError(`${label}: a q4 weight needs a multiple of 32 columns, ${w.name} has ${w.cols}.`);
  if (q4 && !w.scale) throw new EngineError(`${label}: the q4 weight ${w.name} has no scale buffer.`);
  const constants = {
    IN: w.cols,
    ROWS: rows,
    ROW_START: rowStart,
    DY_STRIDE: dyStride,
    DY_COL: dyCol,
    SCALE: c.scale ?? 1,
    ACCUMULATE: c.accumulate ? 1 : 0,
  };
  const pipeline = pipes.get('matmulBackInput', { weight: w.format }, constants);
  const buffers = { p: c.params, dy: c.dy, dx: c.dx, wData: w.data, wScale: q4 ? w.scale : undefined };
  return {
    label,
    pipeline,
    bindGroups: bindKernel(device, pipeline, 'matmulBackInput', buffers, label),
    workgroups: (tokenRows) => [Math.ceil(w.cols / 64), Math.ceil(tokenRows / 64), 1],
  };
}

export interface BackWeightCall {
  /** dW: [rows, cols] f32, the gradient of a trainable matrix W [rows, cols] of y = W x. */
  dw: GPUBuffer;
  rows: number;
  cols: number;
  /** dY: [call rows − xRowOffset, dyStride], W's output gradient in columns dyCol.. (default: exactly `rows` wide). */
  dy: GPUBuffer;
  dyStride?: number;
  dyCol?: number;
  /** X: [call rows, xStride], W's input in columns xCol.. (default: exactly `cols` wide). */
  x: GPUBuffer;
  xStride?: number;
  xCol?: number;
  params: GPUBuffer;
  /** dW (+)= scale · dYᵀ X (LoRA's scaling for B, a bottleneck's for up). */
  scale?: number;
  /** Add onto dW (gradient accumulation) instead of overwriting it. */
  accumulate?: boolean;
  label?: string;
}

/** dW[r, c] (+)= scale · Σ_t dY[t, dyCol + r] · X[xRowOffset + t, xCol + c]. */
export function recordMatmulBackWeight(device: GPUDevice, pipes: PipelineCache, c: BackWeightCall): Dispatch {
  const label = c.label ?? 'matmul back weight';
  const dyStride = c.dyStride ?? c.rows;
  const xStride = c.xStride ?? c.cols;
  const dyCol = c.dyCol ?? 0;
  const xCol = c.xCol ?? 0;
  checkWhole(label, 'rows', c.rows, 1);
  checkWhole(label, 'cols', c.cols, 1);
  checkWhole(label, 'dyCol', dyCol);
  checkWhole(label, 'xCol', xCol);
  checkColumns(label, 'dY', dyCol, c.rows, dyStride);
  checkColumns(label, 'X', xCol, c.cols, xStride);
  const constants = {
    ROWS: c.rows,
    COLS: c.cols,
    DY_STRIDE: dyStride,
    DY_COL: dyCol,
    X_STRIDE: xStride,
    X_COL: xCol,
    SCALE: c.scale ?? 1,
    ACCUMULATE: c.accumulate ? 1 : 0,
  };
  const pipeline = pipes.get('matmulBackWeight', {}, constants);
  const buffers = { p: c.params, dy: c.dy, x: c.x, dw: c.dw };
  // Every workgroup reduces over all token rows itself: the grid is dW's tiles, whatever the row count.
  return {
    label,
    pipeline,
    bindGroups: bindKernel(device, pipeline, 'matmulBackWeight', buffers, label),
    workgroups: () => [Math.ceil(c.cols / 64), Math.ceil(c.rows / 64), 1],
  };
}
