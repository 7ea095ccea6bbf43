// The logistic probe: L-BFGS reaches the minimiser a float64 Newton reference (plain arrays,
// Gaussian elimination, written independently here) finds on a small problem; the objective's
// gradient equals central differences; separable classes are learnt, random labels stay near
// chance; the probe is deterministic and only reads the features.

import assert from "node:assert/strict";
import { Rng } from "../../../../core/rng.ts";
import {
  fitLogistic,
  logisticObjective,
  logisticProbeAccuracy,
} from "../../../../stages/sink/probe/logistic.ts";

function problem(n: number, d: number, classes: number, seed: number) {
  const rng = new Rng(seed, "logistic-test");
  const centres = Array.from({ length: classes * d }, () => rng.normal());
  const labels = Int32Array.from({ length: n }, () => rng.int(classes));
  const x = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < d; f++) x[i * d + f] = centres[labels[i] * d + f] + 1.5 * rng.normal();
  }
  return { x, labels };
}

/** Plain mean cross-entropy + (lambda / 2) |W|^2 (bias free) at W[f][c], W[d] the bias row. */
function reference(
  x: Float64Array,
  labels: Int32Array,
  d: number,
  classes: number,
  lambda: number,
) {
  const n = labels.length;
  const p = d + 1;
  const feature = (i: number, f: number) => (f === d ? 1 : x[i * d + f]);
  const probabilities = (w: number[][], i: number) => {
    const l = Array.from({ length: classes }, (_, c) => {
      let s = 0;
      for (let f = 0; f < p; f++) s += feature(i, f) * w[f][c];
      return s;
    });
    const max = Math.max(...l);
    const e = l.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  };
  // Damped Newton on the objective plus (1/2)(sum of the biases)^2: that term is 0 on the
  // zero-sum minimiser L-BFGS finds from W = 0 and makes the Hessian invertible.
  const w = Array.from({ length: p }, () => new Array(classes).fill(0));
  const index = (f: number, c: number) => f * classes + c;
  const size = p * classes;
  for (let iteration = 0; iteration < 100; iteration++) {
    const g = new Array(size).fill(0);
    const h = Array.from({ length: size }, () => new Array(size).fill(0));
    for (let i = 0; i < n; i++) {
      const q = probabilities(w, i);
      for (let f = 0; f < p; f++) {
        for (let c = 0; c < classes; c++) {
          g[index(f, c)] += feature(i, f) * (q[c] - (c === labels[i] ? 1 : 0)) / n;
          for (let f2 = 0; f2 < p; f2++) {
            for (let c2 = 0; c2 < classes; c2++) {
              h[index(f, c)][index(f2, c2)] += feature(i, f) * feature(i, f2) *
                (q[c] * ((c === c2 ? 1 : 0) - q[c2])) / n;
            }
          }
        }
      }
    }
    const biasSum = w[d].reduce((a, b) => a + b, 0);
    for (let f = 0; f < p; f++) {
      for (let c = 0; c < classes; c++) {
        if (f < d) {
          g[index(f, c)] += lambda * w[f][c];
          h[index(f, c)][index(f, c)] += lambda;
        } else {
          g[index(f, c)] += biasSum;
          for (let c2 = 0; c2 < classes; c2++) h[index(f, c)][index(d, c2)] += 1;
        }
      }
    }
    // Solve h step = g by Gaussian elimination with partial pivoting.
    const a = h.map((row, r) => [...row, g[r]]);
    for (let col = 0; col < size; col++) {
      let piv = col;
      for (let r = col + 1; r < size; r++) if (Math.abs(a[r][col]) > Math.abs(a[piv][col])) piv = r;
      [a[col], a[piv]] = [a[piv], a[col]];
      for (let r = col + 1; r < size; r++) {
        const m = a[r][col] / a[col][col];
        for (let k = col; k <= size; k++) a[r][k] -= m * a[col][k];
      }
    }
    const step = new Array(size).fill(0);
    for (let r = size - 1; r >= 0; r--) {
      let s = a[r][size];
      for (let k = r + 1; k < size; k++) s -= a[r][k] * step[k];
      step[r] = s / a[r][r];
    }
    for (let f = 0; f < p; f++) for (let c = 0; c < classes; c++) w[f][c] -= step[index(f, c)];
    if (Math.max(...step.map(Math.abs)) < 1e-13) break;
  }
  return w.flat();
}

Deno.test("logistic: L-BFGS reaches the float64 Newton reference's minimiser to 1e-6", () => {
  for (const [n, d, classes, lambda] of [[80, 3, 3, 1e-2], [150, 5, 4, 1e-3], [60, 4, 2, 0.1]]) {
    const { x, labels } = problem(n, d, classes, n);
    const fit = fitLogistic(x, labels, d, classes, lambda, { tolerance: 1e-8 });
    const expected = reference(x, labels, d, classes, lambda);
    assert.ok(fit.gradient <= 1e-7, `converged: ${fit.gradient}`);
    for (let k = 0; k < expected.length; k++) {
      assert.ok(
        Math.abs(fit.weights[k] - expected[k]) < 1e-6,
        `n ${n}: w[${k}] ${fit.weights[k]} vs ${expected[k]}`,
      );
    }
  }
});

Deno.test("logistic: the objective's gradient equals central differences", () => {
  const [n, d, classes, lambda] = [40, 3, 3, 0.05];
  const { x, labels } = problem(n, d, classes, 7);
  const rng = new Rng(3, "w");
  const w = Float64Array.from({ length: (d + 1) * classes }, () => rng.normal());
  const grad = new Float64Array(w.length);
  logisticObjective(x, labels, d, classes, lambda, w, grad);
  const scratch = new Float64Array(w.length);
  for (let k = 0; k < w.length; k++) {
    const h = 1e-5;
    const plus = Float64Array.from(w);
    const minus = Float64Array.from(w);
    plus[k] += h;
    minus[k] -= h;
    const numeric = (logisticObjective(x, labels, d, classes, lambda, plus, scratch) -
      logisticObjective(x, labels, d, classes, lambda, minus, scratch)) / (2 * h);
    assert.ok(Math.abs(numeric - grad[k]) < 1e-8, `${k}: ${numeric} vs ${grad[k]}`);
  }
});

Deno.test("logistic probe: separable classes learnt, random labels near chance, deterministic, read-only", () => {
  const [n, m, d, classes] = [300, 200, 6, 4];
  const rng = new Rng(5, "probe");
  const make = (rows: number, separable: boolean) => {
    const labels = Int32Array.from({ length: rows }, () => rng.int(classes));
    const x = Float32Array.from({ length: rows * d }, (_, k) => {
      const i = Math.floor(k / d);
      const f = k % d;
      return rng.normal() + (separable && f === labels[i] ? 8 : 0);
    });
    return { x, labels };
  };
  const train = make(n, true);
  const test = make(m, true);
  const copy = train.x.slice();
  const a = logisticProbeAccuracy(train.x, train.labels, test.x, test.labels, d, { seed: 1 });
  assert.equal(a.accuracy, 1);
  assert.deepEqual(train.x, copy);
  const b = logisticProbeAccuracy(train.x, train.labels, test.x, test.labels, d, { seed: 1 });
  assert.deepEqual(b, a);
  const noise = make(n, false);
  const held = make(m, false);
  const r = logisticProbeAccuracy(noise.x, noise.labels, held.x, held.labels, d, { seed: 1 });
  assert.ok(r.accuracy < 0.4, `chance is 0.25, got ${r.accuracy}`);
  assert.equal(r.validation.length, 3);
});
