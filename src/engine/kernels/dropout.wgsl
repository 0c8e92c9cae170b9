// Dropout of an adapter's input, with a mask regenerated from a counter-based hash (engine/dropout.ts
// writes the same hash in TypeScript; the reference trainer's masks are bit-identical):
//   dst[t, c] = (ACCUMULATE ? dst[t, c] : 0) + src[t, c] · (keep(t·WIDTH + c) ? scale : 0),  c < WIDTH
//   keep(i) = hash(key, stream, i) >= threshold   (threshold = round(p·2³²), scale = 1/(1-p))
// The forward drops x before the adapter's first matrix (PEFT lora_dropout, LLM-Adapters
// adapter_dropout); the backward multiplies the gradient flowing back to x by the same mask.
// Nothing is stored between them: the hash gives the mask again after gradient checkpointing.
// One thread per (column, row).
#include params
override WIDTH: u32;
override ACCUMULATE: bool = false;
struct DropoutStep {
  key: u32,        // per micro-batch: dropoutKey(seed, step, micro)
  threshold: u32,  // entries hashing below it are dropped
  scale: f32,      // 1/(1-p) as f32
  unused: u32,
};
struct DropoutStream {
  stream: u32,     // layer·8 + module index: each module's own mask
  unused0: u32,
  unused1: u32,
  unused2: u32,
};
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> drop: DropoutStep;
@group(0) @binding(2) var<uniform> s: DropoutStream;
@group(0) @binding(3) var<storage, read> src: array<f32>;       // [rows, WIDTH]
@group(0) @binding(4) var<storage, read_write> dst: array<f32>; // [rows, WIDTH]

// Wellons' lowbias32 (hash-prospector), a bijection on u32; u32 products wrap as Math.imul does.
fn lowbias32(x0: u32) -> u32 {
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let t = gid.y;
  if (c >= WIDTH || t >= p.rows) { return; }
  let k = lowbias32(drop.key ^ lowbias32(s.stream + 0x9e3779b9u));
  let i = t * WIDTH + c;
  let h = lowbias32(lowbias32(i ^ k) + k);
  var v = 0.0;
  if (h >= drop.threshold) { v = src[i] * drop.scale; }
  if (ACCUMULATE) { dst[i] = dst[i] + v; } else { dst[i] = v; }
}
