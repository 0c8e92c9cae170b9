// Decode-time y[t, o] = rmsnorm(x[t]) . W[o] over MLC q4 weights, for up to TILE_T rows: q4MatVec's
// layout (one workgroup per output feature, 64 threads on consecutive 16-byte words) with the
// RMSNorm folded in as normMatmul.wgsl does it: each thread accumulates its share of sum x^2 beside
// the dot, the norm weight g applied as x is read, and one reduction sums both. With SWIGLU the
// matrix is [gate | up] (OUT = 2 FFN): workgroup o < FFN reads gate row o and up row FFN + o and
// writes h[t, o] = silu(gate) * up. The reduction (reduceRowsSubgroup.wgsl where the
// device has subgroups, else reduceRowsShared.wgsl) sums only the values the call's rows need.
// The qkv variant (qkvEpilogue.wgsl included) has each workgroup compute the four
// rows RoPE and the f16 cache's packed words tie together, and applies RoPE and the KV write as it
// stores them: no separate ropeKvWrite pass.
REDUCE_ENABLE
#include params
#include q4Values
#include qkvEpilogue
override IN: u32; // multiple of 4 (x is read as vec4); MLC pads the last group of 32
override OUT: u32;
override EPS: f32;
override SWIGLU: bool = false;
const TILE_T: u32 = 8u;
const WG: u32 = 64u;
// Output rows per workgroup: 4 with the qkv epilogue (a RoPE quad), else 2 (the second only for SWIGLU's up row).
const NR: u32 = select(2u, 4u, QKV_ROPE);
const NV: u32 = (NR + 1u) * TILE_T; // per row: NR dots, then sum x^2
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>; // [rows, IN / 4]
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [rows - xRowOffset, OUT] (SWIGLU: [rows, OUT / 2])
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>; // [IN / 4] the norm's weight
@group(1) @binding(0) var<storage, read> wData: array<vec4<u32>>; // [OUT, ceil(IN / 32)]
@group(1) @binding(1) var<storage, read> wScale: array<SCALE_STORAGE>;
var<workgroup> partial: array<array<f32, NV>, WG>;
REDUCE_DECL

// Whether reduction value v is needed: row v % TILE_T is one of the call's, and the second dot
// only with SWIGLU (the qkv epilogue uses all NR).
fn live(v: u32, rows: u32) -> bool {
  return v % TILE_T < rows && (SWIGLU || QKV_ROPE || v / TILE_T != 1u);
}

fn scaleAt(i: u32) -> f32 {
  SCALE_READ
}

// x[xb + k] * g[k0 + k] (4 normalised-but-unscaled activations) and x itself, zeros past IN.
fn xAt(xb: u32, k: u32, g0: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), x[xb + k], g0 * 8u + k < IN / 4u);
}
fn gAt(k: u32, g0: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), g[g0 * 8u + k], g0 * 8u + k < IN / 4u);
}

fn dotGroup(q: vec4<u32>, xg: array<vec4<f32>, 8>) -> f32 {
  return dot8(q.x, xg[0], xg[1]) + dot8(q.y, xg[2], xg[3]) + dot8(q.z, xg[4], xg[5]) + dot8(q.w, xg[6], xg[7]);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32 REDUCE_PARAMS) {
  let o = wid.y * nwg.x + wid.x;
  let rows = min(p.rows - p.xRowOffset, TILE_T);
  let nOut = select(select(OUT, OUT / 2u, SWIGLU), OUT / 4u, QKV_ROPE); // workgroups with work
  let groups = (IN + 31u) / 32u;
  // This workgroup's weight rows: o (and o + nOut with SWIGLU), or the RoPE quad of o.
  let wRow = weightRows(o, nOut);
  let nr = select(select(1u, 2u, SWIGLU), NR, QKV_ROPE);
  var acc: array<f32, NV>;
  if (o < nOut) {
    for (var gi = lid; gi < groups; gi += WG) {
      var q: array<vec4<u32>, NR>;
      var s: array<f32, NR>;
      for (var r = 0u; r < nr; r++) {
        q[r] = wData[wRow[r] * groups + gi];
        s[r] = scaleAt(wRow[r] * groups + gi);
      }
      for (var t = 0u; t < rows; t++) {
        let xb = (p.xRowOffset + t) * (IN / 4u) + gi * 8u;
        var xg: array<vec4<f32>, 8>;
        var sq = 0.0;
        for (var k = 0u; k < 8u; k++) {
          let xv = xAt(xb, k, gi);
          sq += dot(xv, xv);
          xg[k] = xv * gAt(k, gi);
        }
        for (var r = 0u; r < nr; r++) { acc[r * TILE_T + t] += dotGroup(q[r], xg) * s[r]; }
        acc[NR * TILE_T + t] += sq;
      }
    }
  }
  ROWS_REDUCE
  if (lid == 0u && o < nOut) {
    for (var t = 0u; t < rows; t++) {
      let inv = inverseSqrt(partial[0][NR * TILE_T + t] / f32(IN) + EPS);
      let a = partial[0][t] * inv;
      if (QKV_ROPE) {
        let v = vec4<f32>(a, partial[0][TILE_T + t] * inv, partial[0][2u * TILE_T + t] * inv, partial[0][3u * TILE_T + t] * inv);
        qkvStore(o, p.xRowOffset + t, t, v);
      } else if (SWIGLU) {
        y[t * nOut + o] = a / (1.0 + exp(-a)) * (partial[0][TILE_T + t] * inv);
      } else {
        y[t * OUT + o] = a;
      }
    }
  }
}
