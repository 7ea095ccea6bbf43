// Sinkhorn-Knopp codes equal a naive float64 transcription of the SwAV reference; codes are
// non-negative, each sample's code sums to 1, and with many iterations every prototype gets an
// equal share (1/K) of the total mass. The max shift before exp changes nothing but overflow.

import assert from "node:assert/strict";
import { Rng } from "../../../core/rng.ts";
import { sinkhorn } from "../../../stages/learn/sinkhorn.ts";

/** Scores of normalised embeddings against normalised prototypes, in [-1, 1]. */
function cosineScores(rows: number, k: number, seed: number): Float32Array {
  const rng = new Rng(seed, "sinkhorn");
  const dim = 8;
  const unit = (n: number) =>
    Array.from({ length: n }, () => {
      const v = Array.from({ length: dim }, () => rng.normal());
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    });
  const z = unit(rows);
  const c = unit(k);
  return Float32Array.from(
    { length: rows * k },
    (_, i) => z[Math.floor(i / k)].reduce((s, x, d) => s + x * c[i % k][d], 0),
  );
}

/**
 * The SwAV reference line by line on a K x B matrix of plain numbers:
 * Q = exp(scores / eps)^T; Q /= sum(Q); iterations of Q /= row sums, Q /= K, Q /= column sums,
 * Q /= B; Q *= B; return Q^T.
 */
function naiveSinkhorn(
  scores: Float32Array,
  b: number,
  k: number,
  eps: number,
  iterations: number,
): number[][] {
  const q: number[][] = [];
  for (let p = 0; p < k; p++) {
    q.push([]);
    for (let i = 0; i < b; i++) q[p].push(Math.exp(scores[i * k + p] / eps));
  }
  let total = 0;
  for (let p = 0; p < k; p++) for (let i = 0; i < b; i++) total += q[p][i];
  for (let p = 0; p < k; p++) for (let i = 0; i < b; i++) q[p][i] /= total;
  for (let it = 0; it < iterations; it++) {
    for (let p = 0; p < k; p++) {
      let s = 0;
      for (let i = 0; i < b; i++) s += q[p][i];
      for (let i = 0; i < b; i++) q[p][i] = q[p][i] / s / k;
    }
    for (let i = 0; i < b; i++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += q[p][i];
      for (let p = 0; p < k; p++) q[p][i] = q[p][i] / s / b;
    }
  }
  const out: number[][] = [];
  for (let i = 0; i < b; i++) out.push(Array.from({ length: k }, (_, p) => q[p][i] * b));
  return out;
}

function assertClose(got: Float32Array, want: number[][], k: number, tol: number, what: string) {
  let worst = 0;
  want.forEach((row, i) =>
    row.forEach((w, p) => {
      worst = Math.max(worst, Math.abs(got[i * k + p] - w) / Math.max(Math.abs(w), 1e-30));
    })
  );
  assert.ok(worst < tol, `${what}: relative error ${worst}`);
}

const CASES = [
  { b: 8, k: 5, eps: 0.05, iterations: 3 },
  { b: 16, k: 10, eps: 0.05, iterations: 3 },
  { b: 6, k: 12, eps: 0.1, iterations: 1 },
  { b: 32, k: 4, eps: 0.03, iterations: 7 },
  { b: 5, k: 3, eps: 0.05, iterations: 0 },
];

Deno.test("sinkhorn: equals a naive float64 transcription of the SwAV reference", () => {
  for (const [n, c] of CASES.entries()) {
    const scores = cosineScores(c.b, c.k, n);
    const got = sinkhorn(scores, c.b, c.k, c.eps, c.iterations);
    assert.equal(got.length, c.b * c.k);
    // Float32 output of float64 work: a few ulps.
    assertClose(got, naiveSinkhorn(scores, c.b, c.k, c.eps, c.iterations), c.k, 1e-6, `${n}`);
  }
  // The defaults are eps 0.05 and 3 iterations.
  const scores = cosineScores(8, 5, 99);
  assert.deepEqual(sinkhorn(scores, 8, 5), sinkhorn(scores, 8, 5, 0.05, 3));
  assertClose(sinkhorn(scores, 8, 5), naiveSinkhorn(scores, 8, 5, 0.05, 3), 5, 1e-6, "defaults");
});

Deno.test("sinkhorn: codes are non-negative and each sample's code sums to 1", () => {
  for (const [n, c] of CASES.entries()) {
    if (c.iterations === 0) continue;
    const codes = sinkhorn(cosineScores(c.b, c.k, n), c.b, c.k, c.eps, c.iterations);
    for (const v of codes) assert.ok(v >= 0 && Number.isFinite(v));
    for (let i = 0; i < c.b; i++) {
      let s = 0;
      for (let p = 0; p < c.k; p++) s += codes[i * c.k + p];
      assert.ok(Math.abs(s - 1) < 1e-6, `case ${n} sample ${i}: ${s}`);
    }
  }
});

Deno.test("sinkhorn: with enough iterations every prototype gets 1/K of the mass", () => {
  const b = 24;
  const k = 6;
  const scores = cosineScores(b, k, 7);
  /** Largest distance of a prototype's share of the total mass (b) from 1/K. */
  const imbalance = (iterations: number) => {
    const codes = sinkhorn(scores, b, k, 0.05, iterations);
    let worst = 0;
    for (let p = 0; p < k; p++) {
      let s = 0;
      for (let i = 0; i < b; i++) s += codes[i * k + p];
      worst = Math.max(worst, Math.abs(s / b - 1 / k));
    }
    return worst;
  };
  // At eps 0.05 the plan is nearly a hard assignment and the scaling converges slowly: the SwAV
  // default of 3 iterations leaves the prototypes visibly unequal; 50 make them equal to 1e-3 of
  // the total mass (0.6 % of a share) and 500 to float precision.
  const three = imbalance(3);
  const fifty = imbalance(50);
  assert.ok(three > 1e-2, `3 iterations: ${three}`);
  assert.ok(fifty < 1e-3 && fifty < three / 20, `50 iterations: ${fifty} (3: ${three})`);
  assert.ok(imbalance(500) < 1e-6, `500 iterations: ${imbalance(500)}`);
});

Deno.test("sinkhorn: the max shift only prevents overflow", () => {
  const b = 10;
  const k = 4;
  // Scores on a 2^-12 grid, so adding 3 or 100 in float32 is exact.
  const scores = cosineScores(b, k, 3).map((s) => Math.round(s * 4096) / 4096);
  const base = sinkhorn(scores, b, k);
  // A constant added to every score is a common factor of Q, removed by the first normalisation.
  const shifted = sinkhorn(scores.map((s) => s + 3), b, k);
  assertClose(shifted, naiveSinkhorn(scores, b, k, 0.05, 3), k, 1e-6, "shifted");
  assertClose(base, naiveSinkhorn(scores, b, k, 0.05, 3), k, 1e-6, "base");
  // Scores of 100 overflow exp(s / eps) in the naive form but not here.
  const large = scores.map((s) => s + 100);
  assert.ok(naiveSinkhorn(large, b, k, 0.05, 3).flat().some((v) => !Number.isFinite(v)));
  assertClose(sinkhorn(large, b, k), naiveSinkhorn(scores, b, k, 0.05, 3), k, 1e-6, "large");
});

Deno.test("sinkhorn: rejects bad shapes and non-finite scores", () => {
  assert.throws(() => sinkhorn(new Float32Array(5), 2, 3));
  assert.throws(() => sinkhorn(Float32Array.of(0, NaN), 1, 2));
  assert.throws(() => sinkhorn(new Float32Array(6), 2, 3, 0));
  assert.throws(() => sinkhorn(new Float32Array(6), 2, 3, 0.05, -1));
});
