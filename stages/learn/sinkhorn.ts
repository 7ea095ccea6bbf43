// Sinkhorn-Knopp equipartition codes for SwAV, computed outside the training graph (the codes are
// targets: they enter the loss graph as an input, so they get no gradient). This follows the SwAV
// reference (distributed_sinkhorn, one worker):
//   Q = exp(scores / eps)^T            K x B, prototypes by samples
//   Q /= sum(Q)
//   repeat iterations: Q /= row sums, Q /= K      (every prototype gets mass 1/K)
//                      Q /= column sums, Q /= B   (every sample gets mass 1/B)
//   Q *= B                                        (every sample's code sums to 1)
// and returns Q^T, [rows, k]. Here the matrix is kept in the scores' [rows, k] layout, so the
// reference's "rows" (prototypes) are this array's columns.

/**
 * SwAV codes for scores [rows, k] (row-major; rows = samples, k = prototypes): returns [rows, k]
 * non-negative codes, each row summing to 1 when iterations >= 1 (as in the reference, the final
 * Q *= B only makes columns sum to 1 after at least one iteration).
 *
 * Computed in float64. The global maximum score is subtracted before exp: that multiplies every
 * entry of Q by the same factor exp(-max / eps), which the first normalisation (Q /= sum(Q))
 * removes, so the result is unchanged (up to float64 rounding) while exp cannot overflow, however
 * small eps or large the scores.
 */
export function sinkhorn(
  scores: Float32Array,
  rows: number,
  k: number,
  eps = 0.05,
  iterations = 3,
): Float32Array {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(k) || k < 1) {
    throw new Error(`sinkhorn: rows and k must be >= 1, got ${rows} x ${k}`);
  }
  if (scores.length !== rows * k) {
    throw new Error(`sinkhorn: ${scores.length} scores for ${rows} x ${k}`);
  }
  if (!(eps > 0)) throw new Error(`sinkhorn: eps must be > 0, got ${eps}`);
  if (!Number.isInteger(iterations) || iterations < 0) {
    throw new Error(`sinkhorn: iterations must be >= 0, got ${iterations}`);
  }
  let max = -Infinity;
  for (const s of scores) {
    if (!Number.isFinite(s)) throw new Error(`sinkhorn: non-finite score ${s}`);
    if (s > max) max = s;
  }
  const q = new Float64Array(rows * k);
  let total = 0;
  for (let i = 0; i < q.length; i++) {
    q[i] = Math.exp((scores[i] - max) / eps);
    total += q[i];
  }
  for (let i = 0; i < q.length; i++) q[i] /= total;

  const prototypeMass = new Float64Array(k);
  for (let it = 0; it < iterations; it++) {
    // Prototypes (the reference's rows, this layout's columns): each sums to 1/K.
    prototypeMass.fill(0);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < k; c++) prototypeMass[c] += q[r * k + c];
    }
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < k; c++) q[r * k + c] = q[r * k + c] / prototypeMass[c] / k;
    }
    // Samples (the reference's columns, this layout's rows): each sums to 1/B.
    for (let r = 0; r < rows; r++) {
      let mass = 0;
      for (let c = 0; c < k; c++) mass += q[r * k + c];
      for (let c = 0; c < k; c++) q[r * k + c] = q[r * k + c] / mass / rows;
    }
  }
  const codes = new Float32Array(rows * k);
  for (let i = 0; i < q.length; i++) codes[i] = q[i] * rows;
  return codes;
}
