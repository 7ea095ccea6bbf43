// The linear probe on frozen features: ridge regression to one-hot targets, solved in closed form.
//
// Why ridge: the spec (recipes.md, "Probes") allows "a closed-form ridge / L-BFGS logistic
// regression at small scale" next to CIFAR's 100-epoch SGD probe, and sia's Table 3 runs are small
// scale. The closed form has no training loop, no learning rate, no epochs and no initialisation:
// the same features give the same probe bit for bit, and it only ever reads the features (plain
// arrays extracted from a frozen snapshot of the encoder, see features.ts), so it cannot touch the
// encoder - the failure the spec warns about, an unfrozen backbone inflating "linear" accuracy.
//
// Recipe: features standardised with the train set's mean and standard deviation (a constant
// feature becomes 0), a bias column appended, W solved from (Z^T Z + n lambda P) W = Z^T Y by
// Cholesky in float64, P the identity on the features and 0 on the bias (the bias is not shrunk),
// n the rows solved over (so lambda is per sample and one grid serves any n). lambda comes from a
// grid by a seeded hold-out split of the train features (10 %): the one with the best hold-out
// accuracy, the largest on ties; the final probe is then solved on all train features. The
// prediction is the argmax of Z W (ties: the lowest class).

import { Rng } from "../../../core/rng.ts";
import type { ProbeResult } from "./knn.ts";
import { classCount } from "./knn.ts";

export interface LinearProbeOptions {
  /** Number of classes; labels must lie in [0, classes). Default: the largest label + 1. */
  readonly classes?: number;
  /** Per-sample ridge strengths to choose from (LAMBDAS). */
  readonly lambdas?: readonly number[];
  /** Seed of the hold-out split. */
  readonly seed: number;
  /** Fraction of the train features held out to choose lambda (0.1). */
  readonly holdout?: number;
}

export const LAMBDAS: readonly number[] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1];

export interface LinearProbeResult extends ProbeResult {
  /** The chosen lambda (per sample). */
  readonly lambda: number;
  /** Hold-out accuracy of every lambda tried, in grid order. */
  readonly validation: readonly { lambda: number; accuracy: number }[];
  readonly predictions: Int32Array;
}

/**
 * Solves A X = B for symmetric positive definite A ([n, n]) and B ([n, m]), row-major, by
 * Cholesky (A = L L^T) in float64. Throws when A is not positive definite.
 */
export function choleskySolve(
  a: Float64Array,
  b: Float64Array,
  n: number,
  m: number,
): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let p = 0; p < j; p++) s -= l[i * n + p] * l[j * n + p];
      if (i === j) {
        if (!(s > 0)) throw new Error(`cholesky: matrix not positive definite (pivot ${i}: ${s})`);
        l[i * n + i] = Math.sqrt(s);
      } else {
        l[i * n + j] = s / l[j * n + j];
      }
    }
  }
  // L Y = B, then L^T X = Y, all m right-hand sides at once.
  const x = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < i; p++) {
      const lip = l[i * n + p];
      if (lip !== 0) { for (let c = 0; c < m; c++) x[i * m + c] -= lip * x[p * m + c]; }
    }
    const d = l[i * n + i];
    for (let c = 0; c < m; c++) x[i * m + c] /= d;
  }
  for (let i = n - 1; i >= 0; i--) {
    for (let p = i + 1; p < n; p++) {
      const lpi = l[p * n + i];
      if (lpi !== 0) { for (let c = 0; c < m; c++) x[i * m + c] -= lpi * x[p * m + c]; }
    }
    const d = l[i * n + i];
    for (let c = 0; c < m; c++) x[i * m + c] /= d;
  }
  return x;
}

/** The four dot products of columns (pa, pa1) x (pb, pb1) of zT over `rows`, into out. */
function dot2x2(
  zT: Float64Array,
  pa: number,
  pa1: number,
  pb: number,
  pb1: number,
  rows: number,
  out: Float64Array,
): void {
  let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
  for (let r = 0; r < rows; r++) {
    const u0 = zT[pa + r];
    const u1 = zT[pa1 + r];
    const v0 = zT[pb + r];
    const v1 = zT[pb1 + r];
    s00 += u0 * v0;
    s01 += u0 * v1;
    s10 += u1 * v0;
    s11 += u1 * v1;
  }
  out[0] = s00;
  out[1] = s01;
  out[2] = s10;
  out[3] = s11;
}

/**
 * Z^T Z ([width, width]) of a column-major design zT ([width, rows]: column a at a * rows), each
 * entry summed over the rows in order, register-blocked 2 x 2 (in a small function called per
 * block, which V8 optimises whole rather than by on-stack replacement).
 */
export function gram(zT: Float64Array, width: number, rows: number): Float64Array {
  const g = new Float64Array(width * width);
  const s = new Float64Array(4);
  for (let a = 0; a < width; a += 2) {
    const a1 = Math.min(a + 1, width - 1);
    for (let b = a; b < width; b += 2) {
      const b1 = Math.min(b + 1, width - 1);
      dot2x2(zT, a * rows, a1 * rows, b * rows, b1 * rows, rows, s);
      // Clamped duplicates write the same value twice; entries below the diagonal mirror.
      g[a * width + b] = g[b * width + a] = s[0];
      g[a * width + b1] = g[b1 * width + a] = s[1];
      g[a1 * width + b] = g[b * width + a1] = s[2];
      g[a1 * width + b1] = g[b1 * width + a1] = s[3];
    }
  }
  return g;
}

/**
 * W ([width, m]) from the normal equations (G + penalty P) W = Z^T Y, G = Z^T Z of a design whose
 * last column is the bias (not penalised: P is the identity but for that last entry).
 */
export function solveRidge(
  g: Float64Array,
  zty: Float64Array,
  width: number,
  m: number,
  penalty: number,
): Float64Array {
  const a = Float64Array.from(g);
  for (let i = 0; i < width - 1; i++) a[i * width + i] += penalty;
  return choleskySolve(a, zty, width, m);
}

/** Column-major design [d + 1, rows] of the given rows of x ([n, d]), bias last. */
function designColumns(x: ArrayLike<number>, d: number, rows: ArrayLike<number>): Float64Array {
  const r = rows.length;
  const zT = new Float64Array((d + 1) * r);
  for (let j = 0; j < r; j++) {
    const o = rows[j] * d;
    for (let f = 0; f < d; f++) zT[f * r + j] = x[o + f];
  }
  zT.fill(1, d * r);
  return zT;
}

/**
 * Ridge regression with a bias column: W ([d + 1, m], bias row last) solving
 * (Z^T Z + lambda P) W = Z^T Y, Z = [x, 1] ([n, d + 1]), y [n, m], P the identity but 0 for the
 * bias. lambda is absolute here (the probe passes n * its per-sample lambda).
 */
export function ridgeRegression(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  n: number,
  d: number,
  m: number,
  lambda: number,
): Float64Array {
  const zT = designColumns(x, d, Int32Array.from({ length: n }, (_, i) => i));
  const width = d + 1;
  const zty = new Float64Array(width * m);
  for (let a = 0; a < width; a++) {
    for (let i = 0; i < n; i++) {
      const z = zT[a * n + i];
      for (let c = 0; c < m; c++) zty[a * m + c] += z * y[i * m + c];
    }
  }
  return solveRidge(gram(zT, width, n), zty, width, m, lambda);
}

/** Train-set mean and 1 / std per feature (0 for a constant feature), in float64. */
export function standardiser(
  x: Float32Array,
  d: number,
): { mean: Float64Array; scale: Float64Array } {
  const n = x.length / d;
  const mean = new Float64Array(d);
  const scale = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let f = 0; f < d; f++) mean[f] += x[i * d + f];
  for (let f = 0; f < d; f++) mean[f] /= n;
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < d; f++) {
      const c = x[i * d + f] - mean[f];
      scale[f] += c * c;
    }
  }
  for (let f = 0; f < d; f++) {
    const std = Math.sqrt(scale[f] / n);
    scale[f] = std > 0 ? 1 / std : 0;
  }
  return { mean, scale };
}

/** (x - mean) * scale per feature, in float64 (the probes' standardised features). */
export function standardise(
  x: Float32Array,
  d: number,
  s: ReturnType<typeof standardiser>,
): Float64Array {
  const z = new Float64Array(x.length);
  for (let i = 0; i < z.length; i++) {
    const f = i % d;
    z[i] = (x[i] - s.mean[f]) * s.scale[f];
  }
  return z;
}

/** Z^T onehot(labels) ([width, classes]) from a column-major design. */
function zTy(zT: Float64Array, width: number, labels: ArrayLike<number>, classes: number) {
  const rows = labels.length;
  const out = new Float64Array(width * classes);
  for (let a = 0; a < width; a++) {
    for (let r = 0; r < rows; r++) out[a * classes + labels[r]] += zT[a * rows + r];
  }
  return out;
}

/** argmax over classes of [z, 1] W for each row of z ([n, d]) (ties: the lowest class). */
export function predict(
  z: Float64Array,
  d: number,
  w: Float64Array,
  classes: number,
): Int32Array {
  const n = z.length / d;
  const out = new Int32Array(n);
  const scores = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) scores[c] = w[d * classes + c];
    for (let f = 0; f < d; f++) {
      const v = z[i * d + f];
      if (v !== 0) { for (let c = 0; c < classes; c++) scores[c] += v * w[f * classes + c]; }
    }
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[c] > scores[best]) best = c;
    out[i] = best;
  }
  return out;
}

function checkLabels(labels: Int32Array, classes: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!(l >= 0 && l < classes)) {
      throw new Error(`linear probe: ${what} label ${l} at ${i} not in [0, ${classes})`);
    }
  }
}

/** Accuracy of weights w ([dim + 1, classes]) on test features standardised by `stats`. */
export function scoreTest(
  test: Float32Array,
  testLabels: Int32Array,
  dim: number,
  stats: ReturnType<typeof standardiser>,
  w: Float64Array,
  classes: number,
): ProbeResult & { predictions: Int32Array } {
  const m = testLabels.length;
  const predictions = predict(standardise(test, dim, stats), dim, w, classes);
  let correct = 0;
  for (let i = 0; i < m; i++) if (predictions[i] === testLabels[i]) correct++;
  return { accuracy: m === 0 ? 0 : correct / m, correct, total: m, predictions };
}

/** What both linear probes (ridge here, logistic in logistic.ts) share before they fit. */
export interface ProbeSetup {
  readonly n: number;
  readonly classes: number;
  readonly lambdas: readonly number[];
  /** Train features standardised by the train set's statistics, and those statistics. */
  readonly z: Float64Array;
  readonly stats: ReturnType<typeof standardiser>;
  /** The seeded hold-out split of the train rows, each part in index order. */
  readonly hold: Int32Array;
  readonly fit: Int32Array;
}

/**
 * Checks a probe's inputs (one line naming `what` and the problem), standardises the train
 * features and draws the seeded hold-out split that chooses lambda. The split's parts keep index
 * order, so sums over them depend on membership only, not on the draw's order.
 */
export function prepareProbe(
  what: string,
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  testLabels: Int32Array,
  dim: number,
  options: LinearProbeOptions,
  lambdas: readonly number[],
): ProbeSetup {
  const n = trainLabels.length;
  const m = testLabels.length;
  if (train.length !== n * dim || test.length !== m * dim) {
    throw new Error(
      `${what}: ${train.length} train and ${test.length} test values for ${n} and ${m} ` +
        `rows of ${dim}`,
    );
  }
  if (lambdas.length === 0 || lambdas.some((l) => !(l > 0))) {
    throw new Error(`${what}: lambdas must be positive, got [${lambdas}]`);
  }
  const classes = options.classes ?? classCount(trainLabels, testLabels);
  checkLabels(trainLabels, classes, "train");
  checkLabels(testLabels, classes, "test");
  const holdout = options.holdout ?? 0.1;
  const nHold = lambdas.length > 1 ? Math.round(n * holdout) : 0;
  if (n - nHold < 1 || (lambdas.length > 1 && nHold < 1)) {
    throw new Error(`${what}: ${n} train features cannot spare a ${holdout} hold-out`);
  }
  const stats = standardiser(train, dim);
  const z = standardise(train, dim, stats);
  const perm = new Rng(options.seed, "linear-probe-holdout").permutation(n);
  const hold = Int32Array.from(perm.subarray(0, nHold)).sort();
  const fit = Int32Array.from(perm.subarray(nHold)).sort();
  return { n, classes, lambdas, z, stats, hold, fit };
}

/**
 * Linear-probe accuracy of frozen features: train [n, dim] with labels, test [m, dim] with
 * labels. Reads the features, never writes them.
 */
export function linearProbeAccuracy(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  testLabels: Int32Array,
  dim: number,
  options: LinearProbeOptions,
): LinearProbeResult {
  const { n, classes, lambdas, z, stats, hold, fit } = prepareProbe(
    "linear probe",
    train,
    trainLabels,
    test,
    testLabels,
    dim,
    options,
    options.lambdas ?? LAMBDAS,
  );
  const nHold = hold.length;
  const width = dim + 1;
  const labelsOf = (rows: Int32Array) => Int32Array.from(rows, (r) => trainLabels[r]);
  const fitT = designColumns(z, dim, fit);
  const gFit = gram(fitT, width, fit.length);
  const yFit = zTy(fitT, width, labelsOf(fit), classes);

  const validation: { lambda: number; accuracy: number }[] = [];
  let lambda = lambdas[0];
  let gAll = gFit;
  let yAll = yFit;
  if (nHold > 0) {
    const holdT = designColumns(z, dim, hold);
    const holdLabels = labelsOf(hold);
    const zHold = new Float64Array(nHold * dim);
    hold.forEach((r, j) => zHold.set(z.subarray(r * dim, (r + 1) * dim), j * dim));
    let best = -1;
    for (const l of lambdas) {
      const w = solveRidge(gFit, yFit, width, classes, l * fit.length);
      const p = predict(zHold, dim, w, classes);
      let correct = 0;
      for (let j = 0; j < nHold; j++) if (p[j] === holdLabels[j]) correct++;
      const accuracy = correct / nHold;
      validation.push({ lambda: l, accuracy });
      if (accuracy > best || (accuracy === best && l > lambda)) {
        best = accuracy;
        lambda = l;
      }
    }
    const gHold = gram(holdT, width, nHold);
    const yHold = zTy(holdT, width, holdLabels, classes);
    gAll = gFit.map((v, i) => v + gHold[i]);
    yAll = yFit.map((v, i) => v + yHold[i]);
  }
  const w = solveRidge(gAll, yAll, width, classes, lambda * n);
  return { ...scoreTest(test, testLabels, dim, stats, w, classes), lambda, validation };
}
