// KV cache storage, float16 pairs packed in u32 (halves the cache of the f16 modes; read with
// unpack2x16float so no shader-f16 feature is needed).
@group(KV_GROUP) @binding(KV_BINDING_K) var<storage, KV_ACCESS> kCache: array<u32>;
@group(KV_GROUP) @binding(KV_BINDING_V) var<storage, KV_ACCESS> vCache: array<u32>;
fn kAt(i: u32) -> f32 { return unpack2x16float(kCache[i >> 1u])[i & 1u]; }
fn vAt(i: u32) -> f32 { return unpack2x16float(vCache[i >> 1u])[i & 1u]; }
