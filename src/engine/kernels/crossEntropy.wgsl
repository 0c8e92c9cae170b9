// Causal-LM cross-entropy and its gradient w.r.t. the logits, in place (torch CrossEntropyLoss,
// ignore_index -100, reduction "mean"). Row t's target y = targets[t] is the next token's label,
// already shifted by the host (transformers' shift_labels); count = targets != -100 over the call:
//   loss[t] = logsumexp(z[t, :]) - z[t, y]                       (0 where ignored; mean = sum / count)
//   z[t, j] <- SCALE * (softmax(z[t, :])_j - [j == y]) / count   (0 where ignored)
// Max-subtracted, so large logits do not overflow exp. One workgroup per row. In place because the
// logits are the largest buffer of a training step and nothing reads them after the loss.
#include params
override VOCAB: u32;
override SCALE: f32 = 1.0; // 1/G for a micro-batch of G accumulated ones (the mean of their mean losses)
const WG: u32 = 64u;
const IGNORE: i32 = -100;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>; // [rows, VOCAB]: logits in, dLoss/dlogits out
@group(0) @binding(2) var<storage, read> targets: array<i32>;      // [rows]
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;   // [rows]
var<workgroup> red: array<f32, WG>;
var<workgroup> cnt: array<u32, WG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  if (t >= p.rows) { return; }
  let base = t * VOCAB;
  let y = targets[t];
  // A target outside the vocabulary (the host refuses them) gives NaN rather than a wrong number.
  let valid = y >= 0 && u32(y) < VOCAB;
  let nan = bitcast<f32>(0x7fc00000u | (p.rows & 0u)); // built at run time: WGSL refuses a NaN constant
  // Read z[t, y] before any thread overwrites its row with gradients.
  let zy = select(nan, logits[base + min(u32(max(y, 0)), VOCAB - 1u)], valid);
  // Every workgroup counts the call's targets itself: a few thousand reads, no extra pass or host round trip.
  var c = 0u;
  for (var i = lid; i < p.rows; i += WG) { if (targets[i] != IGNORE) { c += 1u; } }
  cnt[lid] = c;
  var m = bitcast<f32>(0xff7fffffu); // -FLT_MAX
  for (var j = lid; j < VOCAB; j += WG) { m = max(m, logits[base + j]); }
  red[lid] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); cnt[lid] += cnt[lid + s]; }
    workgroupBarrier();
  }
  m = red[0];
  let count = f32(cnt[0]);
  workgroupBarrier();
  var sum = 0.0;
  for (var j = lid; j < VOCAB; j += WG) { sum += exp(logits[base + j] - m); }
  red[lid] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  sum = red[0];
  if (y == IGNORE) {
    if (lid == 0u) { loss[t] = 0.0; }
    for (var j = lid; j < VOCAB; j += WG) { logits[base + j] = 0.0; }
    return;
  }
  // log(sum) + (m - z_y) rather than (m + log(sum)) - z_y: no cancellation between two large numbers.
  if (lid == 0u) { loss[t] = log(sum) + (m - zy); }
  let k = SCALE / count;
  let invSum = 1.0 / sum;
  for (var j = lid; j < VOCAB; j += WG) {
    var g = exp(logits[base + j] - m) * invSum;
    if (i32(j) == y) { g -= 1.0; }
    logits[base + j] = select(nan, g * k, valid);
  }
}
