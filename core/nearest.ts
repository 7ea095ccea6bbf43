// Exact nearest neighbours by brute force in float64 accumulation. Used for the memorization
// ratio (nearest / second nearest) and the noise generator's neighbour mixing. Distances are
// computed directly as sum (q - k)^2 rather than through |q|^2 + |k|^2 - 2 q.k, which cancels
// catastrophically exactly where it matters: for samples that sit on a training point.

export interface Neighbours {
  /** [queries * k] indices into the keys, nearest first; -1 where fewer than k keys exist. */
  readonly index: Int32Array;
  /** [queries * k] Euclidean distances, ascending per query. */
  readonly distance: Float64Array;
}

export function squaredDistance(
  a: Float32Array,
  aOffset: number,
  b: Float32Array,
  bOffset: number,
  d: number,
): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let j = 0;
  for (; j + 3 < d; j += 4) {
    const e0 = a[aOffset + j] - b[bOffset + j];
    const e1 = a[aOffset + j + 1] - b[bOffset + j + 1];
    const e2 = a[aOffset + j + 2] - b[bOffset + j + 2];
    const e3 = a[aOffset + j + 3] - b[bOffset + j + 3];
    s0 += e0 * e0;
    s1 += e1 * e1;
    s2 += e2 * e2;
    s3 += e3 * e3;
  }
  for (; j < d; j++) {
    const e = a[aOffset + j] - b[bOffset + j];
    s0 += e * e;
  }
  return s0 + s1 + s2 + s3;
}

/**
 * The k nearest keys of each query. With `skipSelf`, queries are the keys themselves and a
 * query's own row is never its neighbour.
 */
export function kNearest(
  queries: Float32Array,
  keys: Float32Array,
  d: number,
  k: number,
  skipSelf = false,
): Neighbours {
  const nq = queries.length / d;
  const nk = keys.length / d;
  const index = new Int32Array(nq * k).fill(-1);
  const distance = new Float64Array(nq * k).fill(Infinity);
  for (let q = 0; q < nq; q++) {
    const base = q * k;
    for (let i = 0; i < nk; i++) {
      if (skipSelf && i === q) continue;
      const dist = squaredDistance(queries, q * d, keys, i * d, d);
      if (dist >= distance[base + k - 1]) continue;
      // Insertion into the sorted top-k list: k is small (2 for the memorization ratio).
      let slot = k - 1;
      while (slot > 0 && distance[base + slot - 1] > dist) {
        distance[base + slot] = distance[base + slot - 1];
        index[base + slot] = index[base + slot - 1];
        slot--;
      }
      distance[base + slot] = dist;
      index[base + slot] = i;
    }
    for (let j = 0; j < k; j++) distance[base + j] = Math.sqrt(distance[base + j]);
  }
  return { index, distance };
}
