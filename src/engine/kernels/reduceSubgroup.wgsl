  // Subgroup reduction: each subgroup sums in registers, its first lane leaves one partial per
  // row, and thread 0 adds the ceil(64 / subgroup-size) partials.
  let sgId = lid / sgSize;
  let nSg = (WG + sgSize - 1u) / sgSize;
  for (var t = 0u; t < TILE_T; t++) {
    let s = subgroupAdd(acc[t]);
    if (sgLane == 0u) { partial[sgId][t] = s; }
  }
  workgroupBarrier();
  if (lid == 0u && o < OUT) {
    for (var t = 0u; t < rows; t++) {
      var sum = 0.0;
      for (var k = 0u; k < nSg; k++) { sum += partial[k][t]; }
      let yi = t * OUT + o;
      if (ACCUMULATE) { y[yi] = y[yi] + sum; } else { y[yi] = sum; }
    }
  }
