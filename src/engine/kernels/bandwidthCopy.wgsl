// A plain copy, 16 bytes per thread per step with a grid-stride loop: the device's practical
// memory bandwidth ceiling that decode efficiency is measured against (npm run bench).
override N: u32; // vec4 elements
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * 256u;
  for (var i = gid.x; i < N; i += stride) { dst[i] = src[i]; }
}
