// Weight gradient of y = W x for a trainable f32 matrix W [ROWS, COLS] (LoRA A and B, bottleneck
// down and up), summed over the call's token rows:
//   dW[r, c] (+)= SCALE * sum_t dY[t, DY_COL + r] * X[xRowOffset + t, X_COL + c]
// DY_COL / DY_STRIDE and X_COL / X_STRIDE pick a module's columns out of wider rows (one segment of
// a fused q | k | v gradient, one segment of the adapters' z). ACCUMULATE adds onto dW: gradient
// accumulation over micro-batches.
// Each 16x16 workgroup owns a 64 x 64 tile of dW and reduces over every token row itself, staging
// 32 rows of dY and X at a time in workgroup memory; each thread sums a 4x4 block in f32 registers.
// Adapter matrices are small (r or the bottleneck by the hidden size), so the tiles alone fill the
// GPU and no cross-workgroup reduction is needed for N = batch x seq up to a few thousand rows.
#include params
override ROWS: u32;
override COLS: u32;
override DY_STRIDE: u32;
override DY_COL: u32 = 0u;
override X_STRIDE: u32;
override X_COL: u32 = 0u;
override SCALE: f32 = 1.0;
override ACCUMULATE: bool = false;
const BM: u32 = 64u; // rows of dW per tile
const BN: u32 = 64u; // columns of dW per tile
const BK: u32 = 32u; // token rows per stage
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;       // [rows - xRowOffset, DY_STRIDE]
@group(0) @binding(2) var<storage, read> x: array<f32>;        // [rows, X_STRIDE]
@group(0) @binding(3) var<storage, read_write> dw: array<f32>; // [ROWS, COLS]
var<workgroup> ds: array<array<f32, BM>, BK>; // [token row][r]
var<workgroup> xs: array<array<f32, BN>, BK>; // [token row][c]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let rows = p.rows - p.xRowOffset;
  let c0 = wid.x * BN;
  let r0 = wid.y * BM;
  var acc: array<array<f32, 4>, 4>;
  for (var t0 = 0u; t0 < rows; t0 += BK) {
    // Stage dY[t0.., r0..] and X[t0.., c0..]: 32 token rows x 64 values each, consecutive threads along a row.
    for (var e = li; e < BK * BM; e += 256u) {
      let t = e / BM;
      let r = e % BM;
      var v = 0.0;
      if (t0 + t < rows && r0 + r < ROWS) { v = dy[(t0 + t) * DY_STRIDE + DY_COL + r0 + r]; }
      ds[t][r] = v;
    }
    for (var e = li; e < BK * BN; e += 256u) {
      let t = e / BN;
      let c = e % BN;
      var v = 0.0;
      if (t0 + t < rows && c0 + c < COLS) { v = x[(p.xRowOffset + t0 + t) * X_STRIDE + X_COL + c0 + c]; }
      xs[t][c] = v;
    }
    workgroupBarrier();
    for (var t = 0u; t < BK; t++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = ds[t][lid.y * 4u + i]; b[i] = xs[t][lid.x * 4u + i]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = r0 + lid.y * 4u + i;
    if (r >= ROWS) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + lid.x * 4u + j;
      if (c >= COLS) { continue; }
      let wi = r * COLS + c;
      let v = SCALE * acc[i][j];
      if (ACCUMULATE) { dw[wi] = dw[wi] + v; } else { dw[wi] = v; }
    }
  }
}
