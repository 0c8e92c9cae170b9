  // Shared-memory tree reduction over the 64 threads of the values live(v) says are needed: the
  // sums end in partial[0].
  for (var v = 0u; v < NV; v++) { partial[lid][v] = acc[v]; }
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      for (var v = 0u; v < NV; v++) {
        if (live(v, rows)) { partial[lid][v] += partial[lid + stride][v]; }
      }
    }
    workgroupBarrier();
  }
