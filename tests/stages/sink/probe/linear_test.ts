// The closed-form ridge probe: the solver satisfies the normal equations and equals a naive
// Gaussian elimination, separable classes are learnt perfectly, random labels stay at chance,
// and the probe is deterministic and only reads the features.

import assert from "node:assert/strict";
import { Rng } from "../../../../core/rng.ts";
import {
  choleskySolve,
  linearProbeAccuracy,
  ridgeRegression,
} from "../../../../stages/sink/probe/linear.ts";

function normal(length: number, key: string, seed = 11): Float32Array {
  const rng = new Rng(seed, key);
  return Float32Array.from({ length }, () => rng.normal());
}

/** Z^T Z + lambda P and Z^T Y of Z = [x, 1], by plain loops (bias not penalised). */
function normalEquations(
  x: Float32Array,
  y: Float64Array,
  n: number,
  d: number,
  m: number,
  lambda: number,
) {
  const w = d + 1;
  const z = (i: number, a: number) => (a === d ? 1 : x[i * d + a]);
  const a: number[][] = [];
  const b: number[][] = [];
  for (let p = 0; p < w; p++) {
    a.push([]);
    b.push([]);
    for (let q = 0; q < w; q++) {
      let s = p === q && p < d ? lambda : 0;
      for (let i = 0; i < n; i++) s += z(i, p) * z(i, q);
      a[p].push(s);
    }
    for (let c = 0; c < m; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += z(i, p) * y[i * m + c];
      b[p].push(s);
    }
  }
  return { a, b };
}

/** Gaussian elimination with partial pivoting on copies. */
function gaussSolve(a0: number[][], b0: number[][]): number[][] {
  const a = a0.map((r) => [...r]);
  const b = b0.map((r) => [...r]);
  const n = a.length;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    [b[c], b[p]] = [b[p], b[c]];
    for (let r = c + 1; r < n; r++) {
      const f = a[r][c] / a[c][c];
      for (let k = c; k < n; k++) a[r][k] -= f * a[c][k];
      for (let k = 0; k < b[r].length; k++) b[r][k] -= f * b[c][k];
    }
  }
  const x = b.map((r) => r.map(() => 0));
  for (let r = n - 1; r >= 0; r--) {
    for (let k = 0; k < b[r].length; k++) {
      let s = b[r][k];
      for (let q = r + 1; q < n; q++) s -= a[r][q] * x[q][k];
      x[r][k] = s / a[r][r];
    }
  }
  return x;
}

Deno.test("ridge: solves the normal equations, equals Gaussian elimination to 1e-8", () => {
  for (const [n, d, m, lambda] of [[60, 7, 3, 0.5], [200, 33, 10, 1e-3], [5, 12, 2, 2]]) {
    const x = normal(n * d, `x${n}`);
    const y = Float64Array.from(normal(n * m, `y${n}`));
    const w = ridgeRegression(x, y, n, d, m, lambda);
    assert.equal(w.length, (d + 1) * m);
    const { a, b } = normalEquations(x, y, n, d, m, lambda);
    let residual = 0;
    let scale = 0;
    for (let p = 0; p <= d; p++) {
      for (let c = 0; c < m; c++) {
        let s = 0;
        for (let q = 0; q <= d; q++) s += a[p][q] * w[q * m + c];
        residual = Math.max(residual, Math.abs(s - b[p][c]));
        scale = Math.max(scale, Math.abs(b[p][c]));
      }
    }
    assert.ok(residual / scale < 1e-12, `normal-equation residual ${residual / scale}`);
    const want = gaussSolve(a, b);
    for (let p = 0; p <= d; p++) {
      for (let c = 0; c < m; c++) {
        const diff = Math.abs(w[p * m + c] - want[p][c]);
        assert.ok(diff < 1e-8, `W[${p}, ${c}] = ${w[p * m + c]} vs ${want[p][c]}`);
      }
    }
  }
});

Deno.test("Cholesky refuses a matrix that is not positive definite", () => {
  assert.throws(
    () => choleskySolve(Float64Array.of(1, 2, 2, 1), Float64Array.of(1, 1), 2, 1),
    /not positive definite/,
  );
});

/** Gaussian clusters far apart relative to their spread: linearly separable with a margin. */
function clusters(count: number, dim: number, classes: number, rng: Rng, centres: number[][]) {
  const y = Int32Array.from({ length: count }, (_, i) => i % classes);
  const x = Float32Array.from(
    { length: count * dim },
    (_, i) => centres[y[Math.floor(i / dim)]][i % dim] + 0.5 * rng.normal(),
  );
  return { x, y };
}

Deno.test("linear probe: separable classes give 100 %; deterministic; features only read", () => {
  const dim = 24;
  const classes = 6;
  const rng = new Rng(4, "separable");
  // Offsets of 10 in unrelated directions; the mean of 100 keeps the standardisation honest.
  const centres = Array.from(
    { length: classes },
    () => Array.from({ length: dim }, () => 100 + 10 * rng.normal()),
  );
  const train = clusters(1200, dim, classes, rng, centres);
  const test = clusters(600, dim, classes, rng, centres);
  const before = [train.x.slice(), test.x.slice()];
  const a = linearProbeAccuracy(train.x, train.y, test.x, test.y, dim, { seed: 1 });
  assert.deepEqual([a.accuracy, a.correct, a.total], [1, 600, 600]);
  assert.equal(a.validation.length, 7);
  assert.ok(a.validation.some((v) => v.lambda === a.lambda));
  const b = linearProbeAccuracy(train.x, train.y, test.x, test.y, dim, { seed: 1 });
  assert.deepEqual(b, a);
  assert.deepEqual([train.x, test.x], before);
});

Deno.test("linear probe: random labels stay at chance", () => {
  const dim = 32;
  const rng = new Rng(5, "labels");
  const trainLabels = Int32Array.from({ length: 2000 }, () => rng.int(10));
  const testLabels = Int32Array.from({ length: 2000 }, () => rng.int(10));
  const r = linearProbeAccuracy(
    normal(2000 * dim, "train"),
    trainLabels,
    normal(2000 * dim, "test"),
    testLabels,
    dim,
    { seed: 2, classes: 10 },
  );
  assert.ok(r.accuracy > 0.06 && r.accuracy < 0.14, `accuracy ${r.accuracy}`);
});

Deno.test("linear probe: a constant feature and a single lambda are handled", () => {
  const dim = 3;
  const x = Float32Array.from(
    { length: 40 * dim },
    (_, i) => (i % dim === 2 ? 7 : (i % 5) - (i % 7)),
  );
  const y = Int32Array.from({ length: 40 }, (_, i) => (x[i * dim] > 0 ? 1 : 0));
  const r = linearProbeAccuracy(x, y, x, y, dim, { seed: 0, lambdas: [1e-3] });
  assert.equal(r.lambda, 1e-3);
  assert.deepEqual(r.validation, []);
  // A NaN from the constant column would make every score NaN and every prediction class 0.
  assert.ok(r.accuracy > 0.9, `accuracy ${r.accuracy}`);
});
