// Greedy argmax: tokens[t] = the FIRST index of the largest logit of row t, the rule of
// sampling.ts argmax (strict > scanning upward, so NaN and -inf never win; a row with nothing
// else gives 0). It writes the next decode step's input tokens on the GPU. One workgroup per row.
//
// Values are compared as integers (an order-preserving map of the f32 bits), not as floats: a
// shader compiler may assume no NaN/inf, and a GPU may flush subnormals to zero, and either would
// change which index wins. -0 is taken as +0 (JS's > sees them equal, so the first one wins).
#include params
override VOCAB: u32;
const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;     // [rows - xRowOffset, VOCAB]
@group(0) @binding(2) var<storage, read_write> tokens: array<u32>; // [rows]: the next step's input
var<workgroup> bestKey: array<u32, WG>;
var<workgroup> bestIdx: array<u32, WG>;

// Whether v can win at all: not NaN (exponent all ones, mantissa non-zero) and not -inf.
fn eligible(u: u32) -> bool {
  return (u & 0x7fffffffu) <= 0x7f800000u && u != 0xff800000u;
}

// Unsigned key with the order of the float values (-0 mapped onto +0).
fn orderKey(bits: u32) -> u32 {
  var u = bits;
  if (u == 0x80000000u) { u = 0u; }
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

// (k, i) beats the best so far (bk, bi): larger, or equal at a lower index; NONE never wins.
fn better(k: u32, i: u32, bk: u32, bi: u32) -> bool {
  if (i == NONE) { return false; }
  if (bi == NONE) { return true; }
  return k > bk || (k == bk && i < bi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  if (t >= p.rows - p.xRowOffset) { return; }
  let base = t * VOCAB;
  var bk = 0u;
  var bi = NONE;
  // Each thread scans upward, so a later equal value never replaces an earlier one.
  for (var i = lid; i < VOCAB; i += WG) {
    let u = bitcast<u32>(logits[base + i]);
    if (eligible(u)) {
      let k = orderKey(u);
      if (better(k, i, bk, bi)) { bk = k; bi = i; }
    }
  }
  bestKey[lid] = bk;
  bestIdx[lid] = bi;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      let k = bestKey[lid + stride];
      let i = bestIdx[lid + stride];
      if (better(k, i, bestKey[lid], bestIdx[lid])) { bestKey[lid] = k; bestIdx[lid] = i; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let b = bestIdx[0];
    tokens[t] = select(b, 0u, b == NONE);
  }
}
