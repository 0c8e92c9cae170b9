// Prefill y[t, o] (+)= act(sum_i x[t, i] * W[o, i]) for many rows at once, tiled in workgroup
// memory: each 16x16 workgroup computes a 64-row x 64-output tile, staging 32 input columns of x
// and of W (one q4 group) at a time, so every weight value read from memory serves 64 rows.
// Each thread accumulates a 4x4 block in registers, then adds a fused LoRA / parallel adapter's
// term (adapterAdd.wgsl) to each output it owns.
//
// The staged tiles are stored rotated: column k of a tile keeps row r at (r + k) % 64. Staging
// writes 32 consecutive k of one row (x) or 8 rows x 4 chunks (W) per 32 threads; unrotated, those
// land 64 words apart, all in one of 32 banks (a 32-way, resp. 4-way, conflict). Rotated, they hit
// distinct banks, and the compute loop still reads one address per row (a broadcast). Padding the
// rows instead would take the two tiles past WebGPU's default 16 KiB of workgroup memory.
#include params
#include weight
#include activation
#include adapterAdd
override IN: u32;
override OUT: u32;
override ACCUMULATE: bool = false;
const BM: u32 = 64u; // rows per tile
const BN: u32 = 64u; // outputs per tile
const BK: u32 = 32u; // input columns per stage
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [rows, IN]
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [rows - xRowOffset, OUT]
var<workgroup> xs: array<array<f32, BM>, BK>; // [k][row]
var<workgroup> ws: array<array<f32, BN>, BK>; // [k][output]

// Where row (or output) r of staged column k is kept.
fn rot(r: u32, k: u32) -> u32 { return (r + k) % BM; } // BM == BN: one rotation serves both tiles

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let rows = p.rows - p.xRowOffset;
  let o0 = wid.x * BN;
  let t0 = wid.y * BM;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < IN; k0 += BK) {
    // Stage x[t0.., k0..]: 64 x 32 values, 8 per thread.
    for (var e = li; e < BM * BK; e += 256u) {
      let r = e / BK;
      let k = e % BK;
      var v = 0.0;
      if (t0 + r < rows && k0 + k < IN) { v = x[(p.xRowOffset + t0 + r) * IN + k0 + k]; }
      xs[k][rot(r, k)] = v;
    }
    // Stage W[o0.., k0..]: 64 outputs x 32 columns, in the weight format's chunks.
    for (var c = li; c < BN * (BK / W_CHUNK); c += 256u) {
      let n = c / (BK / W_CHUNK);
      let kc = (c % (BK / W_CHUNK)) * W_CHUNK;
      var w: array<f32, W_CHUNK>;
      if (o0 + n < OUT && k0 + kc < IN) {
        var chunk = wChunk(o0 + n, k0 + kc);
        for (var j = 0u; j < W_CHUNK; j++) { w[j] = chunk[j]; }
      }
      // Columns past IN are zero (a q4 row's padded last group holds nibbles that are not).
      for (var j = 0u; j < W_CHUNK; j++) { ws[kc + j][rot(n, kc + j)] = select(0.0, w[j], k0 + kc + j < IN); }
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = xs[k][rot(lid.y * 4u + i, k)]; b[i] = ws[k][rot(lid.x * 4u + i, k)]; }
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
      let o = o0 + lid.x * 4u + j;
      if (o >= OUT) { continue; }
      let yi = t * OUT + o;
      var a = acc[i][j];
      if (ADAPTER_ADD) { a += adapterTerm(t, o, 0u, 1u); }
      let v = activate(a);
      if (ACCUMULATE) { y[yi] = y[yi] + v; } else { y[yi] = v; }
    }
  }
}
