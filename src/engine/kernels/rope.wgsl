// Rotary position embedding, Hugging Face rotate-half convention: within each head the pair
// (i, i + HEAD_DIM/2) is rotated by angle pos * theta^(-2i/HEAD_DIM). Applied in place to the
// q heads and k heads of the fused qkv rows; cos/sin come from a table computed on the CPU
// (llama.ts ropeTable: HF's f32 angles, f64 cos/sin; more exact than f32 cos on large angles).
#include params
override HEAD_DIM: u32;
override N_ROT_HEADS: u32; // q heads + kv heads (v is not rotated)
override QKV_WIDTH: u32;   // (heads + 2 kv heads) * HEAD_DIM
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>; // [rows, QKV_WIDTH]
@group(0) @binding(2) var<storage, read> cosSin: array<f32>;    // [ctx, HEAD_DIM/2, 2]
@group(0) @binding(3) var<storage, read> rowInfo: array<RowInfo>; // [rows]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let half = HEAD_DIM / 2u;
  let i = gid.x % half;
  let h = gid.x / half;
  let t = gid.y;
  if (h >= N_ROT_HEADS || t >= p.rows) { return; }
  let pos = rowInfo[t].pos;
  let c = cosSin[(pos * half + i) * 2u];
  let s = cosSin[(pos * half + i) * 2u + 1u];
  let a = t * QKV_WIDTH + h * HEAD_DIM + i;
  let x0 = qkv[a];
  let x1 = qkv[a + half];
  qkv[a] = x0 * c - x1 * s;
  qkv[a + half] = x1 * c + x0 * s;
}
