// The optimal field of a finite training set (paper Prop. 1 and 2). With Gaussian base noise the
// marginal rho_t is a mixture of Gaussians N(beta y_i, sigma^2 I); everything follows from the
// posterior weights lambda_i(t, x) = softmax_i(log w_i - |x - beta y_i|^2 / (2 sigma^2)):
//   denoiser m = sum_i lambda_i y_i,  score s* = (beta m - x) / sigma^2,
//   velocity b* = beta' m + (sigma sigma' / sigma^2)(x - beta m).
// It is attention (queries x, keys and values y), computed here exactly in float64 with an online
// softmax over chunks of the training set, so memory is O(B d) whatever N is. The fast engine
// (onnx.ts) computes the same chunk statistics and shares the merge below.

import { keyError } from "../../../core/errors.ts";
import type { Coefficients } from "./schedule.ts";

/** A training set as the field sees it: N points of dimension d, optional log-weights. */
export interface Points {
  readonly y: Float32Array;
  readonly n: number;
  readonly d: number;
  /** log w_i (default: uniform, which cancels in the softmax). */
  readonly logWeights?: Float64Array;
}

/**
 * A seeded split of a class for calibration: `heldOut` (at most `count` of the held share, at
 * least one image) and the `rest`, which the calibrated field is then built on. `what` names the
 * option in the error when nothing would be left.
 */
export function holdOut(
  points: Points,
  share: number,
  count: number,
  order: Int32Array,
  what: string,
): { rest: Points; heldOut: Points } {
  const { n, d } = points;
  const held = Math.max(1, Math.round(share * n));
  if (n - held < 1) throw keyError(what, `leaves nothing of a ${n}-image class to build on`);
  const take = (from: number, to: number): Points => {
    const y = new Float32Array((to - from) * d);
    for (let k = from; k < to; k++) {
      y.set(points.y.subarray(order[k] * d, (order[k] + 1) * d), (k - from) * d);
    }
    return { y, n: to - from, d };
  };
  return { heldOut: take(0, Math.min(held, count)), rest: take(held, n) };
}

/** What a field returns for a batch of queries at one time. */
export interface FieldValue {
  /** Denoiser of the target end: m_y = E[x1 | x_t = x], [B * d]. */
  readonly my: Float64Array;
  /** Denoiser of the base end for a both-ends field (E[x0 | x_t = x]); null for Gaussian base. */
  readonly ma: Float64Array | null;
  /** Smallest squared distance from x to a mixture centre, per query (density-inverse error). */
  readonly nearest2: Float64Array;
  /** Where the engine knows them: the second smallest squared distance and the nearest's index. */
  readonly second2?: Float64Array;
  readonly nearestIndex?: Int32Array;
}

export interface Field {
  readonly d: number;
  /** True when the base is a finite set too (Prop. 3): then sigma^2 = gamma^2. */
  readonly bothEnds: boolean;
  evaluate(c: Coefficients, x: Float64Array, b: number): Promise<FieldValue>;
  /** Called when a new set of b queries starts its trajectory (fields that keep per-query state). */
  begin?(b: number): void;
  /** Frees native resources (onnxruntime sessions). */
  release?(): Promise<void>;
}

/** sigma^2 and sigma sigma' of the mixture's components. */
export function spread(
  c: Coefficients,
  bothEnds: boolean,
): { sigma2: number; sigmaSigmaDot: number } {
  return bothEnds
    ? { sigma2: c.gamma * c.gamma, sigmaSigmaDot: c.gammaGammaDot }
    : { sigma2: c.sigma2, sigmaSigmaDot: c.sigmaSigmaDot };
}

/** The conditional mean of the interpolant's data part at time c: alpha m_a + beta m_y. */
export function mixtureMean(c: Coefficients, v: FieldValue, out: Float64Array): Float64Array {
  const { my, ma } = v;
  for (let j = 0; j < out.length; j++) out[j] = c.beta * my[j] + (ma ? c.alpha * ma[j] : 0);
  return out;
}

/** b* = alpha' m_a + beta' m_y + (sigma sigma' / sigma^2)(x - alpha m_a - beta m_y). */
export function velocity(
  c: Coefficients,
  bothEnds: boolean,
  x: Float64Array,
  v: FieldValue,
  out: Float64Array,
) {
  const { sigma2, sigmaSigmaDot } = spread(c, bothEnds);
  const k = sigmaSigmaDot / sigma2;
  const { my, ma } = v;
  for (let j = 0; j < out.length; j++) {
    const mean = c.beta * my[j] + (ma ? c.alpha * ma[j] : 0);
    out[j] = c.betaDot * my[j] + (ma ? c.alphaDot * ma[j] : 0) + k * (x[j] - mean);
  }
  return out;
}

/** s* = (alpha m_a + beta m_y - x) / sigma^2. */
export function score(
  c: Coefficients,
  bothEnds: boolean,
  x: Float64Array,
  v: FieldValue,
  out: Float64Array,
) {
  const { sigma2 } = spread(c, bothEnds);
  mixtureMean(c, v, out);
  for (let j = 0; j < out.length; j++) out[j] = (out[j] - x[j]) / sigma2;
  return out;
}

/**
 * Running softmax statistics of one query over a stream of chunks: the max logit, the sum of
 * exp(logit - max) and the matching weighted sum of values. Merging chunk statistics with the
 * log-add-exp rule is exact; summing per-chunk log-sum-exps is not.
 */
export class OnlineSoftmax {
  readonly max: Float64Array;
  readonly sum: Float64Array;
  readonly acc: Float64Array;
  constructor(readonly b: number, readonly d: number) {
    this.max = new Float64Array(b).fill(-Infinity);
    this.sum = new Float64Array(b);
    this.acc = new Float64Array(b * d);
  }

  /** Merges one chunk's statistics for query q: its max, sum and weighted values (at `offset`). */
  merge(q: number, max: number, sum: number, values: ArrayLike<number>, offset: number): void {
    if (sum === 0 || max === -Infinity) return;
    const d = this.d;
    const top = Math.max(this.max[q], max);
    const keep = Math.exp(this.max[q] - top);
    const add = Math.exp(max - top);
    this.sum[q] = this.sum[q] * keep + sum * add;
    const base = q * d;
    for (let j = 0; j < d; j++) {
      this.acc[base + j] = this.acc[base + j] * keep + values[offset + j] * add;
    }
    this.max[q] = top;
  }

  /** The weighted mean per query: sum_i lambda_i y_i. */
  mean(out: Float64Array): Float64Array {
    for (let q = 0; q < this.b; q++) {
      const inv = 1 / this.sum[q];
      for (let j = 0; j < this.d; j++) out[q * this.d + j] = this.acc[q * this.d + j] * inv;
    }
    return out;
  }
}

/**
 * m(t, x) in float64 with exact distances: the reference every faster path is tested against,
 * and the path for small training sets. `chunk` only changes the order of summation.
 */
export function exactDenoise(
  points: Points,
  x: Float64Array,
  b: number,
  beta: number,
  sigma2: number,
  chunk = 1024,
): { m: Float64Array; nearest2: Float64Array } {
  const { y, n, d, logWeights } = points;
  const stats = new OnlineSoftmax(b, d);
  const nearest2 = new Float64Array(b).fill(Infinity);
  const logits = new Float64Array(Math.min(chunk, n));
  const values = new Float64Array(d);
  const inv2s = 1 / (2 * sigma2);
  for (let q = 0; q < b; q++) {
    const xq = q * d;
    for (let start = 0; start < n; start += chunk) {
      const end = Math.min(n, start + chunk);
      let max = -Infinity;
      for (let i = start; i < end; i++) {
        let dist = 0;
        const yi = i * d;
        for (let j = 0; j < d; j++) {
          const e = x[xq + j] - beta * y[yi + j];
          dist += e * e;
        }
        if (dist < nearest2[q]) nearest2[q] = dist;
        const logit = (logWeights ? logWeights[i] : 0) - dist * inv2s;
        logits[i - start] = logit;
        if (logit > max) max = logit;
      }
      let sum = 0;
      values.fill(0);
      for (let i = start; i < end; i++) {
        const w = Math.exp(logits[i - start] - max);
        if (w === 0) continue;
        sum += w;
        const yi = i * d;
        for (let j = 0; j < d; j++) values[j] += w * y[yi + j];
      }
      stats.merge(q, max, sum, values, 0);
    }
  }
  return { m: stats.mean(new Float64Array(b * d)), nearest2 };
}

/** The Gaussian-base empirical field, exact in float64. */
export function exactField(points: Points, chunk = 1024): Field {
  return {
    d: points.d,
    bothEnds: false,
    evaluate(c, x, b) {
      const { m, nearest2 } = exactDenoise(points, x, b, c.beta, c.sigma2, chunk);
      return Promise.resolve({ my: m, ma: null, nearest2 });
    },
  };
}
