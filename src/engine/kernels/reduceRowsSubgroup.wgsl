  // Subgroup reduction over the 64 threads of the values live(v) says are needed: each subgroup
  // sums in registers and its first lane leaves the sums at its own index, marking itself in a
  // bit mask; thread 0 adds the marked entries in thread order (the same order every run) into
  // partial[0]. Nothing is assumed of the subgroup size or of which threads form a subgroup.
  var sg: array<f32, NV>;
  for (var v = 0u; v < NV; v++) {
    if (live(v, rows)) { sg[v] = subgroupAdd(acc[v]); }
  }
  if (sgLane == 0u) {
    for (var v = 0u; v < NV; v++) { partial[lid][v] = sg[v]; }
    atomicOr(&leads[lid / 32u], 1u << (lid % 32u));
  }
  workgroupBarrier();
  if (lid == 0u) {
    var sums: array<f32, NV>;
    for (var w = 0u; w < WG / 32u; w++) {
      var m = atomicLoad(&leads[w]);
      while (m != 0u) {
        let k = w * 32u + countTrailingZeros(m);
        m &= m - 1u;
        for (var v = 0u; v < NV; v++) {
          if (live(v, rows)) { sums[v] += partial[k][v]; }
        }
      }
    }
    for (var v = 0u; v < NV; v++) { partial[0][v] = sums[v]; }
  }
