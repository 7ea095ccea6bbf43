// Exact pruning once the weights are one-hot. After a full evaluation, a query whose nearest
// centre beta y_w beats every other one by enough that the rest weigh less than 1e-12 in total
// is certified; later evaluations check the certificate with a bound that costs O(d), not O(N d):
// by the triangle inequality, for every i != w and any later (x, beta),
//   |x - beta y_i| >= D2_ref - |x - x_ref| - |beta - beta_ref| max_i |y_i|  =: L,
// where D2_ref is the second smallest distance at the reference point. If
//   (N - 1) exp(-(L^2 - |x - beta y_w|^2) / (2 sigma^2)) <= 1e-12,
// the denoiser is y_w to within that relative weight, and the query skips the O(N d) work. Queries
// that fail the check go back to the full field. Only the Gaussian base with uniform weights.

import type { Field, FieldValue, Points } from "./field.ts";

/** Relative weight the certificate may drop. */
const DROPPED = 1e-12;

export interface PrunedField extends Field {
  /** Query evaluations answered by a certificate / by the full field. */
  readonly counts: { certified: number; full: number };
}

export function prunedField(inner: Field, points: Points): PrunedField {
  const { y, n, d } = points;
  let maxNorm = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += y[i * d + j] * y[i * d + j];
    maxNorm = Math.max(maxNorm, Math.sqrt(s));
  }
  // Per query: the certified winner (-1 = none), reference point, beta and second distance.
  let winner = new Int32Array(0);
  let refX = new Float64Array(0);
  let refBeta = new Float64Array(0);
  let refSecond = new Float64Array(0);
  const counts = { certified: 0, full: 0 };
  const logDropped = Math.log(DROPPED) - Math.log(Math.max(1, n - 1));

  return {
    d,
    bothEnds: false,
    counts,
    begin(b) {
      winner = new Int32Array(b).fill(-1);
      refX = new Float64Array(b * d);
      refBeta = new Float64Array(b);
      refSecond = new Float64Array(b);
      inner.begin?.(b);
    },
    release: () => inner.release?.() ?? Promise.resolve(),
    async evaluate(c, x, b): Promise<FieldValue> {
      const my = new Float64Array(b * d);
      const nearest2 = new Float64Array(b);
      const open: number[] = [];
      for (let q = 0; q < b; q++) {
        const w = winner[q];
        if (w >= 0) {
          let moved = 0;
          let dw = 0;
          for (let j = 0; j < d; j++) {
            const e = x[q * d + j] - refX[q * d + j];
            moved += e * e;
            const f = x[q * d + j] - c.beta * y[w * d + j];
            dw += f * f;
          }
          const bound = refSecond[q] - Math.sqrt(moved) - Math.abs(c.beta - refBeta[q]) * maxNorm;
          if (bound > 0 && -(bound * bound - dw) / (2 * c.sigma2) <= logDropped) {
            my.set(y.subarray(w * d, (w + 1) * d), q * d);
            nearest2[q] = dw;
            counts.certified++;
            continue;
          }
          winner[q] = -1;
        }
        open.push(q);
      }
      if (open.length === 0) return { my, ma: null, nearest2 };
      const sub = new Float64Array(open.length * d);
      open.forEach((q, k) => sub.set(x.subarray(q * d, (q + 1) * d), k * d));
      const v = await inner.evaluate(c, sub, open.length);
      counts.full += open.length;
      open.forEach((q, k) => {
        my.set(v.my.subarray(k * d, (k + 1) * d), q * d);
        nearest2[q] = v.nearest2[k];
        const second = v.second2?.[k] ?? Infinity;
        const index = v.nearestIndex?.[k] ?? -1;
        // Certify at the point itself: every other centre is at least `second` away.
        if (
          index >= 0 && Number.isFinite(second) &&
          -(second - v.nearest2[k]) / (2 * c.sigma2) <= logDropped
        ) {
          winner[q] = index;
          refX.set(x.subarray(q * d, (q + 1) * d), q * d);
          refBeta[q] = c.beta;
          refSecond[q] = Math.sqrt(second);
        }
      });
      return { my, ma: null, nearest2 };
    },
  };
}
