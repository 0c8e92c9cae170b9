  // Shared-memory tree reduction of acc[t] over the 64 threads.
  for (var t = 0u; t < TILE_T; t++) { partial[lid][t] = acc[t]; }
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      for (var t = 0u; t < TILE_T; t++) { partial[lid][t] += partial[lid + stride][t]; }
    }
    workgroupBarrier();
  }
  if (lid == 0u && o < OUT) {
    for (var t = 0u; t < rows; t++) {
      let yi = t * OUT + o;
      if (ACCUMULATE) { y[yi] = y[yi] + partial[0][t]; } else { y[yi] = partial[0][t]; }
    }
  }
