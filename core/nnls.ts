// Nonnegative least squares for a handful of columns: min |x - sum_i w_i y_i|^2 over w >= 0, by
// cyclic coordinate descent on the Gram matrix (each coordinate's minimiser clipped at 0), which
// converges for any positive semi-definite Gram matrix. Used to tell a copy of one training image
// from a convex combination of several: a sample on the cone of its k nearest training images has
// a residual far below its distance to the nearest one.

/** `rows` [k * d] (k vectors of dimension d) against x [d]: the weights and the residual norm. */
export function nnls(
  rows: ArrayLike<number>,
  k: number,
  x: ArrayLike<number>,
  sweeps = 500,
): { weights: Float64Array; residual: number } {
  const d = x.length;
  const gram = new Float64Array(k * k);
  const h = new Float64Array(k);
  let xx = 0;
  for (let j = 0; j < d; j++) xx += x[j] * x[j];
  for (let a = 0; a < k; a++) {
    for (let j = 0; j < d; j++) h[a] += rows[a * d + j] * x[j];
    for (let b = 0; b <= a; b++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += rows[a * d + j] * rows[b * d + j];
      gram[a * k + b] = gram[b * k + a] = s;
    }
  }
  const w = new Float64Array(k);
  for (let sweep = 0; sweep < sweeps; sweep++) {
    let change = 0;
    for (let a = 0; a < k; a++) {
      if (gram[a * k + a] <= 0) continue;
      let g = -h[a];
      for (let b = 0; b < k; b++) g += gram[a * k + b] * w[b];
      const next = Math.max(0, w[a] - g / gram[a * k + a]);
      change = Math.max(change, Math.abs(next - w[a]));
      w[a] = next;
    }
    if (change < 1e-12) break;
  }
  let quad = 0;
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) quad += w[a] * gram[a * k + b] * w[b];
  }
  const wh = w.reduce((s, v, a) => s + v * h[a], 0);
  return { weights: w, residual: Math.sqrt(Math.max(0, xx - 2 * wh + quad)) };
}
