// The standard linear probe on frozen features: multinomial logistic regression (a softmax
// classifier), as solo-learn's and lightly's linear evaluation train it, here solved to
// convergence instead of by SGD epochs, so a probe has no learning rate and no epoch count.
// Cost: one objective evaluation is 2 n (d + 1) C multiply-adds (5,000 x 129 x 10: ~15 ms here);
// a fit takes tens to a few hundred L-BFGS iterations.
//
// Recipe: features standardised with the train set's mean and standard deviation (linear.ts's
// standardiser; a constant feature becomes 0), a bias per class. W ([d + 1, C], bias row last)
// minimises the mean cross-entropy plus (lambda / 2) |W_features|^2 (the bias is not shrunk) by
// L-BFGS (memory 10, backtracking Armijo line search) in float64, from W = 0, until the largest
// gradient entry is below `tolerance` (1e-6) or `maxIterations` (1000) pass. The objective is
// convex and, from W = 0, every iterate keeps the class biases summing to zero (the gradient's
// bias entries sum to zero), so the answer is the one minimiser with that property. lambda comes
// from a grid (1e-2, 1e-3, 1e-4 per sample) by the ridge probe's seeded 10 % hold-out rule (best
// hold-out accuracy, the largest lambda on ties), each lambda warm-started from the previous,
// larger one; the final probe is then fitted on all train features, started from the chosen fit. The prediction is the argmax of the logits (ties: the lowest class).

import type { ProbeResult } from "./knn.ts";
import { predict, prepareProbe, scoreTest } from "./linear.ts";

export interface LogisticProbeOptions {
  /** Number of classes; labels must lie in [0, classes). Default: the largest label + 1. */
  readonly classes?: number;
  /** Per-sample L2 strengths to choose from (LOGISTIC_LAMBDAS). */
  readonly lambdas?: readonly number[];
  /** Seed of the hold-out split. */
  readonly seed: number;
  /** Fraction of the train features held out to choose lambda (0.1). */
  readonly holdout?: number;
  /** Stop when every gradient entry is below this (1e-6). */
  readonly tolerance?: number;
  readonly maxIterations?: number;
}

export const LOGISTIC_LAMBDAS: readonly number[] = [1e-2, 1e-3, 1e-4];

export interface LogisticFit {
  /** [d + 1, classes], bias row last. */
  readonly weights: Float64Array;
  readonly loss: number;
  readonly iterations: number;
  /** The largest gradient entry at the end. */
  readonly gradient: number;
}

export interface LogisticProbeResult extends ProbeResult {
  readonly lambda: number;
  readonly validation: readonly { lambda: number; accuracy: number }[];
  readonly predictions: Int32Array;
  /** L-BFGS iterations and final largest gradient entry of the final fit. */
  readonly iterations: number;
  readonly gradient: number;
}

/**
 * The objective at W and its gradient (written into `grad`): mean softmax cross-entropy of the
 * rows of z ([n, d], standardised) plus (lambda / 2) |W without the bias row|^2.
 */
export function logisticObjective(
  z: Float64Array,
  labels: ArrayLike<number>,
  d: number,
  classes: number,
  lambda: number,
  w: Float64Array,
  grad: Float64Array,
): number {
  const n = labels.length;
  const logits = new Float64Array(classes);
  grad.fill(0);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    for (let c = 0; c < classes; c++) logits[c] = w[d * classes + c];
    for (let f = 0; f < d; f++) {
      const v = z[o + f];
      if (v === 0) continue;
      const row = f * classes;
      for (let c = 0; c < classes; c++) logits[c] += v * w[row + c];
    }
    // Log-sum-exp from the largest logit, so no exp overflows.
    let max = logits[0];
    for (let c = 1; c < classes; c++) if (logits[c] > max) max = logits[c];
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += logits[c] = Math.exp(logits[c] - max);
    const y = labels[i];
    loss += Math.log(sum) - Math.log(logits[y]);
    // logits now hold exp(l - max); the residual p - onehot(y), scaled by 1 / n, is the gradient
    // of the mean loss with respect to the logits.
    for (let c = 0; c < classes; c++) logits[c] = (logits[c] / sum - (c === y ? 1 : 0)) / n;
    for (let f = 0; f < d; f++) {
      const v = z[o + f];
      if (v === 0) continue;
      const row = f * classes;
      for (let c = 0; c < classes; c++) grad[row + c] += v * logits[c];
    }
    for (let c = 0; c < classes; c++) grad[d * classes + c] += logits[c];
  }
  let penalty = 0;
  for (let k = 0; k < d * classes; k++) {
    penalty += w[k] * w[k];
    grad[k] += lambda * w[k];
  }
  return loss / n + 0.5 * lambda * penalty;
}

const dot = (a: Float64Array, b: Float64Array) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
};
const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Minimises the objective by L-BFGS from `start` (W = 0 when absent). */
export function fitLogistic(
  z: Float64Array,
  labels: ArrayLike<number>,
  d: number,
  classes: number,
  lambda: number,
  options: { start?: Float64Array; tolerance?: number; maxIterations?: number } = {},
): LogisticFit {
  const size = (d + 1) * classes;
  const tolerance = options.tolerance ?? 1e-6;
  const maxIterations = options.maxIterations ?? 1000;
  const memory = 10;
  let w = options.start ? Float64Array.from(options.start) : new Float64Array(size);
  let g = new Float64Array(size);
  let f = logisticObjective(z, labels, d, classes, lambda, w, g);
  const s: Float64Array[] = [];
  const y: Float64Array[] = [];
  const rho: number[] = [];
  let iterations = 0;
  const direction = new Float64Array(size);
  const alpha = new Array(memory).fill(0);
  while (iterations < maxIterations && maxAbs(g) > tolerance) {
    // Two-loop recursion: direction = -H g, H the L-BFGS inverse Hessian estimate.
    direction.set(g);
    for (let k = s.length - 1; k >= 0; k--) {
      alpha[k] = rho[k] * dot(s[k], direction);
      for (let j = 0; j < size; j++) direction[j] -= alpha[k] * y[k][j];
    }
    const gammaScale = s.length ? dot(s.at(-1)!, y.at(-1)!) / dot(y.at(-1)!, y.at(-1)!) : 1;
    for (let j = 0; j < size; j++) direction[j] *= gammaScale;
    for (let k = 0; k < s.length; k++) {
      const beta = rho[k] * dot(y[k], direction);
      for (let j = 0; j < size; j++) direction[j] += (alpha[k] - beta) * s[k][j];
    }
    for (let j = 0; j < size; j++) direction[j] = -direction[j];
    let slope = dot(g, direction);
    if (!(slope < 0)) {
      // Not a descent direction (curvature lost to rounding): restart from steepest descent.
      s.length = y.length = rho.length = 0;
      for (let j = 0; j < size; j++) direction[j] = -g[j];
      slope = dot(g, direction);
    }
    // The first step is scaled so it moves W by at most 1 in any entry.
    let step = s.length ? 1 : Math.min(1, 1 / maxAbs(direction));
    const next = new Float64Array(size);
    const gNext = new Float64Array(size);
    let fNext = Infinity;
    for (let tries = 0; tries < 50; tries++) {
      for (let j = 0; j < size; j++) next[j] = w[j] + step * direction[j];
      fNext = logisticObjective(z, labels, d, classes, lambda, next, gNext);
      if (fNext <= f + 1e-4 * step * slope) break;
      step /= 2;
    }
    iterations++;
    if (!(fNext < f)) break; // no decrease left at float64 precision: converged
    const sk = next.map((v, j) => v - w[j]);
    const yk = gNext.map((v, j) => v - g[j]);
    const sy = dot(sk, yk);
    if (sy > 1e-12 * Math.sqrt(dot(sk, sk) * dot(yk, yk))) {
      if (s.length === memory) {
        s.shift();
        y.shift();
        rho.shift();
      }
      s.push(sk);
      y.push(yk);
      rho.push(1 / sy);
    }
    [w, g, f] = [next, gNext, fNext];
  }
  return { weights: w, loss: f, iterations, gradient: maxAbs(g) };
}

function rowsOf(z: Float64Array, d: number, rows: Int32Array): Float64Array {
  const out = new Float64Array(rows.length * d);
  rows.forEach((r, j) => out.set(z.subarray(r * d, (r + 1) * d), j * d));
  return out;
}

/**
 * Logistic-probe accuracy of frozen features: train [n, dim] with labels, test [m, dim] with
 * labels. Reads the features, never writes them.
 */
export function logisticProbeAccuracy(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  testLabels: Int32Array,
  dim: number,
  options: LogisticProbeOptions,
): LogisticProbeResult {
  const { classes, lambdas, z, stats, hold, fit } = prepareProbe(
    "logistic probe",
    train,
    trainLabels,
    test,
    testLabels,
    dim,
    options,
    [...(options.lambdas ?? LOGISTIC_LAMBDAS)].sort((a, b) => b - a),
  );
  const nHold = hold.length;
  const fitOptions = { tolerance: options.tolerance, maxIterations: options.maxIterations };
  const validation: { lambda: number; accuracy: number }[] = [];
  let lambda = lambdas[0];
  let start: Float64Array | undefined;
  const fits: Float64Array[] = [];
  if (nHold > 0) {
    const zFit = rowsOf(z, dim, fit);
    const yFit = Int32Array.from(fit, (r) => trainLabels[r]);
    const zHold = rowsOf(z, dim, hold);
    let best = -1;
    for (const l of lambdas) {
      const w = fitLogistic(zFit, yFit, dim, classes, l, { ...fitOptions, start }).weights;
      start = w;
      fits.push(w);
      const p = predict(zHold, dim, w, classes);
      let correct = 0;
      for (let j = 0; j < nHold; j++) if (p[j] === trainLabels[hold[j]]) correct++;
      const accuracy = correct / nHold;
      validation.push({ lambda: l, accuracy });
      // Grid descending: a later lambda wins only when strictly better (ties: the largest).
      if (accuracy > best) {
        best = accuracy;
        lambda = l;
      }
    }
  }
  // Warm-started from the chosen lambda's hold-out fit, a few iterations from the optimum of the
  // full problem; the objective is convex, so the start changes only the iterations taken.
  const chosen = nHold > 0 ? fits[lambdas.indexOf(lambda)] : undefined;
  const final = fitLogistic(z, trainLabels, dim, classes, lambda, { ...fitOptions, start: chosen });
  return {
    ...scoreTest(test, testLabels, dim, stats, final.weights, classes),
    lambda,
    validation,
    iterations: final.iterations,
    gradient: final.gradient,
  };
}
