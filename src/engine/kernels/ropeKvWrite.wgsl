// Rotary position embedding and the KV-cache append in one pass (Hugging Face rotate-half
// convention: within each head the pair (i, i + HEAD_DIM/2) is rotated by pos * theta^(-2i/HEAD_DIM);
// cos/sin come from a table computed on the CPU, see buffers.ts ropeTable).
// Threads 0 .. N_HEADS * HEAD_DIM/2 - 1 each rotate one q pair in place in the qkv rows, which
// attention reads q from. The rest each own one pair of ADJACENT key/value elements (e, e + 1) of
// the row's kv width, so the f16 cache is written as whole packed words with no two threads
// sharing one: the thread rotates its two keys itself (their rope partners may be any elements,
// and with HEAD_DIM/2 odd e and e + 1 can even fall in different halves), then stores the rotated
// keys and the unrotated values at the row's (slot, pos). k in qkv is read, never written:
// attention reads keys from the cache only.
#include params
#include kv
override HEAD_DIM: u32;
override N_HEADS: u32;
override N_KV_HEADS: u32;
override CTX: u32; // positions per slot
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;   // [rows, (N_HEADS + 2 N_KV_HEADS) HEAD_DIM]
@group(0) @binding(2) var<storage, read> cosSin: array<f32>;      // [ctx, HEAD_DIM/2, 2]
@group(0) @binding(3) var<storage, read> rowInfo: array<RowInfo>; // [rows]
// caches: [slots, CTX, N_KV_HEADS * HEAD_DIM]

// Element d of the head starting at qkv[head] after rotation at position pos.
fn rotated(head: u32, d: u32, pos: u32) -> f32 {
  let half = HEAD_DIM / 2u;
  let i = d % half;
  let c = cosSin[(pos * half + i) * 2u];
  let s = cosSin[(pos * half + i) * 2u + 1u];
  let x0 = qkv[head + i];
  let x1 = qkv[head + i + half];
  if (d < half) { return x0 * c - x1 * s; }
  return x1 * c + x0 * s;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let half = HEAD_DIM / 2u;
  let qPairs = N_HEADS * half;
  let kvWidth = N_KV_HEADS * HEAD_DIM;
  let width = (N_HEADS + 2u * N_KV_HEADS) * HEAD_DIM;
  let t = gid.y;
  if (t >= p.rows || gid.x >= qPairs + kvWidth / 2u) { return; }
  let row = rowInfo[t];
  if (gid.x < qPairs) {
    let head = t * width + (gid.x / half) * HEAD_DIM;
    let i = gid.x % half;
    let a = rotated(head, i, row.pos);
    let b = rotated(head, i + half, row.pos);
    qkv[head + i] = a;
    qkv[head + i + half] = b;
    return;
  }
  let e = (gid.x - qPairs) * 2u; // even, and HEAD_DIM is even: e and e + 1 share a head
  let kHead = t * width + N_HEADS * HEAD_DIM + (e / HEAD_DIM) * HEAD_DIM;
  let d = e % HEAD_DIM;
  let k = vec2<f32>(rotated(kHead, d, row.pos), rotated(kHead, d + 1u, row.pos));
  let src = t * width + (N_HEADS + N_KV_HEADS) * HEAD_DIM + e;
  let v = vec2<f32>(qkv[src], qkv[src + 1u]);
  let dst = (row.slot * CTX + row.pos) * kvWidth + e;
  kPut(dst, k);
  vPut(dst, v);
}
