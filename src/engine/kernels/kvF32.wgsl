// KV cache storage, float32: cache[pos, kvHead * HEAD_DIM + d].
@group(KV_GROUP) @binding(KV_BINDING_K) var<storage, KV_ACCESS> kCache: array<f32>;
@group(KV_GROUP) @binding(KV_BINDING_V) var<storage, KV_ACCESS> vCache: array<f32>;
fn kAt(i: u32) -> f32 { return kCache[i]; }
fn vAt(i: u32) -> f32 { return vCache[i]; }
