// Both ends empirical (paper Prop. 3, appendix A.1): base points a_k, target points y_i and a
// coupling pi_ki (independent by default). Needs gamma > 0: the mixture's components are
// N(alpha a_k + beta y_i, gamma^2 I), and
//   lambda_ki = softmax_(k,i)(log pi_ki - |x - alpha a_k - beta y_i|^2 / (2 gamma^2)),
//   m_a = sum lambda_ki a_k,  m_y = sum lambda_ki y_i.

import type { Field, Points } from "./field.ts";
import { OnlineSoftmax } from "./field.ts";

/** A coupling as explicit pairs: base index k, target index i, log pi_ki. */
export interface Coupling {
  readonly base: Int32Array;
  readonly target: Int32Array;
  readonly logWeight: Float64Array;
}

/** Every (k, i) pair with weight 1 / (K N). */
export function independentCoupling(k: number, n: number): Coupling {
  const base = new Int32Array(k * n);
  const target = new Int32Array(k * n);
  for (let a = 0; a < k; a++) {
    for (let i = 0; i < n; i++) {
      base[a * n + i] = a;
      target[a * n + i] = i;
    }
  }
  return { base, target, logWeight: new Float64Array(k * n).fill(-Math.log(k * n)) };
}

export function bothEndsField(basePoints: Points, target: Points, coupling?: Coupling): Field {
  const d = target.d;
  if (basePoints.d !== d) {
    throw new Error(`both-ends: base dimension ${basePoints.d} != target ${d}`);
  }
  const pairs = coupling ?? independentCoupling(basePoints.n, target.n);
  const a = basePoints.y;
  const y = target.y;
  return {
    d,
    bothEnds: true,
    evaluate(c, x, b) {
      const stats = new OnlineSoftmax(b, 2 * d);
      const nearest2 = new Float64Array(b).fill(Infinity);
      const values = new Float64Array(2 * d);
      const inv2g = 1 / (2 * c.gamma * c.gamma);
      for (let q = 0; q < b; q++) {
        for (let p = 0; p < pairs.base.length; p++) {
          const ak = pairs.base[p] * d;
          const yi = pairs.target[p] * d;
          let dist = 0;
          for (let j = 0; j < d; j++) {
            const e = x[q * d + j] - c.alpha * a[ak + j] - c.beta * y[yi + j];
            dist += e * e;
          }
          if (dist < nearest2[q]) nearest2[q] = dist;
          for (let j = 0; j < d; j++) {
            values[j] = a[ak + j];
            values[d + j] = y[yi + j];
          }
          // One pair is one chunk of size 1: its max is its logit and its sum is 1.
          stats.merge(q, pairs.logWeight[p] - dist * inv2g, 1, values, 0);
        }
      }
      const both = stats.mean(new Float64Array(b * 2 * d));
      const ma = new Float64Array(b * d);
      const my = new Float64Array(b * d);
      for (let q = 0; q < b; q++) {
        ma.set(both.subarray(q * 2 * d, q * 2 * d + d), q * d);
        my.set(both.subarray(q * 2 * d + d, (q + 1) * 2 * d), q * d);
      }
      return Promise.resolve({ my, ma, nearest2 });
    },
  };
}
