// Input gradient of y = W x (matmul.wgsl) over one row range of a weight:
//   dX[xRowOffset + t, c] (+)= SCALE * sum_{r < ROWS} dY[t, DY_COL + r] * W[ROW_START + r, c]
// W is a frozen base weight in any storage format, read through the forward's own weight snippets (weight*.wgsl)
// (so q4 is dequantized exactly as the forward does), or a small f32 adapter matrix (LoRA A / B,
// bottleneck down / up). ROW_START..ROW_START+ROWS picks one module out of a fused weight (q | k | v,
// gate | up); DY_COL / DY_STRIDE pick its columns out of a wider gradient row.
// Tiled like matmulTiled.wgsl: each 16x16 workgroup computes 64 token rows x 64 columns of dX,
// staging 32 of the reduced rows r of dY and of W at a time. W is read along its rows, its storage
// order (a q4 word holds 8 consecutive columns of one row), so every weight value read serves 64 rows.
// The staged tiles are stored rotated, as matmulTiled.wgsl explains: entry i of staged row r sits at
// (i + r) % 64, so the 32 threads that stage 32 consecutive r of one dY row write 32 distinct banks.
#include params
#include weight
override IN: u32;        // columns of W: the width of dX
override ROWS: u32;      // rows of W reduced over
override ROW_START: u32 = 0u;
override DY_STRIDE: u32; // values per dY row
override DY_COL: u32 = 0u;
override SCALE: f32 = 1.0;
override ACCUMULATE: bool = false; // dX += ... (a gradient with several consumers)
const BM: u32 = 64u; // token rows per tile
const BN: u32 = 64u; // columns per tile
const BK: u32 = 32u; // reduced rows per stage
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;       // [rows - xRowOffset, DY_STRIDE]
@group(0) @binding(2) var<storage, read_write> dx: array<f32>; // [rows, IN]
var<workgroup> ds: array<array<f32, BM>, BK>; // [r][token row]
var<workgroup> ws: array<array<f32, BN>, BK>; // [r][column]

// Where token row (or column) i of staged row r is kept.
fn rot(i: u32, r: u32) -> u32 { return (i + r) % BM; } // BM == BN: one rotation serves both tiles

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let rows = p.rows - p.xRowOffset;
  let c0 = wid.x * BN;
  let t0 = wid.y * BM;
  var acc: array<array<f32, 4>, 4>;
  for (var r0 = 0u; r0 < ROWS; r0 += BK) {
    // Stage dY[t0.., r0..]: 64 x 32 values, consecutive threads along a dY row.
    for (var e = li; e < BM * BK; e += 256u) {
      let t = e / BK;
      let r = e % BK;
      var v = 0.0;
      if (t0 + t < rows && r0 + r < ROWS) { v = dy[(t0 + t) * DY_STRIDE + DY_COL + r0 + r]; }
      ds[r][rot(t, r)] = v;
    }
    // Stage W[ROW_START + r0.., c0..]: 32 rows x 64 columns, in the weight format's chunks.
    for (var e = li; e < BK * (BN / W_CHUNK); e += 256u) {
      let r = e / (BN / W_CHUNK);
      let cc = (e % (BN / W_CHUNK)) * W_CHUNK;
      var w: array<f32, W_CHUNK>;
      if (r0 + r < ROWS && c0 + cc < IN) {
        var chunk = wChunk(ROW_START + r0 + r, c0 + cc);
        for (var j = 0u; j < W_CHUNK; j++) { w[j] = chunk[j]; }
      }
      for (var j = 0u; j < W_CHUNK; j++) { ws[r][rot(cc + j, r)] = w[j]; }
    }
    workgroupBarrier();
    for (var r = 0u; r < BK; r++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = ds[r][rot(lid.y * 4u + i, r)]; b[i] = ws[r][rot(lid.x * 4u + i, r)]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + lid.y * 4u + i;
    if (t >= rows) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + lid.x * 4u + j;
      if (c >= IN) { continue; }
      let xi = (p.xRowOffset + t) * IN + c;
      let v = SCALE * acc[i][j];
      if (ACCUMULATE) { dx[xi] = dx[xi] + v; } else { dx[xi] = v; }
    }
  }
}
